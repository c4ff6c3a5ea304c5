/*
 * MIG GPU-instance and compute-instance facts the state file does not spell out, derived from a GPU's
 * MIG devices: which NVML profile each instance has, what each profile offers, and where instances
 * sit. NVML's MIG enumeration (nvmlDeviceGetGpuInstanceProfileInfo and the instance queries) answers
 * from these. Pure functions of an immutable state; see README.md "MIG instances" for the rules.
 */
#ifndef MOCK_NVML_MIG_PROFILES_H
#define MOCK_NVML_MIG_PROFILES_H

#include <stddef.h>

#include "nvml_abi.h"
#include "state.h"

/* NVML_GPU_INSTANCE_PROFILE_* of the GPU instance a MIG device is in; -1 when NVML has none. */
int mig_gi_profile(const mock_mig *m);

/* NVML_COMPUTE_INSTANCE_PROFILE_* of a MIG device's compute instance; -1 when NVML has none. */
int mig_ci_profile(const mock_mig *m);

/*
 * `profile` (< NVML_GPU_INSTANCE_PROFILE_COUNT) as a MIG-capable GPU offers it: NVML_SUCCESS with
 * `info` filled, or NVML_ERROR_NOT_SUPPORTED.
 */
nvmlReturn_t mig_gi_profile_info(const mock_gpu *g, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info);

/*
 * Compute-instance `profile` (< NVML_COMPUTE_INSTANCE_PROFILE_COUNT) inside the GPU instance of MIG
 * slot `slot`: NVML_SUCCESS with `info` filled, or NVML_ERROR_NOT_SUPPORTED.
 */
nvmlReturn_t mig_ci_profile_info(const mock_gpu *g, size_t slot, unsigned int profile,
                                 nvmlComputeInstanceProfileInfo_t *info);

/* The first MIG slot in the same GPU instance as `slot` (the GPU instance's handle is made from it). */
size_t mig_gi_first_slot(const mock_gpu *g, size_t slot);

/* Memory slices of the GPU instance of `slot`, first fit in state order (see README.md). */
nvmlGpuInstancePlacement_t mig_gi_placement(const mock_gpu *g, size_t slot);

/* Compute slices of `slot`'s compute instance within its GPU instance, packed in state order. */
nvmlComputeInstancePlacement_t mig_ci_placement(const mock_gpu *g, size_t slot);

#endif
