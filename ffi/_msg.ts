/**
 * Netlink message encoding and decoding in TypeScript. A request is built in one buffer and
 * handed to libnl in one call; building it attribute by attribute through libnl would cost
 * an FFI call (and a bound symbol) per attribute.
 *
 * @module
 */

/** struct nlmsghdr is 16 bytes; attributes and messages are 4-byte aligned. */
export const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
/** Set on attributes that hold attributes (the kernel's strict validation wants it). */
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** nlmsg_flags. */
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  /** On an NLMSG_ERROR: the original request is not echoed (NETLINK_CAP_ACK). */
  CAPPED: 0x100,
  /** On an NLMSG_ERROR: extended ack attributes follow. */
  ACK_TLVS: 0x200,
} as const;

/** Control message types. */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

const align = (n: number) => (n + 3) & ~3;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Builds one netlink request: header, a fixed family struct, then attributes. */
export class MsgWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = NLMSG_HDRLEN;
  #nests: number[] = [];

  /**
   * @param type the message type (RTM_*)
   * @param flags NLM_F_* (NLM_F_REQUEST is always added)
   */
  constructor(readonly type: number, readonly flags: number) {}

  #grow(extra: number): void {
    if (this.#len + extra <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + extra + 64));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /**
   * Appends a zeroed fixed struct (ifinfomsg, ifaddrmsg, rtmsg, ndmsg) and returns a
   * DataView on it to fill in. Fill it before adding attributes: the buffer may move when
   * it grows, and the view would then point at the old copy.
   */
  struct(size: number): DataView {
    this.#grow(align(size));
    const off = this.#len;
    this.#len += align(size);
    return new DataView(this.#buf.buffer, off, size);
  }

  /** Appends one attribute with raw bytes. */
  bytes(type: number, data: Uint8Array): this {
    const len = NLA_HDRLEN + data.length;
    this.#grow(align(len));
    this.#view.setUint16(this.#len, len, true);
    this.#view.setUint16(this.#len + 2, type, true);
    this.#buf.set(data, this.#len + NLA_HDRLEN);
    this.#buf.fill(0, this.#len + len, this.#len + align(len));
    this.#len += align(len);
    return this;
  }

  /** Appends a u8 attribute. */
  u8(type: number, v: number): this {
    return this.bytes(type, Uint8Array.of(v & 0xff));
  }

  /** Appends a host-order u16 attribute. */
  u16(type: number, v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    return this.bytes(type, b);
  }

  /** Appends a network-order (big-endian) u16 attribute, e.g. a UDP port. */
  be16(type: number, v: number): this {
    return this.bytes(type, Uint8Array.of((v >> 8) & 0xff, v & 0xff));
  }

  /** Appends a host-order u32 attribute. */
  u32(type: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return this.bytes(type, b);
  }

  /** Appends a NUL-terminated string attribute. */
  str(type: number, s: string): this {
    const e = encoder.encode(s);
    const b = new Uint8Array(e.length + 1);
    b.set(e);
    return this.bytes(type, b);
  }

  /** Opens a nested attribute; close it with {@linkcode MsgWriter.end}. */
  begin(type: number): this {
    this.#grow(NLA_HDRLEN);
    this.#nests.push(this.#len);
    this.#view.setUint16(this.#len + 2, type | NLA_F_NESTED, true);
    this.#len += NLA_HDRLEN;
    return this;
  }

  /** Closes the innermost nested attribute. */
  end(): this {
    const start = this.#nests.pop();
    if (start === undefined) throw new Error("MsgWriter.end() without begin()");
    this.#view.setUint16(start, this.#len - start, true);
    return this;
  }

  /** The finished message with the given sequence number. */
  finish(seq: number): Uint8Array<ArrayBuffer> {
    if (this.#nests.length) throw new Error("MsgWriter.finish() with an open nest");
    this.#view.setUint32(0, this.#len, true);
    this.#view.setUint16(4, this.type, true);
    this.#view.setUint16(6, this.flags | NLM_F.REQUEST, true);
    this.#view.setUint32(8, seq >>> 0, true);
    this.#view.setUint32(12, 0, true);
    return this.#buf.slice(0, this.#len);
  }
}

/** One received netlink message; `body` is everything after the 16-byte header. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  body: Uint8Array;
}

/** Splits a received datagram into its messages. */
export function splitMessages(buf: Uint8Array): NlMsg[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: view.getUint16(off + 4, true),
      flags: view.getUint16(off + 6, true),
      seq: view.getUint32(off + 8, true),
      body: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align(len);
  }
  return out;
}

/** Attributes by type (nested and byte-order flags masked off; the last one wins). */
export type Attrs = Map<number, Uint8Array>;

/** Parses the attributes in `buf` from `offset` (the size of the fixed struct). */
export function parseAttrs(buf: Uint8Array, offset = 0): Attrs {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Attrs = new Map();
  let off = align(offset);
  while (off + NLA_HDRLEN <= buf.length) {
    const len = view.getUint16(off, true);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    out.set(
      view.getUint16(off + 2, true) & NLA_TYPE_MASK,
      buf.subarray(off + NLA_HDRLEN, off + len),
    );
    off += align(len);
  }
  return out;
}

/** A view on an attribute's or struct's bytes. */
export function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads a u8 attribute. */
export function attrU8(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 1 ? b[0] : undefined;
}

/** Reads a host-order u32 attribute. */
export function attrU32(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 4 ? viewOf(b).getUint32(0, true) : undefined;
}

/** Reads a host-order s32 attribute. */
export function attrS32(a: Attrs, type: number): number | undefined {
  const b = a.get(type);
  return b && b.length >= 4 ? viewOf(b).getInt32(0, true) : undefined;
}

/** Reads a string attribute (up to its NUL). */
export function attrStr(a: Attrs, type: number): string | undefined {
  const b = a.get(type);
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return decoder.decode(nul < 0 ? b : b.subarray(0, nul));
}
