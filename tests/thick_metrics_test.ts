/**
 * The thick daemon's metrics and JSON logs: calls made through the host's runtime and the
 * shim, then `curl` of the metrics endpoint, whose series (README "Metrics") must carry the
 * counts of exactly those calls: requests by verb and code, latency histograms, in flight,
 * attachments by network, host-local pool use, fallbacks to per call, cache reads. With
 * `--log-format json` every line the daemon writes is one JSON object.
 */
import assert from "node:assert/strict";
import { isRoot, run, tempNetns } from "./testutils.ts";
import { thickNode } from "./_thick_rig.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A free loopback TCP port. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** `series{labels} value` lines of a scrape, by their text before the value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

Deno.test({
  name: "thick: curl of the metrics shows the calls just made; --log-format json writes JSON lines",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode({ networks: 2, offset: 140 });
    // The definitions must be older than a second to be kept by the cache (racy-clean rule).
    await new Promise((r) => setTimeout(r, 2100));
    const port = freePort();
    await using d = await node.startDaemon([
      "--metrics-address",
      `127.0.0.1:${port}`,
      "--log-format",
      "json",
    ]);
    await using ns1 = await tempNetns("t");
    await using ns2 = await tempNetns("t");
    const p1 = { netns: ns1.path, id: "ppt-m-1" };
    const p2 = { netns: ns2.path, id: "ppt-m-2" };
    for (
      const [what, o] of [
        ["ADD 1", await node.runtime("ADD", p1)],
        ["ADD 2", await node.runtime("ADD", p2)],
        ["CHECK 1", await node.runtime("CHECK", p1)],
      ] as const
    ) assert.equal(o.code, 0, `${what}: ${o.stdout}`);
    const bad = await node.pod("ADD", { netns: ns1.path, id: "ppt-m-1" }); // already has eth0
    assert.equal(JSON.parse(bad.stdout).code, 105, bad.stdout);
    // A shim of another build: "not served", run per call (VERSION needs no pod).
    const other = `${node.dir}/other-client`;
    await run("sh", `${ROOT}/scripts/build-client.sh`, other, "0ther0build0");
    const v = await new Deno.Command(other, {
      args: ["--", "true"],
      env: { CNI_COMMAND: "VERSION", PODPLEX_SOCKET: node.socket },
    }).output();
    assert(v.success);

    const scrape = async () => {
      const out = await new Deno.Command("curl", {
        args: ["-sf", `http://127.0.0.1:${port}/metrics`],
        stdout: "piped",
      }).output();
      assert(out.success, "curl of the metrics");
      return new TextDecoder().decode(out.stdout);
    };
    const text = await scrape();
    const m = samples(text);
    const want: Record<string, number> = {
      'podplex_requests_total{verb="ADD",code="0"}': 2,
      'podplex_requests_total{verb="CHECK",code="0"}': 1,
      'podplex_requests_total{verb="ADD",code="105"}': 1,
      'podplex_request_duration_seconds_count{verb="ADD"}': 3,
      'podplex_request_duration_seconds_bucket{verb="ADD",le="+Inf"}': 3,
      'podplex_fallbacks_total{reason="build"}': 1,
      "podplex_requests_in_flight": 0,
      "podplex_requests_queued": 0,
      'podplex_attachments{network="default/net-a"}': 2,
      'podplex_attachments{network="default/net-b"}': 2,
      'podplex_ipam_pool_size{network="net-a",range="10.211.140.1-10.211.140.254"}': 253,
      'podplex_ipam_pool_used{network="net-a",range="10.211.140.1-10.211.140.254"}': 2,
    };
    for (const [series, value] of Object.entries(want)) {
      assert.equal(m.get(series), value, `${series} in\n${text}`);
    }
    assert(
      m.get(
        'podplex_build_info{build="' + /build ([0-9a-f]+)/.exec(d.log())![1] + '",protocol="2"}',
      ),
    );
    assert((m.get('podplex_definition_cache_reads_total{result="hit"}') ?? 0) >= 2, text);
    assert((m.get("process_resident_memory_bytes") ?? 0) > 10 << 20);
    assert(/# TYPE podplex_request_duration_seconds histogram/.test(text));

    // DELs: the attachments and leases go, the counters say so.
    for (const p of [p1, p2]) assert.equal((await node.runtime("DEL", p)).code, 0);
    const after = samples(await scrape());
    assert.equal(after.get('podplex_requests_total{verb="DEL",code="0"}'), 2);
    assert.equal(after.get('podplex_attachments{network="default/net-a"}'), undefined);
    // Every line the daemon wrote (its own and the calls') is one JSON object.
    const lines = d.log().trim().split("\n");
    for (const l of lines) JSON.parse(l);
    const adds = lines.map((l) => JSON.parse(l)).filter((o) => o.verb === "ADD" && o.code === 0);
    assert.equal(adds.length, 2);
    assert.deepEqual(Object.keys(adds[0]).sort(), [
      "code",
      "containerId",
      "ifname",
      "level",
      "ms",
      "msg",
      "pod",
      "time",
      "verb",
    ]);
  },
});

Deno.test({
  name: "per call, logFormat json writes the meta-plugin's lines as JSON with the call's fields",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode({
      networks: 1,
      offset: 150,
      conf: { logFormat: "json", logLevel: "debug" },
    });
    await using ns = await tempNetns("t");
    const env = { PODPLEX_SOCKET: `${node.dir}/none.sock` }; // no daemon: per call
    const add = await node.pod("ADD", { netns: ns.path, id: "ppt-json-1", name: "web", env });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const lines = add.stderr.trim().split("\n").map((l) => JSON.parse(l));
    assert(lines.length >= 2, add.stderr);
    for (const l of lines) {
      assert.equal(l.verb, "ADD");
      assert.equal(l.containerId, "ppt-json-1");
      assert.equal(l.pod, "default/web");
      assert.equal(l.level, "debug");
    }
    assert(lines.some((l) => /^Plan: default\/net-a@eth0$/.test(l.msg)), add.stderr);
    const del = await node.pod("DEL", { netns: ns.path, id: "ppt-json-1", name: "web", env });
    assert.equal(del.code, 0, del.stdout);
  },
});
