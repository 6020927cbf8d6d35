/**
 * CHECK of a bridge attachment, as the reference: the bridge exists, is a bridge with the
 * prevResult's MAC and the configured promiscuous mode; the container link is a veth with its
 * MAC; a host veth whose peer is the container link is a port of the bridge; addresses and
 * routes are in place.
 *
 * @module
 */
import type { CniInterface, CniResult } from "../../conf/types.ts";
import type { DelegateContext } from "../types.ts";
import { type LinkInfo, Netlink } from "../../ffi/mod.ts";
import type { BridgeConf } from "./_bridge_conf.ts";
import { beginCheck, checkFailed, checkL3 } from "../_shared/check.ts";
import { type HostOptions, openContainerNs, openHost } from "../_shared/link_common.ts";

const IFF_PROMISC = 0x100;

function findIface(prev: CniResult, name: string, sandbox: boolean): CniInterface | undefined {
  return prev.interfaces?.find((i) => i.name === name && Boolean(i.sandbox) === sandbox);
}

function checkBridgeLink(host: Netlink, c: BridgeConf, want?: CniInterface): LinkInfo {
  const br = host.getLink(c.bridge);
  if (!br) throw checkFailed(`CNI created bridge "${c.bridge}" in host namespace was not found`);
  if (br.kind !== "bridge") throw checkFailed(`Interface "${c.bridge}" is not a bridge`);
  if (want?.mac && want.mac !== br.mac) {
    throw checkFailed(`Bridge interface "${c.bridge}" MAC ${br.mac} does not match ${want.mac}`);
  }
  const promisc = (br.flags & IFF_PROMISC) !== 0;
  if (promisc !== c.promiscMode) {
    throw checkFailed(
      `Bridge "${c.bridge}" promiscuous mode is ${promisc}, configured ${c.promiscMode}`,
    );
  }
  return br;
}

/** The container link: a veth with the prevResult's MAC. */
function checkContainerLink(cont: Netlink, want: CniInterface): LinkInfo {
  const link = cont.getLink(want.name);
  if (!link) throw checkFailed(`CNI created interface in container "${want.name}" not found`);
  if (link.kind !== "veth") throw checkFailed(`Container interface "${link.name}" is not a veth`);
  if (want.mac && want.mac !== link.mac) {
    throw checkFailed(`Interface "${link.name}" MAC ${link.mac} does not match ${want.mac}`);
  }
  return link;
}

/** The host end of the container's veth: a port of the bridge, with the prevResult's MAC. */
function checkHostPort(
  host: Netlink,
  link: LinkInfo,
  br: LinkInfo,
  c: BridgeConf,
  prev: CniResult,
) {
  const peer = link.peerIndex === undefined ? null : host.getLink(link.peerIndex);
  if (!peer || peer.kind !== "veth" || peer.master !== br.index) {
    throw checkFailed(`CNI veth created for bridge "${c.bridge}" was not found`);
  }
  const hostIf = findIface(prev, peer.name, false);
  if (hostIf?.mac && hostIf.mac !== peer.mac) {
    throw checkFailed(`Interface "${peer.name}" MAC ${peer.mac} does not match ${hostIf.mac}`);
  }
}

/**
 * CHECK, as the reference: the bridge exists, is a bridge with the prevResult's MAC and the
 * configured promiscuous mode; the container link is a veth with its MAC; a host veth whose
 * peer is the container link is a port of the bridge; addresses and routes are in place.
 */
export async function checkBridgeAttachment(
  c: BridgeConf,
  ctx: DelegateContext,
  opts: HostOptions,
): Promise<void> {
  const { prev, iface: contIf } = await beginCheck(c.ipamType, ctx);
  using host = openHost(opts);
  const br = checkBridgeLink(host, c, findIface(prev, c.bridge, false));
  using contNs = openContainerNs(ctx.env.netns);
  using cont = Netlink.open(contNs);
  const link = checkContainerLink(cont, contIf);
  checkHostPort(host, link, br, c, prev);
  checkL3(cont, contIf.name, prev);
}
