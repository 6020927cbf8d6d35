/**
 * The one error type of podplex: a CNI error with the spec's codes.
 *
 * @module
 */

/** Error codes from the CNI spec 1.1.0 ("Error" section) and podplex's own (100+). */
export const Code = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration. */
  UnsupportedField: 2,
  /** Container unknown or does not exist. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables. */
  InvalidEnv: 4,
  /** I/O failure, e.g. reading stdin. */
  IoFailure: 5,
  /** Failed to decode content (stdin is not JSON). */
  DecodeFailure: 6,
  /** Invalid network config. */
  InvalidConfig: 7,
  /** Invalid network namespace: CNI_NETNS is the plugin's own (Go's ErrInvalidNetNS). */
  InvalidNetNS: 8,
  /** Try again later: a transient condition (a lock held, a store unreachable). */
  TryAgainLater: 11,
  /** STATUS: the plugin is not available for ADD. */
  NotAvailable: 50,
  /** STATUS: not available, and existing containers may be degraded. */
  NotAvailableDegraded: 51,
  /** podplex: a network named by a pod or by the conf cannot be found. */
  NetworkNotFound: 100,
  /** podplex: a kernel (netlink, sysctl, netns) operation failed. */
  KernelFailure: 101,
  /** podplex: a delegate (built-in or external) failed; details name it. */
  DelegateFailed: 102,
  /** podplex: an IPAM pool has no free address. */
  AddressExhausted: 103,
  /** podplex: the Kubernetes API answered with an error or could not be reached. */
  ApiFailure: 104,
  /** podplex: an interface or address this ADD needs exists already. */
  AlreadyExists: 105,
  /** Anything unexpected, wrapped once at the top (as the Go library does). */
  Internal: 999,
} as const;

/** A CNI error code number. */
export type CodeNumber = typeof Code[keyof typeof Code] | number;

/** The JSON shape of a CNI error as printed on stdout. */
export interface CniErrorJson {
  /** The version the error is given in. */
  cniVersion: string;
  /** The CNI error code. */
  code: number;
  /** A short message. */
  msg: string;
  /** Longer detail. */
  details?: string;
}

/**
 * An error that carries a CNI error code. Messages are sentences without a final period
 * that name the field or value at fault.
 *
 * @example
 * ```ts
 * throw new CniError(Code.InvalidConfig, `Invalid "mtu": 70000 is larger than 65535`);
 * ```
 */
export class CniError extends Error {
  /** The CNI error code. */
  readonly code: number;
  /** Longer detail text (the spec's `details`). */
  readonly details: string | undefined;

  /**
   * Creates an error with the spec's fields.
   *
   * @param code a code from {@linkcode Code}
   * @param msg a short sentence naming what failed
   * @param details longer detail, e.g. the text of an underlying error
   * @param options standard `ErrorOptions` (a `cause`)
   */
  constructor(code: CodeNumber, msg: string, details?: string, options?: ErrorOptions) {
    super(msg, options);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  /** The error as the JSON object a plugin prints, for the given result version. */
  toJSON(cniVersion = "1.1.0"): CniErrorJson {
    const out: CniErrorJson = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }

  /**
   * Wraps anything thrown into a CniError: CniErrors pass unchanged, other errors become
   * code 999 (or `fallbackCode`) with their message kept.
   */
  static wrap(err: unknown, fallbackCode: CodeNumber = Code.Internal, prefix?: string): CniError {
    if (err instanceof CniError) {
      if (!prefix) return err;
      return new CniError(err.code, `${prefix}: ${err.message}`, err.details, { cause: err });
    }
    const text = err instanceof Error ? err.message : String(err);
    return new CniError(fallbackCode, prefix ? `${prefix}: ${text}` : text, undefined, {
      cause: err,
    });
  }
}

/** One error's text with its details, as a joined error lists it. */
function describeError(e: CniError): string {
  return e.details ? `${e.message} (${e.details})` : e.message;
}

/**
 * Joins the errors of steps that were all tried (GC of every plugin, DEL of every
 * attachment): one error is returned as it is; several become one with the first one's code,
 * `summary` as the message and every error's text in the details.
 *
 * @example
 * ```ts
 * if (errors.length) throw joinErrors(errors, `GC of network "lan" failed`);
 * ```
 */
export function joinErrors(errors: readonly CniError[], summary: string): CniError {
  if (errors.length === 1) return errors[0];
  return new CniError(
    errors[0].code,
    `${summary} (${errors.length} errors)`,
    errors.map(describeError).join("; "),
  );
}
