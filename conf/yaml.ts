/**
 * YAML parsing, loaded only when a YAML file is actually read.
 *
 * The `yaml` package ships CommonJS for Deno's "node" condition; bundled, it would pull
 * Deno's Node compatibility layer (`node:module`, ~27 ms) into the start of EVERY CNI call.
 * So it stays out of the bundle (`deno task build` marks it external) and is imported
 * from the npm cache the first time a YAML file is parsed.
 *
 * @module
 */

/** The pinned package; keep in step with the `yaml` entry of deno.json's imports. */
const YAML_PACKAGE = "npm:yaml@2.9.1";

let loaded: Promise<{ parse: (text: string) => unknown }> | undefined;

/**
 * Parses YAML text (a NetworkAttachmentDefinition, a kubeconfig, a pod manifest).
 *
 * @throws {Error} the parser's error for malformed YAML
 */
export async function parseYaml(text: string): Promise<unknown> {
  loaded ??= import(YAML_PACKAGE);
  return (await loaded).parse(text);
}
