/*
 * A small, strict JSON (RFC 8259) parser for the mock's state file. The whole document lives in one
 * arena so a half-built tree is released in one call whatever went wrong. Every value remembers its
 * byte offset so the loader can point at the offending spot in its messages.
 */
#ifndef MOCK_NVML_JSON_H
#define MOCK_NVML_JSON_H

#include <stddef.h>

#include "arena.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
  json_type type;
  size_t offset;    /* byte offset of the value's first character in the source */
  const char *key;  /* member name when the value sits in an object, else NULL */
  json_value *next; /* next element / member of the parent */
  union {
    int boolean;
    struct {
      double value;
      int is_integer;    /* an exact integer that fits in `integer` */
      long long integer; /* valid when is_integer */
    } number;
    struct {
      const char *chars; /* NUL-terminated; the parser rejects \u0000 so there is no embedded NUL */
      size_t length;
    } string;
    struct {
      json_value *first; /* elements (array) or members (object), in source order */
      size_t count;
    } children;
  } as;
};

typedef struct {
  json_value *root;
  arena mem; /* holds every value and string of the document */
} json_doc;

/*
 * Parses `length` bytes of `text` (need not be NUL-terminated). Returns 0 and fills `doc` on success;
 * returns -1 on a syntax error or allocation failure, with `*error_offset` and a message in `error`,
 * and leaves nothing to free.
 */
int json_parse(const char *text, size_t length, json_doc *doc, size_t *error_offset, char *error,
               size_t error_size);

void json_free(json_doc *doc);

/* The member named `key` of an object, or NULL (also when `object` is not an object). */
const json_value *json_member(const json_value *object, const char *key);

const char *json_type_name(json_type type);

#endif
