/**
 * The node agent's `agent.sock` (delegates/main/overlay/node_state.ts): while the agent runs
 * it listens there, so that a CNI call that can connect knows a daemon keeps the overlay in
 * sync (`agentAlive`).
 *
 * @module
 */
import { agentAlive, agentSocket } from "../../delegates/main/overlay/node_state.ts";

/**
 * Listens on the state dir's socket until closed; each connection is closed at once (it only
 * says "alive"). A stale socket file is replaced.
 *
 * @throws {Error} when another agent answers there
 */
export async function listenAlive(stateDir: string): Promise<{ close(): void }> {
  const path = agentSocket(stateDir);
  if (await agentAlive(stateDir)) {
    throw new Error(`Another node agent answers on "${path}"`);
  }
  await Deno.remove(path).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path });
  const loop = (async () => {
    try {
      for await (const conn of listener) conn.close();
    } catch { /* closed */ }
  })();
  return {
    close() {
      try {
        listener.close();
      } catch { /* closed already */ }
      void loop;
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    },
  };
}
