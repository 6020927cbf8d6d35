/**
 * The CNI dispatcher: validates the CNI_* environment and the conf on stdin as the spec and
 * the Go skel do, runs the plugin serving the conf's `type`, and prints the result or the
 * error JSON. Env, stdin and stdout are injected so tests need no subprocess.
 *
 * @module
 */
import { parseCniArgs, validateCniArgs } from "../conf/cni_args.ts";
import { CniError, Code } from "../conf/errors.ts";
import { ifnameProblem } from "../conf/ifname.ts";
import { NO_TRACE, type Trace } from "../conf/trace.ts";
import { parseNetConf } from "../conf/netconf.ts";
import { resolveIn } from "../conf/paths.ts";
import { convertResult } from "../conf/result.ts";
import type { CniResult, Verb } from "../conf/types.ts";
import { inProcessRequest } from "../delegates/runner/builtin.ts";
import { atLeast, CURRENT_VERSION, SUPPORTED_VERSIONS } from "../conf/version.ts";
import type { Plugin, PluginEnv, PluginRequest } from "../delegates/types.ts";

/** What the dispatcher reads and writes. */
export interface CniIo {
  /** The process environment (CNI_* variables and the rest). */
  env: Record<string, string | undefined>;
  /** Reads the network config (stdin). */
  stdin: () => Promise<Uint8Array>;
  /** Writes the result or error JSON (stdout). */
  stdout: (s: string) => void;
  /** Writes diagnostics (stderr). */
  stderr: (s: string) => void;
  /** The name the program was run as (a symlink named after a built-in type). */
  argv0?: string;
  /** The call's timing marks (default: none). */
  trace?: Trace;
  /**
   * The caller's working directory, when it is not this process's (`podplex serve`):
   * relative paths of the call are resolved against it.
   */
  cwd?: string;
  /** Aborts when nobody waits for the call any more (`podplex serve`'s deadline). */
  signal?: AbortSignal;
}

/** Finds the plugin for a conf's `type`. */
export type Resolver = (type: string) => Promise<Plugin>;

type Command = Exclude<Verb, "VERSION">;

/** Which CNI_* variables each verb needs (CNI-NOTES; CNI_PATH optional where the spec says). */
export const REQUIRED_ENV: Record<Verb, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  GC: ["CNI_PATH"],
  STATUS: [],
  VERSION: [],
};

/** The lowest conf version that allows a verb (skel: code 1 below it). */
const MIN_VERSION: Partial<Record<Verb, string>> = { CHECK: "0.4.0", GC: "1.1.0", STATUS: "1.1.0" };

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** The VERSION answer (spec: the newest version and every supported one). */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/**
 * What a plugin run without CNI_COMMAND prints on stderr (skel's about string and its
 * "CNI protocol versions supported" line).
 */
export function aboutText(): string {
  return `podplex: a CNI meta-plugin (CNI spec ${CURRENT_VERSION})\n` +
    `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`;
}

/**
 * Checks CNI_CONTAINERID as libcni does.
 *
 * @throws {CniError} 4 when empty (skel: a missing variable) or when it has characters
 *   outside `[a-zA-Z0-9_.-]`
 */
export function validateContainerId(id: string): string {
  if (id === "") {
    throw new CniError(Code.InvalidEnv, "Missing required environment variable CNI_CONTAINERID");
  }
  if (!CONTAINER_ID.test(id)) {
    throw new CniError(
      Code.InvalidEnv,
      `Invalid CNI_CONTAINERID "${id}": must match ${CONTAINER_ID.source}`,
    );
  }
  return id;
}

/**
 * Checks CNI_IFNAME as libcni does: 1–15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
 *
 * @throws {CniError} code 4 naming the rule broken
 */
export function validateIfname(name: string): string {
  const why = ifnameProblem(name);
  if (why) throw new CniError(Code.InvalidEnv, `Invalid CNI_IFNAME "${name}": ${why}`);
  return name;
}

/**
 * Reads and validates the CNI_* environment for `command`: the variables the verb needs (an
 * empty one is missing, as in skel), CNI_CONTAINERID and CNI_IFNAME by libcni's rules, and
 * CNI_ARGS by skel's LoadArgs rules (pairs of exactly one `=`, unknown keys refused unless
 * `IgnoreUnknown` is 1/true).
 *
 * @throws {CniError} 4 naming every missing variable or the bad one
 */
export function readEnv(command: Verb, env: CniIo["env"], cwd?: string): PluginEnv {
  const required = REQUIRED_ENV[command];
  const missing = required.filter((k) => env[k] === undefined || env[k] === "");
  if (missing.length) {
    throw new CniError(
      Code.InvalidEnv,
      `Missing required environment variable${missing.length > 1 ? "s" : ""} ${
        missing.join(", ")
      } for ${command}`,
    );
  }
  const out: PluginEnv = {
    path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== "").map((p) => resolveIn(cwd, p)),
  };
  if (cwd) out.cwd = cwd;
  // The name is cli/serve/protocol.ts's socketEnv, not imported: the per-call path stays small.
  if (env.PODPLEX_SOCKET) out.daemonSocket = resolveIn(cwd, env.PODPLEX_SOCKET);
  if (required.includes("CNI_CONTAINERID")) {
    out.containerId = validateContainerId(env.CNI_CONTAINERID!);
  } else if (env.CNI_CONTAINERID) out.containerId = env.CNI_CONTAINERID;
  if (required.includes("CNI_IFNAME")) out.ifname = validateIfname(env.CNI_IFNAME!);
  else if (env.CNI_IFNAME) out.ifname = env.CNI_IFNAME;
  if (env.CNI_NETNS !== undefined && command !== "GC" && command !== "STATUS") {
    out.netns = resolveIn(cwd, env.CNI_NETNS);
  }
  if (env.CNI_ARGS) {
    // GC and STATUS carry no container, so their CNI_ARGS is not read (skel passes it on
    // unparsed; no plugin's GC loads it).
    if (command !== "GC" && command !== "STATUS") validateCniArgs(parseCniArgs(env.CNI_ARGS));
    out.args = env.CNI_ARGS;
  }
  return out;
}

/** CNI_NETNS_OVERRIDE as skel reads it: "1" or "true" in any case. */
function netnsOverridden(env: CniIo["env"]): boolean {
  const v = env.CNI_NETNS_OVERRIDE ?? "";
  return v === "1" || v.toUpperCase() === "TRUE";
}

/**
 * Refuses a CNI_NETNS that is podplex's own network namespace (skel's check, for ADD and
 * DEL): configuring it as the container's would rename or delete the host's own links. A
 * path that cannot be opened is not refused here (DEL of a netns already gone is fine; ADD
 * fails later naming it). Same namespace = same nsfs device and inode.
 *
 * @throws {CniError} 8 naming CNI_NETNS and the override
 */
export function checkNotOwnNetns(command: Verb, env: CniIo["env"]): void {
  if ((command !== "ADD" && command !== "DEL") || !env.CNI_NETNS || netnsOverridden(env)) return;
  let same = false;
  try {
    const target = Deno.statSync(env.CNI_NETNS);
    // Synchronous file calls run on the main thread, the one whose netns podplex works from.
    const own = Deno.statSync("/proc/thread-self/ns/net");
    same = target.dev === own.dev && target.ino === own.ino;
  } catch {
    return;
  }
  if (same) {
    throw new CniError(
      Code.InvalidNetNS,
      `Invalid CNI_NETNS "${env.CNI_NETNS}": it is podplex's own network namespace`,
      "set CNI_NETNS_OVERRIDE=1 to configure it anyway",
    );
  }
}

function parseCommand(raw: string): Verb {
  if (!Object.hasOwn(REQUIRED_ENV, raw)) {
    throw new CniError(Code.InvalidEnv, `Unknown CNI_COMMAND "${raw}"`);
  }
  return raw as Verb;
}

async function readStdin(io: CniIo): Promise<Uint8Array> {
  try {
    return await io.stdin();
  } catch (e) {
    throw new CniError(Code.IoFailure, "Cannot read the network config from stdin", String(e));
  }
}

function checkVersionGate(command: Verb, version: string): void {
  const min = MIN_VERSION[command];
  if (min && !atLeast(version, min)) {
    throw new CniError(
      Code.IncompatibleVersion,
      `Config version "${version}" does not allow ${command}`,
      `${command} needs version ${min} or newer`,
    );
  }
}

function print(io: CniIo, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 4) + "\n");
}

/** State shared by the steps of one call, for the error's cniVersion. */
interface Call {
  version: string;
}

async function dispatch(io: CniIo, resolve: Resolver, call: Call): Promise<number> {
  if (!io.env.CNI_COMMAND) {
    // skel: no command is not an error for a plugin with an about string; it says what it is.
    io.stderr(aboutText());
    return 0;
  }
  const command = parseCommand(io.env.CNI_COMMAND);
  if (command === "VERSION") {
    print(io, versionInfo());
    return 0;
  }
  const env = readEnv(command, io.env, io.cwd);
  checkNotOwnNetns(command, io.env);
  const bytes = await readStdin(io);
  const parsed = parseNetConf(bytes);
  call.version = parsed.cniVersion;
  checkVersionGate(command, parsed.cniVersion);
  const trace = io.trace ?? NO_TRACE;
  trace.mark("dispatch");
  const plugin = await resolve(parsed.conf.type);
  trace.mark("resolved");
  const req: PluginRequest = { command: command as Command, conf: bytes, env };
  // In-process plugins get the conf parsed above; the result is converted once, here.
  const result = plugin.call
    ? await plugin.call({ ...inProcessRequest(req, parsed), trace, signal: io.signal })
    : await plugin.invoke(req);
  if (command === "ADD") {
    if (!result) {
      throw new CniError(Code.DelegateFailed, `Plugin "${plugin.type}" returned no result`);
    }
    print(io, plugin.call ? convertResult(result as CniResult, parsed.cniVersion) : result);
    trace.mark("result");
  }
  return 0;
}

/**
 * Runs one CNI call: CNI_COMMAND from `io.env`, the conf from `io.stdin`, the result (ADD)
 * or the error JSON on `io.stdout`. VERSION answers without reading stdin, whatever the
 * other variables hold. Errors other than CniError are wrapped once as code 999.
 *
 * @param io the injected environment, stdin and stdout
 * @param resolve gives the plugin for the conf's `type`
 * @returns the exit code: 0 on success, 1 on error
 *
 * @example
 * ```ts
 * const code = await runCni({ env: Deno.env.toObject(), stdin, stdout, stderr }, resolve);
 * ```
 */
export async function runCni(io: CniIo, resolve: Resolver): Promise<number> {
  const call: Call = { version: CURRENT_VERSION };
  try {
    return await dispatch(io, resolve, call);
  } catch (e) {
    if (!(e instanceof CniError)) {
      io.stderr(`podplex: unexpected error: ${e instanceof Error ? e.stack : String(e)}\n`);
    }
    const err = CniError.wrap(e);
    print(io, err.toJSON(call.version));
    return 1;
  }
}
