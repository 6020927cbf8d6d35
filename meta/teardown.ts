/**
 * Undoing attachments: the meta-plugin's DEL, the rollback of a failed ADD, and GC's
 * removal of stale attachments all come here.
 *
 * A pod is torn down in one RCU grace period: every container-side link the built-in
 * delegates made carries the pod's link group, and one RTM_DELLINK by group removes them
 * all (DESIGN.md: 5 veths by group 19 ms, one by one 110 ms). The delegates' DELs then find
 * their links gone, as an idempotent DEL must, and release their IPAM. Chains that need the
 * live link on DEL (an external plugin, a DHCP release) are DELeted before the group goes.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { type ConfList, parseConfOrList } from "../conf/netconf.ts";
import { toCanonical } from "../conf/result.ts";
import { type ChainOptions, runChain } from "../delegates/runner/chain.ts";
import type { MetaCall } from "./context.ts";
import type { AttachmentState, PodState } from "./state.ts";

/** One attachment that could not be released, and why. */
export interface DelFailure {
  att: AttachmentState;
  error: CniError;
}

/**
 * DELs every attachment of `state` in reverse order, best-effort: each one is tried even
 * when another fails.
 *
 * @returns what could not be released (empty when everything was)
 */
export async function delAttachments(call: MetaCall, state: PodState): Promise<DelFailure[]> {
  const failures: DelFailure[] = [];
  const parsed = [...state.attachments].reverse().map((att) => parseAttachment(att, failures));
  const safe = await Promise.all(parsed.map((p) => p.list ? groupSafe(p.list, call) : false));
  const needsLiveLink = parsed.filter((p, i) => p.list && !safe[i]);
  const rest = parsed.filter((_, i) => safe[i]);
  for (const p of needsLiveLink) await delOne(call, state, p, failures);
  if (rest.length && state.linkGroup && state.netns) {
    try {
      await call.kernel.deleteLinkGroup(state.netns, state.linkGroup);
    } catch (e) {
      // Not fatal: each delegate's DEL still deletes its own link.
      call.log.debug(`Group delete of ${state.linkGroup} in "${state.netns}" failed: ${e}`);
    }
    call.trace.mark("group-del");
  }
  for (const [i, p] of rest.entries()) {
    await delOne(call, state, p, failures);
    if (call.trace.on) call.trace.mark(`att:${i}:end`);
  }
  return failures;
}

interface ParsedAttachment {
  att: AttachmentState;
  list?: ConfList;
}

/** Parses an attachment's conf once; a conf that does not parse is a failure of its own. */
function parseAttachment(att: AttachmentState, failures: DelFailure[]): ParsedAttachment {
  try {
    const list = parseConfOrList(att.confText);
    if (att.pluginsRan !== undefined) list.plugins = list.plugins.slice(0, att.pluginsRan);
    return { att, list };
  } catch (e) {
    failures.push({ att, error: delError(att, e) });
    return { att };
  }
}

function delError(att: AttachmentState, e: unknown): CniError {
  return CniError.wrap(e, Code.DelegateFailed, `DEL of network "${att.network}" ("${att.ifname}")`);
}

/**
 * The chain options that DEL or CHECK one remembered attachment as its ADD ran: the pod's
 * container and netns, the attachment's interface, CNI_ARGS and capability args, and its ADD
 * result as the cached result.
 */
export function attachmentChainOptions(
  call: MetaCall,
  state: Pick<PodState, "containerId" | "netns">,
  att: AttachmentState,
): ChainOptions {
  const opts: ChainOptions = {
    env: {
      ...call.env,
      containerId: state.containerId,
      netns: state.netns,
      ifname: att.ifname,
      args: att.cniArgs ?? call.env.args,
    },
    registry: call.registry,
    capabilityArgs: att.capabilityArgs,
    // The meta-plugin's own attachments: release everything that can be released.
    keepGoing: true,
  };
  if (att.result) opts.cachedResult = toCanonical(att.result, "1.1.0");
  return opts;
}

async function delOne(
  call: MetaCall,
  state: PodState,
  { att, list }: ParsedAttachment,
  failures: DelFailure[],
): Promise<void> {
  try {
    await runChain(list!, "DEL", attachmentChainOptions(call, state, att));
  } catch (e) {
    failures.push({ att, error: delError(att, e) });
  }
}

/**
 * Whether an attachment's links may go with the group delete before its DEL runs: every
 * plugin of its chain runs in-process (built-ins put their container links in the group and
 * treat a missing link as done) and neither a plugin nor its IPAM needs the link on DEL.
 * A type that cannot be resolved is not safe: its DEL then runs first and reports why.
 */
async function groupSafe(list: ConfList, call: MetaCall): Promise<boolean> {
  const types = list.plugins.flatMap((p) => {
    const ipam = (p.conf as { ipam?: { type?: unknown } }).ipam?.type;
    return typeof ipam === "string" && ipam ? [p.type, ipam] : [p.type];
  });
  if (!types.every((t) => call.registry.inProcess(t))) return false;
  try {
    const plugins = await Promise.all(types.map((t) => call.registry.get(t, call.env.path)));
    return plugins.every((p) => !p.traits.delNeedsLink);
  } catch {
    return false;
  }
}
