import assert from "node:assert/strict";
import { countLeases, leaseDirsOf } from "./status.ts";

Deno.test("leaseDirsOf() names the host-local directory of each plugin, default dataDir included", () => {
  const list = JSON.stringify({
    cniVersion: "1.0.0",
    name: "lan",
    plugins: [
      { type: "bridge", ipam: { type: "host-local", subnet: "10.0.0.0/24", dataDir: "/tmp/x/" } },
      { type: "macvlan", ipam: { type: "host-local", subnet: "10.1.0.0/24" } },
      { type: "tuning" },
    ],
  });
  assert.deepEqual(leaseDirsOf(list), ["/tmp/x/lan", "/var/lib/cni/networks/lan"]);
});

Deno.test("countLeases() counts files named by an IP and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppleases" });
  try {
    for (const f of ["10.0.0.2", "fd00::3", "lock", "last_reserved_ip.0"]) {
      await Deno.writeTextFile(`${dir}/${f}`, "x");
    }
    assert.equal(await countLeases(dir), 2);
    assert.equal(await countLeases(`${dir}/missing`), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
