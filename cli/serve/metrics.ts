/**
 * The daemon's Prometheus metrics (text exposition format 0.0.4), served on a loopback port
 * or a unix socket (`--metrics-address`, `--metrics-socket`; README "Metrics" lists the
 * series). Counters and histograms are kept as calls are answered; gauges are read when
 * scraped: calls in flight and queued, attachments by network and host-local pool use from
 * the state files (so pods ADDed per call are counted too), the caches, the process.
 *
 * @module
 */
import type { FallbackReason } from "./call.ts";
import type { CallRecord } from "./daemon.ts";
import { PROTOCOL } from "./protocol.ts";
import { poolUse, stateDirOf, statesIn } from "./metrics_state.ts";

/** Latency buckets (s): a warm ADD takes ms, a DEL one RCU grace period, a stuck one 100 s. */
export const BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  100,
];

/** What is read at scrape time. */
export interface ScrapeSources {
  inFlight(): number;
  queued(): number;
  /** Counters of the definition file cache. */
  files?: () => { hits: number; misses: number; size: number };
  /** The watched API clients' counters and cache sizes. */
  kube?: () => KubeSource[];
  /** The hot-plug controller's counters (serve --dynamic-networks). */
  hotplug?: () => { changes: number; failures: number; reconciles: number };
}

/** One watched API client's numbers. */
export interface KubeSource {
  stats: {
    hits: Record<string, number>;
    gets: Record<string, number>;
    lists: number;
    events: number;
    errors: number;
  };
  sizes(): { pods: number; nads: number; podsLive: boolean; nadsLive: boolean };
}

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** Lines of one metric family. */
class Family {
  readonly lines: string[] = [];
  constructor(readonly name: string, type: string, help: string) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }
  add(value: number, l: Record<string, string> = {}, suffix = ""): this {
    this.lines.push(`${this.name}${suffix}${labels(l)} ${Number.isFinite(value) ? value : 0}`);
    return this;
  }
}

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** The daemon's counters, and the rendering of all series. */
export class ServeMetrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, Histogram>();
  readonly #fallbacks = new Map<FallbackReason, number>();
  readonly #late = new Map<string, number>();
  readonly #stateDirs = new Set<string>();
  readonly #started = Date.now() / 1000;

  constructor(readonly build: string) {}

  /** Counts an answered call. */
  observe(r: CallRecord): void {
    if (r.late) return void this.#late.set(r.verb, (this.#late.get(r.verb) ?? 0) + 1);
    if (r.status === PROTOCOL.notServed) {
      if (r.fallback) this.fallback(r.fallback);
      return;
    }
    const key = `${r.verb}\u0000${r.code}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let h = this.#latency.get(r.verb);
    if (!h) this.#latency.set(r.verb, h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 });
    BUCKETS.forEach((b, i) => r.seconds <= b && h!.counts[i]++);
    h.sum += r.seconds;
    h.count++;
    // Where this call's pods are remembered: scanned for the attachment gauges.
    const dir = r.call && stateDirOf(r.call.env, r.call.stdin);
    if (dir && this.#stateDirs.size < 32) this.#stateDirs.add(dir);
  }

  /** Counts a call sent back to run per call. */
  fallback(reason: FallbackReason): void {
    this.#fallbacks.set(reason, (this.#fallbacks.get(reason) ?? 0) + 1);
  }

  /** Every series, as a scrape answers it. */
  render(src: ScrapeSources): string {
    const fams: Family[] = [];
    const fam = (name: string, type: string, help: string) => {
      const f = new Family(name, type, help);
      fams.push(f);
      return f;
    };
    fam("podplex_build_info", "gauge", "The daemon's build id and protocol version.")
      .add(1, { build: this.build, protocol: String(PROTOCOL.version) });
    const req = fam(
      "podplex_requests_total",
      "counter",
      "CNI calls the daemon ran, by verb and result code (0: success, else the CNI error code).",
    );
    for (const [k, n] of this.#requests) {
      const [verb, code] = k.split("\u0000");
      req.add(n, { verb, code });
    }
    this.#histograms(
      fam(
        "podplex_request_duration_seconds",
        "histogram",
        "Time from a call's arrival to its answer, by verb.",
      ),
    );
    fam("podplex_requests_in_flight", "gauge", "Calls running now.").add(src.inFlight());
    fam("podplex_requests_queued", "gauge", "Calls waiting for a slot.").add(src.queued());
    const fb = fam(
      "podplex_fallbacks_total",
      "counter",
      "Calls answered 'not served', which the shim then ran per call, by reason.",
    );
    for (const [reason, n] of this.#fallbacks) fb.add(n, { reason });
    const late = fam(
      "podplex_requests_late_total",
      "counter",
      "Calls that ended after their client was answered 11 at the deadline, by verb.",
    );
    for (const [verb, n] of this.#late) late.add(n, { verb });
    this.#stateSeries(fam);
    this.#cacheSeries(fam, src);
    const hp = src.hotplug?.();
    if (hp) {
      fam(
        "podplex_hotplug_changes_total",
        "counter",
        "Attachments plugged into or out of running pods.",
      )
        .add(hp.changes);
      fam(
        "podplex_hotplug_failures_total",
        "counter",
        "Hot-plug changes that failed, and annotations refused as a whole.",
      ).add(hp.failures);
      fam(
        "podplex_hotplug_reconciles_total",
        "counter",
        "Pods whose annotation change was acted on.",
      )
        .add(hp.reconciles);
    }
    this.#processSeries(fam);
    return fams.map((f) => f.lines.join("\n")).join("\n") + "\n";
  }

  #histograms(f: Family): void {
    for (const [verb, h] of this.#latency) {
      BUCKETS.forEach((b, i) => f.add(h.counts[i], { verb, le: String(b) }, "_bucket"));
      f.add(h.count, { verb, le: "+Inf" }, "_bucket");
      f.add(h.sum, { verb }, "_sum");
      f.add(h.count, { verb }, "_count");
    }
  }

  #stateSeries(fam: (n: string, t: string, h: string) => Family): void {
    const states = [...this.#stateDirs].flatMap((d) => statesIn(d));
    const att = fam(
      "podplex_attachments",
      "gauge",
      "Pod attachments podplex remembers (its state files, per call and daemon alike), by network.",
    );
    const byNet = new Map<string, number>();
    for (const s of states) {
      for (const a of s.attachments) byNet.set(a.network, (byNet.get(a.network) ?? 0) + 1);
    }
    for (const [network, n] of byNet) att.add(n, { network });
    const size = fam(
      "podplex_ipam_pool_size",
      "gauge",
      "Addresses a host-local range set can hand out.",
    );
    const used = fam(
      "podplex_ipam_pool_used",
      "gauge",
      "Addresses of a host-local range set leased now.",
    );
    for (const p of poolUse(states)) {
      size.add(p.size, { network: p.network, range: p.range });
      used.add(p.used, { network: p.network, range: p.range });
    }
  }

  #cacheSeries(fam: (n: string, t: string, h: string) => Family, src: ScrapeSources): void {
    const files = src.files?.();
    if (files) {
      fam(
        "podplex_definition_cache_reads_total",
        "counter",
        "Definition and conf reads, by whether the cache answered.",
      )
        .add(files.hits, { result: "hit" }).add(files.misses, { result: "miss" });
    }
    const kubes = src.kube?.() ?? [];
    if (!kubes.length) return;
    const reads = fam(
      "podplex_kube_reads_total",
      "counter",
      "Pod and NAD reads, by resource and source (cache: the watch; api: a GET).",
    );
    const objs = fam(
      "podplex_kube_cached_objects",
      "gauge",
      "Objects the watches hold, by resource.",
    );
    const live = fam("podplex_kube_watch_live", "gauge", "1 while a resource's watch is current.");
    const lists = fam(
      "podplex_kube_lists_total",
      "counter",
      "LISTs made (the first, after 410 Gone, after a broken watch).",
    );
    const errors = fam(
      "podplex_kube_watch_errors_total",
      "counter",
      "Watches that failed and were retried.",
    );
    let nl = 0, ne = 0;
    const sum = { pods: 0, nads: 0, hitsPods: 0, hitsNads: 0, getsPods: 0, getsNads: 0 };
    let podsLive = 0, nadsLive = 0;
    for (const k of kubes) {
      const s = k.sizes();
      sum.pods += s.pods;
      sum.nads += s.nads;
      podsLive = Math.max(podsLive, Number(s.podsLive));
      nadsLive = Math.max(nadsLive, Number(s.nadsLive));
      sum.hitsPods += k.stats.hits.pods ?? 0;
      sum.hitsNads += k.stats.hits.nads ?? 0;
      sum.getsPods += k.stats.gets.pods ?? 0;
      sum.getsNads += k.stats.gets.nads ?? 0;
      nl += k.stats.lists;
      ne += k.stats.errors;
    }
    reads.add(sum.hitsPods, { resource: "pods", source: "cache" })
      .add(sum.getsPods, { resource: "pods", source: "api" })
      .add(sum.hitsNads, { resource: "nads", source: "cache" })
      .add(sum.getsNads, { resource: "nads", source: "api" });
    objs.add(sum.pods, { resource: "pods" }).add(sum.nads, { resource: "nads" });
    live.add(podsLive, { resource: "pods" }).add(nadsLive, { resource: "nads" });
    lists.add(nl);
    errors.add(ne);
  }

  #processSeries(fam: (n: string, t: string, h: string) => Family): void {
    const status = readOr("/proc/self/status");
    const kb = (k: string) =>
      Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? 0) * 1024;
    fam("process_resident_memory_bytes", "gauge", "Resident memory.").add(kb("VmRSS"));
    fam(
      "podplex_resident_anonymous_bytes",
      "gauge",
      "Resident anonymous memory (not the runtime's file pages).",
    )
      .add(kb("RssAnon"));
    const stat = readOr("/proc/self/stat").split(") ")[1]?.split(" ") ?? [];
    const ticks = Number(stat[11] ?? 0) + Number(stat[12] ?? 0);
    fam("process_cpu_seconds_total", "counter", "User and system CPU time.").add(ticks / 100);
    fam("process_start_time_seconds", "gauge", "When the daemon started (Unix time).").add(
      this.#started,
    );
    const mem = Deno.memoryUsage();
    fam("podplex_heap_used_bytes", "gauge", "JavaScript heap in use.").add(mem.heapUsed);
    fam("podplex_heap_total_bytes", "gauge", "JavaScript heap reserved.").add(mem.heapTotal);
    fam("podplex_external_bytes", "gauge", "Memory of JavaScript objects held outside the heap.")
      .add(mem.external);
  }
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** Serves `render()` at GET /metrics on a TCP address (`host:port`) or a unix socket path. */
export function serveMetrics(
  where: { address?: string; socket?: string },
  render: () => string,
  log: (line: string) => void,
): { close(): Promise<void> } {
  const handler = (req: Request): Response => {
    if (new URL(req.url).pathname !== "/metrics" || req.method !== "GET") {
      return new Response("podplex serve: only GET /metrics here\n", { status: 404 });
    }
    return new Response(render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  };
  const onListen = () => log(`metrics on ${where.socket ?? `http://${where.address}/metrics`}`);
  let server: Deno.HttpServer;
  if (where.socket) {
    try {
      Deno.removeSync(where.socket); // a stale one of a killed daemon
    } catch { /* none */ }
    server = Deno.serve({ path: where.socket, onListen }, handler);
  } else {
    const at = where.address!.lastIndexOf(":");
    const hostname = where.address!.slice(0, at).replace(/^\[|\]$/g, "");
    server = Deno.serve(
      { hostname, port: Number(where.address!.slice(at + 1)), onListen },
      handler,
    );
  }
  return { close: () => server.shutdown() };
}
