/**
 * Shared helpers of the standalone subcommands (`pod`, `net`, `status`, `gc`, `graph`,
 * `install`): which podplex conf to use, flags, output, and running a verb over that conf
 * exactly as a runtime would (libcni's chain runner in front of `runCni`).
 *
 * @module
 */
import { POD_ANNOTATIONS_ARG } from "../meta/context.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CniError, Code } from "../conf/errors.ts";
import { loadConfFile, parseConfOrList } from "../conf/netconf.ts";
import type { ConfList } from "../conf/netconf.ts";
import type { Attachment, CniResult, Verb } from "../conf/types.ts";
import { runChain } from "../delegates/chain.ts";
import { createRegistry, META_TYPE } from "../delegates/registry.ts";
import type { Plugin, PluginEnv, PluginRegistry, PluginRequest } from "../delegates/types.ts";
import { parsePodplexConf, type PodplexConf } from "../meta/conf.ts";
import { createResolver, type NetworkResolver } from "../meta/networks.ts";
import { runCni } from "./cni.ts";
import { defaultResolver } from "./resolve.ts";

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

/** A usage error (bad flag, missing argument): exit code 2. */
export class UsageError extends Error {
  /** @param msg a sentence naming the argument at fault */
  constructor(msg: string) {
    super(msg);
    this.name = "UsageError";
  }
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

/** Writes to stdout. */
export const out = (s: string): void => writeAll(Deno.stdout, s);
/** Writes to stderr. */
export const err = (s: string): void => writeAll(Deno.stderr, s);

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2) + "\n");
}

/**
 * node:util parseArgs with `strict`, turning its errors into sentences naming the flag.
 *
 * @throws {UsageError} for an unknown flag or a flag without its value
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  allowPositionals = true,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify.*$/s, "").replace(/\.$/, "");
    throw new UsageError(msg);
  }
}

/**
 * Runs a subcommand body: prints a UsageError (exit 2) or any other error (exit 1) as one
 * sentence on stderr.
 */
export async function guard(prog: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      err(`${prog}: ${e.message} (see '${prog} --help')\n`);
      return 2;
    }
    const text = e instanceof CniError
      ? e.message + (e.details ? ` (${e.details})` : "")
      : e instanceof Error
      ? e.message
      : String(e);
    err(`${prog}: ${text}\n`);
    return 1;
  }
}

/** The flags of a command that takes only `--config` and `--json`. */
export const CONFIG_JSON_FLAGS = {
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * The start of a command that takes no arguments, only `--config`, `--json` and `--help`
 * (`gc`, `status`): prints `help` on stdout for `--help`, else loads the conf.
 *
 * @returns undefined when help was printed, else the conf in use and whether JSON is wanted
 * @throws {UsageError} for a bad flag or any positional argument
 */
export async function noArgCommand(
  argv: string[],
  name: string,
  help: string,
): Promise<{ cfg: StandaloneConfig; json: boolean } | undefined> {
  const { values: f, positionals } = parseFlags(argv, CONFIG_JSON_FLAGS);
  if (f.help) return void out(help);
  if (positionals.length) throw new UsageError(`"${name}" takes no arguments`);
  return { cfg: await loadStandaloneConfig(f.config), json: !!f.json };
}

/**
 * The first step of a command with subcommands (`pod`, `net`): `help`, `--help` or `-h`
 * prints `help` on stdout (exit 0); no subcommand at all is an error, so help goes to stderr
 * (exit 2).
 *
 * @returns the exit code when help was printed, undefined for a real subcommand
 */
export function subcommandHelp(cmd: string | undefined, help: string): number | undefined {
  if (cmd === undefined) return (err(help), 2);
  if (cmd === "help" || cmd === "--help" || cmd === "-h") return (out(help), 0);
  return undefined;
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
export function podplexViaRunCni(stderr: (s: string) => void = err): Plugin {
  return {
    type: META_TYPE,
    builtin: true,
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
      const code = await runCni(io, defaultResolver(undefined));
      if (code !== 0) throw errorFromJson(stdout);
      return req.command === "ADD" ? JSON.parse(stdout) : undefined;
    },
  };
}

/** A registry where `podplex` goes through `runCni` and every other type as usual. */
export function standaloneRegistry(): PluginRegistry {
  const rest = createRegistry();
  const meta = podplexViaRunCni();
  return {
    get: (type, path) => type === META_TYPE ? Promise.resolve(meta) : rest.get(type, path),
  };
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
 * @returns for ADD the canonical result and the JSON in the list's version
 * @throws {CniError} the failing plugin's error
 */
export async function runVerb(
  cfg: StandaloneConfig,
  verb: Exclude<Verb, "VERSION">,
  opts: VerbOptions,
): Promise<{ result?: CniResult; json?: Record<string, unknown> }> {
  return await runChain(cfg.list, verb, { ...opts, registry: standaloneRegistry() });
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

/**
 * Renders rows as a left-aligned text table with a header line.
 *
 * @example
 * ```ts
 * table(["POD", "IP"], [["web", "10.0.0.2"]]); // "POD  IP\nweb  10.0.0.2\n"
 * ```
 */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
