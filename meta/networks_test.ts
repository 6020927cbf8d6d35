import assert from "node:assert/strict";
import { CniError, Code } from "../conf/errors.ts";
import { startFakeKubeApi } from "../tests/k8s_fake_server.ts";
import { tempDir } from "../tests/testutils.ts";
import { parsePodplexConf } from "./conf.ts";
import { createKubeClient, type KubeClient } from "../clients/k8s/client.ts";
import { createResolver, resolveClusterNetwork, type ResolverOptions } from "./networks.ts";

async function rejection(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error("Expected an error, none was thrown");
}

const MACVLAN = `{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",  "mode": "bridge"}`;

/** A temp root with networksDir/<ns>/ files and a confDir. */
async function fixture() {
  const dir = await tempDir();
  const nd = `${dir.path}/networks.d`;
  const cd = `${dir.path}/net.d`;
  await Deno.mkdir(`${nd}/default`, { recursive: true });
  await Deno.mkdir(`${nd}/other`, { recursive: true });
  await Deno.mkdir(cd);
  await Deno.writeTextFile(
    `${nd}/default/nad-yaml.yaml`,
    `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: nad-yaml
spec:
  config: '${MACVLAN}'
`,
  );
  await Deno.writeTextFile(
    `${nd}/default/nad-json.json`,
    JSON.stringify({
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: { name: "nad-json", namespace: "default" },
      spec: { config: `{"cniVersion":"1.0.0","name":"given","type":"bridge"}` },
    }),
  );
  await Deno.writeTextFile(
    `${nd}/default/plain.conf`,
    `{"cniVersion":"1.0.0","name":"plain","type":"bridge"}\n`,
  );
  await Deno.writeTextFile(
    `${nd}/other/list.conflist`,
    `{"cniVersion":"1.0.0","name":"list","plugins":[{"type":"bridge"},{"type":"tuning"}]}`,
  );
  await Deno.writeTextFile(
    `${nd}/default/empty.yml`,
    `kind: NetworkAttachmentDefinition\nmetadata: {name: empty}\nspec: {}\n`,
  );
  await Deno.writeTextFile(
    `${cd}/10-empty.conf`,
    `{"cniVersion":"1.0.0","name":"empty","type":"loopback"}`,
  );
  await Deno.writeTextFile(`${cd}/20-broken.conf`, `{not json`);
  const opts: ResolverOptions = {
    networksDir: nd,
    confDir: cd,
    namespaceIsolation: false,
    globalNamespaces: [],
    podNamespace: "default",
  };
  return { dir, nd, cd, opts };
}

Deno.test("resolve() reads a local NAD in YAML and names its unnamed config", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const net = await createResolver(f.opts).resolve({ namespace: "default", name: "nad-yaml" });
  assert.equal(net.source, "file");
  assert.equal(net.statusName, "default/nad-yaml");
  assert.equal(
    net.confText,
    `{"name":"nad-yaml","cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",  "mode": "bridge"}`,
  );
});

Deno.test("resolve() reads a local NAD in JSON and keeps a config's own name", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const net = await createResolver(f.opts).resolve({ namespace: "default", name: "nad-json" });
  assert.equal(net.confText, `{"cniVersion":"1.0.0","name":"given","type":"bridge"}`);
});

Deno.test("resolve() reads plain confs and conflists byte for byte", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const r = createResolver(f.opts);
  const plain = await r.resolve({ namespace: "default", name: "plain" });
  assert.equal(plain.confText, `{"cniVersion":"1.0.0","name":"plain","type":"bridge"}\n`);
  const list = await r.resolve({ namespace: "other", name: "list" });
  assert.equal(list.statusName, "other/list");
  assert.match(list.confText, /"plugins"/);
});

Deno.test("resolve() takes a NAD without config from confDir by name", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const net = await createResolver(f.opts).resolve({ namespace: "default", name: "empty" });
  assert.equal(net.confText, `{"cniVersion":"1.0.0","name":"empty","type":"loopback"}`);
});

Deno.test("resolve() fails with code 100 listing every place searched", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const err = await rejection(
    createResolver(f.opts).resolve({ namespace: "default", name: "nope" }),
  );
  assert.equal(err.code, Code.NetworkNotFound);
  for (const ext of ["yaml", "yml", "json", "conf", "conflist"]) {
    assert.ok(err.message.includes(`"${f.nd}/default/nope.${ext}"`), err.message);
  }
  assert.match(err.message, /Network "default\/nope" not found/);
  assert.match(err.message, /no Kubernetes API configured/);
});

Deno.test("resolve() rejects a broken definition with code 7 naming the file", async () => {
  const f = await fixture();
  await using _ = f.dir;
  await Deno.writeTextFile(
    `${f.nd}/default/bad.json`,
    `{"kind": "NetworkAttachmentDefinition", "metadata": {}, "spec": {"config": "{oops"}}`,
  );
  await Deno.writeTextFile(
    `${f.nd}/default/wrong.yaml`,
    `kind: NetworkAttachmentDefinition\nmetadata: {name: other}\nspec: {config: "{}"}\n`,
  );
  const r = createResolver(f.opts);
  for (const name of ["bad", "wrong"]) {
    const err = await rejection(r.resolve({ namespace: "default", name }));
    assert.equal(err.code, Code.InvalidConfig, err.message);
    assert.ok(err.message.includes(`${f.nd}/default/${name}`), err.message);
  }
});

Deno.test("resolve() enforces namespaceIsolation naming both namespaces", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const r = createResolver({ ...f.opts, namespaceIsolation: true, globalNamespaces: ["shared"] });
  const err = await rejection(r.resolve({ namespace: "other", name: "list" }));
  assert.equal(err.code, Code.InvalidConfig);
  assert.match(err.message, /"other"/);
  assert.match(err.message, /"default"/);
  // Its own namespace, a global namespace (missing here: 100, not 7), and an admin's choice pass.
  await r.resolve({ namespace: "default", name: "plain" });
  assert.equal(
    (await rejection(r.resolve({ namespace: "shared", name: "x" }))).code,
    Code.NetworkNotFound,
  );
  await r.resolve({ namespace: "other", name: "list" }, { skipIsolation: true });
});

Deno.test("resolve() reads a NAD from the API server after the local files", async () => {
  const f = await fixture();
  await using _ = f.dir;
  await using api = await startFakeKubeApi();
  api.addNad("default", "from-api", MACVLAN);
  api.addNad("default", "empty-api");
  api.addNad("default", "plain", `{"type":"bridge"}`); // shadowed by the local file
  await Deno.writeTextFile(`${f.cd}/30-x.conflist`, `{"name":"empty-api","plugins":[]}`);
  await Deno.writeTextFile(
    `${f.dir.path}/kc`,
    `clusters: [{name: c, cluster: {server: "${api.url}"}}]\n`,
  );
  using kube = createKubeClient({ kubeconfig: `${f.dir.path}/kc` });
  const r = createResolver({ ...f.opts, api: kube as KubeClient });
  const net = await r.resolve({ namespace: "default", name: "from-api" });
  assert.equal(net.source, "nad");
  assert.equal(net.statusName, "default/from-api");
  assert.match(net.confText, /^\{"name":"from-api","cniVersion"/);
  assert.equal((await r.resolve({ namespace: "default", name: "plain" })).source, "file");
  const empty = await r.resolve({ namespace: "default", name: "empty-api" });
  assert.equal(empty.confText, `{"name":"empty-api","plugins":[]}`);
  const err = await rejection(r.resolve({ namespace: "default", name: "nope" }));
  assert.equal(err.code, Code.NetworkNotFound);
  assert.match(err.message, /NetworkAttachmentDefinition "default\/nope" in the Kubernetes API/);
});

Deno.test("resolveClusterNetwork() resolves a name in defaultNetworkNamespace", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const conf = parsePodplexConf({
    name: "p",
    type: "podplex",
    clusterNetwork: "list",
    defaultNetworkNamespace: "other",
    networksDir: f.nd,
    confDir: f.cd,
  });
  const r = createResolver({ ...f.opts, namespaceIsolation: true });
  const net = await resolveClusterNetwork(conf, r);
  assert.deepEqual(net?.ref, { namespace: "other", name: "list" });
  assert.equal(net?.source, "file");
});

Deno.test("resolveClusterNetwork() reads conf files, inline confs and confDir names", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const base = { name: "p", type: "podplex", networksDir: f.nd, confDir: f.cd };
  const r = createResolver(f.opts);
  const file = await resolveClusterNetwork(
    parsePodplexConf({ ...base, clusterNetwork: "10-empty.conf" }),
    r,
  );
  assert.deepEqual([file?.source, file?.statusName], ["conffile", "empty"]);
  const abs = await resolveClusterNetwork(
    parsePodplexConf({ ...base, clusterNetwork: `${f.nd}/default/plain.conf` }),
    r,
  );
  assert.equal(abs?.statusName, "plain");
  const inl = await resolveClusterNetwork(
    parsePodplexConf({
      ...base,
      clusterNetwork: { cniVersion: "1.0.0", name: "in", type: "bridge" },
    }),
    r,
  );
  assert.deepEqual([inl?.source, inl?.statusName], ["inline", "in"]);
  assert.deepEqual(JSON.parse(inl!.confText), { cniVersion: "1.0.0", name: "in", type: "bridge" });
  const byName = await resolveClusterNetwork(
    parsePodplexConf({ ...base, clusterNetwork: "empty" }),
    r,
  );
  assert.equal(byName?.source, "conffile");
  assert.equal(await resolveClusterNetwork(parsePodplexConf(base), r), undefined);
});

Deno.test("resolveClusterNetwork() fails with code 100 naming confDir too", async () => {
  const f = await fixture();
  await using _ = f.dir;
  const conf = parsePodplexConf({
    name: "p",
    type: "podplex",
    clusterNetwork: "ghost",
    networksDir: f.nd,
    confDir: f.cd,
  });
  const err = await rejection(resolveClusterNetwork(conf, createResolver(f.opts)));
  assert.equal(err.code, Code.NetworkNotFound);
  assert.ok(err.message.includes(`"${f.cd}"`), err.message);
  assert.ok(err.message.includes(`"${f.nd}/kube-system/ghost.yaml"`), err.message);
  const missingFile = parsePodplexConf({
    name: "p",
    type: "podplex",
    clusterNetwork: "99-x.conf",
    confDir: f.cd,
  });
  assert.equal(
    (await rejection(resolveClusterNetwork(missingFile, createResolver(f.opts)))).code,
    Code.NetworkNotFound,
  );
});
