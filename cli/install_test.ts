import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { parseYaml } from "../conf/yaml.ts";
import { parsePodplexConf } from "../meta/conf.ts";
import { runningArtifact } from "./_install_artifact.ts";
import {
  buildConflist,
  CONFLIST_NAME,
  conflistVersion,
  FALLBACK_CNI_VERSION,
  findDefaultConf,
  kubeconfigText,
  writeAtomic,
} from "./_install_conf.ts";

const FLANNEL = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "bandwidth", "capabilities": { "bandwidth": true, "fancy": true } }
  ]
}
`;

Deno.test("findDefaultConf() takes the first .conf/.conflist by name, never podplex's own", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppn-inst" });
  try {
    assert.equal(findDefaultConf(dir), undefined);
    await Deno.writeTextFile(`${dir}/${CONFLIST_NAME}`, `{"cniVersion":"1.1.0"}`);
    await Deno.writeTextFile(`${dir}/.${CONFLIST_NAME}.podplex-tmp`, `{}`);
    await Deno.writeTextFile(`${dir}/05-notes.txt`, `not a conf`);
    assert.equal(findDefaultConf(dir), undefined);
    await Deno.writeTextFile(`${dir}/20-b.conf`, `{"cniVersion":"1.0.0","name":"b"}`);
    await Deno.writeTextFile(`${dir}/10-flannel.conflist`, FLANNEL);
    const d = findDefaultConf(dir)!;
    assert.equal(d.path, `${dir}/10-flannel.conflist`);
    assert.equal(d.text, FLANNEL);
    assert.equal(d.cniVersion, "0.3.1");
    assert.equal(findDefaultConf(dir, "20-b.conf")?.cniVersion, "1.0.0");
    assert.equal(findDefaultConf(dir, "99-missing.conf"), undefined);
    await Deno.writeTextFile(`${dir}/01-half.conf`, `{"cniVersion":`);
    assert.throws(
      () => findDefaultConf(dir),
      (e) => e instanceof CniError && e.code === 7 && e.message.includes("01-half.conf"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildConflist() wraps the default conf byte for byte with its cniVersion", () => {
  const text = buildConflist(
    { namespaceIsolation: true, globalNamespaces: ["default"], kubeconfig: "/k" },
    { path: "/x/10-flannel.conflist", text: FLANNEL, cniVersion: "0.3.1" },
  );
  assert.ok(text.includes(FLANNEL.trim()), "the default conf's bytes are in the conflist");
  const list = JSON.parse(text);
  assert.equal(list.cniVersion, "0.3.1");
  assert.equal(list.plugins.length, 1);
  const conf = parsePodplexConf(list);
  assert.equal(conf.namespaceIsolation, true);
  assert.deepEqual(conf.globalNamespaces, ["default"]);
  assert.deepEqual(conf.clusterNetwork, JSON.parse(FLANNEL));
  const caps = list.plugins[0].capabilities;
  assert.equal(caps["io.kubernetes.cri.pod-annotations"], true);
  assert.equal(caps.bandwidth, true);
  assert.equal(caps.fancy, true, "the default conf's capabilities are declared too");
});

Deno.test("buildConflist() keeps an explicit clusterNetwork and refuses a bad field by name", () => {
  const list = JSON.parse(buildConflist({ clusterNetwork: "kube-system/lan" }, {
    path: "/x/a.conf",
    text: FLANNEL,
    cniVersion: "0.3.1",
  }));
  assert.equal(list.cniVersion, "0.3.1", "the default conf still names the runtime's version");
  assert.equal(list.plugins[0].clusterNetwork, "kube-system/lan");
  assert.throws(
    () => buildConflist({ defaultNetworks: [""] }),
    (e) => e instanceof CniError && e.code === 7 && e.message.includes("defaultNetworks"),
  );
  assert.throws(
    () => buildConflist({ clustrNetwork: "x" }),
    (e) => e instanceof CniError && e.code === 7 && e.message.includes("clustrNetwork"),
  );
});

Deno.test("buildConflist() without a default conf says 1.0.0, which every runtime reads", () => {
  // containerd 1.6/1.7 (libcni < 1.2) fail every pod on a 1.1.0 result: issue 20.
  const list = JSON.parse(buildConflist({ clusterNetwork: "kube-system/cluster" }));
  assert.equal(list.cniVersion, "1.0.0");
  assert.equal(FALLBACK_CNI_VERSION, "1.0.0");
  const forced = JSON.parse(
    buildConflist({}, { path: "/x/a.conf", text: FLANNEL, cniVersion: "0.3.1" }, "1.1.0"),
  );
  assert.equal(forced.cniVersion, "1.1.0", "--cni-version wins over the default conf's");
});

Deno.test("conflistVersion() takes the flag, then the default conf's, then the fallback", () => {
  const def = { path: "/x/a.conf", text: FLANNEL, cniVersion: "0.4.0" };
  assert.equal(conflistVersion("0.3.1", def), "0.3.1");
  assert.equal(conflistVersion(undefined, def), "0.4.0");
  assert.equal(conflistVersion(undefined, undefined), FALLBACK_CNI_VERSION);
});

Deno.test("kubeconfigText() embeds the token and CA and names a missing variable", async () => {
  const sa = { token: "abc.def\n", ca: "-----BEGIN CERTIFICATE-----\nMIIB\n" };
  const text = kubeconfigText(sa, {
    KUBERNETES_SERVICE_HOST: "fd00::1",
    KUBERNETES_SERVICE_PORT: "6443",
  });
  // deno-lint-ignore no-explicit-any
  const cfg = await parseYaml(text) as Record<string, any>;
  assert.equal(cfg["current-context"], "podplex");
  assert.equal(cfg.clusters[0].cluster.server, "https://[fd00::1]:6443");
  assert.equal(atob(cfg.clusters[0].cluster["certificate-authority-data"]), sa.ca);
  assert.equal(cfg.users[0].user.token, "abc.def");
  const plain = kubeconfigText(sa, {
    KUBERNETES_SERVICE_PROTOCOL: "http",
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    KUBERNETES_SERVICE_PORT: "8080",
  });
  assert.match(plain, /server: "http:\/\/127\.0\.0\.1:8080"/);
  assert.throws(
    () => kubeconfigText(sa, { KUBERNETES_SERVICE_HOST: "10.0.0.1" }),
    (e) => e instanceof CniError && e.message.includes("KUBERNETES_SERVICE_PORT"),
  );
});

Deno.test("writeAtomic() sets the mode whatever the umask and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppn-inst" });
  try {
    await writeAtomic(`${dir}/d/k`, "one", 0o600);
    await writeAtomic(`${dir}/d/k`, "two", 0o600);
    assert.equal(await Deno.readTextFile(`${dir}/d/k`), "two");
    assert.equal((await Deno.stat(`${dir}/d/k`)).mode! & 0o777, 0o600);
    assert.deepEqual(Array.from(Deno.readDirSync(`${dir}/d`), (e) => e.name), ["k"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runningArtifact() reads the root and version from a payload chunk's URL", () => {
  assert.deepEqual(runningArtifact("file:///opt/cni/bin/podplex.d/0123abcd/install-X.js"), {
    root: "/opt/cni/bin",
    version: "0123abcd",
  });
  assert.equal(runningArtifact("file:///work/podplex/cli/_install_artifact.ts"), undefined);
});
