/**
 * `podplex install`: writes the podplex conflist runtimes read (`00-podplex.conflist`, so it
 * sorts first in the conf dir, with podplex as its only plugin) and links the launcher into
 * the CNI bin dir as `podplex` (and, with `--builtins`, under each built-in delegate's type).
 * Nothing existing is overwritten without `--force`, and nothing is written when any target
 * is in the way.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { CniError, Code } from "../conf/errors.ts";
import { BUILTIN_TYPES } from "../delegates/catalog.ts";
import { parsePodplexConf } from "../meta/conf.ts";
import { guard, parseFlags, UsageError } from "./_args.ts";
import { out, printJson } from "./_output.ts";
import { PODPLEX_CAPABILITIES } from "./_config.ts";

const HELP = `usage: podplex install [flags]

Writes <conf-dir>/00-podplex.conflist (podplex as the only plugin, declaring the
capabilities ${Object.keys(PODPLEX_CAPABILITIES).join(", ")})
and links bin/podplex into <bin-dir> as "podplex". Existing files are left alone unless
--force; when one is in the way nothing is written.

Flags:
  --conf-dir DIR           where runtimes read CNI confs (default /etc/cni/net.d)
  --bin-dir DIR            the CNI plugin dir (default /opt/cni/bin)
  --cluster-network X      the cluster network: "ns/name", a conf file name, or a path
  --default-network NS/N   a network every pod gets (repeatable)
  --networks-dir DIR       local network definitions (default /etc/cni/podplex/networks.d)
  --state-dir DIR          attachment state (default /var/lib/cni/podplex)
  --kubeconfig FILE        the API server's kubeconfig (NADs, pod annotations)
  --builtins               also link podplex as ${BUILTIN_TYPES.join(", ")}
  --force                  overwrite existing files and links
  --dry-run                print what would be written, write nothing
  --json                   print the actions as JSON
`;

/** Inputs of {@linkcode buildInstallConf}. */
export interface InstallOptions {
  clusterNetwork?: string;
  defaultNetworks?: string[];
  networksDir?: string;
  stateDir?: string;
  kubeconfig?: string;
}

/**
 * The conflist `install` writes, validated by the same parser the meta-plugin uses.
 *
 * @throws {CniError} code 7 when an option makes an invalid podplex conf
 */
export function buildInstallConf(opts: InstallOptions): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: "podplex" };
  if (opts.clusterNetwork) entry.clusterNetwork = opts.clusterNetwork;
  if (opts.defaultNetworks?.length) entry.defaultNetworks = opts.defaultNetworks;
  if (opts.networksDir) entry.networksDir = opts.networksDir;
  if (opts.stateDir) entry.stateDir = opts.stateDir;
  if (opts.kubeconfig) entry.kubeconfig = opts.kubeconfig;
  entry.capabilities = { ...PODPLEX_CAPABILITIES };
  const list = { cniVersion: "1.1.0", name: "podplex", plugins: [entry] };
  parsePodplexConf(list);
  return list;
}

/** One file `install` writes. */
export interface Action {
  path: string;
  kind: "conf" | "symlink";
  /** The symlink's target. */
  target?: string;
  /** "write", "skip" (already as wanted), "overwrite" (--force). */
  how: "write" | "skip" | "overwrite";
}

/**
 * The entry to link: the node artifact's own (`<artifact>/podplex`, two levels above its
 * payload `podplex.d/<version>/`) when running from it, else bin/podplex of the checkout.
 */
export function launcherPath(): string {
  const bundled = /\/podplex\.d\/[0-9a-f]+\/[^/]+$/.test(import.meta.url);
  return fileURLToPath(new URL(bundled ? "../../podplex" : "../bin/podplex", import.meta.url));
}

async function lstat(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Decides each action; throws when something is in the way and --force is not given. */
async function plan(actions: Omit<Action, "how">[], text: string, force: boolean) {
  const out: Action[] = [];
  const blocked: string[] = [];
  for (const a of actions) {
    const st = await lstat(a.path);
    if (!st) {
      out.push({ ...a, how: "write" });
      continue;
    }
    const same = a.kind === "symlink"
      ? st.isSymlink && (await Deno.readLink(a.path)) === a.target
      : st.isFile && (await Deno.readTextFile(a.path)) === text;
    if (same) out.push({ ...a, how: "skip" });
    else if (force) out.push({ ...a, how: "overwrite" });
    else blocked.push(a.path);
  }
  if (blocked.length) {
    throw new CniError(
      Code.AlreadyExists,
      `Not installing: ${blocked.map((p) => `"${p}"`).join(", ")} exist(s) already and differ ` +
        `(--force overwrites)`,
    );
  }
  return out;
}

async function apply(a: Action, text: string): Promise<void> {
  if (a.how === "skip") return;
  const dir = a.path.slice(0, a.path.lastIndexOf("/")) || "/";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${a.path}.podplex-tmp`;
  await Deno.remove(tmp).catch(() => {});
  if (a.kind === "conf") await Deno.writeTextFile(tmp, text, { mode: 0o644 });
  else await Deno.symlink(a.target!, tmp);
  await Deno.rename(tmp, a.path); // atomic replace: a runtime never sees half a conf
}

/** Entry of `podplex install`. */
export function main(argv: string[]): Promise<number> {
  return guard("podplex install", async () => {
    const { values: f, positionals } = parseFlags(argv, {
      "conf-dir": { type: "string" },
      "bin-dir": { type: "string" },
      "cluster-network": { type: "string" },
      "default-network": { type: "string", multiple: true },
      "networks-dir": { type: "string" },
      "state-dir": { type: "string" },
      kubeconfig: { type: "string" },
      builtins: { type: "boolean" },
      force: { type: "boolean" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (f.help) return (out(HELP), 0);
    if (positionals.length) throw new UsageError(`"install" takes no arguments`);
    const conf = buildInstallConf({
      clusterNetwork: f["cluster-network"],
      defaultNetworks: f["default-network"],
      networksDir: f["networks-dir"],
      stateDir: f["state-dir"],
      kubeconfig: f.kubeconfig,
    });
    const text = JSON.stringify(conf, null, 2) + "\n";
    const confDir = (f["conf-dir"] ?? "/etc/cni/net.d").replace(/\/+$/, "");
    const binDir = (f["bin-dir"] ?? "/opt/cni/bin").replace(/\/+$/, "");
    const launcher = launcherPath();
    const names = ["podplex", ...(f.builtins ? BUILTIN_TYPES : [])];
    const wanted: Omit<Action, "how">[] = [
      { path: `${confDir}/00-podplex.conflist`, kind: "conf" },
      ...names.map((n) => ({ path: `${binDir}/${n}`, kind: "symlink" as const, target: launcher })),
    ];
    const actions = await plan(wanted, text, !!f.force);
    if (!f["dry-run"]) { for (const a of actions) await apply(a, text); }
    if (f.json) printJson({ dryRun: !!f["dry-run"], conf, actions });
    else {
      for (const a of actions) {
        const what = a.kind === "conf" ? "conf" : `link -> ${a.target}`;
        out(`${f["dry-run"] ? "would " : ""}${a.how} ${a.path} (${what})\n`);
      }
      if (f["dry-run"]) out(text);
    }
    return 0;
  });
}
