/**
 * The program entry (`bin/podplex` runs it): a subcommand when argv names one, else the CNI
 * dispatcher when CNI_COMMAND is set, else an about line and usage on stderr (exit 0, as skel
 * answers a plugin run without CNI_COMMAND).
 *
 * @module
 */
// First import: its evaluation is the "entry" mark of a traced call.
import { ENTERED_AT } from "./_entered.ts";
import { createTrace, NO_TRACE, type Trace } from "../conf/trace.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../conf/version.ts";
import { type CniIo, runCni } from "./cni.ts";
import { createRoot, type Root } from "./root.ts";
import { err, out } from "./_output.ts";

/** podplex's own version. */
export const PODPLEX_VERSION = "0.1.0";

/**
 * A subcommand module: `main(argv, root)` gets the arguments after the subcommand's name and
 * the composition root.
 */
export interface Subcommand {
  main(argv: string[], root: Root): Promise<number>;
}

function about(): string {
  return `podplex ${PODPLEX_VERSION}: a CNI meta-plugin ` +
    `(CNI spec ${CURRENT_VERSION}; supports ${SUPPORTED_VERSIONS.join(", ")})\n`;
}

function usage(): string {
  const names = Object.keys(SUBCOMMANDS).sort().join(", ");
  return `usage: podplex <command> [args...]   commands: ${names}\n` +
    `       podplex <command> --help   (pod up|down|check|list|exec, net list|show|validate,\n` +
    `       status, gc, graph, install, policy apply|show|check: pods, networks and network\n` +
    `       policy on one machine without Kubernetes)\n` +
    `       podplex serve [--socket PATH]   (resident daemon for .tools/podplex-client)\n` +
    `       CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION podplex < conf.json   (as a CNI plugin)\n`;
}

/**
 * The subcommands, each a lazy import so a CNI call loads none of them. Others add
 * `pod`, `net`, `status`, `gc`, `graph`, `install`.
 */
export const SUBCOMMANDS: Readonly<Record<string, () => Promise<Subcommand>>> = Object.freeze({
  pod: () => import("./pod.ts"),
  net: () => import("./net.ts"),
  status: () => import("./status.ts"),
  gc: () => import("./gc.ts"),
  graph: () => import("./graph.ts"),
  install: () => import("./install.ts"),
  serve: () => import("./serve.ts"),
  ipam: () => import("./ipam.ts"),
  policy: () => import("./policy.ts"),
  version: () =>
    Promise.resolve({
      main(): Promise<number> {
        out(about());
        return Promise.resolve(0);
      },
    }),
  help: () =>
    Promise.resolve({
      main(): Promise<number> {
        out(about() + usage());
        return Promise.resolve(0);
      },
    }),
});

const ALIASES: Readonly<Record<string, string>> = {
  "--version": "version",
  "-h": "help",
  "--help": "help",
};

/** A network config on stdin is KiB; its prevResult for 128 networks stays far below this. */
const MAX_STDIN_BYTES = 16 * 1024 * 1024;

/**
 * Reads all of stdin synchronously: a plugin's stdin is a small pipe, and the stream API
 * (`new Response(Deno.stdin.readable)`) costs milliseconds of setup on every CNI call.
 */
function readStdin(trace: Trace): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buf = new Uint8Array(total < 65536 ? 16384 : 262144);
    const n = Deno.stdin.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
    if (total > MAX_STDIN_BYTES) {
      return Promise.reject(new Error(`stdin holds more than ${MAX_STDIN_BYTES} bytes`));
    }
  }
  trace.mark("stdin");
  if (chunks.length === 1) return Promise.resolve(chunks[0]);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return Promise.resolve(out);
}

/** Options of {@linkcode main}. */
export interface MainOptions {
  /** The timing marks of this run (default: none). */
  trace?: Trace;
  /** The subcommand table (default: {@linkcode SUBCOMMANDS}). */
  subcommands?: Readonly<Record<string, () => Promise<Subcommand>>>;
}

/**
 * Runs podplex with `argv` (without the program name) and `env`.
 *
 * @returns the process exit code
 */
export async function main(
  argv: string[],
  env: Record<string, string | undefined> = Deno.env.toObject(),
  opts: MainOptions = {},
): Promise<number> {
  const trace = opts.trace ?? NO_TRACE;
  const subcommands = opts.subcommands ?? SUBCOMMANDS;
  trace.mark("main");
  const name = argv.length ? (ALIASES[argv[0]] ?? argv[0]) : undefined;
  const root = createRoot();
  try {
    if (name !== undefined) {
      const load = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
      if (!load) {
        err(`podplex: unknown command "${argv[0]}"\n` + usage());
        return 2;
      }
      return await (await load()).main(argv.slice(1), root);
    }
    if (env.CNI_COMMAND) {
      const io: CniIo = {
        env,
        stdin: () => readStdin(trace),
        stdout: out,
        stderr: err,
        argv0: env.PODPLEX_ARGV0,
        trace,
      };
      return await runCni(io, root.resolver(io.argv0));
    }
    // skel prints its about string on stderr and succeeds; a person gets the usage with it.
    err(about() + usage());
    return 0;
  } finally {
    root.close();
  }
}

if (import.meta.main) {
  const trace = Deno.env.get("PODPLEX_TRACE") === "1" ? createTrace(ENTERED_AT) : NO_TRACE;
  const code = await main(Deno.args, Deno.env.toObject(), { trace });
  trace.flush((line) => err(line));
  Deno.exit(code);
}
