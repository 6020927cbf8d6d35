/**
 * What DEL, CHECK and GC need when the pod, the API server or the netns is gone: per
 * container and runtime ifname, the exact delegate confs that ran and their results.
 *
 * One JSON file per `(containerId, ifname)` in `stateDir` (0700), each 0600, written
 * atomically (temp file, fsync, rename, fsync of the directory) so that a crash leaves
 * either the old file or the new one, never half of one. Confs are kept as the exact text
 * that ran, never re-marshalled (Multus issue #1449: a re-marshalled delegate conf made DEL
 * differ from ADD).
 *
 * The store's methods are async (a remote backend must fit) but the file calls inside are
 * synchronous: each async Deno file call is a round trip through the runtime's blocking
 * thread pool (the first one also starts a thread), and a CNI call has nothing to overlap
 * them with.
 *
 * Durability costs measured on this machine's ext4 (6 KB state, medians): write+rename
 * 0.1-0.2 ms, + file fsync 0.4 ms, + directory fsync 0.3 ms, both ~0.8 ms. Both are kept:
 * without the file fsync a crash after the rename can leave an empty file under the final
 * name (ext4 delalloc), i.e. a pod DEL cannot clean up; without the directory fsync the rename
 * itself may be lost, which only costs the (best-effort) state of that last ADD.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { TEMP_MARK, writeFileAtomic, writeFileAtomicSync } from "../conf/io.ts";
import { readBoundedTextSync } from "../conf/bounded_read.ts";

/** One network attachment of a pod, as ADD ran it. */
export interface AttachmentState {
  /** The network's statusName. */
  network: string;
  /** The pod interface it made (`eth0`, `net1`...). */
  ifname: string;
  /** The cluster (default) network attachment. */
  isCluster: boolean;
  /** Carries the default route. */
  isDefault: boolean;
  /** The EXACT conf/conflist text that was run (byte for byte). */
  confText: string;
  /** CNI_ARGS given to it. */
  cniArgs?: string;
  /** The capability args (runtimeConfig) given to its chain. */
  capabilityArgs?: Record<string, unknown>;
  /** Its final ADD result (canonical 1.1.0 JSON). */
  result?: Record<string, unknown>;
  /**
   * Set when its ADD failed before the end of its chain: how many plugins were started. DEL
   * then runs those only (a plugin that never ran cannot undo anything, and its failure
   * would stop the chain before the plugins that hold an address).
   */
  pluginsRan?: number;
  /**
   * Made for an element of the networks annotation (not the cluster network, not one of
   * `defaultNetworks`): a change of the annotation may remove it.
   */
  selected?: boolean;
  /**
   * A hot-plug of this attachment was under way (`add`: its ADD, `remove`: its DEL) when this
   * was written: a podplex killed in the middle leaves it marked, and the next reconcile of
   * the pod DELs it and forgets it, so it exists completely or not at all.
   */
  pending?: "add" | "remove";
}

/**
 * What a hot-plug needs to run as the pod's ADD ran: the podplex conf (without
 * `prevResult` and `runtimeConfig`, which were the ADD's own), CNI_PATH and CNI_ARGS.
 */
export interface HotplugBasis {
  /** The podplex conf object the ADD was called with. */
  conf: Record<string, unknown>;
  /** CNI_PATH of the ADD. */
  path: string[];
  /** CNI_ARGS of the ADD. */
  args?: string;
}

/** Everything podplex remembers about one ADD. */
export interface PodState {
  /** The format version of this record. */
  version: 1;
  /** CNI_CONTAINERID of the ADD. */
  containerId: string;
  /** CNI_NETNS of the ADD. */
  netns: string;
  /** The runtime's CNI_IFNAME. */
  ifname: string;
  /** The pod's namespace (CNI_ARGS K8S_POD_NAMESPACE). */
  podNamespace?: string;
  /** The pod's name (CNI_ARGS K8S_POD_NAME). */
  podName?: string;
  /** The pod's UID (CNI_ARGS K8S_POD_UID). */
  podUid?: string;
  /** The pod's labels as network policy sees them (standalone: `pod up --labels`). */
  podLabels?: Record<string, string>;
  /** The link group (IFLA_GROUP) of the pod's container-side links. */
  linkGroup?: number;
  /** When the ADD began (ISO 8601). */
  createdAt: string;
  /** The attachments in the order ADD ran them. */
  attachments: AttachmentState[];
  /** The network-status entries written to the pod. */
  networkStatus?: unknown[];
  /** Absent in states written before hot-plug existed: such pods cannot be hot-plugged. */
  hotplug?: HotplugBasis;
}

/** The state cache. */
export interface StateStore {
  /** Writes atomically: temp file + fsync + rename; dir 0700, file 0600. */
  save(s: PodState): Promise<void>;
  /** The state, or null when there is none or the file is corrupt (a warning is given). */
  load(containerId: string, ifname: string): Promise<PodState | null>;
  /** Removes the state; a missing file is fine. */
  remove(containerId: string, ifname: string): Promise<void>;
  /** Every readable state (corrupt files are skipped with a warning). */
  list(): Promise<PodState[]>;
  /**
   * The state files that cannot be read as a state (corrupt, unreadable), with the
   * container and interface their names say they are for.
   */
  listBroken(): Promise<BrokenState[]>;
  /**
   * Removes temp files that a podplex killed mid-write left: those of one pod (safe at the
   * start of its call: the runtime serialises calls of one container), or every one older
   * than `olderThanMs` (GC, which may run beside an ADD writing its own).
   *
   * @returns how many were removed
   */
  removeTemps(containerId?: string, ifname?: string, olderThanMs?: number): Promise<number>;
}

/** A state file that does not read as a state. */
export interface BrokenState {
  /** The container its file name says it is for. */
  containerId: string;
  /** The interface its file name says it is for. */
  ifname: string;
  /** Why it is broken. */
  reason: string;
}

/** Options of {@linkcode createStateStore}. */
export interface StateStoreOptions {
  /** Where warnings about corrupt files go (default: stderr). */
  warn?: (msg: string) => void;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const SUFFIX = ".json";
const TMP_MARK = TEMP_MARK;
/** A pod's state is a few KiB; 128 networks with large results stay far below this. */
const MAX_STATE_BYTES = 8 * 1024 * 1024;

// containerId cannot contain "@" (spec regex), so the first "@" separates it from the ifname;
// the ifname is percent-encoded because it may hold almost any byte but "/", ":" and spaces.
function fileName(containerId: string, ifname: string): string {
  if (!CONTAINER_ID.test(containerId)) {
    throw new CniError(Code.InvalidEnv, `Invalid container id "${containerId}"`);
  }
  if (ifname === "" || ifname.includes("/")) {
    throw new CniError(Code.InvalidEnv, `Invalid interface name "${ifname}"`);
  }
  return `${containerId}@${encodeURIComponent(ifname)}${SUFFIX}`;
}

function isPodState(v: unknown): v is PodState {
  if (typeof v !== "object" || v === null) return false;
  const s = v as Record<string, unknown>;
  return s.version === 1 && typeof s.containerId === "string" && typeof s.ifname === "string" &&
    typeof s.netns === "string" && Array.isArray(s.attachments) &&
    s.attachments.every((a) =>
      typeof a === "object" && a !== null && typeof a.confText === "string" &&
      typeof a.ifname === "string" && typeof a.network === "string"
    );
}

function ensureDir(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask and an existing dir keeps its mode: enforce 0700.
  Deno.chmodSync(dir, 0o700);
}

/**
 * Writes `data` to `path` atomically (`conf/io.ts`'s `writeFileAtomicSync`, 0600).
 * Exported for tests that simulate a crash between the write and the rename.
 */
export function writeAtomic(path: string, data: string): Promise<void> {
  return writeFileAtomic(path, data);
}

function ioError(action: string, path: string, err: unknown): CniError {
  return CniError.wrap(err, Code.IoFailure, `Cannot ${action} state file "${path}"`);
}

/**
 * Creates a state store in `dir` (created 0700 on first save).
 *
 * @example
 * ```ts
 * const store = createStateStore("/var/lib/cni/podplex");
 * const s = await store.load(containerId, "eth0"); // null when ADD never completed
 * ```
 */
export function createStateStore(dir: string, opts: StateStoreOptions = {}): StateStore {
  const warn = opts.warn ?? ((msg: string) => console.error(`podplex: ${msg}`));

  function readState(path: string): PodState | null {
    let text: string | null;
    try {
      // Bounded and regular files only: a FIFO or a huge file must not hold a call.
      text = readBoundedTextSync(path, { what: "state file", maxBytes: MAX_STATE_BYTES });
    } catch (err) {
      throw ioError("read", path, err);
    }
    if (text === null) return null;
    try {
      const parsed = JSON.parse(text);
      if (isPodState(parsed)) return parsed;
      warn(`State file "${path}" does not hold a podplex state; ignored`);
    } catch (err) {
      warn(`State file "${path}" is corrupt (${(err as Error).message}); ignored`);
    }
    return null;
  }

  return {
    // async: a throw (bad id, I/O) becomes a rejection, as callers of a store expect.
    // deno-lint-ignore require-await
    async save(s) {
      const path = `${dir}/${fileName(s.containerId, s.ifname)}`;
      try {
        ensureDir(dir);
        writeFileAtomicSync(path, JSON.stringify(s));
      } catch (err) {
        throw ioError("write", path, err);
      }
    },
    // deno-lint-ignore require-await
    async load(containerId, ifname) {
      const s = readState(`${dir}/${fileName(containerId, ifname)}`);
      if (s && (s.containerId !== containerId || s.ifname !== ifname)) {
        warn(
          `State file for "${containerId}" "${ifname}" names "${s.containerId}" "${s.ifname}"; ignored`,
        );
        return null;
      }
      return s;
    },
    // deno-lint-ignore require-await
    async remove(containerId, ifname) {
      const path = `${dir}/${fileName(containerId, ifname)}`;
      try {
        Deno.removeSync(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw ioError("remove", path, err);
      }
    },
    // deno-lint-ignore require-await
    async list() {
      const out: PodState[] = [];
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return out;
        throw ioError("list", dir, err);
      }
      const names = entries
        .filter((e) => e.isFile && e.name.endsWith(SUFFIX) && !e.name.startsWith("."))
        .map((e) => e.name)
        .sort();
      for (const name of names) {
        const s = readState(`${dir}/${name}`);
        if (s) out.push(s);
      }
      return out;
    },
    // deno-lint-ignore require-await
    async listBroken() {
      const out: BrokenState[] = [];
      for (const name of entryNames(dir)) {
        const id = idOf(name);
        if (!id) continue;
        const path = `${dir}/${name}`;
        try {
          const text = readBoundedTextSync(path, { what: "state file", maxBytes: MAX_STATE_BYTES });
          const parsed = JSON.parse(text ?? "");
          if (
            isPodState(parsed) && parsed.containerId === id.containerId &&
            parsed.ifname === id.ifname
          ) continue;
          out.push({ ...id, reason: "not a podplex state" });
        } catch (err) {
          out.push({ ...id, reason: (err as Error).message });
        }
      }
      return out;
    },
    // deno-lint-ignore require-await
    async removeTemps(containerId, ifname, olderThanMs) {
      const prefix = containerId && ifname ? `.${fileName(containerId, ifname)}${TMP_MARK}` : ".";
      const now = Date.now();
      let removed = 0;
      for (const name of entryNames(dir, true)) {
        if (!name.startsWith(prefix) || !name.includes(`${SUFFIX}${TMP_MARK}`)) continue;
        const path = `${dir}/${name}`;
        try {
          if (olderThanMs !== undefined) {
            const mtime = Deno.lstatSync(path).mtime?.getTime() ?? 0;
            if (now - mtime < olderThanMs) continue;
          }
          Deno.removeSync(path);
          removed++;
        } catch { /* gone already, or in use: the next call tries again */ }
      }
      return removed;
    },
  };
}

/** The names in the state dir: state files, or (`temps`) the dot-named temp files. */
function entryNames(dir: string, temps = false): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => !e.isDirectory && e.name.startsWith(".") === temps)
      .filter((e) => temps || e.name.endsWith(SUFFIX))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** The container and interface a state file's name is for (see `fileName`). */
function idOf(name: string): { containerId: string; ifname: string } | undefined {
  const at = name.indexOf("@");
  if (at <= 0 || !name.endsWith(SUFFIX)) return undefined;
  try {
    const containerId = name.slice(0, at);
    const ifname = decodeURIComponent(name.slice(at + 1, -SUFFIX.length));
    return CONTAINER_ID.test(containerId) ? { containerId, ifname } : undefined;
  } catch {
    return undefined;
  }
}
