/*
 * A bump allocator: many small allocations, one free. Both the parsed JSON document and the loaded
 * state live in one arena each, so no error path can leak or double-free part of a tree.
 */
#ifndef MOCK_NVML_ARENA_H
#define MOCK_NVML_ARENA_H

#include <stddef.h>

struct arena_block;
typedef struct {
  struct arena_block *blocks;
} arena;

/* Zero-filled, aligned for any type; NULL when out of memory (or when count * size overflows). */
void *arena_calloc(arena *a, size_t count, size_t size);
void arena_release(arena *a);

#endif
