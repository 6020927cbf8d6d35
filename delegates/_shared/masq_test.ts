import assert from "node:assert/strict";
import { masqChain, masqComment, setupMasq, teardownMasq } from "./masq.ts";
import { fw } from "./fw.ts";
import { isRoot, tempNetns } from "../../tests/testutils.ts";

Deno.test({
  name: "ipMasq teardowns of many pods at once each remove exactly their own rules",
  ignore: !isRoot,
  async fn() {
    await using host = await tempNetns("tm");
    const opts = { hostNs: host.path };
    const pods = Array.from(
      { length: 12 },
      (_, i) => ({ id: `ppt-masq-${i}`, ip: `10.211.40.${i + 2}` }),
    );
    const chains = await Promise.all(pods.map((p) => masqChain("net", p.id)));
    for (const [i, p] of pods.entries()) {
      await setupMasq(opts, "iptables", [`${p.ip}/24`], chains[i], masqComment("net", p.id));
    }
    const before = await fw(opts, "iptables", ["-t", "nat", "-S", "POSTROUTING"]);
    assert.equal(before.split("\n").filter((l) => l.startsWith("-A")).length, 12);
    // Half of them torn down together: the other half's rules must all stay.
    await Promise.all(chains.slice(0, 6).map((c) => teardownMasq(opts, "iptables", c)));
    const after = await fw(opts, "iptables", ["-t", "nat", "-S", "POSTROUTING"]);
    const left = after.split("\n").filter((l) => l.startsWith("-A"));
    assert.deepEqual(
      left.map((l) => /-j (CNI-\S+)/.exec(l)![1]).sort(),
      chains.slice(6).sort(),
    );
    const all = await fw(opts, "iptables", ["-t", "nat", "-S"]);
    for (const c of chains.slice(0, 6)) assert(!all.includes(c), `${c} is gone`);
    await Promise.all(chains.slice(6).map((c) => teardownMasq(opts, "iptables", c)));
    assert.doesNotMatch(await fw(opts, "iptables", ["-t", "nat", "-S"]), /CNI-/);
  },
});

Deno.test("iptables -S lines split into the arguments iptables printed", async () => {
  const { splitRuleSpec } = await import("./masq.ts");
  assert.deepEqual(
    splitRuleSpec(
      String
        .raw`-A POSTROUTING -s 10.2.0.2/32 -m comment --comment "name: \"n\" id: \"a b\\\"c\"" -j CNI-x`,
    ),
    [
      "-A",
      "POSTROUTING",
      "-s",
      "10.2.0.2/32",
      "-m",
      "comment",
      "--comment",
      'name: "n" id: "a b\\"c"',
      "-j",
      "CNI-x",
    ],
  );
  assert.deepEqual(splitRuleSpec('-A X -m comment --comment ""'), [
    "-A",
    "X",
    "-m",
    "comment",
    "--comment",
    "",
  ]);
});
