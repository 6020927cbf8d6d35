/**
 * The meta-plugin's log: warnings and debug lines to `logFile` or stderr (never stdout,
 * which carries the CNI result).
 *
 * Much of what is logged comes from pods (annotation values, names from CNI_ARGS), and the
 * log is often a root-owned file others read. So:
 * - every message is one line: control characters (a newline that would start a forged
 *   line, ANSI escapes, bidi overrides) are written as `\n`, `\u001b`... escapes;
 * - `logFile` is never reached through a symlink: an existing file must be a regular file
 *   owned by podplex's user (root), checked with lstat and again on the open descriptor
 *   (same inode), and a missing one is created with O_CREAT|O_EXCL, which fails on a
 *   symlink. A refused `logFile` sends the lines to stderr, saying why once.
 *
 * `logFormat: "json"` writes one JSON object a line instead: `time`, `level`, `msg`, and the
 * call's `verb`, `containerId`, `pod` and, where one is at issue, `network`. The same
 * characters are escaped (as JSON `\u` escapes, so the line still parses).
 *
 * @module
 */

const LEVELS: Readonly<Record<LogLevel, number>> = { error: 0, warning: 1, info: 2, debug: 3 };

/** A log level name, most severe first. */
export type LogLevel = "error" | "warning" | "info" | "debug";

/** A logger with one method per level. */
export interface Logger {
  /** Something failed. */
  error(msg: string): void;
  /** Something is wrong but the call goes on. */
  warning(msg: string): void;
  /** What was done. */
  info(msg: string): void;
  /** Details for debugging. */
  debug(msg: string): void;
  /** The same log with more fields on every line (JSON: keys; text: `key=value` after). */
  with(fields: LogFields): Logger;
}

/** Fields a line carries besides its message. */
export type LogFields = Record<string, string | number | undefined>;

/** How lines are written. */
export type LogFormat = "text" | "json";

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  format?: LogFormat;
  /** Fields on every JSON line (the call's verb, container id, pod). */
  fields?: LogFields;
}

// C0 and C1 controls, DEL, the line/paragraph separators and the bidi embedding/isolate marks.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `msg` as one printable line: each control or bidi character becomes an escape.
 *
 * @example
 * ```ts
 * escapeLogText("net1\n2026-01-01 podplex error: forged"); // "net1\\n2026-01-01 podplex error: forged"
 * ```
 */
export function escapeLogText(msg: string): string {
  return msg.replace(
    UNSAFE,
    (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// What JSON.stringify leaves as is but a log line must not carry raw (see escapeLogText).
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One JSON log line (no newline): the fields, escaped so that it is one printable line. */
export function jsonLogLine(level: LogLevel, msg: string, fields: LogFields = {}): string {
  const obj: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in obj)) obj[k] = v;
  return JSON.stringify(obj).replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Why a log file with this lstat may not be written, or undefined when it may. */
function refusal(st: Deno.FileInfo): string | undefined {
  if (st.isSymlink) return "it is a symbolic link";
  if (!st.isFile) return "it is not a regular file";
  const uid = Deno.uid();
  if (uid !== null && st.uid !== uid) {
    return `it is owned by uid ${st.uid}, not by ${uid === 0 ? "root" : `uid ${uid}`}`;
  }
  return undefined;
}

/** Appends `line` to `file` without following a symlink; returns why not when refused. */
function appendTo(file: string, line: Uint8Array): string | undefined {
  let before: Deno.FileInfo | undefined;
  try {
    before = Deno.lstatSync(file);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (!before) {
    try {
      // O_CREAT|O_EXCL: fails on anything at the path, a dangling symlink included.
      using f = Deno.openSync(file, { write: true, createNew: true, mode: 0o600 });
      f.writeSync(line);
      return undefined;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      before = Deno.lstatSync(file); // created meanwhile: check what it is
    }
  }
  const why = refusal(before);
  if (why) return why;
  using f = Deno.openSync(file, { append: true });
  const st = f.statSync();
  if (st.ino !== before.ino || st.dev !== before.dev) return "it was replaced while being opened";
  f.writeSync(line);
  return undefined;
}

/**
 * Creates a logger writing lines at or above `level` to `file` (appended) or stderr, as
 * text or JSON (see the module doc). Write failures are ignored: a log must never fail a
 * CNI call.
 */
export function createLogger(
  level: LogLevel = "warning",
  file?: string,
  opts: LoggerOptions = {},
): Logger {
  const max = LEVELS[level];
  const enc = new TextEncoder();
  const state = { refused: false };
  const toStderr = (bytes: Uint8Array) => Deno.stderr.writeSync(bytes);
  const make = (fields: LogFields): Logger => {
    const write = (lvl: LogLevel, msg: string) => {
      if (LEVELS[lvl] > max) return;
      const text = opts.format === "json"
        ? jsonLogLine(lvl, msg, fields)
        : `${new Date().toISOString()} podplex ${lvl}: ${escapeLogText(msg)}`;
      const line = enc.encode(text + "\n");
      try {
        if (!file || state.refused) return void toStderr(line);
        const why = appendTo(file, line);
        if (why) {
          state.refused = true;
          toStderr(enc.encode(`podplex: not logging to "${escapeLogText(file)}": ${why}\n`));
          toStderr(line);
        }
      } catch {
        // ignored on purpose: see above
      }
    };
    return {
      error: (m) => write("error", m),
      warning: (m) => write("warning", m),
      info: (m) => write("info", m),
      debug: (m) => write("debug", m),
      with: (more) => make({ ...fields, ...more }),
    };
  };
  return make(opts.fields ?? {});
}
