import assert from "node:assert/strict";
import { parseDuration, parseKeeperFlags } from "./dhcp_flags.ts";

Deno.test("parseKeeperFlags() reads the --dhcp-* flags with Go durations", () => {
  const f = parseKeeperFlags(
    ["--dhcp-timeout", "1.5s", "--dhcp-resend-timeout=2m", "--dhcp-state-dir", "/tmp/l"],
    "/run/x/podplex.sock",
  );
  assert.equal(f.socket, "/run/x/dhcp.sock");
  assert.equal(f.timeoutMs, 1500);
  assert.equal(f.resendTimeoutMs, 120_000);
  assert.equal(f.resendMaxMs, 62_000);
  assert.equal(f.stateDir, "/tmp/l");
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.throws(() => parseDuration("10"), /Invalid duration "10"/);
  assert.throws(() => parseKeeperFlags(["--dhcp-nope", "1"], "/s"), /Unknown flag "--dhcp-nope"/);
  assert.throws(() => parseKeeperFlags(["--dhcp-timeout"], "/s"), /needs a value/);
});
