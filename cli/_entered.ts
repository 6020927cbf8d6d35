/**
 * When the program's code began to run: the first module `cli/main.ts` imports, so its
 * evaluation comes before every other module's (the "entry" mark of a traced call).
 *
 * @module
 */

/** `performance.now()` when the entry's modules began to evaluate. */
export const ENTERED_AT: number = performance.now();
