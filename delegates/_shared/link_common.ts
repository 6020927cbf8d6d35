/**
 * Helpers every built-in link delegate (bridge, vxlan, macvlan, ipvlan, loopback) uses: where
 * the host side lives, opening the container netns, kernel errors as CniErrors, best-effort
 * sysctls, idempotent link deletion, and the undo stack of an ADD. The rest lives beside it:
 * `conf_read.ts` (config fields), `veth.ts` (creating links in the container), `iface.ts`
 * (applying an IPAM result), `check.ts` (CHECK), `masq.ts` (ipMasq), `cidr.ts`.
 *
 * Every kernel call here is synchronous FFI on a netlink socket opened inside its netns, so
 * nothing ever awaits inside a netns window (DESIGN.md, "Environment facts").
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { type LinkInfo, Netlink, NetlinkError, NetNs, writeSysctl } from "../../ffi/mod.ts";

/**
 * Where a delegate's "host" side lives. The exported delegates use the process's own netns;
 * tests build delegates with `hostNs` set to a throwaway netns so that bridges, sysctls and
 * iptables rules never touch the real host.
 */
export interface HostOptions {
  /** Path of the netns that plays the host (default: the calling process's netns). */
  hostNs?: string;
}

/** `n` random bytes as lower-case hex. */
export function randomHex(n: number): string {
  const b = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Wraps a kernel failure as code 101 with a sentence naming the action. */
export function kernelError(action: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new CniError(Code.KernelFailure, `${action}: ${text}`, undefined, { cause: err });
}

/** Whether an error is a NetlinkError of the given kind. */
export function isKind(err: unknown, kind: NetlinkError["kind"]): boolean {
  return err instanceof NetlinkError && err.kind === kind;
}

/**
 * Opens the container netns for ADD/CHECK.
 *
 * @throws {CniError} code 3 when CNI_NETNS is missing or names no netns
 */
export function openContainerNs(path: string | undefined): NetNs {
  if (!path) throw new CniError(Code.InvalidEnv, "CNI_NETNS is required");
  try {
    return NetNs.open(path);
  } catch (err) {
    if (isKind(err, "notfound")) {
      throw new CniError(Code.UnknownContainer, `Cannot open netns "${path}": it does not exist`);
    }
    if (isKind(err, "notnetns")) {
      throw new CniError(Code.InvalidNetNS, `Invalid CNI_NETNS "${path}": not a network namespace`);
    }
    throw kernelError(`Cannot open netns "${path}"`, err);
  }
}

/**
 * Opens the container netns for DEL: null when none was given, it is gone, or the path is
 * not a network namespace (nothing of the pod's can be in it).
 */
export function tryOpenNs(path: string | undefined): NetNs | null {
  if (!path) return null;
  try {
    return NetNs.open(path);
  } catch (err) {
    if (isKind(err, "notfound") || isKind(err, "notnetns")) return null;
    throw kernelError(`Cannot open netns "${path}"`, err);
  }
}

/** Opens a netlink socket in the host netns (the process's, or `opts.hostNs`). */
export function openHost(opts: HostOptions): Netlink {
  return Netlink.open(opts.hostNs);
}

/** Writes a sysctl and ignores failures (the reference's `_, _ = sysctl.Sysctl(...)`). */
export function trySysctl(key: string, value: string, ns?: NetNs | string): void {
  try {
    writeSysctl(key, value, ns);
  } catch {
    // Best effort on purpose: e.g. IPv6 sysctls are absent when IPv6 is disabled.
  }
}

/**
 * Deletes a link in `nl`'s netns by name; a missing link is success (DEL is idempotent).
 *
 * @returns whether a link was deleted
 */
export function deleteLinkIfExists(nl: Netlink, name: string): boolean {
  try {
    return nl.deleteLinkIfExists(name);
  } catch (err) {
    throw kernelError(`Cannot delete "${name}"`, err);
  }
}

/**
 * The interface of the first default route in `nl`'s netns (IPv4 first), as the reference's
 * `getDefaultRouteInterfaceName`; undefined when there is none.
 */
export function defaultRouteInterface(nl: Netlink): string | undefined {
  for (const fam of [4, 6] as const) {
    const r = nl.listRoutes({ family: fam, table: 254 }).find((x) =>
      (x.dst === "0.0.0.0/0" || x.dst === "::/0") && x.dev !== undefined
    );
    if (r) return nl.getLink(r.dev!)?.name;
  }
  return undefined;
}

/**
 * The link a conf field names, else the default-route interface of the netns `nl` is in
 * (the reference plugins' rule for macvlan's and ipvlan's `master`, and vxlan's `dev`).
 *
 * @throws {CniError} code 7 naming `field` when neither exists
 */
export function namedOrDefaultLink(nl: Netlink, field: string, name: string | undefined): LinkInfo {
  const chosen = name ?? defaultRouteInterface(nl);
  if (!chosen) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${field}": not set and no default route interface found`,
    );
  }
  const link = nl.getLink(chosen);
  if (!link) {
    throw new CniError(Code.InvalidConfig, `Invalid "${field}": "${chosen}" does not exist`);
  }
  return link;
}

/** The undo steps of an ADD: run in reverse on failure, all of them, errors reported. */
export class Rollback {
  #steps: Array<() => unknown> = [];

  /** Records how to undo a side effect that just succeeded. */
  push(undo: () => unknown): void {
    this.#steps.push(undo);
  }

  /** Undoes everything in reverse order; failures go to stderr (the ADD error wins). */
  async run(): Promise<void> {
    for (const undo of this.#steps.reverse()) {
      try {
        await undo();
      } catch (err) {
        console.error(`podplex: undo step failed: ${err instanceof Error ? err.message : err}`);
      }
    }
    this.#steps = [];
  }
}
