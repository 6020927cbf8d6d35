/**
 * The row helper of `podplex serve`'s local policy controller (controllers/local_policy),
 * on unless `--network-policy`: the podplex conf the standalone subcommands use (`--config`,
 * else $PODPLEX_CONFIG, the installed conf, the embedded default) gives the policiesDir and
 * the state dir, as for `podplex policy apply`; tables go through libnftables and the folder
 * is watched with Deno.watchFs.
 *
 * @module
 */
import type { LocalPolicyContext } from "../controllers/local_policy/local_policy.ts";
import { stateReader } from "../controllers/policy/states.ts";
import { runNftIn } from "../ffi/nftables.ts";
import { loadStandaloneConfig } from "./_config.ts";

/** What the row gives the controller. */
export type LocalPolicySettings = Pick<LocalPolicyContext, "dir" | "states" | "apply" | "watch">;

/**
 * The settings of the local policy controller, from the podplex conf.
 *
 * @param config `--config`, else the default order of the standalone subcommands
 * @throws {CniError} when the conf named cannot be read or is not a podplex conf
 */
export async function localPolicySettings(
  config: string | undefined,
  warn: (line: string) => void,
): Promise<LocalPolicySettings> {
  const { conf } = await loadStandaloneConfig(config);
  return {
    dir: conf.policiesDir,
    states: stateReader([conf.stateDir], warn),
    apply: (netns, script) => Promise.resolve(void runNftIn(netns, script)),
    watch: (dir) => Deno.watchFs(dir, { recursive: true }),
  };
}
