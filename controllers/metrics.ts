/**
 * A {@linkcode MetricsRegistry} that keeps its families and renders them in the Prometheus
 * text format (0.0.4), for the daemon's `/metrics` to append to its own series.
 *
 * @module
 */
import type { MetricFamily, MetricsRegistry } from "./controller.ts";

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** The registry the daemon hands its controllers. */
export class ControllerMetrics implements MetricsRegistry {
  readonly #families = new Map<string, MetricFamily>();

  /**
   * Registers a family.
   *
   * @throws {Error} naming the family when one of that name is registered already
   */
  register(family: MetricFamily): void {
    if (this.#families.has(family.name)) {
      throw new Error(`Metric "${family.name}" is registered already`);
    }
    this.#families.set(family.name, family);
  }

  /** The registered families' samples, read now, as exposition text (empty with none). */
  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      for (const s of f.read()) {
        const labels = Object.entries(s.labels ?? {}).map(([k, v]) => `${k}="${esc(v)}"`);
        out.push(`${f.name}${labels.length ? `{${labels.join(",")}}` : ""} ${s.value}`);
      }
    }
    return out.length ? out.join("\n") + "\n" : "";
  }
}
