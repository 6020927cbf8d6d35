/**
 * `podplex gc`: the runtime's GC (CNI 1.1) with the attachments still valid = every pod in
 * the state dir whose netns still exists; the meta-plugin DELs the rest and forwards GC to
 * its networks' plugins (host-local then frees leases nobody holds). Standalone records of
 * pods whose netns is gone are dropped too.
 *
 * @module
 */
import type { Attachment } from "../conf/types.ts";
import { createStateStore } from "../meta/state.ts";
import { podRecords } from "./_pods.ts";
import { cniPath, CONFIG_HELP, pathExists, type StandaloneConfig } from "./_config.ts";
import { guard, noArgCommand } from "./_args.ts";
import { out, printJson } from "./_output.ts";
import { runVerb } from "./_local_runtime.ts";
import type { Root } from "./root.ts";

const HELP = `usage: podplex gc [flags]

Runs CNI GC over the podplex conf: attachments of pods whose netns still exists are kept,
every other attachment is deleted and its addresses released; then each network's plugins
get GC with that list (host-local frees leases of containers not in it).

Flags:
${CONFIG_HELP}
  --json             JSON output
`;

/** What `gc --json` prints. */
export interface GcReport {
  kept: Attachment[];
  removed: Attachment[];
}

/**
 * Sorts the state dir's attachments by whether their netns still exists, runs GC with the
 * kept ones as valid, and drops the standalone records of pods whose netns is gone.
 */
export async function collectGarbage(root: Root, cfg: StandaloneConfig): Promise<GcReport> {
  const store = createStateStore(cfg.conf.stateDir, { warn: () => {} });
  const report: GcReport = { kept: [], removed: [] };
  for (const s of await store.list()) {
    const a = { containerID: s.containerId, ifname: s.ifname };
    (s.netns && await pathExists(s.netns) ? report.kept : report.removed).push(a);
  }
  await runVerb(root, cfg, "GC", { env: { path: cniPath() }, validAttachments: report.kept });
  const records = podRecords(cfg.conf.stateDir);
  for (const r of await records.list()) {
    if (!(await pathExists(r.netns))) await records.remove(r.containerId);
  }
  return report;
}

/** Entry of `podplex gc`. */
export function main(argv: string[], root: Root): Promise<number> {
  return guard("podplex gc", async () => {
    const cmd = await noArgCommand(argv, "gc", HELP);
    if (!cmd) return 0;
    const report = await collectGarbage(root, cmd.cfg);
    if (cmd.json) printJson(report);
    else {
      for (const a of report.removed) out(`released ${a.containerID} (${a.ifname}): netns gone\n`);
      out(`gc: kept ${report.kept.length} attachment(s), released ${report.removed.length}\n`);
    }
    return 0;
  });
}
