/**
 * One NETLINK_ROUTE socket managed by libnl (nl_socket_alloc / nl_connect / nl_sendto /
 * nl_recv), with the request/acknowledge and dump loops written here. The socket belongs
 * to the netns of the thread that connected it.
 *
 * @module
 */
import { lazyGroup, libc } from "./_lib.ts";
import { kernelError, NetlinkError, NLE, nlError } from "./errors.ts";
import {
  attrStr,
  type MsgWriter,
  NLM_F,
  type NlMsg,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  parseAttrs,
  splitMessages,
  viewOf,
} from "./_msg.ts";

const nl = lazyGroup(
  "nl",
  {
    // struct nl_sock *nl_socket_alloc(void);
    nl_socket_alloc: { parameters: [], result: "pointer" },
    // void nl_socket_free(struct nl_sock *sk);   (closes the fd too)
    nl_socket_free: { parameters: ["pointer"], result: "void" },
    // int nl_connect(struct nl_sock *sk, int protocol);
    nl_connect: { parameters: ["pointer", "i32"], result: "i32" },
    // int nl_socket_get_fd(const struct nl_sock *sk);
    nl_socket_get_fd: { parameters: ["pointer"], result: "i32" },
    // int nl_sendto(struct nl_sock *sk, void *buf, size_t size);
    nl_sendto: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
    // int nl_recv(struct nl_sock *sk, struct sockaddr_nl *nla, unsigned char **buf,
    //             struct ucred **creds);          (*buf is malloc'ed; the caller frees it)
    nl_recv: { parameters: ["pointer", "buffer", "buffer", "pointer"], result: "i32" },
  } as const,
);

/**
 * nl_sendto again, run on a Deno FFI worker thread (`nonblocking`): the kernel handles an
 * rtnetlink request inside the sender's sendmsg, and a device unregistration waits there for
 * an RCU grace period (~20 ms). Off the JS thread, several such waits overlap. Bound in its
 * own group so that the synchronous path never pays for it.
 */
const nlAsync = lazyGroup(
  "nl",
  {
    // int nl_sendto(struct nl_sock *sk, void *buf, size_t size);
    nl_sendto: { parameters: ["pointer", "buffer", "usize"], result: "i32", nonblocking: true },
  } as const,
);

const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NLMSGERR_ATTR_MSG = 1;
/** Dumps interrupted by a concurrent change are retried this often (as netlinksafe does). */
const DUMP_RETRIES = 5;

/** A connected NETLINK_ROUTE socket. */
export class NlSocket {
  #sk: Deno.PointerValue;
  #seq = Math.floor(Date.now() / 1000) & 0xffffff;
  #nla = new Uint8Array(12);
  #bufp = new Uint8Array(8);
  /** Set while a send runs on another thread: libnl's nl_sock is not thread-safe. */
  #busy = false;
  #closeWhenIdle = false;

  /**
   * Connects a socket in the calling thread's netns.
   *
   * @throws {NetlinkError} when libnl cannot allocate or connect it
   */
  constructor() {
    const n = nl();
    const sk = n.nl_socket_alloc();
    if (!sk) throw new NetlinkError("allocate a netlink socket", 5, "other", "Out of memory");
    const r = n.nl_connect(sk, NETLINK_ROUTE);
    if (r < 0) {
      n.nl_socket_free(sk);
      throw nlError("connect a netlink socket", r);
    }
    this.#sk = sk;
    enableExtAck(n.nl_socket_get_fd(sk));
  }

  /** Whether the socket is still open. */
  get open(): boolean {
    return this.#sk !== null;
  }

  /**
   * Frees the socket; calling it again does nothing. While an asynchronous request is in
   * flight the socket is freed when it settles (its thread still uses the nl_sock).
   */
  close(): void {
    if (this.#busy) {
      this.#closeWhenIdle = true;
      return;
    }
    if (this.#sk) {
      nl().nl_socket_free(this.#sk);
      this.#sk = null;
    }
  }

  /**
   * Sends a request with NLM_F_ACK and waits for the kernel's answer.
   *
   * @param op what is attempted, for the error message
   * @returns the data messages the kernel sent before its acknowledgement
   * @throws {NetlinkError} with the kernel's errno (and extended ack text)
   */
  request(op: string, w: MsgWriter): NlMsg[] {
    const r = this.#exchange(op, w);
    if (Array.isArray(r)) return r;
    throw kernelError(op, r.errno, r.extack);
  }

  /**
   * Like {@linkcode NlSocket.request}, but a kernel error comes back as its (positive)
   * errno instead of an exception: for expected misses, e.g. "is this link there?", that
   * should cost no error object (and no binding of the error-text symbols).
   */
  requestOrErrno(op: string, w: MsgWriter): NlMsg[] | number {
    const r = this.#exchange(op, w);
    return Array.isArray(r) ? r : r.errno;
  }

  /**
   * Like {@linkcode NlSocket.request}, but the send (where the kernel does the work) runs on
   * a worker thread and the acknowledgement is read after it returned, when the kernel has
   * already queued it. The socket stays bound to its netns on any thread. The caller owns
   * the socket until the promise settles: any other use meanwhile throws, and close() is
   * deferred until then.
   *
   * @throws {NetlinkError} with the kernel's errno (and extended ack text)
   */
  async requestAsync(op: string, w: MsgWriter): Promise<NlMsg[]> {
    const sk = this.#socket(op);
    const seq = this.#nextSeq();
    const msg = w.finish(seq);
    this.#busy = true;
    try {
      const sent = await nlAsync().nl_sendto(sk, msg, BigInt(msg.length));
      if (sent < 0) throw nlError(op, sent);
      const r = this.#collect(op, sk, seq);
      if (Array.isArray(r)) return r;
      throw kernelError(op, r.errno, r.extack);
    } finally {
      this.#busy = false;
      if (this.#closeWhenIdle) this.close();
    }
  }

  /**
   * Sends a dump request (w's flags must include NLM_F_DUMP) and collects every message,
   * retrying when the kernel flags the dump as interrupted.
   */
  dump(op: string, make: () => MsgWriter): NlMsg[] {
    for (let i = 0;; i++) {
      const msgs = this.#exchange(op, make());
      if (!Array.isArray(msgs)) throw kernelError(op, msgs.errno, msgs.extack);
      if (!msgs.some((m) => m.flags & NLM_F.DUMP_INTR)) return msgs;
      if (i >= DUMP_RETRIES) throw nlError(op, -NLE.DUMP_INTR);
    }
  }

  /** One request and its answers; a kernel error is returned, not thrown. */
  #exchange(op: string, w: MsgWriter): NlMsg[] | { errno: number; extack?: string } {
    const sk = this.#socket(op);
    const seq = this.#nextSeq();
    const msg = w.finish(seq);
    const sent = nl().nl_sendto(sk, msg, BigInt(msg.length));
    if (sent < 0) throw nlError(op, sent);
    return this.#collect(op, sk, seq);
  }

  /** The open, idle nl_sock. */
  #socket(op: string): Deno.PointerObject {
    const sk = this.#sk;
    if (!sk || this.#closeWhenIdle) {
      throw new Error(`Cannot ${op}: the netlink socket is closed`);
    }
    if (this.#busy) {
      throw new Error(`Cannot ${op}: the netlink socket is busy with an asynchronous request`);
    }
    return sk;
  }

  #nextSeq(): number {
    return this.#seq = (this.#seq + 1) >>> 0;
  }

  /** Reads the answers to request `seq` up to its acknowledgement or DONE. */
  #collect(
    op: string,
    sk: Deno.PointerObject,
    seq: number,
  ): NlMsg[] | { errno: number; extack?: string } {
    const out: NlMsg[] = [];
    for (;;) {
      for (const m of splitMessages(this.#recv(op, sk))) {
        if (m.seq !== seq) continue; // a late answer to an earlier, abandoned request
        if (m.type === NLMSG_ERROR) {
          const err = viewOf(m.body).getInt32(0, true);
          if (err === 0) return out;
          return { errno: -err, extack: extackText(m) };
        }
        if (m.type === NLMSG_DONE) {
          // Since Linux 4.x a failed dump reports its error in the DONE payload.
          const err = m.body.length >= 4 ? viewOf(m.body).getInt32(0, true) : 0;
          if (err < 0) return { errno: -err, extack: extackText(m) };
          return out;
        }
        out.push(m);
      }
    }
  }

  /** One datagram, copied out of libnl's malloc'ed buffer. */
  #recv(op: string, sk: Deno.PointerObject): Uint8Array {
    const n = nl().nl_recv(sk, this.#nla, this.#bufp, null);
    if (n < 0) throw nlError(op, n);
    const addr = new DataView(this.#bufp.buffer).getBigUint64(0, true);
    const p = Deno.UnsafePointer.create(addr);
    if (!p) throw new NetlinkError(op, NLE.FAILURE, "other", "Empty netlink answer");
    try {
      const out = new Uint8Array(n);
      new Deno.UnsafePointerView(p).copyInto(out);
      return out;
    } finally {
      libc().free(p);
    }
  }
}

/**
 * Asks for the kernel's error text (extended ack) and short acks. Best effort: an older
 * kernel without these options still works, only with plainer messages.
 */
function enableExtAck(fd: number): void {
  const one = new Uint8Array(new Uint32Array([1]).buffer);
  const c = libc();
  c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
  c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
}

/** The NLMSGERR_ATTR_MSG string of an error or done message, if the kernel sent one. */
function extackText(m: NlMsg): string | undefined {
  if (!(m.flags & NLM_F.ACK_TLVS)) return undefined;
  let off = 4; // int error
  if (m.type === NLMSG_ERROR) {
    const origLen = m.body.length >= 8 ? viewOf(m.body).getUint32(4, true) : NLMSG_HDRLEN;
    off += m.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : origLen;
  }
  if (off > m.body.length) return undefined;
  return attrStr(parseAttrs(m.body.subarray(off)), NLMSGERR_ATTR_MSG) || undefined;
}
