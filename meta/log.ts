/**
 * The meta-plugin's log: warnings and debug lines to `logFile` or stderr (never stdout,
 * which carries the CNI result).
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
}

/**
 * Creates a logger writing lines at or above `level` to `file` (appended) or stderr.
 * Write failures are ignored: a log must never fail a CNI call.
 */
export function createLogger(level: LogLevel = "warning", file?: string): Logger {
  const max = LEVELS[level];
  const enc = new TextEncoder();
  const write = (lvl: LogLevel, msg: string) => {
    if (LEVELS[lvl] > max) return;
    const line = enc.encode(`${new Date().toISOString()} podplex ${lvl}: ${msg}\n`);
    try {
      if (file) Deno.writeFileSync(file, line, { append: true, create: true, mode: 0o600 });
      else Deno.stderr.writeSync(line);
    } catch {
      // ignored on purpose: see above
    }
  };
  return {
    error: (m) => write("error", m),
    warning: (m) => write("warning", m),
    info: (m) => write("info", m),
    debug: (m) => write("debug", m),
  };
}
