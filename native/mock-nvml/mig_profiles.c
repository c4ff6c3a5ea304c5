/*
 * MIG profiles and placements derived from a GPU's state (see mig_profiles.h). The numbers follow the
 * A100's shape, which the mock's MIG devices already use (14 SMs per compute slice by default, one
 * copy engine per slice, eight memory slices); profile ids are the NVML_*_PROFILE_* values themselves,
 * as in NVIDIA's go-nvml mock, since callers only compare them with the instances' profileId.
 */
#include "mig_profiles.h"

#include <string.h>

#define MEMORY_SLICES 8
#define DEFAULT_SMS_PER_SLICE 14

/* Compute slices of each NVML_GPU_INSTANCE_PROFILE_* value the mock offers; 0 = none. */
static const unsigned int gi_profile_slices[NVML_GPU_INSTANCE_PROFILE_COUNT] = {
    [NVML_GPU_INSTANCE_PROFILE_1_SLICE] = 1, [NVML_GPU_INSTANCE_PROFILE_2_SLICE] = 2,
    [NVML_GPU_INSTANCE_PROFILE_3_SLICE] = 3, [NVML_GPU_INSTANCE_PROFILE_4_SLICE] = 4,
    [NVML_GPU_INSTANCE_PROFILE_7_SLICE] = 7, [NVML_GPU_INSTANCE_PROFILE_8_SLICE] = 8,
    [NVML_GPU_INSTANCE_PROFILE_6_SLICE] = 6, [NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1] = 1,
};

/* Compute slices of each NVML_COMPUTE_INSTANCE_PROFILE_* value the mock offers; 0 = none. */
static const unsigned int ci_profile_slices[NVML_COMPUTE_INSTANCE_PROFILE_COUNT] = {
    [NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE] = 1, [NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE] = 2,
    [NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE] = 3, [NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE] = 4,
    [NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE] = 7, [NVML_COMPUTE_INSTANCE_PROFILE_8_SLICE] = 8,
    [NVML_COMPUTE_INSTANCE_PROFILE_6_SLICE] = 6,
};

static int has_media_engines(const mock_mig *m) {
  return strstr(m->profile, "+me") != NULL;
}

static int profile_with_slices(const unsigned int *table, size_t count, unsigned int slices) {
  for (size_t p = 0; p < count; p++) {
    if (table[p] == slices) return (int)p;
  }
  return -1;
}

int mig_gi_profile(const mock_mig *m) {
  if (m->gi_slices == 1 && has_media_engines(m)) return NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1;
  return profile_with_slices(gi_profile_slices, NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1, m->gi_slices);
}

int mig_ci_profile(const mock_mig *m) {
  return profile_with_slices(ci_profile_slices, NVML_COMPUTE_INSTANCE_PROFILE_COUNT, m->ci_slices);
}

/* Memory slices a GPU instance of `slices` compute slices occupies (A100: 1, 2, 4, 4, 8). */
static unsigned int memory_slices(unsigned int slices) {
  return slices <= 2 ? slices : slices <= 4 ? 4 : MEMORY_SLICES;
}

/* SMs per compute slice: from a MIG device of `profile` if there is one, else any, else 14. */
static unsigned int sms_per_slice(const mock_gpu *g, int profile) {
  const mock_mig *any = NULL;
  for (size_t k = 0; k < g->mig_count; k++) {
    const mock_mig *m = &g->migs[k];
    if (mig_gi_profile(m) == profile) return m->multiprocessors / m->ci_slices;
    if (any == NULL) any = m;
  }
  return any != NULL ? any->multiprocessors / any->ci_slices : DEFAULT_SMS_PER_SLICE;
}

/* The profile's memory: that of a MIG device using it, else its share of the GPU's memory. */
static unsigned long long profile_memory_mib(const mock_gpu *g, int profile, unsigned int slices) {
  for (size_t k = 0; k < g->mig_count; k++) {
    if (mig_gi_profile(&g->migs[k]) == profile) return g->migs[k].memory_mib;
  }
  return g->memory_mib * memory_slices(slices) / MEMORY_SLICES;
}

/* Profiles every MIG-capable GPU offers (A100, H100: 1g, 1g+me, 2g, 3g, 4g, 7g), and those in use. */
static int offers_profile(const mock_gpu *g, int profile) {
  switch (profile) {
    case NVML_GPU_INSTANCE_PROFILE_1_SLICE:
    case NVML_GPU_INSTANCE_PROFILE_2_SLICE:
    case NVML_GPU_INSTANCE_PROFILE_3_SLICE:
    case NVML_GPU_INSTANCE_PROFILE_4_SLICE:
    case NVML_GPU_INSTANCE_PROFILE_7_SLICE:
    case NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1:
      return 1;
    default:
      for (size_t k = 0; k < g->mig_count; k++) {
        if (mig_gi_profile(&g->migs[k]) == profile) return 1;
      }
      return 0;
  }
}

nvmlReturn_t mig_gi_profile_info(const mock_gpu *g, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info) {
  if (profile >= NVML_GPU_INSTANCE_PROFILE_COUNT || !offers_profile(g, (int)profile)) {
    return NVML_ERROR_NOT_SUPPORTED;
  }
  unsigned int slices = gi_profile_slices[profile];
  int media = profile == NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 || slices >= 7;
  memset(info, 0, sizeof *info);
  info->id = profile;
  info->isP2pSupported = 0;
  info->sliceCount = slices;
  info->instanceCount = media && slices == 1 ? 1 : slices <= 7 ? 7 / slices : 1;
  info->multiprocessorCount = sms_per_slice(g, (int)profile) * slices;
  info->copyEngineCount = slices;
  info->decoderCount = profile == NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 ? 1 : slices >= 7 ? 5 : slices >= 3 ? 2 : slices - 1;
  info->encoderCount = 0;
  info->jpegCount = media ? 1 : 0;
  info->ofaCount = media ? 1 : 0;
  info->memorySizeMB = profile_memory_mib(g, (int)profile, slices);
  return NVML_SUCCESS;
}

nvmlReturn_t mig_ci_profile_info(const mock_gpu *g, size_t slot, unsigned int profile,
                                 nvmlComputeInstanceProfileInfo_t *info) {
  const mock_mig *gi = &g->migs[mig_gi_first_slot(g, slot)];
  unsigned int slices = profile < NVML_COMPUTE_INSTANCE_PROFILE_COUNT ? ci_profile_slices[profile] : 0;
  /* a GPU instance of G slices offers every compute-instance profile of at most G slices */
  if (slices == 0 || slices > gi->gi_slices) return NVML_ERROR_NOT_SUPPORTED;
  nvmlGpuInstanceProfileInfo_t parent;
  int gi_profile = mig_gi_profile(gi);
  if (gi_profile < 0 || mig_gi_profile_info(g, (unsigned int)gi_profile, &parent) != NVML_SUCCESS) {
    return NVML_ERROR_NOT_SUPPORTED;
  }
  memset(info, 0, sizeof *info);
  info->id = profile;
  info->sliceCount = slices;
  info->instanceCount = gi->gi_slices / slices;
  info->multiprocessorCount = gi->multiprocessors / gi->ci_slices * slices;
  info->sharedCopyEngineCount = parent.copyEngineCount;
  info->sharedDecoderCount = parent.decoderCount;
  info->sharedEncoderCount = parent.encoderCount;
  info->sharedJpegCount = parent.jpegCount;
  info->sharedOfaCount = parent.ofaCount;
  return NVML_SUCCESS;
}

size_t mig_gi_first_slot(const mock_gpu *g, size_t slot) {
  for (size_t k = 0; k < slot; k++) {
    if (g->migs[k].gi_id == g->migs[slot].gi_id) return k;
  }
  return slot;
}

/* First aligned start where `size` memory slices are free in `used` (a bit per slice); 0 when none. */
static unsigned int first_fit(unsigned int used, unsigned int size) {
  unsigned int mask = (1u << size) - 1u;
  for (unsigned int start = 0; start + size <= MEMORY_SLICES; start += size) {
    if ((used & (mask << start)) == 0) return start;
  }
  return 0;
}

nvmlGpuInstancePlacement_t mig_gi_placement(const mock_gpu *g, size_t slot) {
  size_t target = mig_gi_first_slot(g, slot);
  unsigned int used = 0;
  nvmlGpuInstancePlacement_t placement = {0, 0};
  for (size_t k = 0; k <= target; k++) {
    if (mig_gi_first_slot(g, k) != k) continue; /* one placement per GPU instance */
    unsigned int size = memory_slices(g->migs[k].gi_slices);
    placement.start = first_fit(used, size);
    placement.size = size;
    used |= ((1u << size) - 1u) << placement.start;
  }
  return placement;
}

nvmlComputeInstancePlacement_t mig_ci_placement(const mock_gpu *g, size_t slot) {
  nvmlComputeInstancePlacement_t placement = {0, g->migs[slot].ci_slices};
  for (size_t k = 0; k < slot; k++) {
    if (g->migs[k].gi_id == g->migs[slot].gi_id) placement.start += g->migs[k].ci_slices;
  }
  return placement;
}
