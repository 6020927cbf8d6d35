/**
 * The node's masquerade for the cluster network (`ipMasq`, flannel's `--ip-masq`): one nat
 * chain, `PODPLEX-POSTRTG`, jumped to from POSTROUTING, with flannel's rules
 * (flannel-io/flannel pkg/trafficmngr/iptables masqRules):
 *
 * ```
 * -s <node subnet> -d <cluster> -j RETURN          pod to pod: never translated
 * -s <cluster> -d <node subnet> -j RETURN
 * ! -s <cluster> -d <node subnet> -j RETURN         the node (or outside) to its own pods
 * -s <cluster> ! -d 224.0.0.0/4 -j MASQUERADE       pods to outside the cluster network
 * ! -s <cluster> -d <cluster> -j MASQUERADE         the node to other nodes' pods
 * ```
 *
 * IPv6 gets the same chain in ip6tables' nat table, with `ff00::/8` as the multicast range
 * never masqueraded (flannel's masqIP6Rules).
 *
 * The chain is written whole with `iptables-restore --noflush` (declaring it flushes it), so a
 * node whose subnet changed never keeps the old rules; it is rewritten only when it differs.
 *
 * @module
 */
import { fw, runTool } from "../../_shared/fw.ts";
import { CniError, Code } from "../../../conf/errors.ts";

/** The chain's name. */
export const MASQ_CHAIN = "PODPLEX-POSTRTG";

const COMMENT = ["-m", "comment", "--comment", "podplex cluster masq"];

/** The chain's rules as `iptables -S` (`ip6tables -S`) prints them (without the `-N` line). */
export function masqRules(cluster: string, subnet: string, family: 4 | 6 = 4): string[] {
  const c = COMMENT.map((w) => (w.includes(" ") ? `"${w}"` : w)).join(" ");
  const mcast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
  return [
    `-A ${MASQ_CHAIN} -s ${subnet} -d ${cluster} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} -s ${cluster} -d ${subnet} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} ! -s ${cluster} -d ${subnet} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} -s ${cluster} ! -d ${mcast} ${c} -j MASQUERADE --random-fully`,
    `-A ${MASQ_CHAIN} ! -s ${cluster} -d ${cluster} ${c} -j MASQUERADE --random-fully`,
  ];
}

const JUMP = ["POSTROUTING", ...COMMENT, "-j", MASQ_CHAIN];
const nat = (...args: string[]) => ["-w", "-t", "nat", ...args];

const toolOf = (family: 4 | 6) => (family === 4 ? "iptables" : "ip6tables");

/**
 * Makes the chain of `family` hold exactly the rules for `cluster` and `subnet` and
 * POSTROUTING jump to it once.
 *
 * @throws {CniError} code 101 quoting the failing command, 2 when iptables is missing
 */
export async function ensureMasq(cluster: string, subnet: string, family: 4 | 6 = 4) {
  const tool = toolOf(family);
  const want = masqRules(cluster, subnet, family);
  const have = await runTool({}, tool, nat("-S", MASQ_CHAIN));
  if (!have.success && /not found$/.test(have.stderr)) {
    throw new CniError(
      Code.UnsupportedField,
      `Field "ipMasq" needs ${tool}, which is not installed`,
    );
  }
  const lines = have.stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("-A "));
  if (!have.success || lines.join("\n") !== want.join("\n")) {
    const script = ["*nat", `:${MASQ_CHAIN} - [0:0]`, ...want, "COMMIT", ""].join("\n");
    await fw({}, `${tool}-restore`, ["-w", "--noflush"], true, script);
  }
  const present = await runTool({}, tool, nat("-C", ...JUMP));
  if (!present.success) await fw({}, tool, nat("-A", ...JUMP));
}

/** Removes the jump and the chain of both families; what is already gone is fine. */
export async function removeMasq(): Promise<void> {
  for (const tool of ["iptables", "ip6tables"]) {
    for (;;) {
      const del = await runTool({}, tool, nat("-D", ...JUMP));
      if (!del.success) break;
    }
    await runTool({}, tool, nat("-F", MASQ_CHAIN));
    await runTool({}, tool, nat("-X", MASQ_CHAIN));
  }
}
