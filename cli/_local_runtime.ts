/**
 * The local runtime of the standalone subcommands: runs a verb over the podplex conflist as
 * libcni would, with the podplex entry reached through `runCni` (the dispatcher
 * `bin/podplex` runs), so `pod up` takes exactly a runtime's code path.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import type { Attachment, CniResult, Verb } from "../conf/types.ts";
import { runChain } from "../delegates/runner/chain.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import type { Plugin, PluginEnv, PluginRegistry, PluginRequest } from "../delegates/types.ts";
import { META_TYPE } from "../meta/conf.ts";
import { runCni } from "./cni.ts";
import type { Root } from "./root.ts";
import type { StandaloneConfig } from "./_config.ts";
import { err } from "./_output.ts";

/** Turns the error JSON printed by `runCni` back into the CniError it was. */
function errorFromJson(text: string): CniError {
  try {
    const e = JSON.parse(text);
    return new CniError(e.code ?? Code.Internal, e.msg ?? "Unknown error", e.details);
  } catch {
    return new CniError(Code.Internal, `Unreadable plugin output: ${text.slice(0, 200)}`);
  }
}

/**
 * The podplex plugin as a runtime reaches it: the request turned into CNI_* variables and
 * stdin bytes, handed to `runCni` (the same dispatcher `bin/podplex` runs), and its stdout
 * read back. No exec, but no other code path either.
 */
export function podplexViaRunCni(root: Root, stderr: (s: string) => void = err): Plugin {
  return {
    type: META_TYPE,
    builtin: true,
    traits: TRAITS,
    async invoke(req: PluginRequest) {
      let stdout = "";
      const env: Record<string, string | undefined> = {
        CNI_COMMAND: req.command,
        CNI_CONTAINERID: req.env.containerId,
        CNI_NETNS: req.env.netns,
        CNI_IFNAME: req.env.ifname,
        CNI_ARGS: req.env.args,
        CNI_PATH: req.env.path.join(":"),
      };
      const io = {
        env,
        stdin: () => Promise.resolve(req.conf),
        stdout: (s: string) => void (stdout += s),
        stderr,
      };
      const code = await runCni(io, root.resolver(undefined));
      if (code !== 0) throw errorFromJson(stdout);
      return req.command === "ADD" ? JSON.parse(stdout) : undefined;
    },
  };
}

/** Its errors are the meta-plugin's, which name the network and interface at fault. */
const TRAITS = Object.freeze({ namesItsErrors: true });

/** A registry where `podplex` goes through `runCni` and every other type as usual. */
export function standaloneRegistry(root: Root): PluginRegistry {
  return createRegistry({
    builtins: root.builtins,
    plugins: { [META_TYPE]: podplexViaRunCni(root) },
  });
}

/** What one verb over the podplex conflist needs besides the verb. */
export interface VerbOptions {
  env: PluginEnv;
  capabilityArgs?: Record<string, unknown>;
  cachedResult?: CniResult;
  validAttachments?: Attachment[];
}

/**
 * Runs `verb` over the podplex conflist as libcni does (runtimeConfig from capabilities,
 * name/cniVersion injected, DEL in reverse, prevResult from the cached ADD result).
 *
 * @returns for ADD the canonical result
 * @throws {CniError} the failing plugin's error
 */
export async function runVerb(
  root: Root,
  cfg: StandaloneConfig,
  verb: Exclude<Verb, "VERSION">,
  opts: VerbOptions,
): Promise<{ result?: CniResult }> {
  return await runChain(cfg.list, verb, { ...opts, registry: standaloneRegistry(root) });
}
