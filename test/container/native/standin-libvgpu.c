/*
 * Stand-in for HAMi-core's libvgpu.so in the container tests. Preloaded through /etc/ld.so.preload,
 * its constructor reports what HAMi-core would see in each process: the limit variables, whether the
 * shared-region cache file can be written where CUDA_DEVICE_MEMORY_SHARED_CACHE says, and whether the
 * lock directory /tmp/vgpulock is writable (it leaves <cache file name>.lock there, so a test can see
 * that two containers share the directory).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef STANDIN_VERSION
#define STANDIN_VERSION "unversioned"
#endif

/* The probe program looks this up to tell whether the library is mapped in its process. */
int vgpu_standin_loaded(void) { return 1; }

static const char *env_or_dash(const char *name) {
  const char *value = getenv(name);
  return value ? value : "-";
}

static const char *append_line(const char *file, const char *line) {
  int fd = open(file, O_CREAT | O_WRONLY | O_APPEND, 0666);
  if (fd < 0) return strerror(errno);
  ssize_t written = write(fd, line, strlen(line));
  close(fd);
  return written < 0 ? strerror(errno) : "ok";
}

static const char *touch_lock(const char *cache) {
  if (!cache) return "no-cache-env";
  const char *slash = strrchr(cache, '/');
  char file[512];
  snprintf(file, sizeof file, "/tmp/vgpulock/%s.lock", slash ? slash + 1 : cache);
  return append_line(file, "locked\n");
}

__attribute__((constructor)) static void report(void) {
  const char *cache = getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
  char pid_line[64];
  snprintf(pid_line, sizeof pid_line, "pid %d\n", (int)getpid());
  const char *cache_result = cache ? append_line(cache, pid_line) : "no-cache-env";
  const char *lock_result = touch_lock(cache);
  char line[1024];
  int n = snprintf(line, sizeof line,
                   "libvgpu: version=%s process=%s uid=%d mem0=%s sm=%s cache=%s lock=%s\n",
                   STANDIN_VERSION, program_invocation_short_name, (int)getuid(),
                   env_or_dash("CUDA_DEVICE_MEMORY_LIMIT_0"), env_or_dash("CUDA_DEVICE_SM_LIMIT"),
                   cache_result, lock_result);
  if (n > 0) (void)!write(STDOUT_FILENO, line, (size_t)n);
}
