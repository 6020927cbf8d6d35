/**
 * Thick mode: the daemon runs in the DaemonSet's container (its own mount namespace, the
 * host's netns) and serves the host's shim. A call is served only when every file it names
 * means the same file to the daemon as to its caller; otherwise the shim runs it per call on
 * the host (nothing was started, nothing is lost). What is checked, per call:
 *
 * - CNI_NETNS by identity: the shim sends the device and inode it sees at that path, the
 *   daemon must see the same there (the host's `/run/netns` mounted with host-to-container
 *   propagation, the host's `/proc` with hostPID); a netns the shim cannot see (a DEL after
 *   it was deleted) must be absent for the daemon too;
 * - the podplex conf's files (networksDir, stateDir, confDir, kubeconfig, logFile,
 *   readinessIndicatorFile, defaults included), a plugin's `ipam.dataDir` and CNI_PATH by
 *   place: each under a {@linkcode HostView.paths} entry, a directory mounted from the host
 *   at the same path (so state lands where a per-call run finds it, external plugins come
 *   from the host's bin dir);
 * - the caller's working directory by identity, when any of those paths is relative.
 *
 * External plugins are exec'd in the host's mount namespace ({@linkcode HostView.mountNs},
 * through `nsenter`), so they see the host's files exactly as they do per call.
 *
 * @module
 */
import { resolveIn } from "../../conf/paths.ts";
import { isObject } from "../../conf/json.ts";
import { CONF_DEFAULTS, META_TYPE, parsePodplexConf } from "../../meta/conf.ts";
import { DEFAULT_DATA_DIR } from "../../delegates/ipam/host_local/disk_store.ts";
import type { CallFrame, FileId } from "./protocol.ts";

/** What the daemon shares with the host it serves. */
export interface HostView {
  /** Directories the daemon sees at the host's own path (hostPath mounts). */
  paths: string[];
  /** The host's root as the daemon sees it (startup check of {@linkcode paths}). */
  root?: string;
  /** The host's mount namespace: external plugins are exec'd in it. */
  mountNs?: string;
}

/**
 * What `--thick` means: the DaemonSet's hostPath mounts (deploy/daemonset.yaml), the host's root
 * and mount namespace through pid 1 (hostPID).
 */
export const THICK_DEFAULTS: Readonly<Required<HostView>> = Object.freeze({
  paths: [
    "/etc/cni",
    "/opt/cni/bin",
    "/var/lib/cni",
    "/run/netns",
    "/var/run/netns",
    "/run/podplex",
  ],
  root: "/proc/1/root",
  mountNs: "/proc/1/ns/mnt",
});

/** `path` without `.`, `..` and repeated slashes (never above `/`). */
export function normalisePath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** Whether absolute `path` is `dir` or below it. */
export function isUnder(path: string, dir: string): boolean {
  const p = normalisePath(path);
  const d = normalisePath(dir);
  return d === "/" || p === d || p.startsWith(d + "/");
}

function fileId(path: string): FileId | undefined {
  try {
    const st = Deno.statSync(path);
    return { dev: BigInt(st.dev), ino: BigInt(st.ino ?? 0) };
  } catch {
    return undefined;
  }
}

function same(a: FileId | undefined, b: FileId): boolean {
  return a !== undefined && a.dev === b.dev && a.ino === b.ino;
}

/**
 * Keeps the host paths that really are the host's: each must be the same directory (device
 * and inode) as `root` + path. Without `root` the list is taken as given.
 *
 * @returns the kept paths, and a sentence for each one dropped
 */
export function checkHostPaths(view: HostView): { view: HostView; dropped: string[] } {
  if (!view.root) return { view, dropped: [] };
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const p of view.paths) {
    const mine = fileId(p);
    const host = fileId(`${view.root.replace(/\/+$/, "")}${normalisePath(p)}`);
    if (!host) continue; // the host has no such directory: nothing there to share
    if (mine && same(mine, host)) kept.push(p);
    else dropped.push(`"${p}" is not the host's (not mounted from the host at that path)`);
  }
  return { view: { ...view, paths: kept }, dropped };
}

/** The files a call names (absolute or relative), from its conf and CNI_PATH. */
export function callPaths(env: Record<string, string>, stdin: Uint8Array): string[] {
  const out = (env.CNI_PATH ?? "").split(":").filter((d) => d !== "");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return out; // the call fails on its conf, the same way in either mode
  }
  if (!isObject(raw)) return out;
  const plugins = Array.isArray(raw.plugins) ? raw.plugins.filter(isObject) : [raw];
  for (const p of plugins) {
    if (p.type === META_TYPE) out.push(...podplexPaths(p));
    const ipam = p.ipam;
    if (!isObject(ipam)) continue;
    if (typeof ipam.dataDir === "string" && ipam.dataDir) out.push(ipam.dataDir);
    else if (ipam.type === "host-local") out.push(DEFAULT_DATA_DIR);
    if (typeof ipam.daemonSocketPath === "string") out.push(ipam.daemonSocketPath);
  }
  return out;
}

/** The files of a podplex conf, its defaults included (none when it does not parse). */
function podplexPaths(entry: Record<string, unknown>): string[] {
  const given = (k: string) => typeof entry[k] === "string" ? entry[k] as string : undefined;
  try {
    const c = parsePodplexConf({ ...entry, cniVersion: entry.cniVersion ?? "1.1.0" });
    return [c.networksDir, c.stateDir, c.confDir, c.kubeconfig, c.logFile, c.readinessIndicatorFile]
      .filter((p): p is string => p !== undefined);
  } catch {
    // It fails the same way in either mode; the fields given still say where it would look.
    return ["networksDir", "stateDir", "confDir", "kubeconfig", "logFile"].map((k) =>
      given(k) ?? (CONF_DEFAULTS as Record<string, unknown>)[k]
    ).filter((p): p is string => typeof p === "string");
  }
}

/**
 * Why the daemon must not serve a call from another mount namespace, or undefined when
 * every file the call names is the same file to the daemon.
 */
export function viewProblem(view: HostView, call: CallFrame): string | undefined {
  const cwd = call.env.PODPLEX_CWD;
  const netns = call.env.CNI_NETNS ?? "";
  const paths = callPaths(call.env, call.stdin);
  const relative = [netns, ...paths].some((p) => p !== "" && !p.startsWith("/"));
  if (relative && (!cwd || !same(fileId(cwd), call.cwd))) {
    return `the call names relative paths and the caller's cwd "${cwd}" is not the daemon's`;
  }
  if (netns !== "") {
    const mine = fileId(resolveIn(cwd, netns));
    const seen = call.target.ino !== 0n;
    if (seen ? !same(mine, call.target) : mine !== undefined) {
      return `CNI_NETNS "${netns}" is not the same file to the daemon`;
    }
  }
  for (const p of paths) {
    const abs = resolveIn(cwd, p);
    if (!view.paths.some((d) => isUnder(abs, d))) {
      return `"${p}" is not under a path the daemon shares with the host`;
    }
  }
  return undefined;
}
