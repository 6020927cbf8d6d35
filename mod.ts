/**
 * podplex as a library: the CNI dispatcher, the error type and codes, result types and
 * version conversions, conf parsing, the plugin registry and the chain runner; the
 * meta-plugin with injectable edges, and the seams later backends plug into (the IPAM
 * `Store`, the VXLAN `RemoteSource`, the `KubeClient`).
 *
 * Importing this module has no side effects.
 *
 * @example
 * ```ts
 * import { BUILTINS, createRegistry, parseConfList, runChain } from "@podplex/podplex";
 *
 * const list = parseConfList(await Deno.readFile("/etc/cni/net.d/10-bridge.conflist"));
 * const registry = createRegistry({ builtins: BUILTINS });
 * const env = { containerId: "c1", netns: "/run/netns/c1", ifname: "eth0", path: ["/opt/cni/bin"] };
 * const { result } = await runChain(list, "ADD", { env, registry });
 * ```
 *
 * @module
 */
export { CniError, type CniErrorJson, Code, type CodeNumber } from "./conf/errors.ts";
export {
  atLeast,
  compareVersions,
  CURRENT_VERSION,
  IMPLICIT_VERSION,
  isSupported,
  requireSupported,
  SUPPORTED_VERSIONS,
} from "./conf/version.ts";
export type {
  Attachment,
  CniDns,
  CniInterface,
  CniIpConfig,
  CniResult,
  CniRoute,
  Verb,
} from "./conf/types.ts";
export {
  convertResult,
  ipFamily,
  isCidr,
  isIp,
  reencodeResult,
  toCanonical,
} from "./conf/result.ts";
export {
  type ConfList,
  confListFromConf,
  injectConf,
  loadConfFile,
  type NetConf,
  parseConfList,
  parseConfOrList,
  type ParsedNetConf,
  parseNetConf,
  type PluginEntry,
  resolveVersion,
  validateNetworkName,
} from "./conf/netconf.ts";
export {
  parseArgBool,
  parseCniArgs,
  validateCniArgs,
  WELL_KNOWN_CNI_ARGS,
} from "./conf/cni_args.ts";
export type {
  BuiltinDelegate,
  BuiltinLoader,
  DelegateContext,
  DelegateTraits,
  InProcessRequest,
  Plugin,
  PluginEnv,
  PluginRegistry,
  PluginRequest,
} from "./delegates/types.ts";
export { builtinPlugin } from "./delegates/runner/builtin.ts";
export {
  DEFAULT_EXEC_TIMEOUT_MS,
  type ExecOptions,
  execPlugin,
  findInPath,
} from "./delegates/runner/exec.ts";
export { BUILTIN_TYPES, BUILTINS } from "./delegates/catalog.ts";
export { createRegistry, type RegistryOptions } from "./delegates/runner/registry.ts";
export {
  type ChainOptions,
  type ChainOutcome,
  runChain,
  runtimeConfigFor,
} from "./delegates/runner/chain.ts";
export {
  type CniIo,
  readEnv,
  type Resolver,
  runCni,
  validateContainerId,
  validateIfname,
  versionInfo,
} from "./cli/cni.ts";
export { createMetaPlugin } from "./meta/plugin.ts";
export type { MetaDeps, MetaKernel } from "./meta/context.ts";
export type { PolicyAnswer, PolicySource, TableApplier } from "./meta/policy/source.ts";
export type {
  ContainerPort,
  LabelSelector,
  NamespaceView,
  Peer,
  PodInterface,
  PodView as PolicyPodView,
  Policy,
  PolicyPort,
  PolicyRule,
  PolicyWorld,
  Protocol,
  SelectorRequirement,
} from "./meta/policy/types.ts";
export type { DefinitionFiles } from "./meta/files.ts";
export type { LogFields, Logger, LogLevel } from "./meta/log.ts";
export { createTrace, NO_TRACE, type Trace } from "./conf/trace.ts";
export { parsePodplexConf, type PodplexConf } from "./meta/conf.ts";
export {
  type NetworkRef,
  type NetworkSelection,
  parseNetworksAnnotation,
  planPodNetworks,
  type PodNetworkPlan,
} from "./meta/annotations.ts";
export {
  type AttachmentState,
  type BrokenState,
  createStateStore,
  type HotplugBasis,
  type PodState,
  type StateStore,
  type StateStoreOptions,
} from "./meta/state.ts";
export type { KubeClient, PodInfo } from "./clients/k8s/client.ts";
export type { Lease, Store as IpamStore } from "./delegates/ipam/host_local/store.ts";
export type { Family, IP } from "./conf/ip.ts";
export type { PlannedAttachment } from "./meta/plan.ts";
export type { ResolvedNetwork } from "./meta/networks.ts";
export type { RemoteSource, VxlanSegment } from "./delegates/main/vxlan.ts";
