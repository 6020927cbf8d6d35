/**
 * External CNI plugins: run a binary from CNI_PATH the way libcni does (pkg/invoke): the
 * process environment plus the CNI_* variables of the request, the conf on stdin, the
 * result or the error JSON on stdout, the plugin's stderr passed on to ours.
 *
 * Choices where libcni has none to copy:
 * - a plugin that runs longer than the timeout (60 s by default) is killed with SIGKILL and
 *   the call fails with code 11 (try again later): the usual cause is a lock or a daemon
 *   that is busy, and the runtime retries the sandbox anyway;
 * - a failure without an error JSON gets code 102 (delegate failed), naming the plugin;
 * - "text file busy" (a binary being replaced while we exec it) is retried 5 times with a
 *   short growing pause instead of libcni's full second.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { IMPLICIT_VERSION } from "../../conf/version.ts";
import type { Plugin, PluginRequest } from "../types.ts";
import { writeAllSync } from "../../conf/io.ts";

/** How long an external plugin may run by default (ms). */
export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;

const ETXTBSY_RETRIES = 5;

/** Options of {@linkcode execPlugin}. */
export interface ExecOptions {
  /** Where the plugin's stderr goes (default: this process's stderr). */
  stderr?: (text: string) => void;
  /** Timeout when the request gives none (ms). */
  timeoutMs?: number;
  /**
   * The mount namespace to run plugins in (a path such as `/proc/1/ns/mnt`): `podplex serve`
   * in the DaemonSet's container runs them in the host's, through `nsenter`, so that they see
   * the host's files as they do when the runtime execs them. Default: this process's own.
   */
  mountNs?: string;
  /**
   * With {@linkcode mountNs}: that namespace's root as this process sees it (`/proc/1/root`
   * with hostPID), through which the caller's cwd is found to run the plugin in.
   */
  hostRoot?: string;
}

const decoder = new TextDecoder();

/** An external binary declares nothing: callers assume the most careful case. */
const NO_TRAITS = Object.freeze({});

/**
 * Finds plugin `type` in the CNI_PATH directories, as libcni's FindInPath does.
 *
 * @returns the full path of the first regular file named `type`
 * @throws {CniError} code 7 for an empty type, one containing `/` or `..`, an empty path
 *   list, or when no directory holds it
 */
export async function findInPath(type: string, path: readonly string[]): Promise<string> {
  if (!type || type.includes("/") || type.includes("..")) {
    throw new CniError(Code.InvalidConfig, `Invalid plugin "type": "${type}"`);
  }
  const dirs = path.filter((d) => d !== "");
  if (dirs.length === 0) {
    throw new CniError(Code.InvalidConfig, `Cannot find plugin "${type}": CNI_PATH is empty`);
  }
  for (const dir of dirs) {
    const full = `${dir.replace(/\/+$/, "")}/${type}`;
    try {
      if ((await Deno.stat(full)).isFile) return full;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(
    Code.InvalidConfig,
    `Cannot find plugin "${type}" in CNI_PATH "${dirs.join(":")}"`,
  );
}

/** The CNI_* variables of one plugin call (set over this process's environment when spawned). */
export function pluginEnv(req: PluginRequest): Record<string, string> {
  return {
    CNI_COMMAND: req.command,
    CNI_CONTAINERID: req.env.containerId ?? "",
    CNI_NETNS: req.env.netns ?? "",
    CNI_IFNAME: req.env.ifname ?? "",
    CNI_ARGS: req.env.args ?? "",
    CNI_PATH: req.env.path.join(":"),
  };
}

function isTextBusy(e: unknown): boolean {
  return e instanceof Error && /text file busy|ETXTBSY|os error 26/i.test(e.message);
}

/**
 * The command line of a plugin run: the binary itself, or `nsenter` into `opts.mountNs`
 * first. setns of a mount namespace sets root and cwd to its root; nsenter opens `--wd`
 * before it enters, so the caller's cwd is named through the host's root as seen from here.
 */
export function pluginArgv(bin: string, cwd: string | undefined, opts: ExecOptions): string[] {
  if (!opts.mountNs) return [bin];
  const wd = opts.hostRoot ? [`--wd=${opts.hostRoot.replace(/\/+$/, "")}${cwd || "/"}`] : [];
  return ["nsenter", `--mount=${opts.mountNs}`, ...wd, "--", bin];
}

function spawn(
  bin: string,
  env: Record<string, string>,
  cwd: string | undefined,
  opts: ExecOptions,
): Deno.ChildProcess {
  const argv = pluginArgv(bin, cwd, opts);
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    // In another mount namespace the cwd is nsenter's to set; it may not exist here.
    cwd: opts.mountNs ? undefined : cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function spawnRetrying(
  bin: string,
  env: Record<string, string>,
  cwd: string | undefined,
  opts: ExecOptions,
): Promise<Deno.ChildProcess> {
  for (let attempt = 0;; attempt++) {
    try {
      return spawn(bin, env, cwd, opts);
    } catch (e) {
      if (!isTextBusy(e) || attempt >= ETXTBSY_RETRIES) {
        throw new CniError(Code.DelegateFailed, `Cannot run plugin "${bin}"`, String(e));
      }
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  }
}

async function feedStdin(child: Deno.ChildProcess, conf: Uint8Array): Promise<void> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(conf);
    await writer.close();
  } catch {
    // The plugin exited without reading its stdin (EPIPE); its exit status tells the rest.
  }
}

/** Turns a failed plugin's output into its CniError, as libcni's pluginErr does. */
export function pluginError(
  type: string,
  exitCode: number,
  stdout: string,
  stderr: string,
): CniError {
  if (stdout.trim() === "") {
    const text = stderr.trim();
    return new CniError(
      Code.DelegateFailed,
      text
        ? `Plugin "${type}" failed: ${text}`
        : `Plugin "${type}" failed with exit code ${exitCode} and no error message`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    // fall through
  }
  const obj = parsed as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  if (typeof obj !== "object" || obj === null || typeof obj.msg !== "string") {
    return new CniError(
      Code.DelegateFailed,
      `Plugin "${type}" failed and its error output is not JSON: ${JSON.stringify(stdout.trim())}`,
    );
  }
  const code = typeof obj.code === "number" ? obj.code : Code.DelegateFailed;
  const details = typeof obj.details === "string" && obj.details ? obj.details : undefined;
  return new CniError(code, obj.msg, details);
}

function confVersion(conf: Uint8Array): string {
  try {
    const v = JSON.parse(decoder.decode(conf)).cniVersion;
    return typeof v === "string" && v ? v : IMPLICIT_VERSION;
  } catch {
    return IMPLICIT_VERSION;
  }
}

/** Parses an ADD result; a result without `cniVersion` gets the conf's (libcni's fixup). */
function parseResult(type: string, stdout: string, conf: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (e) {
    throw new CniError(
      Code.DecodeFailure,
      `Cannot decode the result of plugin "${type}": ${(e as Error).message}`,
      stdout.slice(0, 500),
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CniError(Code.DecodeFailure, `Cannot decode the result of plugin "${type}"`);
  }
  const result = value as Record<string, unknown>;
  if (typeof result.cniVersion !== "string" || result.cniVersion === "") {
    result.cniVersion = confVersion(conf);
  }
  return result;
}

function defaultStderr(text: string): void {
  writeAllSync(Deno.stderr, text);
}

async function runOnce(
  type: string,
  req: PluginRequest,
  opts: ExecOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = await findInPath(type, req.env.path);
  const child = await spawnRetrying(bin, pluginEnv(req), req.env.cwd, opts);
  const timeoutMs = req.timeoutMs ?? opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  try {
    const [, out] = await Promise.all([feedStdin(child, req.conf), child.output()]);
    if (timedOut) {
      throw new CniError(
        Code.TryAgainLater,
        `Plugin "${type}" did not finish ${req.command} within ${timeoutMs} ms and was killed`,
      );
    }
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A {@linkcode Plugin} that runs the external binary named `type` from the request's
 * CNI_PATH.
 *
 * @param type the plugin type, i.e. the binary's file name
 * @returns a plugin whose `invoke` resolves to the parsed result JSON for ADD (in the
 *   version the plugin printed, `cniVersion` filled in from the conf when missing), else
 *   undefined
 *
 * @example
 * ```ts
 * const bridge = execPlugin("bridge");
 * await bridge.invoke({ command: "DEL", conf, env: { containerId, ifname, path: ["/usr/lib/cni"] } });
 * ```
 */
export function execPlugin(type: string, opts: ExecOptions = {}): Plugin {
  return {
    type,
    builtin: false,
    traits: NO_TRAITS,
    async invoke(req: PluginRequest) {
      const out = await runOnce(type, req, opts);
      if (out.code !== 0) {
        // Like libcni: stderr is the message when stdout is empty; else it is only logged.
        if (out.stdout.trim() !== "" && out.stderr) (opts.stderr ?? defaultStderr)(out.stderr);
        throw pluginError(type, out.code, out.stdout, out.stderr);
      }
      if (out.stderr) (opts.stderr ?? defaultStderr)(out.stderr);
      return req.command === "ADD" ? parseResult(type, out.stdout, req.conf) : undefined;
    },
  };
}
