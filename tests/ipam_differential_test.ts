/**
 * Differential test: the same host-local configs and the same sequence of ADD/DEL/CHECK go
 * through the reference /usr/lib/cni/host-local (exec'd, its own temp dataDir) and through
 * podplex's built-in (via the built-in adapter, its own temp dataDir). Every step must give
 * the same result (or both fail), and the dataDir trees must end equal, names and contents.
 *
 * @module
 */
import { LEASE_INDEX } from "../delegates/ipam/host_local/lease_index.ts";
import assert from "node:assert/strict";
import { builtinPlugin } from "../delegates/runner/builtin.ts";
import { hostLocal } from "../delegates/ipam/host_local/host_local.ts";
import { staticIpam } from "../delegates/ipam/static.ts";
import { fakeRegistry } from "../delegates/runner/testing.ts";
import { tempDir } from "./testutils.ts";

const REFERENCE = "/usr/lib/cni/host-local";
const haveReference = await Deno.stat(REFERENCE).then(() => true, () => false);

const noRegistry = fakeRegistry({});
const podplex = builtinPlugin(hostLocal, () => noRegistry);
const podplexStatic = builtinPlugin(staticIpam, () => noRegistry);

/** One step: a verb for a container, optionally with CNI_ARGS. */
interface Step {
  cmd: "ADD" | "DEL" | "CHECK";
  id: string;
  ifname?: string;
  args?: string;
}

type Outcome = { ok: true; result?: unknown } | { ok: false };

async function runReference(conf: unknown, s: Step, bin = REFERENCE): Promise<Outcome> {
  const child = new Deno.Command(bin, {
    env: {
      CNI_COMMAND: s.cmd,
      CNI_CONTAINERID: s.id,
      CNI_NETNS: "/run/netns/ppdiff-unused",
      CNI_IFNAME: s.ifname ?? "eth0",
      CNI_PATH: "/usr/lib/cni",
      CNI_ARGS: s.args ?? "",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(conf)));
  await w.close();
  const out = await child.output();
  if (!out.success) return { ok: false };
  const text = new TextDecoder().decode(out.stdout).trim();
  return { ok: true, result: text ? JSON.parse(text) : undefined };
}

async function runPodplex(conf: unknown, s: Step, plugin = podplex): Promise<Outcome> {
  try {
    const result = await plugin.invoke({
      command: s.cmd,
      conf: new TextEncoder().encode(JSON.stringify(conf)),
      env: {
        containerId: s.id,
        netns: "/run/netns/ppdiff-unused",
        ifname: s.ifname ?? "eth0",
        args: s.args ?? "",
        path: ["/usr/lib/cni"],
      },
    });
    return { ok: true, result };
  } catch {
    return { ok: false };
  }
}

/** The reference always prints `"dns":{}`; podplex omits an empty dns. */
function normalise(o: Outcome): Outcome {
  if (!o.ok || !o.result || typeof o.result !== "object") return o;
  const r = { ...(o.result as Record<string, unknown>) };
  if (r.dns && Object.keys(r.dns as object).length === 0) delete r.dns;
  return { ok: true, result: r };
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (!await Deno.stat(dir).then(() => true, () => false)) return out;
  for await (const e of Deno.readDir(dir)) {
    if (e.name === LEASE_INDEX) continue; // podplex's own index of the leases compared here
    out[e.name] = e.isFile ? await Deno.readTextFile(`${dir}/${e.name}`) : "<dir>";
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

interface Case {
  name: string;
  ipam: Record<string, unknown>;
  extra?: Record<string, unknown>;
  /** Lease files written into both network dirs before the steps. */
  seed?: Record<string, string>;
  steps: Step[];
}

const adds = (n: number, from = 0): Step[] =>
  Array.from({ length: n }, (_, i) => ({ cmd: "ADD" as const, id: `ppc${from + i}` }));

const CASES: Case[] = [
  {
    name: "IPv4 legacy subnet with routes, exhaustion and reuse after DEL",
    ipam: {
      subnet: "10.77.0.0/29",
      routes: [{ dst: "0.0.0.0/0" }, { dst: "10.0.0.0/8", gw: "10.77.0.1" }],
    },
    steps: [
      ...adds(6),
      { cmd: "DEL", id: "ppc2" },
      { cmd: "DEL", id: "ppc2" },
      ...adds(2, 10),
      { cmd: "CHECK", id: "ppc0" },
      { cmd: "CHECK", id: "ppc2" },
    ],
  },
  {
    name: "IPv6 range with rangeStart and rangeEnd",
    ipam: {
      ranges: [[{ subnet: "fd00:77::/120", rangeStart: "fd00:77::10", rangeEnd: "fd00:77::14" }]],
      routes: [{ dst: "::/0" }],
    },
    steps: [...adds(6), { cmd: "DEL", id: "ppc0" }, ...adds(2, 10)],
  },
  {
    name: "dual stack with a custom gateway inside the range",
    ipam: {
      ranges: [
        [{ subnet: "10.78.0.0/28", gateway: "10.78.0.3" }],
        [{ subnet: "fd00:78::/124", gateway: "fd00:78::5" }],
      ],
    },
    steps: [...adds(4), { cmd: "DEL", id: "ppc1" }, ...adds(3, 10), { cmd: "ADD", id: "ppc0" }],
  },
  {
    name: "one set of several ranges walked round robin",
    ipam: {
      ranges: [[
        { subnet: "10.79.0.0/29", rangeStart: "10.79.0.4" },
        { subnet: "10.79.1.0/29", rangeEnd: "10.79.1.3" },
        { subnet: "10.79.2.0/30" },
      ]],
    },
    steps: [...adds(9), { cmd: "DEL", id: "ppc4" }, ...adds(2, 20)],
  },
  {
    name: "requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips",
    ipam: { ranges: [[{ subnet: "10.80.0.0/24" }], [{ subnet: "fd00:80::/64" }]] },
    extra: { args: { cni: { ips: ["fd00:80::99"] } }, runtimeConfig: { ips: ["10.80.0.42/24"] } },
    steps: [
      { cmd: "ADD", id: "ppr1" },
      { cmd: "ADD", id: "ppr2" }, // both requested addresses taken now
      { cmd: "DEL", id: "ppr1" },
      { cmd: "ADD", id: "ppr3", ifname: "net1" },
    ],
  },
  {
    name: "CNI_ARGS IP alone, the gateway requested, and a second ifname",
    ipam: { subnet: "10.81.0.0/24", rangeStart: "10.81.0.100" },
    steps: [
      { cmd: "ADD", id: "ppa", args: "IgnoreUnknown=1;IP=10.81.0.150" },
      { cmd: "ADD", id: "ppb", args: "IgnoreUnknown=1;IP=10.81.0.1" },
      { cmd: "ADD", id: "ppb", args: "IgnoreUnknown=1;IP=10.81.0.50" },
      { cmd: "ADD", id: "ppa", ifname: "net1" },
      { cmd: "ADD", id: "ppa", ifname: "net1" },
      { cmd: "DEL", id: "ppa" },
      { cmd: "CHECK", id: "ppa", ifname: "net1" },
    ],
  },
  {
    name: "legacy id-only leases: duplicate ADD refused, CHECK finds them, DEL frees them",
    ipam: { subnet: "10.82.0.0/24" },
    seed: { "10.82.0.5": "ppold", "10.82.0.6": "ppnew\r\neth0", last_reserved_ip: "x" },
    steps: [
      { cmd: "ADD", id: "ppold" },
      { cmd: "CHECK", id: "ppold", ifname: "eth7" },
      { cmd: "ADD", id: "ppnew" },
      { cmd: "ADD", id: "ppnew", ifname: "eth1" },
      { cmd: "DEL", id: "ppold", ifname: "eth7" },
      { cmd: "DEL", id: "ppnew" },
      { cmd: "CHECK", id: "ppold" },
    ],
  },
  {
    name: "a /31 subnet (too small)",
    ipam: { ranges: [[{ subnet: "10.83.0.0/31" }]] },
    steps: [{ cmd: "ADD", id: "ppx" }],
  },
  {
    name: "a subnet with host bits set",
    ipam: { subnet: "10.84.0.5/24" },
    steps: [{ cmd: "ADD", id: "ppx" }],
  },
  {
    name: "overlapping range sets",
    ipam: { ranges: [[{ subnet: "10.85.0.0/16" }], [{ subnet: "10.85.3.0/24" }]] },
    steps: [{ cmd: "ADD", id: "ppx" }],
  },
];

const VERSIONS = ["0.3.1", "0.4.0", "1.0.0"];

for (const c of CASES) {
  for (const version of VERSIONS) {
    Deno.test({
      name: `podplex host-local matches the reference: ${c.name} (cniVersion ${version})`,
      ignore: !haveReference,
      async fn() {
        await using ref = await tempDir("ppdiffref");
        await using mine = await tempDir("ppdiffpp");
        const conf = (dataDir: string) => ({
          cniVersion: version,
          name: "ppdiffnet",
          type: "bridge", // as when a main plugin hands its conf to IPAM
          ...c.extra,
          ipam: { type: "host-local", ...c.ipam, dataDir },
        });
        for (const [name, content] of Object.entries(c.seed ?? {})) {
          for (const d of [ref.path, mine.path]) {
            await Deno.mkdir(`${d}/ppdiffnet`, { recursive: true });
            await Deno.writeTextFile(`${d}/ppdiffnet/${name}`, content);
          }
        }
        for (const [i, s] of c.steps.entries()) {
          // CHECK exists from 0.4.0 on.
          if (s.cmd === "CHECK" && version === "0.3.1") continue;
          const want = normalise(await runReference(conf(ref.path), s));
          const got = normalise(await runPodplex(conf(mine.path), s));
          assert.deepEqual(got, want, `step ${i}: ${s.cmd} ${s.id} ${s.args ?? ""}`);
        }
        assert.deepEqual(await tree(`${mine.path}/ppdiffnet`), await tree(`${ref.path}/ppdiffnet`));
      },
    });
  }
}

const STATIC_CASES: Array<{ name: string; conf: Record<string, unknown>; args?: string }> = [
  {
    name: "addresses, routes and dns with CNI_ARGS IP and GATEWAY",
    conf: {
      ipam: {
        addresses: [
          { address: "10.10.0.1/24", gateway: "10.10.0.254" },
          { address: "3ffe:ffff:0:01ff::1/64" },
        ],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "3ffe:ffff:0:01ff::/64", gw: "3ffe:ffff:0:01ff::9" }],
        dns: { nameservers: ["8.8.8.8"], domain: "example.com", search: ["a.example"] },
      },
    },
    args: "IgnoreUnknown=1;IP=10.20.0.5/16,fd00::5/64;GATEWAY=10.20.0.1,3ffe:ffff:0:01ff::9",
  },
  {
    name: "args.cni.ips replace the configured addresses",
    conf: {
      ipam: { addresses: [{ address: "10.10.0.1/24" }] },
      args: { cni: { ips: ["10.30.0.1/24", "fd00::30/64"] } },
    },
  },
  {
    name: "runtimeConfig.ips win over args.cni.ips",
    conf: {
      ipam: { addresses: [{ address: "10.10.0.1/24" }] },
      args: { cni: { ips: ["10.30.0.1/24"] } },
      runtimeConfig: { ips: ["10.40.0.1/24"] },
    },
  },
  {
    name: "an address that is not a CIDR",
    conf: { ipam: { addresses: [{ address: "10.10.0.1" }] } },
  },
];

const STATIC = "/usr/lib/cni/static";
const haveStatic = await Deno.stat(STATIC).then(() => true, () => false);

for (const c of STATIC_CASES) {
  for (const version of VERSIONS) {
    Deno.test({
      name: `podplex static matches the reference: ${c.name} (cniVersion ${version})`,
      ignore: !haveStatic,
      async fn() {
        const conf = {
          cniVersion: version,
          name: "ppstatic",
          type: "bridge",
          ...c.conf,
          ipam: { type: "static", ...(c.conf.ipam as object) },
        };
        const step: Step = { cmd: "ADD", id: "ppst", args: c.args };
        const want = normalise(await runReference(conf, step, STATIC));
        const got = normalise(await runPodplex(conf, step, podplexStatic));
        assert.deepEqual(got, want);
      },
    });
  }
}
