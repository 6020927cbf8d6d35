/**
 * The Kubernetes client against tests/k8s_fake_server.ts. This is a STAND-IN: no
 * kube-apiserver is installable on this machine, so these tests check the client against a
 * local server that speaks the three endpoints podplex uses, with the API server's status
 * codes and object shapes. They prove the HTTP, auth, TLS and retry handling, not
 * compatibility with every API server version.
 */
import assert from "node:assert/strict";
import { CniError, Code } from "../conf/errors.ts";
import { createKubeClient } from "../clients/k8s/client.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { run, tempDir } from "./testutils.ts";

const TOKEN = "s3cr3t-token";

async function writeKubeconfig(
  path: string,
  server: string,
  user: string,
  cluster = "",
): Promise<void> {
  await Deno.writeTextFile(
    path,
    `apiVersion: v1
kind: Config
current-context: podplex
clusters:
- name: other
  cluster:
    server: http://127.0.0.1:1
- name: local
  cluster:
    server: ${server}
${cluster}
contexts:
- name: wrong
  context: { cluster: other, user: nobody }
- name: podplex
  context:
    cluster: local
    user: cni
users:
- name: cni
  user:
${user}
`,
  );
}

async function apiError(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error("Expected an error, none was thrown");
}

Deno.test("KubeClient sends the kubeconfig's token and reads a pod's annotations", async () => {
  await using api = await startFakeKubeApi({ token: TOKEN });
  await using dir = await tempDir();
  api.addPod("default", "web", { "k8s.v1.cni.cncf.io/networks": "a,b" });
  await writeKubeconfig(`${dir.path}/kc`, api.url, `    token: ${TOKEN}`);
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  const pod = await kube.getPod("default", "web");
  assert.deepEqual(pod?.annotations, { "k8s.v1.cni.cncf.io/networks": "a,b" });
  assert.equal(typeof pod?.uid, "string");
  assert.equal(api.requests[0].authorization, `Bearer ${TOKEN}`);
  assert.equal(api.requests[0].path, "/api/v1/namespaces/default/pods/web");
});

Deno.test("KubeClient reads the token from tokenFile, relative to the kubeconfig", async () => {
  await using api = await startFakeKubeApi({ token: TOKEN });
  await using dir = await tempDir();
  api.addPod("default", "web");
  await Deno.writeTextFile(`${dir.path}/token`, `${TOKEN}\n`);
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    tokenFile: token");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  assert.deepEqual((await kube.getPod("default", "web"))?.annotations, {});
});

Deno.test("KubeClient answers null for a missing pod or NAD (404)", async () => {
  await using api = await startFakeKubeApi();
  await using dir = await tempDir();
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  assert.equal(await kube.getPod("default", "gone"), null);
  assert.equal(await kube.getNad("default", "gone"), null);
});

Deno.test("KubeClient reads a NetworkAttachmentDefinition's config", async () => {
  await using api = await startFakeKubeApi();
  await using dir = await tempDir();
  const config = '{"cniVersion":"0.3.1","type":"macvlan","master":"eth0"}';
  api.addNad("testns1", "macvlan-conf", config);
  api.addNad("testns1", "empty");
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  assert.deepEqual(await kube.getNad("testns1", "macvlan-conf"), {
    config,
    name: "macvlan-conf",
    namespace: "testns1",
  });
  assert.deepEqual(await kube.getNad("testns1", "empty"), { name: "empty", namespace: "testns1" });
  assert.equal(
    api.requests[0].path,
    "/apis/k8s.cni.cncf.io/v1/namespaces/testns1/network-attachment-definitions/macvlan-conf",
  );
});

Deno.test("KubeClient merge-patches annotations and retries on 409", async () => {
  await using api = await startFakeKubeApi();
  await using dir = await tempDir();
  api.addPod("default", "web", { keep: "me" });
  api.conflicts = 2;
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  await kube.patchPodAnnotations("default", "web", { "k8s.v1.cni.cncf.io/network-status": "[]" });
  const patches = api.requests.filter((r) => r.method === "PATCH");
  assert.equal(patches.length, 3);
  assert.equal(patches[2].contentType, "application/merge-patch+json");
  assert.deepEqual(patches[2].body, {
    metadata: { annotations: { "k8s.v1.cni.cncf.io/network-status": "[]" } },
  });
  assert.deepEqual(api.pods.get("default/web")?.annotations, {
    keep: "me",
    "k8s.v1.cni.cncf.io/network-status": "[]",
  });
});

Deno.test("KubeClient gives up after repeated 409s with code 104", async () => {
  await using api = await startFakeKubeApi();
  await using dir = await tempDir();
  api.addPod("default", "web");
  api.conflicts = 100;
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc`, conflictRetries: 3 });
  const err = await apiError(kube.patchPodAnnotations("default", "web", { a: "b" }));
  assert.equal(err.code, Code.ApiFailure);
  assert.match(err.message, /409/);
  assert.equal(api.requests.length, 3);
});

Deno.test("KubeClient treats a PATCH of a missing pod as done", async () => {
  await using api = await startFakeKubeApi();
  await using dir = await tempDir();
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  await kube.patchPodAnnotations("default", "gone", { a: "b" });
  assert.equal(api.requests.length, 1);
});

Deno.test("KubeClient reports a wrong token as code 104 with the URL and status", async () => {
  await using api = await startFakeKubeApi({ token: TOKEN });
  await using dir = await tempDir();
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    token: wrong");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  const err = await apiError(kube.getPod("default", "web"));
  assert.equal(err.code, Code.ApiFailure);
  assert.match(err.message, /401/);
  assert.ok(err.message.includes(`${api.url}/api/v1/namespaces/default/pods/web`), err.message);
});

Deno.test("KubeClient reports a stopped API server as code 104", async () => {
  const api = await startFakeKubeApi();
  await using dir = await tempDir();
  api.addPod("default", "web");
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc`, timeoutMs: 2000 });
  assert.notEqual(await kube.getPod("default", "web"), null);
  await api.stop();
  const calls = [
    () => kube.getPod("default", "web"),
    () => kube.patchPodAnnotations("default", "web", {}),
  ];
  for (const call of calls) {
    const err = await apiError(call());
    assert.equal(err.code, Code.ApiFailure);
    assert.match(err.message, /Cannot reach the Kubernetes API/);
  }
});

Deno.test("KubeClient reports a missing or broken kubeconfig as code 104", async () => {
  await using dir = await tempDir();
  using a = createKubeClient({ kubeconfig: `${dir.path}/none` });
  assert.equal((await apiError(a.getPod("a", "b"))).code, Code.ApiFailure);
  await Deno.writeTextFile(`${dir.path}/bad`, "clusters: 5\n");
  using b = createKubeClient({ kubeconfig: `${dir.path}/bad` });
  const err = await apiError(b.getPod("a", "b"));
  assert.equal(err.code, Code.ApiFailure);
  assert.match(err.message, /kubeconfig/);
  using c = createKubeClient({ inCluster: false });
  assert.equal((await apiError(c.getPod("a", "b"))).code, Code.ApiFailure);
});

/** A CA, a server certificate for IP 127.0.0.1 and a client certificate, made by openssl. */
async function makeCerts(dir: string): Promise<Record<string, string>> {
  const o = (...args: string[]) => run("openssl", ...args);
  await o(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=pp-ca",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.crt`,
  );
  await Deno.writeTextFile(`${dir}/san.ext`, "subjectAltName=IP:127.0.0.1\n");
  for (const who of ["server", "client"]) {
    await o(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=pp-${who}`,
      "-keyout",
      `${dir}/${who}.key`,
      "-out",
      `${dir}/${who}.csr`,
    );
    await o(
      "x509",
      "-req",
      "-in",
      `${dir}/${who}.csr`,
      "-CA",
      `${dir}/ca.crt`,
      "-CAkey",
      `${dir}/ca.key`,
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      `${dir}/san.ext`,
      "-out",
      `${dir}/${who}.crt`,
    );
  }
  const out: Record<string, string> = {};
  for (const f of ["ca.crt", "server.crt", "server.key", "client.crt", "client.key"]) {
    out[f] = await Deno.readTextFile(`${dir}/${f}`);
  }
  return out;
}

Deno.test("KubeClient trusts the kubeconfig's CA (file and -data) over HTTPS", async () => {
  await using dir = await tempDir();
  const pem = await makeCerts(dir.path);
  await using api = await startFakeKubeApi({ cert: pem["server.crt"], key: pem["server.key"] });
  api.addPod("default", "web");
  const b64 = (s: string) => btoa(s);
  await writeKubeconfig(
    `${dir.path}/kc-data`,
    api.url,
    `    client-certificate-data: ${b64(pem["client.crt"])}\n    client-key-data: ${
      b64(pem["client.key"])
    }`,
    `    certificate-authority-data: ${b64(pem["ca.crt"])}`,
  );
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc-data` });
  assert.notEqual(await kube.getPod("default", "web"), null);
  await writeKubeconfig(
    `${dir.path}/kc-file`,
    api.url,
    `    client-certificate: client.crt\n    client-key: ${dir.path}/client.key`,
    "    certificate-authority: ca.crt",
  );
  using kube2 = createKubeClient({ kubeconfig: `${dir.path}/kc-file` });
  assert.notEqual(await kube2.getPod("default", "web"), null);
});

Deno.test("KubeClient refuses an HTTPS server its CA does not sign, with code 104", async () => {
  await using dir = await tempDir();
  const pem = await makeCerts(dir.path);
  await using api = await startFakeKubeApi({ cert: pem["server.crt"], key: pem["server.key"] });
  await writeKubeconfig(`${dir.path}/kc`, api.url, "    {}", "    insecure-skip-tls-verify: true");
  using kube = createKubeClient({ kubeconfig: `${dir.path}/kc` });
  const err = await apiError(kube.getPod("default", "web"));
  assert.equal(err.code, Code.ApiFailure);
  assert.match(err.message, /insecure-skip-tls-verify/);
});

Deno.test("KubeClient uses the in-cluster service account", async () => {
  await using dir = await tempDir();
  const pem = await makeCerts(dir.path);
  await using api = await startFakeKubeApi({
    token: TOKEN,
    cert: pem["server.crt"],
    key: pem["server.key"],
  });
  api.addPod("kube-system", "p");
  await Deno.writeTextFile(`${dir.path}/token`, TOKEN);
  const port = new URL(api.url).port;
  const saved = [Deno.env.get("KUBERNETES_SERVICE_HOST"), Deno.env.get("KUBERNETES_SERVICE_PORT")];
  Deno.env.set("KUBERNETES_SERVICE_HOST", "127.0.0.1");
  Deno.env.set("KUBERNETES_SERVICE_PORT", port);
  try {
    // ca.crt is in dir.path too (written by makeCerts)
    using kube = createKubeClient({ serviceAccountDir: dir.path });
    assert.notEqual(await kube.getPod("kube-system", "p"), null);
    assert.equal(api.requests[0].authorization, `Bearer ${TOKEN}`);
  } finally {
    for (const [i, k] of ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"].entries()) {
      if (saved[i] === undefined) Deno.env.delete(k);
      else Deno.env.set(k, saved[i]!);
    }
  }
});
