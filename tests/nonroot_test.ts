/**
 * The meta-plugin's unit tests (beside its code in `meta/`) need no root: they run here as
 * `nobody`, with no capability, so a non-root run cannot pass with the meta-plugin untested.
 */
import assert from "node:assert/strict";
import { isRoot } from "./testutils.ts";

const NOBODY = "65534";

Deno.test({
  name: "meta/'s tests pass as nobody, without capabilities",
  ignore: !isRoot,
  async fn() {
    const root = new URL("..", import.meta.url).pathname;
    // nobody cannot read root's Deno cache: a copy of its npm packages, readable by all.
    const dir = await Deno.makeTempDir({ prefix: "ppnonroot" });
    // Nor run a Deno from root's home (npx's cache): the pinned one of the checkout, copied.
    const pinned = `${root}.tools/node_modules/.bin/deno`;
    const deno = `${dir}/deno`;
    await Deno.copyFile(await Deno.realPath(pinned).catch(() => Deno.execPath()), deno);
    await Deno.chmod(deno, 0o755);
    try {
      const cache = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
      const cp = await new Deno.Command("cp", { args: ["-r", `${cache}/npm`, dir] }).output();
      assert.ok(cp.success, "copy the npm cache");
      await new Deno.Command("chmod", { args: ["-R", "a+rwX", dir] }).output();
      const out = await new Deno.Command("setpriv", {
        args: [
          `--reuid=${NOBODY}`,
          `--regid=${NOBODY}`,
          "--clear-groups",
          "--inh-caps=-all",
          "--bounding-set=-all",
          "env",
          "HOME=/tmp",
          `DENO_DIR=${dir}`,
          deno,
          "test",
          "--allow-all",
          "--no-prompt",
          "meta/",
        ],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      // deno-lint-ignore no-control-regex
      const text = new TextDecoder().decode(out.stdout).replace(/\x1b\[[0-9;]*m/g, "");
      const summary = text.match(/^(ok|FAILED) \| (\d+) passed \| (\d+) failed.*$/m) ?? [""];
      const errText = new TextDecoder().decode(out.stderr);
      assert.ok(
        out.success,
        `meta/ tests failed as nobody:\n${text.slice(-3000)}\n${errText.slice(-2000)}`,
      );
      assert.ok(Number(summary[2]) >= 20, `too few tests ran: ${summary[0]}`);
      assert.doesNotMatch(summary[0], /ignored/, "no meta/ test may be skipped as non-root");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
