/*
 * podplex-client: forwards one CNI call to a resident `podplex serve` over a unix socket and
 * falls back to running podplex itself (the command after `--`) whenever the daemon cannot
 * take the call. Built by scripts/build-client.sh; no dependencies beyond libc.
 *
 *   podplex-client -- deno run ... dist/main.js      (env: CNI_*, PODPLEX_SOCKET)
 *
 * Fallback happens only while the daemon cannot have started the work: no socket, connect
 * or send failed, or the daemon answered "not served" (other netns or mount namespace).
 * Once the whole request is sent, a missing or short reply is code 11 ("try again later"),
 * never a fallback: running ADD twice would leak a second set of interfaces and leases.
 * The wire format is described in cli/serve.ts.
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

#define DEFAULT_SOCKET "/run/podplex/podplex.sock"
#define MAX_FRAME (16u << 20)
#define NOT_SERVED -1

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

static uint64_t ns_inode(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void build_request(struct buf *req, const struct buf *in) {
  struct buf body = {0};
  put(&body, "PPQ1", 4);
  put64(&body, ns_inode("/proc/self/ns/net"));
  put64(&body, ns_inode("/proc/self/ns/mnt"));
  uint32_t count = 0;
  for (char **e = environ; *e; e++)
    if (!strncmp(*e, "CNI_", 4) || !strncmp(*e, "PODPLEX_ARGV0=", 14)) count++;
  /* The daemon runs the call in our cwd: relative paths must mean what they mean here. */
  char cwd[4096 + 12] = "PODPLEX_CWD=";
  int has_cwd = getcwd(cwd + 12, sizeof cwd - 12) != NULL;
  put32(&body, count + has_cwd);
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) && strncmp(*e, "PODPLEX_ARGV0=", 14)) continue;
    put32(&body, (uint32_t)strlen(*e));
    put(&body, *e, strlen(*e));
  }
  if (has_cwd) {
    put32(&body, (uint32_t)strlen(cwd));
    put(&body, cwd, strlen(cwd));
  }
  put32(&body, (uint32_t)in->len);
  put(&body, in->p, in->len);
  put32(req, (uint32_t)body.len);
  put(req, body.p, body.len);
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

int main(int argc, char **argv) {
  char **cmd = NULL;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--")) { cmd = argv + i + 1; break; }
  const char *verb = getenv("CNI_COMMAND");
  int consume = !(verb && !strcmp(verb, "VERSION"));
  struct buf in = {0}, req = {0};
  if (consume) read_stdin(&in);

  const char *path = getenv("PODPLEX_SOCKET");
  if (!path || !*path) path = DEFAULT_SOCKET;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return fall_back(cmd, &in, consume);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    return fall_back(cmd, &in, consume);

  build_request(&req, &in);
  for (size_t off = 0; off < req.len;) {
    ssize_t n = send(fd, req.p + off, req.len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    /* A partial request is never run by the daemon: falling back is safe. */
    if (n <= 0) return close(fd), fall_back(cmd, &in, consume);
    off += (size_t)n;
  }

  const char *t = getenv("PODPLEX_CLIENT_TIMEOUT");
  long timeout_s = t && atol(t) > 0 ? atol(t) : 120;
  long deadline = now_ms() + timeout_s * 1000L;
  unsigned char head[4];
  int r = read_full(fd, head, 4, deadline);
  if (r) return no_answer(r == -2 ? "timed out waiting for the reply" : "connection closed");
  uint32_t len = get32(head);
  if (len < 16 || len > MAX_FRAME) return no_answer("malformed reply");
  unsigned char *body = malloc(len);
  if (!body) return no_answer("out of memory");
  r = read_full(fd, body, len, deadline);
  if (r) return no_answer(r == -2 ? "timed out waiting for the reply" : "short reply");
  close(fd);
  uint32_t out_len = get32(body + 8);
  if (memcmp(body, "PPR1", 4) || 12 + (uint64_t)out_len + 4 > len) return no_answer("malformed reply");
  uint32_t err_len = get32(body + 12 + out_len);
  if (16 + (uint64_t)out_len + err_len != len) return no_answer("malformed reply");
  int32_t status = (int32_t)get32(body + 4);
  /* Not run by the daemon (another namespace, malformed request): do the work here. */
  if (status == NOT_SERVED) return fall_back(cmd, &in, consume);
  write_fd(1, body + 12, out_len);
  write_fd(2, body + 16 + out_len, err_len);
  return status;
}
