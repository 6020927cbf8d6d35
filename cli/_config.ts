/**
 * Which podplex conf the standalone subcommands use (`--config`, `PODPLEX_CONFIG`, the
 * installed conflist, else an embedded default), the CNI_PATH they run delegates from, and a
 * resolver over the local network definitions.
 *
 * @module
 */
import { POD_ANNOTATIONS_ARG } from "../meta/context.ts";
import { CniError, Code } from "../conf/errors.ts";
import { type ConfList, loadConfFile, parseConfOrList } from "../conf/netconf.ts";
import { META_TYPE } from "../meta/conf.ts";
import { parsePodplexConf, type PodplexConf } from "../meta/conf.ts";
import { createResolver, type NetworkResolver } from "../meta/networks.ts";

/** Where `podplex install` writes the podplex conf, and what runtimes read. */
export const INSTALLED_CONF = "/etc/cni/net.d/00-podplex.conflist";

/** The CNI_PATH used when the environment sets none. */
export const DEFAULT_CNI_PATH = "/opt/cni/bin:/usr/lib/cni";

/** The capabilities podplex declares (what a runtime must pass it). */
export const PODPLEX_CAPABILITIES: Readonly<Record<string, boolean>> = {
  [POD_ANNOTATIONS_ARG]: true,
  portMappings: true,
  bandwidth: true,
  ips: true,
  mac: true,
  dns: true,
};

/**
 * The conf used when neither `--config`, `PODPLEX_CONFIG` nor the installed conf exists:
 * local networks in the default networksDir, no cluster network (a pod then needs
 * `--networks`).
 */
export const EMBEDDED_CONF: Readonly<Record<string, unknown>> = {
  cniVersion: "1.1.0",
  name: "podplex",
  plugins: [{ type: META_TYPE, capabilities: PODPLEX_CAPABILITIES }],
};

/** Text of the help paragraph that says which conf is used. */
export const CONFIG_HELP =
  `  --config FILE      the podplex conf: a .conf/.json, or a .conflist whose first plugin is
                     podplex; default: $PODPLEX_CONFIG, else ${INSTALLED_CONF} (what
                     'podplex install' writes), else an embedded default (networksDir
                     /etc/cni/podplex/networks.d, stateDir /var/lib/cni/podplex, no cluster
                     network)`;

/** The podplex conf in use: the list runtimes would run, the parsed entry, and its origin. */
export interface StandaloneConfig {
  /** The file it came from, or "(embedded default)". */
  source: string;
  list: ConfList;
  conf: PodplexConf;
}

function firstPluginIsPodplex(list: ConfList, source: string): void {
  if (list.plugins[0]?.type !== META_TYPE) {
    throw new CniError(
      Code.InvalidConfig,
      `The podplex conf "${source}" must have "type": "podplex" as its first plugin, ` +
        `not ${JSON.stringify(list.plugins[0]?.type)}`,
    );
  }
}

/** The podplex entry as runtimes hand it over: the list's name and version injected. */
function podplexEntry(list: ConfList): PodplexConf {
  const entry = { ...list.plugins[0].conf, name: list.name, cniVersion: list.cniVersion };
  return parsePodplexConf(entry as Record<string, unknown>);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads the podplex conf: `flag`, else env `PODPLEX_CONFIG`, else {@linkcode INSTALLED_CONF},
 * else {@linkcode EMBEDDED_CONF}.
 *
 * @throws {CniError} 5 when a named file cannot be read; 7 when it is not a podplex conf
 */
export async function loadStandaloneConfig(
  flag?: string,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Promise<StandaloneConfig> {
  const named = flag ?? env.PODPLEX_CONFIG;
  let source: string;
  let list: ConfList;
  if (named !== undefined && named !== "") {
    source = named;
    list = await loadConfFile(named);
  } else if (await exists(INSTALLED_CONF)) {
    source = INSTALLED_CONF;
    list = await loadConfFile(INSTALLED_CONF);
  } else {
    source = "(embedded default)";
    list = parseConfOrList(JSON.stringify(EMBEDDED_CONF));
  }
  firstPluginIsPodplex(list, source);
  return { source, list, conf: podplexEntry(list) };
}

/** CNI_PATH from the environment, else {@linkcode DEFAULT_CNI_PATH}, split. */
export function cniPath(env: Record<string, string | undefined> = Deno.env.toObject()): string[] {
  return (env.CNI_PATH || DEFAULT_CNI_PATH).split(":").filter((p) => p !== "");
}

/**
 * A resolver of the local networks (networksDir, confDir) for a pod in `podNamespace`, with
 * no namespace isolation: what `net` and `status` show is every definition on disk.
 */
export function localResolver(cfg: StandaloneConfig, podNamespace: string): NetworkResolver {
  return createResolver({
    networksDir: cfg.conf.networksDir,
    confDir: cfg.conf.confDir,
    namespaceIsolation: false,
    globalNamespaces: [],
    podNamespace,
  });
}

/** Whether a netns (or any) path exists. */
export function pathExists(path: string): Promise<boolean> {
  return exists(path);
}
