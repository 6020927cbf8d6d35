import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { buildInstallConf, launcherPath } from "./install.ts";

Deno.test("buildInstallConf() makes a conflist with podplex as the only plugin and its capabilities", () => {
  const c = buildInstallConf({ clusterNetwork: "kube-system/flannel", defaultNetworks: ["a/b"] });
  assert.equal(c.cniVersion, "1.1.0");
  const plugins = c.plugins as Array<Record<string, unknown>>;
  assert.equal(plugins.length, 1);
  assert.deepEqual(plugins[0].defaultNetworks, ["a/b"]);
  const caps = plugins[0].capabilities as Record<string, boolean>;
  assert.equal(caps["io.kubernetes.cri.pod-annotations"], true);
  assert.equal(caps.portMappings, true);
});

Deno.test("buildInstallConf() refuses options the meta-plugin would refuse", () => {
  assert.throws(
    () =>
      buildInstallConf({
        networksDir: "",
        clusterNetwork: "",
        stateDir: "",
        defaultNetworks: [""],
      }),
    (e) => e instanceof CniError && e.code === 7 && e.message.includes("defaultNetworks"),
  );
});

Deno.test("launcherPath() points at bin/podplex of this checkout", () => {
  assert.match(launcherPath(), /\/bin\/podplex$/);
  assert.ok(Deno.statSync(launcherPath()).isFile);
});
