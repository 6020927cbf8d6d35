/**
 * Credentials of the Kubernetes client: a kubeconfig's current context or the pod's service
 * account, read through the bounded reader (regular files only, size-capped), turned into a
 * {@linkcode Connection} whose {@linkcode Redactor} knows every secret it holds. A failure
 * to load them is code 104 with a message that quotes no secret: a kubeconfig that does not
 * parse is reported by position, never by the excerpt of the line.
 *
 * @module
 */
import * as z from "zod/mini";
import { readBoundedTextSync, readRequiredTextSync } from "../../conf/bounded_read.ts";
import { CniError, Code } from "../../conf/errors.ts";
import { parseYaml, yamlErrorSummary } from "../../conf/yaml.ts";
import { Redactor, splitUserinfo } from "./_secrets.ts";

/** How to reach the API server, once resolved. */
export interface Connection {
  /** The server URL without userinfo (safe to print). */
  server: string;
  headers: Record<string, string>;
  client?: Deno.HttpClient;
  insecure: boolean;
  /** Knows this connection's secrets; every message about the API goes through it. */
  redactor: Redactor;
}

/** Where to load credentials from. */
export interface AuthOptions {
  kubeconfig?: string;
  inCluster?: boolean;
  serviceAccountDir?: string;
}

/** Where a pod's service account is mounted (token, ca.crt). */
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Kubeconfigs and the files they name are small; a larger one is a mistake. */
const MAX_CREDENTIAL_BYTES = 256 * 1024;

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

type User = NonNullable<NonNullable<z.infer<typeof kubeconfigSchema>["users"]>[number]["user"]>;

function readCredential(path: string, what: string): string {
  return readRequiredTextSync(path, { what, maxBytes: MAX_CREDENTIAL_BYTES });
}

function decodeBase64(data: string, field: string): string {
  let bin: string;
  try {
    bin = atob(data.replace(/\s+/g, ""));
  } catch {
    throw new Error(`"${field}" is not base64`);
  }
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function readPem(
  dir: string,
  field: string,
  file: string | undefined,
  data: string | undefined,
): string | undefined {
  if (data) return decodeBase64(data, `${field}-data`);
  if (!file) return undefined;
  return readCredential(file.startsWith("/") ? file : `${dir}/${file}`, `"${field}" file`);
}

function makeHttpClient(ca?: string, cert?: string, key?: string): Deno.HttpClient | undefined {
  if (!ca && !cert) return undefined;
  const opts: Deno.CreateHttpClientOptions = ca ? { caCerts: [ca] } : {};
  if (cert && key) return Deno.createHttpClient({ ...opts, cert, key });
  return Deno.createHttpClient(opts);
}

/** The Authorization header of a user (token, else basic auth), its secrets remembered. */
function authorization(
  user: User,
  dir: string,
  urlAuth: { username?: string; password?: string },
  redactor: Redactor,
): string | undefined {
  let token = user.token;
  if (!token && user.tokenFile) {
    const f = user.tokenFile.startsWith("/") ? user.tokenFile : `${dir}/${user.tokenFile}`;
    token = readCredential(f, `"tokenFile"`).trim();
  }
  redactor.add(token);
  if (token) return `Bearer ${token}`;
  // The server URL's userinfo counts when the user has none (Go's http client does so).
  const username = user.username ?? urlAuth.username;
  const password = user.username !== undefined ? user.password : urlAuth.password;
  if (username === undefined) return undefined;
  const basic = btoa(`${username}:${password ?? ""}`);
  redactor.add(password);
  redactor.add(basic);
  return `Basic ${basic}`;
}

/** Reads a kubeconfig's current context into a connection. */
async function fromKubeconfig(path: string, redactor: Redactor): Promise<Connection> {
  const text = readCredential(path, "kubeconfig");
  redactor.addFromKubeconfigText(text);
  let doc: unknown;
  try {
    doc = await parseYaml(text);
  } catch (err) {
    throw new Error(`invalid YAML: ${yamlErrorSummary(err)}`);
  }
  const cfg = kubeconfigSchema.parse(doc);
  const ctxName = cfg["current-context"];
  const ctx = cfg.contexts?.find((c) => c.name === ctxName) ?? cfg.contexts?.[0];
  const clusterName = ctx?.context.cluster;
  const cluster = (cfg.clusters?.find((c) => c.name === clusterName) ?? cfg.clusters?.[0])?.cluster;
  if (!cluster) throw new Error(`no cluster for context "${ctxName ?? ""}"`);
  const user = cfg.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
  redactor.add(user.password);
  redactor.add(user["client-key-data"]);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const url = splitUserinfo(cluster.server);
  redactor.add(url.password);
  const ca = readPem(
    dir,
    "certificate-authority",
    cluster["certificate-authority"],
    cluster["certificate-authority-data"],
  );
  const cert = readPem(
    dir,
    "client-certificate",
    user["client-certificate"],
    user["client-certificate-data"],
  );
  const key = readPem(dir, "client-key", user["client-key"], user["client-key-data"]);
  redactor.add(key);
  const headers: Record<string, string> = {};
  const auth = authorization(user, dir, url, redactor);
  if (auth) headers.authorization = auth;
  return {
    server: url.server.replace(/\/+$/, ""),
    headers,
    client: makeHttpClient(ca, cert, key),
    insecure: cluster["insecure-skip-tls-verify"] === true,
    redactor,
  };
}

/** The pod's own service account (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt). */
function fromServiceAccount(dir: string, redactor: Redactor): Connection {
  const host = Deno.env.get("KUBERNETES_SERVICE_HOST");
  const port = Deno.env.get("KUBERNETES_SERVICE_PORT") ?? "443";
  if (!host) throw new Error("KUBERNETES_SERVICE_HOST is not set");
  const token = readCredential(`${dir}/token`, "service account token").trim();
  redactor.add(token);
  const ca = readBoundedTextSync(`${dir}/ca.crt`, {
    what: "service account CA",
    maxBytes: MAX_CREDENTIAL_BYTES,
  }) ?? undefined;
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${h}:${port}`,
    headers: { authorization: `Bearer ${token}` },
    client: makeHttpClient(ca),
    insecure: false,
    redactor,
  };
}

function messageOf(err: unknown): string {
  // Duck-typed rather than `instanceof z.core.$ZodError`: touching `z.core` would pull
  // all of zod's core (and its 400 KB of locales) into the bundle, on every CNI call.
  const issues = (err as { issues?: unknown }).issues;
  if (Array.isArray(issues)) return z.prettifyError(err as Parameters<typeof z.prettifyError>[0]);
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads the credentials: the kubeconfig when given, else the service account in a cluster.
 *
 * @throws {CniError} code 104 naming the source; its message and details hold no secret
 */
export async function connect(opts: AuthOptions): Promise<Connection> {
  const inCluster = opts.inCluster ?? Deno.env.get("KUBERNETES_SERVICE_HOST") !== undefined;
  const source = opts.kubeconfig
    ? `kubeconfig "${opts.kubeconfig}"`
    : "the in-cluster service account";
  if (!opts.kubeconfig && !inCluster) {
    throw new CniError(
      Code.ApiFailure,
      "No Kubernetes API configured: no kubeconfig and not running in a cluster",
    );
  }
  const redactor = new Redactor();
  try {
    if (opts.kubeconfig) return await fromKubeconfig(opts.kubeconfig, redactor);
    return fromServiceAccount(opts.serviceAccountDir ?? SA_DIR, redactor);
  } catch (err) {
    // The cause is not kept: its message may quote what the redactor removed. A file that
    // is not a regular one (or too large) stays a config error (7), as for any conf file.
    const code = err instanceof CniError && err.code === Code.InvalidConfig
      ? Code.InvalidConfig
      : Code.ApiFailure;
    const msg = redactor.redact(`Cannot load Kubernetes credentials from ${source}`);
    throw new CniError(code, msg, redactor.redact(messageOf(err)));
  }
}
