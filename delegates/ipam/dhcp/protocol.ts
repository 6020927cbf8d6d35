/**
 * The wire between the `dhcp` delegate (wherever it runs) and the lease keeper in
 * `podplex serve`: one JSON request line, one JSON answer line, one unix-socket connection
 * per call. Both ends are podplex, so JSON costs nothing to agree on.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";

/** What the keeper needs to obtain a lease for an attachment, and to keep it. */
export interface LeaseRequest {
  /** The option 61 text (`containerID/netName/ifName`), the lease's key. */
  clientId: string;
  /** CNI_CONTAINERID of the attachment. */
  containerId: string;
  /** The network's name. */
  netName: string;
  /** CNI_IFNAME of the attachment: the interface the lease is for. */
  ifname: string;
  /** The pod's netns path (absolute). */
  netns: string;
  /** The options every request carries, as [code, hex]. */
  options: [number, string][];
}

/** A call on the keeper. */
export type KeeperRequest =
  | ({ op: "add" } & LeaseRequest)
  | { op: "del"; clientId: string }
  | { op: "check"; clientId: string }
  | { op: "gc"; netName: string; valid: { containerId: string; ifname: string }[] }
  | { op: "status" };

/** The keeper's answer. */
export type KeeperAnswer =
  | { ok: true; address?: string; ack?: string; released?: string[] }
  | { ok: false; code: number; msg: string; details?: string };

/** The answer for a failure. */
export function errorAnswer(e: unknown): KeeperAnswer {
  const err = CniError.wrap(e);
  const out: KeeperAnswer = { ok: false, code: err.code, msg: err.message };
  if (err.details) out.details = err.details;
  return out;
}

/** The longest answer or request accepted (a lease answer is ~1 KiB). */
export const MAX_LINE = 1 << 20;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads one newline-terminated line (or up to EOF). @throws {Error} past MAX_LINE */
export async function readLine(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const buf = new Uint8Array(16384);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    const part = buf.slice(0, n);
    chunks.push(part);
    size += n;
    if (size > MAX_LINE) throw new Error(`A keeper message exceeds ${MAX_LINE} bytes`);
    if (part.includes(10)) break;
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) all.set(c, (off += c.length) - c.length);
  const text = dec.decode(all);
  const nl = text.indexOf("\n");
  return nl >= 0 ? text.slice(0, nl) : text;
}

/** Writes a value as one JSON line. */
export async function writeLine(conn: Deno.Conn, value: unknown): Promise<void> {
  const bytes = enc.encode(JSON.stringify(value) + "\n");
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Nothing answers on the keeper's socket (a daemon is needed). */
export class NoKeeperError extends CniError {
  /** @param socket the path tried */
  constructor(socket: string, cause: unknown) {
    super(
      Code.TryAgainLater,
      `The dhcp IPAM needs the podplex daemon: nothing answers on "${socket}" ` +
        `(start "podplex serve", or list "dhcp" in "preferExternal" to exec the reference ` +
        `dhcp plugin and its daemon)`,
      cause instanceof Error ? cause.message : String(cause),
    );
    this.name = "NoKeeperError";
  }
}

/**
 * Makes one call on the keeper at `socket`.
 *
 * @throws {NoKeeperError} when nothing listens there
 * @throws {CniError} the keeper's error, with its code
 */
export async function callKeeper(socket: string, req: KeeperRequest): Promise<KeeperAnswer> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch (e) {
    throw new NoKeeperError(socket, e);
  }
  try {
    await writeLine(conn, req);
    const line = await readLine(conn);
    if (!line) throw new CniError(Code.TryAgainLater, `The lease keeper on "${socket}" hung up`);
    const answer = JSON.parse(line) as KeeperAnswer;
    if (!answer.ok) throw new CniError(answer.code, answer.msg, answer.details);
    return answer;
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw CniError.wrap(e, Code.TryAgainLater, `The lease keeper on "${socket}" failed`);
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
