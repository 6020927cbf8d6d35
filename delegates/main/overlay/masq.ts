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

/** The chain's rules as `iptables -S` prints them (without the `-N` line). */
export function masqRules(cluster: string, subnet: string): string[] {
  const c = COMMENT.map((w) => (w.includes(" ") ? `"${w}"` : w)).join(" ");
  return [
    `-A ${MASQ_CHAIN} -s ${subnet} -d ${cluster} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} -s ${cluster} -d ${subnet} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} ! -s ${cluster} -d ${subnet} ${c} -j RETURN`,
    `-A ${MASQ_CHAIN} -s ${cluster} ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
    `-A ${MASQ_CHAIN} ! -s ${cluster} -d ${cluster} ${c} -j MASQUERADE --random-fully`,
  ];
}

const JUMP = ["POSTROUTING", ...COMMENT, "-j", MASQ_CHAIN];
const nat = (...args: string[]) => ["-w", "-t", "nat", ...args];

/**
 * Makes the chain hold exactly the rules for `cluster` and `subnet` and POSTROUTING jump to
 * it once.
 *
 * @throws {CniError} code 101 quoting the failing command, 2 when iptables is missing
 */
export async function ensureMasq(cluster: string, subnet: string): Promise<void> {
  const want = masqRules(cluster, subnet);
  const have = await runTool({}, "iptables", nat("-S", MASQ_CHAIN));
  if (!have.success && /not found$/.test(have.stderr)) {
    throw new CniError(
      Code.UnsupportedField,
      `Field "ipMasq" needs iptables, which is not installed`,
    );
  }
  const lines = have.stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("-A "));
  if (!have.success || lines.join("\n") !== want.join("\n")) {
    const script = ["*nat", `:${MASQ_CHAIN} - [0:0]`, ...want, "COMMIT", ""].join("\n");
    await fw({}, "iptables-restore", ["-w", "--noflush"], true, script);
  }
  const present = await runTool({}, "iptables", nat("-C", ...JUMP));
  if (!present.success) await fw({}, "iptables", nat("-A", ...JUMP));
}

/** Removes the jump and the chain; what is already gone is fine. */
export async function removeMasq(): Promise<void> {
  for (;;) {
    const del = await runTool({}, "iptables", nat("-D", ...JUMP));
    if (!del.success) break;
  }
  await runTool({}, "iptables", nat("-F", MASQ_CHAIN));
  await runTool({}, "iptables", nat("-X", MASQ_CHAIN));
}
