import assert from "node:assert/strict";
import { CniError, Code } from "../conf/errors.ts";
import { parsePodplexConf } from "./conf.ts";

/** Runs `fn`, which must throw, and returns what it threw. */
function catchError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error("Expected an error, none was thrown");
}

const MIN = { cniVersion: "1.1.0", name: "pods", type: "podplex" };

Deno.test("parsePodplexConf() applies the documented defaults", () => {
  const conf = parsePodplexConf({ ...MIN });
  assert.deepEqual(conf.cniVersion, "1.1.0");
  assert.deepEqual(conf.name, "pods");
  assert.deepEqual(conf.defaultNetworkNamespace, "kube-system");
  assert.deepEqual(conf.defaultNetworks, []);
  assert.deepEqual(conf.networksDir, "/etc/cni/podplex/networks.d");
  assert.deepEqual(conf.stateDir, "/var/lib/cni/podplex");
  assert.deepEqual(conf.confDir, "/etc/cni/net.d");
  assert.deepEqual(conf.namespaceIsolation, false);
  assert.deepEqual(conf.globalNamespaces, []);
  assert.deepEqual(conf.systemNamespaces, ["kube-system"]);
  assert.deepEqual(conf.resultMode, "merged");
  assert.deepEqual(conf.logLevel, "warning");
  assert.deepEqual(conf.clusterNetwork, undefined);
  assert.deepEqual("kubeconfig" in conf, false);
  assert.deepEqual(conf.raw, MIN);
});

Deno.test("parsePodplexConf() keeps every field it is given", () => {
  const raw = {
    ...MIN,
    clusterNetwork: { cniVersion: "1.0.0", name: "br", type: "bridge" },
    defaultNetworkNamespace: "net",
    defaultNetworks: ["net/a", "b"],
    networksDir: "/n",
    policiesDir: "/p",
    stateDir: "/s",
    confDir: "/c",
    kubeconfig: "/k",
    namespaceIsolation: true,
    globalNamespaces: ["shared"],
    systemNamespaces: [],
    readinessIndicatorFile: "/r",
    resultMode: "cluster",
    logLevel: "debug",
    logFile: "/l",
    logFormat: "json",
    capabilities: { portMappings: true },
    preferExternal: ["bridge"],
    runtimeConfig: { portMappings: [] },
    args: { cni: {} },
    prevResult: { cniVersion: "1.1.0" },
  };
  const conf = parsePodplexConf(raw);
  const { raw: kept, ...rest } = conf;
  assert.deepEqual(kept, raw);
  assert.deepEqual(rest, raw);
});

Deno.test("parsePodplexConf() accepts reserved keys and cni.dev/ keys", () => {
  const conf = parsePodplexConf({
    ...MIN,
    cniVersions: ["0.4.0", "1.1.0"],
    ipMasq: true,
    ipam: {},
    dns: {},
    disableCheck: true,
    disableGC: false,
    "cni.dev/valid-attachments": [],
  });
  assert.deepEqual(conf.cniVersion, "1.1.0");
});

Deno.test("parsePodplexConf() rejects an unknown field with code 7 naming it", () => {
  const err = catchError(() => parsePodplexConf({ ...MIN, clusterNetwrok: "x" }));
  assert.deepEqual(err.code, Code.InvalidConfig);
  assert.deepEqual(err.message, `Unknown field "clusterNetwrok" in the podplex conf`);
});

const BAD: Array<[string, Record<string, unknown>]> = [
  ["a wrong type", { ...MIN, type: "multus" }],
  ["a missing name", { cniVersion: "1.1.0", type: "podplex" }],
  ["a bad name", { ...MIN, name: "-x" }],
  ["namespaceIsolation as a string", { ...MIN, namespaceIsolation: "true" }],
  ["defaultNetworks as a string", { ...MIN, defaultNetworks: "a" }],
  ["an unknown resultMode", { ...MIN, resultMode: "all" }],
  ["an unknown logLevel", { ...MIN, logLevel: "verbose" }],
  ["an empty stateDir", { ...MIN, stateDir: "" }],
  ["a numeric clusterNetwork", { ...MIN, clusterNetwork: 5 }],
  ["a non-boolean capability", { ...MIN, capabilities: { portMappings: "yes" } }],
  ["an empty plugins list", { cniVersion: "1.1.0", name: "pods", plugins: [] }],
];

for (const [what, raw] of BAD) {
  Deno.test(`parsePodplexConf() rejects ${what} with code 7`, () => {
    const err = catchError(() => parsePodplexConf(raw));
    assert.deepEqual(err.code, Code.InvalidConfig, err.message);
  });
}

Deno.test("parsePodplexConf() rejects an unsupported version with code 1", () => {
  const err = catchError(() => parsePodplexConf({ ...MIN, cniVersion: "9.9.9" }));
  assert.deepEqual(err.code, Code.IncompatibleVersion);
});

Deno.test("parsePodplexConf() treats a missing cniVersion as 0.1.0", () => {
  assert.deepEqual(parsePodplexConf({ name: "pods", type: "podplex" }).cniVersion, "0.1.0");
});

Deno.test("parsePodplexConf() reads the first plugin of a conflist with the list's name and version", () => {
  const conf = parsePodplexConf({
    cniVersion: "1.0.0",
    name: "podplex-net",
    plugins: [
      { type: "podplex", clusterNetwork: "flannel", stateDir: "/tmp/s" },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
  assert.deepEqual(conf.name, "podplex-net");
  assert.deepEqual(conf.cniVersion, "1.0.0");
  assert.deepEqual(conf.clusterNetwork, "flannel");
  assert.deepEqual(conf.stateDir, "/tmp/s");
  assert.deepEqual(conf.raw.name, "podplex-net");
});

Deno.test("parsePodplexConf() checks the conflist's first plugin's fields too", () => {
  const err = catchError(() =>
    parsePodplexConf({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "podplex", bogus: 1 }] })
  );
  assert.deepEqual(err.message.includes(`"bogus"`), true);
});
