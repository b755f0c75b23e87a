/*
 * edge_key.c: edge_key_normalize(), request path and query to cache key.
 *
 * Two requests for the same bytes must map to one key, or the cache splits its hit ratio across
 * spellings; two requests for different bytes must never share one. So escapes are brought to one
 * spelling, and anything that could reach another resource once decoded by the origin (dot
 * segments, encoded slashes) is refused rather than rewritten.
 */
#include <string.h>

#include "edge/http_util.h"
#include "edge_int.h"

static const char *const default_keep[] = {"_HLS_msn", "_HLS_part", "_HLS_skip", "dvr", NULL};

#define MAX_KEPT 16

typedef struct wbuf {
    char *p;
    size_t len, cap; /* cap excludes the NUL */
} wbuf_t;

static int put(wbuf_t *w, char c)
{
    if (w->len >= w->cap)
        return -1;
    w->p[w->len++] = c;
    return 0;
}

static int unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

enum { MODE_PATH, MODE_QUERY };

/*
 * Copies one character of input at s[*i] (an escape takes three) to `w` in canonical form.
 * Returns 0, or -1 with *why set, or -2 when `w` is full.
 */
static int put_canon(wbuf_t *w, const char *s, size_t n, size_t *i, int mode, const char **why)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = (unsigned char)s[*i];

    if (c == '%') {
        int hi, lo;
        if (n - *i < 3) {
            *why = "truncated percent-escape";
            return -1;
        }
        if ((hi = edge__hexval((unsigned char)s[*i + 1])) < 0 ||
            (lo = edge__hexval((unsigned char)s[*i + 2])) < 0) {
            *why = "percent-escape is not two hex digits";
            return -1;
        }
        int v = hi << 4 | lo;
        *i += 3;
        if (mode == MODE_PATH && (v == '/' || v == '\\')) {
            *why = "encoded slash or backslash in path";
            return -1;
        }
        if (mode == MODE_PATH && v == 0) {
            *why = "encoded NUL in path";
            return -1;
        }
        if (unreserved(v))
            return put(w, (char)v) ? -2 : 0;
        if (put(w, '%') || put(w, hex[v >> 4]) || put(w, hex[v & 15]))
            return -2;
        return 0;
    }
    if (c <= 0x20 || c >= 0x7f) {
        *why = "byte outside visible ASCII";
        return -1;
    }
    if (c == '\\' && mode == MODE_PATH) {
        *why = "backslash in path";
        return -1;
    }
    /* A '?' left in a path whose query came separately would end the path when the key is read
     * back; it is data here, so it gets escaped. */
    if (c == '?' && mode == MODE_PATH) {
        *i += 1;
        return put(w, '%') || put(w, '3') || put(w, 'F') ? -2 : 0;
    }
    *i += 1;
    return put(w, (char)c) ? -2 : 0;
}

/* Handles the segment that just ended at w->len: drops ".", refuses "..". */
static int end_segment(wbuf_t *w, size_t seg, const char **why)
{
    size_t n = w->len - seg;
    if (n == 1 && w->p[seg] == '.') {
        w->len = seg;
    } else if (n == 2 && w->p[seg] == '.' && w->p[seg + 1] == '.') {
        *why = "\"..\" segment in path";
        return -1;
    }
    return 0;
}

/* Visible ASCII but for the bytes put_canon() and norm_path() treat apart. */
static int path_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '%' && c != '\\' && c != '?' && c != '/';
}

static int norm_path(wbuf_t *w, const char *s, size_t n, const char **why)
{
    if (n == 0 || s[0] != '/') {
        *why = "path does not start with /";
        return -1;
    }
    size_t seg = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '/') {
            if (w->len > 0 && end_segment(w, seg, why) != 0)
                return -1;
            if (w->len == 0 || w->p[w->len - 1] != '/') {
                if (put(w, '/'))
                    return -2;
            }
            seg = w->len;
            i++;
            continue;
        }
        /* A run of bytes put_canon() would copy as they are goes in one piece. */
        size_t run = i;
        while (run < n && path_plain((unsigned char)s[run]))
            run++;
        if (run > i) {
            if (w->cap - w->len < run - i)
                return -2;
            memcpy(w->p + w->len, s + i, run - i);
            w->len += run - i;
            i = run;
            continue;
        }
        int rv = put_canon(w, s, n, &i, MODE_PATH, why);
        if (rv != 0)
            return rv;
    }
    return end_segment(w, seg, why);
}

typedef struct kept {
    size_t off, len, namelen; /* in the scratch buffer */
} kept_t;

static int is_kept(const char *name, size_t len, const char *const *keep)
{
    for (; *keep != NULL; keep++) {
        if (strlen(*keep) == len && memcmp(*keep, name, len) == 0)
            return 1;
    }
    return 0;
}

static int kept_cmp(const char *base, const kept_t *a, const kept_t *b)
{
    size_t n = a->namelen < b->namelen ? a->namelen : b->namelen;
    int c = memcmp(base + a->off, base + b->off, n);
    if (c != 0)
        return c;
    return a->namelen < b->namelen ? -1 : a->namelen > b->namelen;
}

static int norm_query(wbuf_t *out, const char *s, size_t n, const char *const *keep,
                      const char **why)
{
    char scratch[EDGE_KEY_MAX];
    wbuf_t w = {scratch, 0, sizeof(scratch)};
    kept_t kept[MAX_KEPT];
    size_t nkept = 0;

    for (size_t i = 0; i <= n;) {
        size_t end = i;
        while (end < n && s[end] != '&')
            end++;
        if (end == i) { /* empty parameter, as in "a=1&&b=2" */
            i++;
            continue;
        }
        size_t start = w.len, eq = i;
        while (eq < end && s[eq] != '=')
            eq++;
        for (size_t j = i; j < eq;) {
            int rv = put_canon(&w, s, eq, &j, MODE_QUERY, why);
            if (rv != 0)
                return rv;
        }
        size_t namelen = w.len - start;
        if (!is_kept(scratch + start, namelen, keep)) {
            /* Still check the value, so a malformed request is refused whatever it carries. */
            for (size_t j = eq + 1; j < end;) {
                int rv = put_canon(&w, s, end, &j, MODE_QUERY, why);
                if (rv != 0)
                    return rv;
            }
            w.len = start;
            i = end + 1;
            continue;
        }
        if (eq + 1 < end) {
            if (put(&w, '='))
                return -2;
            for (size_t j = eq + 1; j < end;) {
                int rv = put_canon(&w, s, end, &j, MODE_QUERY, why);
                if (rv != 0)
                    return rv;
            }
        }
        if (nkept == MAX_KEPT) {
            *why = "too many kept query parameters";
            return -1;
        }
        kept[nkept++] = (kept_t){start, w.len - start, namelen};
        i = end + 1;
    }
    /* Insertion sort by name: at most MAX_KEPT entries. */
    for (size_t a = 1; a < nkept; a++) {
        kept_t k = kept[a];
        size_t b = a;
        for (; b > 0 && kept_cmp(scratch, &kept[b - 1], &k) > 0; b--)
            kept[b] = kept[b - 1];
        kept[b] = k;
    }
    for (size_t a = 0; a < nkept; a++) {
        if (a > 0 && kept_cmp(scratch, &kept[a - 1], &kept[a]) == 0) {
            *why = "a kept query parameter is given twice";
            return -1;
        }
        if (put(out, a == 0 ? '?' : '&'))
            return -2;
        if (out->cap - out->len < kept[a].len)
            return -2;
        memcpy(out->p + out->len, scratch + kept[a].off, kept[a].len);
        out->len += kept[a].len;
    }
    return 0;
}

int edge_key_normalize(const char *path, const char *query, const edge_key_rules_t *rules,
                       char *out, size_t outlen, const char **err_desc)
{
    const char *why = NULL, *dummy;
    const char *const *keep = rules != NULL && rules->keep != NULL ? rules->keep : default_keep;
    size_t plen = strcspn(path, query == NULL ? "?#" : "#");
    int rv;

    if (err_desc == NULL)
        err_desc = &dummy;
    if (outlen == 0) {
        *err_desc = "key longer than the output buffer";
        return EDGE_ERR_TOO_BIG;
    }
    if (query == NULL && path[plen] == '?')
        query = path + plen + 1;
    wbuf_t w = {out, 0, outlen - 1};
    if ((rv = norm_path(&w, path, plen, &why)) == 0 && query != NULL)
        rv = norm_query(&w, query, strcspn(query, "#"), keep, &why);
    if (rv == -2) {
        *err_desc = "key longer than the output buffer";
        out[0] = '\0';
        return EDGE_ERR_TOO_BIG;
    }
    if (rv != 0) {
        *err_desc = why;
        out[0] = '\0';
        return EDGE_ERR_INVAL;
    }
    out[w.len] = '\0';
    return 0;
}
