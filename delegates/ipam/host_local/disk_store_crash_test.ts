/**
 * The lease store under SIGKILL and hostile umasks: a writer killed at any point leaves no
 * empty or ownerless address file, its temporary file goes at the next lock and at GC, and
 * the directory and lock file are 0700/0600 whatever the umask or an older mode.
 */
import assert from "node:assert/strict";
import { parseIp } from "../../../conf/ip.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { DiskStore, LEASE_TEMP } from "./disk_store.ts";
import { hostLocalGc, parseHostLocalConf } from "./host_local.ts";
import type { DelegateContext } from "../../types.ts";

const IP_NAME = /^[0-9a-f.:]+$/;

/** A child that reserves and releases addresses as fast as it can, until killed. */
function writerScript(dataDir: string): string {
  const mod = new URL("./disk_store.ts", import.meta.url).href;
  const ip = new URL("../../../conf/ip.ts", import.meta.url).href;
  return `import { DiskStore } from ${JSON.stringify(mod)};
    import { parseIp } from ${JSON.stringify(ip)};
    const s = await DiskStore.open("pprnet", ${JSON.stringify(dataDir)});
    await s.lock();
    console.log("ready");
    for (let i = 0;; i = (i + 1) % 200) {
      const ip = parseIp("10.202.60." + (i + 2));
      await s.reserve("pprcrash" + i, "eth0", ip, "0");
      if (i % 2) await s.release(ip);
    }`;
}

async function killMidWrite(dataDir: string, afterMs: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", writerScript(dataDir)],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "ready": the store is open and locked, the loop starts
  await new Promise((r) => setTimeout(r, afterMs));
  child.kill("SIGKILL");
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
}

Deno.test("a writer SIGKILLed while reserving never leaves an empty or ownerless lease", async () => {
  await using dir = await tempDir("ppr-crash");
  const kills = Number(Deno.env.get("PODPLEX_LONG") ? 200 : 25);
  let tempsSeen = 0;
  for (let k = 0; k < kills; k++) {
    await killMidWrite(dir.path, 5 + Math.random() * 40);
    const net = `${dir.path}/pprnet`;
    for (const e of Deno.readDirSync(net)) {
      if (e.name === LEASE_TEMP) tempsSeen++;
      if (!IP_NAME.test(e.name)) continue;
      const text = Deno.readTextFileSync(`${net}/${e.name}`);
      assert.match(
        text,
        /^pprcrash\d+\r\neth0$/,
        `kill ${k}: lease ${e.name} holds ${JSON.stringify(text)}`,
      );
    }
    // The next holder of the lock removes a killed writer's temporary file.
    const s = await DiskStore.open("pprnet", dir.path);
    await s.lock();
    assert.ok(!Deno.readDirSync(net).some((e) => e.name === LEASE_TEMP), "temp left after lock");
    await s.close();
  }
  console.log(
    `${kills} kills, ${tempsSeen} left a temporary file (removed at the next lock), 0 bad leases`,
  );
});

Deno.test("GC removes a killed writer's temporary file and stale STATUS probes, keeps valid leases", async () => {
  await using dir = await tempDir("ppr-gc");
  const s = await DiskStore.open("pprnet", dir.path);
  await s.lock();
  await s.reserve("pprkeep", "eth0", parseIp("10.202.61.2"), "0");
  await s.unlock();
  await s.close();
  const net = `${dir.path}/pprnet`;
  Deno.writeTextFileSync(`${net}/${LEASE_TEMP}`, "pprgone\r\neth0");
  Deno.writeTextFileSync(`${net}/.status-old`, "");
  Deno.utimeSync(
    `${net}/.status-old`,
    new Date(Date.now() - 3600_000),
    new Date(Date.now() - 3600_000),
  );
  Deno.writeTextFileSync(`${net}/.status-new`, "");
  const conf = parseHostLocalConf({
    cniVersion: "1.1.0",
    name: "pprnet",
    ipam: { type: "host-local", subnet: "10.202.61.0/24", dataDir: dir.path },
  });
  const raw = { "cni.dev/valid-attachments": [{ containerID: "pprkeep", ifname: "eth0" }] };
  await hostLocalGc(conf, { raw } as unknown as DelegateContext);
  const names = Array.from(Deno.readDirSync(net), (e) => e.name).sort();
  assert.deepEqual(names.filter((n) => !n.startsWith("last_reserved")), [
    ".podplex-index",
    ".status-new",
    "10.202.61.2",
    "lock",
  ]);
});

Deno.test("the network directory is 0700 and the lock file 0600 whatever the umask", async () => {
  await using dir = await tempDir("ppr-mode");
  const old = Deno.umask(0o000);
  try {
    for (const [umask, net] of [[0o000, "ppra"], [0o077, "pprb"], [0o777, "pprc"]] as const) {
      Deno.umask(umask);
      const s = await DiskStore.open(net, dir.path);
      await s.lock();
      await s.reserve("pprmode", "eth0", parseIp("10.202.62.2"), "0");
      await s.close();
      assert.equal(
        Deno.statSync(`${dir.path}/${net}`).mode! & 0o7777,
        0o700,
        `dir, umask ${umask}`,
      );
      assert.equal(
        Deno.statSync(`${dir.path}/${net}/lock`).mode! & 0o7777,
        0o600,
        `lock, umask ${umask}`,
      );
      assert.equal(Deno.statSync(`${dir.path}/${net}/10.202.62.2`).mode! & 0o077, 0, "lease");
    }
    // Made wider by an older version (or the reference's 0755 directory): tightened on open.
    Deno.umask(0o000);
    Deno.mkdirSync(`${dir.path}/pprd`, { mode: 0o777 });
    Deno.writeTextFileSync(`${dir.path}/pprd/lock`, "", { mode: 0o666 });
    await (await DiskStore.open("pprd", dir.path)).close();
    assert.equal(Deno.statSync(`${dir.path}/pprd`).mode! & 0o7777, 0o700);
    assert.equal(Deno.statSync(`${dir.path}/pprd/lock`).mode! & 0o7777, 0o600);
  } finally {
    Deno.umask(old);
  }
});
