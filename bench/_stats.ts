/**
 * Order statistics for the bench: medians and spread of small samples (nearest-rank on the
 * linear interpolation of the sorted sample, as most bench tools report them).
 *
 * @module
 */

/** A sample's summary in milliseconds (or in whatever unit the sample is in). */
export interface Summary {
  n: number;
  p10: number;
  p50: number;
  p90: number;
  min: number;
  max: number;
}

/** The `q` quantile (0..1) of `xs` by linear interpolation; NaN for an empty sample. */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** p10, median, p90, min and max of `xs`. */
export function summarize(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    p10: quantile(xs, 0.1),
    p50: quantile(xs, 0.5),
    p90: quantile(xs, 0.9),
    min: xs.length ? Math.min(...xs) : NaN,
    max: xs.length ? Math.max(...xs) : NaN,
  };
}

/** Element-wise sums of two equally long samples (ADD_i + DEL_i of the same pod). */
export function pairSum(a: readonly number[], b: readonly number[]): number[] {
  return a.slice(0, Math.min(a.length, b.length)).map((x, i) => x + b[i]);
}

/** Rounds to two decimals for the JSON and the table. */
export function r2(x: number): number {
  return Math.round(x * 100) / 100;
}
