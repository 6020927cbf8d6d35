import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import type { CniResult } from "../../conf/types.ts";
import { builtinPlugin } from "./builtin.ts";
import type { BuiltinDelegate, DelegateContext, PluginRegistry } from "../types.ts";
import { fakePlugin, fakeRegistry } from "./testing.ts";

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const env = {
  containerId: "c1",
  netns: "/run/netns/x",
  ifname: "eth0",
  args: "K8S_POD_NAME=p",
  path: [],
};

interface Conf {
  mtu: number;
}

/** A delegate that records its context and returns the IPAM result on one interface. */
function recorder() {
  const seen: Array<{ verb: string; conf: Conf; ctx: DelegateContext }> = [];
  const d: BuiltinDelegate<Conf> = {
    type: "rec",
    parseConf(raw) {
      if (typeof raw.mtu !== "number") throw new CniError(7, `Invalid "mtu": ${raw.mtu}`);
      return { mtu: raw.mtu };
    },
    async add(conf, ctx) {
      seen.push({ verb: "ADD", conf, ctx });
      const ipam = await ctx.ipam("ADD");
      return {
        cniVersion: "1.1.0",
        interfaces: [{ name: "eth0", mtu: conf.mtu }],
        ips: ipam?.ips?.map((ip) => ({ ...ip, interface: 0 })),
      };
    },
    async del(conf, ctx) {
      seen.push({ verb: "DEL", conf, ctx });
      await ctx.ipam("DEL");
    },
    check(conf, ctx) {
      seen.push({ verb: "CHECK", conf, ctx });
      return Promise.resolve();
    },
  };
  return { d, seen };
}

/** A registry whose IPAM type `fakeipam` answers with a 0.2.0-style or 1.x result. */
function ipamRegistry(calls: string[]): PluginRegistry {
  const ipam = fakePlugin("fakeipam", (req) => {
    const conf = JSON.parse(new TextDecoder().decode(req.conf));
    calls.push(`${req.command}:${conf.type}`);
    if (req.command !== "ADD") return Promise.resolve(undefined);
    return Promise.resolve(
      conf.cniVersion === "0.2.0"
        ? { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1" } }
        : { cniVersion: conf.cniVersion, ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }] },
    );
  });
  return fakeRegistry({ fakeipam: ipam });
}

const conf = (version: string, extra: Record<string, unknown> = {}) =>
  enc({
    cniVersion: version,
    name: "n",
    type: "rec",
    mtu: 1400,
    ipam: { type: "fakeipam" },
    ...extra,
  });

Deno.test("builtinPlugin() runs IPAM with the same conf and converts ADD to the conf's version", async () => {
  const { d, seen } = recorder();
  const calls: string[] = [];
  const plugin = builtinPlugin(d, () => ipamRegistry(calls));
  assertEquals([plugin.type, plugin.builtin], ["rec", true]);
  const out = await plugin.invoke({ command: "ADD", conf: conf("0.4.0"), env });
  assertEquals(out, {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0" }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
  });
  assertEquals(calls, ["ADD:rec"]);
  assertEquals(seen[0].conf, { mtu: 1400 });
  assertEquals([...seen[0].ctx.cniArgs], [["K8S_POD_NAME", "p"]]);
});

Deno.test("builtinPlugin() reads a 0.2.0 IPAM result into canonical form", async () => {
  const { d } = recorder();
  const out = await builtinPlugin(d, () => ipamRegistry([])).invoke({
    command: "ADD",
    conf: conf("0.2.0"),
    env,
  });
  assertEquals(out, { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1" } });
});

Deno.test("builtinPlugin() gives the delegate prevResult in canonical form", async () => {
  const { d, seen } = recorder();
  const prevResult = { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.2/24" }] };
  await builtinPlugin(d, () => ipamRegistry([])).invoke({
    command: "CHECK",
    conf: conf("0.4.0", { prevResult }),
    env,
  });
  assertEquals(
    seen[0].ctx.prevResult,
    { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] } as CniResult,
  );
});

Deno.test("builtinPlugin() rejects a garbage prevResult with code 7", async () => {
  const { d } = recorder();
  await rejects(
    builtinPlugin(d, () => ipamRegistry([])).invoke({
      command: "CHECK",
      conf: conf("1.0.0", { prevResult: { ips: 3 } }),
      env,
    }),
    (e: CniError) => e.code === 7,
  );
});

Deno.test("builtinPlugin() passes parseConf errors through", async () => {
  const { d } = recorder();
  await rejects(
    builtinPlugin(d, () => ipamRegistry([])).invoke({
      command: "ADD",
      conf: conf("1.0.0", { mtu: "x" }),
      env,
    }),
    (e: CniError) => e.code === 7 && e.message.includes(`"mtu"`),
  );
});

Deno.test("builtinPlugin() DEL returns undefined and runs IPAM DEL", async () => {
  const { d } = recorder();
  const calls: string[] = [];
  assertEquals(
    await builtinPlugin(d, () => ipamRegistry(calls)).invoke({
      command: "DEL",
      conf: conf("1.0.0"),
      env,
    }),
    undefined,
  );
  assertEquals(calls, ["DEL:rec"]);
});

Deno.test("builtinPlugin() STATUS and GC succeed for a delegate without them", async () => {
  const { d } = recorder();
  const p = builtinPlugin(d, () => ipamRegistry([]));
  assertEquals(await p.invoke({ command: "STATUS", conf: conf("1.1.0"), env }), undefined);
  assertEquals(await p.invoke({ command: "GC", conf: conf("1.1.0"), env }), undefined);
});

Deno.test("builtinPlugin() ipam() without ipam.type is code 7", async () => {
  const { d } = recorder();
  const bytes = enc({ cniVersion: "1.0.0", name: "n", type: "rec", mtu: 1 });
  await rejects(
    builtinPlugin(d, () => ipamRegistry([])).invoke({ command: "ADD", conf: bytes, env }),
    (e: CniError) => e.code === 7 && e.message.includes("ipam.type"),
  );
});
