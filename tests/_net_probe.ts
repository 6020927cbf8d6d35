/**
 * Probes between the tests' own namespaces, in IPv4 or IPv6 by the address: the source a UDP
 * datagram arrives with (is it translated?), and a TCP connection (python3 on both ends).
 *
 * @module
 */
import { run } from "./testutils.ts";

const RECEIVER = `import socket, sys
v6 = ":" in sys.argv[2]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("::" if v6 else "0.0.0.0", int(sys.argv[1])))
s.settimeout(5)
print("ready", flush=True)
try:
    data, peer = s.recvfrom(64)
    print(peer[0], flush=True)
except socket.timeout:
    print("timeout", flush=True)`;
const SENDER = `import socket, sys, time
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"ppf", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)`;

/**
 * The source address a UDP datagram from netns `fromNs` to `toIp` (IPv4 or IPv6) has when it
 * arrives in netns `toNs` (a python3 receiver there prints its peer; bounded by 5 s).
 */
export async function sourceSeen(fromNs: string, toNs: string, toIp: string): Promise<string> {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const recv = new Deno.Command("ip", {
    args: ["netns", "exec", toNs, "python3", "-c", RECEIVER, port, toIp],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = recv.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const first = await lines.read();
    if (first.value?.trim() !== "ready") throw new Error(`receiver: ${first.value}`);
    await run("ip", "netns", "exec", fromNs, "python3", "-c", SENDER, toIp, port);
    let text = "";
    for (;;) {
      const r = await lines.read();
      if (r.done) break;
      text += r.value;
    }
    return text.trim();
  } finally {
    await recv.status;
    await recv.stderr.cancel().catch(() => {});
  }
}

/** A TCP server in `toNs` on `ip` answers one connection from `fromNs`; what the client read. */
const SERVER = `import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(5)
print("ready", flush=True)
try:
    c, peer = s.accept()
    c.sendall(("hello " + peer[0]).encode())
    c.close()
except socket.timeout:
    pass`;
const CLIENT = `import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(s.recv(128).decode())`;

export async function tcp(from: { ns: string }, to: { ns: string }, ip: string): Promise<string> {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const srv = new Deno.Command("ip", {
    args: ["netns", "exec", to.ns, "python3", "-c", SERVER, ip, port],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = srv.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const first = await lines.read();
    if (first.value?.trim() !== "ready") throw new Error(`TCP server on ${ip}: ${first.value}`);
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", from.ns, "python3", "-c", CLIENT, ip, port],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return out.success ? dec.decode(out.stdout).trim() : `failed: ${dec.decode(out.stderr)}`;
  } finally {
    await lines.cancel().catch(() => {});
    await srv.stderr.cancel().catch(() => {});
    await srv.status;
  }
}
