/*
 * sw/str.h: a growable byte string for building playlists, JSON and metrics text.
 *
 * Embedded object: sw_str_init() / sw_str_dispose(). Appends return 0 or SW_ERR_NOMEM; after a
 * failed append the string keeps what it had, so a caller may append many times and check
 * `s->failed` once at the end.
 */
#ifndef SW_STR_H
#define SW_STR_H

#include <stddef.h>
#include <stdint.h>

#include "sw/sw.h"

typedef struct sw_str {
    char *p; /* NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    int failed; /* set once any append ran out of memory */
} sw_str_t;

void sw_str_init(sw_str_t *s);
void sw_str_dispose(sw_str_t *s);
/** Empties the string, keeping its memory. */
void sw_str_reset(sw_str_t *s);
/** Makes room for `extra` more bytes. Returns 0 or SW_ERR_NOMEM. */
int sw_str_reserve(sw_str_t *s, size_t extra);
int sw_str_append(sw_str_t *s, const void *p, size_t len);
int sw_str_puts(sw_str_t *s, const char *cstr);
int sw_str_printf(sw_str_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends the decimal digits of `v` (what printf's "%llu" gives, without its cost). */
int sw_str_put_u64(sw_str_t *s, uint64_t v);
/**
 * Writes the decimal digits of `v` and a NUL to `buf` (SW_U64_DEC bytes are always enough).
 * Returns the number of digits.
 */
#define SW_U64_DEC 21
size_t sw_u64_dec(char *buf, uint64_t v);
/** Appends `cstr` as the inside of a JSON string (quotes not included), escaping as JSON needs. */
int sw_str_json_escape(sw_str_t *s, const char *cstr);
/** Takes the buffer out (caller frees it); the string is left empty. */
char *sw_str_steal(sw_str_t *s, size_t *len);

#endif
