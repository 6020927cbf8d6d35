/**
 * podplex driven by a real CNI client: podman 4.x with its CNI backend runs busybox containers
 * on a network whose conflist is podplex (a cluster network and two defaultNetworks, all
 * bridge + host-local through the built-in delegates). podman execs `bin/podplex` exactly as
 * on a node: VERSION probe with dummy env, ADD on start, DEL on rm and after a failed ADD.
 *
 * podman is isolated from the host's configuration and storage (tests/podman/harness.ts).
 * Skipped, saying why, when not root or when podman, runc, conmon or busybox-static is missing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ipJson, ppName } from "./testutils.ts";
import {
  createPodmanEnv,
  IMAGE,
  type PodmanEnv,
  podmanMissing,
  staleBuildWarning,
} from "./podman/harness.ts";
import {
  bridgePorts,
  leaseFiles,
  libcniCache,
  NETWORK,
  parseIpOAddr,
  stateFiles,
  type TestNetwork,
  writeNetwork,
  writeNetworks,
  writePodplexConflist,
} from "./podman/fixture.ts";

const skip = await podmanMissing();
if (skip) console.warn(`podman tests skipped: ${skip}`);
const stale = skip ? undefined : await staleBuildWarning();
if (stale) console.warn(`podman tests: ${stale}`);

/** The secondary interface names podplex gives defaultNetworks, in order. */
const IFNAMES = ["eth0", "net1", "net2"];

/** The address host-local hands out `n` leases after the first (last_reserved_ip round robin). */
function nthIp(net: TestNetwork, n: number): string {
  const [a, b, c, d] = net.firstIp.split(".").map(Number);
  return `${a}.${b}.${c}.${d + n}`;
}

interface Started {
  name: string;
  id: string;
  sandboxKey: string;
}

/** `podman run -d` of a sleeping busybox on the podplex network (`extra`: run options). */
async function runContainer(env: PodmanEnv, ...extra: string[]): Promise<Started> {
  const name = ppName("c");
  const id = (await env.podmanOk(
    "run",
    "-d",
    "--pull=never",
    "--name",
    name,
    "--network",
    NETWORK,
    ...extra,
    IMAGE,
    "sleep",
    "600",
  )).trim();
  const sandboxKey =
    (await env.podmanOk("inspect", name, "--format", "{{.NetworkSettings.SandboxKey}}"))
      .trim();
  return { name, id, sandboxKey };
}

/** Asserts what podman, the kernel and the disk show for a container that got `round`'s IPs. */
async function assertAttached(
  env: PodmanEnv,
  nets: TestNetwork[],
  c: Started,
  round: number,
): Promise<void> {
  const want = nets.map((n) => nthIp(n, round));
  // Inside the container, as its own busybox sees it.
  const addrs = parseIpOAddr(await env.podmanOk("exec", c.name, "ip", "-o", "addr"));
  for (const [i, ifname] of IFNAMES.entries()) {
    assert.deepEqual(addrs.get(ifname), [`${want[i]}/24`], `${ifname} in ${c.name}`);
  }
  // The same netns through the host's iproute2 (podman's SandboxKey is /run/netns/<name>).
  const nsName = c.sandboxKey.replace("/run/netns/", "");
  const links = await ipJson(nsName, "link", "show");
  assert.deepEqual(links.map((l) => l.ifname).sort(), ["eth0", "lo", "net1", "net2"]);
  // podman parsed podplex's merged result: eth0's IP first, the others as secondary.
  const settings = JSON.parse(
    await env.podmanOk("inspect", c.name, "--format", `{{json .NetworkSettings.Networks}}`),
  )[NETWORK];
  assert.deepEqual(settings.IPAddress, want[0]);
  assert.deepEqual(
    (settings.SecondaryIPAddresses ?? []).map((a: { Addr: string }) => a.Addr),
    want.slice(1),
  );
  // One lease per network, naming the container and its interface; one state file.
  const leases = await leaseFiles(env);
  assert.deepEqual(leases, nets.map((n, i) => `${n.name}/${want[i]}`).sort());
  for (const [i, n] of nets.entries()) {
    const text = await Deno.readTextFile(`${env.dataDir}/${n.name}/${want[i]}`);
    assert.deepEqual(text, `${c.id}\r\n${IFNAMES[i]}`);
  }
  assert.deepEqual(await stateFiles(env), [`${c.id}@eth0.json`]);
  assert.deepEqual((await bridgePorts(nets)).length, 3);
}

/** Asserts that nothing of container `id` is left: links, leases, state, netns, libcni cache. */
async function assertReleased(
  env: PodmanEnv,
  nets: TestNetwork[],
  id: string,
  sandboxKey?: string,
  keepLeases: string[] = [],
): Promise<void> {
  assert.deepEqual(await bridgePorts(nets), []);
  assert.deepEqual(await leaseFiles(env), keepLeases);
  assert.deepEqual(await stateFiles(env), []);
  assert.deepEqual(await libcniCache(id), []);
  if (sandboxKey) {
    await assert.rejects(Deno.lstat(sandboxKey), Deno.errors.NotFound, sandboxKey);
  }
}

/** podman's CNI calls for one container: ["ADD eth0", "DEL eth0"...]. */
async function callsFor(env: PodmanEnv, id: string): Promise<string[]> {
  return (await env.calls())
    .filter((l) => l.endsWith(` ${id}`))
    .map((l) => l.slice(0, -id.length - 1));
}

Deno.test({
  name: "podman runs a container with eth0, net1 and net2 from podplex and rm releases them, twice",
  ignore: !!skip,
  sanitizeResources: false,
  async fn() {
    await using env = await createPodmanEnv();
    const nets = await writeNetworks(env);
    await writePodplexConflist(env, nets);
    for (const round of [0, 1]) {
      const c = await runContainer(env);
      await assertAttached(env, nets, c, round);
      assert.deepEqual((await libcniCache(c.id)).length, 1, "libcni caches the ADD result");
      await env.podmanOk("rm", "--force", "--time", "0", c.name);
      await assertReleased(env, nets, c.id, c.sandboxKey);
      const calls = await callsFor(env, c.id);
      assert.deepEqual(calls[0], "ADD eth0");
      assert(calls.length >= 2 && calls.slice(1).every((v) => v === "DEL eth0"), `${calls}`);
    }
    // podman probes the plugin's versions with dummy env before using it.
    assert((await env.calls()).includes("VERSION dummy "), `${await env.calls()}`);
  },
});

Deno.test({
  name: "podman run fails when the third network fails and podplex leaves nothing behind",
  ignore: !!skip,
  sanitizeResources: false,
  async fn() {
    await using env = await createPodmanEnv();
    const nets = await writeNetworks(env);
    // net-c's only address is taken by someone else: its IPAM fails after net-a and net-b.
    const taken = `${nets[2].name}/${nets[2].firstIp}`;
    await writeNetwork(env, nets[2], { rangeStart: nets[2].firstIp, rangeEnd: nets[2].firstIp });
    await Deno.mkdir(`${env.dataDir}/${nets[2].name}`, { recursive: true });
    await Deno.writeTextFile(`${env.dataDir}/${taken}`, "someoneelse\r\neth0");
    await writePodplexConflist(env, nets);

    const name = ppName("c");
    const out = await env.podman(
      "run",
      "-d",
      "--pull=never",
      "--name",
      name,
      "--network",
      NETWORK,
      IMAGE,
      "sleep",
      "600",
    );
    assert(!out.success, "podman run must fail");
    assert(out.stderr.includes(`Network "default/net-c" (interface "net2") failed`), out.stderr);
    const id = (await env.podmanOk("inspect", name, "--format", "{{.Id}}")).trim();
    // podman DELs after the failed ADD; ADD had already rolled back, DEL finds nothing.
    assert.deepEqual(await callsFor(env, id), ["ADD eth0", "DEL eth0"]);
    await assertReleased(env, nets, id, undefined, [taken]);
    assert.deepEqual(await Deno.readTextFile(`${env.dataDir}/${taken}`), "someoneelse\r\neth0");

    await env.podmanOk("rm", "--force", "--time", "0", name);
    await assertReleased(env, nets, id, undefined, [taken]);
  },
});

Deno.test({
  name: "podman stop releases the networks and start attaches them again",
  ignore: !!skip,
  sanitizeResources: false,
  async fn() {
    await using env = await createPodmanEnv();
    const nets = await writeNetworks(env);
    await writePodplexConflist(env, nets);
    const c = await runContainer(env);
    await assertAttached(env, nets, c, 0);
    await env.podmanOk("stop", "--time", "0", c.name);
    await assertReleased(env, nets, c.id, c.sandboxKey);
    await env.podmanOk("start", c.name);
    // A new netns for the same container id: podplex's state for it was removed by the DEL.
    const sandboxKey =
      (await env.podmanOk("inspect", c.name, "--format", "{{.NetworkSettings.SandboxKey}}"))
        .trim();
    await assertAttached(env, nets, { ...c, sandboxKey }, 1);
    await env.podmanOk("rm", "--force", "--time", "0", c.name);
    await assertReleased(env, nets, c.id, sandboxKey);
    const calls = await callsFor(env, c.id);
    assert.deepEqual(calls.slice(0, 3), ["ADD eth0", "DEL eth0", "ADD eth0"]);
    assert(calls.slice(3).length >= 1 && calls.slice(3).every((v) => v === "DEL eth0"), `${calls}`);
  },
});

Deno.test({
  name: "podman --ip and --mac-address apply to eth0 only, the other networks allocate their own",
  // Known bug, reported: podplex hands the runtime's whole CNI_ARGS (IP=, MAC=) to every
  // attachment, so net1's host-local rejects eth0's IP and all three links get one MAC.
  ignore: !!skip,
  sanitizeResources: false,
  async fn() {
    await using env = await createPodmanEnv();
    const nets = await writeNetworks(env);
    await writePodplexConflist(env, nets);
    const ip = nthIp(nets[0], 40);
    const mac = "02:00:00:00:70:01";
    const c = await runContainer(env, "--ip", ip, "--mac-address", mac);
    const addrs = parseIpOAddr(await env.podmanOk("exec", c.name, "ip", "-o", "addr"));
    assert.deepEqual(addrs.get("eth0"), [`${ip}/24`]);
    assert.deepEqual(addrs.get("net1"), [`${nets[1].firstIp}/24`]);
    assert.deepEqual(addrs.get("net2"), [`${nets[2].firstIp}/24`]);
    const links = await ipJson(c.sandboxKey.replace("/run/netns/", ""), "link", "show");
    const macOf = (dev: string) => links.find((l) => l.ifname === dev)?.address;
    assert.deepEqual(macOf("eth0"), mac);
    assert.notDeepEqual(macOf("net1"), mac);
    assert.notDeepEqual(macOf("net2"), mac);
    await env.podmanOk("rm", "--force", "--time", "0", c.name);
    await assertReleased(env, nets, c.id, c.sandboxKey);
  },
});

Deno.test({
  name: "podman containers get the defaultNetworks with podplex's default systemNamespaces",
  // Known bug, reported: with no K8S_POD_NAMESPACE (podman never sends one) podplex takes
  // the pod for one of defaultNetworkNamespace ("kube-system"), a system namespace, and skips
  // defaultNetworks without a word. Enable once meta/ treats "no namespace" as no system pod.
  ignore: !!skip,
  sanitizeResources: false,
  async fn() {
    await using env = await createPodmanEnv();
    const nets = await writeNetworks(env);
    await writePodplexConflist(env, nets);
    const c = await runContainer(env);
    await assertAttached(env, nets, c, 0);
    await env.podmanOk("rm", "--force", "--time", "0", c.name);
    await assertReleased(env, nets, c.id, c.sandboxKey);
  },
});
