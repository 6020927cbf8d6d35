/**
 * The daemon's `--dhcp-*` flags, read into the dhcp controller's settings
 * (controllers/dhcp/keeper_server.ts). Durations as Go writes them (`500ms`, `10s`, `2m`);
 * defaults as the reference `dhcp daemon`: `--dhcp-socket PATH` (default: `dhcp.sock` beside
 * the daemon's socket, so `/run/podplex/dhcp.sock`), `--dhcp-state-dir DIR`
 * (`/var/lib/cni/podplex/dhcp`), `--dhcp-timeout` (10s), `--dhcp-resend-max` (62s),
 * `--dhcp-resend-timeout` (208s).
 *
 * @module
 */
import type { KeeperSettings } from "../../controllers/dhcp/keeper_server.ts";

/** Where lease records live unless `--dhcp-state-dir` says. */
export const DEFAULT_STATE_DIR = "/var/lib/cni/podplex/dhcp";

/**
 * A Go-style duration (`1h2m3.5s`, `250ms`) in milliseconds.
 *
 * @throws {Error} naming the text when it is not one
 */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let i = 0;
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) break;
    total += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  if (!text || i !== text.length) throw new Error(`Invalid duration "${text}" (e.g. 10s, 500ms)`);
  return total;
}

/**
 * Reads the `--dhcp-*` flags (`--flag value` or `--flag=value`).
 *
 * @param serveSocket the daemon's own socket: the keeper's default lives beside it
 * @throws {Error} naming an unknown flag or a bad value
 */
export function parseKeeperFlags(argv: string[], serveSocket: string): KeeperSettings {
  const dir = serveSocket.includes("/") ? serveSocket.slice(0, serveSocket.lastIndexOf("/")) : ".";
  const flags: KeeperSettings = {
    socket: `${dir || ""}/dhcp.sock`,
    stateDir: DEFAULT_STATE_DIR,
    timeoutMs: 10_000,
    resendMaxMs: 62_000,
    resendTimeoutMs: 208_000,
  };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].split(/=(.*)/s, 2) as [string, string | undefined];
    if (value === undefined) value = argv[++i];
    if (value === undefined || value === "") throw new Error(`Flag "${name}" needs a value`);
    if (name === "--dhcp-socket") flags.socket = value;
    else if (name === "--dhcp-state-dir") flags.stateDir = value;
    else if (name === "--dhcp-timeout") flags.timeoutMs = parseDuration(value);
    else if (name === "--dhcp-resend-max") flags.resendMaxMs = parseDuration(value);
    else if (name === "--dhcp-resend-timeout") flags.resendTimeoutMs = parseDuration(value);
    else throw new Error(`Unknown flag "${name}"`);
  }
  return flags;
}
