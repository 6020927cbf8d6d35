/**
 * The policy controller's metrics (`podplex_policy_*`), read at scrape time.
 *
 * @module
 */
import type { MetricsRegistry } from "../controller.ts";

/** What the metrics read of the controller. */
export interface PolicyReadings {
  readonly stats: { renders: number; updates: number; renderErrors: number; lastSync: number };
  readonly synced: boolean;
  enforced(): number;
  dropped(): number;
}

/** Registers the families; `locals` and `objects` are read on each scrape. */
export function registerPolicyMetrics(
  reg: MetricsRegistry,
  c: PolicyReadings,
  locals: () => number,
  objects: () => Record<string, number>,
): void {
  const one = (value: number) => () => [{ value }];
  reg.register({
    name: "podplex_policy_pods",
    help: "Pods of this node podplex ADDed that the policy controller knows.",
    type: "gauge",
    read: () => one(locals())(),
  });
  reg.register({
    name: "podplex_policy_pods_enforced",
    help: "Pods of this node with a network policy table in their netns.",
    type: "gauge",
    read: () => one(c.enforced())(),
  });
  reg.register({
    name: "podplex_policy_renders_total",
    help: "Pod tables written (a change that altered the table).",
    type: "counter",
    read: () => one(c.stats.renders)(),
  });
  reg.register({
    name: "podplex_policy_updates_total",
    help:
      "Of the tables written, those written as an update (elements, sets, chains that changed), not whole.",
    type: "counter",
    read: () => one(c.stats.updates)(),
  });
  reg.register({
    name: "podplex_policy_render_errors_total",
    help: "Pod tables that could not be written.",
    type: "counter",
    read: () => one(c.stats.renderErrors)(),
  });
  reg.register({
    name: "podplex_policy_dropped_rules",
    help: "Policy rules dropped now (cannot be applied: bad field, named port no container has).",
    type: "gauge",
    read: () => one(c.dropped())(),
  });
  reg.register({
    name: "podplex_policy_synced",
    help: "1 once every watched collection has been listed.",
    type: "gauge",
    read: () => one(c.synced ? 1 : 0)(),
  });
  reg.register({
    name: "podplex_policy_last_sync_timestamp_seconds",
    help: "When the last LIST of every watched collection ended (0: never).",
    type: "gauge",
    read: () => one(c.stats.lastSync / 1000)(),
  });
  reg.register({
    name: "podplex_policy_objects",
    help: "Objects known, by collection.",
    type: "gauge",
    read: () => Object.entries(objects()).map(([kind, value]) => ({ labels: { kind }, value })),
  });
}
