/**
 * No kubeconfig secret reaches any output of a failing CNI call: stdout (the error JSON that
 * lands in kubelet logs and pod events), stderr, and podplex's log file at debug level. Each
 * case breaks the kubeconfig or the API in another way; every output of every case is
 * searched for the token, the password, the client key and their base64 forms.
 *
 * The API server is a local HTTP server of the test's own (no kube-apiserver is installable
 * here) that answers with the request's own Authorization header echoed in its body.
 */
import assert from "node:assert/strict";
import { isRoot } from "./testutils.ts";
import { callCni, createRig } from "./_rel_fixture.ts";

const TOKEN = "pprTok3n-eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig-Zx9";
const PASSWORD = "pprPassw0rd-hunter22";
const KEY_BODY = "pprKeyMaterial0123456789abcdefXYZ";
const KEY_PEM = `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}\n-----END PRIVATE KEY-----\n`;
const SECRETS = [TOKEN, PASSWORD, KEY_BODY, btoa(TOKEN), btoa(KEY_PEM), btoa(`admin:${PASSWORD}`)];

function kubeconfig(server: string, user: string): string {
  return `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: ${server}
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
${user}
`;
}

/** A loopback port nothing listens on (just released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** A server that answers every request 500, echoing the Authorization header it got. */
function echoServer(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new Response(`denied: ${req.headers.get("authorization")} for ${req.url}`, { status: 500 }),
  );
}

Deno.test({
  name: "no secret of the kubeconfig reaches stdout, stderr or the log of a failing call",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("sec");
    rig.bridgeNetwork("net-a", 40);
    await using server = echoServer();
    const live = `http://127.0.0.1:${server.addr.port}`;
    const closed = `http://127.0.0.1:${freePort()}`;
    const cases: Array<[string, string]> = [
      ["a YAML error on the token line", kubeconfig(live, `    token: ${TOKEN}: oops`)],
      ["a YAML error after the token", kubeconfig(live, `    token: ${TOKEN}\n   password: [x`)],
      ["a token of the wrong type", kubeconfig(live, `    token: [${TOKEN}]`)],
      ["a token the server rejects", kubeconfig(live, `    token: ${TOKEN}`)],
      [
        "a password the server rejects",
        kubeconfig(live, `    username: admin\n    password: ${PASSWORD}`),
      ],
      [
        "a password in the server URL",
        kubeconfig(closed.replace("//", `//admin:${PASSWORD}@`), "    {}"),
      ],
      [
        "a password in a live server URL",
        kubeconfig(`http://admin:${PASSWORD}@127.0.0.1:${server.addr.port}`, "    {}"),
      ],
      ["a token and an unreachable server", kubeconfig(closed, `    token: ${TOKEN}`)],
      [
        "a client key that is not a key",
        kubeconfig(
          live.replace("http:", "https:"),
          `    client-certificate-data: ${btoa("not a cert")}\n    client-key-data: ${
            btoa(KEY_PEM)
          }`,
        ),
      ],
      ["a client key that is not base64", kubeconfig(live, `    client-key-data: ${KEY_BODY}!!`)],
    ];
    let outputs = 0;
    for (const [i, [what, text]] of cases.entries()) {
      const kc = `${rig.dir}/kubeconfig-${i}`;
      Deno.writeTextFileSync(kc, text);
      const log = `${rig.dir}/podplex-${i}.log`;
      const conf = rig.podplexConf({
        clusterNetwork: "default/net-a",
        kubeconfig: kc,
        logFile: log,
        logLevel: "debug",
      });
      const out = await callCni(rig.env("ADD", `pprsec${i}`), conf);
      assert.notEqual(out.code, 0, `${what}: the call must fail`);
      const logText = (() => {
        try {
          return Deno.readTextFileSync(log);
        } catch {
          return "";
        }
      })();
      if (Deno.env.get("PPR_SHOW")) console.log(what, out.stdout, logText);
      for (
        const [where, text] of [["stdout", out.stdout], ["stderr", out.stderr], ["log", logText]]
      ) {
        outputs++;
        for (const s of SECRETS) {
          assert.ok(!text.includes(s), `${what}: ${where} holds a secret:\n${text}`);
        }
      }
      // Still useful: the error names where it went wrong.
      assert.match(out.stdout, /kubeconfig|Kubernetes API/, `${what}: ${out.stdout}`);
      await callCni(rig.env("DEL", `pprsec${i}`), conf);
    }
    assert.equal(outputs, cases.length * 3);
    assert.deepEqual(await rig.leftovers(), []);
  },
});
