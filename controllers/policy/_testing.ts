/**
 * Test helpers of the policy controller (test code): an in-memory API server that LISTs and
 * WATCHes collections the way the real one does (resourceVersions, replay from a version,
 * 410 Gone, 404 for a collection not served), the objects it holds, and states of local pods.
 *
 * @module
 */
import { GoneError, NotFoundError, type WatchEvent } from "../../clients/k8s/client.ts";
import type { ListWatchClient } from "../../clients/k8s/informer.ts";
import { Code } from "../../conf/errors.ts";
import type { PodState } from "../../meta/state.ts";

interface Watch {
  path: string;
  push(ev: WatchEvent): void;
  end(err?: Error): void;
}

/** The fake API server. */
export class FakeKube implements ListWatchClient {
  rv = 1;
  /** path → key → object. */
  readonly objects = new Map<string, Map<string, Record<string, unknown>>>();
  readonly #history: Array<{ rv: number; path: string; ev: WatchEvent }> = [];
  readonly #watches = new Set<Watch>();
  /** Collections answered 404. */
  readonly missing = new Set<string>();
  lists = 0;

  /** Open watches. */
  get watching(): number {
    return this.#watches.size;
  }

  #change(path: string, type: WatchEvent["type"], obj: Record<string, unknown>) {
    const rv = ++this.rv;
    (obj.metadata as Record<string, unknown>).resourceVersion = String(rv);
    const ev = { type, object: structuredClone(obj) };
    this.#history.push({ rv, path, ev });
    for (const w of this.#watches) if (w.path === path) w.push(ev);
  }

  /** Creates or replaces an object (ADDED / MODIFIED). */
  put(path: string, obj: Record<string, unknown>): void {
    const m = obj.metadata as { namespace?: string; name: string };
    const key = `${m.namespace ?? ""}/${m.name}`;
    const coll = this.objects.get(path) ?? new Map();
    this.objects.set(path, coll);
    const type = coll.has(key) ? "MODIFIED" : "ADDED";
    coll.set(key, obj);
    this.#change(path, type, obj);
  }

  /** Deletes an object (DELETED). */
  remove(path: string, key: string): void {
    const obj = this.objects.get(path)?.get(key);
    if (!obj) return;
    this.objects.get(path)!.delete(key);
    this.#change(path, "DELETED", obj);
  }

  /** Ends every watch with 410 Gone (the history was compacted): the informers list again. */
  expire(): void {
    this.#history.length = 0;
    for (const w of [...this.#watches]) w.end(new GoneError("410"));
  }

  /** Breaks every watch (the connection dropped). */
  breakWatches(): void {
    for (const w of [...this.#watches]) w.end(new Error("connection reset"));
  }

  list(full: string): Promise<{ items: unknown[]; resourceVersion: string; continue?: string }> {
    this.lists++;
    const [path, query] = full.split("?");
    if (this.missing.has(path)) {
      return Promise.reject(new NotFoundError(Code.ApiFailure, `LIST "${path}" answered 404`));
    }
    const items = [...(this.objects.get(path)?.values() ?? [])].map((o) => structuredClone(o));
    const q = new URLSearchParams(query);
    const limit = Number(q.get("limit") ?? 0);
    if (!limit) return Promise.resolve({ items, resourceVersion: String(this.rv) });
    const from = Number(q.get("continue") ?? 0); // the token: the next page's offset
    const more = from + limit < items.length;
    return Promise.resolve({
      items: items.slice(from, from + limit),
      resourceVersion: String(this.rv),
      ...(more ? { continue: String(from + limit) } : {}),
    });
  }

  async *watch(full: string, signal: AbortSignal): AsyncIterable<WatchEvent> {
    const [path, query] = full.split("?");
    const from = Number(new URLSearchParams(query).get("resourceVersion") ?? this.rv);
    const queue: WatchEvent[] = this.#history.filter((h) => h.path === path && h.rv > from)
      .map((h) => h.ev);
    let wake: (() => void) | undefined;
    let ended: Error | null | undefined;
    const w: Watch = {
      path,
      push: (ev) => (queue.push(ev), wake?.()),
      end: (err) => ((ended = err ?? null), wake?.()),
    };
    this.#watches.add(w);
    const abort = () => w.end();
    signal.addEventListener("abort", abort, { once: true });
    try {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (ended !== undefined) {
          if (ended) throw ended;
          return;
        }
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      this.#watches.delete(w);
      signal.removeEventListener("abort", abort);
    }
  }
}

/** A Pod object. */
export function podObj(
  ns: string,
  name: string,
  o: {
    labels?: Record<string, string>;
    ip?: string;
    node?: string;
    ports?: Array<{ name: string; containerPort: number; protocol?: string }>;
  } = {},
): Record<string, unknown> {
  return {
    metadata: { namespace: ns, name, labels: o.labels ?? {}, uid: `uid-${ns}-${name}` },
    spec: { nodeName: o.node ?? "node-1", containers: [{ name: "c", ports: o.ports ?? [] }] },
    status: { phase: "Running", ...(o.ip ? { podIPs: [{ ip: o.ip }], podIP: o.ip } : {}) },
  };
}

/** A Namespace object. */
export function nsObj(name: string, labels: Record<string, string> = {}) {
  return { metadata: { name, labels } };
}

/** A NetworkPolicy object (as a LIST item: no apiVersion/kind). */
export function npObj(ns: string, name: string, spec: Record<string, unknown>) {
  return { metadata: { namespace: ns, name }, spec };
}

/** A MultiNetworkPolicy object for `networks` (`ns/net,...`). */
export function mnpObj(ns: string, name: string, networks: string, spec: Record<string, unknown>) {
  return {
    metadata: { namespace: ns, name, annotations: { "k8s.v1.cni.cncf.io/policy-for": networks } },
    spec,
  };
}

/** The state of a local pod: eth0 on the cluster network at `ip`, net1 on `sec` when given. */
export function stateOf(ns: string, name: string, ip: string, sec?: string): PodState {
  const status: Record<string, unknown>[] = [
    { name: "default/cluster", interface: "eth0", ips: [ip], gateway: ["10.227.0.1"] },
  ];
  const attachments = [
    { network: "default/cluster", ifname: "eth0", isCluster: true, isDefault: true, confText: "" },
  ];
  if (sec) {
    status.push({ name: "default/sec", interface: "net1", ips: [sec] });
    attachments.push({
      network: "default/sec",
      ifname: "net1",
      isCluster: false,
      isDefault: false,
      confText: "",
    });
  }
  return {
    version: 1,
    containerId: `c-${ns}-${name}`,
    netns: `/run/netns/${ns}-${name}`,
    ifname: "eth0",
    podNamespace: ns,
    podName: name,
    podUid: `uid-${ns}-${name}`,
    createdAt: "2026-01-01T00:00:00Z",
    attachments,
    networkStatus: status,
  };
}
