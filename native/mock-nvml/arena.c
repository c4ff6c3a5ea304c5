#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_SIZE 65536

struct arena_block {
  struct arena_block *next;
  size_t used;
  size_t size;
  max_align_t data[]; /* max_align_t keeps every allocation suitably aligned */
};

void *arena_calloc(arena *a, size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return NULL;
  const size_t align = sizeof(max_align_t);
  size_t bytes = count * size;
  if (bytes > SIZE_MAX - align) return NULL;
  bytes = (bytes + align - 1) / align * align;
  if (bytes == 0) bytes = align; /* distinct non-NULL pointer for empty arrays */
  struct arena_block *b = a->blocks;
  if (b == NULL || b->size - b->used < bytes) {
    size_t capacity = bytes > ARENA_BLOCK_SIZE ? bytes : ARENA_BLOCK_SIZE;
    b = malloc(sizeof(struct arena_block) + capacity);
    if (b == NULL) return NULL;
    b->size = capacity;
    b->used = 0;
    /* a big one-off block goes second so the current block keeps serving small allocations */
    if (capacity > ARENA_BLOCK_SIZE && a->blocks != NULL) {
      b->next = a->blocks->next;
      a->blocks->next = b;
    } else {
      b->next = a->blocks;
      a->blocks = b;
    }
  }
  void *out = (char *)b->data + b->used;
  b->used += bytes;
  memset(out, 0, bytes);
  return out;
}

void arena_release(arena *a) {
  struct arena_block *b = a->blocks;
  while (b != NULL) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->blocks = NULL;
}
