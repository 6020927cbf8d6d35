import assert from "node:assert/strict";
import { parseEndpoint } from "./_http.ts";

Deno.test("parseEndpoint() reads http, https, bare host:port and IPv6 endpoints", () => {
  assert.deepEqual(parseEndpoint("http://127.0.0.1:23790"), {
    url: "http://127.0.0.1:23790",
    hostname: "127.0.0.1",
    port: 23790,
    tls: false,
  });
  assert.equal(parseEndpoint("https://etcd.example:2379/").tls, true);
  assert.equal(parseEndpoint("10.0.0.1:1234").port, 1234);
  assert.equal(parseEndpoint("etcd").port, 2379);
  assert.equal(parseEndpoint("https://[fd03::1]:2379").hostname, "fd03::1");
});

Deno.test("parseEndpoint() refuses other schemes and junk, naming the endpoint", () => {
  assert.throws(() => parseEndpoint("unix:///run/etcd.sock"), /Invalid etcd endpoint "unix/);
  assert.throws(() => parseEndpoint("http://a b"), /Invalid etcd endpoint/);
  assert.throws(() => parseEndpoint("http://h:99999"), /bad port/);
});
