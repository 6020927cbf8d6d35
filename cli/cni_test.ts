import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import type { PluginRequest } from "../delegates/types.ts";
import { fakePlugin } from "../delegates/runner/testing.ts";
import { readEnv, runCni, validateContainerId, validateIfname } from "./cni.ts";

const CONF = `{"cniVersion":"1.0.0","name":"net1","type":"fake"}`;
const ENV = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "c1",
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

interface Run {
  code: number;
  out: Record<string, unknown>;
  requests: PluginRequest[];
  stdinRead: boolean;
  resolved: string[];
  stderr: string;
}

async function call(
  env: Record<string, string | undefined>,
  stdin: string | Error = CONF,
  behaviour: (req: PluginRequest) => Promise<Record<string, unknown> | undefined> = () =>
    Promise.resolve({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] }),
): Promise<Run> {
  const run: Run = {
    code: -1,
    out: {},
    requests: [],
    stdinRead: false,
    resolved: [],
    stderr: "",
  };
  let text = "";
  const plugin = fakePlugin("fake", (req) => {
    run.requests.push(req);
    return behaviour(req);
  });
  run.code = await runCni({
    env,
    stdin: () => {
      run.stdinRead = true;
      return stdin instanceof Error
        ? Promise.reject(stdin)
        : Promise.resolve(new TextEncoder().encode(stdin));
    },
    stdout: (s) => (text += s),
    stderr: (s) => (run.stderr += s),
  }, (type) => {
    run.resolved.push(type);
    return Promise.resolve(plugin);
  });
  run.out = text ? JSON.parse(text) : {};
  return run;
}

Deno.test("VERSION answers with every supported version without reading stdin", async () => {
  const r = await call({
    CNI_COMMAND: "VERSION",
    CNI_NETNS: "dummy",
    CNI_IFNAME: "dummy",
    CNI_PATH: "dummy",
  });
  assertEquals(r.code, 0);
  assertEquals(r.stdinRead, false);
  assertEquals(r.out, {
    cniVersion: "1.1.0",
    supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  });
});

Deno.test("ADD runs the plugin for the conf's type and prints its result", async () => {
  const r = await call(ENV);
  assertEquals(r.code, 0);
  assertEquals(r.resolved, ["fake"]);
  assertEquals(r.out, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
  assertEquals(r.requests[0].command, "ADD");
  assertEquals(r.requests[0].env, {
    path: ["/opt/cni/bin", "/usr/lib/cni"],
    containerId: "c1",
    ifname: "eth0",
    netns: "/run/netns/x",
  });
  assertEquals(new TextDecoder().decode(r.requests[0].conf), CONF);
});

Deno.test("no CNI_COMMAND prints the about text and supported versions on stderr, exit 0", async () => {
  for (const cmd of [undefined, ""]) {
    const r = await call({ ...ENV, CNI_COMMAND: cmd });
    assertEquals(r.code, 0);
    assertEquals(r.out, {});
    assertEquals(r.requests.length, 0);
    match(r.stderr, /podplex/);
    match(r.stderr, /CNI protocol versions supported: 0\.1\.0, .*1\.1\.0/);
  }
});

Deno.test("an unknown verb is code 4 naming it", async () => {
  const r = await call({ ...ENV, CNI_COMMAND: "EXPLODE" });
  assertEquals(r.out.code, 4);
  match(r.out.msg as string, /"EXPLODE"/);
});

for (const verb of ["ADD", "CHECK"]) {
  for (const v of ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"]) {
    Deno.test(`${verb} without ${v} is code 4 naming it`, async () => {
      const r = await call({ ...ENV, CNI_COMMAND: verb, [v]: undefined });
      assertEquals([r.code, r.out.code], [1, 4]);
      match(r.out.msg as string, new RegExp(v));
      assertEquals(r.requests.length, 0);
    });
  }
}

Deno.test("several missing variables are all named", async () => {
  const r = await call({ CNI_COMMAND: "ADD" });
  assertEquals(r.out.code, 4);
  match(r.out.msg as string, /CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME/);
});

Deno.test("DEL needs CNI_CONTAINERID and CNI_IFNAME but not CNI_NETNS or CNI_PATH", async () => {
  const ok = await call({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" });
  assertEquals(ok.code, 0);
  assertEquals(ok.requests[0].env.path, []);
  assertEquals(ok.out, {}, "DEL prints nothing");
  const bad = await call({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1" });
  assertEquals(bad.out.code, 4);
  match(bad.out.msg as string, /CNI_IFNAME/);
});

Deno.test("ADD accepts a missing CNI_PATH (the spec makes it optional)", async () => {
  const r = await call({ ...ENV, CNI_PATH: undefined });
  assertEquals(r.code, 0);
  assertEquals(r.requests[0].env.path, []);
});

Deno.test("GC needs CNI_PATH and a 1.1.0 conf", async () => {
  const conf11 = `{"cniVersion":"1.1.0","name":"n","type":"fake"}`;
  assertEquals((await call({ CNI_COMMAND: "GC" }, conf11)).out.code, 4);
  assertEquals((await call({ CNI_COMMAND: "GC", CNI_PATH: "/x" }, conf11)).code, 0);
  const old = await call({ CNI_COMMAND: "GC", CNI_PATH: "/x" }, CONF);
  assertEquals(old.out.code, 1);
  assertEquals(old.requests.length, 0);
});

Deno.test("STATUS needs no variables but a 1.1.0 conf", async () => {
  const conf11 = `{"cniVersion":"1.1.0","name":"n","type":"fake"}`;
  assertEquals((await call({ CNI_COMMAND: "STATUS" }, conf11)).code, 0);
  assertEquals((await call({ CNI_COMMAND: "STATUS" }, CONF)).out.code, 1);
});

Deno.test("CHECK below 0.4.0 is code 1", async () => {
  const r = await call(
    { ...ENV, CNI_COMMAND: "CHECK" },
    `{"cniVersion":"0.3.1","name":"n","type":"fake"}`,
  );
  assertEquals(r.out.code, 1);
  assertEquals(r.out.cniVersion, "0.3.1");
  assertEquals((await call({ ...ENV, CNI_COMMAND: "CHECK" })).code, 0);
});

Deno.test("an empty CNI_CONTAINERID is missing (code 4 naming it), a bad one code 4", async () => {
  for (const verb of ["ADD", "DEL", "CHECK"]) {
    const empty = await call({ ...ENV, CNI_COMMAND: verb, CNI_CONTAINERID: "" });
    assertEquals(empty.out.code, 4);
    match(empty.out.msg as string, /Missing .*CNI_CONTAINERID/);
  }
  const bad = await call({ ...ENV, CNI_CONTAINERID: "-abc" });
  assertEquals(bad.out.code, 4);
  match(bad.out.msg as string, /"-abc"/);
});

Deno.test("validateContainerId() follows the spec's regex", () => {
  assertEquals(validateContainerId("a".repeat(64)), "a".repeat(64));
  assertEquals(validateContainerId("A1_b.c-d"), "A1_b.c-d");
  for (const bad of ["_a", ".a", "a b", "a/b", "a:b"]) {
    let code = 0;
    try {
      validateContainerId(bad);
    } catch (e) {
      code = (e as CniError).code;
    }
    assertEquals(code, 4, bad);
  }
});

Deno.test("validateIfname() enforces length, dots, slash, colon and whitespace", () => {
  assertEquals(validateIfname("eth0"), "eth0");
  assertEquals(validateIfname("a".repeat(15)), "a".repeat(15));
  for (
    const bad of [
      "",
      "a".repeat(16),
      "ééééééééé",
      ".",
      "..",
      "a/b",
      "a:b",
      "a b",
      "a\tb",
      "a\u00a0b",
      "a\u0085b",
    ]
  ) {
    let code = 0;
    try {
      validateIfname(bad);
    } catch (e) {
      code = (e as CniError).code;
    }
    assertEquals(code, 4, JSON.stringify(bad));
  }
});

Deno.test("a bad CNI_IFNAME on ADD is code 4 naming it", async () => {
  const r = await call({ ...ENV, CNI_IFNAME: "way-too-long-name0" });
  assertEquals(r.out.code, 4);
  match(r.out.msg as string, /CNI_IFNAME "way-too-long-name0"/);
});

Deno.test("a stdin read error is code 5", async () => {
  assertEquals((await call(ENV, new Error("EIO"))).out.code, 5);
});

Deno.test("stdin that is not JSON is code 6", async () => {
  assertEquals((await call(ENV, "not json")).out.code, 6);
});

Deno.test("a conf without name or with a bad field is code 7", async () => {
  assertEquals((await call(ENV, `{"cniVersion":"1.0.0","type":"fake"}`)).out.code, 7);
  assertEquals((await call(ENV, `{"name":"n","type":"fake","capabilities":[]}`)).out.code, 7);
  assertEquals((await call(ENV, `{"name":"n"}`)).out.code, 7);
});

Deno.test("an unsupported cniVersion is code 1 and the error says 1.1.0", async () => {
  const r = await call(ENV, `{"cniVersion":"9.9.9","name":"n","type":"fake"}`);
  assertEquals([r.out.code, r.out.cniVersion], [1, "1.1.0"]);
});

Deno.test("a plugin's CniError is printed with the conf's version", async () => {
  const r = await call(ENV, CONF, () => Promise.reject(new CniError(11, "Busy", "lock held")));
  assertEquals(r.code, 1);
  assertEquals(r.out, { cniVersion: "1.0.0", code: 11, msg: "Busy", details: "lock held" });
});

Deno.test("an unexpected exception is wrapped once as code 999", async () => {
  const r = await call(ENV, CONF, () => Promise.reject(new TypeError("boom")));
  assertEquals([r.out.code, r.out.msg], [999, "boom"]);
});

Deno.test("CNI_ARGS is passed on as received", async () => {
  const r = await call({ ...ENV, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p" });
  assertEquals(r.requests[0].env.args, "IgnoreUnknown=1;K8S_POD_NAME=p");
});

Deno.test("a CNI_COMMAND named like an Object method is an unknown verb (code 4)", async () => {
  const out: string[] = [];
  const code = await runCni(
    {
      env: { CNI_COMMAND: "toString" },
      stdin: () => Promise.resolve(new Uint8Array()),
      stdout: (s) => out.push(s),
      stderr: () => {},
    },
    () => Promise.reject(new Error("must not resolve")),
  );
  assertEquals(code, 1);
  assertEquals(JSON.parse(out.join("")).code, 4);
});

Deno.test("ADD and DEL refuse podplex's own netns with code 8 unless CNI_NETNS_OVERRIDE", async () => {
  for (const netns of ["/proc/self/ns/net", "/proc/thread-self/ns/net"]) {
    for (const verb of ["ADD", "DEL"]) {
      const r = await call({ ...ENV, CNI_COMMAND: verb, CNI_NETNS: netns });
      assertEquals(r.out.code, 8, `${verb} ${netns}`);
      match(r.out.msg as string, new RegExp(`"${netns}".*own network namespace`));
      assertEquals(r.requests.length, 0, "the plugin must not run");
    }
  }
  for (const override of ["1", "true", "TRUE", "True"]) {
    const r = await call({ ...ENV, CNI_NETNS: "/proc/self/ns/net", CNI_NETNS_OVERRIDE: override });
    assertEquals(r.code, 0, `override ${override}`);
  }
  for (const notOverride of ["0", "yes", ""]) {
    const r = await call({
      ...ENV,
      CNI_NETNS: "/proc/self/ns/net",
      CNI_NETNS_OVERRIDE: notOverride,
    });
    assertEquals(r.out.code, 8, `override ${JSON.stringify(notOverride)}`);
  }
  // CHECK is not refused (skel checks ADD and DEL), nor a netns that cannot be opened.
  assertEquals(
    (await call({ ...ENV, CNI_COMMAND: "CHECK", CNI_NETNS: "/proc/self/ns/net" })).code,
    0,
  );
  assertEquals((await call({ ...ENV, CNI_NETNS: "/run/netns/ppr-none" })).code, 0);
});

Deno.test("CNI_ARGS follows skel's LoadArgs: unknown keys are code 4 unless IgnoreUnknown", async () => {
  const bad = await call({ ...ENV, CNI_ARGS: "K8S_POD_NAME=web;FOO=bar" });
  assertEquals(bad.out.code, 4);
  match(bad.out.msg as string, /"FOO=bar"/);
  assertEquals(bad.requests.length, 0);
  for (
    const ok of ["IgnoreUnknown=1;FOO=bar", "FOO=bar;IgnoreUnknown=true", "IgnoreUnknown=TRUE;X="]
  ) {
    const r = await call({ ...ENV, CNI_ARGS: ok });
    assertEquals(r.code, 0, ok);
    assertEquals(r.requests[0].env.args, ok);
  }
  for (const no of ["IgnoreUnknown=0;FOO=bar", "IgnoreUnknown=false;FOO=bar"]) {
    assertEquals((await call({ ...ENV, CNI_ARGS: no })).out.code, 4, no);
  }
  const yes = await call({ ...ENV, CNI_ARGS: "IgnoreUnknown=yes;FOO=bar" });
  assertEquals(yes.out.code, 4);
  match(yes.out.msg as string, /"IgnoreUnknown=yes"/);
  for (const broken of ["K8S_POD_NAME", "A=1=2", "K8S_POD_NAME=web;", ";"]) {
    const r = await call({ ...ENV, CNI_COMMAND: "DEL", CNI_ARGS: broken });
    assertEquals(r.out.code, 4, broken);
  }
  // GC carries no container: its CNI_ARGS is not read.
  const gc = await call(
    { CNI_COMMAND: "GC", CNI_PATH: "/x", CNI_ARGS: "FOO=bar" },
    `{"cniVersion":"1.1.0","name":"n","type":"fake"}`,
  );
  assertEquals(gc.code, 0);
});

Deno.test("readEnv() carries PODPLEX_SOCKET, resolved against the caller's cwd", () => {
  const env = { CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" };
  assertEquals(readEnv("DEL", env).daemonSocket, undefined);
  assertEquals(
    readEnv("DEL", { ...env, PODPLEX_SOCKET: "/tmp/pp/podplex.sock" }).daemonSocket,
    "/tmp/pp/podplex.sock",
  );
  assertEquals(
    readEnv("DEL", { ...env, PODPLEX_SOCKET: "run/p.sock" }, "/w").daemonSocket,
    "/w/run/p.sock",
  );
});
