/*
 * The simulated machine: what one version of the state file describes, validated and with every
 * default filled in, so the API functions never have to re-check anything. A loaded state is
 * immutable; a changed file produces a new one that replaces it (under the library lock).
 */
#ifndef MOCK_NVML_STATE_H
#define MOCK_NVML_STATE_H

#include <stddef.h>

#include "arena.h"
#include "nvml_abi.h"

#define MOCK_MAX_GPUS 64
/* What nvmlDeviceGetMaxMigDeviceCount reports for a MIG-capable GPU (A100/H100: 7 GPU instances). */
#define MOCK_MAX_MIG_DEVICES 7
#define MOCK_MAX_PROCESSES 4096
#define MOCK_MAX_EVENTS 100000
#define MOCK_STATE_MAX_BYTES (16u * 1024u * 1024u)

typedef struct {
  const char *function; /* an exported name, or one without its _vN suffix */
  nvmlReturn_t code;
} mock_failure;

typedef struct {
  const mock_failure *items;
  size_t count;
} mock_failures;

/* Which of NVML's three process lists a process appears in (a bit set). */
#define MOCK_PROCESS_COMPUTE 0x1u
#define MOCK_PROCESS_GRAPHICS 0x2u
#define MOCK_PROCESS_MPS 0x4u

/* nvmlClockType_t values the mock answers: GRAPHICS 0, SM 1, MEM 2, VIDEO 3 */
#define MOCK_CLOCK_TYPES 4

typedef struct {
  unsigned int pid;
  unsigned int lists; /* MOCK_PROCESS_* bits */
  unsigned long long used_mib;
  unsigned int sm_util, mem_util, enc_util, dec_util;
} mock_process;

typedef struct {
  char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
  char profile[32];
  unsigned int gi_id, ci_id;
  unsigned int gi_slices, ci_slices; /* from the profile: <C>c.<G>g.<N>gb */
  unsigned long long memory_mib;
  unsigned int multiprocessors;
  const mock_process *processes;
  size_t process_count;
  mock_failures failures;
} mock_mig;

typedef struct {
  char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
  char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
  unsigned int minor;
  nvmlPciInfo_t pci; /* fully formatted, ready to copy out */
  unsigned long long memory_mib;
  int cc_major, cc_minor;
  unsigned int util_gpu, util_memory;
  unsigned int temperature_c;
  unsigned int power_mw;
  int energy_supported;              /* Volta (compute capability 7) and newer */
  unsigned long long energy_mj;      /* nvmlDeviceGetTotalEnergyConsumption */
  unsigned int clock_mhz[MOCK_CLOCK_TYPES];
  unsigned long long reserved_mib;   /* memory the driver keeps for itself */
  unsigned int sample_period_ms;     /* process utilisation sampling; 0 = one sample per state version */
  int numa_node;        /* -1 = unknown */
  long long pcie_switch; /* GPUs sharing a value sit behind one PCIe switch */
  int gpu_numa_node_id; /* nvmlDeviceGetNumaNodeId; -1 = not a NUMA node (NOT_SUPPORTED) */
  const int *nvlink_peers; /* link k connects to device index nvlink_peers[k] */
  size_t nvlink_count;
  int mig_capable, mig_enabled, mig_pending;
  mock_mig migs[MOCK_MAX_MIG_DEVICES];
  size_t mig_count;
  const mock_process *processes;
  size_t process_count;
  unsigned long long supported_events;
  mock_failures failures;
  int lost;
} mock_gpu;

typedef struct {
  long long seq;
  int gpu; /* index into gpus, -1 when the uuid matched nothing */
  unsigned long long type;
  unsigned long long data;
  unsigned int gi_id, ci_id;
} mock_event;

typedef struct {
  arena mem; /* owns everything below */
  char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
  char nvml_version[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE];
  int cuda_driver_version;
  mock_failures failures;
  mock_gpu *gpus;
  size_t gpu_count;
  const mock_event *events; /* sorted by seq */
  size_t event_count;
  long long max_seq; /* 0 when there are no events */
} mock_state;

/*
 * Builds a state from the file's bytes. On failure returns NULL and writes "byte N: what is wrong"
 * into `error`. Warnings about ignored fields go to stderr, prefixed with `file`.
 */
mock_state *state_load(const char *file, const char *text, size_t length, char *error, size_t error_size);

void state_free(mock_state *state);

/* The failure code configured for `function` in `failures`, or NVML_SUCCESS when there is none. */
nvmlReturn_t state_failure(const mock_failures *failures, const char *function);

#endif
