import assert from "node:assert/strict";
import fc from "fast-check";
import { CniError } from "../conf/errors.ts";
import type { NetworkSelection } from "./annotations.ts";
import {
  type CurrentAttachment,
  diffAttachments,
  isEmptyDiff,
  pinSelections,
  selectionJson,
  selectionNetwork,
  withoutSelections,
} from "./hotplug_diff.ts";
import { parseNetworksAnnotation } from "./annotations.ts";

const cluster: CurrentAttachment = { network: "cluster", ifname: "eth0", fixed: true };
const att = (network: string, ifname: string, fixed = false): CurrentAttachment => ({
  network: network.includes("/") ? network : `default/${network}`,
  ifname,
  fixed,
});
const el = (name: string, iface?: string): NetworkSelection => {
  const s: NetworkSelection = { namespace: "default", name };
  if (iface !== undefined) s.interface = iface;
  return s;
};
const adds = (d: ReturnType<typeof diffAttachments>) =>
  d.add.map((a) => `${selectionNetwork(a.selection)}@${a.ifname}`);
const removes = (d: ReturnType<typeof diffAttachments>) =>
  d.remove.map((a) => `${a.network}@${a.ifname}`);

Deno.test("diffAttachments() adds a named element and keeps what matches", () => {
  const d = diffAttachments([cluster, att("net-a", "net1")], [el("net-a"), el("net-b", "data1")]);
  assert.deepEqual(adds(d), ["default/net-b@data1"]);
  assert.deepEqual(d.remove, []);
});

Deno.test("diffAttachments() removes an element that is gone, never the cluster network", () => {
  const d = diffAttachments([cluster, att("net-a", "net1"), att("net-b", "data1")], [el("net-a")]);
  assert.deepEqual(removes(d), ["default/net-b@data1"]);
  assert.deepEqual(d.add, []);
  const all = diffAttachments([cluster, att("net-a", "net1")], []);
  assert.deepEqual(removes(all), ["default/net-a@net1"]);
});

Deno.test("diffAttachments() never removes defaultNetworks, nor matches an element to them", () => {
  const d = diffAttachments([cluster, att("kube-system/mon", "net1", true)], [el("mon")]);
  assert.deepEqual(d.remove, []);
  // default/mon is not kube-system/mon; and even the same network is attached a second time.
  assert.deepEqual(adds(d), ["default/mon@net2"]);
  const same = diffAttachments([cluster, att("default/mon", "net1", true)], [el("mon")]);
  assert.deepEqual(adds(same), ["default/mon@net2"]);
});

Deno.test("diffAttachments() matches an unnamed element to the one attachment of its network", () => {
  // The attachment was made as net-b@data1; the element now names no interface: same one.
  const d = diffAttachments([cluster, att("net-b", "data1")], [el("net-b")]);
  assert(isEmptyDiff(d));
  // And an unnamed element that was plugged in as net1 is unplugged when it goes (#63).
  const gone = diffAttachments([cluster, att("net-b", "net1")], []);
  assert.deepEqual(removes(gone), ["default/net-b@net1"]);
});

Deno.test("diffAttachments() pairs several unnamed elements of one network in order", () => {
  const cur = [cluster, att("net-a", "net1"), att("net-a", "net2"), att("net-a", "net3")];
  const d = diffAttachments(cur, [el("net-a"), el("net-a")]);
  assert.deepEqual(removes(d), ["default/net-a@net3"]);
  assert.deepEqual(d.add, []);
});

Deno.test("diffAttachments() prefers the exact named match over an unnamed one", () => {
  const cur = [cluster, att("net-a", "net1"), att("net-a", "fast0")];
  const d = diffAttachments(cur, [el("net-a"), el("net-a", "fast0")]);
  assert(isEmptyDiff(d));
  // The unnamed element listed first must not take fast0 from the named one.
  const d2 = diffAttachments([cluster, att("net-a", "fast0")], [el("net-a"), el("net-a", "fast0")]);
  assert.deepEqual(adds(d2), ["default/net-a@net1"]);
});

Deno.test("diffAttachments() gives a new unnamed element the lowest free netN", () => {
  const cur = [cluster, att("net-a", "net1"), att("net-c", "net3")];
  const d = diffAttachments(cur, [el("net-a"), el("net-c"), el("net-b"), el("net-d")]);
  assert.deepEqual(adds(d), ["default/net-b@net2", "default/net-d@net4"]);
  // A name another element requests is not given away.
  const r = diffAttachments([cluster], [el("net-b"), el("net-c", "net1")]);
  assert.deepEqual(adds(r), ["default/net-b@net2", "default/net-c@net1"]);
  // Nor the name of an attachment removed by the same change (its DEL may fail).
  const m = diffAttachments([cluster, att("net-a", "net1")], [el("net-b")]);
  assert.deepEqual(removes(m), ["default/net-a@net1"]);
  assert.deepEqual(adds(m), ["default/net-b@net2"]);
});

Deno.test("diffAttachments() lets a named element take the interface of a removed attachment", () => {
  const d = diffAttachments([cluster, att("net-a", "data1")], [el("net-b", "data1")]);
  assert.deepEqual(removes(d), ["default/net-a@data1"]);
  assert.deepEqual(adds(d), ["default/net-b@data1"]);
});

Deno.test("diffAttachments() refuses an element whose interface a kept attachment holds", () => {
  const d = diffAttachments([cluster, att("net-a", "net1")], [el("net-a"), el("net-b", "eth0")]);
  assert.deepEqual(d.add, []);
  assert.deepEqual(d.refused.map((r) => r.reason), [
    'Interface "eth0" is held by network "cluster"',
  ]);
  const k = diffAttachments([cluster, att("net-a", "net1")], [el("net-a"), el("net-b", "net1")]);
  assert.deepEqual(k.refused.length, 1);
  assert(!isEmptyDiff(k));
});

Deno.test("diffAttachments() refuses two elements asking for one interface, naming both", () => {
  assert.throws(
    () => diffAttachments([cluster], [el("net-a", "x1"), el("net-b", "x1")]),
    (e: unknown) =>
      e instanceof CniError && e.code === 7 && e.message.includes('"default/net-a"') &&
      e.message.includes('"default/net-b"'),
  );
});

Deno.test("diffAttachments() removes last-made first", () => {
  const cur = [cluster, att("a", "net1"), att("b", "net2"), att("c", "net3")];
  assert.deepEqual(removes(diffAttachments(cur, [])), [
    "default/c@net3",
    "default/b@net2",
    "default/a@net1",
  ]);
});

/** What the pod has after a diff is applied (removes, then adds, none failing). */
function apply(cur: CurrentAttachment[], wanted: NetworkSelection[]): CurrentAttachment[] {
  const d = diffAttachments(cur, wanted);
  const gone = new Set(d.remove);
  return [
    ...cur.filter((a) => !gone.has(a)),
    ...d.add.map((a) => att(selectionNetwork(a.selection), a.ifname)),
  ];
}

Deno.test("diffAttachments() properties: applied, the next diff is empty; names never move", () => {
  const names = fc.constantFrom("a", "b", "c");
  const iface = fc.option(fc.constantFrom("net1", "net2", "data1", "data2", "eth0"), {
    nil: undefined,
  });
  const element = fc.record({ name: names, iface }).map((e) => el(e.name, e.iface));
  const annotation = fc.array(element, { maxLength: 5 });
  fc.assert(
    fc.property(fc.array(annotation, { minLength: 1, maxLength: 6 }), (steps) => {
      let pod: CurrentAttachment[] = [cluster, att("kube-system/mon", "net9", true)];
      for (const wanted of steps) {
        let before;
        try {
          before = new Map(pod.map((a) => [a, a.ifname]));
          pod = apply(pod, wanted);
        } catch (e) {
          if (e instanceof CniError) continue; // duplicate interfaces: nothing applied
          throw e;
        }
        // Kept attachments kept their names; all names distinct; fixed ones all there.
        for (const a of pod) if (before.has(a)) assert.deepEqual(a.ifname, before.get(a));
        assert.deepEqual(new Set(pod.map((a) => a.ifname)).size, pod.length);
        assert(pod.includes(cluster) && pod.some((a) => a.network === "kube-system/mon"));
        // Everything not refused is there: the diff of the result is only the refusals.
        const again = diffAttachments(pod, wanted);
        assert.deepEqual(again.remove, []);
        assert.deepEqual(again.add, []);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("pinSelections() names each element's interface as the diff matches it", () => {
  const cur = [cluster, att("net-a", "net1"), att("net-a", "fast0"), att("net-b", "net2")];
  const pinned = pinSelections(cur, [el("net-a"), el("net-a", "fast0"), el("net-b"), el("net-c")]);
  assert.deepEqual(pinned.map((s) => `${s.name}@${s.interface}`), [
    "net-a@net1",
    "net-a@fast0",
    "net-b@net2",
    "net-c@undefined",
  ]);
  // Pinned, the diff is still empty for what exists.
  assert.deepEqual(diffAttachments(cur, pinned.slice(0, 3)).add, []);
});

Deno.test("withoutSelections() takes out one element, refusing a missing or ambiguous one", () => {
  const pinned = [el("net-a", "net1"), el("net-a", "fast0"), el("net-b", "net2")];
  assert.deepEqual(withoutSelections(pinned, [el("net-b")]).map((s) => s.interface), [
    "net1",
    "fast0",
  ]);
  assert.deepEqual(withoutSelections(pinned, [el("net-a", "fast0")]).length, 2);
  assert.throws(() => withoutSelections(pinned, [el("net-a")]), /name the interface/);
  assert.throws(() => withoutSelections(pinned, [el("net-c")]), /no network "default\/net-c"/);
});

Deno.test("selectionJson() writes what parseNetworksAnnotation() reads back", () => {
  const sel: NetworkSelection = {
    namespace: "ns1",
    name: "n",
    interface: "x0",
    ips: ["10.163.0.5/24"],
    mac: "02:00:00:00:00:01",
    cniArgs: { a: 1 },
    deviceId: "0000:00:01.0",
  };
  const back = parseNetworksAnnotation(JSON.stringify([selectionJson(sel)]), "other");
  assert.deepEqual(back, [sel]);
});
