/**
 * The conf of podplex's cluster network (type `podplex-cluster`), read by the CNI delegate
 * and by the node agent (`podplex serve --cluster-network FILE`), so that one file says
 * everything about the node's part of the overlay:
 *
 * | field | default | what |
 * |---|---|---|
 * | `etcdEndpoints` | (required) | etcd client URLs (a list, or one comma-separated string) |
 * | `etcdPrefix` | `/coreos.com/network` | flannel's key layout under it (see `network.ts`) |
 * | `etcdCaFile`, `etcdCertFile`, `etcdKeyFile` | | TLS to etcd |
 * | `etcdTimeoutMs` | 5000 | the bound of one etcd call |
 * | `network`, `subnetLen` | | the IPv4 cluster network, written to etcd when it has none (`Network`, `SubnetLen`) |
 * | `ipv6Network`, `ipv6SubnetLen` | | the IPv6 one, idem (`EnableIPv6`, `IPv6Network`, `IPv6SubnetLen`) |
 * | `vni`, `port` | 1, 8472 | the VXLAN backend, idem (etcd's config wins) |
 * | `backend` | `vxlan` | `vxlan` or `host-gw` (flannel's `Backend.Type`), idem |
 * | `directRouting` | false | vxlan: route to peers on the same subnet (`Backend.DirectRouting`), idem |
 * | `node` | `PODPLEX_NODE_NAME`, `NODENAME`, the host name | this node's name in its lease |
 * | `iface` | the link of `publicIp`, else the default-route link | the underlay |
 * | `publicIp` | the underlay's first IPv4 address | the address other nodes send VXLAN to |
 * | `publicIpv6` | the underlay's first global IPv6 address | idem over IPv6 (`PublicIPv6`) |
 * | `vtepName` | `podplex.<vni>` | the VXLAN device |
 * | `vtep6Name` | `podplex-v6.<vni>` | the IPv6 VXLAN device (flannel's `flannel-v6.<vni>`) |
 * | `bridge`, `hairpinMode` | `cni0`, false | the pods' bridge |
 * | `mtu` | underlay − 50 (− 70 with an IPv6 VTEP) | the overlay MTU (the VTEPs, the bridge and the pods) |
 * | `ipMasq` | false | masquerade traffic from pods leaving the cluster network |
 * | `leaseTtlSec` | 86400 | TTL of the node's subnet lease (kept alive by the agent) |
 * | `resyncSec` | 30 | the agent re-lists and re-checks the kernel this often |
 * | `dataDir` | `/var/lib/cni/podplex-cluster` | node state under `<dataDir>/<name>/` |
 * | `subnetFile` | `<dataDir>/<name>/subnet.env` | flannel's subnet.env, written by the agent |
 * | `ipam` | `{type: host-local}` | a base the node's subnet is put into, as flannel does |
 * | `kubeSubnetMgr` | false | the subnets are the Node's `spec.podCIDRs` (flannel's `--kube-subnet-mgr`) |
 * | `kubeconfig` | the podplex kubeconfig | the API server the Node is read from |
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { formatIp, tryParseCidr, tryParseIp } from "../../../conf/ip.ts";
import { isObject } from "../../../conf/json.ts";
import { confBool, confInt, confLinkName, confString } from "../../_shared/conf_read.ts";
import type { EtcdOptions } from "../../../clients/etcd/client.ts";
import { type BackendType, DEFAULT_PREFIX, FLANNEL_VXLAN_PORT } from "./network.ts";

type Obj = Record<string, unknown>;

/** The parsed conf. */
export interface ClusterNetConf {
  name: string;
  cniVersion: string;
  etcd: {
    endpoints: string[];
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    timeoutMs: number;
  };
  prefix: string;
  network?: string;
  subnetLen?: number;
  ipv6Network?: string;
  ipv6SubnetLen?: number;
  vni: number;
  port: number;
  /** The backend a config written from this conf names. */
  backend: BackendType;
  directRouting: boolean;
  node: string;
  iface?: string;
  publicIp?: string;
  publicIpv6?: string;
  vtepName?: string;
  /** The IPv6 VTEP (undefined when `podplex-v6.<vni>` is too long a name and none is set). */
  vtep6Name?: string;
  bridge: string;
  hairpinMode: boolean;
  mtu?: number;
  ipMasq: boolean;
  leaseTtlSec: number;
  resyncSec: number;
  /** `<dataDir>/<name>`: the node's state of this network. */
  stateDir: string;
  subnetFile: string;
  /** The base of the pods' IPAM section (`type` host-local unless given). */
  ipam: Obj;
  /** The subnet is the Node's `spec.podCIDR`, read from the API server (`kubeconfig`). */
  kubeSubnetMgr: boolean;
  /** The kubeconfig for `kubeSubnetMgr` (default: the one `podplex install` writes). */
  kubeconfig?: string;
}

/** Where the node state lives unless `dataDir` says otherwise. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/podplex-cluster";

const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);

/**
 * Reads and defaults the conf.
 *
 * @param raw the conf object (a CNI conf: `name` required)
 * @param env the process env for the node name (default: Deno.env)
 * @throws {CniError} code 7 naming the field and value
 */
export function parseClusterNetConf(
  raw: Obj,
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): ClusterNetConf {
  const name = confString(raw, "name");
  if (!name) throw bad(`Missing "name": the cluster network needs a name`);
  const vni = confInt(raw, "vni", 1, 0xffffff) ?? 1;
  const dataDir = (confString(raw, "dataDir") ?? DEFAULT_DATA_DIR).replace(/\/+$/, "");
  const stateDir = `${dataDir}/${name}`;
  const conf: ClusterNetConf = {
    name,
    cniVersion: confString(raw, "cniVersion") ?? "0.1.0",
    etcd: etcdOf(raw),
    prefix: (confString(raw, "etcdPrefix") ?? DEFAULT_PREFIX).replace(/\/+$/, ""),
    vni,
    port: confInt(raw, "port", 1, 65535) ?? FLANNEL_VXLAN_PORT,
    backend: backendOf(raw),
    directRouting: confBool(raw, "directRouting"),
    node: confString(raw, "node") ?? nodeName(env),
    bridge: confLinkName(raw, "bridge") ?? "cni0",
    hairpinMode: confBool(raw, "hairpinMode"),
    ipMasq: confBool(raw, "ipMasq"),
    leaseTtlSec: confInt(raw, "leaseTtlSec", 2, 10 * 365 * 86400) ?? 86400,
    resyncSec: confInt(raw, "resyncSec", 1, 86400) ?? 30,
    stateDir,
    subnetFile: confString(raw, "subnetFile") ?? `${stateDir}/subnet.env`,
    ipam: ipamBase(raw),
    kubeSubnetMgr: confBool(raw, "kubeSubnetMgr"),
  };
  const kubeconfig = confString(raw, "kubeconfig");
  if (kubeconfig) conf.kubeconfig = kubeconfig;
  const network = confString(raw, "network");
  if (network !== undefined) {
    const c = tryParseCidr(network);
    if (!c || c.family !== 4) throw bad(`Invalid "network": "${network}" is not an IPv4 CIDR`);
    conf.network = network;
  }
  const subnetLen = confInt(raw, "subnetLen", 1, 30);
  if (subnetLen !== undefined) conf.subnetLen = subnetLen;
  const network6 = confString(raw, "ipv6Network");
  if (network6 !== undefined) {
    const c = tryParseCidr(network6);
    if (!c || c.family !== 6) {
      throw bad(`Invalid "ipv6Network": "${network6}" is not an IPv6 CIDR`);
    }
    conf.ipv6Network = network6;
  }
  const subnetLen6 = confInt(raw, "ipv6SubnetLen", 1, 126);
  if (subnetLen6 !== undefined) conf.ipv6SubnetLen = subnetLen6;
  const publicIpv6 = confString(raw, "publicIpv6");
  if (publicIpv6 !== undefined) {
    const ip = tryParseIp(publicIpv6);
    if (ip?.family !== 6) {
      throw bad(`Invalid "publicIpv6": "${publicIpv6}" is not an IPv6 address`);
    }
    conf.publicIpv6 = formatIp(ip);
  }
  const iface = confLinkName(raw, "iface");
  if (iface) conf.iface = iface;
  const publicIp = confString(raw, "publicIp");
  if (publicIp !== undefined) {
    if (tryParseIp(publicIp)?.family !== 4) {
      throw bad(`Invalid "publicIp": "${publicIp}" is not an IPv4 address`);
    }
    conf.publicIp = publicIp;
  }
  const vtepName = confLinkName(raw, "vtepName") ?? defaultVtepName(vni);
  conf.vtepName = vtepName;
  const vtep6Name = confLinkName(raw, "vtep6Name") ?? `podplex-v6.${vni}`;
  if (vtep6Name.length <= 15) conf.vtep6Name = vtep6Name;
  const mtu = confInt(raw, "mtu", 576, 65535);
  if (mtu !== undefined) conf.mtu = mtu;
  return conf;
}

function backendOf(raw: Obj): BackendType {
  const b = confString(raw, "backend") ?? "vxlan";
  if (b !== "vxlan" && b !== "host-gw") {
    throw bad(`Invalid "backend": "${b}" (podplex serves "vxlan" and "host-gw")`);
  }
  if (b === "host-gw" && confBool(raw, "directRouting")) {
    throw bad(`Invalid "directRouting": it is a vxlan option, and "backend" is "host-gw"`);
  }
  return b;
}

/** `podplex.<vni>` (15 bytes at most: a VNI of 8 digits needs `vtepName`). */
function defaultVtepName(vni: number): string {
  const name = `podplex.${vni}`;
  if (name.length > 15) {
    throw bad(`Missing "vtepName": "${name}" is longer than a link name may be; name the VTEP`);
  }
  return name;
}

function etcdOf(raw: Obj): ClusterNetConf["etcd"] {
  const v = raw.etcdEndpoints;
  let endpoints: string[];
  if (typeof v === "string") endpoints = v.split(",").map((s) => s.trim()).filter(Boolean);
  else if (Array.isArray(v) && v.every((e) => typeof e === "string" && e)) endpoints = v;
  else if (v === undefined) endpoints = [];
  else throw bad(`Invalid "etcdEndpoints": ${JSON.stringify(v)} is not a list of URLs`);
  if (endpoints.length === 0) {
    throw bad(`Missing "etcdEndpoints": the cluster network keeps its leases in etcd`);
  }
  const out: ClusterNetConf["etcd"] = {
    endpoints,
    timeoutMs: confInt(raw, "etcdTimeoutMs", 100, 600_000) ?? 5000,
  };
  const ca = confString(raw, "etcdCaFile");
  const cert = confString(raw, "etcdCertFile");
  const key = confString(raw, "etcdKeyFile");
  if (!!cert !== !!key) {
    throw bad(`Invalid "etcdCertFile": a client certificate needs "etcdKeyFile" too`);
  }
  if (ca) out.caFile = ca;
  if (cert) out.certFile = cert;
  if (key) out.keyFile = key;
  return out;
}

function ipamBase(raw: Obj): Obj {
  const ipam = raw.ipam;
  if (ipam === undefined || ipam === null) return { type: "host-local" };
  if (!isObject(ipam)) throw bad(`Invalid "ipam": ${JSON.stringify(ipam)} is not an object`);
  for (const k of ["ranges", "subnet"]) {
    if (k in ipam) {
      throw bad(`Invalid "ipam.${k}": the node's subnet is set by the cluster network`);
    }
  }
  return { type: "host-local", ...ipam };
}

/** The node's name: `PODPLEX_NODE_NAME`, `NODENAME`, else the host name. */
function nodeName(env: (k: string) => string | undefined): string {
  try {
    return env("PODPLEX_NODE_NAME") || env("NODENAME") || Deno.hostname();
  } catch {
    return "localhost";
  }
}

/**
 * The etcd client options of a conf (TLS files read here).
 *
 * @throws {CniError} code 7 when a TLS file cannot be read
 */
export async function etcdOptions(c: ClusterNetConf): Promise<EtcdOptions> {
  const read = async (path: string | undefined, field: string) => {
    if (!path) return undefined;
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw bad(`Invalid "${field}": cannot read "${path}": ${(err as Error).message}`);
    }
  };
  const opts: EtcdOptions = {
    endpoints: c.etcd.endpoints,
    totalTimeoutMs: c.etcd.timeoutMs,
    requestTimeoutMs: Math.min(2000, c.etcd.timeoutMs),
  };
  if (c.etcd.caFile || c.etcd.certFile) {
    opts.tls = {
      ca: await read(c.etcd.caFile, "etcdCaFile"),
      cert: await read(c.etcd.certFile, "etcdCertFile"),
      key: await read(c.etcd.keyFile, "etcdKeyFile"),
    };
  }
  return opts;
}
