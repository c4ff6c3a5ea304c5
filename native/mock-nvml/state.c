/*
 * Turns a parsed state file into a mock_state: type checks, ranges, defaults, cross references
 * (UUIDs, NVLink peers, event targets). Anything malformed rejects the whole version, so the
 * library keeps serving the previous good one; unknown fields only warn, so a newer test file still
 * loads into an older mock.
 */
#define _POSIX_C_SOURCE 200809L

#include "state.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pci.h"

#define DEFAULT_DRIVER_VERSION "580.95.05"
#define DEFAULT_NVML_VERSION "13.580.95.05"
#define DEFAULT_CUDA_DRIVER_VERSION 13000
#define DEFAULT_GPU_NAME "NVIDIA Mock GPU"
#define DEFAULT_PCI_DEVICE_ID 0x20B010DEu /* A100-SXM4-40GB, NVIDIA's vendor id in the low half */
#define DEFAULT_MEMORY_MIB 16384
#define DEFAULT_TEMPERATURE_C 40
#define DEFAULT_POWER_MW 100000
/* A100's boost SM clock and HBM2e memory clock; the graphics clock follows the SM clock */
#define DEFAULT_SM_CLOCK_MHZ 1410
#define DEFAULT_MEMORY_CLOCK_MHZ 1593
#define DEFAULT_VIDEO_CLOCK_MHZ 1275
#define MAX_CLOCK_MHZ 100000
#define MAX_SAMPLE_PERIOD_MS 60000
/* A MiB count this large is already 1 PiB; it keeps every byte sum far from overflowing 64 bits. */
#define MAX_MIB (1ULL << 30)
/* Default pcieSwitch values start here so they never equal a small value a file sets explicitly. */
#define UNIQUE_SWITCH_BASE 0x100000000LL

typedef struct {
  const char *file;
  arena *mem;
  char *error;
  size_t error_size;
  int failed;
} loader;

/* Every function either variant exports: failure keys are checked against these to catch typos. */
static const char *const known_functions[] = {
    "nvmlInit_v2",
    "nvmlInitWithFlags",
    "nvmlShutdown",
    "nvmlErrorString",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetNVMLVersion",
    "nvmlSystemGetCudaDriverVersion",
    "nvmlSystemGetCudaDriverVersion_v2",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetHandleByPciBusId_v2",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetIndex",
    "nvmlDeviceGetMinorNumber",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetNumaNodeId",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
    "nvmlDeviceGetMPSComputeRunningProcesses_v2",
    "nvmlDeviceGetMPSComputeRunningProcesses_v3",
    "nvmlDeviceGetProcessUtilization",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceGetGpuInstanceId",
    "nvmlDeviceGetComputeInstanceId",
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
    "nvmlDeviceIsMigDeviceHandle",
    "nvmlDeviceGetAttributes_v2",
    "nvmlDeviceGetTopologyCommonAncestor",
    "nvmlDeviceGetP2PStatus",
    "nvmlDeviceGetNvLinkState",
    "nvmlDeviceGetNvLinkRemotePciInfo_v2",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
};

static const struct {
  const char *name;
  nvmlReturn_t code;
} return_code_names[] = {
    {"UNINITIALIZED", NVML_ERROR_UNINITIALIZED},
    {"INVALID_ARGUMENT", NVML_ERROR_INVALID_ARGUMENT},
    {"NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED},
    {"NO_PERMISSION", NVML_ERROR_NO_PERMISSION},
    {"ALREADY_INITIALIZED", NVML_ERROR_ALREADY_INITIALIZED},
    {"NOT_FOUND", NVML_ERROR_NOT_FOUND},
    {"INSUFFICIENT_SIZE", NVML_ERROR_INSUFFICIENT_SIZE},
    {"INSUFFICIENT_POWER", NVML_ERROR_INSUFFICIENT_POWER},
    {"DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED},
    {"TIMEOUT", NVML_ERROR_TIMEOUT},
    {"IRQ_ISSUE", NVML_ERROR_IRQ_ISSUE},
    {"LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND},
    {"FUNCTION_NOT_FOUND", NVML_ERROR_FUNCTION_NOT_FOUND},
    {"CORRUPTED_INFOROM", NVML_ERROR_CORRUPTED_INFOROM},
    {"GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST},
    {"RESET_REQUIRED", NVML_ERROR_RESET_REQUIRED},
    {"OPERATING_SYSTEM", NVML_ERROR_OPERATING_SYSTEM},
    {"LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH},
    {"IN_USE", NVML_ERROR_IN_USE},
    {"MEMORY", NVML_ERROR_MEMORY},
    {"NO_DATA", NVML_ERROR_NO_DATA},
    {"VGPU_ECC_NOT_SUPPORTED", NVML_ERROR_VGPU_ECC_NOT_SUPPORTED},
    {"INSUFFICIENT_RESOURCES", NVML_ERROR_INSUFFICIENT_RESOURCES},
    {"FREQ_NOT_SUPPORTED", NVML_ERROR_FREQ_NOT_SUPPORTED},
    {"ARGUMENT_VERSION_MISMATCH", NVML_ERROR_ARGUMENT_VERSION_MISMATCH},
    {"DEPRECATED", NVML_ERROR_DEPRECATED},
    {"NOT_READY", NVML_ERROR_NOT_READY},
    {"GPU_NOT_FOUND", NVML_ERROR_GPU_NOT_FOUND},
    {"INVALID_STATE", NVML_ERROR_INVALID_STATE},
    {"RESET_TYPE_NOT_SUPPORTED", NVML_ERROR_RESET_TYPE_NOT_SUPPORTED},
    {"UNKNOWN", NVML_ERROR_UNKNOWN},
};

/* ---- messages ---- */

static void load_error(loader *ld, const json_value *at, const char *path, const char *format, ...) {
  if (ld->failed) return;
  ld->failed = 1;
  char message[384];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  snprintf(ld->error, ld->error_size, "byte %zu: %s%s%s", at != NULL ? at->offset : 0, path,
           path[0] != '\0' ? ": " : "", message);
}

static void warn(loader *ld, const json_value *at, const char *format, ...) {
  char message[384];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  fprintf(stderr, "mock-nvml: %s: byte %zu: %s\n", ld->file, at != NULL ? at->offset : 0, message);
}

static void member_path(char *out, size_t size, const char *path, const char *key) {
  snprintf(out, size, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
}

static void index_path(char *out, size_t size, const char *path, const char *key, size_t index) {
  snprintf(out, size, "%s%s%s[%zu]", path, path[0] != '\0' ? "." : "", key, index);
}

/* Warns about members that are not in `known` (a NULL-terminated list). */
static void check_keys(loader *ld, const json_value *object, const char *path, const char *const *known) {
  for (const json_value *m = object->as.children.first; m != NULL; m = m->next) {
    int found = 0;
    for (size_t i = 0; known[i] != NULL && !found; i++) found = strcmp(known[i], m->key) == 0;
    if (!found) {
      char where[160];
      member_path(where, sizeof where, path, m->key);
      warn(ld, m, "unknown field %s (ignored)", where);
    }
  }
}

/* ---- typed getters: a missing or null member takes the default ---- */

static const json_value *present(const json_value *object, const char *key) {
  const json_value *v = json_member(object, key);
  return v != NULL && v->type != JSON_NULL ? v : NULL;
}

static int expect(loader *ld, const json_value *v, json_type type, const char *path) {
  if (v->type == type) return 0;
  load_error(ld, v, path, "expected %s, got %s", json_type_name(type), json_type_name(v->type));
  return -1;
}

static int get_int(loader *ld, const json_value *object, const char *key, const char *path, long long min,
                   long long max, long long fallback, long long *out) {
  char where[160];
  member_path(where, sizeof where, path, key);
  const json_value *v = present(object, key);
  if (v == NULL) {
    *out = fallback;
    return 0;
  }
  if (expect(ld, v, JSON_NUMBER, where) != 0) return -1;
  if (!v->as.number.is_integer) {
    load_error(ld, v, where, "expected an integer");
    return -1;
  }
  if (v->as.number.integer < min || v->as.number.integer > max) {
    load_error(ld, v, where, "%lld is out of range [%lld, %lld]", v->as.number.integer, min, max);
    return -1;
  }
  *out = v->as.number.integer;
  return 0;
}

static int get_uint(loader *ld, const json_value *object, const char *key, const char *path, unsigned int max,
                    unsigned int fallback, unsigned int *out) {
  long long v;
  if (get_int(ld, object, key, path, 0, max, fallback, &v) != 0) return -1;
  *out = (unsigned int)v;
  return 0;
}

static int get_bool(loader *ld, const json_value *object, const char *key, const char *path, int fallback,
                    int *out) {
  char where[160];
  member_path(where, sizeof where, path, key);
  const json_value *v = present(object, key);
  if (v == NULL) {
    *out = fallback;
    return 0;
  }
  if (expect(ld, v, JSON_BOOL, where) != 0) return -1;
  *out = v->as.boolean;
  return 0;
}

/* Copies a string member into a fixed buffer; it must fit with its terminator. */
static int get_string(loader *ld, const json_value *object, const char *key, const char *path,
                      const char *fallback, char *out, size_t size) {
  char where[160];
  member_path(where, sizeof where, path, key);
  const json_value *v = present(object, key);
  if (v == NULL) {
    if (fallback == NULL) {
      load_error(ld, object, where, "is required");
      return -1;
    }
    snprintf(out, size, "%s", fallback);
    return 0;
  }
  if (expect(ld, v, JSON_STRING, where) != 0) return -1;
  if (v->as.string.length == 0) {
    load_error(ld, v, where, "must not be empty");
    return -1;
  }
  if (v->as.string.length >= size) {
    load_error(ld, v, where, "is too long (at most %zu bytes)", size - 1);
    return -1;
  }
  memcpy(out, v->as.string.chars, v->as.string.length + 1);
  return 0;
}

/* A 32-bit id given as a number or as a hex string ("0x20B210DE"). */
static int get_hex32(loader *ld, const json_value *object, const char *key, const char *path,
                     unsigned int fallback, unsigned int *out) {
  char where[160];
  member_path(where, sizeof where, path, key);
  const json_value *v = present(object, key);
  if (v == NULL) {
    *out = fallback;
    return 0;
  }
  if (v->type == JSON_NUMBER) {
    long long n;
    if (get_int(ld, object, key, path, 0, 0xFFFFFFFFLL, 0, &n) != 0) return -1;
    *out = (unsigned int)n;
    return 0;
  }
  if (expect(ld, v, JSON_STRING, where) != 0) return -1;
  const char *s = v->as.string.chars;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
  unsigned long long n = 0;
  size_t digits = 0;
  for (; *s != '\0'; s++, digits++) {
    int d = *s >= '0' && *s <= '9'   ? *s - '0'
            : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
            : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                     : -1;
    if (d < 0 || digits >= 8) {
      load_error(ld, v, where, "expected a 32-bit hex number like \"0x20B210DE\"");
      return -1;
    }
    n = n * 16 + (unsigned)d;
  }
  if (digits == 0) {
    load_error(ld, v, where, "expected a 32-bit hex number like \"0x20B210DE\"");
    return -1;
  }
  *out = (unsigned int)n;
  return 0;
}

static const char *arena_strdup(loader *ld, const char *s) {
  size_t n = strlen(s) + 1;
  char *out = arena_calloc(ld->mem, n, 1);
  if (out != NULL) memcpy(out, s, n);
  return out;
}

/* ---- failures ---- */

static int is_known_function(const char *name) {
  for (size_t i = 0; i < sizeof known_functions / sizeof known_functions[0]; i++) {
    const char *f = known_functions[i];
    if (strcmp(f, name) == 0) return 1;
    /* the unsuffixed base name of a versioned function also counts */
    const char *suffix = strrchr(f, '_');
    size_t n = strlen(name);
    if (suffix != NULL && suffix[1] == 'v' && (size_t)(suffix - f) == n && strncmp(f, name, n) == 0) return 1;
  }
  return 0;
}

static int load_failures(loader *ld, const json_value *object, const char *path, mock_failures *out) {
  char where[160];
  member_path(where, sizeof where, path, "failures");
  const json_value *v = present(object, "failures");
  out->items = NULL;
  out->count = 0;
  if (v == NULL) return 0;
  if (expect(ld, v, JSON_OBJECT, where) != 0) return -1;
  mock_failure *items = arena_calloc(ld->mem, v->as.children.count, sizeof *items);
  if (items == NULL) {
    load_error(ld, v, where, "out of memory");
    return -1;
  }
  size_t n = 0;
  for (const json_value *m = v->as.children.first; m != NULL; m = m->next, n++) {
    char entry[200];
    member_path(entry, sizeof entry, where, m->key);
    nvmlReturn_t code = NVML_SUCCESS;
    if (m->type == JSON_NUMBER) {
      if (!m->as.number.is_integer || m->as.number.integer < 1 || m->as.number.integer > INT_MAX) {
        load_error(ld, m, entry, "a return code must be a positive integer");
        return -1;
      }
      code = (nvmlReturn_t)m->as.number.integer;
    } else if (m->type == JSON_STRING) {
      const char *name = m->as.string.chars;
      if (strncmp(name, "NVML_ERROR_", 11) == 0) name += 11;
      for (size_t i = 0; i < sizeof return_code_names / sizeof return_code_names[0]; i++) {
        if (strcmp(return_code_names[i].name, name) == 0) code = return_code_names[i].code;
      }
      if (code == NVML_SUCCESS) {
        load_error(ld, m, entry, "unknown return code \"%s\" (use a name like \"NOT_SUPPORTED\" or a number)",
                   m->as.string.chars);
        return -1;
      }
    } else {
      load_error(ld, m, entry, "expected a return code name or number, got %s", json_type_name(m->type));
      return -1;
    }
    if (!is_known_function(m->key)) warn(ld, m, "%s: no such mocked function (the entry has no effect)", entry);
    items[n].function = arena_strdup(ld, m->key);
    items[n].code = code;
    if (items[n].function == NULL) {
      load_error(ld, m, entry, "out of memory");
      return -1;
    }
  }
  out->items = items;
  out->count = n;
  return 0;
}

nvmlReturn_t state_failure(const mock_failures *failures, const char *function) {
  /* `function` may carry a _vN suffix that the key leaves out */
  size_t base = strlen(function);
  const char *suffix = strrchr(function, '_');
  if (suffix != NULL && suffix[1] == 'v' && suffix[2] >= '0' && suffix[2] <= '9') base = (size_t)(suffix - function);
  for (size_t i = 0; i < failures->count; i++) {
    const char *key = failures->items[i].function;
    if (strcmp(key, function) == 0 || (strlen(key) == base && strncmp(key, function, base) == 0)) {
      return failures->items[i].code;
    }
  }
  return NVML_SUCCESS;
}

/* ---- processes ---- */

/* "compute" (default), "graphics", "compute+graphics" or "mps": the NVML lists the process is in. */
static int load_process_kind(loader *ld, const json_value *p, const char *entry, unsigned int *lists) {
  static const struct {
    const char *name;
    unsigned int lists;
  } kinds[] = {{"compute", MOCK_PROCESS_COMPUTE},
               {"graphics", MOCK_PROCESS_GRAPHICS},
               {"compute+graphics", MOCK_PROCESS_COMPUTE | MOCK_PROCESS_GRAPHICS},
               {"mps", MOCK_PROCESS_MPS}};
  char kind[24];
  if (get_string(ld, p, "kind", entry, "compute", kind, sizeof kind) != 0) return -1;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strcmp(kinds[i].name, kind) == 0) {
      *lists = kinds[i].lists;
      return 0;
    }
  }
  load_error(ld, json_member(p, "kind"), entry, "kind must be \"compute\", \"graphics\", \"compute+graphics\" or \"mps\"");
  return -1;
}

static int load_processes(loader *ld, const json_value *object, const char *path, const mock_process **out,
                          size_t *count) {
  static const char *const keys[] = {"pid",     "kind",    "usedMemoryMiB", "smUtil",
                                     "memUtil", "encUtil", "decUtil",       NULL};
  char where[160];
  member_path(where, sizeof where, path, "processes");
  const json_value *v = present(object, "processes");
  *out = NULL;
  *count = 0;
  if (v == NULL) return 0;
  if (expect(ld, v, JSON_ARRAY, where) != 0) return -1;
  if (v->as.children.count > MOCK_MAX_PROCESSES) {
    load_error(ld, v, where, "at most %d processes per device", MOCK_MAX_PROCESSES);
    return -1;
  }
  mock_process *items = arena_calloc(ld->mem, v->as.children.count, sizeof *items);
  if (items == NULL) {
    load_error(ld, v, where, "out of memory");
    return -1;
  }
  size_t n = 0;
  for (const json_value *p = v->as.children.first; p != NULL; p = p->next, n++) {
    char entry[160];
    index_path(entry, sizeof entry, path, "processes", n);
    if (expect(ld, p, JSON_OBJECT, entry) != 0) return -1;
    check_keys(ld, p, entry, keys);
    long long pid;
    if (present(p, "pid") == NULL) {
      load_error(ld, p, entry, "pid is required");
      return -1;
    }
    long long used;
    if (get_int(ld, p, "pid", entry, 1, UINT_MAX, 0, &pid) != 0 ||
        get_int(ld, p, "usedMemoryMiB", entry, 0, (long long)MAX_MIB, 0, &used) != 0 ||
        get_uint(ld, p, "smUtil", entry, 100, 0, &items[n].sm_util) != 0 ||
        get_uint(ld, p, "memUtil", entry, 100, 0, &items[n].mem_util) != 0 ||
        get_uint(ld, p, "encUtil", entry, 100, 0, &items[n].enc_util) != 0 ||
        get_uint(ld, p, "decUtil", entry, 100, 0, &items[n].dec_util) != 0 ||
        load_process_kind(ld, p, entry, &items[n].lists) != 0) {
      return -1;
    }
    items[n].pid = (unsigned int)pid;
    items[n].used_mib = (unsigned long long)used;
  }
  *out = items;
  *count = n;
  return 0;
}

/* ---- MIG devices ---- */

/* Parses "<C>c.<G>g.<N>gb" or "<G>g.<N>gb", with any suffix such as "+me" after the size. */
static int parse_profile(const char *s, unsigned int *ci_slices, unsigned int *gi_slices, unsigned int *gb) {
  unsigned int numbers[3] = {0, 0, 0};
  char units[3] = {0, 0, 0};
  size_t parts = 0;
  while (parts < 3) {
    unsigned int n = 0;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 6) n = n * 10 + (unsigned)(*s++ - '0'), digits++;
    if (digits == 0 || (*s != 'c' && *s != 'g')) return -1;
    numbers[parts] = n;
    units[parts] = *s++;
    parts++;
    if (units[parts - 1] == 'g' && *s == 'b') { /* "<N>gb": the size, always last */
      s++;
      break;
    }
    if (*s++ != '.') return -1;
  }
  /* accepted shapes: c g gb  or  g gb */
  if (parts == 3 && units[0] == 'c' && units[1] == 'g' && units[2] == 'g') {
    *ci_slices = numbers[0];
    *gi_slices = numbers[1];
    *gb = numbers[2];
  } else if (parts == 2 && units[0] == 'g' && units[1] == 'g') {
    *gi_slices = numbers[0];
    *ci_slices = numbers[0];
    *gb = numbers[1];
  } else {
    return -1;
  }
  if (*gi_slices == 0 || *ci_slices == 0 || *ci_slices > *gi_slices || *gi_slices > 8) return -1;
  return 0;
}

static int load_mig(loader *ld, const json_value *m, const char *path, size_t index, mock_mig *out) {
  static const char *const keys[] = {"uuid",           "giId",      "ciId",     "profile", "memoryMiB",
                                     "multiprocessors", "processes", "failures", NULL};
  if (expect(ld, m, JSON_OBJECT, path) != 0) return -1;
  check_keys(ld, m, path, keys);
  if (get_string(ld, m, "uuid", path, NULL, out->uuid, sizeof out->uuid) != 0) return -1;
  if (get_string(ld, m, "profile", path, NULL, out->profile, sizeof out->profile) != 0) return -1;
  unsigned int gb = 0;
  if (parse_profile(out->profile, &out->ci_slices, &out->gi_slices, &gb) != 0) {
    load_error(ld, json_member(m, "profile"), path, "profile \"%s\" is not like \"3g.20gb\" or \"1c.3g.20gb\"",
               out->profile);
    return -1;
  }
  long long memory;
  if (get_uint(ld, m, "giId", path, 0xFFFFFFFEu, (unsigned int)index + 1, &out->gi_id) != 0 ||
      get_uint(ld, m, "ciId", path, 0xFFFFFFFEu, 0, &out->ci_id) != 0 ||
      get_int(ld, m, "memoryMiB", path, 1, (long long)MAX_MIB, (long long)gb * 1024, &memory) != 0 ||
      get_uint(ld, m, "multiprocessors", path, 100000, 14 * out->ci_slices, &out->multiprocessors) != 0 ||
      load_processes(ld, m, path, &out->processes, &out->process_count) != 0 ||
      load_failures(ld, m, path, &out->failures) != 0) {
    return -1;
  }
  out->memory_mib = (unsigned long long)memory;
  return 0;
}

/* ---- GPUs ---- */

static int name_is_mig_family(const char *name) {
  static const char *const families[] = {"A100", "A30", "H100", "H200", "B200"};
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    if (strstr(name, families[i]) != NULL) return 1;
  }
  return 0;
}

static int load_events_mask(loader *ld, const json_value *v, const char *where, unsigned long long *mask) {
  if (expect(ld, v, JSON_ARRAY, where) != 0) return -1;
  *mask = 0;
  for (const json_value *e = v->as.children.first; e != NULL; e = e->next) {
    if (e->type == JSON_STRING && strcmp(e->as.string.chars, "sbe") == 0) {
      *mask |= NVML_EVENT_SBE;
    } else if (e->type == JSON_STRING && strcmp(e->as.string.chars, "dbe") == 0) {
      *mask |= NVML_EVENT_DBE;
    } else if (e->type == JSON_STRING && strcmp(e->as.string.chars, "xid") == 0) {
      *mask |= NVML_EVENT_XID;
    } else {
      load_error(ld, e, where, "event types are \"xid\", \"dbe\" or \"sbe\"");
      return -1;
    }
  }
  return 0;
}

/* The monitor's readings: energy counter, clocks, reserved memory, process sampling period. */
static int load_gpu_readings(loader *ld, const json_value *d, const char *path, mock_gpu *g) {
  long long energy, reserved;
  if (get_int(ld, d, "totalEnergyMj", path, 0, LLONG_MAX, 0, &energy) != 0 ||
      get_int(ld, d, "memoryReservedMiB", path, 0, (long long)g->memory_mib - 1, 0, &reserved) != 0 ||
      get_uint(ld, d, "processSamplePeriodMs", path, MAX_SAMPLE_PERIOD_MS, 0, &g->sample_period_ms) != 0) {
    return -1;
  }
  g->energy_mj = (unsigned long long)energy;
  g->reserved_mib = (unsigned long long)reserved;
  g->energy_supported = g->cc_major >= 7; /* nvml.h: "For Volta or newer fully supported devices" */
  g->clock_mhz[1] = DEFAULT_SM_CLOCK_MHZ;
  g->clock_mhz[2] = DEFAULT_MEMORY_CLOCK_MHZ;
  g->clock_mhz[3] = DEFAULT_VIDEO_CLOCK_MHZ;
  const json_value *clocks = present(d, "clocksMHz");
  if (clocks != NULL) {
    static const char *const clock_keys[] = {"graphics", "sm", "memory", "video", NULL};
    char where[96];
    member_path(where, sizeof where, path, "clocksMHz");
    if (expect(ld, clocks, JSON_OBJECT, where) != 0) return -1;
    check_keys(ld, clocks, where, clock_keys);
    if (get_uint(ld, clocks, "sm", where, MAX_CLOCK_MHZ, g->clock_mhz[1], &g->clock_mhz[1]) != 0 ||
        get_uint(ld, clocks, "memory", where, MAX_CLOCK_MHZ, g->clock_mhz[2], &g->clock_mhz[2]) != 0 ||
        get_uint(ld, clocks, "video", where, MAX_CLOCK_MHZ, g->clock_mhz[3], &g->clock_mhz[3]) != 0 ||
        get_uint(ld, clocks, "graphics", where, MAX_CLOCK_MHZ, g->clock_mhz[1], &g->clock_mhz[0]) != 0) {
      return -1;
    }
  } else {
    g->clock_mhz[0] = g->clock_mhz[1];
  }
  return 0;
}

static int load_gpu(loader *ld, const json_value *d, size_t index, mock_gpu *g) {
  static const char *const keys[] = {
      "uuid",       "name",          "minor",        "pciBusId",       "pciDeviceId",    "pciSubSystemId",
      "memoryTotalMiB", "computeCapability", "utilization", "temperatureC", "powerMw",     "numaNode",
      "pcieSwitch", "gpuNumaNodeId", "nvlinkPeers",  "migCapable",     "migEnabled",     "migPending",
      "migDevices", "processes",     "supportedEvents", "failures",    "lost",           "totalEnergyMj",
      "clocksMHz",  "memoryReservedMiB", "processSamplePeriodMs", NULL};
  char path[64];
  snprintf(path, sizeof path, "devices[%zu]", index);
  if (expect(ld, d, JSON_OBJECT, path) != 0) return -1;
  check_keys(ld, d, path, keys);

  if (get_string(ld, d, "uuid", path, NULL, g->uuid, sizeof g->uuid) != 0 ||
      get_string(ld, d, "name", path, DEFAULT_GPU_NAME, g->name, sizeof g->name) != 0 ||
      get_uint(ld, d, "minor", path, 255, (unsigned int)index, &g->minor) != 0) {
    return -1;
  }

  /* PCI: the bus id is normalised to NVML's own formats so callers see what a real driver prints */
  char bus_id[64];
  char default_bus_id[32];
  snprintf(default_bus_id, sizeof default_bus_id, "00000000:%02X:00.0", (unsigned)(index + 1) & 0xFF);
  if (get_string(ld, d, "pciBusId", path, default_bus_id, bus_id, sizeof bus_id) != 0) return -1;
  mock_pci_address address;
  if (mock_parse_pci_bus_id(bus_id, &address) != 0) {
    char where[96];
    member_path(where, sizeof where, path, "pciBusId");
    load_error(ld, json_member(d, "pciBusId"), where, "\"%s\" is not a PCI address like \"00000000:07:00.0\"",
               bus_id);
    return -1;
  }
  unsigned int device_id, subsystem_id;
  if (get_hex32(ld, d, "pciDeviceId", path, DEFAULT_PCI_DEVICE_ID, &device_id) != 0 ||
      get_hex32(ld, d, "pciSubSystemId", path, 0, &subsystem_id) != 0) {
    return -1;
  }
  mock_format_pci_info(&address, device_id, subsystem_id, &g->pci);

  long long memory;
  if (get_int(ld, d, "memoryTotalMiB", path, 1, (long long)MAX_MIB, DEFAULT_MEMORY_MIB, &memory) != 0) return -1;
  g->memory_mib = (unsigned long long)memory;

  g->cc_major = 8;
  g->cc_minor = 0;
  const json_value *cc = present(d, "computeCapability");
  if (cc != NULL) {
    char where[96];
    member_path(where, sizeof where, path, "computeCapability");
    if (expect(ld, cc, JSON_ARRAY, where) != 0) return -1;
    const json_value *major = cc->as.children.first;
    const json_value *minor = major != NULL ? major->next : NULL;
    if (major == NULL || minor == NULL || minor->next != NULL || major->type != JSON_NUMBER ||
        !major->as.number.is_integer || minor->type != JSON_NUMBER || !minor->as.number.is_integer ||
        major->as.number.integer < 1 ||
        major->as.number.integer > 99 || minor->as.number.integer < 0 || minor->as.number.integer > 9) {
      load_error(ld, cc, where, "expected [major, minor], like [8, 0]");
      return -1;
    }
    g->cc_major = (int)major->as.number.integer;
    g->cc_minor = (int)minor->as.number.integer;
  }

  const json_value *util = present(d, "utilization");
  if (util != NULL) {
    static const char *const util_keys[] = {"gpu", "memory", NULL};
    char where[96];
    member_path(where, sizeof where, path, "utilization");
    if (expect(ld, util, JSON_OBJECT, where) != 0) return -1;
    check_keys(ld, util, where, util_keys);
    if (get_uint(ld, util, "gpu", where, 100, 0, &g->util_gpu) != 0 ||
        get_uint(ld, util, "memory", where, 100, 0, &g->util_memory) != 0) {
      return -1;
    }
  }

  long long numa, pcie_switch, gpu_numa;
  if (get_uint(ld, d, "temperatureC", path, 200, DEFAULT_TEMPERATURE_C, &g->temperature_c) != 0 ||
      get_uint(ld, d, "powerMw", path, UINT_MAX, DEFAULT_POWER_MW, &g->power_mw) != 0 ||
      get_int(ld, d, "numaNode", path, -1, 1023, -1, &numa) != 0 ||
      get_int(ld, d, "pcieSwitch", path, 0, INT_MAX, UNIQUE_SWITCH_BASE + (long long)index, &pcie_switch) != 0 ||
      get_int(ld, d, "gpuNumaNodeId", path, 0, 1023, -1, &gpu_numa) != 0) {
    return -1;
  }
  g->numa_node = (int)numa;
  g->pcie_switch = pcie_switch;
  g->gpu_numa_node_id = (int)gpu_numa;
  if (load_gpu_readings(ld, d, path, g) != 0) return -1;

  /* nvlinkPeers: only the shape here; peers are checked against the device count afterwards */
  const json_value *peers = present(d, "nvlinkPeers");
  if (peers != NULL) {
    char where[96];
    member_path(where, sizeof where, path, "nvlinkPeers");
    if (expect(ld, peers, JSON_ARRAY, where) != 0) return -1;
    if (peers->as.children.count > NVML_NVLINK_MAX_LINKS) {
      load_error(ld, peers, where, "at most %d links", NVML_NVLINK_MAX_LINKS);
      return -1;
    }
    int *links = arena_calloc(ld->mem, peers->as.children.count, sizeof *links);
    if (links == NULL) {
      load_error(ld, peers, where, "out of memory");
      return -1;
    }
    size_t n = 0;
    for (const json_value *p = peers->as.children.first; p != NULL; p = p->next, n++) {
      if (p->type != JSON_NUMBER || !p->as.number.is_integer || p->as.number.integer < 0 ||
          p->as.number.integer >= MOCK_MAX_GPUS) {
        load_error(ld, p, where, "peers are device indices");
        return -1;
      }
      links[n] = (int)p->as.number.integer;
    }
    g->nvlink_peers = links;
    g->nvlink_count = n;
  }

  int explicit_capable = -1;
  if (present(d, "migCapable") != NULL && get_bool(ld, d, "migCapable", path, 0, &explicit_capable) != 0) return -1;
  if (get_bool(ld, d, "migEnabled", path, 0, &g->mig_enabled) != 0 ||
      get_bool(ld, d, "migPending", path, g->mig_enabled, &g->mig_pending) != 0) {
    return -1;
  }
  g->mig_capable = explicit_capable >= 0 ? explicit_capable
                                         : g->mig_enabled || (g->cc_major >= 8 && name_is_mig_family(g->name));
  if (!g->mig_capable && (g->mig_enabled || g->mig_pending)) {
    load_error(ld, d, path, "MIG is enabled or pending on a GPU that is not MIG-capable (set migCapable: true)");
    return -1;
  }

  const json_value *migs = present(d, "migDevices");
  if (migs != NULL) {
    char where[96];
    member_path(where, sizeof where, path, "migDevices");
    if (expect(ld, migs, JSON_ARRAY, where) != 0) return -1;
    if (migs->as.children.count > MOCK_MAX_MIG_DEVICES) {
      load_error(ld, migs, where, "at most %d MIG devices per GPU", MOCK_MAX_MIG_DEVICES);
      return -1;
    }
    if (migs->as.children.count > 0 && !g->mig_capable) {
      load_error(ld, migs, where, "MIG devices on a GPU that is not MIG-capable (set migCapable: true)");
      return -1;
    }
    size_t n = 0;
    for (const json_value *m = migs->as.children.first; m != NULL; m = m->next, n++) {
      char mig_path[96];
      index_path(mig_path, sizeof mig_path, path, "migDevices", n);
      if (load_mig(ld, m, mig_path, n, &g->migs[n]) != 0) return -1;
      for (size_t k = 0; k < n; k++) {
        if (g->migs[k].gi_id == g->migs[n].gi_id && g->migs[k].ci_id == g->migs[n].ci_id) {
          load_error(ld, m, mig_path, "giId %u / ciId %u is already used by migDevices[%zu]", g->migs[n].gi_id,
                     g->migs[n].ci_id, k);
          return -1;
        }
      }
    }
    g->mig_count = n;
  }

  if (load_processes(ld, d, path, &g->processes, &g->process_count) != 0) return -1;

  g->supported_events = NVML_EVENT_SBE | NVML_EVENT_DBE | NVML_EVENT_XID;
  const json_value *events = present(d, "supportedEvents");
  if (events != NULL) {
    char where[96];
    member_path(where, sizeof where, path, "supportedEvents");
    if (load_events_mask(ld, events, where, &g->supported_events) != 0) return -1;
  }

  if (load_failures(ld, d, path, &g->failures) != 0 || get_bool(ld, d, "lost", path, 0, &g->lost) != 0) return -1;
  return 0;
}

/* ---- events ---- */

typedef struct {
  mock_event event;
  const json_value *source;
} sortable_event;

static int compare_events(const void *a, const void *b) {
  long long x = ((const sortable_event *)a)->event.seq;
  long long y = ((const sortable_event *)b)->event.seq;
  return (x > y) - (x < y);
}

/* Finds a GPU or MIG device by UUID (MIG devices are found even while MIG is disabled). */
static void find_uuid(const mock_state *s, const char *uuid, int *gpu, const mock_mig **mig) {
  *gpu = -1;
  *mig = NULL;
  for (size_t i = 0; i < s->gpu_count; i++) {
    if (strcmp(s->gpus[i].uuid, uuid) == 0) {
      *gpu = (int)i;
      return;
    }
    for (size_t j = 0; j < s->gpus[i].mig_count; j++) {
      if (strcmp(s->gpus[i].migs[j].uuid, uuid) == 0) {
        *gpu = (int)i;
        *mig = &s->gpus[i].migs[j];
        return;
      }
    }
  }
}

static int load_events(loader *ld, const json_value *root, mock_state *s) {
  static const char *const keys[] = {"seq", "uuid", "type", "xid", "giId", "ciId", NULL};
  const json_value *v = present(root, "events");
  if (v == NULL) return 0;
  if (expect(ld, v, JSON_ARRAY, "events") != 0) return -1;
  if (v->as.children.count > MOCK_MAX_EVENTS) {
    load_error(ld, v, "events", "at most %d events", MOCK_MAX_EVENTS);
    return -1;
  }
  size_t count = v->as.children.count;
  /* scratch for sorting; freed before returning, whatever happens */
  sortable_event *scratch = calloc(count > 0 ? count : 1, sizeof *scratch);
  mock_event *events = arena_calloc(ld->mem, count, sizeof *events);
  if (scratch == NULL || events == NULL) {
    free(scratch);
    load_error(ld, v, "events", "out of memory");
    return -1;
  }
  size_t n = 0;
  int rc = 0;
  for (const json_value *e = v->as.children.first; e != NULL && rc == 0; e = e->next, n++) {
    char path[48];
    snprintf(path, sizeof path, "events[%zu]", n);
    if (expect(ld, e, JSON_OBJECT, path) != 0) {
      rc = -1;
      break;
    }
    check_keys(ld, e, path, keys);
    mock_event *out = &scratch[n].event;
    scratch[n].source = e;
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    char type[16];
    long long xid;
    if (present(e, "seq") == NULL) {
      load_error(ld, e, path, "seq is required");
      rc = -1;
      break;
    }
    if (get_int(ld, e, "seq", path, 1, LLONG_MAX, 0, &out->seq) != 0 ||
        get_string(ld, e, "uuid", path, NULL, uuid, sizeof uuid) != 0 ||
        get_string(ld, e, "type", path, "xid", type, sizeof type) != 0 ||
        get_int(ld, e, "xid", path, 0, UINT_MAX, 999, &xid) != 0) {
      rc = -1;
      break;
    }
    if (strcmp(type, "xid") == 0) {
      out->type = NVML_EVENT_XID;
      out->data = (unsigned long long)xid;
    } else if (strcmp(type, "dbe") == 0 || strcmp(type, "sbe") == 0) {
      out->type = type[0] == 'd' ? NVML_EVENT_DBE : NVML_EVENT_SBE;
      out->data = 0; /* NVML only carries data for Xid events */
    } else {
      load_error(ld, json_member(e, "type"), path, "type must be \"xid\", \"dbe\" or \"sbe\"");
      rc = -1;
      break;
    }
    const mock_mig *mig;
    find_uuid(s, uuid, &out->gpu, &mig);
    if (out->gpu < 0) warn(ld, e, "%s: no device has uuid %s (the event is never delivered)", path, uuid);
    unsigned int gi_default = mig != NULL ? mig->gi_id : NVML_NO_INSTANCE;
    unsigned int ci_default = mig != NULL ? mig->ci_id : NVML_NO_INSTANCE;
    if (get_uint(ld, e, "giId", path, UINT_MAX, gi_default, &out->gi_id) != 0 ||
        get_uint(ld, e, "ciId", path, UINT_MAX, ci_default, &out->ci_id) != 0) {
      rc = -1;
      break;
    }
  }
  if (rc == 0) {
    qsort(scratch, count, sizeof *scratch, compare_events);
    for (size_t i = 0; i < count; i++) {
      if (i > 0 && scratch[i].event.seq == scratch[i - 1].event.seq) {
        load_error(ld, scratch[i].source, "events", "seq %lld appears twice", scratch[i].event.seq);
        rc = -1;
        break;
      }
      events[i] = scratch[i].event;
    }
  }
  free(scratch);
  if (rc != 0) return -1;
  s->events = events;
  s->event_count = count;
  s->max_seq = count > 0 ? events[count - 1].seq : 0;
  return 0;
}

/* ---- cross checks ---- */

/* UUIDs (GPU and MIG alike) and PCI addresses must be unique, NVLink peers must exist. */
static int check_cross_references(loader *ld, const json_value *devices, const mock_state *s) {
  const char *uuids[MOCK_MAX_GPUS * (1 + MOCK_MAX_MIG_DEVICES)];
  size_t uuid_count = 0;
  const json_value *d = devices != NULL ? devices->as.children.first : NULL;
  for (size_t i = 0; i < s->gpu_count; i++, d = d->next) {
    const mock_gpu *g = &s->gpus[i];
    char path[32];
    snprintf(path, sizeof path, "devices[%zu]", i);
    size_t first_new = uuid_count;
    uuids[uuid_count++] = g->uuid;
    for (size_t k = 0; k < g->mig_count; k++) uuids[uuid_count++] = g->migs[k].uuid;
    for (size_t a = first_new; a < uuid_count; a++) {
      for (size_t b = 0; b < a; b++) {
        if (strcmp(uuids[a], uuids[b]) == 0) {
          load_error(ld, d, path, "uuid %s is used by more than one device (GPU or MIG)", uuids[a]);
          return -1;
        }
      }
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(s->gpus[j].pci.busId, g->pci.busId) == 0) {
        load_error(ld, d, path, "pciBusId %s is already used by devices[%zu]", g->pci.busId, j);
        return -1;
      }
    }
    for (size_t k = 0; k < g->nvlink_count; k++) {
      if ((size_t)g->nvlink_peers[k] >= s->gpu_count || (size_t)g->nvlink_peers[k] == i) {
        load_error(ld, json_member(d, "nvlinkPeers"), path,
                   "nvlinkPeers[%zu] = %d is not the index of another device", k, g->nvlink_peers[k]);
        return -1;
      }
    }
  }
  return 0;
}

mock_state *state_load(const char *file, const char *text, size_t length, char *error, size_t error_size) {
  static const char *const keys[] = {"driverVersion", "cudaDriverVersion", "nvmlVersion", "failures",
                                     "devices",       "events",            NULL};
  json_doc doc;
  size_t error_offset = 0;
  char syntax[160];
  if (json_parse(text, length, &doc, &error_offset, syntax, sizeof syntax) != 0) {
    snprintf(error, error_size, "byte %zu: invalid JSON: %s", error_offset, syntax);
    return NULL;
  }
  arena mem = {0};
  mock_state *s = arena_calloc(&mem, 1, sizeof *s);
  loader ld = {.file = file, .mem = &mem, .error = error, .error_size = error_size};
  if (s == NULL) {
    load_error(&ld, doc.root, "", "out of memory");
    goto failed;
  }
  const json_value *root = doc.root;
  if (expect(&ld, root, JSON_OBJECT, "the document") != 0) goto failed;
  check_keys(&ld, root, "", keys);
  long long cuda;
  if (get_string(&ld, root, "driverVersion", "", DEFAULT_DRIVER_VERSION, s->driver_version,
                 sizeof s->driver_version) != 0 ||
      get_string(&ld, root, "nvmlVersion", "", DEFAULT_NVML_VERSION, s->nvml_version, sizeof s->nvml_version) != 0 ||
      get_int(&ld, root, "cudaDriverVersion", "", 1000, 1000000, DEFAULT_CUDA_DRIVER_VERSION, &cuda) != 0 ||
      load_failures(&ld, root, "", &s->failures) != 0) {
    goto failed;
  }
  s->cuda_driver_version = (int)cuda;

  const json_value *devices = present(root, "devices");
  if (devices != NULL) {
    if (expect(&ld, devices, JSON_ARRAY, "devices") != 0) goto failed;
    if (devices->as.children.count > MOCK_MAX_GPUS) {
      load_error(&ld, devices, "devices", "at most %d GPUs", MOCK_MAX_GPUS);
      goto failed;
    }
    s->gpus = arena_calloc(&mem, devices->as.children.count, sizeof *s->gpus);
    if (s->gpus == NULL) {
      load_error(&ld, devices, "devices", "out of memory");
      goto failed;
    }
    size_t i = 0;
    for (const json_value *d = devices->as.children.first; d != NULL; d = d->next, i++) {
      if (load_gpu(&ld, d, i, &s->gpus[i]) != 0) goto failed;
    }
    s->gpu_count = i;
  }
  if (check_cross_references(&ld, devices, s) != 0 || load_events(&ld, root, s) != 0) goto failed;

  json_free(&doc);
  s->mem = mem; /* the state now owns the arena it lives in */
  return s;

failed:
  json_free(&doc);
  arena_release(&mem);
  return NULL;
}

void state_free(mock_state *state) {
  if (state == NULL) return;
  arena mem = state->mem; /* `state` itself lives in this arena */
  arena_release(&mem);
}
