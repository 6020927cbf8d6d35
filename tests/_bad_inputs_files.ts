/**
 * Bad network definition files (content, delegate fields, file kinds) and the files that
 * must fail fast (FIFOs, device links: through bin/podplex, in a child process).
 *
 * @module
 */
import type { BadCase, CaseCtx } from "./_bad_inputs.ts";
import { bridgeDef, definition } from "./_bad_inputs.ts";

type Obj = Record<string, unknown>;

function defPath(c: CaseCtx, file = "net.json"): string {
  return `${c.rig.networksDir}/${c.ns}/${file}`;
}

function contentCases(): BadCase[] {
  const texts: Array<[string, string, string, string[]]> = [
    ["not JSON", "net.json", "{", ["Invalid CNI conf", "position 1"]],
    ["a JSON list", "net.json", "[]", ["not a JSON object"]],
    ["a JSON number", "net.json", "5", ["not a JSON object"]],
    ["JSON null", "net.json", "null", ["not a JSON object"]],
    ["an empty file", "net.json", "", ["Invalid CNI conf", "end of JSON"]],
    ["YAML that does not parse", "net.yaml", "a: [", ["Invalid YAML"]],
    ["a YAML scalar", "net.yaml", "just text", ["not an object"]],
    [
      "a NAD of another name",
      "net.json",
      JSON.stringify({
        kind: "NetworkAttachmentDefinition",
        metadata: { name: "other" },
        spec: { config: "{}" },
      }),
      ["metadata.name", "other"],
    ],
    [
      "a NAD of another namespace",
      "net.json",
      JSON.stringify({
        kind: "NetworkAttachmentDefinition",
        metadata: { namespace: "x" },
        spec: { config: "{}" },
      }),
      ["metadata.namespace"],
    ],
    [
      "a NAD whose config is a number",
      "net.json",
      JSON.stringify({ kind: "NetworkAttachmentDefinition", metadata: {}, spec: { config: 5 } }),
      ["spec.config"],
    ],
    [
      "a NAD whose config is not JSON",
      "net.json",
      JSON.stringify({ kind: "NetworkAttachmentDefinition", metadata: {}, spec: { config: "{" } }),
      ["Invalid CNI conf", "position 1"],
    ],
    [
      "a conf with a bad name",
      "net.json",
      JSON.stringify({ cniVersion: "1.0.0", name: "a b", type: "bridge" }),
      ["a b"],
    ],
    [
      "a conf with a number as name",
      "net.json",
      JSON.stringify({ cniVersion: "1.0.0", name: 5, type: "bridge" }),
      ['"name"'],
    ],
    ["a conf without type", "net.json", JSON.stringify({ cniVersion: "1.0.0", name: "net" }), [
      '"type"',
    ]],
    [
      "a conflist without plugins",
      "net.conflist",
      JSON.stringify({ cniVersion: "1.0.0", name: "net", plugins: [] }),
      ["plugins"],
    ],
    [
      "a conflist of 65 plugins",
      "net.conflist",
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "net",
        plugins: Array.from({ length: 65 }, () => ({ type: "tuning" })),
      }),
      ["plugins", "65"],
    ],
    [
      "a conflist whose plugin is a string",
      "net.conflist",
      JSON.stringify({ cniVersion: "1.0.0", name: "net", plugins: ["bridge"] }),
      ["plugins[0]"],
    ],
  ];
  return texts.map(([name, file, text, names]) => ({
    category: "definition files",
    name,
    make: (c) => definition(c, file, text),
    code: 7,
    names,
  }));
}

function fieldCases(): BadCase[] {
  const long = "a-very-long-bridge-name";
  const bridge: Array<[string, Obj, Obj, string[]]> = [
    ["a bridge name longer than 15 bytes", { bridge: long }, {}, ['"bridge"', long]],
    ["a bridge name with a slash", { bridge: "br/0" }, {}, ['"bridge"', "br/0"]],
    ["a bridge name with unicode over 15 bytes", { bridge: "brïdgé-ünïcödé" }, {}, ['"bridge"']],
    ["a number as bridge", { bridge: 5 }, {}, ['"bridge"']],
    ["mtu as a string", { mtu: "1500" }, {}, ['"mtu"']],
    ["mtu too large", { mtu: 70000 }, {}, ['"mtu"', "70000"]],
    ["a float mtu", { mtu: 1500.5 }, {}, ['"mtu"']],
    ["vlan 4095", { vlan: 4095 }, {}, ['"vlan"']],
    ["isGateway as a string", { isGateway: "yes" }, {}, ['"isGateway"']],
    ["ipMasq as a number", { ipMasq: 1 }, {}, ['"ipMasq"']],
    ["hairpinMode with promiscMode", { hairpinMode: true, promiscMode: true }, {}, ["hairpinMode"]],
    ["vlan with vlanTrunk", { vlan: 5, vlanTrunk: [{ id: 6 }] }, {}, ["vlanTrunk"]],
    ["vlanTrunk half a range", { vlanTrunk: [{ minID: 3 }] }, {}, ["vlanTrunk"]],
    ["ipam as a number", { ipam: 5 }, {}, ['"ipam"']],
    ["ipam type as a number", {}, { type: 5 }, ["type"]],
    ["a /33 subnet", {}, { subnet: "10.202.90.0/33" }, ["10.202.90.0/33"]],
    ["a subnet with leading zeros", {}, { subnet: "010.202.90.0/24" }, ["010.202.90.0/24"]],
    ["a /32 subnet", {}, { subnet: "10.202.90.1/32" }, ["10.202.90.1/32"]],
    ["rangeStart outside the subnet", {}, { rangeStart: "10.202.91.5" }, ["10.202.91.5"]],
    ["ranges as a string", {}, { ranges: "x" }, ["ranges"]],
    ["a route to nowhere", {}, { routes: [{ dst: "x" }] }, ['"x"']],
    ["a number as dataDir", {}, { dataDir: 5 }, ["dataDir"]],
  ];
  const out: BadCase[] = bridge.map(([name, fields, ipam, names]) => ({
    category: "definition fields",
    name,
    make: (c) => bridgeDef(c, fields, ipam),
    code: 7,
    names,
  }));
  const others: Array<[string, Obj, string[]]> = [
    ["a macvlan master longer than 15 bytes", { type: "macvlan", master: "a-very-long-master" }, [
      '"master"',
    ]],
    ["a macvlan mode it does not have", { type: "macvlan", master: "lo", mode: "weird" }, [
      '"mode"',
      "weird",
    ]],
    ["an ipvlan master with a colon", { type: "ipvlan", master: "eth0:1" }, ['"master"']],
    ["a vxlan without vni", { type: "vxlan" }, ['"vni"']],
    ["a vxlan vni of 2^24", { type: "vxlan", vni: 16777216 }, ['"vni"']],
    ["a vxlan vni as a string", { type: "vxlan", vni: "5" }, ['"vni"']],
    [
      "a vxlanName longer than 15 bytes",
      { type: "vxlan", vni: 5, vxlanName: "vx-very-long-name" },
      ['"vxlanName"'],
    ],
    ["a vxlan dev with a colon", { type: "vxlan", vni: 5, dev: "a:b" }, ['"dev"']],
    ["a vxlan port of 70000", { type: "vxlan", vni: 5, port: 70000 }, ['"port"']],
    ["a vxlan remote that is no address", { type: "vxlan", vni: 5, remotes: ["x"] }, ['"remotes"']],
    ["a vxlan local with an octet of 999", { type: "vxlan", vni: 5, local: "1.2.3.999" }, [
      '"local"',
    ]],
  ];
  for (const [name, fields, names] of others) {
    out.push({
      category: "definition fields",
      name,
      make: (c) => bridgeDef(c, { bridge: undefined, ...fields }),
      code: 7,
      names,
    });
  }
  return out;
}

function kindCases(): BadCase[] {
  const kinds: Array<[string, (c: CaseCtx) => void, number, (c: CaseCtx) => string[]]> = [
    [
      "a directory named net.json",
      (c) => Deno.mkdirSync(defPath(c), { recursive: true }),
      7,
      (c) => [defPath(c), "directory"],
    ],
    [
      "a symlink to /dev/null",
      (c) => Deno.symlinkSync("/dev/null", defPath(c)),
      7,
      (c) => [defPath(c), "character device"],
    ],
    [
      "a symlink loop",
      (c) => {
        Deno.symlinkSync(defPath(c, "net.conf"), defPath(c));
        Deno.symlinkSync(defPath(c), defPath(c, "net.conf"));
      },
      5,
      (c) => [defPath(c)],
    ],
    [
      "a dangling symlink",
      (c) => Deno.symlinkSync(`${c.rig.dir}/nowhere`, defPath(c)),
      100,
      (c) => [`${c.ns}/net`],
    ],
    [
      "a file of 2 MiB",
      (c) => Deno.writeFileSync(defPath(c), new Uint8Array(2 << 20).fill(32)),
      7,
      (c) => [defPath(c), "bytes"],
    ],
    [
      "a symlink to /etc/shadow (not quoted)",
      (c) => Deno.symlinkSync("/etc/shadow", defPath(c)),
      7,
      (c) => [defPath(c), "not valid JSON"],
    ],
  ];
  return kinds.map(([name, prepare, code, names]): BadCase => ({
    category: "file kinds",
    name,
    make: (c) => {
      Deno.mkdirSync(`${c.rig.networksDir}/${c.ns}`, { recursive: true });
      prepare(c);
      return {
        env: c.rig.env("ADD", c.id),
        stdin: c.rig.podplexConf({ clusterNetwork: `${c.ns}/net` }),
      };
    },
    code,
    names,
    absent: ["root:"],
  }));
}

/** Files that would block or never end: only ever read in a child (bin/podplex). */
function blockingCases(): BadCase[] {
  const mkfifo = (path: string) => {
    const r = new Deno.Command("mkfifo", { args: [path] }).outputSync();
    if (!r.success) throw new Error(`mkfifo ${path} failed`);
  };
  const rows: Array<[string, (c: CaseCtx) => Record<string, unknown>, string]> = [
    ["a FIFO as definition file", (c) => {
      mkfifo(defPath(c));
      return { clusterNetwork: `${c.ns}/net` };
    }, "a FIFO"],
    ["/dev/zero as definition file", (c) => {
      Deno.symlinkSync("/dev/zero", defPath(c));
      return { clusterNetwork: `${c.ns}/net` };
    }, "character device"],
    ["/dev/urandom as definition file", (c) => {
      Deno.symlinkSync("/dev/urandom", defPath(c));
      return { clusterNetwork: `${c.ns}/net` };
    }, "character device"],
    ["a FIFO as cluster network conf file", (c) => {
      mkfifo(defPath(c, "cluster.conf"));
      return { clusterNetwork: defPath(c, "cluster.conf") };
    }, "a FIFO"],
    ["a FIFO as kubeconfig", (c) => {
      mkfifo(defPath(c, "kubeconfig"));
      return { kubeconfig: defPath(c, "kubeconfig") };
    }, "a FIFO"],
    ["/dev/zero as kubeconfig", (c) => {
      Deno.symlinkSync("/dev/zero", defPath(c, "kubeconfig"));
      return { kubeconfig: defPath(c, "kubeconfig") };
    }, "character device"],
  ];
  const out: BadCase[] = rows.map(([name, prepare, kind]) => ({
    category: "non-regular files (bin)",
    name,
    via: "bin",
    make: (c) => {
      Deno.mkdirSync(`${c.rig.networksDir}/${c.ns}`, { recursive: true });
      const conf = prepare(c);
      return {
        env: c.rig.env("ADD", c.id),
        stdin: c.rig.podplexConf({ clusterNetwork: "default/net-a", ...conf }),
      };
    },
    code: 7,
    names: [kind],
  }));
  // A logFile that is a FIFO or a symlink to a root file: the call works, the log goes
  // to stderr, nothing blocks and the link's target is untouched.
  const target = (c: CaseCtx) => `${c.rig.dir}/${c.ns}-target`;
  out.push(
    {
      category: "non-regular files (bin)",
      name: "a FIFO as logFile",
      via: "bin",
      make: (c) => {
        Deno.mkdirSync(`${c.rig.networksDir}/${c.ns}`, { recursive: true });
        mkfifo(defPath(c, "log"));
        return {
          env: c.rig.env("ADD", c.id),
          stdin: c.rig.podplexConf({
            clusterNetwork: "default/net-a",
            logFile: defPath(c, "log"),
            logLevel: "debug",
          }),
        };
      },
      code: 0,
      names: [],
    },
    {
      category: "non-regular files (bin)",
      name: "a symlink to a root-owned file as logFile",
      via: "bin",
      make: (c) => {
        Deno.mkdirSync(`${c.rig.networksDir}/${c.ns}`, { recursive: true });
        Deno.writeTextFileSync(target(c), "keep\n");
        Deno.symlinkSync(target(c), defPath(c, "log"));
        return {
          env: c.rig.env("ADD", c.id),
          stdin: c.rig.podplexConf({
            clusterNetwork: "default/net-a",
            logFile: defPath(c, "log"),
            logLevel: "debug",
          }),
        };
      },
      code: 0,
      names: [],
      verify: (c) =>
        Deno.readTextFileSync(target(c)) === "keep\n"
          ? undefined
          : "the symlink's target was written",
    },
    {
      category: "non-regular files (bin)",
      name: "stdin of 5 MiB of garbage",
      via: "bin",
      make: (c) => ({ env: c.rig.env("ADD", c.id), stdin: "x".repeat(5 << 20) }),
      code: 6,
      names: ["network config"],
    },
    {
      category: "non-regular files (bin)",
      name: "a bridge name of 16 bytes through bin/podplex",
      via: "bin",
      make: (c) => bridgeDef(c, { bridge: "pprbridge-16byte" }),
      code: 7,
      names: ['"bridge"', "pprbridge-16byte"],
    },
  );
  return out;
}

/** The definition-file cases. */
export function fileCases(): BadCase[] {
  return [...contentCases(), ...fieldCases(), ...kindCases(), ...blockingCases()];
}
