/**
 * The real launcher (`bin/podplex`) as a subprocess: what a runtime sees. It execs the node
 * artifact `deno task build` makes in dist/node/.
 */
import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { execWith } from "./testutils.ts";

const LAUNCHER = new URL("../bin/podplex", import.meta.url).pathname;

interface Out {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

async function podplex(env: Record<string, string>, stdin = "", args: string[] = []): Promise<Out> {
  const out = await execWith(LAUNCHER, args, env, stdin);
  return {
    code: out.code,
    json: out.stdout.trim() ? JSON.parse(out.stdout) : {},
    stderr: out.stderr,
  };
}

const BASE = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/root",
};
const ADD = {
  ...BASE,
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "ppcli0",
  CNI_NETNS: "/run/netns/ppcli-none",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/usr/lib/cni",
};

Deno.test("bin/podplex answers VERSION with dummy env", async () => {
  const out = await podplex({
    ...BASE,
    CNI_COMMAND: "VERSION",
    CNI_NETNS: "dummy",
    CNI_IFNAME: "dummy",
    CNI_PATH: "dummy",
  }, `{"cniVersion":"1.1.0"}`);
  assertEquals(out.code, 0);
  assertEquals(out.json, {
    cniVersion: "1.1.0",
    supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  });
});

Deno.test("bin/podplex fails with code 6 on stdin that is not JSON", async () => {
  const out = await podplex(ADD, "this is not json");
  assertEquals(out.code, 1);
  assertEquals(out.json.code, 6);
});

Deno.test("bin/podplex fails ADD without CNI_IFNAME with code 4 naming it", async () => {
  const { CNI_IFNAME: _, ...env } = ADD;
  const out = await podplex(env, `{"cniVersion":"1.0.0","name":"n","type":"podplex"}`);
  assertEquals(out.code, 1);
  assertEquals(out.json.code, 4);
  match(String(out.json.msg), /CNI_IFNAME/);
});

Deno.test("bin/podplex fails an unsupported cniVersion with code 1", async () => {
  const out = await podplex(ADD, `{"cniVersion":"9.9.9","name":"n","type":"podplex"}`);
  assertEquals(out.code, 1);
  assertEquals(out.json.code, 1);
});

Deno.test("bin/podplex refuses a type it cannot serve with code 7", async () => {
  const out = await podplex(ADD, `{"cniVersion":"1.0.0","name":"n","type":"ppnosuchplugin"}`);
  assertEquals(out.json.code, 7);
  match(String(out.json.msg), /"ppnosuchplugin"/);
});

Deno.test("bin/podplex without CNI_COMMAND or arguments prints about and usage and exits 0", async () => {
  const out = await podplex(BASE);
  assertEquals(out.code, 0);
  assertEquals(out.json, {});
  match(out.stderr, /supports 0\.1\.0, .*1\.1\.0/);
  match(out.stderr, /usage: podplex/);
});

Deno.test("bin/podplex version prints the about line", async () => {
  const out = await new Deno.Command(LAUNCHER, { args: ["version"], stdout: "piped" }).output();
  assertEquals(out.code, 0);
  match(new TextDecoder().decode(out.stdout), /^podplex \d+\.\d+\.\d+/);
});

Deno.test("bin/podplex refuses more than 16 MiB on stdin with code 5", async () => {
  const child = new Deno.Command(LAUNCHER, {
    env: { ...BASE, ...ADD },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const pad = new TextEncoder().encode("x".repeat(1 << 20));
  // podplex stops reading past its cap and exits: the rest of the write may find no reader.
  const feed = (async () => {
    await writer.write(new TextEncoder().encode(`{"cniVersion":"1.0.0","name":"n","pad":"`));
    for (let i = 0; i < 17; i++) await writer.write(pad);
    await writer.close();
  })().catch(() => {});
  const out = await child.output();
  await feed;
  const json = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals([out.code, json.code], [1, 5]);
  match(String(json.details ?? json.msg), /more than 16777216 bytes/);
});
