/**
 * The few Kubernetes API calls podplex makes: read a pod's annotations, read a
 * NetworkAttachmentDefinition, and merge-patch the pod's annotations (network-status).
 * Plain `fetch` plus zod/mini; credentials come from a kubeconfig or the in-cluster service
 * account, and are read lazily on the first call so that a CNI call that never needs the
 * API never pays for it.
 *
 * Every failure is a `CniError` with `Code.ApiFailure` (104) naming the URL and the status,
 * so that callers can tell "the API failed" from "the pod's config is wrong".
 *
 * @module
 */
import * as z from "zod/mini";
import { CniError, Code } from "../../conf/errors.ts";
import { connect, type Connection } from "./_kube_auth.ts";
import { Redactor } from "./_secrets.ts";

/** What podplex needs from the Kubernetes API. */
export interface KubeClient {
  /**
   * The pod's annotations and uid; null when the pod does not exist (404). `uid` is the
   * one the runtime named: a cache answers only for that pod, else the API is asked.
   */
  getPod(
    ns: string,
    name: string,
    uid?: string,
  ): Promise<PodInfo | null>;
  /** A NetworkAttachmentDefinition's `spec.config`; null when it does not exist (404). */
  getNad(
    ns: string,
    name: string,
  ): Promise<
    | { config?: string; name: string; namespace: string; annotations?: Record<string, string> }
    | null
  >;
  /**
   * Merge-patches the pod's annotations (through `pods/status`, the subresource Multus writes
   * network-status through). Retries on 409; a missing pod (404) is not an error.
   */
  patchPodAnnotations(ns: string, name: string, annotations: Record<string, string>): Promise<void>;
}

/** A KubeClient that holds a TLS client; `close()` releases it. */
export interface ClosableKubeClient extends KubeClient, Disposable {
  close(): void;
  /**
   * The Node's pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`): empty when it has none yet
   * (the node controller has not given one), null when the Node does not exist.
   */
  getNodePodCidrs(name: string): Promise<string[] | null>;
  /**
   * LIST of a collection path: its items and the list's resourceVersion, and with `limit` in
   * the query the `continue` token of the next page (none on the last).
   */
  list(path: string): Promise<{ items: unknown[]; resourceVersion: string; continue?: string }>;
  /**
   * WATCH of a collection path (`watch=1` and the query already in `path`): the events as
   * the API server streams them, one JSON object a line, until the stream ends or `signal`
   * aborts.
   *
   * @throws {GoneError} when the server answers 410 (the resourceVersion is too old)
   */
  watch(path: string, signal: AbortSignal): AsyncIterable<WatchEvent>;
  /**
   * Creates an Event (core/v1) in namespace `ns` (the daemon's hot-plug tells a pod's
   * owner what changed, as Multus does).
   */
  createEvent(ns: string, event: Record<string, unknown>): Promise<void>;
}

/** One event of a watch stream. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

/** A watch refused with 410 Gone: list again. */
export class GoneError extends Error {}

/** A LIST answered 404: the API server serves no such collection (a CRD not installed). */
export class NotFoundError extends CniError {}

/** A pod object's annotations and uid (what {@linkcode KubeClient.getPod} gives). */
export type PodInfo = {
  annotations: Record<string, string>;
  uid?: string;
  /** Its metadata.deletionTimestamp is set: the pod is going away. */
  deleting?: true;
};

/** A NAD object's fields (what {@linkcode KubeClient.getNad} gives). */
export type NadInfo = {
  config?: string;
  name: string;
  namespace: string;
  annotations?: Record<string, string>;
};

/** Options of {@linkcode createKubeClient}. */
export interface KubeClientOptions {
  /** Path of a kubeconfig file; wins over in-cluster credentials. */
  kubeconfig?: string;
  /** Use the pod's service account (default: when KUBERNETES_SERVICE_HOST is set). */
  inCluster?: boolean;
  /** Per-request timeout, default 5000 ms. */
  timeoutMs?: number;
  /** Service account directory (tests), default `/var/run/secrets/kubernetes.io/serviceaccount`. */
  serviceAccountDir?: string;
  /** Attempts of a PATCH answered 409 (default 5). */
  conflictRetries?: number;
}

/** Where a pod's service account is mounted (token, ca.crt). */
export { SA_DIR } from "./_kube_auth.ts";
const NAD_PATH = "/apis/k8s.cni.cncf.io/v1";

const podSchema = z.object({
  metadata: z.object({
    annotations: z.optional(z.nullable(z.record(z.string(), z.string()))),
    uid: z.optional(z.string()),
    deletionTimestamp: z.optional(z.nullable(z.string())),
  }),
});

const nadSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.optional(z.string()),
    annotations: z.optional(z.record(z.string(), z.string())),
  }),
  spec: z.optional(z.nullable(z.object({ config: z.optional(z.string()) }))),
});

/**
 * An API failure (104) whose message and details went through the connection's redactor.
 * No cause is kept: a fetch error's message can quote a URL or a header.
 */
function apiError(c: Connection | undefined, msg: string, details?: string): CniError {
  const r = c?.redactor ?? new Redactor();
  return new CniError(Code.ApiFailure, r.redact(msg), r.redact(details));
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** A pod object's annotations and uid; undefined when it is not a pod object. */
export function podInfo(obj: unknown): PodInfo | undefined {
  const r = podSchema.safeParse(obj);
  if (!r.success) return undefined;
  const out: PodInfo = { annotations: r.data.metadata.annotations ?? {} };
  if (r.data.metadata.uid) out.uid = r.data.metadata.uid;
  if (r.data.metadata.deletionTimestamp) out.deleting = true;
  return out;
}

/** A NAD object's fields; undefined when it is not a NAD object. */
export function nadInfo(obj: unknown, ns?: string): NadInfo | undefined {
  const r = nadSchema.safeParse(obj);
  if (!r.success) return undefined;
  const nad = r.data;
  const out: NadInfo = { name: nad.metadata.name, namespace: nad.metadata.namespace ?? ns ?? "" };
  if (nad.spec?.config) out.config = nad.spec.config;
  if (nad.metadata.annotations) out.annotations = nad.metadata.annotations;
  return out;
}

/** The path of NADs: one namespace's, or every namespace's. */
export function nadsPath(ns?: string): string {
  return ns === undefined
    ? `${NAD_PATH}/network-attachment-definitions`
    : `${NAD_PATH}/namespaces/${enc(ns)}/network-attachment-definitions`;
}

/** Splits a byte stream into lines (a watch sends one JSON object a line). */
async function* lines(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  const dec = new TextDecoder();
  let rest = "";
  for await (const chunk of body) {
    rest += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl).trim();
      rest = rest.slice(nl + 1);
      if (line) yield line;
    }
  }
  if (rest.trim()) yield rest.trim();
}

/**
 * Creates a client for the Kubernetes API. Nothing is read until the first call.
 *
 * @example
 * ```ts
 * const api = createKubeClient({ kubeconfig: "/etc/cni/net.d/podplex.d/podplex.kubeconfig" });
 * const pod = await api.getPod("default", "web"); // null when gone
 * ```
 */
export function createKubeClient(opts: KubeClientOptions): ClosableKubeClient {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const retries = opts.conflictRetries ?? 5;
  let conn: Promise<Connection> | undefined;
  let resolved: Connection | undefined;

  async function request(
    method: string,
    path: string,
    body?: unknown,
    signal: AbortSignal = AbortSignal.timeout(timeoutMs),
    contentType = "application/merge-patch+json",
  ): Promise<Response> {
    conn ??= connect(opts).then((c) => (resolved = c));
    const c = await conn;
    const url = `${c.server}${path}`;
    const headers: Record<string, string> = { accept: "application/json", ...c.headers };
    if (body !== undefined) headers["content-type"] = contentType;
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        client: c.client,
        signal,
      });
    } catch (err) {
      // Deno has no per-client "skip verification"; say so rather than fail mysteriously.
      const hint = c.insecure ? ' ("insecure-skip-tls-verify" is not supported: give a CA)' : "";
      throw apiError(c, `Cannot reach the Kubernetes API at "${url}"${hint}`, String(err));
    }
  }

  async function failed(method: string, path: string, res: Response): Promise<CniError> {
    const c = await conn!;
    const body = (await res.text()).slice(0, 1000);
    return apiError(
      c,
      `Kubernetes API ${method} "${c.server}${path}" answered ${res.status} ${res.statusText}`
        .trim(),
      body,
    );
  }

  async function getJson(path: string): Promise<unknown | null> {
    const res = await request("GET", path);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw await failed("GET", path, res);
    try {
      return await res.json();
    } catch (err) {
      throw apiError(
        resolved,
        `Kubernetes API GET "${path}" answered with invalid JSON`,
        String(err),
      );
    }
  }

  function check<T>(schema: z.ZodMiniType<T>, v: unknown, path: string): T {
    const r = schema.safeParse(v);
    if (!r.success) {
      throw apiError(
        resolved,
        `Kubernetes API GET "${path}" answered an unexpected object`,
        z.prettifyError(r.error),
      );
    }
    return r.data;
  }

  const client: ClosableKubeClient = {
    async getPod(ns, name) {
      const path = `/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}`;
      const json = await getJson(path);
      if (json === null) return null;
      // The schema's error message only for an object that does not parse.
      return podInfo(json) ?? (check(podSchema, json, path), podInfo(json)!);
    },
    async getNad(ns, name) {
      const path = `${nadsPath(ns)}/${enc(name)}`;
      const json = await getJson(path);
      if (json === null) return null;
      return nadInfo(json, ns) ?? (check(nadSchema, json, path), nadInfo(json, ns)!);
    },
    async getNodePodCidrs(name) {
      const path = `/api/v1/nodes/${enc(name)}`;
      const json = await getJson(path);
      if (json === null) return null;
      const spec = (json as { spec?: { podCIDR?: unknown; podCIDRs?: unknown } }).spec ?? {};
      const list = Array.isArray(spec.podCIDRs) ? spec.podCIDRs : [spec.podCIDR];
      return list.filter((c): c is string => typeof c === "string" && c !== "");
    },
    async list(path) {
      const json = await getJson(path) as {
        items?: unknown;
        metadata?: { resourceVersion?: unknown; continue?: unknown };
      };
      if (json === null) {
        throw new NotFoundError(Code.ApiFailure, `Kubernetes API LIST "${path}" answered 404`);
      }
      const rv = json?.metadata?.resourceVersion;
      if (!json || !Array.isArray(json.items) || typeof rv !== "string") {
        throw apiError(resolved, `Kubernetes API LIST "${path}" answered an unexpected object`);
      }
      const next = json.metadata?.continue;
      return {
        items: json.items,
        resourceVersion: rv,
        ...(typeof next === "string" && next !== "" ? { continue: next } : {}),
      };
    },
    async *watch(path, signal) {
      const res = await request("GET", path, undefined, signal);
      if (res.status === 410) {
        await res.body?.cancel();
        throw new GoneError(`Kubernetes API WATCH "${path}" answered 410 Gone`);
      }
      if (!res.ok || !res.body) throw await failed("WATCH", path, res);
      for await (const line of lines(res.body)) {
        let ev: WatchEvent;
        try {
          ev = JSON.parse(line);
        } catch (err) {
          throw apiError(resolved, `Kubernetes API WATCH "${path}" sent invalid JSON`, String(err));
        }
        yield ev;
      }
    },
    async patchPodAnnotations(ns, name, annotations) {
      const path = `/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}/status`;
      const patch = { metadata: { annotations } };
      for (let attempt = 1;; attempt++) {
        const res = await request("PATCH", path, patch);
        if (res.ok || res.status === 404) {
          await res.body?.cancel();
          return;
        }
        if (res.status !== 409 || attempt >= retries) throw await failed("PATCH", path, res);
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    },
    async createEvent(ns, event) {
      const path = `/api/v1/namespaces/${enc(ns)}/events`;
      const res = await request("POST", path, event, undefined, "application/json");
      if (!res.ok) throw await failed("POST", path, res);
      await res.body?.cancel();
    },
    close() {
      resolved?.client?.close();
      resolved = undefined;
      conn = undefined;
    },
    [Symbol.dispose]() {
      client.close();
    },
  };
  return client;
}
