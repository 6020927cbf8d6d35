/**
 * The built-in `podplex-cluster` delegate: a pod on the node's subnet of podplex's cluster
 * network (set it as the podplex conf's `clusterNetwork`). ADD gives the pod's interface an
 * address from the node's subnet through the built-in `bridge` + `host-local` (the bridge
 * is the pods' gateway and their default route; the node routes other nodes' subnets over
 * its VTEP). In dual stack the pod gets one address of each family, both in the result.
 *
 * With a node agent running (`podplex serve --cluster-network` with this conf) ADD only reads
 * the node's state; without one, ADD joins the node itself before it returns (its lease
 * taken or renewed, the VTEP and every other node's entries programmed from one list).
 *
 * The bridge conf made at ADD is kept per attachment in `<stateDir>/pods/`, so DEL and CHECK
 * work with exactly what ADD did even after the node's subnet changed or etcd is gone.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import type { CniResult } from "../../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../../types.ts";
import { Netlink } from "../../../ffi/mod.ts";
import { EtcdClient } from "../../../clients/etcd/client.ts";
import { type ClusterNetConf, etcdOptions, parseClusterNetConf } from "./conf.ts";
import { bridgeWithoutDadAfterAdd } from "./bridge_dad.ts";
import { joinOnce, withJoinLock } from "./join.ts";
import { agentAlive, type NodeState, readNodeState } from "./node_state.ts";
import { writeFileAtomic } from "./subnet_env.ts";

type Obj = Record<string, unknown>;

/** The node's state for an ADD: the agent's, or a join made now. */
async function nodeStateForAdd(c: ClusterNetConf): Promise<NodeState> {
  if (await agentAlive(c.stateDir)) {
    const s = await readNodeState(c.stateDir);
    if (s) return s;
    throw new CniError(
      Code.TryAgainLater,
      `The node agent of "${c.name}" runs but has not written "${c.stateDir}/node.json" yet`,
    );
  }
  return await withJoinLock(c.stateDir, async () => {
    const etcd = new EtcdClient(await etcdOptions(c));
    try {
      using nl = Netlink.open();
      return (await joinOnce(etcd, c, nl, await readNodeState(c.stateDir))).state;
    } finally {
      etcd.close();
    }
  });
}

/** The bridge conf of a pod on the node's subnet. */
export function bridgeConf(c: ClusterNetConf, s: NodeState, raw: Obj, version: string): Obj {
  const conf: Obj = {
    cniVersion: version,
    name: c.name,
    type: "bridge",
    bridge: c.bridge,
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: c.hairpinMode,
    ipMasq: false, // the node masquerades (ipMasq), never per pod: pod to pod is not translated
    mtu: s.mtu,
    // One range per family: the pod gets an address of each (dual stack) on its interface.
    ipam: {
      ...c.ipam,
      ranges: [s.subnet, s.subnet6].filter((sn) => !!sn).map((subnet) => [{ subnet }]),
    },
  };
  if (raw.runtimeConfig !== undefined) conf.runtimeConfig = raw.runtimeConfig;
  if (raw.args !== undefined) conf.args = raw.args;
  return conf;
}

function attachmentFile(c: ClusterNetConf, ctx: DelegateContext): string {
  const id = ctx.env.containerId ?? "";
  return `${c.stateDir}/pods/${id}-${ctx.env.ifname ?? ""}.json`;
}

/** The bridge conf ADD used for this attachment (undefined when none was kept). */
async function keptConf(c: ClusterNetConf, ctx: DelegateContext): Promise<Obj | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(attachmentFile(c, ctx)));
  } catch {
    return undefined;
  }
}

function runner(ctx: DelegateContext) {
  if (!ctx.delegate) {
    throw new CniError(Code.Internal, "podplex-cluster needs a context that runs delegates");
  }
  return ctx.delegate;
}

async function add(c: ClusterNetConf, ctx: DelegateContext): Promise<CniResult> {
  const state = await nodeStateForAdd(c);
  const conf = bridgeConf(c, state, ctx.raw, String(ctx.raw.cniVersion ?? c.cniVersion));
  const file = attachmentFile(c, ctx);
  await Deno.mkdir(`${c.stateDir}/pods`, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, JSON.stringify(conf), 0o600);
  try {
    const result = (await runner(ctx)("ADD", conf))!;
    if (state.subnet6) bridgeWithoutDadAfterAdd(c.bridge);
    return result;
  } catch (err) {
    await Deno.remove(file).catch(() => {});
    throw err;
  }
}

/** The conf to undo an attachment with: the kept one, else one for the node's state now. */
async function confForUndo(c: ClusterNetConf, ctx: DelegateContext): Promise<Obj | undefined> {
  const kept = await keptConf(c, ctx);
  if (kept) return kept;
  const s = await readNodeState(c.stateDir);
  return s ? bridgeConf(c, s, ctx.raw, String(ctx.raw.cniVersion ?? c.cniVersion)) : undefined;
}

async function del(c: ClusterNetConf, ctx: DelegateContext): Promise<void> {
  const conf = await confForUndo(c, ctx);
  if (!conf) return; // never added on this node, or its state is gone with it
  await runner(ctx)("DEL", conf);
  await Deno.remove(attachmentFile(c, ctx)).catch(() => {});
}

async function check(c: ClusterNetConf, ctx: DelegateContext): Promise<void> {
  const conf = await keptConf(c, ctx);
  if (!conf) {
    throw new CniError(
      Code.UnknownContainer,
      `No attachment of "${c.name}" is known for this container`,
    );
  }
  await runner(ctx)("CHECK", conf);
}

/**
 * GC and STATUS go to the bridge (and its host-local) for the node's current subnet; a node
 * that never joined has nothing to collect and is ready (its first ADD joins).
 */
async function forward(c: ClusterNetConf, ctx: DelegateContext, verb: "GC" | "STATUS") {
  const s = await readNodeState(c.stateDir);
  if (!s) return;
  await runner(ctx)(verb, bridgeConf(c, s, ctx.raw, String(ctx.raw.cniVersion ?? c.cniVersion)));
}

/** The built-in `podplex-cluster` delegate. */
export const podplexCluster: BuiltinDelegate<ClusterNetConf> = {
  type: "podplex-cluster",
  parseConf: (raw) => parseClusterNetConf(raw),
  add,
  del,
  check,
  gc: (c, ctx) => forward(c, ctx, "GC"),
  status: (c, ctx) => forward(c, ctx, "STATUS"),
};
