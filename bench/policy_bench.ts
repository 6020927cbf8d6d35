/**
 * One pod table update, libnftables through FFI (in-process, inside a netns window) against
 * an `nft -f -` process per update (`nsenter --net=PATH nft -f -`), for the table of a pod
 * selected by two policies of the e2e model; then what a policy in force costs an ADD
 * (bench/_policy_add.ts; run `deno task build` first). Needs root; makes and removes netns
 * `ppe-bench`, `ppe-bw`, `ppe-bc0`..`ppe-bc4` and the bridge `ppe-bbr0`.
 *
 * usage: deno run -A bench/policy_bench.ts [--rounds N] [--add-rounds N]
 *
 * @module
 */
import { runNftIn } from "../ffi/mod.ts";
import { renderPodTable } from "../meta/policy/render.ts";
import { resolvePod } from "../meta/policy/resolve.ts";
import { modelWorld, np } from "../meta/policy/_testing.ts";
import { addOverhead } from "./_policy_add.ts";

const flag = (name: string, dflt: number) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
};
const rounds = flag("--rounds", 200);
const addRounds = flag("--add-rounds", 30);
const NS = "ppe-bench";
const sel = (k: string, v: string) => ({ matchLabels: { [k]: v } });
const world = modelWorld([
  np("x", "p1", {
    podSelector: sel("pod", "a"),
    ingress: [{ from: [{ namespaceSelector: sel("ns", "y") }], ports: [{ port: 80 }] }],
  }),
  np("x", "p2", {
    podSelector: {},
    policyTypes: ["Egress"],
    egress: [{ to: [{ podSelector: {} }] }],
  }),
]);
const script = renderPodTable(resolvePod(world, world.pods[0]));

function pct(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
}

async function viaProcess() {
  const c = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${NS}`, "nft", "-f", "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const w = c.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const o = await c.output();
  if (!o.success) throw new Error(new TextDecoder().decode(o.stderr));
}

await new Deno.Command("ip", { args: ["netns", "add", NS] }).output();
try {
  let t = performance.now();
  runNftIn(`/run/netns/${NS}`, script);
  const first = performance.now() - t;
  const ffi: number[] = [];
  const proc: number[] = [];
  for (let i = 0; i < rounds; i++) {
    t = performance.now();
    runNftIn(`/run/netns/${NS}`, script);
    ffi.push(performance.now() - t);
    t = performance.now();
    await viaProcess();
    proc.push(performance.now() - t);
  }
  console.log(`pod table update (${script.split("\n").length} lines), ${rounds} rounds, ms:`);
  console.log(
    `  libnftables FFI: first ${first.toFixed(2)} (dlopen+bind), p50 ${pct(ffi, 0.5)}, p90 ${
      pct(ffi, 0.9)
    }`,
  );
  console.log(`  nft -f - process: p50 ${pct(proc, 0.5)}, p90 ${pct(proc, 0.9)}`);
} finally {
  await new Deno.Command("ip", { args: ["netns", "del", NS] }).output();
}
await addOverhead(addRounds);
