/**
 * The DHCPv4 client exchanges (RFC 2131): DISCOVER/OFFER/REQUEST/ACK (with NAK), RENEW
 * (unicast REQUEST to the server), REBIND (broadcast REQUEST) and RELEASE, over a
 * {@linkcode Transport} (a UDP socket bound to the interface in the pod's netns).
 *
 * Every request sets the BROADCAST flag: the interface has no address yet, so a reply
 * unicast to the offered address would not reach the socket. Retries follow the reference
 * daemon (plugins/ipam/dhcp lease.go): four fast retries 2 s ± 1 s apart, then 4 s doubling
 * up to `resendMaxMs`, everything bounded by `resendTimeoutMs`.
 *
 * @module
 */
import {
  BOOTREPLY,
  BOOTREQUEST,
  decodeMessage,
  type DhcpMessage,
  encodeMessage,
  FLAG_BROADCAST,
  ipBytes,
  type LeaseOptions,
  leaseOptions,
  messageType,
  MSG,
  OPT,
} from "./message.ts";

/** Where messages go: a UDP socket on port 68 of the pod's interface. */
export interface Transport {
  /** Sends to `address`:67. */
  send(data: Uint8Array, address: string): void;
  /** The next datagram within `timeoutMs`, or undefined. */
  receive(timeoutMs: number): Promise<Uint8Array | undefined>;
}

/** What identifies the client and what it sends with every request. */
export interface ClientParams {
  /** The interface's hardware address (chaddr). */
  mac: Uint8Array;
  /** Option 61's value (type byte included). */
  clientId: Uint8Array;
  /** Options sent with DISCOVER and REQUEST (`provide`, the parameter request list). */
  options: Map<number, Uint8Array>;
  /** How long to wait for each reply. */
  timeoutMs: number;
  /** The longest pause between attempts. */
  resendMaxMs: number;
  /** Give up on an acquisition after this long. */
  resendTimeoutMs: number;
  /** Stops waiting (daemon shutdown, DEL meanwhile). */
  signal?: AbortSignal;
}

/** A bound lease: the ACK and what it says. */
export interface Lease {
  address: string;
  serverId: string;
  /** The ACK as received, so a restarted daemon rebuilds everything from it. */
  ack: Uint8Array;
  options: LeaseOptions;
  /** When the ACK came (ms since the epoch); the lease times count from here. */
  boundAt: number;
}

/** The server said no (DHCPNAK). */
export class DhcpNakError extends Error {
  /** @param msg the server's text (option 56), if any */
  constructor(msg?: string) {
    super(`The DHCP server refused the request (DHCPNAK${msg ? `: ${msg}` : ""})`);
    this.name = "DhcpNakError";
  }
}

/** No server answered in time. */
export class DhcpTimeoutError extends Error {
  /** @param what the exchange that timed out */
  constructor(what: string) {
    super(`No DHCP server answered the ${what}`);
    this.name = "DhcpTimeoutError";
  }
}

const BROADCAST = "255.255.255.255";
const ZERO = "0.0.0.0";
/** NAKs answered by an immediate new DISCOVER before the usual backoff applies. */
const MAX_QUICK_NAK_RETRIES = 5;
/** The reference's default when the server sends no lease time. */
const DEFAULT_LEASE_SECONDS = 3600;

/** Seconds of the lease, T1 and T2 (defaults: 1 h, 50 %, 85 %, as the reference). */
export function leaseTimes(o: LeaseOptions): { lease: number; t1: number; t2: number } {
  const lease = o.leaseTime ?? DEFAULT_LEASE_SECONDS;
  return {
    lease,
    t1: o.renewalTime ?? Math.floor(lease / 2),
    t2: o.rebindingTime ?? Math.floor(lease * 85 / 100),
  };
}

function newXid(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function request(type: number, p: ClientParams, xid: number, ciaddr = ZERO): DhcpMessage {
  const options = new Map<number, Uint8Array>([[OPT.MESSAGE_TYPE, Uint8Array.of(type)]]);
  options.set(OPT.CLIENT_ID, p.clientId);
  if (type !== MSG.RELEASE) { for (const [k, v] of p.options) options.set(k, v); }
  return {
    op: BOOTREQUEST,
    xid,
    secs: 0,
    // A RELEASE expects no reply; every other request asks for a broadcast one.
    flags: type === MSG.RELEASE ? 0 : FLAG_BROADCAST,
    ciaddr,
    yiaddr: ZERO,
    siaddr: ZERO,
    giaddr: ZERO,
    chaddr: p.mac,
    options,
  };
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length >= b.length && b.every((x, i) => a[i] === x);
}

function aborted(p: ClientParams): boolean {
  return p.signal?.aborted ?? false;
}

/**
 * Waits up to `p.timeoutMs` for a reply to `xid` of one of `types`, dropping anything else
 * (other clients' replies, malformed datagrams).
 */
async function awaitReply(
  t: Transport,
  p: ClientParams,
  xid: number,
  types: number[],
  accept: (m: DhcpMessage) => boolean = () => true,
): Promise<DhcpMessage | undefined> {
  const deadline = performance.now() + p.timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0 || aborted(p)) return undefined;
    const data = await t.receive(left);
    if (!data) return undefined;
    let m: DhcpMessage;
    try {
      m = decodeMessage(data);
    } catch {
      continue;
    }
    if (m.op !== BOOTREPLY || m.xid !== xid || !sameMac(m.chaddr, p.mac)) continue;
    if (types.includes(messageType(m)) && accept(m)) return m;
  }
}

function toLease(ack: DhcpMessage, raw: Uint8Array, fallbackServer: string): Lease {
  const options = leaseOptions(ack);
  return {
    address: ack.yiaddr,
    serverId: options.serverId ?? fallbackServer,
    ack: raw,
    options,
    boundAt: Date.now(),
  };
}

/** Sends a REQUEST and waits for its ACK; a NAK throws. */
async function requestAck(
  t: Transport,
  p: ClientParams,
  msg: DhcpMessage,
  to: string,
  what: string,
): Promise<Lease> {
  const raw = encodeMessage(msg);
  t.send(raw, to);
  const reply = await awaitReply(t, p, msg.xid, [MSG.ACK, MSG.NAK]);
  if (!reply) throw new DhcpTimeoutError(what);
  if (messageType(reply) === MSG.NAK) throw new DhcpNakError(leaseOptions(reply).message);
  return toLease(reply, encodeMessage(reply), to);
}

/** One DISCOVER → OFFER → REQUEST → ACK attempt. */
async function exchangeOnce(t: Transport, p: ClientParams): Promise<Lease> {
  const xid = newXid();
  t.send(encodeMessage(request(MSG.DISCOVER, p, xid)), BROADCAST);
  const offer = await awaitReply(t, p, xid, [MSG.OFFER], (m) => m.yiaddr !== ZERO);
  if (!offer) throw new DhcpTimeoutError("DHCPDISCOVER");
  const serverId = leaseOptions(offer).serverId;
  if (!serverId) throw new DhcpTimeoutError("DHCPDISCOVER with an offer naming its server");
  const req = request(MSG.REQUEST, p, xid);
  req.options.set(OPT.REQUESTED_IP, ipBytes(offer.yiaddr));
  req.options.set(OPT.SERVER_ID, ipBytes(serverId));
  return await requestAck(t, p, req, BROADCAST, "DHCPREQUEST");
}

/** The reference's pause before retry `n` (0-based): 2 s ± 1 s four times, then backoff. */
export function retryDelayMs(n: number, resendMaxMs: number, rand = Math.random): number {
  const jitter = (2 * rand() - 1) * 1000;
  if (n < 4) return 2000 + jitter;
  const base = Math.min(4000 * 2 ** (n - 4), Math.max(4000, resendMaxMs));
  return base + jitter;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Obtains a lease: DISCOVER → OFFER → REQUEST → ACK, retried until `p.resendTimeoutMs` has
 * passed (a NAK restarts from DISCOVER at once, up to five times in a row).
 *
 * @throws {DhcpTimeoutError} when no attempt succeeded in time (the last NAK's error when a
 *   server kept refusing)
 */
export async function acquire(t: Transport, p: ClientParams): Promise<Lease> {
  const deadline = performance.now() + p.resendTimeoutMs;
  let last: unknown;
  let naks = 0;
  for (let n = 0;; n++) {
    try {
      return await exchangeOnce(t, p);
    } catch (e) {
      if (!(e instanceof DhcpTimeoutError || e instanceof DhcpNakError)) throw e;
      last = e;
    }
    // A NAK usually means another client took the offered address meanwhile (a server may
    // offer one address to two clients): start over at once, a few times in a row.
    if (last instanceof DhcpNakError && ++naks <= MAX_QUICK_NAK_RETRIES) {
      n--;
      if (aborted(p) || performance.now() >= deadline) break;
      continue;
    }
    const pause = retryDelayMs(n, p.resendMaxMs);
    if (aborted(p) || performance.now() + pause >= deadline) break;
    await sleep(pause, p.signal);
  }
  throw last;
}

/**
 * RENEW (RFC 2131 4.4.5): a REQUEST with `ciaddr` unicast to the server that granted the
 * lease. One attempt; the caller schedules the next.
 *
 * @throws {DhcpTimeoutError} | {DhcpNakError}
 */
export function renew(t: Transport, p: ClientParams, lease: Lease): Promise<Lease> {
  const msg = request(MSG.REQUEST, p, newXid(), lease.address);
  return requestAck(t, p, msg, lease.serverId, "renewal (DHCPREQUEST)");
}

/**
 * REBIND: the same REQUEST broadcast, for any server to answer. One attempt.
 *
 * @throws {DhcpTimeoutError} | {DhcpNakError}
 */
export function rebind(t: Transport, p: ClientParams, lease: Lease): Promise<Lease> {
  const msg = request(MSG.REQUEST, p, newXid(), lease.address);
  return requestAck(t, p, msg, BROADCAST, "rebinding (DHCPREQUEST)");
}

/** RELEASE: tells the server the address is free (no reply comes). */
export function release(t: Transport, p: ClientParams, lease: Lease): void {
  const msg = request(MSG.RELEASE, p, newXid(), lease.address);
  msg.options.set(OPT.SERVER_ID, ipBytes(lease.serverId));
  t.send(encodeMessage(msg), lease.serverId);
}
