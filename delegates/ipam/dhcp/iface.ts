/**
 * The pod side of a DHCP exchange: the interface in the pod's netns (brought up when down,
 * as the reference daemon does), its MAC, and a UDP socket on port 68 bound to it, created
 * inside the netns in one synchronous window (DESIGN.md: never await inside a netns window).
 *
 * @module
 */
import { Netlink, NetlinkError, NetNs, withNetns } from "../../../ffi/mod.ts";
import { openUdp, type UdpSocket } from "../../../ffi/udp.ts";
import type { Transport } from "./client.ts";
import { macBytes } from "./message.ts";

const CLIENT_PORT = 68;
const SERVER_PORT = 67;

/** Why the pod side cannot be reached: the netns or the link is gone. */
export class PodGoneError extends Error {
  /** @param msg which of them is gone */
  constructor(msg: string) {
    super(msg);
    this.name = "PodGoneError";
  }
}

/** An open client socket on the pod's interface. */
export interface PodSocket extends Disposable {
  transport: Transport;
  mac: Uint8Array;
  /** The interface's IPv4 addresses (`a.b.c.d/p`), read when the socket was opened. */
  addresses: string[];
}

function isNotFound(e: unknown): boolean {
  return e instanceof NetlinkError && e.kind === "notfound";
}

function transportOf(sock: UdpSocket): Transport {
  return {
    send: (data, address) => sock.send(data, address, SERVER_PORT),
    async receive(ms) {
      for (const deadline = performance.now() + ms;;) {
        const d = await sock.receive(Math.max(0, deadline - performance.now()));
        if (!d) return undefined;
        if (d.port === SERVER_PORT) return d.data;
      }
    },
  };
}

/**
 * Opens the DHCP client socket for `ifname` in the netns at `netnsPath`.
 *
 * @param up bring the link up when it is down (ADD; renewals leave the link as it is)
 * @throws {PodGoneError} when the netns or the link does not exist
 * @throws {NetlinkError} when the socket cannot be made
 */
export function openPodSocket(netnsPath: string, ifname: string, up: boolean): PodSocket {
  let ns: NetNs;
  try {
    ns = NetNs.open(netnsPath);
  } catch (e) {
    if (isNotFound(e)) throw new PodGoneError(`The netns "${netnsPath}" is gone`);
    throw e;
  }
  try {
    using nl = Netlink.open(ns);
    const link = nl.getLink(ifname);
    if (!link) throw new PodGoneError(`The interface "${ifname}" is gone from "${netnsPath}"`);
    if (up && !link.up) nl.setUp(link.index);
    const addresses = nl.listAddrs(link.index, 4).map((a) => a.cidr);
    const sock = withNetns(
      ns,
      () => openUdp({ device: ifname, port: CLIENT_PORT, broadcast: true, reuseAddr: true }),
    );
    return {
      transport: transportOf(sock),
      mac: macBytes(link.mac),
      addresses,
      [Symbol.dispose]: () => sock.close(),
    };
  } finally {
    ns.close();
  }
}
