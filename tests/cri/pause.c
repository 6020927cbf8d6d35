/*
 * The pod sandbox's process for the containerd tests (tests/_pause_image.ts builds it with
 * gcc -static into a FROM-scratch image): it holds the pod's namespaces and does nothing
 * else. SIGINT/SIGTERM end it at once (it is PID 1 in its pid namespace, where the kernel
 * ignores signals without a handler, so containerd's stop would otherwise wait for SIGKILL);
 * SIGCHLD reaps, as a pause process must for the containers that share its pid namespace.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(sig == SIGTERM ? 0 : 2); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = stop};
  struct sigaction chld = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
      sigaction(SIGCHLD, &chld, NULL) < 0)
    return 1;
  for (;;) pause();
}
