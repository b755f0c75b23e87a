#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw/str.h"

void sw_str_init(sw_str_t *s)
{
    memset(s, 0, sizeof(*s));
}

void sw_str_dispose(sw_str_t *s)
{
    free(s->p);
    memset(s, 0, sizeof(*s));
}

void sw_str_reset(sw_str_t *s)
{
    s->len = 0;
    s->failed = 0;
    if (s->p != NULL)
        s->p[0] = '\0';
}

int sw_str_reserve(sw_str_t *s, size_t extra)
{
    if (s->len + extra + 1 <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (p == NULL) {
        s->failed = 1;
        return SW_ERR_NOMEM;
    }
    s->p = p;
    s->cap = cap;
    return 0;
}

int sw_str_append(sw_str_t *s, const void *p, size_t len)
{
    if (sw_str_reserve(s, len) != 0)
        return SW_ERR_NOMEM;
    if (len > 0)
        memcpy(s->p + s->len, p, len);
    s->len += len;
    s->p[s->len] = '\0';
    return 0;
}

int sw_str_puts(sw_str_t *s, const char *cstr)
{
    return sw_str_append(s, cstr, strlen(cstr));
}

size_t sw_u64_dec(char *buf, uint64_t v)
{
    char tmp[SW_U64_DEC];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

int sw_str_put_u64(sw_str_t *s, uint64_t v)
{
    char buf[SW_U64_DEC];
    return sw_str_append(s, buf, sw_u64_dec(buf, v));
}

int sw_str_printf(sw_str_t *s, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return SW_ERR_INVAL;
    if ((size_t)n < sizeof(small))
        return sw_str_append(s, small, (size_t)n);
    if (sw_str_reserve(s, (size_t)n) != 0)
        return SW_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
    return 0;
}

int sw_str_json_escape(sw_str_t *s, const char *cstr)
{
    for (const unsigned char *p = (const unsigned char *)cstr; *p != '\0'; p++) {
        int rv;
        switch (*p) {
        case '"':
            rv = sw_str_append(s, "\\\"", 2);
            break;
        case '\\':
            rv = sw_str_append(s, "\\\\", 2);
            break;
        case '\n':
            rv = sw_str_append(s, "\\n", 2);
            break;
        case '\r':
            rv = sw_str_append(s, "\\r", 2);
            break;
        case '\t':
            rv = sw_str_append(s, "\\t", 2);
            break;
        default:
            if (*p < 0x20)
                rv = sw_str_printf(s, "\\u%04x", *p);
            else
                rv = sw_str_append(s, p, 1);
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}

char *sw_str_steal(sw_str_t *s, size_t *len)
{
    char *p = s->p;
    if (len != NULL)
        *len = s->len;
    sw_str_init(s);
    return p;
}
