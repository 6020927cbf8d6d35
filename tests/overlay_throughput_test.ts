/**
 * VXLAN, host-gw and IPv6 VXLAN throughput between pods on two nodes against the underlay
 * (tests/_overlay_throughput.ts), printed as `overlay figure: ...`; the bench measures the
 * same for longer.
 *
 * CI: 1 s each. PODPLEX_LONG=1: 5 s each, three times, the median reported.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { formatThroughput, overlayThroughput } from "./_overlay_throughput.ts";
import { isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const LONG = Deno.env.get("PODPLEX_LONG") === "1";

Deno.test({
  name: "cluster network: VXLAN, host-gw and IPv6 VXLAN throughput between pods on two nodes, " +
    "against the underlay",
  ignore,
  async fn() {
    const t = await overlayThroughput(LONG ? 5 : 1, LONG ? 3 : 1);
    for (const p of [t.vxlan, t.hostGw, t.vxlan6]) assert.ok(p.pods > 0 && p.underlay > 0);
    console.log(formatThroughput(t));
  },
});
