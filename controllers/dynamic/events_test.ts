import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { eventText, podEvent } from "./events.ts";

const result = { cniVersion: "1.1.0", ips: [{ address: "10.163.1.2/24", interface: 0 }] };

Deno.test("eventText() words the changes as Multus and its controller do", () => {
  assert.deepEqual(
    eventText({ kind: "add", network: "default/net-b", ifname: "data1", result } as never),
    {
      reason: "AddedInterface",
      type: "Normal",
      message: "Add data1 [10.163.1.2/24] from default/net-b",
    },
  );
  assert.deepEqual(eventText({ kind: "remove", network: "default/net-b", ifname: "data1" }), {
    reason: "RemovedInterface",
    type: "Normal",
    message: "Remove data1 from default/net-b",
  });
  const error = new CniError(100, 'Network "default/nope" not found');
  assert.deepEqual(eventText({ kind: "add", network: "default/nope", ifname: "net1", error }), {
    reason: "FailedAddingInterface",
    type: "Warning",
    message: 'Cannot add net1 from default/nope: Network "default/nope" not found',
  });
  assert.equal(
    eventText({ kind: "remove", network: "default/b", ifname: "net2", error }).reason,
    "FailedRemovingInterface",
  );
  assert.match(eventText(new CniError(7, "bad annotation")).message, /bad annotation/);
});

Deno.test("podEvent() is a core/v1 Event about the pod, its message within the API's 1 KiB", () => {
  const at = new Date("2026-12-07T06:00:00.123Z");
  const long = new CniError(7, "x".repeat(2000));
  const ev = podEvent({ namespace: "ns1", name: "web", uid: "u1" }, long, "node-1", at);
  assert.equal(ev.kind, "Event");
  assert.deepEqual(ev.metadata, { generateName: "web.", namespace: "ns1" });
  assert.deepEqual(ev.involvedObject, {
    apiVersion: "v1",
    kind: "Pod",
    namespace: "ns1",
    name: "web",
    uid: "u1",
  });
  assert.equal(ev.firstTimestamp, "2026-12-07T06:00:00Z");
  assert.equal(String(ev.message).length, 1024);
  assert.deepEqual(ev.source, { component: "podplex", host: "node-1" });
});
