/*
 * Recursive-descent JSON parser. Deliberately strict (no comments, no trailing commas, no duplicate
 * keys, no NUL characters in strings) because the file is written by tests and humans, and a
 * silently-misread state file would make a test pass or fail for the wrong reason.
 */
#include "json.h"

#include <float.h>
#include <limits.h>
#include <math.h> /* INFINITY only: a constant, no libm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any sensible state file, shallow enough that recursion can never exhaust the stack
 * of a libuv worker thread. */
#define JSON_MAX_DEPTH 64
/* digits * 10 + 9 cannot overflow below this */
#define DIGITS_LIMIT ((ULLONG_MAX - 9) / 10)


typedef struct {
  const char *text;
  size_t length;
  size_t pos;
  arena mem;
  int failed;
  size_t error_offset;
  char *error;
  size_t error_size;
} parser;

static void fail(parser *p, size_t offset, const char *message) {
  if (p->failed) return; /* keep the first, most precise error */
  p->failed = 1;
  p->error_offset = offset;
  snprintf(p->error, p->error_size, "%s", message);
}

static void *alloc(parser *p, size_t size) {
  void *out = arena_calloc(&p->mem, 1, size);
  if (out == NULL) fail(p, p->pos, "out of memory");
  return out;
}

static void skip_whitespace(parser *p) {
  while (p->pos < p->length) {
    char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static int peek(parser *p) {
  return p->pos < p->length ? (unsigned char)p->text[p->pos] : -1;
}

static int hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits of a \u escape whose 'u' is at p->pos - 1. */
static long read_hex4(parser *p) {
  if (p->length - p->pos < 4) {
    fail(p, p->pos, "truncated \\u escape");
    return -1;
  }
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit((unsigned char)p->text[p->pos + (size_t)i]);
    if (d < 0) {
      fail(p, p->pos + (size_t)i, "invalid hex digit in \\u escape");
      return -1;
    }
    v = v * 16 + d;
  }
  p->pos += 4;
  return v;
}

static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/*
 * Parses a string whose opening quote is at p->pos. The decoded form is never longer than the raw
 * form (a 6-byte \uXXXX gives at most 3 bytes, a 12-byte surrogate pair 4), so one pass to find the
 * closing quote bounds the allocation.
 */
static const char *parse_string(parser *p, size_t *out_length) {
  size_t start = p->pos;
  p->pos++; /* opening quote */
  size_t end = p->pos;
  while (end < p->length && p->text[end] != '"') {
    if (p->text[end] == '\\') end++; /* the escaped character cannot close the string */
    end++;
  }
  if (end >= p->length) {
    fail(p, start, "unterminated string");
    return NULL;
  }
  char *out = alloc(p, end - p->pos + 1);
  if (out == NULL) return NULL;
  size_t n = 0;
  while (p->pos < end) {
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c < 0x20) {
      fail(p, p->pos, "control character in string (escape it)");
      return NULL;
    }
    if (c != '\\') {
      out[n++] = (char)c;
      p->pos++;
      continue;
    }
    size_t escape_at = p->pos;
    p->pos++;
    char e = p->text[p->pos++];
    switch (e) {
      case '"': out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; break;
      case '/': out[n++] = '/'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        long cp = read_hex4(p);
        if (cp < 0) return NULL;
        if (cp == 0) {
          fail(p, escape_at, "\\u0000 is not allowed (C strings cannot hold NUL)");
          return NULL;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail(p, escape_at, "unpaired low surrogate in \\u escape");
          return NULL;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p->pos + 1 >= end || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
            fail(p, escape_at, "unpaired high surrogate in \\u escape");
            return NULL;
          }
          p->pos += 2;
          long low = read_hex4(p);
          if (low < 0) return NULL;
          if (low < 0xDC00 || low > 0xDFFF) {
            fail(p, escape_at, "high surrogate not followed by a low surrogate");
            return NULL;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        n += put_utf8(out + n, (unsigned long)cp);
        break;
      }
      default:
        fail(p, escape_at, "invalid escape sequence in string");
        return NULL;
    }
  }
  out[n] = '\0';
  p->pos = end + 1; /* closing quote */
  *out_length = n;
  return out;
}

static const double powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* mantissa * 10^exponent without libm; precision only matters for integers, which take the exact
 * path in parse_number. */
static double scale10(double mantissa, long exponent) {
  if (mantissa == 0) return 0;
  while (exponent > 22) {
    if (mantissa > 1e286) return INFINITY; /* times at least 1e23 overflows: the caller rejects it */
    mantissa *= 1e22;
    exponent -= 22;
  }
  while (exponent < -22) {
    mantissa /= 1e22;
    exponent += 22;
    if (mantissa == 0) return 0;
  }
  return exponent >= 0 ? mantissa * powers_of_ten[exponent] : mantissa / powers_of_ten[-exponent];
}

/* Parses a number by hand rather than with strtod, whose decimal point follows the host's locale. */
static int parse_number(parser *p, json_value *v) {
  size_t start = p->pos;
  int negative = 0;
  if (peek(p) == '-') {
    negative = 1;
    p->pos++;
  }
  int c = peek(p);
  if (c < '0' || c > '9') {
    fail(p, start, "invalid number");
    return -1;
  }
  unsigned long long digits = 0; /* up to 19 significant digits, exactly */
  long dropped = 0;              /* integer digits beyond those 19 */
  long exponent = 0;
  int exact = 1; /* the integer part fits in `digits` */
  if (c == '0') {
    p->pos++;
    c = peek(p);
    if (c >= '0' && c <= '9') {
      fail(p, start, "leading zeros are not allowed in numbers");
      return -1;
    }
  } else {
    while ((c = peek(p)) >= '0' && c <= '9') {
      if (digits <= DIGITS_LIMIT) {
        digits = digits * 10 + (unsigned)(c - '0');
      } else {
        dropped++;
        exact = 0;
      }
      p->pos++;
    }
  }
  int is_fraction = 0;
  if (peek(p) == '.') {
    p->pos++;
    c = peek(p);
    if (c < '0' || c > '9') {
      fail(p, p->pos, "digit expected after the decimal point");
      return -1;
    }
    while ((c = peek(p)) >= '0' && c <= '9') {
      if (digits <= DIGITS_LIMIT) {
        digits = digits * 10 + (unsigned)(c - '0');
        exponent--;
      }
      if (c != '0') is_fraction = 1;
      p->pos++;
    }
  }
  if (peek(p) == 'e' || peek(p) == 'E') {
    p->pos++;
    int exp_negative = 0;
    if (peek(p) == '+' || peek(p) == '-') exp_negative = p->text[p->pos++] == '-';
    c = peek(p);
    if (c < '0' || c > '9') {
      fail(p, p->pos, "digit expected in exponent");
      return -1;
    }
    long e = 0;
    while ((c = peek(p)) >= '0' && c <= '9') {
      if (e < 100000) e = e * 10 + (c - '0');
      p->pos++;
    }
    exponent += exp_negative ? -e : e;
  }
  double value = scale10((double)digits, exponent + dropped);
  if (value > DBL_MAX) {
    fail(p, start, "number out of range");
    return -1;
  }
  v->type = JSON_NUMBER;
  v->as.number.value = negative ? -value : value;
  v->as.number.is_integer = 0;
  if (exact && !is_fraction && exponent == 0 && dropped == 0) {
    /* the common case: a plain integer literal, kept exact */
    if (!negative && digits <= (unsigned long long)LLONG_MAX) {
      v->as.number.is_integer = 1;
      v->as.number.integer = (long long)digits;
    } else if (negative && digits <= (unsigned long long)LLONG_MAX + 1ULL) {
      v->as.number.is_integer = 1;
      v->as.number.integer = digits == (unsigned long long)LLONG_MAX + 1ULL
                                 ? -LLONG_MAX - 1
                                 : -(long long)digits;
    }
  } else {
    /* 1e3 or 2.0: integral values written another way */
    double d = v->as.number.value;
    if (d > -9.2e18 && d < 9.2e18 && (double)(long long)d == d) {
      v->as.number.is_integer = 1;
      v->as.number.integer = (long long)d;
    }
  }
  return 0;
}

static int match_literal(parser *p, const char *word) {
  size_t n = strlen(word);
  if (p->length - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return 0;
  p->pos += n;
  return 1;
}

static json_value *parse_value(parser *p, int depth);

static json_value *new_value(parser *p, json_type type) {
  json_value *v = alloc(p, sizeof(json_value));
  if (v == NULL) return NULL;
  v->type = type;
  v->offset = p->pos;
  return v;
}

static json_value *parse_array(parser *p, int depth) {
  json_value *array = new_value(p, JSON_ARRAY);
  if (array == NULL) return NULL;
  p->pos++; /* [ */
  json_value **tail = &array->as.children.first;
  skip_whitespace(p);
  if (peek(p) == ']') {
    p->pos++;
    return array;
  }
  for (;;) {
    json_value *element = parse_value(p, depth + 1);
    if (element == NULL) return NULL;
    *tail = element;
    tail = &element->next;
    array->as.children.count++;
    skip_whitespace(p);
    int c = peek(p);
    if (c == ',') {
      p->pos++;
      continue;
    }
    if (c == ']') {
      p->pos++;
      return array;
    }
    fail(p, p->pos, "expected ',' or ']' in array");
    return NULL;
  }
}

static json_value *parse_object(parser *p, int depth) {
  json_value *object = new_value(p, JSON_OBJECT);
  if (object == NULL) return NULL;
  p->pos++; /* { */
  json_value **tail = &object->as.children.first;
  skip_whitespace(p);
  if (peek(p) == '}') {
    p->pos++;
    return object;
  }
  for (;;) {
    skip_whitespace(p);
    if (peek(p) != '"') {
      fail(p, p->pos, "expected a string key in object");
      return NULL;
    }
    size_t key_offset = p->pos;
    size_t key_length = 0;
    const char *key = parse_string(p, &key_length);
    if (key == NULL) return NULL;
    for (const json_value *m = object->as.children.first; m != NULL; m = m->next) {
      if (strcmp(m->key, key) == 0) {
        fail(p, key_offset, "duplicate key in object");
        return NULL;
      }
    }
    skip_whitespace(p);
    if (peek(p) != ':') {
      fail(p, p->pos, "expected ':' after object key");
      return NULL;
    }
    p->pos++;
    json_value *member = parse_value(p, depth + 1);
    if (member == NULL) return NULL;
    member->key = key;
    *tail = member;
    tail = &member->next;
    object->as.children.count++;
    skip_whitespace(p);
    int c = peek(p);
    if (c == ',') {
      p->pos++;
      continue;
    }
    if (c == '}') {
      p->pos++;
      return object;
    }
    fail(p, p->pos, "expected ',' or '}' in object");
    return NULL;
  }
}

static json_value *parse_value(parser *p, int depth) {
  if (depth > JSON_MAX_DEPTH) {
    fail(p, p->pos, "nesting too deep");
    return NULL;
  }
  skip_whitespace(p);
  int c = peek(p);
  json_value *v;
  switch (c) {
    case '{': return parse_object(p, depth);
    case '[': return parse_array(p, depth);
    case '"': {
      v = new_value(p, JSON_STRING);
      if (v == NULL) return NULL;
      v->as.string.chars = parse_string(p, &v->as.string.length);
      return v->as.string.chars == NULL ? NULL : v;
    }
    case 't':
    case 'f':
      v = new_value(p, JSON_BOOL);
      if (v == NULL) return NULL;
      if (match_literal(p, "true")) {
        v->as.boolean = 1;
        return v;
      }
      if (match_literal(p, "false")) return v;
      break;
    case 'n':
      v = new_value(p, JSON_NULL);
      if (v == NULL) return NULL;
      if (match_literal(p, "null")) return v;
      break;
    case -1:
      fail(p, p->pos, "unexpected end of input");
      return NULL;
    default:
      if (c == '-' || (c >= '0' && c <= '9')) {
        v = new_value(p, JSON_NUMBER);
        if (v == NULL) return NULL;
        return parse_number(p, v) == 0 ? v : NULL;
      }
      break;
  }
  fail(p, p->pos, "unexpected character");
  return NULL;
}


int json_parse(const char *text, size_t length, json_doc *doc, size_t *error_offset, char *error,
               size_t error_size) {
  parser p = {.text = text, .length = length, .error = error, .error_size = error_size};
  if (error_size > 0) error[0] = '\0';
  /* a UTF-8 byte order mark is harmless: editors on some systems add one */
  if (length >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;
  json_value *root = parse_value(&p, 0);
  if (root != NULL) {
    skip_whitespace(&p);
    if (p.pos != p.length) fail(&p, p.pos, "unexpected data after the JSON value");
  }
  if (p.failed || root == NULL) {
    if (!p.failed) fail(&p, p.pos, "invalid JSON");
    arena_release(&p.mem);
    *error_offset = p.error_offset;
    doc->root = NULL;
    doc->mem.blocks = NULL;
    return -1;
  }
  doc->root = root;
  doc->mem = p.mem;
  return 0;
}

void json_free(json_doc *doc) {
  arena_release(&doc->mem);
  doc->root = NULL;
}

const json_value *json_member(const json_value *object, const char *key) {
  if (object == NULL || object->type != JSON_OBJECT) return NULL;
  for (const json_value *m = object->as.children.first; m != NULL; m = m->next) {
    if (strcmp(m->key, key) == 0) return m;
  }
  return NULL;
}

const char *json_type_name(json_type type) {
  switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
  }
  return "?";
}
