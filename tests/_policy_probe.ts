/**
 * The client side of tests/_policy_agent.ts: one agent process per netns, asked to probe
 * addresses and ports from inside it.
 *
 * @module
 */
/** One agent (tests/_policy_agent.ts) inside a netns. */
export class Agent {
  #child: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #buf = "";
  /** Starts the agent in the named netns (`ip netns exec`). */
  constructor(netns: string) {
    const agent = new URL("./_policy_agent.ts", import.meta.url).pathname;
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", netns, Deno.execPath(), "run", "-A", "--unstable-net", agent],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }
  /** The agent's next stdout line ("ready" first). */
  async line(): Promise<string> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return l;
      }
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("The probe agent exited");
      this.#buf += value;
    }
  }
  /** Probes `[ip, port, "TCP"|"UDP"]` from inside the netns: connected/echoed or not. */
  async probe(probes: Array<[string, number, string]>): Promise<boolean[]> {
    const w = this.#child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(probes) + "\n"));
    w.releaseLock();
    return JSON.parse(await this.line());
  }
  /** Kills the agent. */
  async close() {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
    await this.#lines.cancel().catch(() => {});
  }
}
