/*
 * Configuration files through inih, checked against the daemon's key table.
 *
 * inih calls the handler for every key and, since it keeps going after an error, returns the line
 * of the first key the handler refused. The handler records why; the caller prints both.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw/conf.h"
#include "sw/log.h"

typedef struct load_ctx {
    const sw_conf_key_t *keys;
    void *cfg;
    char msg[256]; /* the first error, without its line */
    int failed;
} load_ctx_t;

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

int sw_conf_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0)
        return -1;
    double mul;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -1;
    double r = v * mul;
    if (r > 9.0e15)
        return -1;
    *ms = (int64_t)(r + 0.5);
    return 0;
}

int sw_conf_parse_size(const char *s, int64_t *bytes)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v < 0)
        return -1;
    int shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    else if (*end != '\0')
        return -1;
    if (shift != 0 && end[1] != '\0')
        return -1;
    if (v > (INT64_MAX >> shift))
        return -1;
    *bytes = (int64_t)v << shift;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* "prefix live/vip" -> name "prefix", arg "live/vip". */
static void split_section(const char *section, char *name, size_t nlen, const char **arg)
{
    const char *sp = strchr(section, ' ');
    size_t n = sp ? (size_t)(sp - section) : strlen(section);
    if (n >= nlen)
        n = nlen - 1;
    memcpy(name, section, n);
    name[n] = '\0';
    *arg = sp ? sp + 1 : "";
    while (**arg == ' ')
        (*arg)++;
}

static int set_key(const sw_conf_key_t *k, void *cfg, const char *arg, const char *value,
                   const char **why)
{
    char *field = (char *)cfg + k->offset;
    int64_t v;

    switch (k->type) {
    case SW_CONF_STR: {
        char *copy = strdup(value);
        if (copy == NULL) {
            *why = "out of memory";
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case SW_CONF_INT:
        if (parse_int(value, &v) != 0) {
            *why = "expected a whole number";
            return -1;
        }
        break;
    case SW_CONF_SIZE:
        if (sw_conf_parse_size(value, &v) != 0) {
            *why = "expected a size such as 4096, 64k, 256M or 2G";
            return -1;
        }
        break;
    case SW_CONF_DURATION:
        if (sw_conf_parse_duration(value, &v) != 0) {
            *why = "expected a duration with a unit, such as 334ms, 2s, 5m or 2h";
            return -1;
        }
        break;
    case SW_CONF_BOOL:
        if (parse_bool(value, (int *)field) != 0) {
            *why = "expected yes or no";
            return -1;
        }
        return 0;
    case SW_CONF_LOGLEVEL: {
        int l = sw_log_level_parse(value);
        if (l < 0) {
            *why = "expected error, warn, info or debug";
            return -1;
        }
        *(int *)field = l;
        return 0;
    }
    case SW_CONF_CUSTOM:
        return k->custom(cfg, arg, value, why);
    default:
        *why = "unknown key type";
        return -1;
    }
    if (k->min != k->max && (v < k->min || v > k->max)) {
        *why = "value out of range";
        return -2;
    }
    *(int64_t *)field = v;
    return 0;
}

static const sw_conf_key_t *find_key(const sw_conf_key_t *keys, const char *section,
                                     const char *name)
{
    for (const sw_conf_key_t *k = keys; k->name != NULL; k++)
        if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static int set_one(const sw_conf_key_t *keys, void *cfg, const char *section, const char *name,
                   const char *value, char *msg, size_t msglen)
{
    char sec[64];
    const char *arg;
    const char *why = NULL;

    split_section(section, sec, sizeof(sec), &arg);
    const sw_conf_key_t *k = find_key(keys, sec, name);
    if (k == NULL) {
        if (sec[0] != '\0')
            snprintf(msg, msglen, "[%s] %s: unknown key", sec, name);
        else
            snprintf(msg, msglen, "%s: unknown key", name);
        return -1;
    }
    if (k->type != SW_CONF_CUSTOM && arg[0] != '\0') {
        snprintf(msg, msglen, "[%s] takes no argument (\"%s\")", sec, arg);
        return -1;
    }
    int rv = set_key(k, cfg, arg, value, &why);
    if (rv != 0) {
        char range[96] = "";
        if (rv == -2) {
            const char *unit = k->type == SW_CONF_DURATION ? "ms" : "";
            snprintf(range, sizeof(range), " (%lld%s to %lld%s)", (long long)k->min, unit,
                     (long long)k->max, unit);
        }
        if (sec[0] != '\0')
            snprintf(msg, msglen, "[%s] %s = %s: %s%s", sec, name, value, why, range);
        else
            snprintf(msg, msglen, "%s = %s: %s%s", name, value, why, range);
        return -1;
    }
    return 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *c = user;

    if (name == NULL) /* a bare "[section]" line: nothing to check until keys follow */
        return 1;
    char msg[256];
    if (set_one(c->keys, c->cfg, section, name, value, msg, sizeof(msg)) != 0) {
        if (!c->failed) {
            snprintf(c->msg, sizeof(c->msg), "%s", msg);
            c->failed = 1;
        }
        return 0;
    }
    return 1;
}

static int finish(int rv, load_ctx_t *c, const char *name, char *err, size_t errlen)
{
    if (rv == 0)
        return 0;
    if (rv == -1)
        snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
    else if (rv == -2)
        snprintf(err, errlen, "%s: out of memory", name);
    else if (c->failed)
        snprintf(err, errlen, "%s:%d: %s", name, rv, c->msg);
    else
        snprintf(err, errlen, "%s:%d: syntax error (expected \"key = value\" or \"[section]\")",
                 name, rv);
    return -1;
}

int sw_conf_load(const char *path, const sw_conf_key_t *keys, void *cfg, char *err, size_t errlen)
{
    load_ctx_t c = {.keys = keys, .cfg = cfg};
    return finish(ini_parse(path, on_ini, &c), &c, path, err, errlen);
}

int sw_conf_load_string(const char *text, const char *name, const sw_conf_key_t *keys, void *cfg,
                        char *err, size_t errlen)
{
    load_ctx_t c = {.keys = keys, .cfg = cfg};
    return finish(ini_parse_string(text, on_ini, &c), &c, name, err, errlen);
}

int sw_conf_set(const sw_conf_key_t *keys, void *cfg, const char *section, const char *name,
                const char *value, char *err, size_t errlen)
{
    return set_one(keys, cfg, section, name, value, err, errlen);
}

void sw_conf_free_strings(const sw_conf_key_t *keys, void *cfg)
{
    for (const sw_conf_key_t *k = keys; k->name != NULL; k++) {
        if (k->type == SW_CONF_STR) {
            char **field = (char **)((char *)cfg + k->offset);
            free(*field);
            *field = NULL;
        }
    }
}
