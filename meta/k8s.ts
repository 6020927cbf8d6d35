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
import { CniError, Code } from "../conf/errors.ts";
import { connect, type Connection } from "./_kube_auth.ts";
import { Redactor } from "./_secrets.ts";

/** What podplex needs from the Kubernetes API. */
export interface KubeClient {
  /** The pod's annotations and uid; null when the pod does not exist (404). */
  getPod(
    ns: string,
    name: string,
  ): Promise<{ annotations: Record<string, string>; uid?: string } | null>;
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
}

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

  async function request(method: string, path: string, body?: unknown): Promise<Response> {
    conn ??= connect(opts).then((c) => (resolved = c));
    const c = await conn;
    const url = `${c.server}${path}`;
    const headers: Record<string, string> = { accept: "application/json", ...c.headers };
    if (body !== undefined) headers["content-type"] = "application/merge-patch+json";
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        client: c.client,
        signal: AbortSignal.timeout(timeoutMs),
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
      const pod = check(podSchema, json, path);
      const out: { annotations: Record<string, string>; uid?: string } = {
        annotations: pod.metadata.annotations ?? {},
      };
      if (pod.metadata.uid) out.uid = pod.metadata.uid;
      return out;
    },
    async getNad(ns, name) {
      const path = `${NAD_PATH}/namespaces/${enc(ns)}/network-attachment-definitions/${enc(name)}`;
      const json = await getJson(path);
      if (json === null) return null;
      const nad = check(nadSchema, json, path);
      const out: {
        config?: string;
        name: string;
        namespace: string;
        annotations?: Record<string, string>;
      } = { name: nad.metadata.name, namespace: nad.metadata.namespace ?? ns };
      if (nad.spec?.config) out.config = nad.spec.config;
      if (nad.metadata.annotations) out.annotations = nad.metadata.annotations;
      return out;
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
