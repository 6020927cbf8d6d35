/**
 * The row helper of `podplex serve --network-policy` (controllers/policy): the API client
 * of the daemon's own watches, this node's pod states, and the nftables applier the
 * controller is handed. The controller itself reads no flag and imports no FFI.
 *
 * @module
 */
import { type ClosableKubeClient, createKubeClient } from "../clients/k8s/client.ts";
import { runNftIn } from "../ffi/nftables.ts";
import type { PolicyContext } from "../controllers/policy/policy.ts";
import { stateReader } from "../controllers/policy/states.ts";
import { POLICY_TABLE } from "../meta/policy/render.ts";
import { KUBECONFIG_HOST_PATH } from "./_install_conf.ts";

/** What the row gives the controller, and what it closes after it. */
export interface PolicySettings
  extends Pick<PolicyContext, "api" | "states" | "apply" | "hasTable"> {
  close(): void;
}

/**
 * The settings of the policy controller: credentials from `kubeconfig`, else the pod's
 * service account (thick mode: KUBERNETES_SERVICE_HOST is set), else the kubeconfig podplex
 * installed on the host; the states of `stateDirs`; tables applied through libnftables.
 */
export function policySettings(
  kubeconfig: string | undefined,
  stateDirs: string[],
  warn: (line: string) => void,
): PolicySettings {
  const inCluster = !kubeconfig && Deno.env.get("KUBERNETES_SERVICE_HOST") !== undefined;
  const api: ClosableKubeClient = createKubeClient(
    inCluster ? { inCluster: true } : { kubeconfig: kubeconfig ?? KUBECONFIG_HOST_PATH },
  );
  return {
    api,
    states: stateReader(stateDirs, warn),
    apply: (netns, script) => Promise.resolve(void runNftIn(netns, script)),
    hasTable: (netns) =>
      Promise.resolve(runNftIn(netns, "list tables inet").includes(`table inet ${POLICY_TABLE}`)),
    close: () => api.close(),
  };
}
