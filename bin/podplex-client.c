/*
 * podplex-client: the shim. Forwards one CNI call to a resident `podplex serve` of the same
 * build over a unix socket, and runs podplex itself (the command after `--`) whenever the
 * daemon cannot have started the work. Built by scripts/build-client.sh with the header that
 * scripts/gen_protocol.ts generates from cli/serve/protocol.ts (the protocol's one
 * definition) and this build's id (PODPLEX_BUILD_ID); no dependencies beyond libc.
 *
 *   podplex-client -- deno run ... main.js   forward a call (env: CNI_*, PODPLEX_SOCKET)
 *   podplex-client --ready                   readiness check: exit 0 when a daemon of this
 *                                            build is ready (its state as JSON on stdout)
 *   podplex-client --build-id                print this build's id
 *
 * Fallback happens only while the daemon cannot have started the work: no socket, connect
 * or send failed, or the daemon answered "not served" (another build or protocol, another
 * netns, paths it does not share, not ready). Once the whole request is sent, a missing or
 * short reply is code 11 ("try again later"), never a fallback: running ADD twice would
 * leak a second set of interfaces and leases.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "podplex_protocol.h"

#ifndef PODPLEX_BUILD_ID
#define PODPLEX_BUILD_ID PP_DEV_BUILD
#endif

extern char **environ;

struct buf { unsigned char *p; size_t len, cap; };

static void put(struct buf *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) { perror("podplex-client: realloc"); exit(1); }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put32(struct buf *b, uint32_t v) {
  unsigned char x[4] = {v >> 24, v >> 16, v >> 8, v};
  put(b, x, 4);
}

static void put64(struct buf *b, uint64_t v) {
  put32(b, (uint32_t)(v >> 32));
  put32(b, (uint32_t)v);
}

static void putstr(struct buf *b, const void *s, size_t n) {
  put32(b, (uint32_t)n);
  put(b, s, n);
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads all of stdin; VERSION never reads it (a terminal would block, and podplex ignores it). */
static void read_stdin(struct buf *in) {
  unsigned char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    put(in, chunk, (size_t)n);
  }
}

/* The device and inode of a path as this process sees it (0 0 when it cannot be stat'ed). */
static void put_file_id(struct buf *b, const char *path) {
  struct stat st;
  if (path && *path && stat(path, &st) == 0) {
    put64(b, (uint64_t)st.st_dev);
    put64(b, (uint64_t)st.st_ino);
  } else {
    put64(b, 0);
    put64(b, 0);
  }
}

static uint64_t ns_inode(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static int forwarded(const char *kv) {
  static const char *names[] = PP_FORWARD_NAMES;
  if (!strncmp(kv, PP_FORWARD_PREFIX, strlen(PP_FORWARD_PREFIX))) return 1;
  for (const char **n = names; *n; n++)
    if (!strncmp(kv, *n, strlen(*n))) return 1;
  return 0;
}

static void frame(struct buf *out, const struct buf *body) {
  put32(out, (uint32_t)body->len);
  put(out, body->p, body->len);
}

static void build_call(struct buf *req, const struct buf *in) {
  struct buf body = {0};
  put(&body, PP_CALL_MAGIC, 4);
  putstr(&body, PODPLEX_BUILD_ID, strlen(PODPLEX_BUILD_ID));
  put64(&body, ns_inode("/proc/self/ns/net"));
  put64(&body, ns_inode("/proc/self/ns/mnt"));
  /* What CNI_NETNS and the cwd are here: a daemon in another mount namespace serves the
   * call only when the same paths name the same files there. */
  put_file_id(&body, getenv("CNI_NETNS"));
  put_file_id(&body, ".");
  uint32_t count = 0;
  for (char **e = environ; *e; e++) count += forwarded(*e);
  /* The daemon runs the call in our cwd: relative paths must mean what they mean here. */
  char cwd[4096 + 64];
  int n = snprintf(cwd, 64, "%s=", PP_CWD_VARIABLE);
  int has_cwd = getcwd(cwd + n, sizeof cwd - (size_t)n) != NULL;
  put32(&body, count + has_cwd);
  for (char **e = environ; *e; e++)
    if (forwarded(*e)) putstr(&body, *e, strlen(*e));
  if (has_cwd) putstr(&body, cwd, strlen(cwd));
  putstr(&body, in->p, in->len);
  frame(req, &body);
  free(body.p);
}

static void build_probe(struct buf *req) {
  struct buf body = {0};
  put(&body, PP_PROBE_MAGIC, 4);
  putstr(&body, PODPLEX_BUILD_ID, strlen(PODPLEX_BUILD_ID));
  frame(req, &body);
  free(body.p);
}

/* Runs podplex itself with the stdin bytes already consumed (memfd, else an unlinked tmpfile). */
static int fall_back(char **cmd, const struct buf *in, int consumed) {
  if (!cmd || !cmd[0]) {
    printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"podplex daemon is not available "
           "and the client was given no command to run\"}\n");
    return 1;
  }
  if (consumed) {
    int fd = memfd_create("podplex-stdin", 0);
    FILE *tmp = NULL;
    if (fd < 0 && (tmp = tmpfile())) fd = fileno(tmp);
    if (fd < 0) { perror("podplex-client: stdin copy"); return 1; }
    for (size_t off = 0; off < in->len;) {
      ssize_t n = write(fd, in->p + off, in->len - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) { perror("podplex-client: stdin copy"); return 1; }
      off += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
      perror("podplex-client: stdin copy");
      return 1;
    }
  }
  execvp(cmd[0], cmd);
  fprintf(stderr, "podplex-client: cannot run \"%s\": %s\n", cmd[0], strerror(errno));
  return 127;
}

static int no_answer(const char *why) {
  printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"podplex daemon did not answer\","
         "\"details\":\"%s\"}\n", why);
  return 1;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads exactly n bytes before the deadline: 0, or -1 on EOF/error, -2 on timeout. */
static int read_full(int fd, unsigned char *p, size_t n, long deadline) {
  for (size_t off = 0; off < n;) {
    long left = deadline - now_ms();
    if (left <= 0) return -2;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, (int)(left > 1000000 ? 1000000 : left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) continue;
    ssize_t got = read(fd, p + off, n - off);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    off += (size_t)got;
  }
  return 0;
}

static void write_fd(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/* Connects to the daemon's socket: the fd, or -1 when nothing listens there. */
static int connect_daemon(void) {
  const char *path = getenv(PP_SOCKET_ENV);
  if (!path || !*path) path = PP_DEFAULT_SOCKET;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends the whole request: 0, or -1 when the daemon cannot have read all of it. */
static int send_all(int fd, const struct buf *req) {
  for (size_t off = 0; off < req->len;) {
    ssize_t n = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    off += (size_t)n;
  }
  return 0;
}

struct reply { int32_t status; const unsigned char *out, *err; uint32_t out_len, err_len; };

/* Reads and checks one reply (either protocol): NULL, or why it is missing or malformed. */
static const char *read_reply(int fd, long timeout_ms, struct reply *r) {
  long deadline = now_ms() + timeout_ms;
  unsigned char head[4];
  int rc = read_full(fd, head, 4, deadline);
  if (rc) return rc == -2 ? "timed out waiting for the reply" : "connection closed";
  uint32_t len = get32(head);
  if (len < 16 || len > PP_MAX_FRAME) return "malformed reply";
  unsigned char *body = malloc(len);
  if (!body) return "out of memory";
  rc = read_full(fd, body, len, deadline);
  if (rc) return rc == -2 ? "timed out waiting for the reply" : "short reply";
  if (memcmp(body, PP_REPLY_MAGIC, 4) && memcmp(body, PP_LEGACY_REPLY_MAGIC, 4))
    return "malformed reply";
  r->out_len = get32(body + 8);
  if (12 + (uint64_t)r->out_len + 4 > len) return "malformed reply";
  r->err_len = get32(body + 12 + r->out_len);
  if (16 + (uint64_t)r->out_len + r->err_len != len) return "malformed reply";
  r->status = (int32_t)get32(body + 4);
  r->out = body + 12;
  r->err = body + 16 + r->out_len;
  /* Only "not served" is meaningful from a daemon of the other protocol. */
  if (!memcmp(body, PP_LEGACY_REPLY_MAGIC, 4) && r->status != PP_NOT_SERVED)
    return "malformed reply";
  return NULL;
}

static long timeout_ms(void) {
  const char *t = getenv(PP_TIMEOUT_ENV);
  long s = t && atol(t) > 0 ? atol(t) : PP_CLIENT_TIMEOUT_S;
  return s * 1000L;
}

/* --ready: 0 when a daemon of this build answers ready, 1 otherwise (the reason on stderr). */
static int probe(void) {
  int fd = connect_daemon();
  if (fd < 0) { fprintf(stderr, "podplex-client: no daemon listens\n"); return 1; }
  struct buf req = {0};
  build_probe(&req);
  if (send_all(fd, &req)) { fprintf(stderr, "podplex-client: cannot send the probe\n"); return 1; }
  struct reply r;
  const char *why = read_reply(fd, timeout_ms() < 5000 ? timeout_ms() : 5000, &r);
  if (why) { fprintf(stderr, "podplex-client: %s\n", why); return 1; }
  write_fd(1, r.out, r.out_len);
  if (r.out_len) write_fd(1, (const unsigned char *)"\n", 1);
  write_fd(2, r.err, r.err_len);
  return r.status == 0 ? 0 : 1;
}

/* Forwards this process's CNI call (env, stdin) to the daemon; runs cmd when it cannot. */
static int forward(char **cmd) {
  const char *verb = getenv("CNI_COMMAND");
  int consume = !(verb && !strcmp(verb, "VERSION"));
  struct buf in = {0}, req = {0};
  if (consume) read_stdin(&in);

  int fd = connect_daemon();
  if (fd < 0) return fall_back(cmd, &in, consume);
  build_call(&req, &in);
  /* A partial request is never run by the daemon: falling back is safe. */
  if (send_all(fd, &req)) return close(fd), fall_back(cmd, &in, consume);
  struct reply r;
  const char *why = read_reply(fd, timeout_ms(), &r);
  if (why) return no_answer(why);
  close(fd);
  /* Not run by the daemon (another build, namespace or view of the files): do it here. */
  if (r.status == PP_NOT_SERVED) return fall_back(cmd, &in, consume);
  write_fd(1, r.out, r.out_len);
  write_fd(2, r.err, r.err_len);
  return r.status;
}

/* The node artifact's entry (bin/node-entry.c) includes this file and has its own main. */
#ifndef PODPLEX_ENTRY
int main(int argc, char **argv) {
  char **cmd = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) { cmd = argv + i + 1; break; }
    if (!strcmp(argv[i], "--ready")) return probe();
    if (!strcmp(argv[i], "--build-id")) return puts(PODPLEX_BUILD_ID) < 0;
  }
  return forward(cmd);
}
#endif
