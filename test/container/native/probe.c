/*
 * What the container tests run inside a container (a dynamically linked program, so an
 * /etc/ld.so.preload applies to it). Sub-commands print one line per answer:
 *   probe loaded          "loaded yes|no": is the stand-in libvgpu.so mapped in this process
 *   probe env NAME...     "NAME=value" or "NAME unset"
 *   probe stat PATH...    "PATH char M:N" | "PATH dir" | "PATH file" | "PATH missing"
 *   probe ls DIR          "DIR: name" per entry
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

extern int vgpu_standin_loaded(void) __attribute__((weak));

static void stat_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    printf("%s missing\n", path);
  else if (S_ISCHR(st.st_mode))
    printf("%s char %u:%u\n", path, major(st.st_rdev), minor(st.st_rdev));
  else if (S_ISDIR(st.st_mode))
    printf("%s dir\n", path);
  else
    printf("%s file\n", path);
}

static int list_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    printf("%s: cannot open\n", dir);
    return 1;
  }
  struct dirent *entry;
  while ((entry = readdir(d)) != NULL)
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      printf("%s: %s\n", dir, entry->d_name);
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *command = argv[1];
  if (strcmp(command, "loaded") == 0) {
    printf("loaded %s\n", vgpu_standin_loaded && vgpu_standin_loaded() ? "yes" : "no");
  } else if (strcmp(command, "env") == 0) {
    for (int i = 2; i < argc; i++) {
      const char *value = getenv(argv[i]);
      if (value) printf("%s=%s\n", argv[i], value);
      else printf("%s unset\n", argv[i]);
    }
  } else if (strcmp(command, "stat") == 0) {
    for (int i = 2; i < argc; i++) stat_path(argv[i]);
  } else if (strcmp(command, "ls") == 0 && argc == 3) {
    return list_dir(argv[2]);
  } else {
    fprintf(stderr, "probe: unknown command %s\n", command);
    return 2;
  }
  return 0;
}
