/**
 * `podplex serve`'s flags. Each flag is one row of {@linkcode FLAGS}; `--flag value` and
 * `--flag=value` both work, `--dhcp-*` flags go to the lease keeper as given.
 *
 * @module
 */
import { PROTOCOL } from "./protocol.ts";
import { CONF_DEFAULTS } from "../../meta/conf.ts";
import { type HostView, THICK_DEFAULTS } from "./view.ts";
import { CALL_DEADLINE_MS, DEFAULT_LIMITS, type SchedulerLimits } from "./gate.ts";
import { DEFAULT_BUFFERED_BYTES, DEFAULT_READ_DEADLINE_MS } from "./frames.ts";

/** What the flags ask for. */
export interface ServeArgs {
  socket: string;
  /** The dhcp lease keeper's own flags, with their values. */
  dhcp: string[];
  /** The cluster IPAM network file (affinity lease, reconcile). */
  ipam?: string;
  /** Cluster network confs (type podplex-cluster) whose node agent runs here. */
  cluster: string[];
  /** Thick mode: what the daemon shares with the host (none: calls from another mount ns go per call). */
  view?: HostView;
  /** Calls in flight and queued at most. */
  limits: SchedulerLimits;
  /** A call's deadline from its arrival (ms). */
  deadlineMs: number;
  /** How long a client has to send its whole frame (ms). */
  readDeadlineMs: number;
  /** The most bytes of frames still arriving, across all connections. */
  maxBufferedBytes: number;
  /** Log each call's timing marks (`PODPLEX_TRACE` lines). */
  trace?: boolean;
  /** This node's name: its pods and the NADs are watched (else every read is a GET). */
  nodeName?: string;
  /** Prometheus metrics on `host:port` or a unix socket. */
  metrics?: { address?: string; socket?: string };
  /** The daemon's own lines: text, or one JSON object a line. */
  logFormat: "text" | "json";
  /** Hot-plug: pods' network annotation changes are applied (controllers/dynamic). */
  dynamicNetworks?: boolean;
  /** Where the hot-plug and policy controllers find pods' states (default: the conf default). */
  stateDirs: string[];
  /** Network policy: NetworkPolicy/MultiNetworkPolicy enforced in this node's pods (controllers/policy). */
  networkPolicy?: boolean;
  /** The API credentials of the daemon's own watches (default: in-cluster, else the host's). */
  kubeconfig?: string;
  /**
   * The podplex conf whose policiesDir the local policy controller follows without
   * `--network-policy` (default: $PODPLEX_CONFIG, the installed conf, the embedded default).
   */
  config?: string;
}

type Setter = (a: ServeArgs, v: string) => string | void;

function thick(a: ServeArgs): HostView {
  return a.view ??= { paths: [] };
}

/** The flags that take a value; a setter returns an error sentence for a bad value. */
const FLAGS: Readonly<Record<string, Setter>> = {
  "--socket": (a, v) => {
    if (v === "") return `Invalid "--socket": the path is empty`;
    a.socket = v;
  },
  "--ipam-network": (a, v) => void (a.ipam = v),
  "--cluster-network": (a, v) => void a.cluster.push(v),
  "--host-path": (a, v) => {
    if (!v.startsWith("/")) return `Invalid "--host-path": "${v}" is not an absolute path`;
    thick(a).paths.push(v);
  },
  "--host-root": (a, v) => void (thick(a).root = v),
  "--host-mount-ns": (a, v) => void (thick(a).mountNs = v),
  "--max-in-flight": (a, v) => limit(a, "maxInFlight", "--max-in-flight", v),
  "--max-queued": (a, v) => limit(a, "maxQueued", "--max-queued", v),
  "--node-name": (a, v) => void (a.nodeName = v || undefined),
  "--kubeconfig": (a, v) => {
    if (!v.startsWith("/")) return `Invalid "--kubeconfig": "${v}" is not an absolute path`;
    a.kubeconfig = v;
  },
  "--config": (a, v) => {
    if (v === "") return `Invalid "--config": the path is empty`;
    a.config = v;
  },
  "--state-dir": (a, v) => {
    if (!v.startsWith("/")) return `Invalid "--state-dir": "${v}" is not an absolute path`;
    a.stateDirs.push(v);
  },
  "--metrics-address": (a, v) => {
    if (!/^(\[[0-9a-fA-F:]+\]|[^:]+):[0-9]{1,5}$/.test(v)) {
      return `Invalid "--metrics-address": "${v}" is not host:port (e.g. 127.0.0.1:9091)`;
    }
    a.metrics = { address: v };
  },
  "--metrics-socket": (a, v) => {
    if (!v.startsWith("/")) return `Invalid "--metrics-socket": "${v}" is not an absolute path`;
    a.metrics = { socket: v };
  },
  "--log-format": (a, v) => {
    if (v !== "text" && v !== "json") return `Invalid "--log-format": "${v}" is not text or json`;
    a.logFormat = v;
  },
  "--call-deadline-ms": (a, v) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < 1 || n >= PROTOCOL.clientTimeoutS * 1000) {
      return `Invalid "--call-deadline-ms": "${v}" is not between 1 and the shim's ` +
        `${PROTOCOL.clientTimeoutS * 1000} ms`;
    }
    a.deadlineMs = n;
  },
  "--read-deadline-ms": (a, v) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) {
      return `Invalid "--read-deadline-ms": "${v}" is not a positive integer`;
    }
    a.readDeadlineMs = Number(v);
  },
  "--max-buffered-bytes": (a, v) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < PROTOCOL.maxFrame) {
      return `Invalid "--max-buffered-bytes": "${v}" is not an integer of at least one ` +
        `frame (${PROTOCOL.maxFrame})`;
    }
    a.maxBufferedBytes = Number(v);
  },
};

function limit(a: ServeArgs, key: keyof SchedulerLimits, flag: string, v: string) {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1) return `Invalid "${flag}": "${v}" is not a positive integer`;
  a.limits[key] = n;
}

/** `--thick`: the DaemonSet's mounts; flags given as well win. */
function applyThick(a: ServeArgs): void {
  const v = thick(a);
  if (v.paths.length === 0) v.paths = [...THICK_DEFAULTS.paths];
  v.root ??= THICK_DEFAULTS.root;
  v.mountNs ??= THICK_DEFAULTS.mountNs;
}

/**
 * Parses the arguments after `serve`; `env` gives NODE_NAME (the DaemonSet sets it from
 * spec.nodeName) when `--node-name` is not given.
 */
export function parseServeArgs(
  argv: string[],
  env: Record<string, string | undefined> = {},
): ServeArgs | { help: true } | { error: string } {
  const args: ServeArgs = {
    socket: PROTOCOL.defaultSocket,
    dhcp: [],
    cluster: [],
    limits: { ...DEFAULT_LIMITS },
    deadlineMs: CALL_DEADLINE_MS,
    readDeadlineMs: DEFAULT_READ_DEADLINE_MS,
    maxBufferedBytes: DEFAULT_BUFFERED_BYTES,
    logFormat: "text",
    stateDirs: [],
  };
  let wantThick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") return { help: true };
    if (a === "--thick") {
      wantThick = true;
      continue;
    }
    if (a === "--trace") {
      args.trace = true;
      continue;
    }
    if (a === "--dynamic-networks") {
      args.dynamicNetworks = true;
      continue;
    }
    if (a === "--network-policy") {
      args.networkPolicy = true;
      continue;
    }
    if (a.startsWith("--dhcp-")) {
      args.dhcp.push(a);
      if (!a.includes("=") && i + 1 < argv.length) args.dhcp.push(argv[++i]);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    const set = Object.hasOwn(FLAGS, name) ? FLAGS[name] : undefined;
    if (!set) return { error: `Unknown argument "${a}"` };
    if (eq < 0 && i + 1 >= argv.length) return { error: `Missing the value of "${a}"` };
    const err = set(args, eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (err) return { error: err };
  }
  if (wantThick) applyThick(args);
  args.nodeName ??= env.NODE_NAME || undefined;
  if (args.dynamicNetworks && !args.nodeName) {
    return { error: `"--dynamic-networks" needs this node's name (--node-name, NODE_NAME)` };
  }
  if (args.stateDirs.length === 0) args.stateDirs.push(CONF_DEFAULTS.stateDir);
  return args;
}

/** The usage text. */
export const SERVE_USAGE = "usage: podplex serve [--socket PATH]   (default " +
  PROTOCOL.defaultSocket + ")\n" +
  "  [--thick] [--host-path DIR]... [--host-root DIR] [--host-mount-ns PATH]\n" +
  `  [--max-in-flight N (${DEFAULT_LIMITS.maxInFlight})] [--max-queued N (${DEFAULT_LIMITS.maxQueued})]\n` +
  `  [--call-deadline-ms N (${CALL_DEADLINE_MS})] [--trace (each call's PODPLEX_TRACE marks)]\n` +
  `  [--read-deadline-ms N (${DEFAULT_READ_DEADLINE_MS}): a client's whole request]\n` +
  `  [--max-buffered-bytes N (${DEFAULT_BUFFERED_BYTES}): requests still arriving, in all]\n` +
  "  [--node-name NAME (default $NODE_NAME): watch this node's pods and the NADs]\n" +
  "  [--metrics-address 127.0.0.1:9091 | --metrics-socket PATH] [--log-format text|json]\n" +
  "  [--dhcp-socket PATH] [--dhcp-state-dir DIR] [--dhcp-timeout 10s] [--dhcp-resend-max 62s]\n" +
  "  [--dhcp-resend-timeout 208s] [--ipam-network FILE (cluster IPAM: affinity lease, reconcile)]\n" +
  "  [--cluster-network FILE]... (podplex's cluster network: the node's subnet lease, VXLAN entries)\n" +
  "  [--dynamic-networks [--state-dir DIR]...] (hot-plug: a change of a running pod's networks\n" +
  `  annotation plugs its networks in and out; pods found by their state, default ${CONF_DEFAULTS.stateDir})\n` +
  "  [--network-policy [--kubeconfig FILE]] (NetworkPolicy and MultiNetworkPolicy of the API\n" +
  "  server enforced in this node's pods; credentials: --kubeconfig, else in-cluster, else the host's)\n" +
  "  [--config FILE] (without --network-policy: the podplex conf whose policiesDir is watched; a\n" +
  "  change of a file there re-renders every local pod's table, as 'podplex policy apply';\n" +
  "  default $PODPLEX_CONFIG, else the installed conf, else the embedded default)\n" +
  "  serves CNI calls forwarded by the shim (podplex-client) and keeps the dhcp IPAM's leases,\n" +
  "  until SIGINT/SIGTERM. In thick mode (the daemon in the DaemonSet's container) --host-path\n" +
  "  names a directory mounted from the host at the same path, --host-root the host's root as\n" +
  "  seen here (checks those mounts), --host-mount-ns where external plugins run; --thick is\n" +
  `  ${THICK_DEFAULTS.paths.join(",")}, ${THICK_DEFAULTS.root}, ${THICK_DEFAULTS.mountNs}\n`;
