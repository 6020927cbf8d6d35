import { deepStrictEqual as assertEquals, match, rejects } from "node:assert/strict";
import fc from "fast-check";
import { CniError } from "./errors.ts";
import {
  injectConf,
  loadConfFile,
  parseConfList,
  parseConfOrList,
  parseNetConf,
  resolveVersion,
  validateNetworkName,
} from "./netconf.ts";
import { tempDir } from "../tests/testutils.ts";

const dec = new TextDecoder();

function errorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error("expected a CniError");
}

const LIST = `{
  "cniVersion": "1.0.0",
  "name": "net1",
  "disableCheck": "True",
  "x-custom": {"keep": [1, 2]},
  "plugins": [
    { "type": "bridge", "bridge": "pp0", "weird":  1.50, "s": "a\\"]}{,b",
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]]} },
    {"type":"tuning","capabilities":{"mac":true,"portMappings":false}}
  ]
}`;

Deno.test("parseConfList() keeps each plugin's exact bytes", () => {
  const list = parseConfList(LIST);
  assertEquals(list.plugins.map((p) => p.type), ["bridge", "tuning"]);
  assertEquals(
    dec.decode(list.plugins[0].bytes),
    `{ "type": "bridge", "bridge": "pp0", "weird":  1.50, "s": "a\\"]}{,b",
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]]} }`,
  );
  assertEquals(
    dec.decode(list.plugins[1].bytes),
    `{"type":"tuning","capabilities":{"mac":true,"portMappings":false}}`,
  );
});

Deno.test("parseConfList() keeps unknown keys and reads string booleans", () => {
  const list = parseConfList(LIST);
  assertEquals(list.raw["x-custom"], { keep: [1, 2] });
  assertEquals(list.plugins[0].conf.weird, 1.5);
  assertEquals(list.disableCheck, true);
  assertEquals(list.disableGC, false);
  assertEquals(list.cniVersion, "1.0.0");
});

Deno.test("parseConfList() byte spans hold for any JSON layout (property)", () => {
  const entry = fc.record({ type: fc.string({ minLength: 1 }), extra: fc.jsonValue() });
  fc.assert(
    fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.boolean(), (ps, pretty) => {
      const text = JSON.stringify({ name: "n", plugins: ps, after: "]" }, null, pretty ? 2 : 0);
      const list = parseConfList(text);
      list.plugins.forEach((p, i) =>
        assertEquals(JSON.parse(dec.decode(p.bytes)), JSON.parse(JSON.stringify(ps[i])))
      );
    }),
  );
});

Deno.test("parseConfList() rejects an empty plugins list with code 7", () => {
  const e = errorOf(() => parseConfList(`{"name":"n","plugins":[]}`));
  assertEquals(e.code, 7);
  match(e.message, /"plugins"/);
});

Deno.test("parseConfList() names a bad field inside a plugin with code 7", () => {
  const e = errorOf(() =>
    parseConfList(`{"name":"n","plugins":[{"type":"a","capabilities":{"x":1}}]}`)
  );
  assertEquals(e.code, 7);
  match(e.message, /"plugins\[0\]\.capabilities\.x" is 1/);
});

Deno.test("parseConfList() rejects a plugin without type with code 7", () => {
  const e = errorOf(() => parseConfList(`{"name":"n","plugins":[{"bridge":"x"}]}`));
  assertEquals(e.code, 7);
  match(e.message, /"plugins\[0\]\.type" is missing/);
});

Deno.test("parseNetConf() decodes non-JSON with code 6", () => {
  assertEquals(errorOf(() => parseNetConf("{nope")).code, 6);
  assertEquals(errorOf(() => parseNetConf("[1]")).code, 6);
});

Deno.test("parseNetConf() requires a valid network name with code 7", () => {
  assertEquals(errorOf(() => parseNetConf(`{"type":"bridge"}`)).code, 7);
  const e = errorOf(() => parseNetConf(`{"name":"bad name","type":"bridge"}`));
  assertEquals(e.code, 7);
  match(e.message, /"bad name"/);
  assertEquals(parseNetConf(`{"type":"bridge"}`, { requireName: false }).conf.type, "bridge");
});

Deno.test("parseNetConf() defaults a missing cniVersion to 0.1.0", () => {
  assertEquals(parseNetConf(`{"name":"n","type":"bridge"}`).cniVersion, "0.1.0");
});

Deno.test("parseNetConf() rejects an unsupported version with code 1", () => {
  assertEquals(errorOf(() => parseNetConf(`{"name":"n","type":"b","cniVersion":"9.9.9"}`)).code, 1);
});

Deno.test("resolveVersion() picks the highest supported of cniVersion and cniVersions", () => {
  assertEquals(resolveVersion("0.4.0", ["1.0.0", "0.3.1"]), "1.0.0");
  assertEquals(resolveVersion("1.1.0", ["1.0.0"]), "1.1.0");
  assertEquals(resolveVersion(undefined, ["2.0.0", "0.4.0"]), "0.4.0");
  assertEquals(resolveVersion("", []), "0.1.0");
  assertEquals(errorOf(() => resolveVersion("9.9.9", ["3.0.0"])).code, 1);
});

Deno.test("validateNetworkName() follows the spec's regex", () => {
  assertEquals(validateNetworkName("a-b_c.1"), "a-b_c.1");
  assertEquals(errorOf(() => validateNetworkName("-a")).code, 7);
  assertEquals(errorOf(() => validateNetworkName("a/b")).code, 7);
  assertEquals(errorOf(() => validateNetworkName("")).code, 7);
});

Deno.test("parseConfOrList() makes a single conf a one-plugin list with its bytes", () => {
  const text = `{"cniVersion":"0.4.0","name":"n","type":"macvlan","master":"eth0"}`;
  const list = parseConfOrList(text);
  assertEquals(list.name, "n");
  assertEquals(list.cniVersion, "0.4.0");
  assertEquals(dec.decode(list.plugins[0].bytes), text);
  assertEquals(parseConfOrList(LIST).plugins.length, 2);
});

Deno.test("loadConfFile() reads .conf, .json and .conflist files", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.conflist`, LIST);
  await Deno.writeTextFile(`${dir.path}/b.conf`, `{"name":"b","type":"bridge"}`);
  await Deno.writeTextFile(`${dir.path}/c.json`, `{"name":"c","type":"bridge","plugins":1}`);
  assertEquals((await loadConfFile(`${dir.path}/a.conflist`)).plugins.length, 2);
  assertEquals((await loadConfFile(`${dir.path}/b.conf`)).name, "b");
  assertEquals((await loadConfFile(`${dir.path}/c.json`)).plugins[0].conf.plugins, 1);
  await rejects(loadConfFile(`${dir.path}/missing.conf`), (e: CniError) => e.code === 5);
  await Deno.writeTextFile(`${dir.path}/d.conflist`, `{"name":"d","type":"bridge"}`);
  await rejects(
    loadConfFile(`${dir.path}/d.conflist`),
    (e: CniError) => e.code === 7 && e.message.includes("d.conflist"),
  );
});

Deno.test("injectConf() sets keys and keeps every other key and value", () => {
  const list = parseConfList(LIST);
  const out = JSON.parse(dec.decode(injectConf(list.plugins[0].bytes, {
    name: "net1",
    cniVersion: "1.0.0",
    prevResult: undefined,
  })));
  assertEquals(out, {
    ...JSON.parse(dec.decode(list.plugins[0].bytes)),
    name: "net1",
    cniVersion: "1.0.0",
  });
  assertEquals("prevResult" in out, false);
});
