/**
 * The upstream network-policy e2e model as data: namespaces x, y, z (labelled `ns=<name>`)
 * with pods a, b, c (labelled `pod=<name>`), each with a cluster interface (eth0) and one on
 * a secondary network (net1 on `default/sec`), and named container ports serve-80-tcp,
 * serve-80-udp, serve-81-tcp, serve-81-udp. Used by the unit tests and the netns tests.
 *
 * @module
 */
import { parsePolicy } from "./parse.ts";
import type { PodView, Policy, PolicyWorld } from "./types.ts";

/** The namespaces of the model. */
export const NAMESPACES = ["x", "y", "z"] as const;
/** The pod names of each namespace. */
export const POD_NAMES = ["a", "b", "c"] as const;
/** The secondary network of the model. */
export const SECONDARY = "default/sec";

/** A pod's position 0..8 (x/a = 0, z/c = 8). */
export function podIndex(ns: string, name: string): number {
  return NAMESPACES.indexOf(ns as "x") * 3 + POD_NAMES.indexOf(name as "a");
}

/** The cluster address of a pod under `base` (`10.164.0.` → `10.164.0.10` for x/a). */
export function clusterIp(ns: string, name: string, base = "10.164.0."): string {
  return `${base}${10 + podIndex(ns, name)}`;
}

/** The secondary-network address of a pod. */
export function secondaryIp(ns: string, name: string, base = "10.165.0."): string {
  return `${base}${10 + podIndex(ns, name)}`;
}

/** The 9 pods, with addresses under the given bases and the node at `<base>1`. */
export function modelPods(base = "10.164.0.", secBase = "10.165.0."): PodView[] {
  return NAMESPACES.flatMap((ns) =>
    POD_NAMES.map((name): PodView => ({
      namespace: ns,
      name,
      labels: { pod: name },
      interfaces: [
        {
          ifname: "eth0",
          network: "default/cluster",
          cluster: true,
          ips: [clusterIp(ns, name, base)],
          nodeIps: [`${base}1`],
        },
        {
          ifname: "net1",
          network: SECONDARY,
          cluster: false,
          ips: [secondaryIp(ns, name, secBase)],
        },
      ],
      ports: [
        { name: "serve-80-tcp", port: 80, protocol: "TCP" },
        { name: "serve-80-udp", port: 80, protocol: "UDP" },
        { name: "serve-81-tcp", port: 81, protocol: "TCP" },
        { name: "serve-81-udp", port: 81, protocol: "UDP" },
      ],
    }))
  );
}

/** The model world with these policies. */
export function modelWorld(policies: Policy[], base?: string, secBase?: string): PolicyWorld {
  return {
    policies,
    namespaces: NAMESPACES.map((n) => ({ name: n, labels: { ns: n } })),
    pods: modelPods(base, secBase),
  };
}

/** A NetworkPolicy in `ns` with this spec, parsed (throws when it would be dropped). */
export function np(ns: string, name: string, spec: Record<string, unknown>): Policy {
  const { policy, issues } = parsePolicy({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace: ns },
    spec,
  });
  if (!policy || issues.length) throw new Error(`Bad test policy: ${JSON.stringify(issues)}`);
  return policy;
}

/** A MultiNetworkPolicy for `networks` in `ns`. */
export function mnp(
  ns: string,
  name: string,
  networks: string,
  spec: Record<string, unknown>,
): Policy {
  const { policy, issues } = parsePolicy({
    apiVersion: "k8s.cni.cncf.io/v1beta2",
    kind: "MultiNetworkPolicy",
    metadata: { name, namespace: ns, annotations: { "k8s.v1.cni.cncf.io/policy-for": networks } },
    spec,
  });
  if (!policy || issues.length) throw new Error(`Bad test policy: ${JSON.stringify(issues)}`);
  return policy;
}
