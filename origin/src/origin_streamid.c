/*
 * origin_streamid.c: the SRT streamid parser. Pure code: no sockets, no allocation, fuzzed by
 * tests/fuzz/fuzz_origin_streamid.c.
 *
 * Accepted forms (SRT access control, docs/features/access-control.md in libsrt):
 *   "#!::r=live/room42,m=publish"  key=value pairs separated by ',', keys once each
 *   "live/room42"                  a plain resource
 * A resource is one or more path elements of [A-Za-z0-9_-]{1,64} separated by '/'.
 */
#include <string.h>

#include "origin_ingest.h"

#define NAME_MAX_LEN 64

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Checks a resource: elements of [A-Za-z0-9_-]{1,64} separated by single '/'. */
static int check_resource(const char *r, size_t len, const char **err_desc)
{
    size_t elem = 0;

    if (len == 0) {
        *err_desc = "empty resource";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)r[i];
        if (c == '/') {
            if (elem == 0) {
                *err_desc = "empty path element in resource";
                return -1;
            }
            elem = 0;
            continue;
        }
        if (c == '.') {
            *err_desc = "'.' not allowed in resource";
            return -1;
        }
        if (!name_char(c)) {
            *err_desc = "resource has a character outside [A-Za-z0-9_-/]";
            return -1;
        }
        if (++elem > NAME_MAX_LEN) {
            *err_desc = "path element longer than 64 characters";
            return -1;
        }
    }
    if (elem == 0) {
        *err_desc = "resource ends with '/'";
        return -1;
    }
    return 0;
}

static int copy_out(const char *s, size_t len, char *out, size_t outlen, const char *too_long,
                    const char **err_desc)
{
    if (len >= outlen) {
        *err_desc = too_long;
        return -1;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int origin_streamid_parse(const char *sid, size_t len, char *resource, size_t rlen, char *mode,
                          size_t mlen, const char **err_desc)
{
    static const char prefix[] = "#!::";
    const char *r = NULL, *m = "publish";
    size_t r_len = 0, m_len = 7;
    const char *e;

    if (err_desc == NULL)
        err_desc = &e;
    if (sid == NULL || len == 0) {
        *err_desc = "empty streamid";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sid[i];
        if (c < 0x21 || c > 0x7e) {
            *err_desc = "streamid has a space, control or non-ASCII byte";
            return -1;
        }
    }

    if (len >= 2 && sid[0] == '#' && sid[1] == '!') {
        if (len < sizeof(prefix) - 1 || memcmp(sid, prefix, sizeof(prefix) - 1) != 0) {
            *err_desc = "streamid starts with \"#!\" but not \"#!::\"";
            return -1;
        }
        const char *p = sid + sizeof(prefix) - 1, *end = sid + len;
        int seen_r = 0, seen_m = 0;
        char seen_keys[16][8];
        size_t nseen = 0;
        if (p == end) {
            *err_desc = "no key=value pairs after \"#!::\"";
            return -1;
        }
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *pend = comma != NULL ? comma : end;
            const char *eq = memchr(p, '=', (size_t)(pend - p));
            if (eq == NULL) {
                *err_desc = pend == p ? "empty key=value pair" : "key without '=value'";
                return -1;
            }
            size_t klen = (size_t)(eq - p);
            if (klen == 0 || klen >= sizeof(seen_keys[0])) {
                *err_desc = klen == 0 ? "empty key" : "key too long";
                return -1;
            }
            for (size_t i = 0; i < nseen; i++) {
                if (strlen(seen_keys[i]) == klen && memcmp(seen_keys[i], p, klen) == 0) {
                    *err_desc = "duplicate key";
                    return -1;
                }
            }
            if (nseen == sizeof(seen_keys) / sizeof(seen_keys[0])) {
                *err_desc = "too many keys";
                return -1;
            }
            memcpy(seen_keys[nseen], p, klen);
            seen_keys[nseen++][klen] = '\0';
            const char *v = eq + 1;
            size_t vlen = (size_t)(pend - v);
            if (klen == 1 && p[0] == 'r') {
                r = v;
                r_len = vlen;
                seen_r = 1;
            } else if (klen == 1 && p[0] == 'm') {
                m = v;
                m_len = vlen;
                seen_m = 1;
            }
            if (comma == NULL)
                break;
            p = comma + 1;
            if (p == end) {
                *err_desc = "trailing ',' (unterminated pair)";
                return -1;
            }
        }
        if (!seen_r) {
            *err_desc = "no resource (r=) in streamid";
            return -1;
        }
        if (seen_m) {
            if (m_len == 0) {
                *err_desc = "empty mode (m=)";
                return -1;
            }
            for (size_t i = 0; i < m_len; i++) {
                if (m[i] < 'a' || m[i] > 'z') {
                    *err_desc = "mode (m=) is not a lowercase word";
                    return -1;
                }
            }
        }
    } else {
        r = sid;
        r_len = len;
    }

    if (check_resource(r, r_len, err_desc) != 0)
        return -1;
    if (copy_out(r, r_len, resource, rlen, "resource too long", err_desc) != 0)
        return -1;
    if (copy_out(m, m_len, mode, mlen, "mode too long", err_desc) != 0)
        return -1;
    return 0;
}

/*
 * The name of a resource: its elements after the first (the application, "live" by convention)
 * joined by '-', or its only element. "live/room42" is "room42", "live/vip/room42" is
 * "vip-room42". The name keeps every element that a rule can match, so that the resource a name
 * is matched against ("live/NAME", origin_canonical_resource()) is a function of the name alone:
 * every route to one name meets the same rule.
 */
int origin_stream_name(const char *resource, char *name, size_t nlen, const char **err_desc)
{
    const char *e;

    if (err_desc == NULL)
        err_desc = &e;
    if (resource == NULL || resource[0] == '\0') {
        *err_desc = "empty resource";
        return -1;
    }
    size_t rlen = strlen(resource);
    if (check_resource(resource, rlen, err_desc) != 0)
        return -1;
    const char *slash = strchr(resource, '/');
    const char *rest = slash != NULL ? slash + 1 : resource;
    size_t len = rlen - (size_t)(rest - resource);
    if (len > NAME_MAX_LEN) {
        *err_desc = "stream name longer than 64 characters";
        return -1;
    }
    if (copy_out(rest, len, name, nlen, "stream name too long for the buffer", err_desc) != 0)
        return -1;
    for (char *p = name; *p != '\0'; p++)
        if (*p == '/')
            *p = '-';
    return 0;
}

int origin_rule_prefix(const char *prefix, char *out, size_t outlen, const char **err_desc)
{
    static const char app[] = "live";
    const char *e;

    if (err_desc == NULL)
        err_desc = &e;
    size_t len = strlen(prefix);
    if (len != 0 && (strncmp(prefix, app, sizeof(app) - 1) != 0 ||
                     (len > sizeof(app) - 1 && prefix[sizeof(app) - 1] != '/'))) {
        *err_desc = "a prefix is empty or starts with \"live/\" (rules match live/NAME)";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)prefix[i]) && prefix[i] != '/') {
            *err_desc = "a prefix has a character outside [A-Za-z0-9_-/]";
            return -1;
        }
    }
    if (copy_out(prefix, len, out, outlen, "prefix too long", err_desc) != 0)
        return -1;
    /* Past "live/", a '/' is the '-' it becomes in a name. */
    for (size_t i = sizeof(app); i < len; i++)
        if (out[i] == '/')
            out[i] = '-';
    return 0;
}
