/**
 * Hex text of bytes, for lease records and the keeper protocol.
 *
 * @module
 */

/** Lowercase hex of bytes. */
export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Bytes of lowercase or uppercase hex. @throws {TypeError} on odd length or a bad digit */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new TypeError(`Invalid hex "${s}"`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
