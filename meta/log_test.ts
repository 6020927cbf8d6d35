import assert from "node:assert/strict";
import { createLogger, escapeLogText } from "./log.ts";

function lines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}

Deno.test("escapeLogText() makes pod-controlled text one printable line", () => {
  assert.equal(escapeLogText("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(escapeLogText("\u001b[31mred\u001b[0m"), "\\u001b[31mred\\u001b[0m");
  assert.equal(escapeLogText("x\u2028y\u202ez\u0000"), "x\\u2028y\\u202ez\\u0000");
  assert.equal(escapeLogText("plain ü ascii"), "plain ü ascii");
});

Deno.test("a log line with a newline from a pod stays one line in logFile", () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-log-" });
  try {
    const file = `${dir}/podplex.log`;
    const log = createLogger("debug", file);
    log.warning(
      `Annotation "k8s.v1.cni.cncf.io/networks": net1\n2026-01-01T00:00:00Z podplex error: forged`,
    );
    log.info("second");
    const got = lines(file);
    assert.equal(got.length, 2, got.join("|"));
    assert.match(got[0], /net1\\n2026-01-01T00:00:00Z podplex error: forged$/);
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("logFile is never written through a symlink, nor when not owned by root", () => {
  if (Deno.uid() !== 0) return; // chown below needs root; the rest of the suite runs as root
  const dir = Deno.makeTempDirSync({ prefix: "ppr-log-" });
  try {
    const target = `${dir}/root-owned.conf`;
    Deno.writeTextFileSync(target, "keep\n");
    Deno.symlinkSync(target, `${dir}/link.log`);
    Deno.symlinkSync(`${dir}/nowhere`, `${dir}/dangling.log`);
    Deno.writeTextFileSync(`${dir}/nobody.log`, "");
    Deno.chownSync(`${dir}/nobody.log`, 65534, 65534);
    // (A FIFO logFile is in tests/bad_input_test.ts, in a child process: a regression there
    // would block, and must not hang the suite.)
    for (const f of ["link.log", "dangling.log", "nobody.log"]) {
      const log = createLogger("debug", `${dir}/${f}`);
      log.error("pod text\nforged line");
      log.error("again");
    }
    assert.equal(Deno.readTextFileSync(target), "keep\n");
    assert.throws(() => Deno.lstatSync(`${dir}/nowhere`), Deno.errors.NotFound);
    assert.equal(Deno.readTextFileSync(`${dir}/nobody.log`), "");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("logFormat json: one parsable object a line with the call's fields, nothing raw", () => {
  const dir = Deno.makeTempDirSync({ prefix: "pptlog" });
  try {
    const file = `${dir}/log`;
    const log = createLogger("info", file, {
      format: "json",
      fields: { verb: "ADD", containerId: "c1", pod: "default/web" },
    });
    log.with({ network: "default/lan" }).warning("bad\nline \u2028 \u202e rtl \u0085");
    log.debug("not at info");
    log.info("second");
    const lines = Deno.readTextFileSync(file).split("\n").filter((l) => l);
    assert.equal(lines.length, 2);
    assert.doesNotMatch(lines[0], /[\u2028\u202e\u0085\n]/, "escaped in the text of the line");
    const first = JSON.parse(lines[0]);
    assert.deepEqual(
      { ...first, time: undefined },
      {
        time: undefined,
        level: "warning",
        msg: "bad\nline \u2028 \u202e rtl \u0085",
        verb: "ADD",
        containerId: "c1",
        pod: "default/web",
        network: "default/lan",
      },
    );
    assert.equal(JSON.parse(lines[1]).network, undefined);
    assert(!Number.isNaN(Date.parse(first.time)));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
