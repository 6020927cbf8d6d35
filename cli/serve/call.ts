/**
 * One call in `podplex serve`: whether the daemon may run it (same build, ready, same netns,
 * the same view of the files as the caller), and running it through the same dispatcher a
 * process would (`runCni` with the composition root's resolver) with stdout and stderr
 * captured. The caller's working directory travels with the call and its relative paths are
 * resolved against it; the daemon never changes its own.
 *
 * @module
 */
import { CniError } from "../../conf/errors.ts";
import { CURRENT_VERSION } from "../../conf/version.ts";
import type { Trace } from "../../conf/trace.ts";
import { type CniIo, runCni } from "../cni.ts";
import type { Root } from "../root.ts";
import { type CallFrame, PROTOCOL, type Reply } from "./protocol.ts";

/** The daemon's own namespace identity, compared with each call's. */
export interface NsIdentity {
  netns: bigint;
  mntns: bigint;
}

/** The calling process's netns and mount-ns inodes (needs --allow-all: Deno guards /proc). */
export function ownNamespaces(): NsIdentity {
  return {
    netns: BigInt(Deno.statSync("/proc/self/ns/net").ino ?? 0),
    mntns: BigInt(Deno.statSync("/proc/self/ns/mnt").ino ?? 0),
  };
}

/** What the daemon checks a call against. */
export interface CallContext {
  /** The daemon's build id (a client of another build is not served). */
  build: string;
  own: NsIdentity;
  root: Root;
  /** False before the daemon is ready and once it drains: calls go per call meanwhile. */
  ready(): boolean;
  /**
   * When the daemon's mount namespace differs from the caller's: why this call's paths do
   * not mean the same files to the daemon, or undefined when they do (`view.ts`). Without
   * it, a call from another mount namespace is never served.
   */
  viewProblem?(call: CallFrame): string | undefined;
}

/** A "not run" reply: the client runs podplex itself. */
export function notServed(why: string): Reply {
  return { status: PROTOCOL.notServed, stdout: "", stderr: why };
}

/** Why a call was sent back to run per call, as the metrics count it. */
export type FallbackReason =
  | "build"
  | "protocol"
  | "not_ready"
  | "netns"
  | "mount_namespace"
  | "paths"
  | "malformed"
  /** Frames still arriving held the daemon's whole buffer budget. */
  | "busy"
  /** The frame did not arrive whole within the read deadline. */
  | "slow";

/** A refusal: its reason and the sentence the client (and the log) get. */
export interface Refusal {
  reason: FallbackReason;
  why: string;
}

/**
 * Why the daemon must not run this call (the client then runs it per call, nothing lost),
 * or undefined when it may.
 */
export function refusal(call: CallFrame, ctx: CallContext): Refusal | undefined {
  const no = (reason: FallbackReason, why: string) => ({ reason, why });
  if (call.build !== ctx.build) {
    return no(
      "build",
      `the client is of build "${call.build}", the daemon of build "${ctx.build}"`,
    );
  }
  if (!ctx.ready()) return no("not_ready", "the daemon is not ready");
  // VERSION touches no netns and no file, and libcni's GetVersionInfo sends CNI_NETNS,
  // CNI_IFNAME and CNI_PATH as "dummy" (relative paths no view can share): only the build
  // decides its answer.
  if (call.env.CNI_COMMAND === "VERSION") return undefined;
  if (call.netns !== ctx.own.netns) {
    return no("netns", "wrong namespace: the caller is in another netns");
  }
  const cwd = call.env[PROTOCOL.cwdVariable];
  if (cwd !== undefined && !cwd.startsWith("/")) {
    return no("paths", `the caller's cwd "${cwd}" is not absolute`);
  }
  if (call.mntns === ctx.own.mntns) return undefined;
  if (!ctx.viewProblem) {
    return no("mount_namespace", "wrong namespace: the caller is in another mount namespace");
  }
  const problem = ctx.viewProblem(call);
  return problem === undefined ? undefined : no("paths", problem);
}

/**
 * Runs one call that passed {@linkcode refusal} through the CNI dispatcher, with stdout and
 * stderr captured.
 */
export async function runCall(
  call: CallFrame,
  root: Root,
  signal?: AbortSignal,
  trace?: Trace,
): Promise<Reply> {
  const { [PROTOCOL.cwdVariable]: cwd, ...env } = call.env;
  let stdout = "";
  let stderr = "";
  const argv0 = env.PODPLEX_ARGV0;
  const io: CniIo = {
    env,
    stdin: () => Promise.resolve(call.stdin),
    stdout: (s: string) => void (stdout += s),
    stderr: (s: string) => void (stderr += s),
    argv0,
    signal,
    trace,
  };
  // Relative paths (a conf's networksDir, CNI_NETNS) mean what they mean to the caller.
  if (cwd) io.cwd = cwd;
  try {
    const status = await runCni(io, root.resolver(argv0));
    return { status, stdout, stderr };
  } catch (e) {
    // runCni wraps errors itself; this is a last guard so the daemon never dies on a call.
    const err = CniError.wrap(e);
    stdout += JSON.stringify(err.toJSON(CURRENT_VERSION), null, 4) + "\n";
    return { status: 1, stdout, stderr };
  }
}
