/**
 * Test helpers of the built-in delegates' unit tests: calling a delegate through the real
 * adapter, a throwaway rig (host netns, pod netns, IPAM data dir) removed even on failure, and
 * small assertions. Not part of podplex; imported by `*_test.ts` only.
 *
 * @module
 */
import { CniError } from "../../conf/errors.ts";
import { builtinPlugin } from "../runner/builtin.ts";
import { createRegistry } from "../runner/registry.ts";
import type { BuiltinDelegate, PluginRequest } from "../types.ts";
import type { HostOptions } from "./link_common.ts";
import { run, tempDir, tempNetns, type TestNetns } from "../../tests/testutils.ts";

// deno-lint-ignore no-explicit-any
export type Any = any;

/** Calls a delegate with one verb, a conf object and CNI env fields (CNI_PATH preset). */
export type Invoke = (
  command: PluginRequest["command"],
  conf: object,
  env: Partial<PluginRequest["env"]>,
) => Promise<Any>;

/** Invokes a built-in through the real adapter; IPAM is the reference host-local, exec'd. */
export function invoker(d: BuiltinDelegate<Any>): Invoke {
  const registry = createRegistry({ builtins: {} });
  const plugin = builtinPlugin(d, () => registry);
  return (command, conf, env) =>
    plugin.invoke({
      command,
      conf: new TextEncoder().encode(JSON.stringify(conf)),
      env: { path: ["/usr/lib/cni"], ...env },
    });
}

/** Whether a path exists. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** A predicate for `assert.throws`/`assert.rejects`: a CniError with this code. */
export const isCode = (code: number) => (e: unknown): boolean =>
  e instanceof CniError && e.code === code;

/** Polls `get` until it returns `want` (deep-equal) or ~3 s passed; returns the last value. */
export async function eventually<T>(get: () => Promise<T>, want: T): Promise<T> {
  let last = await get();
  for (let i = 0; i < 60 && JSON.stringify(last) !== JSON.stringify(want); i++) {
    await new Promise((r) => setTimeout(r, 50));
    last = await get();
  }
  return last;
}

/** Adds a veth pair `name`/`peer` in `ns` (a master link: this kernel has no dummy). */
export async function addVethPair(ns: string, name: string, peer: string, mtu?: number) {
  const m = mtu === undefined ? [] : ["mtu", String(mtu)];
  await run("ip", "-n", ns, "link", "add", name, ...m, "type", "veth", "peer", "name", peer);
}

/** A throwaway host netns, pod netns and IPAM data dir, with a delegate whose host is `host`. */
export interface Rig extends AsyncDisposable {
  host: TestNetns;
  pod: TestNetns;
  /** The host-local `dataDir`. */
  data: string;
  call: Invoke;
}

/**
 * Builds a {@linkcode Rig}: `make` gets the host netns as `hostNs`; `prepareHost` runs on the
 * fresh host netns (e.g. to add a master link). Everything is removed on dispose, and on a
 * failure while building.
 */
export async function rig(
  make: (opts: HostOptions) => BuiltinDelegate<Any>,
  prepareHost?: (host: TestNetns) => Promise<void>,
): Promise<Rig> {
  await using stack = new AsyncDisposableStack();
  const host = stack.use(await tempNetns("h"));
  await prepareHost?.(host);
  const pod = stack.use(await tempNetns("c"));
  const data = stack.use(await tempDir());
  const call = invoker(make({ hostNs: host.path }));
  const owned = stack.move();
  return { host, pod, data: data.path, call, [Symbol.asyncDispose]: () => owned.disposeAsync() };
}
