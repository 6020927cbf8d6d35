/**
 * The built-in `flannel` delegate: flannel-io/cni-plugin served in-process, so the conf
 * kube-flannel.yml installs works unchanged:
 *
 * ```json
 * { "name": "cbr0", "cniVersion": "0.3.1", "plugins": [
 *   { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true } },
 *   { "type": "portmap", "capabilities": { "portMappings": true } } ] }
 * ```
 *
 * As the reference: `subnetFile` (default `/run/flannel/subnet.env`, written by flanneld or
 * by podplex's node agent) gives the node's subnet; the `delegate` conf (type `bridge`
 * unless set; it may not set `name` or `ipam`) gets `name`, `cniVersion`, `ipMasq` = not
 * FLANNEL_IPMASQ and `mtu` = FLANNEL_MTU unless set, `isGateway` true for a bridge unless
 * set, the conf's `runtimeConfig`, and an `ipam` built from the conf's `ipam` (type
 * `host-local` unless set) with `ranges` = the node's subnets and `routes` = its routes plus
 * one per cluster network. That conf is kept in `dataDir` (default `/var/lib/cni/flannel`)
 * under the container id and used as is by DEL (a missing one is success).
 *
 * Where it differs: the delegate runs in-process when podplex has it built in; a missing
 * subnet.env is code 11 (try again later: the node agent has not joined yet), a malformed one
 * code 7; CHECK runs the delegate's CHECK with the kept conf (the reference does nothing).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { isObject } from "../../../conf/json.ts";
import type { CniResult } from "../../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../../types.ts";
import { bridgeWithoutDadAfterAdd } from "./bridge_dad.ts";
import { parseSubnetEnv, type SubnetEnv, writeFileAtomic } from "./subnet_env.ts";

type Obj = Record<string, unknown>;

/** The parsed `flannel` conf. */
export interface FlannelConf {
  name: string;
  cniVersion: string;
  subnetFile: string;
  dataDir: string;
  delegate: Obj;
  ipam?: Obj;
  runtimeConfig?: unknown;
}

const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);

function optString(raw: Obj, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw bad(`Invalid "${key}": ${JSON.stringify(v)} is not a string`);
  return v;
}

/**
 * Reads a flannel conf with the reference's checks.
 *
 * @throws {CniError} code 7 naming the field
 */
export function parseFlannelConf(raw: Obj): FlannelConf {
  const delegate = raw.delegate ?? {};
  if (!isObject(delegate)) {
    throw bad(`Invalid "delegate": ${JSON.stringify(delegate)} is not an object`);
  }
  if ("type" in delegate && typeof delegate.type !== "string") {
    throw bad(`'delegate' dictionary, if present, must have (string) 'type' field`);
  }
  if ("name" in delegate) {
    throw bad(`'delegate' dictionary must not have 'name' field, it'll be set by flannel`);
  }
  if ("ipam" in delegate) {
    throw bad(`'delegate' dictionary must not have 'ipam' field, it'll be set by flannel`);
  }
  if (raw.ipam !== undefined && raw.ipam !== null && !isObject(raw.ipam)) {
    throw bad(`Invalid "ipam": ${JSON.stringify(raw.ipam)} is not an object`);
  }
  const conf: FlannelConf = {
    name: optString(raw, "name") ?? "",
    cniVersion: optString(raw, "cniVersion") ?? "",
    subnetFile: optString(raw, "subnetFile") ?? "/run/flannel/subnet.env",
    dataDir: (optString(raw, "dataDir") ?? "/var/lib/cni/flannel").replace(/\/+$/, ""),
    delegate: { ...delegate },
  };
  if (isObject(raw.ipam)) conf.ipam = raw.ipam;
  if (raw.runtimeConfig !== undefined) conf.runtimeConfig = raw.runtimeConfig;
  return conf;
}

/**
 * Reads the subnet file.
 *
 * @throws {CniError} 11 when it does not exist yet, 7 when it is malformed, 5 otherwise
 */
export async function loadSubnetEnv(path: string): Promise<SubnetEnv> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const code = err instanceof Deno.errors.NotFound ? Code.TryAgainLater : Code.IoFailure;
    throw new CniError(
      code,
      `Cannot load flannel's subnet file "${path}": ${(err as Error).message}. ` +
        `Check the node agent (flannel or podplex serve --cluster-network) on this node`,
    );
  }
  return parseSubnetEnv(text, path);
}

/** The delegate conf the reference makes from the conf and the subnet file. */
export function delegateConf(c: FlannelConf, env: SubnetEnv): Obj {
  const d: Obj = { ...c.delegate, name: c.name };
  if (c.runtimeConfig !== undefined) d.runtimeConfig = c.runtimeConfig;
  if (!("type" in d)) d.type = "bridge";
  if (!("ipMasq" in d)) d.ipMasq = !env.ipMasq;
  if (!("mtu" in d)) d.mtu = env.mtu;
  if (d.type === "bridge" && !("isGateway" in d)) d.isGateway = true;
  if (c.cniVersion) d.cniVersion = c.cniVersion;
  const ipam: Obj = { ...(c.ipam ?? {}) };
  if (!("type" in ipam)) ipam.type = "host-local";
  const ranges: Obj[][] = [];
  if (env.subnet) ranges.push([{ subnet: env.subnet }]);
  if (env.subnet6) ranges.push([{ subnet: env.subnet6 }]);
  ipam.ranges = ranges;
  const routes = Array.isArray(ipam.routes) ? [...ipam.routes] : [];
  if (ipam.routes !== undefined && !Array.isArray(ipam.routes)) {
    throw bad(`Invalid "ipam.routes": ${JSON.stringify(ipam.routes)} is not a list`);
  }
  for (const n of env.networks) routes.push({ dst: n });
  ipam.routes = routes;
  d.ipam = ipam;
  return d;
}

function keptFile(c: FlannelConf, ctx: DelegateContext): string {
  return `${c.dataDir}/${ctx.env.containerId ?? ""}`;
}

function runner(ctx: DelegateContext) {
  if (!ctx.delegate) {
    throw new CniError(Code.Internal, "flannel needs a context that runs delegates");
  }
  return ctx.delegate;
}

async function add(c: FlannelConf, ctx: DelegateContext): Promise<CniResult> {
  const env = await loadSubnetEnv(c.subnetFile);
  const d = delegateConf(c, env);
  await Deno.mkdir(c.dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(keptFile(c, ctx), JSON.stringify(d), 0o600);
  const result = (await runner(ctx)("ADD", d))!;
  // Unlike the reference: the bridge's IPv6 addresses usable at once (bridge_dad.ts).
  if (env.subnet6 && d.type === "bridge") {
    bridgeWithoutDadAfterAdd(typeof d.bridge === "string" ? d.bridge : "cni0");
  }
  return result;
}

async function readKept(c: FlannelConf, ctx: DelegateContext): Promise<Obj | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(keptFile(c, ctx));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw CniError.wrap(err, Code.IoFailure, `Cannot read "${keptFile(c, ctx)}"`);
  }
  try {
    const j = JSON.parse(text);
    return isObject(j) ? j : undefined;
  } catch {
    return undefined; // as the reference: the interface stays until the node reboots
  }
}

async function del(c: FlannelConf, ctx: DelegateContext): Promise<void> {
  const d = await readKept(c, ctx);
  if (!d) return;
  await runner(ctx)("DEL", d);
  await Deno.remove(keptFile(c, ctx)).catch(() => {});
}

async function check(c: FlannelConf, ctx: DelegateContext): Promise<void> {
  const d = await readKept(c, ctx);
  if (d) await runner(ctx)("CHECK", d);
}

/** The built-in `flannel` delegate. */
export const flannel: BuiltinDelegate<FlannelConf> = {
  type: "flannel",
  parseConf: parseFlannelConf,
  add,
  del,
  check,
};
