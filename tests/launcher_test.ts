/**
 * bin/podplex in a checkout that was never built (a fresh clone): it builds the artifact once,
 * with everything the build prints on stderr, then runs the call. The build scripts are
 * stand-ins here (the real build runs as the test task's dependency and takes a minute); the
 * launcher is the real file.
 */
import assert from "node:assert/strict";

const launcher = new URL("../bin/podplex", import.meta.url).pathname;

/** A checkout with the real launcher and build scripts that count their runs. */
function checkout(buildExit = 0): string {
  const dir = Deno.makeTempDirSync({ prefix: "pplaunch" });
  Deno.mkdirSync(`${dir}/bin`);
  Deno.mkdirSync(`${dir}/scripts`);
  Deno.copyFileSync(launcher, `${dir}/bin/podplex`);
  Deno.chmodSync(`${dir}/bin/podplex`, 0o755);
  Deno.writeTextFileSync(`${dir}/scripts/setup.sh`, "echo setup-noise\n");
  Deno.writeTextFileSync(
    `${dir}/scripts/artifact.sh`,
    `set -e
root=$(cd "$(dirname "$0")/.." && pwd)
echo build-noise
echo run >> "$root/builds"
sleep 0.3
[ ${buildExit} -eq 0 ] || exit ${buildExit}
mkdir -p "$root/dist/node"
printf '#!/bin/sh\\necho "entry $*"\\n' > "$root/dist/node/podplex.tmp"
chmod +x "$root/dist/node/podplex.tmp"
mv "$root/dist/node/podplex.tmp" "$root/dist/node/podplex"
`,
  );
  return dir;
}

async function run(dir: string, ...args: string[]) {
  const out = await new Deno.Command(`${dir}/bin/podplex`, {
    args,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("bin/podplex of a never-built checkout builds the artifact once for calls at once, stdout left to the call", async () => {
  const dir = checkout();
  try {
    const calls = await Promise.all([1, 2, 3].map((k) => run(dir, "net", "validate", `${k}`)));
    for (const [k, c] of calls.entries()) {
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stdout, `entry net validate ${k + 1}\n`);
    }
    assert.equal(Deno.readTextFileSync(`${dir}/builds`), "run\n", "one build for three calls");
    assert.ok(calls.some((c) => c.stderr.includes("build-noise")), "the build's output on stderr");
    const again = await run(dir, "help");
    assert.deepEqual([again.stdout, again.stderr], ["entry help\n", ""]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("bin/podplex says so and exits 1 when the build fails", async () => {
  const dir = checkout(3);
  try {
    const c = await run(dir, "net", "validate");
    assert.equal(c.code, 1);
    assert.equal(c.stdout, "");
    assert.match(c.stderr, /cannot build the artifact at .*dist\/node\/podplex/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
