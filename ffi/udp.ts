/**
 * IPv4 UDP sockets through libc, for the DHCP client: bound to one device
 * (SO_BINDTODEVICE), allowed to broadcast, bound to a local address and port (0.0.0.0:68
 * while the interface has no address yet).
 *
 * A socket belongs to the netns of the thread that creates it, so {@linkcode openUdp} is
 * synchronous and meant to run inside a `withNetns` window; the socket can be used anywhere
 * afterwards. Receiving waits in poll(2) on an FFI worker thread (`nonblocking`), so a wait
 * never blocks the event loop, and reads with MSG_DONTWAIT on the calling thread.
 *
 * @module
 */
import { cstr, errno, lazyGroup, libc } from "./_lib.ts";
import { ERRNO, errnoError } from "./errors.ts";

const udp = lazyGroup(
  "libc",
  {
    // int socket(int domain, int type, int protocol);
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    // int bind(int fd, const struct sockaddr *addr, socklen_t len);
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    // ssize_t sendto(int fd, const void *buf, size_t len, int flags,
    //                const struct sockaddr *to, socklen_t tolen);
    sendto: {
      parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
      result: "isize",
    },
    // ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
    //                  struct sockaddr *from, socklen_t *fromlen);
    recvfrom: {
      parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
      result: "isize",
    },
  } as const,
);

/** poll(2) on a worker thread: the wait for a datagram must not hold the event loop. */
const waiter = lazyGroup(
  "libc",
  {
    // int poll(struct pollfd *fds, nfds_t nfds, int timeout);
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  } as const,
);

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_UDP = 17;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_BINDTODEVICE = 25;
const MSG_DONTWAIT = 0x40;
const POLLIN = 1;
/** The longest single poll: a closing socket waits at most this long for its poller. */
const POLL_SLICE_MS = 250;

/** Options of {@linkcode openUdp}. */
export interface UdpOptions {
  /** The device the socket sends and receives on only (SO_BINDTODEVICE). */
  device?: string;
  /** The local IPv4 address to bind (default 0.0.0.0). */
  address?: string;
  /** The local port to bind (default 0: any). */
  port?: number;
  /** Allow sending to broadcast addresses (SO_BROADCAST). */
  broadcast?: boolean;
  /** SO_REUSEADDR: two clients in one netns may both bind port 68 on different devices. */
  reuseAddr?: boolean;
}

/** One received datagram and who sent it. */
export interface Datagram {
  data: Uint8Array;
  /** The sender's IPv4 address, dotted. */
  address: string;
  port: number;
}

function sockaddrIn(address: string, port: number): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`Invalid IPv4 address "${address}"`);
  }
  sa.set(parts, 4);
  return sa;
}

function setIntOpt(fd: number, name: number, value: number, op: string): void {
  const v = new Uint8Array(new Int32Array([value]).buffer);
  if (libc().setsockopt(fd, SOL_SOCKET, name, v, 4) < 0) throw errnoError(op, errno());
}

/** An open, nonblocking IPv4 UDP socket (see the module doc). */
export class UdpSocket implements Disposable {
  #fd: number;
  #polling: Promise<unknown> | undefined;
  #closeWhenIdle = false;
  readonly #pollfd = new Uint8Array(8);

  /** @param fd an open nonblocking UDP socket, owned from now on */
  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** @internal used by {@linkcode openUdp} */
  static adopt(fd: number): UdpSocket {
    return new UdpSocket(fd);
  }

  /** Whether the socket is open. */
  get open(): boolean {
    return this.#fd >= 0 && !this.#closeWhenIdle;
  }

  /**
   * Sends one datagram.
   *
   * @throws {NetlinkError} with the errno (e.g. ENETUNREACH, ENODEV when the device went)
   */
  send(data: Uint8Array, address: string, port: number): void {
    const fd = this.#require("send a datagram");
    const to = sockaddrIn(address, port);
    const buf = new Uint8Array(data);
    const n = Number(udp().sendto(fd, buf, BigInt(buf.length), 0, to, 16));
    if (n < 0) throw errnoError(`send a datagram to ${address}:${port}`, errno());
  }

  /**
   * Waits up to `timeoutMs` for a datagram (the wait runs on a worker thread).
   *
   * @returns the datagram, or undefined when none came in time
   * @throws {NetlinkError} when the socket fails or is closed meanwhile
   */
  async receive(timeoutMs: number): Promise<Datagram | undefined> {
    const deadline = performance.now() + Math.max(0, timeoutMs);
    for (;;) {
      const got = this.#read();
      if (got) return got;
      const left = deadline - performance.now();
      if (left <= 0 || !this.open) return undefined;
      await this.#poll(Math.min(Math.ceil(left), POLL_SLICE_MS));
    }
  }

  /** One datagram if one is queued (MSG_DONTWAIT), else undefined. */
  #read(): Datagram | undefined {
    const fd = this.#require("receive a datagram");
    const buf = new Uint8Array(2048);
    const from = new Uint8Array(16);
    const len = new Uint8Array(new Uint32Array([16]).buffer);
    const n = Number(udp().recvfrom(fd, buf, 2048n, MSG_DONTWAIT, from, len));
    if (n < 0) {
      const e = errno();
      if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return undefined;
      throw errnoError("receive a datagram", e);
    }
    const port = new DataView(from.buffer).getUint16(2, false);
    return { data: buf.slice(0, n), address: Array.from(from.subarray(4, 8)).join("."), port };
  }

  async #poll(ms: number): Promise<void> {
    const v = new DataView(this.#pollfd.buffer);
    v.setInt32(0, this.#fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt16(6, 0, true);
    const p = waiter().poll(this.#pollfd, 1n, ms);
    this.#polling = p;
    try {
      await p;
    } finally {
      this.#polling = undefined;
      if (this.#closeWhenIdle) this.#closeNow();
    }
  }

  #require(op: string): number {
    if (this.#fd < 0 || this.#closeWhenIdle) throw new Error(`Cannot ${op}: the socket is closed`);
    return this.#fd;
  }

  /**
   * Closes the socket; calling it again does nothing. While a poll runs on its worker
   * thread the descriptor is closed when that poll returns (at most a quarter second), so
   * the number is never reused under it.
   */
  close(): void {
    if (this.#polling) {
      this.#closeWhenIdle = true;
      return;
    }
    this.#closeNow();
  }

  #closeNow(): void {
    if (this.#fd >= 0) {
      libc().close(this.#fd);
      this.#fd = -1;
    }
  }

  /** Closes the socket (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens an IPv4 UDP socket in the calling thread's netns (run it inside `withNetns`).
 *
 * @throws {NetlinkError} with the errno of the step that failed (ENODEV: no such device;
 *   EADDRINUSE: the port is taken on that device)
 */
export function openUdp(opts: UdpOptions = {}): UdpSocket {
  const fd = udp().socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) throw errnoError("open a UDP socket", errno());
  try {
    if (opts.reuseAddr) setIntOpt(fd, SO_REUSEADDR, 1, "set SO_REUSEADDR");
    if (opts.broadcast) setIntOpt(fd, SO_BROADCAST, 1, "set SO_BROADCAST");
    if (opts.device) {
      const dev = cstr(opts.device);
      if (libc().setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, dev.length) < 0) {
        throw errnoError(`bind a UDP socket to device "${opts.device}"`, errno());
      }
    }
    const address = opts.address ?? "0.0.0.0";
    const port = opts.port ?? 0;
    if (udp().bind(fd, sockaddrIn(address, port), 16) < 0) {
      throw errnoError(`bind a UDP socket to ${address}:${port}`, errno());
    }
  } catch (e) {
    libc().close(fd);
    throw e;
  }
  return UdpSocket.adopt(fd);
}
