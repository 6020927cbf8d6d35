import { deepStrictEqual as assertEquals, match, ok, rejects } from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { tempDir } from "../../tests/testutils.ts";
import { execPlugin, findInPath, pluginError } from "./exec.ts";
import type { PluginRequest } from "../types.ts";

const CONF = new TextEncoder().encode(`{"cniVersion":"0.4.0","name":"n","type":"fake"}`);

async function script(dir: string, name: string, body: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

function request(dir: string, command: PluginRequest["command"] = "ADD"): PluginRequest {
  return {
    command,
    conf: CONF,
    env: { containerId: "c1", netns: "/run/netns/x", ifname: "eth0", args: "A=1", path: [dir] },
  };
}

const isCode = (code: number) => (e: unknown) => e instanceof CniError && e.code === code;

Deno.test("execPlugin() passes the CNI_* env and the conf on stdin", async () => {
  await using dir = await tempDir();
  await script(
    dir.path,
    "fake",
    `conf=$(cat); printf '{"cniVersion":"0.4.0","dns":{"domain":"%s|%s|%s|%s|%s|%s|%s|%s"}}' ` +
      `"$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" ` +
      `"$PPKEEP" "$(echo "$conf" | tr -d '"')"`,
  );
  Deno.env.set("PPKEEP", "inherited");
  try {
    const out = await execPlugin("fake").invoke(request(dir.path));
    assertEquals(
      (out?.dns as { domain: string }).domain,
      `ADD|c1|/run/netns/x|eth0|A=1|${dir.path}|inherited|{cniVersion:0.4.0,name:n,type:fake}`,
    );
  } finally {
    Deno.env.delete("PPKEEP");
  }
});

Deno.test("execPlugin() fills in a missing result cniVersion from the conf", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo '{"ips":[]}'`);
  assertEquals(await execPlugin("fake").invoke(request(dir.path)), {
    ips: [],
    cniVersion: "0.4.0",
  });
});

Deno.test("execPlugin() returns undefined for verbs other than ADD", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo 'ignored'`);
  assertEquals(await execPlugin("fake").invoke(request(dir.path, "DEL")), undefined);
});

Deno.test("execPlugin() turns an error JSON on stdout into that CniError", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo '{"code":11,"msg":"busy","details":"lock"}'; exit 1`);
  await rejects(
    execPlugin("fake").invoke(request(dir.path)),
    (e: CniError) => e.code === 11 && e.message === "busy" && e.details === "lock",
  );
});

Deno.test("execPlugin() uses stderr as the message when stdout is empty", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo 'it broke' >&2; exit 3`);
  await rejects(
    execPlugin("fake", { stderr: () => {} }).invoke(request(dir.path)),
    (e: CniError) => e.code === 102 && /"fake" failed: it broke/.test(e.message),
  );
});

Deno.test("execPlugin() forwards the plugin's stderr on success", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo 'note' >&2; echo '{}'`);
  let seen = "";
  await execPlugin("fake", { stderr: (s) => (seen += s) }).invoke(request(dir.path));
  assertEquals(seen, "note\n");
});

Deno.test("execPlugin() rejects a result that is not JSON with code 6", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo 'hello'`);
  await rejects(execPlugin("fake").invoke(request(dir.path)), isCode(6));
});

Deno.test("execPlugin() kills a plugin that runs past the timeout with code 11", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `exec sleep 30`);
  const req = { ...request(dir.path), timeoutMs: 100 };
  await rejects(execPlugin("fake").invoke(req), isCode(11));
});

Deno.test("execPlugin() retries a binary that is busy being written", async () => {
  await using dir = await tempDir();
  await script(dir.path, "fake", `echo '{"cniVersion":"0.4.0"}'`);
  // An open write handle makes execve fail with ETXTBSY until it is closed.
  const handle = await Deno.open(`${dir.path}/fake`, { write: true });
  const closing = new Promise<void>((r) => setTimeout(() => (handle.close(), r()), 120));
  const out = await execPlugin("fake").invoke(request(dir.path));
  await closing;
  assertEquals(out, { cniVersion: "0.4.0" });
});

Deno.test("findInPath() takes the first directory holding the plugin", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  await script(b.path, "fake", "true");
  assertEquals(await findInPath("fake", [a.path, b.path]), `${b.path}/fake`);
});

Deno.test("findInPath() rejects a missing plugin, a bad type or an empty path with code 7", async () => {
  await using dir = await tempDir();
  await rejects(findInPath("nope", [dir.path]), isCode(7));
  await rejects(findInPath("../bin/sh", [dir.path]), isCode(7));
  await rejects(findInPath("a/b", [dir.path]), isCode(7));
  await rejects(findInPath("", [dir.path]), isCode(7));
  await rejects(findInPath("sh", []), isCode(7));
  await Deno.mkdir(`${dir.path}/adir`);
  await rejects(findInPath("adir", [dir.path]), isCode(7));
});

Deno.test("pluginError() explains stdout that is not an error JSON", () => {
  const e = pluginError("x", 1, "garbage", "");
  assertEquals(e.code, 102);
  match(e.message, /not JSON: "garbage"/);
  ok(pluginError("x", 2, "", "").message.includes("exit code 2"));
});
