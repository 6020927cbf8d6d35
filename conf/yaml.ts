/**
 * YAML parsing, loaded only when a YAML file is actually read.
 *
 * The import is a literal dynamic `import("yaml")`, so the bundler inlines the package into a
 * chunk of its own that only a YAML read loads: nothing is resolved from a registry or a Deno
 * cache at run time. The bundle is built for the package's ESM ("browser"/default) export:
 * its "node" export is CommonJS, and inlining that pulls Deno's Node compatibility layer
 * (`node:module`, ~27 ms) into the start of EVERY CNI call (`scripts/artifact.sh`).
 *
 * @module
 */

let loaded: Promise<{ parse: (text: string) => unknown }> | undefined;

/**
 * Parses YAML text (a NetworkAttachmentDefinition, a kubeconfig, a pod manifest).
 *
 * @throws {Error} the parser's error for malformed YAML
 */
export async function parseYaml(text: string): Promise<unknown> {
  loaded ??= import("yaml");
  return (await loaded).parse(text);
}

/**
 * A YAML parser error as one line: its description and position, without the excerpt of
 * the source the parser appends (for a kubeconfig, that excerpt is the line holding the
 * token or the key).
 *
 * @example
 * ```ts
 * yamlErrorSummary(err); // "Nested mappings are not allowed in compact mappings at line 5, column 10"
 * ```
 */
export function yamlErrorSummary(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split("\n")[0].replace(/:\s*$/, "");
}
