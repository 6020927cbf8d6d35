/**
 * podplex's host-local and the reference /usr/lib/cni/host-local sharing ONE dataDir:
 * alternating allocations, then both running at the same time. No address may be handed
 * out twice, every lease file must be well formed and name the container that got the
 * address, and DEL from either side must release everything.
 *
 * Also checks that the store's lock is flock(2): util-linux `flock -n` (the same call the
 * reference's go-filemutex makes) cannot take the lock while podplex holds it.
 *
 * @module
 */
import { LEASE_INDEX } from "../delegates/ipam/host_local/lease_index.ts";
import assert from "node:assert/strict";
import { DiskStore } from "../delegates/ipam/host_local/disk_store.ts";
import { hostLocal } from "../delegates/ipam/host_local/host_local.ts";
import type { DelegateContext } from "../delegates/types.ts";
import { tempDir, tryRun } from "./testutils.ts";

const REFERENCE = "/usr/lib/cni/host-local";
const haveReference = await Deno.stat(REFERENCE).then(() => true, () => false);
const NET = "ppinterop";

function rawConf(dataDir: string): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: NET,
    type: "bridge",
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: "10.90.0.0/24" }], [{ subnet: "fd00:90::/120" }]],
    },
  };
}

function ctx(raw: Record<string, unknown>, id: string, ifname = "eth0"): DelegateContext {
  return {
    env: { containerId: id, ifname, netns: "", path: [] },
    cniArgs: new Map(),
    raw,
    ipam: () => Promise.reject(new Error("unused")),
    ipamTraits: () => Promise.resolve({}),
  };
}

/** Runs the reference plugin; returns the addresses it handed out (ADD) or []. */
async function reference(cmd: "ADD" | "DEL", raw: unknown, id: string): Promise<string[]> {
  const child = new Deno.Command(REFERENCE, {
    env: {
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: id,
      CNI_NETNS: "/run/netns/ppinterop-unused",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(raw)));
  await w.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`reference ${cmd} ${id} failed: ${text}`);
  if (cmd !== "ADD") return [];
  return (JSON.parse(text).ips as Array<{ address: string }>).map((i) => i.address);
}

async function podplex(cmd: "ADD" | "DEL", raw: Record<string, unknown>, id: string) {
  const conf = hostLocal.parseConf(raw);
  if (cmd === "DEL") {
    await hostLocal.del(conf, ctx(raw, id));
    return [];
  }
  return ((await hostLocal.add(conf, ctx(raw, id))).ips ?? []).map((i) => i.address);
}

/** Asserts no duplicates and that each lease file names the container that got the address. */
async function checkLeases(dir: string, owners: Map<string, string>): Promise<void> {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    files.set(e.name, await Deno.readTextFile(`${dir}/${e.name}`));
  }
  for (const [addr, id] of owners) {
    const ip = addr.split("/")[0];
    assert.equal(files.get(ip), `${id}\r\neth0`, `lease file of ${ip}`);
  }
  const leaseFiles = [...files.keys()].filter((n) =>
    n !== "lock" && !n.startsWith("last_reserved_ip.") && n !== LEASE_INDEX
  );
  assert.equal(leaseFiles.length, owners.size, "one lease file per handed-out address");
  for (const n of leaseFiles) assert.match(files.get(n)!, /^pp[a-z0-9-]+\r\neth0$/, `file ${n}`);
}

function record(owners: Map<string, string>, id: string, addrs: string[]): void {
  assert.equal(addrs.length, 2, `${id} got one address per range set`);
  for (const a of addrs) {
    assert.ok(!owners.has(a), `${a} handed out twice (to ${owners.get(a)} and ${id})`);
    owners.set(a, id);
  }
}

async function onlyBookkeepingLeft(dir: string): Promise<void> {
  const left = [];
  for await (const e of Deno.readDir(dir)) if (e.name !== LEASE_INDEX) left.push(e.name);
  assert.deepEqual(left.sort(), ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
}

Deno.test({
  name: "podplex and the reference host-local alternate 200 allocations in one dataDir",
  ignore: !haveReference,
  async fn() {
    await using dir = await tempDir("ppinterop");
    const raw = rawConf(dir.path);
    const owners = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const id = `pp-alt-${i}`;
      record(owners, id, i % 2 ? await reference("ADD", raw, id) : await podplex("ADD", raw, id));
    }
    await checkLeases(`${dir.path}/${NET}`, owners);
    // Each side releases what the other allocated.
    for (let i = 0; i < 200; i++) {
      const id = `pp-alt-${i}`;
      await (i % 2 ? podplex("DEL", raw, id) : reference("DEL", raw, id));
    }
    await onlyBookkeepingLeft(`${dir.path}/${NET}`);
  },
});

Deno.test({
  name: "podplex and the reference host-local allocate concurrently without a duplicate",
  ignore: !haveReference,
  async fn() {
    await using dir = await tempDir("ppinterop");
    const raw = rawConf(dir.path);
    const owners = new Map<string, string>();
    const jobs: Array<Promise<void>> = [];
    // 100 reference processes and 100 in-process ADDs (each with its own store and lock fd),
    // all started at once.
    for (let i = 0; i < 100; i++) {
      jobs.push(reference("ADD", raw, `pp-ref-${i}`).then((a) => record(owners, `pp-ref-${i}`, a)));
      jobs.push(podplex("ADD", raw, `pp-own-${i}`).then((a) => record(owners, `pp-own-${i}`, a)));
    }
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((r) => r.status === "rejected");
    assert.deepEqual(failed, [], "every ADD succeeded");
    await checkLeases(`${dir.path}/${NET}`, owners);
    const dels = [...new Set(owners.values())].map((id, i) =>
      i % 2 ? podplex("DEL", raw, id) : reference("DEL", raw, id)
    );
    await Promise.all(dels);
    await onlyBookkeepingLeft(`${dir.path}/${NET}`);
  },
});

Deno.test({
  name: "DiskStore.lock() is flock(2): another flock on the lock file fails while it is held",
  ignore: !await tryRun("flock", "--version"),
  async fn() {
    await using dir = await tempDir("ppflock");
    const store = await DiskStore.open(NET, dir.path);
    try {
      const lockPath = `${store.dir}/lock`;
      assert.ok(await tryRun("flock", "-n", lockPath, "true"), "free before lock()");
      await store.lock();
      try {
        assert.ok(!await tryRun("flock", "-n", lockPath, "true"), "held after lock()");
      } finally {
        await store.unlock();
      }
      assert.ok(await tryRun("flock", "-n", lockPath, "true"), "free after unlock()");
    } finally {
      await store.close();
    }
  },
});
