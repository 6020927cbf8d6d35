/**
 * The local world the policy tests and bench/_policy_add.ts run pods in: one bridge network,
 * `default/lan` (host-local leases in `<dir>/leases`), under `<dir>/networks.d`, and podplex's
 * conf for it (the cluster network, state in `<dir>/state`, a policiesDir, the pod
 * annotations capability through which `pod up --labels` and the tests hand labels in).
 *
 * @module
 */

/** The pod annotations capability (containerd's name). */
export const POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations";

/** Writes `<dir>/networks.d/default/lan.json`: a gateway bridge on `bridge` with `subnet`. */
export async function writeLan(
  dir: string,
  bridge: string,
  subnet: string,
  ipam: Record<string, unknown> = {},
): Promise<void> {
  await Deno.mkdir(`${dir}/networks.d/default`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/networks.d/default/lan.json`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "lan",
      type: "bridge",
      bridge,
      isGateway: true,
      ipam: { type: "host-local", subnet, dataDir: `${dir}/leases`, ...ipam },
    }),
  );
}

/** podplex's plugin conf for that network (a single conf, as a runtime's stdin). */
export function lanConf(dir: string, policiesDir: string): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/lan",
    networksDir: `${dir}/networks.d`,
    stateDir: `${dir}/state`,
    policiesDir,
    capabilities: { [POD_ANNOTATIONS]: true },
  };
}

/** The same as the conflist `podplex install` would write, in `<dir>/podplex.conflist`. */
export async function writeLanConflist(dir: string, policiesDir: string): Promise<string> {
  const { cniVersion, name, ...plugin } = lanConf(dir, policiesDir);
  const path = `${dir}/podplex.conflist`;
  await Deno.writeTextFile(path, JSON.stringify({ cniVersion, name, plugins: [plugin] }));
  return path;
}
