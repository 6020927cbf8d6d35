import assert from "node:assert/strict";
import { fw, runTool } from "./fw.ts";
import { detectMasqBackend, findMasqBackend } from "./masq.ts";
import { isCode } from "./testing.ts";

Deno.test("runTool() reports a tool that is not installed as a failed run, never a throw", async () => {
  const out = await runTool({}, "pp-no-such-tool", ["list"]);
  assert.deepEqual(out, { success: false, stdout: "", stderr: "pp-no-such-tool not found" });
  assert.equal(await fw({}, "pp-no-such-tool", ["list"], false), "", "teardown: nothing to remove");
  await assert.rejects(fw({}, "pp-no-such-tool", ["list"]), isCode(101));
});

Deno.test("without iptables and nft, ipMasq's ADD is code 2 naming both and DEL finds no backend", () => {
  const path = Deno.env.get("PATH");
  const empty = Deno.makeTempDirSync();
  try {
    Deno.env.set("PATH", empty);
    assert.equal(findMasqBackend(), undefined);
    assert.throws(
      () => detectMasqBackend(),
      (e) => isCode(2)(e) && /iptables/.test(String(e)) && /nft/.test(String(e)),
    );
  } finally {
    if (path === undefined) Deno.env.delete("PATH");
    else Deno.env.set("PATH", path);
    Deno.removeSync(empty);
  }
});
