/**
 * `ipMasq`: masquerading a container's addresses as the reference plugins do (a per-container
 * iptables chain named from a hash of network name + container id), or with nftables rules
 * tagged with that chain name when iptables is not installed.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { canonicalNet, familyOf } from "./cidr.ts";
import { fw, runTool } from "./fw.ts";
import type { HostOptions } from "./link_common.ts";

/** Which firewall tool programs masquerading. */
export type MasqBackend = "iptables" | "nftables";

const NFT_TABLE = "podplex_masquerade";

/**
 * The per-container chain name the reference plugins use: `CNI-` + the first 24 hex chars of
 * sha512(network name + container id), 28 chars (iptables' limit).
 */
export async function masqChain(network: string, containerId: string): Promise<string> {
  const data = new TextEncoder().encode(network + containerId);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-512", data));
  const hex = Array.from(hash.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
  return `CNI-${hex}`;
}

/** The rule comment the reference plugins use (Go's `name: %q id: %q`). */
export function masqComment(network: string, containerId: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
}

/** Whether `tool` is a file in a `PATH` directory. */
function installed(tool: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/sbin").split(":")) {
    try {
      if (dir && Deno.statSync(`${dir}/${tool}`).isFile) return true;
    } catch { /* not in this directory */ }
  }
  return false;
}

/** iptables when installed (as the reference), else nftables when nft is; else undefined. */
export function findMasqBackend(): MasqBackend | undefined {
  if (installed("iptables")) return "iptables";
  if (installed("nft")) return "nftables";
  return undefined;
}

/**
 * The backend ADD masquerades with: iptables when installed (as the reference), else nftables.
 *
 * @throws {CniError} code 2 when neither iptables nor nft is installed
 */
export function detectMasqBackend(): MasqBackend {
  const backend = findMasqBackend();
  if (!backend) {
    throw new CniError(
      Code.UnsupportedField,
      `Field "ipMasq" needs iptables or nft, and neither is installed`,
    );
  }
  return backend;
}

async function ipt(opts: HostOptions, fam: 4 | 6, args: string[], check = true): Promise<string> {
  return await fw(opts, fam === 4 ? "iptables" : "ip6tables", ["-w", "-t", "nat", ...args], check);
}

async function appendUnique(opts: HostOptions, fam: 4 | 6, chain: string, rule: string[]) {
  if (!(await ruleExists(opts, fam, chain, rule))) await ipt(opts, fam, ["-A", chain, ...rule]);
}

async function ruleExists(opts: HostOptions, fam: 4 | 6, chain: string, rule: string[]) {
  const tool = fam === 4 ? "iptables" : "ip6tables";
  return (await runTool(opts, tool, ["-w", "-t", "nat", "-C", chain, ...rule])).success;
}

/**
 * Masquerades traffic from each address of `cidrs` to anything outside its own network and
 * outside multicast, through a per-container chain (iptables) or rules tagged with the chain
 * name (nftables).
 */
export async function setupMasq(
  opts: HostOptions,
  backend: MasqBackend,
  cidrs: string[],
  chain: string,
  comment: string,
): Promise<void> {
  for (const cidr of cidrs) {
    const fam = familyOf(cidr);
    const ip = cidr.split("/")[0];
    const mcast = fam === 4 ? "224.0.0.0/4" : "ff00::/8";
    if (backend === "nftables") {
      await nftMasq(opts, fam, ip, canonicalNet(cidr), mcast, chain);
      continue;
    }
    if (!(await ipt(opts, fam, ["-S", chain], false))) await ipt(opts, fam, ["-N", chain]);
    const tag = ["-m", "comment", "--comment", comment];
    await appendUnique(opts, fam, chain, ["-d", canonicalNet(cidr), "-j", "ACCEPT", ...tag]);
    await appendUnique(opts, fam, chain, ["!", "-d", mcast, "-j", "MASQUERADE", ...tag]);
    await appendUnique(opts, fam, "POSTROUTING", ["-s", ip, "-j", chain, ...tag]);
  }
}

async function nftMasq(
  opts: HostOptions,
  fam: 4 | 6,
  ip: string,
  net: string,
  mcast: string,
  tag: string,
) {
  const p = fam === 4 ? "ip" : "ip6";
  const script = [
    `add table inet ${NFT_TABLE}`,
    `add chain inet ${NFT_TABLE} postrouting { type nat hook postrouting priority srcnat; }`,
    `add rule inet ${NFT_TABLE} postrouting ${p} saddr ${ip} ${p} daddr != ${net} ${p} daddr != ${mcast} masquerade comment "${tag}"`,
  ].join("\n");
  await fw(opts, "nft", [script]);
}

/**
 * Removes what {@linkcode setupMasq} added for `chain`, for both families, without needing the
 * container's addresses (they are gone when the link was deleted first). Missing rules are fine.
 */
export async function teardownMasq(
  opts: HostOptions,
  backend: MasqBackend,
  chain: string,
): Promise<void> {
  if (backend === "nftables") return await nftUnmasq(opts, chain);
  for (const fam of [4, 6] as const) {
    // By rule, never by line number: another pod's teardown may renumber the chain between
    // a listing and a delete (two DELs at once removed each other's rules).
    const listing = await ipt(opts, fam, ["-S", "POSTROUTING"], false);
    for (const line of listing.split("\n")) {
      const rule = splitRuleSpec(line);
      if (rule[0] !== "-A" || rule[1] !== "POSTROUTING") continue;
      if (rule[rule.indexOf("-j") + 1] !== chain) continue;
      await ipt(opts, fam, ["-D", "POSTROUTING", ...rule.slice(2)], false);
    }
    if (await ipt(opts, fam, ["-S", chain], false)) {
      await ipt(opts, fam, ["-F", chain]);
      await ipt(opts, fam, ["-X", chain]);
    }
  }
}

/**
 * One line of `iptables -S` as its arguments: split on spaces outside double quotes; inside
 * them a backslash escapes the next character (how iptables prints a comment).
 */
export function splitRuleSpec(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted && c === "\\" && i + 1 < line.length) cur += line[++i];
    else if (c === '"') {
      quoted = !quoted;
      any = true;
    } else if (c === " " && !quoted) {
      if (cur !== "" || any) out.push(cur);
      cur = "";
      any = false;
    } else cur += c;
  }
  if (cur !== "" || any) out.push(cur);
  return out;
}

async function nftUnmasq(opts: HostOptions, tag: string) {
  const list = ["-a", "list", "chain", "inet", NFT_TABLE, "postrouting"];
  const listing = await fw(opts, "nft", list, false);
  for (const line of listing.split("\n")) {
    const m = /comment "([^"]+)" # handle (\d+)/.exec(line);
    if (m && m[1] === tag) {
      const del = ["delete", "rule", "inet", NFT_TABLE, "postrouting", "handle", m[2]];
      await fw(opts, "nft", del, false);
    }
  }
}
