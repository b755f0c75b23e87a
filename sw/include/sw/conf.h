/*
 * sw/conf.h: table-driven configuration files (INI syntax, read with inih) and flag overrides.
 *
 * A daemon lists its keys once in a table of sw_conf_key_t; the same table checks the file, applies
 * command-line flags and prints the reference. Unknown keys and bad values are errors that name the
 * file, the line and the key: "origin.conf:12: [srt] latency: expected a duration such as 120ms".
 *
 * Sections may carry an argument, "[prefix live/vip]": the key's section is "prefix" and a CUSTOM
 * handler receives "live/vip" as `arg`. Keys before any section belong to section "".
 */
#ifndef SW_CONF_H
#define SW_CONF_H

#include <stddef.h>
#include <stdint.h>

enum sw_conf_type {
    SW_CONF_STR,      /* char * (strdup'ed; the previous value is freed) */
    SW_CONF_INT,      /* int64_t, within [min, max] */
    SW_CONF_BOOL,     /* int: yes/no, true/false, on/off, 1/0 */
    SW_CONF_SIZE,     /* int64_t bytes: 512, 64k, 256M, 2G (powers of 1024), within [min, max] */
    SW_CONF_DURATION, /* int64_t milliseconds: 334ms, 2s, 5m, 2h (a unit is required) */
    SW_CONF_LOGLEVEL, /* int: error, warn, info, debug */
    SW_CONF_CUSTOM,   /* handled by `custom` */
};

typedef struct sw_conf_key {
    const char *section; /* "" for the top of the file */
    const char *name;
    int type;
    size_t offset; /* of the field in the daemon's config struct */
    int64_t min, max;
    /* For SW_CONF_CUSTOM: returns 0, or -1 with *err set to a static reason. */
    int (*custom)(void *cfg, const char *arg, const char *value, const char **err);
    const char *def;  /* default, as text, for the reference */
    const char *help; /* one line */
} sw_conf_key_t;

/**
 * Loads `path` into `cfg` through the table `keys` (terminated by an entry with name NULL).
 * Returns 0, or -1 with a message naming file, line and key in err[0..errlen).
 */
int sw_conf_load(const char *path, const sw_conf_key_t *keys, void *cfg, char *err, size_t errlen);

/** The same over a string; `name` stands for the file in messages. Used by tests and the fuzzer. */
int sw_conf_load_string(const char *text, const char *name, const sw_conf_key_t *keys, void *cfg,
                        char *err, size_t errlen);

/**
 * Sets one key, as a command-line flag does. Returns 0, or -1 with a message in err.
 */
int sw_conf_set(const sw_conf_key_t *keys, void *cfg, const char *section, const char *name,
                const char *value, char *err, size_t errlen);

/** Parses a duration with a unit into milliseconds. Returns 0 or -1. */
int sw_conf_parse_duration(const char *s, int64_t *ms);
/** Parses a size with an optional k/M/G suffix into bytes. Returns 0 or -1. */
int sw_conf_parse_size(const char *s, int64_t *bytes);

/** Frees every SW_CONF_STR field of `cfg` that the table names. */
void sw_conf_free_strings(const sw_conf_key_t *keys, void *cfg);

#endif
