/**
 * The Node's `spec.podCIDRs` for the cluster network's node agent (`kubeSubnetMgr`, as
 * flannel's `--kube-subnet-mgr`): the subnets (one per family in dual stack) come from the
 * API server instead of a lease race. The agent lives below `cli/`, so its Kubernetes client is made here.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { tryParseCidr } from "../conf/ip.ts";
import type { PodCidrSource } from "../controllers/overlay/agent.ts";
import { type ClosableKubeClient, createKubeClient } from "../clients/k8s/client.ts";
import { KUBECONFIG_HOST_PATH } from "./_install_conf.ts";

/**
 * A `podCidr` source per conf, with one API client per kubeconfig; `close()` releases them.
 * The source throws (and the agent retries with back-off) while the Node does not exist or
 * has no pod CIDR yet; the join takes the one of each family the cluster network leases.
 */
export function nodePodCidrs(): { source: PodCidrSource; close(): void } {
  const clients = new Map<string, ClosableKubeClient>();
  const source: PodCidrSource = (conf) => {
    if (!conf.kubeSubnetMgr) return undefined;
    const path = conf.kubeconfig ?? KUBECONFIG_HOST_PATH;
    return async () => {
      let api = clients.get(path);
      if (!api) clients.set(path, api = createKubeClient({ kubeconfig: path }));
      const cidrs = await api.getNodePodCidrs(conf.node);
      if (cidrs === null) {
        throw new CniError(Code.TryAgainLater, `Node "${conf.node}" is not in the API server`);
      }
      const valid = cidrs.filter((c) => tryParseCidr(c) !== undefined);
      if (valid.length === 0) {
        throw new CniError(
          Code.TryAgainLater,
          `Node "${conf.node}" has no podCIDR yet (${JSON.stringify(cidrs)})`,
        );
      }
      return valid;
    };
  };
  return {
    source,
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}
