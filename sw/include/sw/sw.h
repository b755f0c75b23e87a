/*
 * sw/sw.h: the shared library's error codes and small helpers used by every daemon.
 */
#ifndef SW_SW_H
#define SW_SW_H

#include <stddef.h>
#include <stdint.h>

enum {
    SW_OK = 0,
    SW_ERR_NOMEM = -1,   /* out of memory */
    SW_ERR_INVAL = -2,   /* bad argument or malformed input; see err_desc where offered */
    SW_ERR_IO = -3,      /* a system call failed; errno-based detail goes to the log */
    SW_ERR_ADDR = -4,    /* address could not be parsed or bound */
    SW_ERR_STATE = -5,   /* call not allowed in the object's current state */
    SW_ERR_CLOSED = -6,  /* peer went away */
    SW_ERR_TOO_BIG = -7, /* input over a configured limit */
};

/** Names an SW_ERR_* code. */
const char *sw_strerror(int rv);

/** Wall clock in milliseconds since the Unix epoch. */
int64_t sw_now_ms(void);
/** Monotonic clock in nanoseconds. */
uint64_t sw_mono_ns(void);

/**
 * Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses) into a sockaddr_storage.
 * Returns 0 or SW_ERR_ADDR.
 */
struct sockaddr_storage;
int sw_addr_parse(const char *s, struct sockaddr_storage *out);
/** Formats an address as "1.2.3.4:5" or "[::1]:5" into buf (at least 64 bytes). */
const char *sw_addr_format(const void *sockaddr, char *buf, size_t len);

/** Formats unix ms as ISO 8601 UTC with milliseconds: "2026-11-28T06:40:03.123Z". buf >= 32. */
const char *sw_iso8601(int64_t unix_ms, char *buf, size_t len);

#define sw_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define SW_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))

#endif
