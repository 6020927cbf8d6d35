/**
 * Label selectors as Kubernetes evaluates them (apimachinery's LabelSelectorAsSelector):
 * every matchLabels pair and every matchExpressions requirement must hold; an empty selector
 * matches everything.
 *
 * @module
 */
import type { LabelSelector, SelectorRequirement } from "./types.ts";

/** Whether one requirement holds for `labels`. */
function holds(req: SelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, req.key);
  switch (req.operator) {
    case "In":
      return has && req.values.includes(labels[req.key]);
    case "NotIn":
      // A missing key is "not in" (as apimachinery's selection.NotIn).
      return !has || !req.values.includes(labels[req.key]);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
  }
}

/**
 * Whether a selector matches a set of labels.
 *
 * @example
 * ```ts
 * matches({ matchLabels: { app: "web" }, matchExpressions: [] }, { app: "web" }); // true
 * ```
 */
export function matches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  }
  return sel.matchExpressions.every((r) => holds(r, labels));
}

/** A selector as kubectl prints it (`app=web,tier in (a,b)`; `{}` for everything). */
export function formatSelector(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels).map(([k, v]) => `${k}=${v}`);
  for (const r of sel.matchExpressions) {
    if (r.operator === "Exists") parts.push(r.key);
    else if (r.operator === "DoesNotExist") parts.push(`!${r.key}`);
    else parts.push(`${r.key} ${r.operator === "In" ? "in" : "notin"} (${r.values.join(",")})`);
  }
  return parts.length ? parts.join(",") : "{}";
}
