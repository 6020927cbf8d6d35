/** The library entry as a dependent would import it: no permission, no side effect. */
import assert from "node:assert/strict";

Deno.test("mod.ts imports with no permission at all and exports the documented API", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const script = `import * as pp from "${root}mod.ts";\n` +
    `if (typeof pp.runCni !== "function" || typeof pp.createRegistry !== "function") ` +
    `throw new Error("missing exports");\nconsole.log(Object.keys(pp).length);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--config", `${root}deno.json`, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const res = await out.output();
  assert.ok(res.success, new TextDecoder().decode(res.stderr));
  assert.ok(Number(new TextDecoder().decode(res.stdout)) > 20);
});
