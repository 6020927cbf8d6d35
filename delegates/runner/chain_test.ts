import { deepStrictEqual as assertEquals, match, ok, rejects } from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { parseConfList } from "../../conf/netconf.ts";
import { convertResult } from "../../conf/result.ts";
import type { CniResult } from "../../conf/types.ts";
import { runChain, runtimeConfigFor } from "./chain.ts";
import type { BuiltinDelegate, PluginRequest } from "../types.ts";
import { createRegistry } from "./registry.ts";
import { fakePlugin, fakeRegistry } from "./testing.ts";

interface Call {
  type: string;
  command: string;
  conf: Record<string, unknown>;
  env: PluginRequest["env"];
}

/** A registry of fake plugins that record their calls; `fail` makes a type throw. */
function fakes(fail: Record<string, CniError> = {}) {
  const calls: Call[] = [];
  const registry = fakeRegistry((type) =>
    fakePlugin(type, (req: PluginRequest) => {
      const conf = JSON.parse(new TextDecoder().decode(req.conf));
      calls.push({ type, command: req.command, conf, env: req.env });
      if (fail[type]) return Promise.reject(fail[type]);
      if (req.command !== "ADD") return Promise.resolve(undefined);
      const prev = (conf.prevResult ?? { cniVersion: conf.cniVersion }) as Record<
        string,
        unknown
      >;
      const interfaces = [...((prev.interfaces as unknown[]) ?? []), { name: `${type}0` }];
      return Promise.resolve({
        ...prev,
        cniVersion: conf.cniVersion,
        interfaces,
        ips: [{ address: "10.0.0.2/24", interface: 0 }],
      });
    })
  );
  return { calls, registry };
}

const LIST = (version = "1.1.0", extra = "") =>
  `{"cniVersion":"${version}","name":"net1"${extra},"plugins":[
  {"type":"a","keep":{"x":[1,2]},"capabilities":{"portMappings":true,"mac":false}},
  {"type":"b","capabilities":{"bandwidth":true}}]}`;

const env = { containerId: "c1", netns: "/run/netns/x", ifname: "eth0", path: ["/bin"] };
const cached: CniResult = { cniVersion: "1.1.0", ips: [{ address: "10.0.0.9/24" }] };

Deno.test("ADD runs plugins in order, injecting name, version and the previous result", async () => {
  const { calls, registry } = fakes();
  const out = await runChain(parseConfList(LIST()), "ADD", { env, registry });
  assertEquals(calls.map((c) => c.type), ["a", "b"]);
  assertEquals(calls[0].conf, {
    type: "a",
    keep: { x: [1, 2] },
    capabilities: { portMappings: true, mac: false },
    name: "net1",
    cniVersion: "1.1.0",
  });
  assertEquals((calls[1].conf.prevResult as { interfaces: unknown[] }).interfaces, [{
    name: "a0",
  }]);
  assertEquals(out.result?.interfaces, [{ name: "a0" }, { name: "b0" }]);
  assertEquals(out.result?.cniVersion, "1.1.0");
});

Deno.test("ADD gives prevResult in the list's version", async () => {
  const { calls, registry } = fakes();
  const out = await runChain(parseConfList(LIST("0.4.0")), "ADD", { env, registry });
  const prev = calls[1].conf.prevResult as { cniVersion: string; ips: Array<{ version: string }> };
  assertEquals([prev.cniVersion, prev.ips[0].version], ["0.4.0", "4"]);
  // The runner keeps the result canonical: the version appears when it is printed.
  const printed = convertResult(out.result!, "0.4.0");
  assertEquals((printed.ips as Array<{ version: string }>)[0].version, "4");
});

Deno.test("ADD stops at the first error and keeps its code, naming the plugin", async () => {
  const { calls, registry } = fakes({ a: new CniError(11, "busy") });
  await rejects(runChain(parseConfList(LIST()), "ADD", { env, registry }), (e: CniError) => {
    match(e.message, /Plugin "a" of network "net1" failed \(ADD\): busy/);
    return e.code === 11;
  });
  assertEquals(calls.length, 1);
});

Deno.test("runtimeConfig carries only enabled capabilities, keys matched case-insensitively", async () => {
  const { calls, registry } = fakes();
  const capabilityArgs = {
    PortMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: "tcp" }],
    mac: "aa:bb:cc:dd:ee:ff",
    bandwidth: { IngressRate: 1000 },
  };
  await runChain(parseConfList(LIST()), "ADD", { env, registry, capabilityArgs });
  assertEquals(calls[0].conf.runtimeConfig, {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  });
  assertEquals(calls[1].conf.runtimeConfig, { bandwidth: { ingressRate: 1000 } });
});

Deno.test("runtimeConfigFor() is undefined when nothing matches and prefers an exact key", () => {
  assertEquals(runtimeConfigFor({ mac: true }, { ips: ["10.0.0.1/24"] }), undefined);
  assertEquals(runtimeConfigFor(undefined, { mac: "x" }), undefined);
  assertEquals(runtimeConfigFor({ mac: true }, { MAC: "upper", mac: "exact" }), { mac: "exact" });
  const annotations = { "io.kubernetes.cri.pod-annotations": { HostPort: "kept as is" } };
  assertEquals(
    runtimeConfigFor({ "io.kubernetes.cri.pod-annotations": true }, annotations),
    annotations,
  );
});

Deno.test("DEL runs in reverse with the cached result as prevResult", async () => {
  const { calls, registry } = fakes();
  await runChain(parseConfList(LIST("0.4.0")), "DEL", { env, registry, cachedResult: cached });
  assertEquals(calls.map((c) => c.type), ["b", "a"]);
  const prev = calls[0].conf.prevResult as { cniVersion: string };
  assertEquals(prev.cniVersion, "0.4.0");
});

Deno.test("DEL below 0.4.0 gives no prevResult", async () => {
  const { calls, registry } = fakes();
  await runChain(parseConfList(LIST("0.3.1")), "DEL", { env, registry, cachedResult: cached });
  assertEquals(calls.map((c) => "prevResult" in c.conf), [false, false]);
});

Deno.test("CHECK runs in order with the cached result", async () => {
  const { calls, registry } = fakes();
  await runChain(parseConfList(LIST()), "CHECK", { env, registry, cachedResult: cached });
  assertEquals(calls.map((c) => [c.type, c.command]), [["a", "CHECK"], ["b", "CHECK"]]);
  ok(calls.every((c) => (c.conf.prevResult as { ips: unknown[] }).ips.length === 1));
});

Deno.test("CHECK is refused below 0.4.0, skipped with disableCheck, needs a cached result", async () => {
  const { calls, registry } = fakes();
  await rejects(
    runChain(parseConfList(LIST("0.3.1")), "CHECK", { env, registry, cachedResult: cached }),
    (e: CniError) => e.code === 1,
  );
  await runChain(parseConfList(LIST("1.0.0", `,"disableCheck":true`)), "CHECK", { env, registry });
  await rejects(
    runChain(parseConfList(LIST()), "CHECK", { env, registry }),
    (e: CniError) => e.code === 3,
  );
  assertEquals(calls.length, 0);
});

Deno.test("GC sends valid attachments under both keys to every plugin and joins errors", async () => {
  const { calls, registry } = fakes({ a: new CniError(7, "bad a"), b: new CniError(11, "bad b") });
  const validAttachments = [{ containerID: "c1", ifname: "eth0" }];
  await rejects(
    runChain(parseConfList(LIST()), "GC", { env, registry, validAttachments }),
    (e: CniError) => e.code === 7 && /2 errors/.test(e.message) && /bad a.*bad b/.test(e.details!),
  );
  assertEquals(calls.length, 2);
  assertEquals(calls[0].conf["cni.dev/valid-attachments"], validAttachments);
  assertEquals(calls[0].conf["cni.dev/attachments"], validAttachments);
  assertEquals(calls[0].env, { path: ["/bin"] });
});

Deno.test("GC is skipped below 1.1.0 and with disableGC", async () => {
  const { calls, registry } = fakes();
  await runChain(parseConfList(LIST("1.0.0")), "GC", { env, registry });
  await runChain(parseConfList(LIST("1.1.0", `,"disableGC":true`)), "GC", { env, registry });
  assertEquals(calls.length, 0);
});

Deno.test("STATUS asks every plugin with only name and version injected, stopping at an error", async () => {
  const ok1 = fakes();
  await runChain(parseConfList(LIST()), "STATUS", {
    env,
    registry: ok1.registry,
    capabilityArgs: { mac: "x" },
  });
  assertEquals(ok1.calls.map((c) => c.type), ["a", "b"]);
  ok(ok1.calls.every((c) => !("runtimeConfig" in c.conf) && !("prevResult" in c.conf)));
  const bad = fakes({ a: new CniError(50, "not ready") });
  await rejects(
    runChain(parseConfList(LIST()), "STATUS", { env, registry: bad.registry }),
    (e: CniError) => e.code === 50,
  );
  assertEquals(bad.calls.length, 1);
});

Deno.test("in-process plugins parse their conf once and pass results on unconverted", async () => {
  const parsed: string[] = [];
  const returned: CniResult[] = [];
  const seenPrev: (CniResult | undefined)[] = [];
  const delegate = (type: string, withIpam: boolean): BuiltinDelegate<unknown> => ({
    type,
    parseConf: (raw) => (parsed.push(type), raw),
    async add(_conf, ctx) {
      seenPrev.push(ctx.prevResult);
      const ipam = withIpam ? await ctx.ipam("ADD") : undefined;
      const r: CniResult = {
        cniVersion: "1.1.0",
        interfaces: [...(ctx.prevResult?.interfaces ?? []), { name: type }],
        ips: ipam?.ips ?? ctx.prevResult?.ips ?? [],
      };
      returned.push(r);
      return r;
    },
    del: () => Promise.resolve(),
    check: () => Promise.resolve(),
  });
  const ipam: BuiltinDelegate<unknown> = {
    ...delegate("ppipam", false),
    add: () => Promise.resolve({ cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }] }),
  };
  const registry = createRegistry({
    builtins: {
      ppmain: () => Promise.resolve(delegate("ppmain", true)),
      pptune: () => Promise.resolve(delegate("pptune", false)),
      ppipam: () => Promise.resolve(ipam),
    },
  });
  const list = parseConfList(
    `{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ppmain","ipam":{"type":"ppipam"}},{"type":"pptune"}]}`,
  );
  const { result } = await runChain(list, "ADD", { env, registry });
  assertEquals(parsed, ["ppmain", "ppipam", "pptune"], "each conf is parsed once, by its delegate");
  ok(seenPrev[1] === returned[0], "the next plugin gets the previous result object itself");
  ok(result === returned[1], "the chain's result is the last plugin's, not a conversion of it");
  assertEquals(result!.ips, [{ address: "10.0.0.2/24" }], "no version field before the print");
});

Deno.test("GC below 1.1.0 reaches only in-process plugins with in-process IPAM, when asked", async () => {
  const seen: string[] = [];
  const inproc = (type: string) =>
    fakePlugin(type, () => Promise.resolve(undefined), {
      call: (req) => (seen.push(`${type}:${req.command}`), Promise.resolve(undefined)),
    });
  const registry = fakeRegistry({
    a: inproc("a"),
    ipamIn: inproc("ipamIn"),
    b: inproc("b"),
    ext: fakePlugin("ext", () => (seen.push("ext:GC"), Promise.resolve(undefined))),
  });
  const list = parseConfList(
    `{"cniVersion":"1.0.0","name":"old","plugins":[{"type":"a","ipam":{"type":"ipamIn"}},` +
      `{"type":"b","ipam":{"type":"ext"}},{"type":"ext"}]}`,
  );
  const validAttachments = [{ containerID: "c1", ifname: "eth0" }];
  await runChain(list, "GC", { env, registry, validAttachments });
  assertEquals(seen, [], "libcni's rule by default: no GC below 1.1.0");
  await runChain(list, "GC", { env, registry, validAttachments, gcInProcessAnyVersion: true });
  assertEquals(seen, ["a:GC"]);
});
