/**
 * `pod exec`'s runner: a command inside a pod's netns.
 *
 * @module
 */

/**
 * Runs `cmd` inside a netns, stdio inherited. A named netns goes through `ip netns exec`,
 * which also mounts a /sys of that netns (tools reading /sys/class/net see the pod's
 * links); any other path through `nsenter --net`. Not setns in-process: setns moves only the
 * calling thread and Deno spawns children from another thread, which stays in the host netns.
 *
 * @returns the command's exit code
 */
export async function podExec(netns: string, cmd: string[]): Promise<number> {
  const named = /^\/run\/netns\/([^/]+)$/.exec(netns);
  const [bin, ...args] = named
    ? ["ip", "netns", "exec", named[1], ...cmd]
    : ["nsenter", `--net=${netns}`, "--", ...cmd];
  const child = new Deno.Command(bin, {
    args,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await child.output();
  return code;
}
