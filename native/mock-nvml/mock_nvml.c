/*
 * mock-nvml: a libnvidia-ml.so.1 stand-in with NVML's exact ABI, driven by a JSON state file
 * (MOCK_NVML_STATE). Tests rewrite the file to add processes, change readings, mark a GPU lost or
 * queue Xid events while the agent runs against the real FFI path. See README.md for the contract.
 *
 * Concurrency: NVML is documented as thread-safe and the agent calls it from several libuv threads,
 * one of them blocked in nvmlEventSetWait_v2. One mutex guards all state; every API function holds
 * it for its whole (short) body, and the wait loop drops it before each sleep.
 *
 * Handles: nvmlDevice_t values point into a static array indexed by (GPU index, MIG slot) and
 * nvmlEventSet_t values into a static pool, so they stay identical across reloads, and a stale,
 * foreign or garbage pointer is recognised by its address alone and never dereferenced.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nvml_abi.h"
#include "pci.h"
#include "state.h"

/* Only the NVML entry points are exported; the build hides everything else (-fvisibility=hidden). */
#define NVML_API __attribute__((visibility("default")))

#define MOCK_MAX_EVENT_SETS 256
#define NS_PER_MS 1000000LL
/* Checking the file on every call would cost a stat per NVML call; 5 ms keeps tests responsive. */
#define REFRESH_INTERVAL_NS (5 * NS_PER_MS)
#define WAIT_STEP_NS (10 * NS_PER_MS)
/*
 * File timestamps come from a coarse clock (one kernel tick, up to 10 ms), so two in-place writes of
 * the same size inside one tick leave stat() unchanged. While the file's mtime is this recent, its
 * bytes are re-read and compared; and a parse error is not reported yet (the writer may be midway).
 */
#define SETTLE_NS (100 * NS_PER_MS)
#define INIT_SETTLE_TRIES 30

struct nvmlDevice_st {
  unsigned char unused; /* only the address matters */
};
/* [gpu][0] is the GPU itself, [gpu][1 + k] its k-th MIG device */
static struct nvmlDevice_st g_devices[MOCK_MAX_GPUS][1 + MOCK_MAX_MIG_DEVICES];

struct nvmlEventSet_st {
  int in_use;
  unsigned long long generation; /* bumped on create and free: a waiter notices its set was freed */
  long long cursor;              /* events with seq <= cursor are done for this set */
  unsigned long long masks[MOCK_MAX_GPUS]; /* registered event types per GPU index */
};
static struct nvmlEventSet_st g_sets[MOCK_MAX_EVENT_SETS];

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int g_init_count;
static char *g_path;        /* MOCK_NVML_STATE as read by the first nvmlInit */
static mock_state *g_state; /* non-NULL whenever g_init_count > 0 */
static unsigned long long g_loaded_at_us; /* when g_state was loaded: process utilization timestamps */

/* What was last read from the file: identity from fstat and a hash of the bytes. */
static struct {
  int valid;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  unsigned long long hash;
} g_seen;
/* A version that failed to parse while it was still being written: reported once it settles. */
static struct {
  int valid;
  unsigned long long hash;
} g_pending;
static long long g_last_check_ns;
static int g_have_checked;
static int g_unreadable_reported;
static int g_quiet; /* set by nvmlInit, which reports load problems itself in one line */
static char g_last_error[640]; /* the latest load problem, repeated when nvmlInit fails because of it */

/* ---- time ---- */

static long long monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(long long ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000LL), .tv_nsec = (long)(ns % 1000000000LL)};
  nanosleep(&ts, NULL); /* an early wake-up only means one more loop iteration */
}

/* ---- loading the state file ---- */

typedef enum { LOAD_OK, LOAD_UNREADABLE, LOAD_INVALID } load_result;

static unsigned long long fnv1a(const char *data, size_t length) {
  unsigned long long h = 1469598103934665603ULL;
  for (size_t i = 0; i < length; i++) {
    h ^= (unsigned char)data[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static int recently_written(const struct stat *st) {
  long long mtime = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
  long long age = realtime_ns() - mtime;
  return age < SETTLE_NS && age > -SETTLE_NS;
}

static void report_unreadable(const char *why) {
  snprintf(g_last_error, sizeof g_last_error, "cannot read the state file %s: %s", g_path, why);
  if (g_unreadable_reported || g_quiet) return;
  g_unreadable_reported = 1;
  fprintf(stderr, "mock-nvml: %s%s\n", g_last_error, g_state != NULL ? " (keeping the previous state)" : "");
}

/* Reads the whole file into a malloc'd buffer, with the fstat of what was read. */
static char *read_state_file(struct stat *st, size_t *length) {
  int fd = open(g_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    report_unreadable(strerror(errno));
    return NULL;
  }
  char *buffer = NULL;
  if (fstat(fd, st) != 0) {
    report_unreadable(strerror(errno));
  } else if (!S_ISREG(st->st_mode)) {
    report_unreadable("not a regular file");
  } else if ((unsigned long long)st->st_size > MOCK_STATE_MAX_BYTES) {
    report_unreadable("larger than 16 MiB");
  } else {
    /* headroom so that a file growing while we read is still read whole (a later check sees the rest) */
    size_t capacity = (size_t)st->st_size + 4096;
    buffer = malloc(capacity);
    if (buffer == NULL) report_unreadable("out of memory");
    size_t n = 0;
    while (buffer != NULL && n < capacity) {
      ssize_t r = read(fd, buffer + n, capacity - n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        report_unreadable(strerror(errno));
        free(buffer);
        buffer = NULL;
        break;
      }
      if (r == 0) break;
      n += (size_t)r;
    }
    *length = n;
  }
  close(fd);
  return buffer;
}

/*
 * Re-reads the state file if it may have changed, and swaps in the new state when it parses.
 * `force` skips the rate limit. Must hold g_lock. LOAD_OK means g_state is usable and current.
 */
static load_result refresh_state(int force) {
  long long now = monotonic_ns();
  if (!force && g_have_checked && now - g_last_check_ns < REFRESH_INTERVAL_NS) {
    return g_state != NULL ? LOAD_OK : LOAD_INVALID;
  }
  g_have_checked = 1;
  g_last_check_ns = now;

  struct stat st;
  if (stat(g_path, &st) != 0) {
    report_unreadable(strerror(errno));
    return LOAD_UNREADABLE;
  }
  if (g_seen.valid && st.st_dev == g_seen.dev && st.st_ino == g_seen.ino && st.st_size == g_seen.size &&
      st.st_mtim.tv_sec == g_seen.mtime.tv_sec && st.st_mtim.tv_nsec == g_seen.mtime.tv_nsec &&
      !recently_written(&st)) {
    g_unreadable_reported = 0;
    return g_state != NULL ? LOAD_OK : LOAD_INVALID;
  }

  size_t length = 0;
  char *text = read_state_file(&st, &length);
  if (text == NULL) return LOAD_UNREADABLE;
  g_unreadable_reported = 0;
  unsigned long long hash = fnv1a(text, length);
  if (g_seen.valid && hash == g_seen.hash) {
    /* same bytes as last time (a touch, or a rewrite with equal content) */
    free(text);
    g_seen.dev = st.st_dev;
    g_seen.ino = st.st_ino;
    g_seen.size = st.st_size;
    g_seen.mtime = st.st_mtim;
    return g_state != NULL ? LOAD_OK : LOAD_INVALID;
  }

  mock_state *loaded = NULL;
  if (g_pending.valid && hash == g_pending.hash) {
    free(text); /* already parsed and failed; g_last_error still says why */
    if (recently_written(&st)) return LOAD_INVALID;
  } else {
    char error[512];
    loaded = state_load(g_path, text, length, error, sizeof error);
    free(text);
    if (loaded == NULL) snprintf(g_last_error, sizeof g_last_error, "%s: %s", g_path, error);
  }
  g_pending.valid = 0;
  if (loaded == NULL) {
    if (recently_written(&st)) {
      /* probably caught mid-write: keep g_seen invalid so the next check reads the file again */
      g_seen.valid = 0;
      g_pending.valid = 1;
      g_pending.hash = hash;
      return LOAD_INVALID;
    }
    if (!g_quiet) {
      fprintf(stderr, "mock-nvml: %s%s\n", g_last_error,
              g_state != NULL ? " (keeping the previous state)" : " (no state loaded yet)");
    }
  } else {
    state_free(g_state);
    g_state = loaded;
    g_last_error[0] = '\0';
    /* strictly increasing, so samples of a new version are always newer than the last one seen */
    unsigned long long now_us = (unsigned long long)(realtime_ns() / 1000);
    g_loaded_at_us = now_us > g_loaded_at_us ? now_us : g_loaded_at_us + 1;
  }
  g_seen.valid = 1;
  g_seen.dev = st.st_dev;
  g_seen.ino = st.st_ino;
  g_seen.size = st.st_size;
  g_seen.mtime = st.st_mtim;
  g_seen.hash = hash;
  return loaded != NULL ? LOAD_OK : LOAD_INVALID;
}

/* The state outlives nvmlShutdown (a later nvmlInit keeps it if the file is then broken); unloading
 * the library (dlclose, koffi's unload) is what releases it. */
__attribute__((destructor)) static void release_on_unload(void) {
  pthread_mutex_lock(&g_lock);
  state_free(g_state);
  g_state = NULL;
  free(g_path);
  g_path = NULL;
  pthread_mutex_unlock(&g_lock);
}

/* ---- handles and per-call checks (all with g_lock held) ---- */

typedef struct {
  size_t index;     /* GPU index */
  int mig;          /* MIG slot, -1 for the GPU itself */
  const mock_gpu *gpu;
  const mock_mig *m; /* NULL for a GPU handle */
} target;

static nvmlDevice_t gpu_handle(size_t index) {
  return &g_devices[index][0];
}

static nvmlDevice_t mig_handle(size_t index, size_t slot) {
  return &g_devices[index][1 + slot];
}

/* Maps a handle to the device it names in the current state; any other pointer is rejected. */
static nvmlReturn_t resolve(nvmlDevice_t handle, target *t) {
  uintptr_t base = (uintptr_t)&g_devices[0][0];
  uintptr_t p = (uintptr_t)handle;
  if (p < base || p - base >= sizeof g_devices || (p - base) % sizeof(struct nvmlDevice_st) != 0) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  size_t slot = (p - base) / sizeof(struct nvmlDevice_st);
  t->index = slot / (1 + MOCK_MAX_MIG_DEVICES);
  t->mig = (int)(slot % (1 + MOCK_MAX_MIG_DEVICES)) - 1;
  if (t->index >= g_state->gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
  t->gpu = &g_state->gpus[t->index];
  t->m = NULL;
  if (t->mig >= 0) {
    /* a MIG handle dies with its MIG device, or when MIG is turned off */
    if (!t->gpu->mig_enabled || (size_t)t->mig >= t->gpu->mig_count) return NVML_ERROR_INVALID_ARGUMENT;
    t->m = &t->gpu->migs[t->mig];
  }
  return NVML_SUCCESS;
}

/* Configured failure for a call on this device: MIG device's map, then its GPU's, then the top level. */
static nvmlReturn_t device_failure(const char *function, const target *t) {
  nvmlReturn_t rc = t->m != NULL ? state_failure(&t->m->failures, function) : NVML_SUCCESS;
  if (rc == NVML_SUCCESS) rc = state_failure(&t->gpu->failures, function);
  if (rc == NVML_SUCCESS) rc = state_failure(&g_state->failures, function);
  return rc;
}

static nvmlReturn_t enter_system(const char *function) {
  if (g_init_count == 0) return NVML_ERROR_UNINITIALIZED;
  refresh_state(0);
  return state_failure(&g_state->failures, function);
}

/* The common prologue of a per-device call: initialised, valid handle, no injected failure, not lost. */
static nvmlReturn_t enter_device(const char *function, nvmlDevice_t device, target *t) {
  if (g_init_count == 0) return NVML_ERROR_UNINITIALIZED;
  refresh_state(0);
  nvmlReturn_t rc = resolve(device, t);
  if (rc == NVML_SUCCESS) rc = device_failure(function, t);
  if (rc == NVML_SUCCESS && t->gpu->lost) rc = NVML_ERROR_GPU_IS_LOST;
  return rc;
}

static nvmlReturn_t copy_string(const char *value, char *buffer, unsigned int length) {
  if (buffer == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  size_t n = strlen(value);
  if ((size_t)length < n + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buffer, value, n + 1);
  return NVML_SUCCESS;
}

/* Runs one locked call and returns its result. */
#define LOCKED(call)                         \
  do {                                       \
    pthread_mutex_lock(&g_lock);             \
    nvmlReturn_t locked_rc_ = (call);        \
    pthread_mutex_unlock(&g_lock);           \
    return locked_rc_;                       \
  } while (0)

/* ---- init, shutdown, errors ---- */

static nvmlReturn_t init_locked(const char *function) {
  if (g_init_count == 0) {
    const char *path = getenv("MOCK_NVML_STATE");
    if (path == NULL || path[0] == '\0') {
      fprintf(stderr, "mock-nvml: %s: MOCK_NVML_STATE is not set; it must name the JSON state file\n", function);
      return NVML_ERROR_LIBRARY_NOT_FOUND;
    }
    if (g_path == NULL || strcmp(g_path, path) != 0) {
      /* a different file: start from nothing, so its own problems surface */
      char *copy = strdup(path);
      if (copy == NULL) return NVML_ERROR_MEMORY;
      free(g_path);
      g_path = copy;
      state_free(g_state);
      g_state = NULL;
      memset(&g_seen, 0, sizeof g_seen);
      g_unreadable_reported = 0;
      g_pending.valid = 0;
    }
    g_quiet = 1;
    load_result r = refresh_state(1);
    /* a file caught mid-write: give the writer a moment rather than failing init */
    for (int tries = 0; r == LOAD_INVALID && g_state == NULL && !g_seen.valid && tries < INIT_SETTLE_TRIES;
         tries++) {
      pthread_mutex_unlock(&g_lock);
      sleep_ns(WAIT_STEP_NS);
      pthread_mutex_lock(&g_lock);
      if (g_init_count > 0) break; /* another thread initialised meanwhile */
      r = refresh_state(1);
    }
    g_quiet = 0;
    if (r == LOAD_UNREADABLE || g_state == NULL) {
      fprintf(stderr, "mock-nvml: %s fails with NVML_ERROR_LIBRARY_NOT_FOUND: %s\n", function,
              g_last_error[0] != '\0' ? g_last_error : "no state loaded");
      return NVML_ERROR_LIBRARY_NOT_FOUND;
    }
  } else {
    refresh_state(0);
  }
  nvmlReturn_t rc = state_failure(&g_state->failures, function);
  if (rc != NVML_SUCCESS) return rc;
  g_init_count++;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlInit_v2(void) {
  LOCKED(init_locked(__func__));
}

NVML_API nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
  (void)flags; /* NO_GPUS / NO_ATTACH / FORCE_INIT change nothing for a simulated driver */
  LOCKED(init_locked(__func__));
}

static nvmlReturn_t shutdown_locked(void) {
  nvmlReturn_t rc = enter_system("nvmlShutdown");
  if (rc != NVML_SUCCESS) return rc;
  g_init_count--;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlShutdown(void) {
  LOCKED(shutdown_locked());
}

/* The strings libnvidia-ml returns (as NVIDIA's DCGM mirrors them); codes it added later get ours. */
NVML_API const char *nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt Request Issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires reset";
    case NVML_ERROR_OPERATING_SYSTEM: return "GPU access blocked by the operating system";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "Driver/library version mismatch";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_VGPU_ECC_NOT_SUPPORTED: return "The requested vgpu operation is not available on target device, because ECC is enabled";
    case NVML_ERROR_INSUFFICIENT_RESOURCES: return "Insufficient Resources";
    case NVML_ERROR_FREQ_NOT_SUPPORTED: return "Frequency Not Supported";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
    case NVML_ERROR_DEPRECATED: return "Deprecated";
    case NVML_ERROR_NOT_READY: return "Not Ready";
    case NVML_ERROR_GPU_NOT_FOUND: return "GPU Not Found";
    case NVML_ERROR_INVALID_STATE: return "Invalid State";
    case NVML_ERROR_RESET_TYPE_NOT_SUPPORTED: return "Reset Type Not Supported";
    default: return "Unknown Error";
  }
}

/* ---- system queries ---- */

static nvmlReturn_t system_string_locked(const char *function, int which, char *buffer, unsigned int length) {
  nvmlReturn_t rc = enter_system(function);
  if (rc != NVML_SUCCESS) return rc;
  return copy_string(which == 0 ? g_state->driver_version : g_state->nvml_version, buffer, length);
}

NVML_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
  LOCKED(system_string_locked(__func__, 0, version, length));
}

NVML_API nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
  LOCKED(system_string_locked(__func__, 1, version, length));
}

static nvmlReturn_t cuda_version_locked(const char *function, int *version) {
  nvmlReturn_t rc = enter_system(function);
  if (rc != NVML_SUCCESS) return rc;
  if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *version = g_state->cuda_driver_version;
  return NVML_SUCCESS;
}

/* Old drivers have only the unsuffixed name; current ones export both (same signature). */
NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
  LOCKED(cuda_version_locked(__func__, cudaDriverVersion));
}

#ifndef MOCK_NVML_LEGACY
NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion) {
  LOCKED(cuda_version_locked(__func__, cudaDriverVersion));
}
#endif

static nvmlReturn_t count_locked(unsigned int *count) {
  nvmlReturn_t rc = enter_system("nvmlDeviceGetCount_v2");
  if (rc != NVML_SUCCESS) return rc;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *count = (unsigned int)g_state->gpu_count;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
  LOCKED(count_locked(deviceCount));
}

/* Lookups succeed even on a lost GPU, as with the real driver, so the agent can still probe it. */
static nvmlReturn_t found(const char *function, size_t index, int slot, nvmlDevice_t *device) {
  target t = {.index = index, .mig = slot, .gpu = &g_state->gpus[index]};
  t.m = slot >= 0 ? &t.gpu->migs[slot] : NULL;
  nvmlReturn_t rc = device_failure(function, &t);
  if (rc != NVML_SUCCESS) return rc;
  *device = slot >= 0 ? mig_handle(index, (size_t)slot) : gpu_handle(index);
  return NVML_SUCCESS;
}

static nvmlReturn_t handle_by_index_locked(unsigned int index, nvmlDevice_t *device) {
  const char *function = "nvmlDeviceGetHandleByIndex_v2";
  nvmlReturn_t rc = enter_system(function);
  if (rc != NVML_SUCCESS) return rc;
  if (device == NULL || index >= g_state->gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
  return found(function, index, -1, device);
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  LOCKED(handle_by_index_locked(index, device));
}

static nvmlReturn_t handle_by_uuid_locked(const char *uuid, nvmlDevice_t *device) {
  const char *function = "nvmlDeviceGetHandleByUUID";
  nvmlReturn_t rc = enter_system(function);
  if (rc != NVML_SUCCESS) return rc;
  if (uuid == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (size_t i = 0; i < g_state->gpu_count; i++) {
    const mock_gpu *g = &g_state->gpus[i];
    if (strcmp(g->uuid, uuid) == 0) return found(function, i, -1, device);
    for (size_t k = 0; g->mig_enabled && k < g->mig_count; k++) {
      if (strcmp(g->migs[k].uuid, uuid) == 0) return found(function, i, (int)k, device);
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
  LOCKED(handle_by_uuid_locked(uuid, device));
}

static nvmlReturn_t handle_by_bus_id_locked(const char *bus_id, nvmlDevice_t *device) {
  const char *function = "nvmlDeviceGetHandleByPciBusId_v2";
  nvmlReturn_t rc = enter_system(function);
  if (rc != NVML_SUCCESS) return rc;
  mock_pci_address wanted;
  if (bus_id == NULL || device == NULL || mock_parse_pci_bus_id(bus_id, &wanted) != 0) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < g_state->gpu_count; i++) {
    const nvmlPciInfo_t *pci = &g_state->gpus[i].pci;
    mock_pci_address have;
    if (mock_parse_pci_bus_id(pci->busId, &have) == 0 && have.domain == wanted.domain && have.bus == wanted.bus &&
        have.device == wanted.device && have.function == wanted.function) {
      return found(function, i, -1, device);
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device) {
  LOCKED(handle_by_bus_id_locked(pciBusId, device));
}

/* ---- identity ---- */

static nvmlReturn_t uuid_locked(nvmlDevice_t device, char *uuid, unsigned int length) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetUUID", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  return copy_string(t.m != NULL ? t.m->uuid : t.gpu->uuid, uuid, length);
}

NVML_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
  LOCKED(uuid_locked(device, uuid, length));
}

static nvmlReturn_t name_locked(nvmlDevice_t device, char *name, unsigned int length) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetName", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (t.m == NULL) return copy_string(t.gpu->name, name, length);
  /* what the driver reports for a MIG device, e.g. "NVIDIA A100-SXM4-40GB MIG 3g.20gb" */
  char mig_name[NVML_DEVICE_NAME_V2_BUFFER_SIZE + 48];
  snprintf(mig_name, sizeof mig_name, "%s MIG %s", t.gpu->name, t.m->profile);
  return copy_string(mig_name, name, length);
}

NVML_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
  LOCKED(name_locked(device, name, length));
}

static nvmlReturn_t index_locked(nvmlDevice_t device, unsigned int *index) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetIndex", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  /* for a MIG handle, the index nvmlDeviceGetMigDeviceHandleByIndex takes (as nvml.h documents) */
  *index = t.m != NULL ? (unsigned int)t.mig : (unsigned int)t.index;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
  LOCKED(index_locked(device, index));
}

static nvmlReturn_t minor_locked(nvmlDevice_t device, unsigned int *minor) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMinorNumber", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL) return NVML_ERROR_NOT_SUPPORTED; /* MIG devices have no /dev/nvidiaN of their own */
  *minor = t.gpu->minor;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber) {
  LOCKED(minor_locked(device, minorNumber));
}

static nvmlReturn_t pci_info_locked(nvmlDevice_t device, nvmlPciInfo_t *pci) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetPciInfo_v3", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *pci = t.gpu->pci; /* a MIG device sits on its parent's PCI function */
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
  LOCKED(pci_info_locked(device, pci));
}

static nvmlReturn_t compute_capability_locked(nvmlDevice_t device, int *major, int *minor) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetCudaComputeCapability", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *major = t.gpu->cc_major;
  *minor = t.gpu->cc_minor;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
  LOCKED(compute_capability_locked(device, major, minor));
}

static nvmlReturn_t numa_node_locked(nvmlDevice_t device, unsigned int *node) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetNumaNodeId", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (node == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  /* only GPUs that are NUMA nodes themselves (Grace Hopper) answer; PCIe GPUs do not */
  if (t.gpu->gpu_numa_node_id < 0) return NVML_ERROR_NOT_SUPPORTED;
  *node = (unsigned int)t.gpu->gpu_numa_node_id;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node) {
  LOCKED(numa_node_locked(device, node));
}

/* ---- memory and processes ---- */

/*
 * Visits the processes a handle reports in the NVML lists `lists` (MOCK_PROCESS_* bits): a MIG handle
 * its MIG device's; a GPU its own, plus, while MIG is enabled, every MIG device's (NVML's aggregate
 * view). Writes up to `capacity` entries into `out` (may be NULL) and returns how many there are in
 * all; `used_mib` gets their memory sum.
 */
static size_t collect_processes(const target *t, unsigned int lists, nvmlProcessInfo_t *out, size_t capacity,
                                unsigned long long *used_mib) {
  size_t n = 0;
  unsigned long long used = 0;
  const mock_mig *only = t->m;
  size_t groups = only != NULL ? 1 : 1 + (t->gpu->mig_enabled ? t->gpu->mig_count : 0);
  for (size_t group = 0; group < groups; group++) {
    const mock_mig *mig = only != NULL ? only : group == 0 ? NULL : &t->gpu->migs[group - 1];
    const mock_process *list = mig != NULL ? mig->processes : t->gpu->processes;
    size_t count = mig != NULL ? mig->process_count : t->gpu->process_count;
    for (size_t i = 0; i < count; i++) {
      if ((list[i].lists & lists) == 0) continue;
      used += list[i].used_mib;
      if (out != NULL && n < capacity) {
        out[n].pid = list[i].pid;
        out[n].usedGpuMemory = list[i].used_mib * 1024ULL * 1024ULL;
        out[n].gpuInstanceId = mig != NULL ? mig->gi_id : NVML_NO_INSTANCE;
        out[n].computeInstanceId = mig != NULL ? mig->ci_id : NVML_NO_INSTANCE;
      }
      n++;
    }
  }
  if (used_mib != NULL) *used_mib = used;
  return n;
}

#define ALL_PROCESS_LISTS (MOCK_PROCESS_COMPUTE | MOCK_PROCESS_GRAPHICS | MOCK_PROCESS_MPS)

/*
 * Memory as nvml.h's structs describe it: `reserved` is the driver's own; free = total - reserved -
 * allocated (each process counted once); v2's `used` is the allocated memory, v1's adds the reserved.
 */
static void memory_of(const target *t, unsigned long long *total, unsigned long long *reserved,
                      unsigned long long *allocated) {
  unsigned long long used_mib = 0;
  collect_processes(t, ALL_PROCESS_LISTS, NULL, 0, &used_mib);
  *total = (t->m != NULL ? t->m->memory_mib : t->gpu->memory_mib) * 1024ULL * 1024ULL;
  *reserved = (t->m != NULL ? 0 : t->gpu->reserved_mib) * 1024ULL * 1024ULL;
  *allocated = used_mib * 1024ULL * 1024ULL;
}

static unsigned long long free_memory(unsigned long long total, unsigned long long reserved,
                                      unsigned long long allocated) {
  unsigned long long taken = reserved + allocated;
  return taken < total ? total - taken : 0;
}

static nvmlReturn_t memory_locked(nvmlDevice_t device, nvmlMemory_t *memory) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMemoryInfo", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long total, reserved, allocated;
  memory_of(&t, &total, &reserved, &allocated);
  memory->total = total;
  memory->used = allocated + reserved; /* v1: "Sum of Reserved and Allocated device memory" */
  memory->free = free_memory(total, reserved, allocated);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
  LOCKED(memory_locked(device, memory));
}

static nvmlReturn_t memory_v2_locked(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMemoryInfo_v2", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  unsigned long long total, reserved, allocated;
  memory_of(&t, &total, &reserved, &allocated);
  memory->total = total;
  memory->reserved = reserved;
  memory->used = allocated;
  memory->free = free_memory(total, reserved, allocated);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
  LOCKED(memory_v2_locked(device, memory));
}

/* The size-then-fill protocol of NVML's process queries; `lists` picks compute, graphics or MPS. */
static nvmlReturn_t running_processes_locked(const char *function, unsigned int lists, nvmlDevice_t device,
                                             unsigned int *count, nvmlProcessInfo_t *infos) {
  target t;
  nvmlReturn_t rc = enter_device(function, device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  size_t needed = collect_processes(&t, lists, NULL, 0, NULL);
  if (needed == 0) {
    *count = 0;
    return NVML_SUCCESS;
  }
  if (*count < needed) {
    *count = (unsigned int)needed;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (infos == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  collect_processes(&t, lists, infos, needed, NULL);
  *count = (unsigned int)needed;
  return NVML_SUCCESS;
}

/* _v2 fills the same 24-byte nvmlProcessInfo_v2_t as _v3; the legacy build has only _v2. */
#define PROCESS_QUERY(name, lists)                                                                        \
  NVML_API nvmlReturn_t name(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos) {   \
    LOCKED(running_processes_locked(__func__, lists, device, infoCount, infos));                         \
  }

PROCESS_QUERY(nvmlDeviceGetComputeRunningProcesses_v2, MOCK_PROCESS_COMPUTE)
PROCESS_QUERY(nvmlDeviceGetGraphicsRunningProcesses_v2, MOCK_PROCESS_GRAPHICS)
PROCESS_QUERY(nvmlDeviceGetMPSComputeRunningProcesses_v2, MOCK_PROCESS_MPS)
#ifndef MOCK_NVML_LEGACY
PROCESS_QUERY(nvmlDeviceGetComputeRunningProcesses_v3, MOCK_PROCESS_COMPUTE)
PROCESS_QUERY(nvmlDeviceGetGraphicsRunningProcesses_v3, MOCK_PROCESS_GRAPHICS)
PROCESS_QUERY(nvmlDeviceGetMPSComputeRunningProcesses_v3, MOCK_PROCESS_MPS)
#endif

#ifndef MOCK_NVML_LEGACY
/*
 * When the driver's newest utilisation sample of this GPU was taken (µs since the epoch). Without a
 * sampling period: when this state version was loaded. With one: the latest multiple of the period,
 * but never before the version was loaded (its processes did not exist earlier).
 */
static unsigned long long newest_sample_us(const mock_gpu *g) {
  if (g->sample_period_ms == 0) return g_loaded_at_us;
  unsigned long long now_us = (unsigned long long)(realtime_ns() / 1000);
  unsigned long long period_us = (unsigned long long)g->sample_period_ms * 1000ULL;
  unsigned long long boundary = now_us - now_us % period_us;
  return boundary > g_loaded_at_us ? boundary : g_loaded_at_us;
}

/* nvml.h: a sample for each process "that had some non-zero utilization during the last sample period" */
static int busy(const mock_process *p) {
  return p->sm_util != 0 || p->mem_util != 0 || p->enc_util != 0 || p->dec_util != 0;
}

static nvmlReturn_t process_utilization_locked(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                               unsigned int *count, unsigned long long last_seen) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetProcessUtilization", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL || t.gpu->mig_enabled) return NVML_ERROR_NOT_SUPPORTED;
  unsigned long long stamp = newest_sample_us(t.gpu);
  size_t n = 0;
  for (size_t i = 0; stamp > last_seen && i < t.gpu->process_count; i++) n += busy(&t.gpu->processes[i]);
  if (n == 0) return NVML_ERROR_NOT_FOUND; /* nothing newer than lastSeenTimeStamp */
  if (samples == NULL || *count < n) {
    *count = (unsigned int)n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  size_t k = 0;
  for (size_t i = 0; i < t.gpu->process_count; i++) {
    const mock_process *p = &t.gpu->processes[i];
    if (!busy(p)) continue;
    samples[k].pid = p->pid;
    samples[k].timeStamp = stamp;
    samples[k].smUtil = p->sm_util;
    samples[k].memUtil = p->mem_util;
    samples[k].encUtil = p->enc_util;
    samples[k].decUtil = p->dec_util;
    k++;
  }
  *count = (unsigned int)n;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                                      unsigned int *processSamplesCount,
                                                      unsigned long long lastSeenTimeStamp) {
  LOCKED(process_utilization_locked(device, utilization, processSamplesCount, lastSeenTimeStamp));
}
#endif

/* ---- readings ---- */

static nvmlReturn_t utilization_locked(nvmlDevice_t device, nvmlUtilization_t *utilization) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetUtilizationRates", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (utilization == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL || t.gpu->mig_enabled) return NVML_ERROR_NOT_SUPPORTED;
  utilization->gpu = t.gpu->util_gpu;
  utilization->memory = t.gpu->util_memory;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
  LOCKED(utilization_locked(device, utilization));
}

static nvmlReturn_t temperature_locked(nvmlDevice_t device, int sensor, unsigned int *temperature) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetTemperature", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (temperature == NULL || sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL) return NVML_ERROR_NOT_SUPPORTED; /* a board reading, not per instance */
  *temperature = t.gpu->temperature_c;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType, unsigned int *temp) {
  LOCKED(temperature_locked(device, sensorType, temp));
}

#ifndef MOCK_NVML_LEGACY
static nvmlReturn_t temperature_v_locked(nvmlDevice_t device, nvmlTemperature_t *temperature) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetTemperatureV", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (temperature == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (temperature->version != nvmlTemperature_v1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (temperature->sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL) return NVML_ERROR_NOT_SUPPORTED;
  temperature->temperature = (int)t.gpu->temperature_c;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *temperature) {
  LOCKED(temperature_v_locked(device, temperature));
}
#endif

static nvmlReturn_t power_locked(nvmlDevice_t device, unsigned int *power) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetPowerUsage", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (power == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL) return NVML_ERROR_NOT_SUPPORTED; /* a board reading, not per instance */
  *power = t.gpu->power_mw;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
  LOCKED(power_locked(device, power));
}

static nvmlReturn_t energy_locked(nvmlDevice_t device, unsigned long long *energy) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetTotalEnergyConsumption", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (energy == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL || !t.gpu->energy_supported) return NVML_ERROR_NOT_SUPPORTED;
  *energy = t.gpu->energy_mj;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
  LOCKED(energy_locked(device, energy));
}

/* nvmlClockType_t is a C enum (int-sized): GRAPHICS 0, SM 1, MEM 2, VIDEO 3 */
static nvmlReturn_t clock_locked(nvmlDevice_t device, int type, unsigned int *clock) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetClockInfo", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (clock == NULL || type < 0 || type >= MOCK_CLOCK_TYPES) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL) return NVML_ERROR_NOT_SUPPORTED; /* MIG instances share their GPU's clocks */
  *clock = t.gpu->clock_mhz[type];
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
  LOCKED(clock_locked(device, type, clock));
}

/* ---- MIG ---- */

static nvmlReturn_t mig_mode_locked(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMigMode", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m != NULL || !t.gpu->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
  *current = t.gpu->mig_enabled ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
  *pending = t.gpu->mig_pending ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode) {
  LOCKED(mig_mode_locked(device, currentMode, pendingMode));
}

static nvmlReturn_t max_mig_locked(nvmlDevice_t device, unsigned int *count) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMaxMigDeviceCount", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  /* nvml.h: "Returns zero if MIG is not supported" (and lists no NOT_SUPPORTED for this call) */
  *count = t.m == NULL && t.gpu->mig_capable ? MOCK_MAX_MIG_DEVICES : 0;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
  LOCKED(max_mig_locked(device, count));
}

static nvmlReturn_t mig_by_index_locked(nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetMigDeviceHandleByIndex", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (mig == NULL || t.m != NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (!t.gpu->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
  /* MIG off, or past the maximum: invalid (NVIDIA's walkers skip INVALID_ARGUMENT like NOT_FOUND) */
  if (!t.gpu->mig_enabled || index >= MOCK_MAX_MIG_DEVICES) return NVML_ERROR_INVALID_ARGUMENT;
  if (index >= t.gpu->mig_count) return NVML_ERROR_NOT_FOUND;
  *mig = mig_handle(t.index, index);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                          nvmlDevice_t *migDevice) {
  LOCKED(mig_by_index_locked(device, index, migDevice));
}

static nvmlReturn_t instance_id_locked(const char *function, nvmlDevice_t device, int compute, unsigned int *id) {
  target t;
  nvmlReturn_t rc = enter_device(function, device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (id == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m == NULL) return NVML_ERROR_NOT_SUPPORTED; /* a whole GPU has no instance ids */
  *id = compute ? t.m->ci_id : t.m->gi_id;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
  LOCKED(instance_id_locked(__func__, device, 0, id));
}

NVML_API nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) {
  LOCKED(instance_id_locked(__func__, device, 1, id));
}

static nvmlReturn_t parent_locked(nvmlDevice_t mig, nvmlDevice_t *device) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", mig, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (device == NULL || t.m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *device = gpu_handle(t.index);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device) {
  LOCKED(parent_locked(migDevice, device));
}

static nvmlReturn_t is_mig_locked(nvmlDevice_t device, unsigned int *is_mig) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceIsMigDeviceHandle", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (is_mig == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *is_mig = t.m != NULL;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice) {
  LOCKED(is_mig_locked(device, isMigDevice));
}

static nvmlReturn_t attributes_locked(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetAttributes_v2", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (attributes == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (t.m == NULL) return NVML_ERROR_NOT_SUPPORTED; /* nvml.h: MIG device handles only */
  /* engine counts of A100 GPU-instance profiles (nvidia-smi mig -lgip): 1g 1 CE, 2g 2 CE 1 NVDEC,
   * 3g/4g 2 NVDEC, 7g 5 NVDEC + JPEG + OFA */
  unsigned int g = t.m->gi_slices;
  memset(attributes, 0, sizeof *attributes);
  attributes->multiprocessorCount = t.m->multiprocessors;
  attributes->sharedCopyEngineCount = g;
  attributes->sharedDecoderCount = g >= 7 ? 5 : g >= 3 ? 2 : g - 1;
  attributes->sharedEncoderCount = 0;
  attributes->sharedJpegCount = g >= 7 ? 1 : 0;
  attributes->sharedOfaCount = g >= 7 ? 1 : 0;
  attributes->gpuInstanceSliceCount = g;
  attributes->computeInstanceSliceCount = t.m->ci_slices;
  attributes->memorySizeMB = t.m->memory_mib;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes) {
  LOCKED(attributes_locked(device, attributes));
}

/* ---- topology ---- */

/* Both handles must be whole GPUs: topology is a property of boards, not of MIG instances. */
static nvmlReturn_t enter_pair(const char *function, nvmlDevice_t a, nvmlDevice_t b, target *ta, target *tb) {
  nvmlReturn_t rc = enter_device(function, a, ta);
  if (rc == NVML_SUCCESS) rc = enter_device(function, b, tb);
  if (rc == NVML_SUCCESS && (ta->m != NULL || tb->m != NULL)) rc = NVML_ERROR_NOT_SUPPORTED;
  return rc;
}

static nvmlReturn_t common_ancestor_locked(nvmlDevice_t a, nvmlDevice_t b, int *level) {
  target ta, tb;
  nvmlReturn_t rc = enter_pair("nvmlDeviceGetTopologyCommonAncestor", a, b, &ta, &tb);
  if (rc != NVML_SUCCESS) return rc;
  if (level == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (ta.index == tb.index) {
    *level = NVML_TOPOLOGY_INTERNAL;
  } else if (ta.gpu->pcie_switch == tb.gpu->pcie_switch) {
    *level = NVML_TOPOLOGY_SINGLE;
  } else if (ta.gpu->numa_node >= 0 && ta.gpu->numa_node == tb.gpu->numa_node) {
    *level = NVML_TOPOLOGY_NODE;
  } else {
    *level = NVML_TOPOLOGY_SYSTEM;
  }
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2,
                                                          int *pathInfo) {
  LOCKED(common_ancestor_locked(device1, device2, pathInfo));
}

static int nvlinked(const mock_gpu *g, size_t peer) {
  for (size_t k = 0; k < g->nvlink_count; k++) {
    if ((size_t)g->nvlink_peers[k] == peer) return 1;
  }
  return 0;
}

static nvmlReturn_t p2p_locked(nvmlDevice_t a, nvmlDevice_t b, int index, int *status) {
  target ta, tb;
  nvmlReturn_t rc = enter_pair("nvmlDeviceGetP2PStatus", a, b, &ta, &tb);
  if (rc != NVML_SUCCESS) return rc;
  if (status == NULL || index < 0 || index >= NVML_P2P_CAPS_INDEX_UNKNOWN) return NVML_ERROR_INVALID_ARGUMENT;
  if (index == NVML_P2P_CAPS_INDEX_NVLINK) {
    *status = nvlinked(ta.gpu, tb.index) ? NVML_P2P_STATUS_OK : NVML_P2P_STATUS_NOT_SUPPORTED;
  } else {
    *status = NVML_P2P_STATUS_OK; /* PCIe peer access works between any two simulated GPUs */
  }
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t device1, nvmlDevice_t device2, int p2pIndex,
                                             int *p2pStatus) {
  LOCKED(p2p_locked(device1, device2, p2pIndex, p2pStatus));
}

/* Common checks of the per-link queries: a whole GPU that has NVLink, a link number in range. */
static nvmlReturn_t enter_link(const char *function, nvmlDevice_t device, unsigned int link, const void *out,
                               target *t) {
  nvmlReturn_t rc = enter_device(function, device, t);
  if (rc != NVML_SUCCESS) return rc;
  if (out == NULL || link >= NVML_NVLINK_MAX_LINKS) return NVML_ERROR_INVALID_ARGUMENT;
  if (t->m != NULL || t->gpu->nvlink_count == 0) return NVML_ERROR_NOT_SUPPORTED;
  return NVML_SUCCESS;
}

static nvmlReturn_t nvlink_state_locked(nvmlDevice_t device, unsigned int link, int *active) {
  target t;
  nvmlReturn_t rc = enter_link("nvmlDeviceGetNvLinkState", device, link, active, &t);
  if (rc != NVML_SUCCESS) return rc;
  *active = link < t.gpu->nvlink_count ? 1 : 0; /* nvmlEnableState_t */
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, int *isActive) {
  LOCKED(nvlink_state_locked(device, link, isActive));
}

static nvmlReturn_t nvlink_remote_locked(nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci) {
  target t;
  nvmlReturn_t rc = enter_link("nvmlDeviceGetNvLinkRemotePciInfo_v2", device, link, pci, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (link >= t.gpu->nvlink_count) return NVML_ERROR_NOT_SUPPORTED; /* an inactive link has no far end */
  *pci = g_state->gpus[t.gpu->nvlink_peers[link]].pci;
  pci->pciSubSystemId = 0; /* nvml.h: not filled by this call */
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
                                                          nvmlPciInfo_t *pci) {
  LOCKED(nvlink_remote_locked(device, link, pci));
}

/* ---- events ---- */

static struct nvmlEventSet_st *event_set(nvmlEventSet_t set) {
  uintptr_t base = (uintptr_t)&g_sets[0];
  uintptr_t p = (uintptr_t)set;
  if (p < base || p - base >= sizeof g_sets || (p - base) % sizeof g_sets[0] != 0) return NULL;
  struct nvmlEventSet_st *s = &g_sets[(p - base) / sizeof g_sets[0]];
  return s->in_use ? s : NULL;
}

static nvmlReturn_t set_create_locked(nvmlEventSet_t *set) {
  nvmlReturn_t rc = enter_system("nvmlEventSetCreate");
  if (rc != NVML_SUCCESS) return rc;
  if (set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (size_t i = 0; i < MOCK_MAX_EVENT_SETS; i++) {
    struct nvmlEventSet_st *s = &g_sets[i];
    if (s->in_use) continue;
    s->in_use = 1;
    s->generation++;
    /* events already in the file are history: a new set only sees later ones */
    s->cursor = g_state->max_seq;
    memset(s->masks, 0, sizeof s->masks);
    *set = s;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_MEMORY;
}

NVML_API nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
  LOCKED(set_create_locked(set));
}

static nvmlReturn_t set_free_locked(nvmlEventSet_t set) {
  nvmlReturn_t rc = enter_system("nvmlEventSetFree");
  if (rc != NVML_SUCCESS) return rc;
  struct nvmlEventSet_st *s = event_set(set);
  if (s == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  s->in_use = 0;
  s->generation++;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  LOCKED(set_free_locked(set));
}

static nvmlReturn_t supported_events_locked(nvmlDevice_t device, unsigned long long *types) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceGetSupportedEventTypes", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  if (types == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *types = t.gpu->supported_events;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes) {
  LOCKED(supported_events_locked(device, eventTypes));
}

static nvmlReturn_t register_events_locked(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
  target t;
  nvmlReturn_t rc = enter_device("nvmlDeviceRegisterEvents", device, &t);
  if (rc != NVML_SUCCESS) return rc;
  struct nvmlEventSet_st *s = event_set(set);
  if (s == NULL || types == 0 || (types & ~NVML_EVENT_ALL) != 0) return NVML_ERROR_INVALID_ARGUMENT;
  /* all or nothing, as nvml.h describes: the set stays usable with nothing new registered */
  if ((types & ~t.gpu->supported_events) != 0) return NVML_ERROR_NOT_SUPPORTED;
  s->masks[t.index] |= types; /* a MIG handle registers its whole GPU */
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes,
                                               nvmlEventSet_t set) {
  LOCKED(register_events_locked(device, eventTypes, set));
}

/*
 * One check of the wait loop: NVML_ERROR_TIMEOUT means "nothing yet, sleep and retry"; anything else
 * ends the wait. Consumes events in seq order; those the set did not register for are skipped for good.
 */
static nvmlReturn_t wait_step_locked(nvmlEventSet_t set, unsigned long long generation, nvmlEventData_t *data) {
  nvmlReturn_t rc = enter_system("nvmlEventSetWait_v2");
  if (rc != NVML_SUCCESS) return rc;
  struct nvmlEventSet_st *s = event_set(set);
  if (s == NULL || s->generation != generation) return NVML_ERROR_INVALID_ARGUMENT; /* freed while waiting */
  for (size_t i = 0; i < g_state->gpu_count; i++) {
    if (s->masks[i] != 0 && g_state->gpus[i].lost) return NVML_ERROR_GPU_IS_LOST;
  }
  for (size_t i = 0; i < g_state->event_count; i++) {
    const mock_event *e = &g_state->events[i];
    if (e->seq <= s->cursor) continue;
    s->cursor = e->seq;
    if (e->gpu < 0 || (size_t)e->gpu >= g_state->gpu_count || (s->masks[e->gpu] & e->type) == 0) continue;
    data->device = gpu_handle((size_t)e->gpu);
    data->eventType = e->type;
    data->eventData = e->data;
    data->gpuInstanceId = e->gi_id;
    data->computeInstanceId = e->ci_id;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_TIMEOUT;
}

static nvmlReturn_t wait_begin_locked(nvmlEventSet_t set, nvmlEventData_t *data, unsigned long long *generation) {
  nvmlReturn_t rc = enter_system("nvmlEventSetWait_v2");
  if (rc != NVML_SUCCESS) return rc;
  struct nvmlEventSet_st *s = event_set(set);
  if (s == NULL || data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *generation = s->generation;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
  long long deadline = monotonic_ns() + (long long)timeoutms * NS_PER_MS;
  unsigned long long generation = 0;
  pthread_mutex_lock(&g_lock);
  nvmlReturn_t rc = wait_begin_locked(set, data, &generation);
  pthread_mutex_unlock(&g_lock);
  if (rc != NVML_SUCCESS) return rc;
  for (;;) {
    pthread_mutex_lock(&g_lock);
    rc = wait_step_locked(set, generation, data);
    pthread_mutex_unlock(&g_lock);
    if (rc != NVML_ERROR_TIMEOUT) return rc;
    long long left = deadline - monotonic_ns();
    if (left <= 0) return NVML_ERROR_TIMEOUT;
    /* never sleep holding the lock: other threads keep calling while this one waits */
    sleep_ns(left < WAIT_STEP_NS ? left : WAIT_STEP_NS);
  }
}
