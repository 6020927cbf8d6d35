/**
 * iperf3 between the test's own namespaces (one TCP stream, bounded), and a link's transmit
 * counter: the throughput figures of the cluster network's tests.
 *
 * @module
 */
import { run } from "./testutils.ts";

/** One transfer's result. */
export interface Iperf {
  bps: number;
  bytes: number;
  remote: string;
}

/** One bounded iperf3 transfer of `seconds` from netns `client` to `ip` served in `server`. */
export async function iperf(
  server: string,
  client: string,
  ip: string,
  seconds: number,
): Promise<Iperf> {
  const port = String(25201 + Math.floor(Math.random() * 1000));
  const srv = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${server}`, "iperf3", "-s", "-1", "-J", "-p", port],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    let out = "";
    // Until the server listens.
    for (const end = Date.now() + 15_000; Date.now() < end;) {
      const c = await new Deno.Command("nsenter", {
        args: [
          `--net=/run/netns/${client}`,
          "iperf3",
          "-c",
          ip,
          "-p",
          port,
          "-t",
          String(seconds),
          "-J",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      out = new TextDecoder().decode(c.stdout);
      // With -J, iperf3 exits 0 even when it could not connect: the JSON's "error" says so.
      const error = (() => {
        try {
          return JSON.parse(out).error as string | undefined;
        } catch {
          return "not JSON";
        }
      })();
      if (c.success && !error) break;
      const why = out + new TextDecoder().decode(c.stderr);
      if (!/refused/.test(why)) throw new Error(`iperf3 client: ${why}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const j = JSON.parse(out);
    // Bounded: a server that never saw the client must not hang the test.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 10_000));
    const done = await Promise.race([srv.output(), late]);
    clearTimeout(timer);
    if (!done) throw new Error(`iperf3 server on ${server} did not finish; client said ${out}`);
    const s = JSON.parse(new TextDecoder().decode(done.stdout));
    return {
      bps: j.end.sum_received.bits_per_second,
      bytes: j.end.sum_received.bytes,
      remote: s.start.connected[0].remote_host,
    };
  } finally {
    try {
      srv.kill("SIGKILL");
    } catch { /* exited */ }
  }
}

/** The bytes `dev` in netns `ns` has sent. */
export async function txBytes(ns: string, dev: string): Promise<number> {
  const j = JSON.parse(await run("ip", "-j", "-s", "-n", ns, "link", "show", dev));
  return j[0].stats64.tx.bytes;
}
