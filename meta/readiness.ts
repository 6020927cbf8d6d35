/**
 * `readinessIndicatorFile` in ADD, as Multus does it: the default network's DaemonSet writes
 * the file when it is ready (flannel's subnet.env, Calico's...); until then an ADD would wire
 * the pod to a network that is not there. ADD waits for the file with a bounded backoff and
 * answers code 11 (try again later: kubelet retries the sandbox) when it never appears. DEL
 * never waits: a pod must be torn down whether or not the default network is up.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";

/** How ADD waits: polls from `firstMs`, doubling up to `maxStepMs`, `budgetMs` in all. */
export interface ReadinessBounds {
  firstMs: number;
  maxStepMs: number;
  budgetMs: number;
}

/** Multus polls every second for 45 s; podplex starts faster and backs off to that step. */
export const READINESS_BOUNDS: Readonly<ReadinessBounds> = {
  firstMs: 50,
  maxStepMs: 1000,
  budgetMs: 45_000,
};

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw CniError.wrap(e, Code.IoFailure, `Cannot stat the readiness indicator file "${path}"`);
  }
}

/**
 * Resolves once `file` exists (at once when no file is configured).
 *
 * @param file the podplex conf's `readinessIndicatorFile`
 * @throws {CniError} code 11 when it did not appear within `bounds.budgetMs`
 */
export async function awaitReadiness(
  file: string | undefined,
  bounds: ReadinessBounds = READINESS_BOUNDS,
): Promise<void> {
  if (!file) return;
  const start = performance.now();
  let step = bounds.firstMs;
  while (!(await exists(file))) {
    const left = bounds.budgetMs - (performance.now() - start);
    if (left <= 0) {
      throw new CniError(
        Code.TryAgainLater,
        `Not ready: the readiness indicator file "${file}" did not appear within ` +
          `${bounds.budgetMs / 1000} s (is the default network running?)`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(step, left)));
    step = Math.min(step * 2, bounds.maxStepMs);
  }
}
