/**
 * A stand-in for kube-apiserver, for tests only. No kube-apiserver can be installed on this
 * machine, so the Kubernetes client is tested against this small local server that speaks
 * exactly the endpoints podplex uses, with the API server's status codes and JSON shapes:
 *
 * - `GET  /api/v1/namespaces/<ns>/pods/<name>`
 * - `PATCH /api/v1/namespaces/<ns>/pods/<name>[/status]` (JSON merge patch of annotations)
 * - `GET  /apis/k8s.cni.cncf.io/v1/namespaces/<ns>/network-attachment-definitions/<name>`
 *
 * It listens on 127.0.0.1 on a free port, over HTTP or (given a cert and key) HTTPS, checks a
 * bearer token when one is set, records every request, can answer 409 to a number of PATCHes,
 * and can be stopped to simulate the API server going away.
 *
 * @module
 */

/** A request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
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
}

/** A running fake API server. */
export interface FakeKubeApi extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`. */
  url: string;
  /** Pods by `ns/name`. */
  pods: Map<string, { annotations: Record<string, string>; uid: string }>;
  /** NetworkAttachmentDefinition objects by `ns/name` (stored as the API returns them). */
  nads: Map<string, Record<string, unknown>>;
  requests: SeenRequest[];
  /** Answer this many of the next PATCHes with 409 Conflict. */
  conflicts: number;
  addPod(ns: string, name: string, annotations?: Record<string, string>): void;
  addNad(ns: string, name: string, config?: string): void;
  /** Stops listening (the API server goes away). */
  stop(): Promise<void>;
}

const POD = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/status)?$/;
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
    requests: [],
    conflicts: 0,
    addPod(ns, name, annotations = {}) {
      api.pods.set(`${ns}/${name}`, { annotations: { ...annotations }, uid: crypto.randomUUID() });
    },
    addNad(ns, name, config) {
      api.nads.set(`${ns}/${name}`, {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name, namespace: ns, uid: crypto.randomUUID() },
        spec: config === undefined ? {} : { config },
      });
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
      metadata: { name, namespace: ns, uid: pod.uid, annotations: pod.annotations },
      spec: { containers: [] },
      status: {},
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
    return Response.json(podJson(ns, name));
  }

  async function handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const seen: SeenRequest = {
      method: req.method,
      path,
      authorization: req.headers.get("authorization"),
      contentType: req.headers.get("content-type"),
    };
    if (req.method === "PATCH") seen.body = await req.json().catch(() => undefined);
    api.requests.push(seen);
    if (opts.token && seen.authorization !== `Bearer ${opts.token}`) {
      return status(401, "Unauthorized", "Unauthorized");
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

  const tls = opts.cert && opts.key ? { cert: opts.cert, key: opts.key } : {};
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      ...tls,
      onListen: ({ port }) => {
        // For HTTPS the certificate must name IP 127.0.0.1 (subjectAltName).
        api.url = `${opts.cert ? "https" : "http"}://127.0.0.1:${port}`;
        resolve(api);
      },
    }, handle);
    let stopped = false;
    api.stop = async () => {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
    };
  });
}
