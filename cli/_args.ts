/**
 * Flags and usage errors of the standalone subcommands: strict parsing with sentences naming
 * the flag at fault, the `--help` conventions, and the guard that turns errors into exit codes.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CniError } from "../conf/errors.ts";
import { loadStandaloneConfig, type StandaloneConfig } from "./_config.ts";
import { err, out } from "./_output.ts";

/** A usage error (bad flag, missing argument): exit code 2. */
export class UsageError extends Error {
  /** @param msg a sentence naming the argument at fault */
  constructor(msg: string) {
    super(msg);
    this.name = "UsageError";
  }
}

/**
 * node:util parseArgs with `strict`, turning its errors into sentences naming the flag.
 *
 * @throws {UsageError} for an unknown flag or a flag without its value
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  allowPositionals = true,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify.*$/s, "").replace(/\.$/, "");
    throw new UsageError(msg);
  }
}

/**
 * Runs a subcommand body: prints a UsageError (exit 2) or any other error (exit 1) as one
 * sentence on stderr.
 */
export async function guard(prog: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      err(`${prog}: ${e.message} (see '${prog} --help')\n`);
      return 2;
    }
    const text = e instanceof CniError
      ? e.message + (e.details ? ` (${e.details})` : "")
      : e instanceof Error
      ? e.message
      : String(e);
    err(`${prog}: ${text}\n`);
    return 1;
  }
}

/** The flags of a command that takes only `--config` and `--json`. */
export const CONFIG_JSON_FLAGS = {
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * The start of a command that takes no arguments, only `--config`, `--json` and `--help`
 * (`gc`, `status`): prints `help` on stdout for `--help`, else loads the conf.
 *
 * @returns undefined when help was printed, else the conf in use and whether JSON is wanted
 * @throws {UsageError} for a bad flag or any positional argument
 */
export async function noArgCommand(
  argv: string[],
  name: string,
  help: string,
): Promise<{ cfg: StandaloneConfig; json: boolean } | undefined> {
  const { values: f, positionals } = parseFlags(argv, CONFIG_JSON_FLAGS);
  if (f.help) return void out(help);
  if (positionals.length) throw new UsageError(`"${name}" takes no arguments`);
  return { cfg: await loadStandaloneConfig(f.config), json: !!f.json };
}

/**
 * The first step of a command with subcommands (`pod`, `net`): `help`, `--help` or `-h`
 * prints `help` on stdout (exit 0); no subcommand at all is an error, so help goes to stderr
 * (exit 2).
 *
 * @returns the exit code when help was printed, undefined for a real subcommand
 */
export function subcommandHelp(cmd: string | undefined, help: string): number | undefined {
  if (cmd === undefined) return (err(help), 2);
  if (cmd === "help" || cmd === "--help" || cmd === "-h") return (out(help), 0);
  return undefined;
}
