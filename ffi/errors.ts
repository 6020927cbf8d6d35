/**
 * NetlinkError: the one error type of `ffi/`, for netlink (libnl NLE_* codes) and libc
 * (errno) failures alike, with a coarse `kind` callers branch on.
 *
 * @module
 */
import { lazyGroup, strerror } from "./_lib.ts";

/** The few conditions callers handle differently; everything else is "other". */
export type NetlinkErrorKind =
  | "notfound"
  | "exists"
  | "notsupported"
  | "busy"
  | "notnetns"
  | "other";

/** libnl's NLE_* codes that podplex branches on (netlink/errno.h). */
export const NLE = {
  FAILURE: 1,
  EXIST: 6,
  INVAL: 7,
  OPNOTSUPP: 10,
  AF_NOSUPPORT: 11,
  OBJ_NOTFOUND: 12,
  NOATTR: 13,
  NOADDR: 19,
  BUSY: 25,
  NODEV: 31,
  DUMP_INTR: 33,
} as const;

/** errno values that podplex branches on (asm-generic/errno*.h). */
export const ERRNO = {
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EAGAIN: 11,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRNOTAVAIL: 99,
} as const;

const nleKinds = new Map<number, NetlinkErrorKind>([
  [NLE.EXIST, "exists"],
  [NLE.NODEV, "notfound"],
  [NLE.OBJ_NOTFOUND, "notfound"],
  [NLE.NOADDR, "notfound"],
  [NLE.OPNOTSUPP, "notsupported"],
  [NLE.AF_NOSUPPORT, "notsupported"],
  // libnl answers an unknown link kind it cannot encode with NLE_NOATTR.
  [NLE.NOATTR, "notsupported"],
  [NLE.BUSY, "busy"],
]);

const errnoKinds = new Map<number, NetlinkErrorKind>([
  [ERRNO.ENOENT, "notfound"],
  [ERRNO.ESRCH, "notfound"],
  [ERRNO.ENODEV, "notfound"],
  [ERRNO.EADDRNOTAVAIL, "notfound"],
  [ERRNO.EEXIST, "exists"],
  [ERRNO.EOPNOTSUPP, "notsupported"],
  [ERRNO.EAFNOSUPPORT, "notsupported"],
  [ERRNO.EPROTONOSUPPORT, "notsupported"],
  [ERRNO.EBUSY, "busy"],
]);

/**
 * A failed netlink, netns or sysctl operation.
 *
 * `code` is a positive libnl NLE_* code for netlink failures and an errno value for libc
 * ones (netns, sysctl); `errno` is the kernel's errno whenever it is known.
 *
 * @example
 * ```ts
 * try { nl.deleteLink("eth1"); } catch (e) {
 *   if (!(e instanceof NetlinkError && e.kind === "notfound")) throw e;
 * }
 * ```
 */
export class NetlinkError extends Error {
  /** What was attempted, e.g. `add link "veth1"`. */
  readonly op: string;
  /** libnl NLE_* code (positive) or errno. */
  readonly code: number;
  /** The coarse condition. */
  readonly kind: NetlinkErrorKind;
  /** The kernel's or libc's errno, when known. */
  readonly errno: number | undefined;

  /**
   * @param op what was attempted (becomes "Cannot <op>: <reason>")
   * @param code NLE_* code or errno
   * @param kind the coarse condition
   * @param reason the library's text for the code
   * @param errno the errno, when known
   */
  constructor(op: string, code: number, kind: NetlinkErrorKind, reason: string, errno?: number) {
    super(`Cannot ${op}: ${reason}`);
    this.name = "NetlinkError";
    this.op = op;
    this.code = code;
    this.kind = kind;
    this.errno = errno;
  }
}

const nlErr = lazyGroup(
  "nl",
  {
    // const char *nl_geterror(int error);
    nl_geterror: { parameters: ["i32"], result: "pointer" },
    // int nl_syserr2nlerr(int error);
    nl_syserr2nlerr: { parameters: ["i32"], result: "i32" },
  } as const,
);

/** libnl's text for an NLE_* code (sign ignored). */
function nlText(code: number): string {
  const p = nlErr().nl_geterror(Math.abs(code));
  return p ? Deno.UnsafePointerView.getCString(p) : `NLE ${code}`;
}

/**
 * A NetlinkError from a libnl return value (negative NLE_* code).
 *
 * @param op what was attempted
 * @param ret the negative return value
 */
export function nlError(op: string, ret: number): NetlinkError {
  const code = Math.abs(ret);
  return new NetlinkError(op, code, nleKinds.get(code) ?? "other", nlText(code));
}

/**
 * A NetlinkError from the kernel's errno in a netlink error message: the code is libnl's
 * NLE_* translation, the text the more precise strerror (plus the kernel's extended ack
 * message when it sent one).
 *
 * @param op what was attempted
 * @param err the errno (sign ignored)
 * @param extack the kernel's NLMSGERR_ATTR_MSG text, if any
 */
export function kernelError(op: string, err: number, extack?: string): NetlinkError {
  const errnoVal = Math.abs(err);
  const code = Math.abs(nlErr().nl_syserr2nlerr(errnoVal));
  const kind = errnoKinds.get(errnoVal) ?? nleKinds.get(code) ?? "other";
  const reason = extack ? `${strerror(errnoVal)} (${extack})` : strerror(errnoVal);
  return new NetlinkError(op, code, kind, reason, errnoVal);
}

/**
 * A NetlinkError from a failed libc call; `code` is the errno.
 *
 * @param op what was attempted
 * @param err the errno read right after the call
 */
export function errnoError(op: string, err: number): NetlinkError {
  return new NetlinkError(op, err, errnoKinds.get(err) ?? "other", strerror(err), err);
}
