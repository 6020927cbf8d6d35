import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { podDevices, withDeviceId } from "./device_id.ts";

const FIXTURE = Deno.readTextFileSync(
  new URL("./testdata/kubelet_internal_checkpoint.json", import.meta.url),
);
const POD = "6f1f7a2e-3c41-4b8e-9d2a-0c5e7b9a1d11";

Deno.test("podDevices() reads a kubelet 1.20+ checkpoint: the pod's devices by resource, NUMA order", () => {
  const d = podDevices(FIXTURE, POD);
  assert.deepEqual(d.get("intel.com/intel_sriov_netdevice"), [
    "0000:03:02.1", // NUMA 0 of container app
    "0000:86:02.3", // NUMA 1 of container app
    "0000:03:02.5", // container sidecar
  ]);
  assert.deepEqual(d.get("nvidia.com/gpu"), ["GPU-8a1c"]);
  assert.deepEqual(podDevices(FIXTURE, "no-such-pod").size, 0);
});

Deno.test("podDevices() reads a v1 checkpoint (DeviceIDs as a list) and refuses non-checkpoints", () => {
  const v1 = JSON.stringify({
    Data: {
      PodDeviceEntries: [{
        PodUID: "u1",
        ContainerName: "c",
        ResourceName: "r",
        DeviceIDs: ["a", "b"],
      }],
      RegisteredDevices: { r: ["a", "b"] },
    },
    Checksum: 1,
  });
  assert.deepEqual(podDevices(v1, "u1").get("r"), ["a", "b"]);
  assert.throws(() => podDevices("{not json", "u1"), (e) => e instanceof CniError && e.code === 7);
  assert.throws(
    () => podDevices(`{"Data":{"PodDeviceEntries":7}}`, "u1"),
    (e) => e instanceof CniError && e.code === 7 && e.message.includes("PodDeviceEntries"),
  );
});

Deno.test("withDeviceId() sets deviceID and pciBusID in a conf and in every plugin of a list", () => {
  const one = JSON.parse(
    withDeviceId(`{"cniVersion":"1.0.0","name":"s","type":"sriov"}`, "0000:03:02.1"),
  );
  assert.equal(one.deviceID, "0000:03:02.1");
  assert.equal(one.pciBusID, "0000:03:02.1");
  const list = JSON.parse(withDeviceId(
    `{"cniVersion":"1.0.0","name":"s","plugins":[{"type":"sriov"},{"type":"tuning"}]}`,
    "0000:03:02.5",
  ));
  assert.deepEqual(list.plugins.map((p: { deviceID: string }) => p.deviceID), [
    "0000:03:02.5",
    "0000:03:02.5",
  ]);
  assert.equal(list.deviceID, undefined);
});
