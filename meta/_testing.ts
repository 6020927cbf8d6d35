/**
 * A harness for the meta-plugin's unit tests, with no root and no kernel: networks on disk
 * whose chains are in-process fakes that record every call, a kernel edge that records its
 * group deletes, state in a temp dir. Imported by `meta/*_test.ts` only.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import type { CniResult } from "../conf/types.ts";
import { fakeRegistry } from "../delegates/runner/testing.ts";
import type { InProcessRequest, Plugin, PluginRequest } from "../delegates/types.ts";
import type { Logger } from "./log.ts";
import type { MetaDeps, MetaKernel } from "./context.ts";
import { createMetaPlugin } from "./plugin.ts";
import { createStateStore, type StateStore } from "./state.ts";

/** One thing that happened, in order: a delegate's verb or a kernel call. */
export interface Event {
  /** `main`, `ipam` (the fakes' types), or `kernel`. */
  who: string;
  verb: string;
  /** The network (conf `name`) the call was for, or the group for a kernel call. */
  network: string;
  ifname?: string;
  /** What the state store held for the pod when the call happened. */
  stateSaved?: boolean;
  prevResult?: CniResult;
  /** GC: the valid attachments the delegate was given. */
  valid?: unknown;
}

/** How the fakes behave. */
export interface Faults {
  /** `verb:network` pairs that fail (e.g. `ADD:net-c`), with code 11 unless given. */
  fail?: Record<string, number>;
  /** The IPAM fake needs the link on DEL (as DHCP does). */
  ipamNeedsLink?: boolean;
}

/** Edges a test replaces besides the fakes. */
export interface HarnessOptions {
  /** The kernel's policy table applier (default: none given, so libnftables). */
  applyPolicyTable?: MetaKernel["applyPolicyTable"];
  /** The policy source (default: the conf's policiesDir). */
  policy?: MetaDeps["policy"];
}

/** A meta-plugin wired to fakes, with what it records. */
export interface Harness extends AsyncDisposable {
  plugin: Plugin;
  events: Event[];
  store: StateStore;
  dir: string;
  networksDir: string;
  stateDir: string;
  /** The podplex conf bytes, `extra` fields merged. */
  conf(extra?: Record<string, unknown>): Uint8Array;
  /** A request as a runtime makes it. */
  req(command: PluginRequest["command"], extra?: Partial<PluginRequest["env"]>): PluginRequest;
  faults: Faults;
  /** The warnings the meta-plugin logged. */
  warnings: string[];
}

const enc = new TextEncoder();

/** A logger that drops everything but warnings, which it keeps in `warnings`. */
function quiet(warnings: string[]): Logger {
  const log: Logger = {
    error() {},
    warning: (msg: string) => void warnings.push(msg),
    info() {},
    debug() {},
    with: () => log,
  };
  return log;
}

/** The container and interface every harness request is for. */
export const CONTAINER = "ppc1";

function fakeDelegate(who: "main" | "ipam", h: Pick<Harness, "events" | "faults">): Plugin {
  return {
    type: who === "main" ? "ppfake" : "ppfakeipam",
    builtin: true,
    traits: who === "ipam" && h.faults.ipamNeedsLink ? { delNeedsLink: true } : {},
    invoke: () => Promise.reject(new Error("the fakes are in-process only")),
    // deno-lint-ignore require-await
    async call(req: InProcessRequest) {
      const network = String(req.conf.name);
      const ev: Event = { who, verb: req.command, network, ifname: req.env.ifname };
      if (req.prevResult) ev.prevResult = req.prevResult;
      if (req.command === "GC") ev.valid = req.conf["cni.dev/valid-attachments"];
      h.events.push(ev);
      const code = h.faults.fail?.[`${req.command}:${network}`];
      if (code !== undefined) {
        throw new CniError(code, `fake ${who} refuses ${req.command} of "${network}"`);
      }
      if (req.command !== "ADD") return undefined;
      if (who === "ipam") {
        // Chained after `ppfake`: passes the interfaces on, as a chained plugin must.
        return { ...req.prevResult, cniVersion: req.cniVersion, ips: [{ address: "10.9.0.2/24" }] };
      }
      const prev = req.prevResult ?? { cniVersion: req.cniVersion };
      return {
        ...prev,
        interfaces: [...(prev.interfaces ?? []), { name: req.env.ifname!, sandbox: "/x" }],
        ips: [{ address: `10.9.${h.events.length}.2/24`, interface: 0 }],
      };
    },
  };
}

/**
 * A harness with networks `net-a`, `net-b`, `net-c` in namespace `default`; each a chain
 * `ppfake` then `ppfakeipam` unless `chains` says otherwise (plugin types per network).
 */
export async function metaHarness(
  chains: Record<string, string[]> = {},
  faults: Faults = {},
  opts: HarnessOptions = {},
): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "ppmeta" });
  const networksDir = `${dir}/networks.d`;
  const stateDir = `${dir}/state`;
  await Deno.mkdir(`${networksDir}/default`, { recursive: true });
  for (const name of ["net-a", "net-b", "net-c"]) {
    const types = chains[name] ?? ["ppfake", "ppfakeipam"];
    const plugins = types.map((type) => ({ type }));
    await Deno.writeTextFile(
      `${networksDir}/default/${name}.conflist`,
      JSON.stringify({ cniVersion: "1.1.0", name, plugins }),
    );
  }
  const events: Event[] = [];
  const warnings: string[] = [];
  const h = { events, faults };
  const plugins = { ppfake: fakeDelegate("main", h), ppfakeipam: fakeDelegate("ipam", h) };
  const store = createStateStore(stateDir);
  const kernel: MetaKernel = {
    requireNetns: () => Promise.resolve(),
    deleteLinkGroup(_netns, group) {
      events.push({ who: "kernel", verb: "group-delete", network: String(group) });
      return Promise.resolve();
    },
    applyDefaultRoutes() {
      events.push({ who: "kernel", verb: "default-routes", network: "" });
      return Promise.resolve();
    },
    ...(opts.applyPolicyTable ? { applyPolicyTable: opts.applyPolicyTable } : {}),
  };
  // Each recorded event notes whether the pod's state was on disk at that moment.
  const recording = (p: Plugin): Plugin => ({
    ...p,
    async call(req) {
      const saved = req.env.containerId
        ? await store.load(req.env.containerId, "eth0").then((s) => s !== null, () => undefined)
        : undefined;
      try {
        return await p.call!(req);
      } finally {
        const last = events.findLast((e) => e.who !== "kernel");
        if (last && saved !== undefined) last.stateSaved = saved;
      }
    },
  });
  const registry = fakeRegistry({
    ppfake: recording(plugins.ppfake),
    ppfakeipam: recording(plugins.ppfakeipam),
  });
  const plugin = createMetaPlugin({
    registry: () => registry,
    kernel,
    log: () => quiet(warnings),
    store: () => store,
    now: () => new Date("2026-12-01T00:00:00Z"),
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  const conf = (extra: Record<string, unknown> = {}) =>
    enc.encode(JSON.stringify({
      cniVersion: "1.1.0",
      name: "podplex",
      type: "podplex",
      clusterNetwork: "default/net-a",
      defaultNetworks: ["default/net-b", "default/net-c"],
      networksDir,
      stateDir,
      policiesDir: `${dir}/policies.d`,
      ...extra,
    }));
  return {
    plugin,
    events,
    store,
    dir,
    networksDir,
    stateDir,
    faults,
    warnings,
    conf,
    req(command, extra = {}) {
      return {
        command,
        conf: conf(),
        env: {
          containerId: CONTAINER,
          netns: `${dir}/netns`,
          ifname: "eth0",
          path: [],
          ...extra,
        },
      };
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The events of delegates only, as `who:verb:network` strings. */
export function calls(events: Event[], verb?: string): string[] {
  return events.filter((e) => e.who !== "kernel" && (!verb || e.verb === verb))
    .map((e) => `${e.who}:${e.verb}:${e.network}`);
}

/** Awaits `p`, which must reject with a CniError, and returns the error. */
export async function cniError(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new CniError(Code.Internal, "expected a CniError, nothing was thrown");
}
