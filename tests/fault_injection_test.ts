/**
 * Fault injection: podplex SIGKILLed (an OOM kill, a node reboot) at many points of a
 * 3-attachment ADD, or of its DEL, as a runtime execs it; then the runtime's DEL twice and
 * a GC with no valid attachment. Nothing may be left: no link in the pod netns, no port on
 * the bridges, no lease, no state or temp file. The counts are printed.
 *
 * The kill points are spread over the whole call: full ADDs and DELs are timed first and
 * the kills land at evenly spaced delays up to 1.1 times the median, so they fall before the
 * JS starts, in every attachment, and at the end; points are added until that many kills
 * landed inside the call. CI lands 100 kills of each kind; `PODPLEX_LONG=1` lands 600.
 */
import { LEASE_INDEX } from "../delegates/ipam/host_local/lease_index.ts";
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { bridgeNetworks, ipJson, isRoot, tempNetns } from "./testutils.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const KILLS = Deno.env.get("PODPLEX_LONG") === "1" ? 600 : 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Rig {
  conf: string;
  netns: string;
  nsName: string;
  bridges: string[];
  dataDir: string;
  stateDir: string;
}

function spawn(rig: Rig, command: string, id: string, valid?: string): Deno.ChildProcess {
  const child = new Deno.Command(`${ROOT}/bin/podplex`, {
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: rig.netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      // Always the per-call process (the one killed), even if a podplex serve runs.
      PODPLEX_SOCKET: "/nonexistent/podplex.sock",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  const conf = valid ? rig.conf.replace(/\}$/, `,"cni.dev/valid-attachments":${valid}}`) : rig.conf;
  w.write(enc.encode(conf)).then(() => w.close()).catch(() => {});
  return child;
}

async function call(rig: Rig, command: string, id: string, valid?: string) {
  const out = await spawn(rig, command, id, valid).output();
  return { code: out.code, stdout: dec.decode(out.stdout) };
}

/** Runs `command` and SIGKILLs it after `delayMs` (it may have finished by then). */
async function killAfter(rig: Rig, command: string, id: string, delayMs: number) {
  const child = spawn(rig, command, id);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, delayMs);
  const status = await child.output();
  clearTimeout(timer);
  return status.signal === "SIGKILL";
}

/** What is left: per kind, how many. */
async function leftovers(rig: Rig): Promise<Record<string, number>> {
  const links = (await ipJson(rig.nsName, "link", "show")).filter((l) => l.ifname !== "lo");
  let ports = 0;
  for (const br of rig.bridges) {
    ports += (await ipJson(undefined, "link", "show", "master", br).catch(() => [])).length;
  }
  let leases = 0;
  let leaseTemps = 0;
  for (const net of safeDir(rig.dataDir)) {
    for (const f of safeDir(`${rig.dataDir}/${net}`)) {
      if (/^[0-9a-f.:]+$/.test(f)) leases++;
      else if (f !== "lock" && !f.startsWith("last_reserved_ip") && f !== LEASE_INDEX) {
        leaseTemps++;
      }
    }
  }
  const stateAll = safeDir(rig.stateDir);
  return {
    links: links.length,
    ports,
    leases,
    leaseTemps,
    states: stateAll.filter((f) => !f.startsWith(".")).length,
    stateTemps: stateAll.filter((f) => f.startsWith(".")).length,
  };
}

function safeDir(dir: string): string[] {
  try {
    return Array.from(Deno.readDirSync(dir), (e) => e.name);
  } catch {
    return [];
  }
}

const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Kills `victim` (ADD or DEL) at KILLS points, each followed by DEL twice; returns how many
 * runs left something after their DELs, and what GC left at the end.
 */
async function campaign(rig: Rig, victim: "ADD" | "DEL") {
  const id = (i: number) => `ppfi${victim.toLowerCase()}${i}`;
  // Full ADDs and DELs, timed (median of 3): the kill points spread over them.
  const times: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const addMs = await timed(() => call(rig, "ADD", id(-i)));
    const delMs = await timed(() => call(rig, "DEL", id(-i)));
    times.push(victim === "ADD" ? addMs : delMs);
  }
  // The span shrinks whenever a kill comes too late (the machine was faster than timed) and
  // grows back when kills land, so the points keep covering the call under a changing load.
  let span = times.sort((a, b) => a - b)[1] * 1.1;
  let killed = 0;
  let attempts = 0;
  let dirty = 0;
  let delFailures = 0;
  const sums: Record<string, number> = {};
  // Until KILLS kills have landed inside the call (a kill after it ended is not counted).
  for (let i = 0; killed < KILLS && attempts < KILLS * 10; i++, attempts++) {
    if (victim === "DEL") {
      const add = await call(rig, "ADD", id(i));
      assert.equal(add.code, 0, `ADD before the DEL kill failed: ${add.stdout}`);
    }
    if (await killAfter(rig, victim, id(i), (span * (killed % KILLS)) / KILLS)) {
      killed++;
      span *= 1.02;
    } else span *= 0.9;
    for (let d = 0; d < 2; d++) {
      const del = await call(rig, "DEL", id(i));
      if (del.code !== 0) delFailures++;
    }
    const left = await leftovers(rig);
    if (total(left) > 0) {
      dirty++;
      for (const [k, v] of Object.entries(left)) sums[k] = (sums[k] ?? 0) + v;
    }
  }
  const gc = await call(rig, "GC", "ppfigc", "[]");
  const afterGc = await leftovers(rig);
  console.log(
    `fault injection, SIGKILL during ${victim}: ${attempts} kill points over ${span.toFixed(0)} ` +
      `ms, ${killed} landed before the call ended; after DEL x2: ${dirty} runs left something ` +
      `${JSON.stringify(sums)}, ${delFailures} DELs failed; after GC (exit ${gc.code}): ` +
      `${JSON.stringify(afterGc)}`,
  );
  return { killed, dirty, sums, delFailures, gc, afterGc };
}

async function withRig(fn: (rig: Rig) => Promise<void>) {
  await using nets = await bridgeNetworks(3, "10.79");
  await using ns = await tempNetns("fi");
  const conf = JSON.stringify({
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net-a",
    defaultNetworks: ["default/net-b", "default/net-c"],
    networksDir: nets.networksDir,
    stateDir: nets.stateDir,
  });
  await fn({
    conf,
    netns: ns.path,
    nsName: ns.name,
    bridges: nets.bridges,
    dataDir: nets.dataDir,
    stateDir: nets.stateDir,
  });
}

for (const victim of ["ADD", "DEL"] as const) {
  Deno.test({
    name:
      `SIGKILL at ${KILLS} points of a 3-attachment ${victim}, then DEL twice and GC, leaves nothing`,
    ignore: !isRoot,
    async fn() {
      await withRig(async (rig) => {
        const r = await campaign(rig, victim);
        assert.ok(r.killed >= KILLS, `too few kills landed in the call: ${r.killed}`);
        assert.equal(r.delFailures, 0, "every DEL after a kill succeeds");
        assert.equal(r.dirty, 0, `runs left something after DEL x2: ${JSON.stringify(r.sums)}`);
        assert.equal(r.gc.code, 0, `GC failed: ${r.gc.stdout}`);
        assert.equal(total(r.afterGc), 0, `GC left ${JSON.stringify(r.afterGc)}`);
      });
    },
  });
}
