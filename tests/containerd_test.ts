/**
 * podplex driven by a real containerd (Debian's 1.6) over the CRI, as kubelet drives it:
 * RunPodSandbox / PodSandboxStatus / StopPodSandbox / RemovePodSandbox with a pause image
 * built here. Each test checks what containerd reports against the kernel (addresses in the
 * pod's netns, ports on the bridges) and podplex's disk (leases, state files).
 * The rig: tests/_containerd.ts (private instance), tests/_containerd_pods.ts (podplex
 * installed into it).
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { containerdSkip, startContainerd } from "./_containerd.ts";
import {
  assertNothingLeft,
  bare,
  installPodplex,
  inSubnet24,
  podAddrs,
  stopRemove,
} from "./_containerd_pods.ts";

const skip = await containerdSkip();
if (skip) console.warn(`containerd tests skipped: ${skip}`);

Deno.test({
  name:
    "containerd: the conflist exactly as podplex install writes it serves a pod (1.0.0, not 1.1.0)",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    await using p = await installPodplex(c, { octet: 1 });
    // No default conf to take a version from: the fallback must be one containerd 1.6 reads.
    assertEquals(JSON.parse(p.conflist).cniVersion, "1.0.0", p.conflist);
    const v = await c.cri.version();
    assertEquals(v.runtimeName, "containerd");

    const id = await c.cri.runPodSandbox({ name: "ppc-one", namespace: "default" });
    const st = await c.cri.podSandboxStatus(id, true);
    assertEquals(st.state, "SANDBOX_READY");
    const ip = st.network?.ip ?? "";
    ok(
      inSubnet24(ip, p.subnets[0]),
      `the pod's IP ${ip} is in the cluster network ${p.subnets[0]}`,
    );
    assertEquals(st.network?.additionalIps, []);
    const addrs = await podAddrs(c, await c.netnsOf(id));
    assertEquals([...addrs.keys()], ["eth0"]);
    assertEquals(addrs.get("eth0")!.map(bare), [ip], "containerd's IP is the kernel's");
    // containerd read the result at the conflist's version (its verbose info keeps it).
    const cniResult = st.info?.cniResult as { Interfaces?: Record<string, unknown> } | undefined;
    ok(
      cniResult?.Interfaces?.eth0,
      `containerd's cniResult: ${JSON.stringify(st.info?.cniResult)}`,
    );

    await stopRemove(c, id);
    await assertNothingLeft(c, p);
  },
});

Deno.test({
  name: "containerd: a conflist at 1.1.0 fails RunPodSandbox with containerd's error, nothing left",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    await using p = await installPodplex(c, { octet: 2, installArgs: ["--cni-version", "1.1.0"] });
    assertEquals(JSON.parse(p.conflist).cniVersion, "1.1.0");
    let err = "";
    await c.cri.runPodSandbox({ name: "ppc-new" }).catch((e) => (err = String(e)));
    match(err, /unsupported CNI result version "1\.1\.0"/);
    await assertNothingLeft(c, p);
  },
});
