/**
 * Real etcd servers for tests: one member or a 3-member cluster on loopback, each member in
 * a temp data dir on ports picked at random from 23790-23899 (or `portRange`), stopped and removed even when
 * the test fails (`await using cluster = await startEtcd({ members: 3 })`).
 *
 * Needs Debian's `etcd-server` (3.4, installed by scripts/setup.sh).
 *
 * @module
 */

/** TLS material for {@linkcode startEtcd}: paths of PEM files. */
export interface EtcdServerTls {
  ca: string;
  cert: string;
  key: string;
  /** Require client certificates signed by `ca` (`--client-cert-auth`). */
  clientCertAuth?: boolean;
}

/** Options of {@linkcode startEtcd}. */
export interface StartEtcdOptions {
  /** 1 (default) or 3. */
  members?: number;
  /** Serve clients over TLS. */
  tls?: EtcdServerTls;
  /** Extra flags for every member. */
  flags?: string[];
  /**
   * More addresses each member serves clients on (same port), e.g. a test underlay's host
   * address so that processes in other netns reach it; their URLs are in `endpointsOn`.
   */
  clientHosts?: string[];
  /**
   * The loopback port range ports are picked from, inclusive (default 23790-23899); tests of
   * different suites running at once pick from ranges of their own.
   */
  portRange?: [number, number];
}

/** One member. */
export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  proc: Deno.ChildProcess | undefined;
}

/** A running cluster. */
export interface EtcdCluster extends AsyncDisposable {
  members: EtcdMember[];
  /** Client URLs of all members (loopback). */
  endpoints: string[];
  /** Client URLs of all members on one of `clientHosts`. */
  endpointsOn(host: string): string[];
  /** Index of the current leader (waits up to 10 s for one). */
  leader(): Promise<number>;
  /** Sends `signal` to member `i` and waits for it to exit. */
  kill(i: number, signal?: Deno.Signal): Promise<void>;
  /** Starts member `i` again on its data dir and waits until it answers. */
  restart(i: number): Promise<void>;
  /** Stops every member and removes the data dirs. */
  stop(): Promise<void>;
}

const PORT_LO = 23790;
const PORT_HI = 23899;

/** Whether `etcd` is installed. */
export function haveEtcd(): boolean {
  try {
    return Deno.statSync("/usr/bin/etcd").isFile;
  } catch {
    return false;
  }
}

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

const PORT_LOCKS = "/dev/shm";

/**
 * Reserves `port` across processes (several test runs, from several checkouts, share the
 * range): a lock file naming our pid, taken over only when its process is gone. A port a
 * killed member will restart on stays reserved meanwhile.
 */
function reservePort(port: number): boolean {
  const path = `${PORT_LOCKS}/ppe-etcd-port-${port}`;
  for (let i = 0; i < 2; i++) {
    try {
      Deno.writeTextFileSync(path, String(Deno.pid), { createNew: true });
      return true;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) return false;
      const pid = Number(Deno.readTextFileSync(path).trim() || "0");
      if (pid > 0 && pid !== Deno.pid && alive(pid)) return false;
      if (pid === Deno.pid) return false;
      try {
        Deno.removeSync(path);
      } catch { /* raced: someone else took it over */ }
    }
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function releasePorts(ports: number[]): void {
  for (const p of ports) {
    try {
      Deno.removeSync(`${PORT_LOCKS}/ppe-etcd-port-${p}`);
    } catch { /* gone */ }
  }
}

/** `n` distinct free loopback ports from [lo, hi], in random order, reserved. */
function pickPorts(n: number, [lo, hi]: [number, number] = [PORT_LO, PORT_HI]): number[] {
  const out: number[] = [];
  for (let tries = 0; out.length < n && tries < 1000; tries++) {
    const p = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (out.includes(p) || !portFree(p)) continue;
    if (reservePort(p)) {
      if (portFree(p)) out.push(p);
      else releasePorts([p]);
    }
  }
  if (out.length < n) {
    releasePorts(out);
    throw new Error(`No ${n} free ports in ${lo}-${hi}`);
  }
  return out;
}

function memberArgs(m: EtcdMember, cluster: string, token: string, o: StartEtcdOptions) {
  const port = m.clientUrl.slice(m.clientUrl.lastIndexOf(":") + 1);
  const scheme = m.clientUrl.slice(0, m.clientUrl.indexOf(":"));
  const urls = [m.clientUrl, ...(o.clientHosts ?? []).map((h) => `${scheme}://${h}:${port}`)]
    .join(",");
  const args = [
    "--name",
    m.name,
    "--data-dir",
    m.dataDir,
    "--listen-client-urls",
    urls,
    "--advertise-client-urls",
    urls,
    "--listen-peer-urls",
    m.peerUrl,
    "--initial-advertise-peer-urls",
    m.peerUrl,
    "--initial-cluster",
    cluster,
    "--initial-cluster-token",
    token,
    "--initial-cluster-state",
    "new",
    // Fast elections keep leader-kill tests short; loopback has no real latency.
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "500",
    "--logger",
    "zap",
    "--log-outputs",
    m.logFile,
  ];
  if (o.tls) {
    args.push("--cert-file", o.tls.cert, "--key-file", o.tls.key, "--trusted-ca-file", o.tls.ca);
    if (o.tls.clientCertAuth) args.push("--client-cert-auth");
  }
  return [...args, ...(o.flags ?? [])];
}

async function waitReady(m: EtcdMember, tls: EtcdServerTls | undefined, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await status(m, tls).then(() => true, () => false)) return;
    const st = await Promise.race([m.proc!.status, new Promise((r) => setTimeout(r, 50))]);
    if (st) break;
  }
  const log = await Deno.readTextFile(m.logFile).catch(() => "");
  throw new Error(`etcd member ${m.name} is not ready: ${log.slice(-1500)}`);
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command("/usr/bin/etcd", { args, stdout: "null", stderr: "null", stdin: "null" })
    .spawn();
}

/**
 * Starts etcd: `members` members on loopback, each in its own temp data dir.
 *
 * @throws {Error} with the member's log when one does not become ready in 15 s
 */
export async function startEtcd(o: StartEtcdOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(o);
    } catch (err) {
      // A port taken between our check and etcd's bind (by a process not using this helper).
      if (attempt >= 3 || !/address already in use/.test(String(err))) throw err;
    }
  }
}

async function startOnce(o: StartEtcdOptions): Promise<EtcdCluster> {
  let stopped = false;
  const n = o.members ?? 1;
  // tmpfs when there is one: etcd fsyncs every write, and a disk makes that the cost.
  const root = await Deno.makeTempDir({ prefix: "ppe-etcd-", dir: shmDir() });
  const ports = pickPorts(2 * n, o.portRange);
  const scheme = o.tls ? "https" : "http";
  const members: EtcdMember[] = Array.from({ length: n }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `${scheme}://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: `${root}/m${i}`,
    logFile: `${root}/m${i}.log`,
    proc: undefined,
  }));
  const initial = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const token = `ppe-${ports[0]}-${Date.now()}`;
  const argv = members.map((m) => memberArgs(m, initial, token, o));

  const stopMember = async (m: EtcdMember, signal: Deno.Signal = "SIGKILL") => {
    const p = m.proc;
    if (!p) return;
    m.proc = undefined;
    try {
      p.kill(signal);
    } catch { /* exited already */ }
    const t = setTimeout(() => {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await p.status;
    clearTimeout(t);
  };
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    endpointsOn: (host) => members.map((m) => m.clientUrl.replace("127.0.0.1", host)),
    async leader() {
      const end = Date.now() + 10000;
      while (Date.now() < end) {
        for (const [i, m] of members.entries()) {
          if (!m.proc) continue;
          const st = await status(m, o.tls).catch(() => undefined);
          if (st && st.leader !== "0" && st.leader === st.member) return i;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error("No etcd leader within 10 s");
    },
    kill: (i, signal = "SIGKILL") => stopMember(members[i], signal),
    async restart(i) {
      await stopMember(members[i]);
      members[i].proc = spawn(argv[i]);
      await waitReady(members[i], o.tls);
    },
    async stop() {
      await Promise.all(members.map((m) => stopMember(m)));
      if (stopped) return;
      stopped = true;
      await Deno.remove(root, { recursive: true }).catch(() => {});
      releasePorts(ports);
    },
    [Symbol.asyncDispose]() {
      return cluster.stop();
    },
  };
  try {
    for (const [i, m] of members.entries()) m.proc = spawn(argv[i]);
    await Promise.all(members.map((m) => waitReady(m, o.tls)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** `/v3/maintenance/status` of a member: its id and its leader's id. */
async function status(m: EtcdMember, tls?: EtcdServerTls) {
  const { EtcdClient } = await import("../clients/etcd/client.ts");
  const c = new EtcdClient({
    endpoints: [m.clientUrl],
    totalTimeoutMs: 500,
    tls: tls ? await tlsFiles(tls) : undefined,
  });
  try {
    const j = await c.call("/v3/maintenance/status", {});
    return { member: String(j.header?.member_id), leader: String(j.leader ?? "0") };
  } finally {
    c.close();
  }
}

/** Reads the PEM files of `tls` as a client's TLS settings (the server's cert as client's). */
export async function tlsFiles(tls: EtcdServerTls) {
  return {
    ca: await Deno.readTextFile(tls.ca),
    cert: await Deno.readTextFile(tls.cert),
    key: await Deno.readTextFile(tls.key),
  };
}

/**
 * Makes a CA, a server cert for 127.0.0.1 and a client cert with openssl in `dir`.
 *
 * @returns the server's {@linkcode EtcdServerTls} and the client's PEM paths
 */
export async function makeCerts(dir: string): Promise<{
  server: EtcdServerTls;
  client: { ca: string; cert: string; key: string };
}> {
  const ossl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const p = (f: string) => `${dir}/${f}`;
  await ossl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=ppe-ca",
  );
  for (const who of ["server", "client"]) {
    await ossl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      p(`${who}.key`),
      "-out",
      p(`${who}.csr`),
      "-subj",
      `/CN=ppe-${who}`,
    );
    const ext = p(`${who}.ext`);
    await Deno.writeTextFile(
      ext,
      who === "server"
        ? "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
        : "extendedKeyUsage=clientAuth\n",
    );
    await ossl(
      "x509",
      "-req",
      "-in",
      p(`${who}.csr`),
      "-CA",
      p("ca.pem"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-out",
      p(`${who}.pem`),
      "-days",
      "2",
      "-extfile",
      ext,
    );
  }
  return {
    server: { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key"), clientCertAuth: true },
    client: { ca: p("ca.pem"), cert: p("client.pem"), key: p("client.key") },
  };
}

function shmDir(): string | undefined {
  try {
    return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}
