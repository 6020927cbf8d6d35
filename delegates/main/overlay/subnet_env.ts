/**
 * flannel's `subnet.env` (flannel-io/flannel pkg/subnet WriteSubnetFile; read by
 * flannel-io/cni-plugin's loadFlannelSubnetEnv):
 *
 * ```
 * FLANNEL_NETWORK=10.244.0.0/16
 * FLANNEL_SUBNET=10.244.1.1/24
 * FLANNEL_MTU=1450
 * FLANNEL_IPMASQ=true
 * ```
 *
 * `FLANNEL_SUBNET` is the node subnet with its first address (the bridge's); in dual stack
 * `FLANNEL_IPV6_NETWORK=fd00:10:244::/56` and `FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64` follow
 * FLANNEL_SUBNET (IPv6 only: they alone). `FLANNEL_NETWORK` may list several networks, comma-separated.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { formatCidr, nextIp, tryParseCidr } from "../../../conf/ip.ts";
import { writeFileAtomic as writeWhole } from "../../../conf/io.ts";

/** A subnet.env's content. */
export interface SubnetEnv {
  /** Cluster networks (`10.244.0.0/16`), IPv4 and IPv6. */
  networks: string[];
  /** The node's IPv4 subnet as a network (`10.244.1.0/24`). */
  subnet?: string;
  /** The node's IPv6 subnet as a network. */
  subnet6?: string;
  mtu: number;
  ipMasq: boolean;
}

/**
 * The file's text for a node (what the agent writes), in flannel's key order:
 * FLANNEL_NETWORK, FLANNEL_SUBNET (IPv4), FLANNEL_IPV6_NETWORK, FLANNEL_IPV6_SUBNET (IPv6),
 * FLANNEL_MTU, FLANNEL_IPMASQ; a subnet as its first address (the bridge's) with its prefix.
 */
export function formatSubnetEnv(o: {
  network?: string;
  subnet?: string;
  network6?: string;
  subnet6?: string;
  mtu: number;
  ipMasq: boolean;
}): string {
  const first = (text: string) => {
    const sn = tryParseCidr(text)!;
    return formatCidr(nextIp(sn.network), sn.prefix);
  };
  let out = "";
  if (o.network && o.subnet) {
    out += `FLANNEL_NETWORK=${o.network}\nFLANNEL_SUBNET=${first(o.subnet)}\n`;
  }
  if (o.network6 && o.subnet6) {
    out += `FLANNEL_IPV6_NETWORK=${o.network6}\nFLANNEL_IPV6_SUBNET=${first(o.subnet6)}\n`;
  }
  return out + `FLANNEL_MTU=${o.mtu}\nFLANNEL_IPMASQ=${o.ipMasq}\n`;
}

/**
 * Parses a subnet.env as the flannel CNI plugin does: unknown lines ignored, the last value
 * of a key wins, `FLANNEL_IPMASQ` true only for `true`.
 *
 * @param path names the file in messages
 * @throws {CniError} code 7 naming the file and the bad or missing keys
 */
export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const seen = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) seen.set(line.slice(0, eq), line.slice(eq + 1).replace(/\r$/, ""));
  }
  const cidr = (key: string, v: string) => {
    const c = tryParseCidr(v.trim());
    if (!c) throw bad(`Invalid ${key} in "${path}": "${v}" is not a CIDR`);
    return formatCidr(c.network, c.prefix);
  };
  const networks: string[] = [];
  for (const key of ["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]) {
    const v = seen.get(key);
    if (v === undefined) continue;
    for (const part of v.split(",")) {
      const n = cidr(key, part);
      if (!networks.includes(n)) networks.push(n);
    }
  }
  const sub4 = seen.get("FLANNEL_SUBNET");
  const sub6 = seen.get("FLANNEL_IPV6_SUBNET");
  const mtuText = seen.get("FLANNEL_MTU");
  const masq = seen.get("FLANNEL_IPMASQ");
  const missing: string[] = [];
  if (networks.length === 0) missing.push("FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK");
  if (sub4 === undefined && sub6 === undefined) {
    missing.push("FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET");
  }
  if (mtuText === undefined) missing.push("FLANNEL_MTU");
  if (masq === undefined) missing.push("FLANNEL_IPMASQ");
  if (missing.length) throw bad(`"${path}" is missing ${missing.join(", ")}`);
  const mtu = Number(mtuText);
  if (!/^\d+$/.test(mtuText!) || mtu > 0xffffffff) {
    throw bad(`Invalid FLANNEL_MTU in "${path}": "${mtuText}" is not a number`);
  }
  const env: SubnetEnv = { networks, mtu, ipMasq: masq === "true" };
  if (sub4 !== undefined) env.subnet = cidr("FLANNEL_SUBNET", sub4);
  if (sub6 !== undefined) env.subnet6 = cidr("FLANNEL_IPV6_SUBNET", sub6);
  return env;
}

function bad(msg: string): CniError {
  return new CniError(Code.InvalidConfig, msg);
}

/** Writes `text` to `path` whole (`conf/io.ts`), mode 0644 unless given, dirs made 0755. */
export function writeFileAtomic(path: string, text: string, mode = 0o644): Promise<void> {
  return writeWhole(path, text, { mode, dirMode: 0o755 });
}
