/**
 * The listener and prober of the network-policy netns tests, run inside one pod's netns
 * (`ip netns exec ppe-x-a deno run --unstable-net tests/_policy_agent.ts`): TCP listeners on
 * 80 and 81 that accept and close, UDP listeners on 80 and 81 that echo. Each stdin line is a
 * JSON list of probes `[ip, port, "TCP"|"UDP"]`; the answer is one stdout line, a JSON list
 * of booleans (connected / echoed within the timeout). "ready" is printed once listening.
 *
 * @module
 */
const TIMEOUT_MS = Number(Deno.env.get("PPE_PROBE_TIMEOUT_MS") ?? "800");

for (const port of [80, 81]) {
  const l = Deno.listen({ hostname: "0.0.0.0", port });
  (async () => {
    for await (const c of l) c.close();
  })();
  const u = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  (async () => {
    for (;;) {
      const [data, from] = await u.receive();
      await u.send(data, from).catch(() => {});
    }
  })();
}

function timeout(): Promise<false> {
  return new Promise((r) => setTimeout(() => r(false), TIMEOUT_MS));
}

async function probeTcp(ip: string, port: number): Promise<boolean> {
  const c = Deno.connect({ hostname: ip, port });
  // A dropped SYN leaves the connect pending; a late success is closed.
  c.then((s) => s.close(), () => {});
  return await Promise.race([c.then(() => true, () => false), timeout()]);
}

async function probeUdp(ip: string, port: number): Promise<boolean> {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  try {
    await s.send(new TextEncoder().encode("ppe"), { transport: "udp", hostname: ip, port });
    return await Promise.race([s.receive().then(() => true, () => false), timeout()]);
  } catch {
    return false;
  } finally {
    s.close();
  }
}

console.log("ready");
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buf = "";
for await (const chunk of lines) {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const probes = JSON.parse(buf.slice(0, nl)) as Array<[string, number, string]>;
    buf = buf.slice(nl + 1);
    const out = await Promise.all(
      probes.map(([ip, port, proto]) => proto === "TCP" ? probeTcp(ip, port) : probeUdp(ip, port)),
    );
    console.log(JSON.stringify(out));
  }
}
Deno.exit(0);
