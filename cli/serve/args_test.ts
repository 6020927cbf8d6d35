import assert from "node:assert/strict";
import { parseServeArgs } from "./args.ts";

Deno.test("serve --dynamic-networks needs a node name; --state-dir must be absolute", () => {
  const a = parseServeArgs(["--dynamic-networks"], { NODE_NAME: "n1" });
  assert.ok(!("error" in a) && !("help" in a));
  assert.equal(a.dynamicNetworks, true);
  assert.deepEqual(a.stateDirs, ["/var/lib/cni/podplex"]);
  const b = parseServeArgs(["--dynamic-networks", "--state-dir", "/s1", "--state-dir=/s2"], {
    NODE_NAME: "n1",
  });
  assert.ok(!("error" in b) && !("help" in b));
  assert.deepEqual(b.stateDirs, ["/s1", "/s2"]);
  assert.deepEqual(parseServeArgs(["--dynamic-networks"]), {
    error: `"--dynamic-networks" needs this node's name (--node-name, NODE_NAME)`,
  });
  assert.match(
    (parseServeArgs(["--state-dir", "rel"]) as { error: string }).error,
    /"rel" is not an absolute path/,
  );
});

Deno.test("serve --network-policy with --kubeconfig (absolute) turns the policy controller on", () => {
  const a = parseServeArgs(["--network-policy", "--kubeconfig", "/etc/kc"]);
  assert.ok(!("error" in a) && !("help" in a));
  assert.equal(a.networkPolicy, true);
  assert.equal(a.kubeconfig, "/etc/kc");
  assert.match(
    (parseServeArgs(["--kubeconfig", "kc"]) as { error: string }).error,
    /"kc" is not an absolute path/,
  );
});

Deno.test("serve --config names the conf whose policiesDir the local policy controller follows", () => {
  const a = parseServeArgs(["--config", "/etc/pp.conflist"]);
  assert.ok(!("error" in a) && !("help" in a));
  assert.equal(a.config, "/etc/pp.conflist");
  assert.equal(a.networkPolicy, undefined);
  const b = parseServeArgs([]);
  assert.ok(!("error" in b) && !("help" in b));
  assert.equal(b.config, undefined); // the standalone subcommands' default order
  assert.match((parseServeArgs(["--config="]) as { error: string }).error, /the path is empty/);
});
