/**
 * The `flannel` drop-in, end to end: the CNI conf kube-flannel.yml installs, byte for byte,
 * run by a libcni-style runtime (tests/cni_runner.py) with podplex as `/opt/cni/bin/flannel`
 * and the Debian reference `portmap`, on nodes whose `/run/flannel/subnet.env` is written by
 * podplex's node agent (`podplex serve --cluster-network`); and the same conf wrapped by the
 * podplex meta-plugin as its clusterNetwork, as a Multus-style DaemonSet installs it.
 *
 * Each CNI call runs in its node's netns and in a private mount namespace where `/run` and
 * `/var/lib` are the node's own (tmpfs, with the node's `run-flannel` and `var-lib-cni`
 * directories bound on `/run/flannel` and `/var/lib/cni`), so the unchanged conf's default
 * paths never touch the host's.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { type OverlayNode, OverlayRig, PODPLEX } from "./_overlay_rig.ts";
import { isRoot, ppName, run } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const RUNNER = new URL("./cni_runner.py", import.meta.url).pathname;

/** kube-flannel.yml's cni-conf.json (flannel-io/flannel Documentation/kube-flannel.yml). */
const KUBE_FLANNEL_CONF = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`;

/** The node's private /run and /var/lib, then the command (CNI_NETNS: the pod's bound file). */
const PRIVATE_MOUNTS = `set -e
node=$1; podns=$2; shift 2
touch "$node/podns"
mount --bind "/run/netns/$podns" "$node/podns"
mount -t tmpfs ppf-run /run
mkdir -p /run/flannel /var/lib
mount --bind "$node/run-flannel" /run/flannel
mount -t tmpfs ppf-varlib /var/lib
mkdir -p /var/lib/cni
mount --bind "$node/var-lib-cni" /var/lib/cni
exec "$@"`;

async function prepare(n: OverlayNode, podplexWraps: boolean) {
  await Deno.mkdir(`${n.dir}/net.d`, { recursive: true });
  await Deno.mkdir(`${n.dir}/bin`, { recursive: true });
  await Deno.mkdir(`${n.dir}/var-lib-cni`, { recursive: true });
  await Deno.writeTextFile(`${n.dir}/net.d/10-flannel.conflist`, KUBE_FLANNEL_CONF);
  await Deno.symlink(PODPLEX, `${n.dir}/bin/flannel`);
  await Deno.symlink(PODPLEX, `${n.dir}/bin/podplex`);
  if (podplexWraps) {
    // As a Multus-style install writes it: podplex first, the flannel conf as its cluster network.
    await Deno.writeTextFile(
      `${n.dir}/net.d/00-podplex.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "podplex",
        plugins: [{
          type: "podplex",
          clusterNetwork: "10-flannel.conflist",
          confDir: `${n.dir}/net.d`,
          capabilities: { portMappings: true },
        }],
      }),
    );
  }
}

/** One CNI call by the libcni-style runner in the node's netns and private mounts. */
async function runtime(n: OverlayNode, command: string, pod: { ns: string; id: string }) {
  const out = await new Deno.Command("nsenter", {
    args: [
      `--net=/run/netns/${n.ns}`,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      PRIVATE_MOUNTS,
      "sh",
      n.dir,
      pod.ns,
      "python3",
      RUNNER,
      command,
      "--conf-dir",
      `${n.dir}/net.d`,
      "--cni-path",
      `${n.dir}/bin:/usr/lib/cni`,
      "--cache-dir",
      `${n.dir}/cache`,
      "--netns",
      `${n.dir}/podns`,
      "--container-id",
      pod.id,
      "--args",
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.id}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
}

Deno.test({
  name: "flannel: kube-flannel.yml's conf, unchanged, brings pods up through podplex on a " +
    "subnet.env written by podplex's node agent, directly and wrapped by the meta-plugin",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      nodes: 2,
      network: "10.210.0.0/16",
      // kube-flannel.yml runs flanneld with --ip-masq.
      conf: (dir) => ({ subnetFile: `${dir}/run-flannel/subnet.env`, ipMasq: true }),
    });
    for (const n of rig.nodes) {
      await rig.startAgent(n.index);
      await prepare(n, n.index === 1);
    }
    const env = await Deno.readTextFile(`${rig.nodes[0].dir}/run-flannel/subnet.env`);
    const s0 = (await rig.state(0))!;
    const bridgeIp = s0.subnet.replace(/\.0\/24$/, ".1/24");
    assert.equal(
      env,
      `FLANNEL_NETWORK=10.210.0.0/16\nFLANNEL_SUBNET=${bridgeIp}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`,
    );
    const pods = [];
    for (const n of rig.nodes) {
      const ns = ppName("fp");
      await run("ip", "netns", "add", ns);
      const pod = { id: `ppf${ns.slice(4)}k${n.index}`, ns, node: n.index, ip: "" };
      rig.pods.push(pod);
      const r = await runtime(n, "ADD", pod);
      assert.equal(r.code, 0, `ADD on ${n.name}: ${r.out}${r.err}`);
      const res = JSON.parse(r.out);
      // node1's runtime calls podplex (its conflist's version), which runs the flannel conf.
      assert.equal(res.cniVersion, n.index === 1 ? "1.0.0" : "0.3.1");
      pod.ip = res.ips[0].address.split("/")[0];
      const sub = (await rig.state(n.index))!.subnet.split(".").slice(0, 3).join(".");
      assert.ok(pod.ip.startsWith(`${sub}.`), `${pod.ip} in ${sub}.0/24`);
      assert.equal(res.ips[0].gateway, `${sub}.1`);
      pods.push(pod);
    }
    // The flannel delegate's bridge (cni0, the default) with the gateway; routes in the pod.
    const br = await run("ip", "-n", rig.nodes[0].ns, "-4", "-o", "addr", "show", "dev", "cni0");
    assert.ok(br.includes(bridgeIp), br);
    const routes = await run("ip", "-n", pods[0].ns, "route");
    assert.match(routes, /^default via \S+\.1 dev eth0/m);
    assert.match(routes, /10\.210\.0\.0\/16 via \S+\.1 dev eth0/);
    assert.equal(
      (await run("ip", "-n", pods[0].ns, "-o", "link", "show", "eth0")).includes("mtu 1450"),
      true,
    );
    // The conf the reference would have handed the bridge, kept for DEL.
    const kept = JSON.parse(
      await Deno.readTextFile(`${rig.nodes[0].dir}/var-lib-cni/flannel/${pods[0].id}`),
    );
    assert.deepEqual(kept, {
      hairpinMode: true,
      isDefaultGateway: true,
      name: "cbr0",
      type: "bridge",
      ipMasq: false,
      mtu: 1450,
      isGateway: true,
      cniVersion: "0.3.1",
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: s0.subnet }]],
        routes: [{ dst: "10.210.0.0/16" }],
      },
    });
    // Across nodes by pod IP, no translation.
    assert.ok(await rig.ping(pods[0], pods[1].ip, 2));
    assert.ok(await rig.ping(pods[1], pods[0].ip, 2));
    assert.equal(await rig.sourceSeen(pods[1].ns, pods[0].ns, pods[0].ip), pods[1].ip);
    // DEL through the same runtime: the kept conf and the lease go.
    for (const [i, pod] of pods.entries()) {
      const r = await runtime(rig.nodes[i], "DEL", pod);
      assert.equal(r.code, 0, `DEL on node${i}: ${r.out}${r.err}`);
    }
    const leases = [...Deno.readDirSync(`${rig.nodes[0].dir}/var-lib-cni/networks/cbr0`)]
      .map((e) => e.name).filter((n) => /^\d/.test(n));
    assert.deepEqual(leases, []);
    assert.deepEqual([...Deno.readDirSync(`${rig.nodes[0].dir}/var-lib-cni/flannel`)], []);
    assert.ok(!(await rig.ping(pods[1], pods[0].ip, 1)));
  },
});

Deno.test({
  name: "flannel in dual stack: subnet.env's FLANNEL_IPV6_* from podplex's agent; " +
    "kube-flannel.yml's conf gives pods an address of each family; they ping over both at once",
  ignore,
  async fn() {
    // Names `ppg`, the underlay 10.231 / fd31:0, pods 10.232 / fd32:0:4::/56, etcd 23950-23979.
    await using rig = await OverlayRig.start({
      nodes: 2,
      tag: "g",
      underlayBase: "10.231",
      underlay6: "fd31:0",
      etcdPorts: [23950, 23979],
      network: "10.232.0.0/16",
      ipv6Network: "fd32:0:4::/56",
      conf: (dir) => ({ subnetFile: `${dir}/run-flannel/subnet.env`, ipMasq: true }),
    });
    for (const n of rig.nodes) {
      await rig.startAgent(n.index);
      await prepare(n, n.index === 1);
    }
    const s0 = (await rig.state(0))!;
    const gw6 = s0.subnet6!.replace(/::\/64$/, "::1/64");
    assert.equal(
      await Deno.readTextFile(`${rig.nodes[0].dir}/run-flannel/subnet.env`),
      `FLANNEL_NETWORK=10.232.0.0/16\nFLANNEL_SUBNET=${s0.subnet.replace(/\.0\/24$/, ".1/24")}\n` +
        `FLANNEL_IPV6_NETWORK=fd32:0:4::/56\nFLANNEL_IPV6_SUBNET=${gw6}\n` +
        `FLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n`,
    );
    const pods: Array<{ id: string; ns: string; node: number; ip: string; ip6: string }> = [];
    for (const n of rig.nodes) {
      const ns = ppName("gp");
      await run("ip", "netns", "add", ns);
      const pod = { id: `ppg${ns.slice(4)}k${n.index}`, ns, node: n.index, ip: "", ip6: "" };
      rig.pods.push(pod);
      const r = await runtime(n, "ADD", pod);
      assert.equal(r.code, 0, `ADD on ${n.name}: ${r.out}${r.err}`);
      const ips = (JSON.parse(r.out).ips as Array<{ address: string }>).map((a) => a.address);
      assert.equal(ips.length, 2, `one address of each family: ${ips}`);
      const s = (await rig.state(n.index))!;
      pod.ip = ips.find((a) => !a.includes(":"))!.split("/")[0];
      pod.ip6 = ips.find((a) => a.includes(":"))!.split("/")[0];
      assert.ok(
        pod.ip6.startsWith(s.subnet6!.replace(/::\/64$/, "::")),
        `${pod.ip6} in ${s.subnet6}`,
      );
      pods.push(pod);
    }
    const routes6 = await run("ip", "-n", pods[0].ns, "-6", "route");
    assert.match(routes6, /^default via fd32:0:4:\S+::1 dev eth0/m);
    assert.match(routes6, /fd32:0:4::\/56 via fd32:0:4:\S+::1 dev eth0/);
    // At once after the ADDs, both ways and both families.
    for (const [a, b] of [[0, 1], [1, 0]]) {
      assert.ok(await rig.ping(pods[a], pods[b].ip6, 1), `ping -6 ${a} -> ${b}`);
      assert.ok(await rig.ping(pods[a], pods[b].ip, 1), `ping -4 ${a} -> ${b}`);
    }
  },
});
