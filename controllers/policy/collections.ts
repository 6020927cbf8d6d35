/**
 * What the policy controller watches: the cluster's pods, namespaces, NetworkPolicies and
 * MultiNetworkPolicies, each kept by an informer (clients/k8s/informer.ts) whose pauses run
 * on the controller's clock.
 *
 * @module
 */
import { GoneError, NotFoundError } from "../../clients/k8s/client.ts";
import {
  type InformerChange,
  type ListWatchClient,
  startInformer,
} from "../../clients/k8s/informer.ts";
import type { NamespaceView } from "../../meta/policy/types.ts";
import type { Clock } from "../controller.ts";
import { type ApiPod, apiPod, type ApiPolicy, apiPolicy, namespaceView } from "./objects.ts";
import type { Collections } from "./world.ts";

/** The collections watched. */
export const PATHS = {
  pods: "/api/v1/pods",
  namespaces: "/api/v1/namespaces",
  networkPolicies: "/apis/networking.k8s.io/v1/networkpolicies",
  /** Tried in order; the first served is watched. */
  multiPolicies: [
    "/apis/k8s.cni.cncf.io/v1beta2/multi-networkpolicies",
    "/apis/k8s.cni.cncf.io/v1beta1/multi-networkpolicies",
  ],
} as const;

/**
 * A client for MultiNetworkPolicies whichever version is served: LIST tries
 * {@linkcode PATHS.multiPolicies} in order; with none served, the list is empty and the
 * watch waits a minute, then asks for a new LIST (a CRD installed meanwhile is found).
 */
function multiPolicyClient(api: ListWatchClient, sleep: Clock["sleep"]) {
  let chosen: string | undefined;
  const virtual = "/multi-networkpolicies";
  const client: ListWatchClient = {
    async list(path) {
      const query = path.slice(virtual.length); // the page asked for
      if (chosen && query.includes("continue=")) return api.list(chosen + query);
      for (const path of PATHS.multiPolicies) {
        try {
          const l = await api.list(path + query);
          chosen = path;
          return l;
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
      }
      chosen = undefined;
      return { items: [], resourceVersion: "0" };
    },
    async *watch(path, signal) {
      if (!chosen) {
        await sleep(60_000, signal);
        throw new GoneError("no MultiNetworkPolicy served: list again");
      }
      yield* api.watch(chosen + path.slice(virtual.length), signal);
    },
  };
  return { client, path: virtual };
}

/** What a change of each collection is told to. */
export interface CollectionHandlers {
  onPod(change: InformerChange<ApiPod>): void;
  onNamespace(change: InformerChange<NamespaceView>): void;
  onPolicy(change: InformerChange<ApiPolicy>): void;
}

/** What the informers are made with. */
export interface WatchSettings {
  api: ListWatchClient;
  clock: Clock;
  log(line: string): void;
  watchTimeoutSeconds?: number;
  backoffMs?: number;
  /** Objects per LIST page (default 500). */
  pageSize?: number;
}

/** Starts the four informers (their LISTs run at once). */
export function watchCollections(s: WatchSettings, h: CollectionHandlers): Collections {
  const common = {
    stats: { lists: 0, events: 0, errors: 0 },
    timeoutSeconds: s.watchTimeoutSeconds ?? 300,
    backoffMs: s.backoffMs ?? 500,
    log: s.log,
    sleep: (ms: number, signal: AbortSignal) => s.clock.sleep(ms, signal),
    pageSize: s.pageSize ?? 500, // client-go's pager's page
  };
  const mnp = multiPolicyClient(s.api, common.sleep);
  return {
    pods: startInformer(s.api, {
      ...common,
      path: PATHS.pods,
      parse: apiPod,
      notify: (ch) => h.onPod(ch),
    }),
    namespaces: startInformer(s.api, {
      ...common,
      path: PATHS.namespaces,
      parse: namespaceView,
      notify: (ch) => h.onNamespace(ch),
    }),
    networkPolicies: startInformer(s.api, {
      ...common,
      path: PATHS.networkPolicies,
      parse: (o) => apiPolicy(o, "NetworkPolicy"),
      notify: (ch) => h.onPolicy(ch),
    }),
    multiPolicies: startInformer(mnp.client, {
      ...common,
      path: mnp.path,
      parse: (o) => apiPolicy(o, "MultiNetworkPolicy"),
      notify: (ch) => h.onPolicy(ch),
    }),
  };
}
