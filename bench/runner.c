/*
 * podplex bench runner: execs CNI plugins (or anything) the way a runtime does, adding as
 * little of its own as possible, and reports wall time (CLOCK_MONOTONIC around fork..wait4)
 * and the child's peak RSS (wait4 rusage, which includes the child's own waited children).
 *
 * usage: runner [-p] JOBFILE
 *   -p  run the pods at once (one forked worker per pod; each pod's execs stay in order)
 *
 * JOBFILE, one directive a line (parsed before any timing starts):
 *   P <label>        start a pod (a sequence of execs)
 *   X <path> [arg]*  start an exec (argv[0] = path; args split on spaces)
 *   E <K=V>          an environment variable of the current exec (the value runs to EOL)
 *   I <file>         the current exec's stdin (read into memory up front; default empty)
 *   O <file>         where the current exec's stderr goes (default: the runner's stderr)
 *   S                also pass PP_FORK_REALTIME_US = CLOCK_REALTIME at fork, in µs
 *
 * Output on stdout, one line per record (each written with a single write(2)):
 *   R <pod> <exec> <exit> <start_us> <wall_us> <maxrss_kb> <fork_realtime_us> <cpu_us> <sys_us>
 *   P <pod> <start_us> <wall_us> <ok>
 *   T <wall_us>
 * cpu_us is the child's user + system time (wait4 rusage, its waited children included),
 * sys_us its system part;
 * start_us is relative to the runner's start of timing; fork_realtime_us is the value passed
 * with S (0 without), so that marks the child takes on CLOCK_REALTIME can be put on the
 * runner's timeline. A failing exec's stdout is copied to
 * stderr; a pod stops at its first failing exec; the runner then exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 32
#define MAX_ENV 64
#define OUT_CAP (1 << 20)

struct exec_spec {
  char *argv[MAX_ARGS + 1];
  char *envp[MAX_ENV + 2];
  int nenv;
  char *stdin_buf;
  size_t stdin_len;
  char *stderr_path;
  int stamp;
};

struct pod {
  char *label;
  struct exec_spec *execs;
  int nexecs;
};

static struct pod *pods;
static int npods;
static int64_t t_origin;
static char outbuf[OUT_CAP];

static int64_t now_us(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) die("realloc");
  return p;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path);
  char *buf = NULL;
  size_t cap = 0, n = 0, r;
  do {
    if (n == cap) buf = xrealloc(buf, cap = cap ? cap * 2 : 4096);
    r = fread(buf + n, 1, cap - n, f);
    n += r;
  } while (r > 0);
  fclose(f);
  *len = n;
  return buf;
}

static struct exec_spec *current_exec(void) {
  if (!npods || !pods[npods - 1].nexecs) {
    fprintf(stderr, "runner: directive before X\n");
    exit(2);
  }
  struct pod *p = &pods[npods - 1];
  return &p->execs[p->nexecs - 1];
}

static void parse_exec(char *rest) {
  if (!npods) {
    fprintf(stderr, "runner: X before P\n");
    exit(2);
  }
  struct pod *p = &pods[npods - 1];
  p->execs = xrealloc(p->execs, sizeof(*p->execs) * (p->nexecs + 1));
  struct exec_spec *e = &p->execs[p->nexecs++];
  memset(e, 0, sizeof(*e));
  int argc = 0;
  for (char *tok = strtok(rest, " "); tok && argc < MAX_ARGS; tok = strtok(NULL, " ")) {
    e->argv[argc++] = strdup(tok);
  }
}

static void parse_jobs(const char *path) {
  size_t len;
  char *text = read_file(path, &len);
  text = xrealloc(text, len + 1);
  text[len] = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *rest = line[1] == ' ' ? line + 2 : line + 1;
    switch (line[0]) {
    case 'P':
      pods = xrealloc(pods, sizeof(*pods) * (npods + 1));
      pods[npods++] = (struct pod){strdup(rest), NULL, 0};
      break;
    case 'X':
      parse_exec(rest);
      break;
    case 'E': {
      struct exec_spec *e = current_exec();
      if (e->nenv >= MAX_ENV) {
        fprintf(stderr, "runner: too many env entries\n");
        exit(2);
      }
      e->envp[e->nenv++] = strdup(rest);
      break;
    }
    case 'I':
      current_exec()->stdin_buf = read_file(rest, &current_exec()->stdin_len);
      break;
    case 'O':
      current_exec()->stderr_path = strdup(rest);
      break;
    case 'S':
      current_exec()->stamp = 1;
      break;
    default:
      fprintf(stderr, "runner: unknown directive line \"%s\"\n", line);
      exit(2);
    }
  }
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (write(STDOUT_FILENO, line, (size_t)n) != n) die("write");
}

static void child(struct exec_spec *e, int in_fd, int out_fd) {
  dup2(in_fd, STDIN_FILENO);
  dup2(out_fd, STDOUT_FILENO);
  if (e->stderr_path) {
    int fd = open(e->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, STDERR_FILENO);
  }
  execve(e->argv[0], e->argv, e->envp);
  perror(e->argv[0]);
  _exit(127);
}

/* Runs one exec; returns its exit status (or 128+signal). */
static int run_exec(int pod, int idx, struct exec_spec *e) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe");
  char stamp[64];
  int64_t fork_rt = 0;
  int64_t start = now_us(CLOCK_MONOTONIC);
  if (e->stamp) {
    fork_rt = now_us(CLOCK_REALTIME);
    snprintf(stamp, sizeof(stamp), "PP_FORK_REALTIME_US=%lld", (long long)fork_rt);
    e->envp[e->nenv] = stamp;
  }
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) child(e, in[0], out[1]);
  close(in[0]);
  close(out[1]);
  /* Confs are far below the pipe's 64 KiB, so writing all before reading cannot deadlock. */
  size_t off = 0;
  while (off < e->stdin_len) {
    ssize_t w = write(in[1], e->stdin_buf + off, e->stdin_len - off);
    if (w <= 0) break; /* the child may exit without reading stdin (VERSION) */
    off += (size_t)w;
  }
  close(in[1]);
  size_t got = 0;
  for (;;) {
    ssize_t r = read(out[0], outbuf + got, OUT_CAP - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if (got >= OUT_CAP - 1) got = 0; /* keep only the tail of a huge output */
  }
  close(out[0]);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) die("wait4");
  }
  int64_t end = now_us(CLOCK_MONOTONIC);
  e->envp[e->nenv] = NULL;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  long long cpu = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
                  ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  long long sys = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
  emit("R %d %d %d %lld %lld %ld %lld %lld %lld\n", pod, idx, code, (long long)(start - t_origin),
       (long long)(end - start), ru.ru_maxrss, (long long)fork_rt, cpu, sys);
  if (code != 0) {
    outbuf[got] = 0;
    fprintf(stderr, "runner: pod %s exec %d (%s) exited %d; stdout: %s\n", pods[pod].label, idx,
            e->argv[0], code, outbuf);
  }
  return code;
}

static int run_pod(int i) {
  int64_t start = now_us(CLOCK_MONOTONIC);
  int ok = 1;
  for (int j = 0; j < pods[i].nexecs && ok; j++) ok = run_exec(i, j, &pods[i].execs[j]) == 0;
  int64_t end = now_us(CLOCK_MONOTONIC);
  emit("P %d %lld %lld %d\n", i, (long long)(start - t_origin), (long long)(end - start), ok);
  return ok;
}

int main(int argc, char **argv) {
  int parallel = argc == 3 && strcmp(argv[1], "-p") == 0;
  if (argc != 2 + parallel) {
    fprintf(stderr, "usage: runner [-p] JOBFILE\n");
    return 2;
  }
  parse_jobs(argv[1 + parallel]);
  int failed = 0;
  t_origin = now_us(CLOCK_MONOTONIC);
  if (!parallel) {
    for (int i = 0; i < npods; i++) failed |= !run_pod(i);
  } else {
    pid_t *workers = calloc((size_t)npods, sizeof(pid_t));
    for (int i = 0; i < npods; i++) {
      workers[i] = fork();
      if (workers[i] < 0) die("fork");
      if (workers[i] == 0) _exit(run_pod(i) ? 0 : 1);
    }
    for (int i = 0; i < npods; i++) {
      int status;
      while (waitpid(workers[i], &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
      }
      failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
  }
  emit("T %lld\n", (long long)(now_us(CLOCK_MONOTONIC) - t_origin));
  return failed;
}
