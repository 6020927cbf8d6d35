/**
 * A stand-in for kube-apiserver, for tests only. No kube-apiserver can be installed on this
 * machine, so the Kubernetes client is tested against this small local server that speaks
 * exactly the endpoints podplex uses, with the API server's status codes and JSON shapes:
 *
 * - `GET  /api/v1/namespaces/<ns>/pods/<name>`
 * - `PATCH /api/v1/namespaces/<ns>/pods/<name>[/status]` (JSON merge patch of annotations)
 * - `GET  /apis/k8s.cni.cncf.io/v1/namespaces/<ns>/network-attachment-definitions/<name>`
 * - `GET  /api/v1/nodes/<name>` (its `spec.podCIDR` and `spec.podCIDRs`)
 * - `POST /api/v1/namespaces/<ns>/events` (kept in `events`, with a name from `generateName`)
 * - LIST and WATCH (resourceVersion, bookmarks, 410 Gone after a compaction) of
 *   `/api/v1/pods?fieldSelector=spec.nodeName=<node>` and of
 *   `/apis/k8s.cni.cncf.io/v1/network-attachment-definitions` (tests/_k8s_fake_watch.ts)
 * - LIST and WATCH of every pod (no fieldSelector), with the labels, `status.podIPs` and
 *   container ports a test gave them, and of the collections network policy watches
 *   ({@linkcode COLLECTIONS}: namespaces, NetworkPolicies, MultiNetworkPolicies as v1beta1 and
 *   v1beta2, the same objects as a CRD serving both versions), kept with `put`/`remove`
 *
 * It listens on 127.0.0.1 on a free port, over HTTP or (given a cert and key) HTTPS, checks a
 * bearer token when one is set, records every request, can answer 409 to a number of PATCHes,
 * and can be stopped to simulate the API server going away.
 *
 * @module
 */

import { WatchHub } from "./_k8s_fake_watch.ts";

/**
 * The collections kept by `put`/`remove`, by path: the kind they hold (both served versions
 * of MultiNetworkPolicy hold the same objects).
 */
export const COLLECTIONS: Readonly<Record<string, string>> = {
  "/api/v1/namespaces": "namespaces",
  "/apis/networking.k8s.io/v1/networkpolicies": "networkpolicies",
  "/apis/k8s.cni.cncf.io/v1beta1/multi-networkpolicies": "multi-networkpolicies",
  "/apis/k8s.cni.cncf.io/v1beta2/multi-networkpolicies": "multi-networkpolicies",
};

/** What a test gives a pod beyond its annotations (what policy looks at). */
export interface FakePodExtras {
  labels?: Record<string, string>;
  /** `status.podIPs` (kubelet writes them from the CNI result). */
  podIPs?: string[];
  /** Container ports (`spec.containers[0].ports`). */
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
}

/** A request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  /** The query string ("" when none). */
  query: string;
  authorization: string | null;
  contentType: string | null;
  body?: unknown;
}

/** Options of {@linkcode startFakeKubeApi}. */
export interface FakeKubeApiOptions {
  /** When set, requests without `Authorization: Bearer <token>` get 401. */
  token?: string;
  /** PEM server certificate and key: serve HTTPS. */
  cert?: string;
  key?: string;
  /** The address to listen on (default 127.0.0.1; a test's own underlay address for nodes). */
  hostname?: string;
}

/** A running fake API server. */
export interface FakeKubeApi extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`. */
  url: string;
  /** Pods by `ns/name` (nodeName: the node they run on, default "node-1"). */
  pods: Map<
    string,
    {
      annotations: Record<string, string>;
      uid: string;
      nodeName?: string;
      deleting?: string;
    } & FakePodExtras
  >;
  /** Objects of {@linkcode COLLECTIONS} by kind, then `ns/name` (`/name` cluster-scoped). */
  objects: Map<string, Map<string, Record<string, unknown>>>;
  /** Creates or replaces an object of a collection path of {@linkcode COLLECTIONS}. */
  put(path: string, obj: Record<string, unknown>): void;
  /** Deletes an object (`ns/name`, `/name` cluster-scoped) of a collection path. */
  remove(path: string, key: string): void;
  /** Changes what policy sees of a pod (a watch sees MODIFIED). */
  setPodExtras(ns: string, name: string, extras: FakePodExtras): void;
  /** Paths of {@linkcode COLLECTIONS} answered 404 (a CRD version not served). */
  notServed: Set<string>;
  /** Events created, in order. */
  events: Array<Record<string, unknown>>;
  /** NetworkAttachmentDefinition objects by `ns/name` (stored as the API returns them). */
  nads: Map<string, Record<string, unknown>>;
  /** Nodes by name: their `spec.podCIDRs` (the first is `spec.podCIDR`). */
  nodes: Map<string, string[]>;
  requests: SeenRequest[];
  /** Answer this many of the next PATCHes with 409 Conflict. */
  conflicts: number;
  /** Called when a PATCH of a pod's annotations has been applied (the bench times it). */
  onPatch?: (ns: string, name: string, annotations: Record<string, string>) => void;
  addPod(ns: string, name: string, annotations?: Record<string, string>, nodeName?: string): void;
  addNad(ns: string, name: string, config?: string): void;
  /** Changes a pod's annotations (a watch sees MODIFIED). */
  setPodAnnotations(ns: string, name: string, annotations: Record<string, string>): void;
  deletePod(ns: string, name: string): void;
  /** Sets the pod's deletionTimestamp (a graceful delete begins; a watch sees MODIFIED). */
  markPodDeleting(ns: string, name: string): void;
  deleteNad(ns: string, name: string): void;
  /** The resourceVersion history and open watches (compact, bookmark, expire, end). */
  watch: WatchHub;
  /** Stops listening (the API server goes away). */
  stop(): Promise<void>;
}

const NODE = /^\/api\/v1\/nodes\/([^/]+)$/;
const EVENTS = /^\/api\/v1\/namespaces\/([^/]+)\/events$/;
const POD = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/status)?$/;
const ALL_NADS = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";
const NAD =
  /^\/apis\/k8s\.cni\.cncf\.io\/v1\/namespaces\/([^/]+)\/network-attachment-definitions\/([^/]+)$/;

function status(code: number, reason: string, message: string): Response {
  // The API server's error body is a `Status` object.
  const body = { kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code };
  return Response.json(body, { status: code });
}

/** Starts the fake API server. Use with `await using api = await startFakeKubeApi()`. */
export function startFakeKubeApi(opts: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const api: FakeKubeApi = {
    url: "",
    pods: new Map(),
    nads: new Map(),
    nodes: new Map(),
    events: [],
    requests: [],
    conflicts: 0,
    watch: new WatchHub(),
    objects: new Map(),
    notServed: new Set(),
    put(path, obj) {
      const kind = COLLECTIONS[path];
      if (!kind) throw new Error(`No collection "${path}" in the fake API server`);
      const m = (obj.metadata ??= {}) as { namespace?: string; name: string; uid?: string };
      m.uid ??= crypto.randomUUID();
      const key = `${m.namespace ?? ""}/${m.name}`;
      const coll = api.objects.get(kind) ?? new Map();
      api.objects.set(kind, coll);
      const had = coll.has(key);
      coll.set(key, structuredClone(obj));
      api.watch.change(kind, had ? "MODIFIED" : "ADDED", coll.get(key)!);
    },
    remove(path, key) {
      const kind = COLLECTIONS[path];
      const obj = api.objects.get(kind)?.get(key);
      if (!obj) return;
      api.objects.get(kind)!.delete(key);
      api.watch.change(kind, "DELETED", obj);
    },
    setPodExtras(ns, name, extras) {
      Object.assign(api.pods.get(`${ns}/${name}`)!, structuredClone(extras));
      api.watch.change("pods", "MODIFIED", podJson(ns, name)!);
    },
    addPod(ns, name, annotations = {}, nodeName = "node-1") {
      const uid = crypto.randomUUID();
      api.pods.set(`${ns}/${name}`, { annotations: { ...annotations }, uid, nodeName });
      api.watch.change("pods", "ADDED", podJson(ns, name)!);
    },
    addNad(ns, name, config) {
      const nad = {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name, namespace: ns, uid: crypto.randomUUID() },
        spec: config === undefined ? {} : { config },
      };
      const had = api.nads.has(`${ns}/${name}`);
      api.nads.set(`${ns}/${name}`, nad);
      api.watch.change("nads", had ? "MODIFIED" : "ADDED", nad);
    },
    setPodAnnotations(ns, name, annotations) {
      api.pods.get(`${ns}/${name}`)!.annotations = { ...annotations };
      api.watch.change("pods", "MODIFIED", podJson(ns, name)!);
    },
    deletePod(ns, name) {
      const obj = podJson(ns, name);
      if (!obj) return;
      api.pods.delete(`${ns}/${name}`);
      api.watch.change("pods", "DELETED", obj);
    },
    markPodDeleting(ns, name) {
      api.pods.get(`${ns}/${name}`)!.deleting = new Date().toISOString();
      api.watch.change("pods", "MODIFIED", podJson(ns, name)!);
    },
    deleteNad(ns, name) {
      const obj = api.nads.get(`${ns}/${name}`);
      if (!obj) return;
      api.nads.delete(`${ns}/${name}`);
      api.watch.change("nads", "DELETED", obj);
    },
    stop: async () => {},
    async [Symbol.asyncDispose]() {
      await api.stop();
    },
  };

  function podJson(ns: string, name: string): Record<string, unknown> | null {
    const pod = api.pods.get(`${ns}/${name}`);
    if (!pod) return null;
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: ns,
        uid: pod.uid,
        annotations: { ...pod.annotations },
        resourceVersion: String(api.watch.rv),
        ...(pod.deleting ? { deletionTimestamp: pod.deleting } : {}),
        ...(pod.labels ? { labels: { ...pod.labels } } : {}),
      },
      spec: {
        containers: pod.ports ? [{ name: "c", ports: structuredClone(pod.ports) }] : [],
        nodeName: pod.nodeName,
      },
      status: pod.podIPs ? { podIP: pod.podIPs[0], podIPs: pod.podIPs.map((ip) => ({ ip })) } : {},
    };
  }

  function patchPod(ns: string, name: string, patch: unknown): Response {
    const pod = api.pods.get(`${ns}/${name}`);
    if (!pod) return status(404, "NotFound", `pods "${name}" not found`);
    if (api.conflicts > 0) {
      api.conflicts--;
      return status(409, "Conflict", `Operation cannot be fulfilled on pods "${name}"`);
    }
    const ann = (patch as { metadata?: { annotations?: Record<string, string | null> } })
      ?.metadata?.annotations ?? {};
    for (const [k, v] of Object.entries(ann)) {
      if (v === null) delete pod.annotations[k]; // JSON merge patch: null deletes
      else pod.annotations[k] = v;
    }
    api.watch.change("pods", "MODIFIED", podJson(ns, name)!);
    api.onPatch?.(ns, name, pod.annotations);
    return Response.json(podJson(ns, name));
  }

  /** An Event as the API server takes it: its namespace must be the path's. */
  function createEvent(ns: string, seen: SeenRequest): Response {
    const ev = seen.body as { metadata?: Record<string, unknown> } | undefined;
    if (seen.contentType !== "application/json" || !ev?.metadata) {
      return status(400, "BadRequest", "not an Event object");
    }
    if (ev.metadata.namespace !== undefined && ev.metadata.namespace !== ns) {
      return status(400, "BadRequest", "the namespace of the object does not match the path");
    }
    const name = ev.metadata.name ?? `${ev.metadata.generateName ?? ""}${crypto.randomUUID()}`;
    const stored = { ...ev, metadata: { ...ev.metadata, name, namespace: ns } };
    api.events.push(stored);
    return Response.json(stored, { status: 201 });
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const seen: SeenRequest = {
      method: req.method,
      path,
      query: url.search.replace(/^\?/, ""),
      authorization: req.headers.get("authorization"),
      contentType: req.headers.get("content-type"),
    };
    if (req.method === "PATCH" || req.method === "POST") {
      seen.body = await req.json().catch(() => undefined);
    }
    api.requests.push(seen);
    if (opts.token && seen.authorization !== `Bearer ${opts.token}`) {
      return status(401, "Unauthorized", "Unauthorized");
    }
    if (req.method === "GET" && (path === "/api/v1/pods" || path === ALL_NADS)) {
      return listOrWatch(url);
    }
    if (req.method === "GET" && Object.hasOwn(COLLECTIONS, path)) {
      if (api.notServed.has(path)) {
        return status(404, "NotFound", "the server could not find the requested resource");
      }
      const kind = COLLECTIONS[path];
      return api.watch.serve(url, kind, [...(api.objects.get(kind)?.values() ?? [])], () => true);
    }
    const events = EVENTS.exec(path);
    if (events && req.method === "POST") return createEvent(decodeURIComponent(events[1]), seen);
    const node = NODE.exec(path);
    if (node && req.method === "GET") {
      const name = decodeURIComponent(node[1]);
      const cidrs = api.nodes.get(name);
      if (!cidrs) return status(404, "NotFound", `nodes "${name}" not found`);
      const spec: Record<string, unknown> = cidrs.length
        ? { podCIDR: cidrs[0], podCIDRs: cidrs }
        : {};
      return Response.json({ apiVersion: "v1", kind: "Node", metadata: { name }, spec });
    }
    const pod = POD.exec(path);
    if (pod && req.method === "GET" && !pod[3]) {
      const json = podJson(decodeURIComponent(pod[1]), decodeURIComponent(pod[2]));
      return json ? Response.json(json) : status(404, "NotFound", `pods "${pod[2]}" not found`);
    }
    if (pod && req.method === "PATCH") {
      if (seen.contentType !== "application/merge-patch+json") {
        return status(415, "UnsupportedMediaType", `unsupported patch type "${seen.contentType}"`);
      }
      return patchPod(decodeURIComponent(pod[1]), decodeURIComponent(pod[2]), seen.body);
    }
    const nad = NAD.exec(path);
    if (nad && req.method === "GET") {
      const obj = api.nads.get(`${decodeURIComponent(nad[1])}/${decodeURIComponent(nad[2])}`);
      if (obj) return Response.json(obj);
      return status(
        404,
        "NotFound",
        `network-attachment-definitions.k8s.cni.cncf.io "${nad[2]}" not found`,
      );
    }
    return status(404, "NotFound", "the server could not find the requested resource");
  }

  /** LIST or WATCH of every pod (filtered by spec.nodeName) or every NAD. */
  function listOrWatch(url: URL): Response {
    if (url.pathname === ALL_NADS) {
      return api.watch.serve(url, "nads", [...api.nads.values()], () => true);
    }
    const sel = url.searchParams.get("fieldSelector") ?? "";
    const node = /^spec\.nodeName=(.*)$/.exec(sel)?.[1];
    if (sel && node === undefined) {
      return status(400, "BadRequest", `field selector "${sel}" is not supported`);
    }
    const objects = [...api.pods.keys()].map((k) => {
      const [ns, name] = k.split("/");
      return podJson(ns, name)!;
    });
    const keep = (o: Record<string, unknown>) =>
      node === undefined || (o.spec as { nodeName?: string })?.nodeName === node;
    return api.watch.serve(url, "pods", objects, keep);
  }

  const tls = opts.cert && opts.key ? { cert: opts.cert, key: opts.key } : {};
  return new Promise((resolve) => {
    const hostname = opts.hostname ?? "127.0.0.1";
    const server = Deno.serve({
      hostname,
      port: 0,
      ...tls,
      onListen: ({ port }) => {
        // For HTTPS the certificate must name IP 127.0.0.1 (subjectAltName).
        api.url = `${opts.cert ? "https" : "http"}://${hostname}:${port}`;
        resolve(api);
      },
    }, handle);
    let stopped = false;
    api.stop = async () => {
      if (stopped) return;
      stopped = true;
      api.watch.endWatches();
      await server.shutdown();
    };
  });
}
