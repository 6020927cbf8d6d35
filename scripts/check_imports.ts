/**
 * `deno task check`'s import rules: no import cycle among podplex's modules, and no import
 * up a floor. The floors, lowest first:
 *
 *   conf/, ffi/  <  clients/  <  delegates/types.ts, delegates/_shared/
 *   <  delegates/main/, delegates/ipam/  <  delegates/runner/, delegates/catalog.ts  <  meta/
 *   <  controllers/  <  cli/  <  mod.ts
 *
 * A module may import its own floor and the floors below. Two upward imports get a name of
 * their own, as they are the ones the layout is about: a plugin (delegates/) importing a
 * controller, and a controller importing cli/. And delegates/ holds only what a CNI call
 * runs: no resident loop (`setInterval`, `Deno.listen*`, `Deno.watchFs`, an etcd `Watcher`
 * or a `.watch(` stream) outside its tests; that work is a controller's (controllers/).
 *
 * Test code (`*_test.ts`, and the helpers named `testing.ts`, `_testing.ts`, `_testutil.ts`,
 * `tests/`, `bench/`, `scripts/`) may import anything and is left out of the cycle check; no
 * other module may import it.
 *
 * Usage: `deno run --allow-read scripts/check_imports.ts [root]`; prints each violation and
 * exits 1 when there is one.
 *
 * @module
 */

/** The floor of a path (relative to the repo root), or undefined for test code. */
export function floorOf(path: string): number | undefined {
  if (isTestCode(path)) return undefined;
  const floors: Array<[RegExp, number]> = [
    [/^(conf|ffi)\//, 0],
    [/^clients\//, 1],
    [/^delegates\/(types\.ts$|_shared\/)/, 2],
    [/^delegates\/(main|ipam)\//, 3],
    [/^delegates\/(runner\/|catalog\.ts$)/, 4],
    [/^meta\//, 5],
    [/^controllers\//, 6],
    [/^cli\//, 7],
    [/^mod\.ts$/, 8],
  ];
  for (const [re, floor] of floors) if (re.test(path)) return floor;
  return undefined;
}

/** Whether a path is test code (see the module doc). */
export function isTestCode(path: string): boolean {
  return /(^|\/)(tests|bench|scripts)\//.test(path) || /_test\.ts$/.test(path) ||
    /(^|\/)(testing|_testing|_testutil)\.ts$/.test(path);
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;

/** The relative import specifiers of a module's source (static, dynamic and side-effect). */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  // Comments may show imports as examples; they are not imports.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  for (const m of code.matchAll(SPECIFIER)) out.push(m[1]);
  return out;
}

function join(dir: string, rel: string): string {
  const parts = dir ? dir.split("/") : [];
  for (const p of rel.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** One broken rule. */
export interface Violation {
  kind:
    | "upward"
    | "plugin-imports-controller"
    | "controller-imports-cli"
    | "resident-loop"
    | "cycle"
    | "test-import";
  text: string;
}

/** What starts resident work: a timer that repeats, a listening socket, a watch. */
const RESIDENT = [
  /\bsetInterval\s*\(/,
  /\bDeno\.listen(?:Datagram|Tls)?\s*\(/,
  /\bDeno\.watchFs\s*\(/,
  /\bnew\s+Watcher\s*\(/,
  /\.watch\s*\(/,
];

/** The resident loop a module of delegates/ starts, if any (a line of it, for the message). */
export function residentLoopOf(path: string, source: string): string | undefined {
  if (!path.startsWith("delegates/") || isTestCode(path)) return;
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  for (const line of code.split("\n")) {
    if (RESIDENT.some((re) => re.test(line))) return line.trim();
  }
}

/** The name of an upward import the layout forbids by name, else "upward". */
function upwardKind(from: string, to: string): Violation["kind"] {
  if (from.startsWith("delegates/") && to.startsWith("controllers/")) {
    return "plugin-imports-controller";
  }
  if (from.startsWith("controllers/") && to.startsWith("cli/")) return "controller-imports-cli";
  return "upward";
}

/**
 * Checks a module graph given as path → source.
 *
 * @returns every violation (empty when the graph keeps the rules)
 */
export function checkGraph(sources: ReadonlyMap<string, string>): Violation[] {
  const edges = new Map<string, string[]>();
  const out: Violation[] = [];
  for (const [path, source] of sources) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    const targets = importsOf(source).map((s) => join(dir, s));
    edges.set(path, targets);
    const loop = residentLoopOf(path, source);
    if (loop) {
      out.push({
        kind: "resident-loop",
        text: `${path} starts resident work (${loop}): it belongs in controllers/`,
      });
    }
    const from = floorOf(path);
    if (from === undefined) continue;
    for (const t of targets) {
      if (isTestCode(t)) {
        out.push({ kind: "test-import", text: `${path} imports test code ${t}` });
        continue;
      }
      const to = floorOf(t);
      if (to !== undefined && to > from) {
        const kind = upwardKind(path, t);
        const why = kind === "upward" ? "" : ` (${kind.replaceAll("-", " ")})`;
        out.push({ kind, text: `${path} (floor ${from}) imports ${t} (floor ${to})${why}` });
      }
    }
  }
  for (const cycle of cycles(edges)) {
    out.push({ kind: "cycle", text: `import cycle: ${[...cycle, cycle[0]].join(" -> ")}` });
  }
  return out;
}

/** The import cycles among non-test modules (Tarjan's strongly connected components). */
function cycles(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w) || isTestCode(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      const self = (edges.get(v) ?? []).includes(v);
      if (scc.length > 1 || self) found.push(scc.reverse());
    }
  };
  for (const v of edges.keys()) if (!isTestCode(v) && !index.has(v)) visit(v);
  return found;
}

async function sourcesUnder(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (!e.name.startsWith(".") && !["dist", "node_modules", "results"].includes(e.name)) {
          await walk(rel);
        }
      } else if (e.isFile && rel.endsWith(".ts")) {
        out.set(rel, await Deno.readTextFile(`${root}/${rel}`));
      }
    }
  };
  await walk("");
  return out;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const violations = checkGraph(await sourcesUnder(root));
  for (const v of violations) console.error(`check_imports: ${v.text}`);
  if (violations.length) Deno.exit(1);
  console.error("check_imports: no import cycle, no upward import, no resident loop in delegates/");
}
