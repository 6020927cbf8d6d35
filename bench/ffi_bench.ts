/**
 * Benchmark of the ffi/ layer (not a test): what a bridge ADD costs in kernel setup.
 *
 * - bind: milliseconds to dlopen and bind the FFI symbols a bridge ADD uses (fresh process);
 * - setup: a veth pair (container end created with its peer directly in the host netns),
 *   a bridge with an address, the port enslaved and up, the container address and default
 *   route, in a fresh pair of netns; cold (fresh `deno` process: import + bind + work) and
 *   warm (in this process, symbols bound);
 * - the same kernel work with `ip -batch` (one `ip` process per netns, as `ip -n` takes one
 *   netns per process), wall time including process start.
 *
 * Run as root: `deno run -A bench/ffi_bench.ts [rounds]` (default 10). Every netns it makes
 * is named `ppb...` and deleted afterwards.
 *
 * @module
 */

const ffiUrl = new URL("../ffi/mod.ts", import.meta.url).href;
const libUrl = new URL("../ffi/_lib.ts", import.meta.url).href;
type Ffi = typeof import("../ffi/mod.ts");

const GW = "10.77.0.1";

/** The bridge plugin's kernel work, through ffi/. */
function bridgeAdd(ffi: Ffi, hostPath: string, ctrPath: string): void {
  using host = ffi.NetNs.open(hostPath);
  using ctr = ffi.NetNs.open(ctrPath);
  using nlH = ffi.Netlink.open(host);
  using nlC = ffi.Netlink.open(ctr);
  if (!nlH.getLink("ppbr0")) nlH.addBridge({ name: "ppbr0" });
  const br = nlH.requireLink("ppbr0");
  nlH.setUp(br.index);
  nlH.addAddr(br.index, `${GW}/24`);
  nlC.addVeth({ name: "eth0", peerName: "ppveth0", peerNs: host });
  const port = nlH.requireLink("ppveth0");
  nlH.setMaster(port.index, br.index);
  nlH.setUp(port.index);
  nlC.setUp("eth0");
  nlC.addAddr("eth0", "10.77.0.2/24");
  nlC.addRoute({ dst: "0.0.0.0/0", gw: GW });
}

const hostBatch = (ctr: string) =>
  [
    "link add ppbr0 type bridge",
    "link set ppbr0 up",
    `addr add ${GW}/24 dev ppbr0`,
    `link add ppveth0 type veth peer name eth0 netns ${ctr}`,
    "link set ppveth0 master ppbr0",
    "link set ppveth0 up",
  ].join("\n") + "\n";
const ctrBatch =
  ["link set eth0 up", "addr add 10.77.0.2/24 dev eth0", `route add default via ${GW}`]
    .join("\n") + "\n";

async function sh(cmd: string, args: string[], stdin?: string): Promise<void> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`"${cmd} ${args.join(" ")}" failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Runs `fn` with a fresh pair of netns (host, container), deleted afterwards. */
async function withPair<T>(fn: (host: string, ctr: string) => Promise<T> | T): Promise<T> {
  const id = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const [host, ctr] = [`ppbh${id}`, `ppbc${id}`];
  await sh("ip", ["netns", "add", host]);
  try {
    await sh("ip", ["netns", "add", ctr]);
    return await fn(host, ctr);
  } finally {
    await sh("ip", ["netns", "delete", ctr]).catch(() => {});
    await sh("ip", ["netns", "delete", host]).catch(() => {});
  }
}

/** Child mode: one cold bridge ADD; prints JSON timings. */
async function child(host: string, ctr: string): Promise<void> {
  const t0 = performance.now();
  const ffi: Ffi = await import(ffiUrl);
  const lib = await import(libUrl);
  const t1 = performance.now();
  bridgeAdd(ffi, `/run/netns/${host}`, `/run/netns/${ctr}`);
  const t2 = performance.now();
  console.log(JSON.stringify({ importMs: t1 - t0, setupMs: t2 - t1, bind: lib.bindStats() }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

async function main(rounds: number): Promise<void> {
  const cold: Array<
    { importMs: number; setupMs: number; wall: number; bind: Record<string, number> }
  > = [];
  for (let i = 0; i < rounds; i++) {
    await withPair(async (host, ctr) => {
      const t0 = performance.now();
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, "--child", host, ctr],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      const wall = performance.now() - t0;
      cold.push({ ...JSON.parse(new TextDecoder().decode(out.stdout)), wall });
    });
  }
  const ffi: Ffi = await import(ffiUrl);
  const warm: number[] = [];
  for (let i = 0; i < rounds; i++) {
    warm.push(
      await withPair((host, ctr) => {
        const t0 = performance.now();
        bridgeAdd(ffi, `/run/netns/${host}`, `/run/netns/${ctr}`);
        return performance.now() - t0;
      }),
    );
  }
  const ipBatch: number[] = [];
  for (let i = 0; i < rounds; i++) {
    ipBatch.push(
      await withPair(async (host, ctr) => {
        const t0 = performance.now();
        await sh("ip", ["-n", host, "-batch", "-"], hostBatch(ctr));
        await sh("ip", ["-n", ctr, "-batch", "-"], ctrBatch);
        return performance.now() - t0;
      }),
    );
  }
  const b = cold[0].bind;
  console.log(`ffi bench, medians of ${rounds} rounds (fresh netns pair each)`);
  console.log(
    `  bind symbols for a bridge ADD   ${fmt(median(cold.map((c) => c.bind.ms)))}` +
      `  (${b.symbols} symbols in ${b.groups} groups)`,
  );
  console.log(`  import ffi/mod.ts (cold)        ${fmt(median(cold.map((c) => c.importMs)))}`);
  console.log(`  setup via ffi, cold (incl bind) ${fmt(median(cold.map((c) => c.setupMs)))}`);
  console.log(`  setup via ffi, warm             ${fmt(median(warm))}`);
  console.log(`  whole deno process, cold        ${fmt(median(cold.map((c) => c.wall)))}`);
  console.log(`  ip -batch (2 processes)         ${fmt(median(ipBatch))}`);
}

if (Deno.args[0] === "--child") {
  await child(Deno.args[1], Deno.args[2]);
} else {
  await main(Number(Deno.args[0] ?? 10));
}
