/**
 * A CRI v1 client acting as kubelet toward containerd's CRI plugin, over its gRPC unix
 * socket: the pod sandbox calls of tests/cri/runtime_v1.proto through `@grpc/grpc-js`
 * (test-only: the node artifact bundles cli/main.ts, which never imports this).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO = new URL("./cri/runtime_v1.proto", import.meta.url).pathname;

/** A pod's identity and what kubelet would put in its sandbox config. */
export interface PodSpec {
  name: string;
  namespace?: string;
  uid?: string;
  attempt?: number;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  logDirectory?: string;
  portMappings?: { protocol?: "TCP" | "UDP"; containerPort: number; hostPort: number }[];
}

/** What PodSandboxStatus says (the fields the tests read). */
export interface SandboxStatus {
  id: string;
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  metadata: { name: string; namespace: string; uid: string; attempt: number };
  network?: { ip: string; additionalIps: { ip: string }[] };
  annotations: Record<string, string>;
  /** Verbose only: containerd's "info" JSON (netns path, pid, the runtime spec...). */
  info?: Record<string, unknown>;
}

/** A sandbox as ListPodSandbox lists it. */
export interface SandboxItem {
  id: string;
  state: SandboxStatus["state"];
  metadata: SandboxStatus["metadata"];
}

type Unary = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (e: grpc.ServiceError | null, r: unknown) => void,
) => void;

/** The CRI runtime service of one socket; `close()` (or dispose) ends the channel. */
export class CriClient implements Disposable {
  #client: grpc.Client & Record<string, Unary>;
  /** Per call deadline (containerd's CNI ADD of 20 pods at once may take a while). */
  timeoutMs = 60_000;

  constructor(socket: string) {
    const def = protoLoader.loadSync(PROTO, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } };
    };
    this.#client = new pkg.runtime.v1.RuntimeService(
      `unix://${socket}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & Record<string, Unary>;
  }

  #call<T>(method: string, req: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + this.timeoutMs);
      this.#client[method].call(this.#client, req, new grpc.Metadata(), { deadline }, (e, r) => {
        if (e) reject(new Error(`${method}: ${e.details || e.message}`, { cause: e }));
        else resolve(r as T);
      });
    });
  }

  /** The runtime's name and versions. */
  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.#call("Version", { version: "v1" });
  }

  /** RunPodSandbox as kubelet sends it (network namespace POD); resolves with the id. */
  async runPodSandbox(pod: PodSpec): Promise<string> {
    const ns = pod.namespace ?? "default";
    const uid = pod.uid ?? crypto.randomUUID();
    const config = {
      metadata: { name: pod.name, namespace: ns, uid, attempt: pod.attempt ?? 0 },
      hostname: pod.name,
      logDirectory: pod.logDirectory ?? "",
      portMappings: (pod.portMappings ?? []).map((p) => ({
        protocol: p.protocol ?? "TCP",
        containerPort: p.containerPort,
        hostPort: p.hostPort,
      })),
      labels: { "io.kubernetes.pod.name": pod.name, ...pod.labels },
      annotations: pod.annotations ?? {},
      linux: {
        securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } },
      },
    };
    const r = await this.#call<{ podSandboxId: string }>("RunPodSandbox", { config });
    return r.podSandboxId;
  }

  /** PodSandboxStatus; `verbose` adds containerd's info (parsed). */
  async podSandboxStatus(id: string, verbose = false): Promise<SandboxStatus> {
    const r = await this.#call<{ status: SandboxStatus; info: Record<string, string> }>(
      "PodSandboxStatus",
      { podSandboxId: id, verbose },
    );
    const status = r.status;
    if (verbose && r.info?.info) status.info = JSON.parse(r.info.info);
    return status;
  }

  /** StopPodSandbox (idempotent, as kubelet relies on). */
  async stopPodSandbox(id: string): Promise<void> {
    await this.#call("StopPodSandbox", { podSandboxId: id });
  }

  /** RemovePodSandbox (idempotent). */
  async removePodSandbox(id: string): Promise<void> {
    await this.#call("RemovePodSandbox", { podSandboxId: id });
  }

  /** Every sandbox the runtime knows. */
  async listPodSandbox(): Promise<SandboxItem[]> {
    const r = await this.#call<{ items: SandboxItem[] }>("ListPodSandbox", {});
    return r.items;
  }

  /** Closes the channel. */
  close(): void {
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
