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
import { parseYaml } from "../conf/yaml.ts";

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
  ): Promise<{ config?: string; name: string; namespace: string } | null>;
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
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const NAD_PATH = "/apis/k8s.cni.cncf.io/v1";

/** How to reach the API server, once resolved. */
interface Connection {
  server: string;
  headers: Record<string, string>;
  client?: Deno.HttpClient;
  insecure: boolean;
}

const kubeconfigSchema = z.object({
  "current-context": z.optional(z.string()),
  clusters: z.optional(z.array(z.object({
    name: z.string(),
    cluster: z.object({
      server: z.string(),
      "certificate-authority": z.optional(z.string()),
      "certificate-authority-data": z.optional(z.string()),
      "insecure-skip-tls-verify": z.optional(z.boolean()),
    }),
  }))),
  users: z.optional(z.array(z.object({
    name: z.string(),
    user: z.optional(z.nullable(z.object({
      token: z.optional(z.string()),
      tokenFile: z.optional(z.string()),
      "client-certificate": z.optional(z.string()),
      "client-certificate-data": z.optional(z.string()),
      "client-key": z.optional(z.string()),
      "client-key-data": z.optional(z.string()),
      username: z.optional(z.string()),
      password: z.optional(z.string()),
    }))),
  }))),
  contexts: z.optional(z.array(z.object({
    name: z.string(),
    context: z.object({ cluster: z.string(), user: z.optional(z.string()) }),
  }))),
});

const podSchema = z.object({
  metadata: z.object({
    annotations: z.optional(z.nullable(z.record(z.string(), z.string()))),
    uid: z.optional(z.string()),
  }),
});

const nadSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.optional(z.string()) }),
  spec: z.optional(z.nullable(z.object({ config: z.optional(z.string()) }))),
});

function apiError(msg: string, details?: string, cause?: unknown): CniError {
  return new CniError(Code.ApiFailure, msg, details, cause ? { cause } : undefined);
}

function decodeBase64(data: string): string {
  const bin = atob(data.replace(/\s+/g, ""));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

async function readPem(
  dir: string,
  file: string | undefined,
  data: string | undefined,
): Promise<string | undefined> {
  if (data) return decodeBase64(data);
  if (!file) return undefined;
  return await Deno.readTextFile(file.startsWith("/") ? file : `${dir}/${file}`);
}

/** Reads a kubeconfig's current context into a connection. */
async function fromKubeconfig(path: string): Promise<Connection> {
  const cfg = kubeconfigSchema.parse(await parseYaml(await Deno.readTextFile(path)));
  const ctxName = cfg["current-context"];
  const ctx = cfg.contexts?.find((c) => c.name === ctxName) ?? cfg.contexts?.[0];
  const clusterName = ctx?.context.cluster;
  const cluster = (cfg.clusters?.find((c) => c.name === clusterName) ?? cfg.clusters?.[0])?.cluster;
  if (!cluster) throw new Error(`no cluster for context "${ctxName ?? ""}"`);
  const user = cfg.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const ca = await readPem(
    dir,
    cluster["certificate-authority"],
    cluster["certificate-authority-data"],
  );
  const cert = await readPem(dir, user["client-certificate"], user["client-certificate-data"]);
  const key = await readPem(dir, user["client-key"], user["client-key-data"]);
  const headers: Record<string, string> = {};
  let token = user.token;
  if (!token && user.tokenFile) {
    const f = user.tokenFile.startsWith("/") ? user.tokenFile : `${dir}/${user.tokenFile}`;
    token = (await Deno.readTextFile(f)).trim();
  }
  if (token) headers.authorization = `Bearer ${token}`;
  else if (user.username !== undefined) {
    headers.authorization = `Basic ${btoa(`${user.username}:${user.password ?? ""}`)}`;
  }
  return {
    server: cluster.server.replace(/\/+$/, ""),
    headers,
    client: makeHttpClient(ca, cert, key),
    insecure: cluster["insecure-skip-tls-verify"] === true,
  };
}

function makeHttpClient(ca?: string, cert?: string, key?: string): Deno.HttpClient | undefined {
  if (!ca && !cert) return undefined;
  const opts: Deno.CreateHttpClientOptions = ca ? { caCerts: [ca] } : {};
  if (cert && key) return Deno.createHttpClient({ ...opts, cert, key });
  return Deno.createHttpClient(opts);
}

/** The pod's own service account (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt). */
async function fromServiceAccount(dir: string): Promise<Connection> {
  const host = Deno.env.get("KUBERNETES_SERVICE_HOST");
  const port = Deno.env.get("KUBERNETES_SERVICE_PORT") ?? "443";
  if (!host) throw new Error("KUBERNETES_SERVICE_HOST is not set");
  const token = (await Deno.readTextFile(`${dir}/token`)).trim();
  const ca = await Deno.readTextFile(`${dir}/ca.crt`).catch(() => undefined);
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${h}:${port}`,
    headers: { authorization: `Bearer ${token}` },
    client: makeHttpClient(ca),
    insecure: false,
  };
}

async function connect(opts: KubeClientOptions): Promise<Connection> {
  const inCluster = opts.inCluster ?? Deno.env.get("KUBERNETES_SERVICE_HOST") !== undefined;
  const source = opts.kubeconfig
    ? `kubeconfig "${opts.kubeconfig}"`
    : "the in-cluster service account";
  if (!opts.kubeconfig && !inCluster) {
    throw apiError("No Kubernetes API configured: no kubeconfig and not running in a cluster");
  }
  try {
    if (opts.kubeconfig) return await fromKubeconfig(opts.kubeconfig);
    return await fromServiceAccount(opts.serviceAccountDir ?? SA_DIR);
  } catch (err) {
    // Duck-typed rather than `instanceof z.core.$ZodError`: touching `z.core` would pull
    // all of zod's core (and its 400 KB of locales) into the bundle, on every CNI call.
    const issues = (err as { issues?: unknown }).issues;
    const text = Array.isArray(issues)
      ? z.prettifyError(err as Parameters<typeof z.prettifyError>[0])
      : (err as Error).message;
    throw apiError(`Cannot load Kubernetes credentials from ${source}`, text, err);
  }
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
      throw apiError(
        `Cannot reach the Kubernetes API at "${url}"${hint}`,
        (err as Error).message,
        err,
      );
    }
  }

  async function failed(method: string, path: string, res: Response): Promise<CniError> {
    const c = await conn!;
    const body = (await res.text()).slice(0, 1000);
    return apiError(
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
      throw apiError(`Kubernetes API GET "${path}" answered with invalid JSON`, String(err), err);
    }
  }

  function check<T>(schema: z.ZodMiniType<T>, v: unknown, path: string): T {
    const r = schema.safeParse(v);
    if (!r.success) {
      throw apiError(
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
      const out: { config?: string; name: string; namespace: string } = {
        name: nad.metadata.name,
        namespace: nad.metadata.namespace ?? ns,
      };
      if (nad.spec?.config) out.config = nad.spec.config;
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
