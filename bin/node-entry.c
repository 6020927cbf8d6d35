/*
 * podplex: the entry of the node artifact (`deno task build` compiles it as dist/node/podplex;
 * `podplex install` copies it into a host's CNI bin dir). kubelet's runtime, podman or a user
 * execs it, also through a symlink named after a built-in delegate type
 * (/opt/cni/bin/bridge -> podplex). Every CNI call starts here, so it is a small native
 * program and not a shell script: a `sh` start alone costs ~2.5 ms on a node, more than the
 * daemon needs to answer a VERSION. It
 *
 * - forwards a CNI call to a resident `podplex serve` of this build when its socket exists
 *   (the shim's code, bin/podplex-client.c, linked in: no second exec), and
 * - otherwise, and for every subcommand, execs the bundle in podplex.d/<build id>/ beside the
 *   entry's real file with the Deno binary shipped there: no Deno, npm cache, checkout or
 *   libnl needed on the host, and never the network (--cached-only, no remote or npm modules).
 *
 * The build id is compiled in, so an install adds the new payload beside the old one and
 * renames the new entry over the previous one: a call that already started keeps the payload
 * of the entry it was exec'd from. PODPLEX_ENTRY_PAYLOAD below is how `podplex install` reads
 * which payload an installed entry runs (cli/_install_artifact.ts, to prune the others).
 */
#define PODPLEX_ENTRY
#include "podplex-client.c"

#include <limits.h>

/* The marker `podplex install` finds in the binary (entryVersion). */
const char podplex_entry_payload[] = "PODPLEX_ENTRY_PAYLOAD=" PODPLEX_BUILD_ID ";";

/* Without /proc: argv[0] resolved, as a path or (no slash: found by PATH) as a name. */
static int find_self(const char *argv0, char *out, size_t size) {
  char real[PATH_MAX], cand[PATH_MAX];
  if (strchr(argv0, '/')) {
    if (!realpath(argv0, real) || strlen(real) >= size) return 0;
    return strcpy(out, real), 1;
  }
  const char *path = getenv("PATH");
  for (const char *p = path ? path : ""; *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len && len + strlen(argv0) + 2 <= sizeof cand) {
      snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, argv0);
      if (!access(cand, X_OK) && realpath(cand, real) && strlen(real) < size)
        return strcpy(out, real), 1;
    }
    p += len + (end ? 1 : 0);
  }
  return 0;
}

/* The dir of this program's real file: /proc/self/exe, as the kernel resolved the exec (every
 * symlink, the type-named ones included), or argv[0] when /proc is not mounted. */
static int self_dir(const char *argv0, char *out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  /* Renamed over by an install since this exec, the file's name gains " (deleted)": only the
   * dir is used, and the payload of this build stays in it until the install prunes it. */
  if (n > 0)
    out[n] = 0;
  else if (!find_self(argv0, out, size))
    return -1;
  char *slash = strrchr(out, '/');
  if (!slash) return -1;
  *slash = 0;
  return 0;
}

/* The last path element of argv[0]: the CNI type the runtime called us by. */
static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int main(int argc, char **argv) {
  char dir[PATH_MAX], lib[PATH_MAX + 64], deno[PATH_MAX + 80], js[PATH_MAX + 80];
  if (self_dir(argv[0], dir, sizeof dir)) {
    fprintf(stderr, "podplex: cannot find its own file (/proc/self/exe, argv[0] %s): %s\n", argv[0],
            strerror(errno));
    return 127;
  }
  snprintf(lib, sizeof lib, "%s/podplex.d/%s", dir, PODPLEX_BUILD_ID);
  snprintf(deno, sizeof deno, "%s/deno", lib);
  snprintf(js, sizeof js, "%s/main.js", lib);

  /* The name the delegate was called by; bin/podplex of a checkout hands its own over once. */
  const char *given = getenv("PODPLEX_ENTRY_NAME");
  setenv("PODPLEX_ARGV0", given && *given ? given : base_name(argv[0]), 1);
  unsetenv("PODPLEX_ENTRY_NAME");

  /* `podplex --ready` (the thick DaemonSet's probe): is a daemon of this build ready? */
  if (argc == 2 && !strcmp(argv[1], "--ready")) return probe();

  /* The resident daemon's memory: two malloc arenas instead of one per thread, V8's GC on
   * the main thread only, and a young generation of 2 MiB semi-spaces (after a burst of 20
   * pods V8 had grown its semi-spaces and kept them: 93 MiB of anonymous memory 1,000
   * ADD/DELs later, 46-50 MiB with the cap, for the same CPU per call). --expose-gc lets the
   * daemon free at once the buffers of requests a client began and abandoned
   * (cli/serve/frames.ts). A per-call run exits before any of it matters. */
  int serve = argc > 1 && !strcmp(argv[1], "serve");
  if (serve) setenv("MALLOC_ARENA_MAX", "2", 0);

  char **cmd = calloc((size_t)argc + 16, sizeof *cmd);
  if (!cmd) return perror("podplex: calloc"), 127;
  int n = 0;
  cmd[n++] = deno;
  cmd[n++] = "run";
  if (serve) cmd[n++] = "--v8-flags=--single-threaded-gc,--max-semi-space-size=2,--expose-gc";
  static char *flags[] = {"--allow-all", "--no-config", "--no-prompt", "--cached-only",
                          "--no-remote", "--no-npm", "--quiet", NULL};
  for (char **f = flags; *f; f++) cmd[n++] = *f;
  cmd[n++] = js;
  for (int i = 1; i < argc; i++) cmd[n++] = argv[i];
  cmd[n] = NULL;

  /* A resident `podplex serve` takes CNI calls when its socket exists: a warm process answers
   * in a few ms instead of a Deno start (in thick mode the daemon runs in the DaemonSet's pod
   * and this is the host's shim). forward() runs the command above itself whenever the daemon
   * cannot have started the call (none, not ready, another build, another netns, paths it
   * does not share). Subcommands never go through it. */
  const char *verb = getenv("CNI_COMMAND");
  const char *sock = getenv(PP_SOCKET_ENV);
  struct stat st;
  if (verb && *verb && argc == 1 && stat(sock && *sock ? sock : PP_DEFAULT_SOCKET, &st) == 0 &&
      S_ISSOCK(st.st_mode))
    return forward(cmd);
  execv(cmd[0], cmd);
  fprintf(stderr, "podplex: cannot run \"%s\": %s\n", cmd[0], strerror(errno));
  return 127;
}
