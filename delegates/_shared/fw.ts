/**
 * Running a firewall tool (iptables, ip6tables, nft) in the host netns, or through `nsenter`
 * in `opts.hostNs` (tests), so that rules never land in the real host's tables by accident.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { HostOptions } from "./link_common.ts";

/** What a tool run gives back. */
export interface ToolOutput {
  success: boolean;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/**
 * Runs `tool args...` in the host netns, feeding `input` on stdin when given. A tool that is
 * not installed gives a failed run with stderr "<tool> not found" (never a throw).
 */
export async function runTool(
  opts: HostOptions,
  tool: string,
  args: string[],
  input?: string,
): Promise<ToolOutput> {
  const argv = opts.hostNs ? ["nsenter", `--net=${opts.hostNs}`, tool, ...args] : [tool, ...args];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    // A tool that is not installed: a failed run, so `check=false` teardowns see no rules.
    if (err instanceof Deno.errors.NotFound) {
      return { success: false, stdout: "", stderr: `${argv[0]} not found` };
    }
    throw err;
  }
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  return {
    success: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * Runs a firewall tool; its stdout on success. On failure: a CniError 101 quoting the command
 * and its stderr when `check`, else "".
 */
export async function fw(
  opts: HostOptions,
  tool: string,
  args: string[],
  check = true,
  input?: string,
): Promise<string> {
  const out = await runTool(opts, tool, args, input);
  if (!out.success && check) {
    const err = out.stderr.trim();
    throw new CniError(Code.KernelFailure, `"${tool} ${args.join(" ")}" failed: ${err}`);
  }
  return out.success ? out.stdout : "";
}
