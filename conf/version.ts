/**
 * CNI spec versions: the list podplex speaks, comparison, and the "highest wins" rule.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";

/** Every spec version podplex accepts in configs and can produce results for. */
export const SUPPORTED_VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
] as const;

/** The newest spec version podplex implements. */
export const CURRENT_VERSION = "1.1.0";

/** A version a config may name when it names none (spec: a missing cniVersion is 0.1.0). */
export const IMPLICIT_VERSION = "0.1.0";

const SEMVER = /^(\d+)\.(\d+)\.(\d+)$/;

/**
 * Compares two `major.minor.patch` versions.
 *
 * @returns negative, zero or positive as `a` is older than, equal to or newer than `b`
 * @throws {CniError} code 1 when either is not a version
 */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  return pa[0] - pb[0] || pa[1] - pb[1] || pa[2] - pb[2];
}

function parseVersion(v: string): [number, number, number] {
  const m = SEMVER.exec(v);
  if (!m) {
    throw new CniError(Code.IncompatibleVersion, `Invalid version "${v}"`);
  }
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Whether podplex speaks the given version. */
export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/**
 * Checks that a config's version is one podplex speaks.
 *
 * @throws {CniError} code 1 naming the version and the supported ones
 */
export function requireSupported(v: string): string {
  if (!isSupported(v)) {
    throw new CniError(
      Code.IncompatibleVersion,
      `Incompatible CNI version "${v}"`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  return v;
}

/** Whether version `v` is at least `min` (e.g. CHECK needs 0.4.0, GC needs 1.1.0). */
export function atLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}
