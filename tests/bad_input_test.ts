/**
 * The bad-input campaign: a few hundred generated bad inputs (types, sizes, nesting,
 * unicode, path tricks, non-regular files, symlinks) through the real dispatcher (`runCni`
 * with injected io and podplex's own composition root; the blocking kinds through
 * bin/podplex in a child process with a deadline). Each case must get its code, a message
 * naming the field and value, and leave nothing: no link in the pod's netns, no port on a
 * bridge, no lease or temporary file, no state file. Prints a table per category.
 */
import assert from "node:assert/strict";
import { isRoot, tryRun } from "./testutils.ts";
import { callCni, type CallOut, createRig, type Rig } from "./_rel_fixture.ts";
import { type BadCase, type Call, type CaseCtx, CORE_CASES } from "./_bad_inputs.ts";
import { fileCases } from "./_bad_inputs_files.ts";
import { annotationCases } from "./_bad_inputs_annotations.ts";

const LAUNCHER = new URL("../bin/podplex", import.meta.url).pathname;
const BIN_DEADLINE_MS = 20_000;

/** Runs a call through bin/podplex; a child past the deadline is killed and reported. */
async function viaBin(call: Call): Promise<CallOut> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    PODPLEX_SOCKET: "/nonexistent/ppr.sock",
  };
  for (const [k, v] of Object.entries(call.env)) if (v !== undefined) env[k] = v;
  const child = new Deno.Command(LAUNCHER, {
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(BIN_DEADLINE_MS),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(call.stdin)).catch(() => {});
  await writer.close().catch(() => {});
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  let json: Record<string, unknown> = {};
  try {
    json = stdout.trim() ? JSON.parse(stdout) : {};
  } catch {
    json = { unparsable: stdout };
  }
  const code = out.signal ? -1 : out.code;
  return { code, stdout, stderr: new TextDecoder().decode(out.stderr), json };
}

/** What is wrong with a case's outcome (empty: right). */
function judge(c: BadCase, ctx: CaseCtx, out: CallOut): string[] {
  const wrong: string[] = [];
  if (out.code === -1) return [`no answer within ${BIN_DEADLINE_MS} ms (killed)`];
  const got = out.code === 0 ? 0 : Number(out.json.code);
  if (got !== c.code) wrong.push(`code ${got}, want ${c.code}: ${out.stdout.slice(0, 300)}`);
  const text = `${out.json.msg ?? ""} ${out.json.details ?? ""}`;
  const names = typeof c.names === "function" ? c.names(ctx) : c.names;
  for (const n of names) {
    if (!text.includes(n)) {
      wrong.push(`message does not name ${JSON.stringify(n)}: ${text.slice(0, 300)}`);
    }
  }
  for (const a of c.absent ?? []) {
    if (out.stdout.includes(a) || out.stderr.includes(a)) {
      wrong.push(`output holds ${JSON.stringify(a)}`);
    }
  }
  const problem = c.verify?.(ctx);
  if (problem) wrong.push(problem);
  return wrong;
}

/** Removes whatever a case left, so the next one starts clean. */
async function scrub(rig: Rig, call: Call): Promise<void> {
  await callCni({ ...call.env, CNI_COMMAND: "DEL" }, call.stdin).catch(() => {});
  for (const line of await rig.leftovers()) {
    const [kind, what] = line.split(" ");
    if (kind === "link") await tryRun("ip", "-n", rig.netns.name, "link", "del", what);
    if (kind === "port") await tryRun("ip", "link", "del", what);
    if (kind === "lease") Deno.removeSync(`${rig.dataDir}/${what}`);
    if (kind === "state") Deno.removeSync(`${rig.stateDir}/${what}`, { recursive: true });
  }
}

interface Tally {
  tried: number;
  right: number;
  wrong: number;
  left: number;
}

function table(tallies: Map<string, Tally>): string {
  const rows = [["category", "tried", "right", "wrong", "left something"]];
  const total: Tally = { tried: 0, right: 0, wrong: 0, left: 0 };
  for (const [cat, t] of tallies) {
    rows.push([cat, String(t.tried), String(t.right), String(t.wrong), String(t.left)]);
    for (const k of Object.keys(total) as (keyof Tally)[]) total[k] += t[k];
  }
  rows.push([
    "total",
    String(total.tried),
    String(total.right),
    String(total.wrong),
    String(total.left),
  ]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ")
  )
    .join("\n");
}

Deno.test({
  name: "bad inputs get the right code and a message naming the field, and leave nothing",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("bad");
    rig.bridgeNetwork("net-a", 80);
    rig.bridgeNetwork("net-b", 91);
    rig.bridgeNetwork("net-c", 92);
    const cases = [...CORE_CASES(), ...fileCases(), ...annotationCases()];
    const tallies = new Map<string, Tally>();
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      const ctx: CaseCtx = { rig, id: `pprbad${i}`, ns: `c${i}` };
      const t = tallies.get(c.category) ?? { tried: 0, right: 0, wrong: 0, left: 0 };
      tallies.set(c.category, t);
      t.tried++;
      const call = c.make(ctx);
      const out = c.via === "bin" ? await viaBin(call) : await callCni(call.env, call.stdin);
      const wrong = judge(c, ctx, out);
      if (c.code === 0 && out.code === 0) {
        const del = await callCni({ ...call.env, CNI_COMMAND: "DEL" }, call.stdin);
        if (del.code !== 0) wrong.push(`DEL failed: ${del.stdout}`);
      }
      const left = await rig.leftovers();
      if (wrong.length) {
        t.wrong++;
        failures.push(`[${c.category}] ${c.name}: ${wrong.join("; ")}`);
      } else t.right++;
      if (left.length) {
        t.left++;
        failures.push(`[${c.category}] ${c.name}: left ${left.join(", ")}`);
        await scrub(rig, call);
      }
    }
    console.log(`\n${table(tallies)}\n`);
    assert.ok(cases.length >= 200, `only ${cases.length} cases`);
    assert.deepEqual(failures, []);
  },
});
