/*
 * handoff-exec: runs one agent command inside the sandbox and reports on it.
 *
 *   handoff-exec <limit>s <command> [args...]      (stdin: "<nonce>\n" then the command's stdin)
 *
 * It does in one process what the shell wrapper in src/runner/sandbox/docker.ts does with five
 * (sh, timeout, find, cksum and the command), and every process costs milliseconds per command:
 *
 *  - reads the per-exec nonce, the first line of stdin, before the command starts, so the nonce
 *    is in no argv or environment; the rest of stdin is the command's;
 *  - runs the command in a process group of its own; at the limit it sends SIGTERM (and SIGCONT)
 *    to the group, 2 s later SIGKILL; exits 124 when the limit was hit (137 when SIGKILL was
 *    needed), else with the command's status (128+N for a signal), as coreutils `timeout` does;
 *  - kills whatever the group left behind (background jobs, the rest of a fork bomb);
 *  - reads the cgroup's oom_kill counter before and after;
 *  - fingerprints /workspace/out (size, mtime and path of every entry, one file system);
 *  - writes `\x1ehandoff-oom <nonce> <before> <after> <status> <hash> <bytes>\n` to stderr in one
 *    write, and exits with the status. It is not dumpable while the command runs, so the command
 *    (same user) cannot read the nonce out of its memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUTPUTS "/workspace/out"
#define MAX_NONCE 128
#define KILL_AFTER_NS (2LL * 1000000000LL)

static uint64_t fp_hash = 1469598103934665603ULL; /* FNV-1a 64 */
static uint64_t fp_bytes = 0;

static void fp_feed(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    fp_hash ^= (unsigned char)s[i];
    fp_hash *= 1099511628211ULL;
  }
  fp_bytes += n;
}

static int fp_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)type;
  (void)ftw;
  char head[96];
  int n = snprintf(head, sizeof head, "%lld %lld.%09ld ", (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                   (long)st->st_mtim.tv_nsec);
  fp_feed(head, (size_t)n);
  size_t root = sizeof OUTPUTS - 1;
  const char *rel = strncmp(path, OUTPUTS, root) == 0 ? path + root : path;
  fp_feed(rel, strlen(rel));
  fp_feed("\n", 1);
  return 0;
}

/* The cgroup's oom_kill counter into out (empty when the kernel exposes none). */
static void oom_kills(char *out, size_t size) {
  static const char *files[] = {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"};
  out[0] = '\0';
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    FILE *f = fopen(files[i], "re");
    if (!f) continue;
    char key[64];
    unsigned long long value;
    while (fscanf(f, "%63s %llu", key, &value) == 2) {
      if (strcmp(key, "oom_kill") == 0) snprintf(out, size, "%llu", value);
    }
    fclose(f);
    return;
  }
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void signal_group(pid_t group, int sig) {
  kill(-group, sig);
  if (sig != SIGKILL) kill(-group, SIGCONT);
}

int main(int argc, char **argv) {
  char nonce[MAX_NONCE + 1];
  size_t len = 0;
  for (;;) {
    char c;
    ssize_t r = read(STDIN_FILENO, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 125;
    if (c == '\n') break;
    if (len == MAX_NONCE) return 125;
    nonce[len++] = c;
  }
  nonce[len] = '\0';
  if (argc < 3) {
    fputs("handoff-exec: usage: handoff-exec <limit>s <command> [args...]\n", stderr);
    return 125;
  }
  char *end;
  double limit = strtod(argv[1], &end);
  if (end == argv[1] || (*end != '\0' && strcmp(end, "s") != 0) || !(limit > 0)) {
    fprintf(stderr, "handoff-exec: invalid time limit %s\n", argv[1]);
    return 125;
  }

  char before[32], after[32];
  oom_kills(before, sizeof before);

  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);

  /* The command gets a process group of its own and the signal mask handoff-exec started with. */
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &old);
  pid_t pid;
  int failed = posix_spawnp(&pid, argv[2], NULL, &attr, argv + 2, environ);
  posix_spawnattr_destroy(&attr);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  int phase = 0; /* 0: running, 1: SIGTERM sent, 2: SIGKILL sent */
  int status = 0;
  if (failed) {
    fprintf(stderr, "handoff-exec: failed to run command '%s': %s\n", argv[2], strerror(failed));
  } else {
    long long deadline = now_ns() + (long long)(limit * 1e9);
    for (;;) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) {
        status = -1;
        break;
      }
      struct timespec wait = {3600, 0};
      if (phase < 2) {
        long long left = deadline - now_ns();
        if (left <= 0) {
          signal_group(pid, phase == 0 ? SIGTERM : SIGKILL);
          phase++;
          deadline = now_ns() + KILL_AFTER_NS;
          continue;
        }
        wait.tv_sec = left / 1000000000LL;
        wait.tv_nsec = left % 1000000000LL;
      }
      sigtimedwait(&chld, NULL, &wait);
    }
    /* Whatever the command left in its group goes with it. */
    kill(-pid, SIGKILL);
  }

  int rc;
  if (failed) rc = failed == ENOENT ? 127 : 126;
  else if (phase == 2) rc = 128 + SIGKILL;
  else if (phase == 1) rc = 124;
  else if (status < 0) rc = 125;
  else if (WIFEXITED(status)) rc = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) rc = 128 + WTERMSIG(status);
  else rc = 125;

  oom_kills(after, sizeof after);
  char print[64] = "";
  if (nftw(OUTPUTS, fp_entry, 16, FTW_PHYS | FTW_MOUNT) == 0)
    snprintf(print, sizeof print, "%" PRIu64 " %" PRIu64, fp_hash, fp_bytes);
  char line[MAX_NONCE + 160];
  int n = snprintf(line, sizeof line, "\036handoff-oom %s %s %s %d %s\n", nonce, before, after, rc, print);
  if (n > 0) {
    size_t left = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    const char *p = line;
    while (left > 0) {
      ssize_t w = write(STDERR_FILENO, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      p += w;
      left -= (size_t)w;
    }
  }
  return rc;
}
