/**
 * The policy controller's view of the cluster: the collections it watches (pods, namespaces,
 * NetworkPolicies, MultiNetworkPolicies) and this node's pods from their states, joined into
 * the {@linkcode PolicyWorld} that meta/policy resolves a pod's rules in. A pod of this node
 * is seen with the interfaces its ADD made (the state) and the labels and container ports
 * of its API object.
 *
 * @module
 */
import type { Informer } from "../../clients/k8s/informer.ts";
import type { NamespaceView, PodView, Policy, PolicyWorld } from "../../meta/policy/types.ts";
import type { ApiPod, ApiPolicy, LocalPod } from "./objects.ts";

/** The label the API server puts on every namespace. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** The watched collections. */
export interface Collections {
  pods: Informer<ApiPod>;
  namespaces: Informer<NamespaceView>;
  networkPolicies: Informer<ApiPolicy>;
  multiPolicies: Informer<ApiPolicy>;
}

/** The joined view; {@linkcode WorldView.changed} after any change drops the cached world. */
export class WorldView {
  /** This node's pods, by `ns/name`. */
  locals = new Map<string, LocalPod>();
  #world?: PolicyWorld;

  constructor(readonly c: Collections) {}

  /** Forgets the cached world (a collection or the local pods changed). */
  changed(): void {
    this.#world = undefined;
  }

  /** Whether every collection has been listed once. */
  get synced(): boolean {
    return Object.values(this.c).every((i: Informer<unknown>) => i.listed);
  }

  /** The policies now (those dropped whole left out). */
  policies(): Policy[] {
    return this.world().policies;
  }

  /** A pod as policy sees it: its API object joined with its state when it is local. */
  view(key: string): PodView | undefined {
    const api = this.c.pods.get(key)?.view;
    const local = this.locals.get(key);
    if (!local) return api;
    const [namespace, name] = key.split("/");
    return {
      namespace,
      name,
      labels: api?.labels ?? local.labels ?? {},
      interfaces: local.interfaces,
      ports: api?.ports ?? [],
    };
  }

  /** Everything a pod's rules depend on (kept until the next change). */
  world(): PolicyWorld {
    if (this.#world) return this.#world;
    const policies = [...this.c.networkPolicies.values(), ...this.c.multiPolicies.values()]
      .flatMap((p) => (p.policy ? [p.policy] : []));
    const namespaces = [...this.c.namespaces.values()].map((n) =>
      Object.hasOwn(n.labels, NAMESPACE_NAME_LABEL)
        ? n
        : { name: n.name, labels: { ...n.labels, [NAMESPACE_NAME_LABEL]: n.name } }
    );
    const keys = new Set<string>();
    for (const p of this.c.pods.values()) keys.add(`${p.view.namespace}/${p.view.name}`);
    for (const k of this.locals.keys()) keys.add(k);
    const pods = [...keys].map((k) => this.view(k)!);
    return this.#world = { policies, namespaces, pods };
  }

  /**
   * The world an ADD judges its pod in: the pod as the ADD made it (interfaces, addresses),
   * with the labels and ports of its API object when the API knows it.
   */
  worldForAdd(pod: PodView): PolicyWorld {
    const w = this.world();
    const key = `${pod.namespace}/${pod.name}`;
    const api = this.c.pods.get(key)?.view;
    const merged: PodView = {
      ...pod,
      labels: api?.labels ?? pod.labels,
      ports: api?.ports.length ? api.ports : pod.ports,
    };
    const pods = w.pods.filter((p) => p.namespace !== pod.namespace || p.name !== pod.name);
    pods.push(merged);
    return { ...w, pods };
  }
}
