/*
 * edge/http_util.h: the HTTP pieces of the edge that map bytes to decisions, with no I/O:
 * cache keys, Range, If-None-Match, and freshness from Cache-Control / Expires / Date.
 *
 * Every function here is pure and reentrant: any thread, no allocation.
 */
#ifndef EDGE_HTTP_UTIL_H
#define EDGE_HTTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "edge/cache.h"
#include "edge/err.h"

/* ---- cache keys -------------------------------------------------------------------------- */

typedef struct edge_key_rules {
    /* Query parameter names kept in the key (exact, case-sensitive), NULL-terminated; NULL means
     * the default list {"_HLS_msn", "_HLS_part", "_HLS_skip", "dvr"}. Every other parameter
     * (utm_*, sw_* token parameters, player cache-busters) is dropped. */
    const char *const *keep;
} edge_key_rules_t;

/** The longest key edge_key_normalize() writes, NUL included, with a buffer this size. */
#define EDGE_KEY_MAX 2048

/**
 * Builds the cache key for a request: the normalized path, then "?" and the kept query parameters
 * sorted by name (bytewise), joined by "&", if any are kept. Normalization: percent-escapes of
 * unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded, other escapes get uppercase hex;
 * duplicate slashes collapse; "." segments go; a fragment ("#...") is dropped. `query` may be
 * NULL; if it is, a '?' inside `path` starts the query.
 * Rejected, with a reason in `*err_desc` (static string; `err_desc` may be NULL): a path not
 * starting with '/', a ".." segment (also as %2e%2e), an encoded '/' or '\' (%2F, %5C), an
 * encoded NUL, a raw '\', bytes outside visible ASCII, bad escapes, a kept parameter given twice,
 * and keys longer than `outlen` - 1.
 * Writes a NUL-terminated key into `out`. Returns 0, EDGE_ERR_INVAL or EDGE_ERR_TOO_BIG.
 */
int edge_key_normalize(const char *path, const char *query, const edge_key_rules_t *rules,
                       char *out, size_t outlen, const char **err_desc);

/* ---- Range ------------------------------------------------------------------------------- */

#define EDGE_RANGE_MAX  16
#define EDGE_RANGE_OPEN UINT64_MAX /* `last` of "a-" when the length is unknown */

typedef struct edge_range {
    uint64_t first; /* inclusive */
    uint64_t last;  /* inclusive; EDGE_RANGE_OPEN: to the end, length unknown */
} edge_range_t;

typedef struct edge_range_set {
    size_t n; /* 1..EDGE_RANGE_MAX when EDGE_RANGE_RANGES */
    edge_range_t r[EDGE_RANGE_MAX];
} edge_range_set_t;

typedef enum edge_range_result {
    EDGE_RANGE_NONE = 0,          /* no usable Range header: answer 200 with the whole body */
    EDGE_RANGE_RANGES = 1,        /* answer 206 with out->r[0..n) in the client's order */
    EDGE_RANGE_UNSATISFIABLE = 2, /* answer 416 with Content-Range: bytes STAR/length */
} edge_range_result_t;

/**
 * Parses a Range header value (`hdr` may be NULL: no header) against a representation of
 * `length` bytes (-1: unknown yet, e.g. an object still FILLING from a chunked origin response).
 * Following RFC 9110 section 14.2, anything the server may ignore is ignored (NONE, with the
 * reason in `*err_desc`): bad syntax, a unit other than "bytes", more than EDGE_RANGE_MAX ranges,
 * overlapping ranges (an amplification vector), and, with the length unknown, suffix ranges
 * ("-n"). With a known length, ranges starting past the end are dropped and, if none is left, the
 * result is UNSATISFIABLE; last positions past the end are clipped. Returns an edge_range_result_t.
 */
int edge_range_parse(const char *hdr, size_t len, int64_t length, edge_range_set_t *out,
                     const char **err_desc);

/**
 * Merges each range of `set` into the one before it in the list when it starts right where that
 * one ends ("0-99,100-199" becomes "0-199"), as RFC 9110 section 14.6 allows, so that a list
 * which is really one span is answered with a single part. The order is kept otherwise.
 */
void edge_range_coalesce(edge_range_set_t *set);

/** The longest boundary edge_byteranges_layout() takes (RFC 2046 section 5.1.1). */
#define EDGE_BOUNDARY_MAX 70

/**
 * Lays out a multipart/byteranges body (RFC 9110 section 14.6) carrying the ranges of `set`, as
 * edge_range_parse() returns them for a known `length`, of a representation of media type `ctype`
 * ("" or NULL: the parts carry no Content-Type; it must hold no CR or LF), separated by
 * `boundary` (1..EDGE_BOUNDARY_MAX characters, which the caller picks so that they occur nowhere
 * in the ranges' bytes: a random token). The body is framing 0, range 0, framing 1, range 1, ...,
 * range n-1, then framing n, the close-delimiter; framing i is the text out[off[i]..off[i+1]).
 * Sets `off[0..n+1]` and `*body_len` (the whole body: framing and ranges) in every case, and
 * writes the framing into `out` if all of it fits in `outlen` bytes (`out` may be NULL with
 * `outlen` 0). Returns the framing's length: when it is above `outlen`, `out` holds nothing
 * usable; call again with that many bytes.
 */
size_t edge_byteranges_layout(const edge_range_set_t *set, uint64_t length, const char *ctype,
                              const char *boundary, char *out, size_t outlen,
                              size_t off[EDGE_RANGE_MAX + 2], uint64_t *body_len);

/* ---- ETag / If-None-Match ----------------------------------------------------------------- */

/**
 * Evaluates If-None-Match (`hdr`, `len`) against the current entity tag `etag` (as sent in ETag,
 * quotes included, possibly W/-prefixed; NULL if the representation has none) with the weak
 * comparison of RFC 9110 section 8.8.3.2.
 * Returns 1 if a listed tag matches, or the list is "*" (the condition is false: answer 304 to
 * GET/HEAD), 0 if none matches (serve normally), EDGE_ERR_INVAL if the header is malformed
 * (ignore it and serve normally).
 */
int edge_etag_match(const char *hdr, size_t len, const char *etag);

/* ---- freshness ---------------------------------------------------------------------------- */

typedef struct edge_cc {
    unsigned no_store : 1, no_cache : 1, is_private : 1, is_public : 1, immutable : 1,
        must_revalidate : 1, proxy_revalidate : 1;
    int64_t max_age;                /* seconds; -1 absent. An invalid value counts as 0 (stale) */
    int64_t s_maxage;               /* seconds; -1 absent */
    int64_t stale_if_error;         /* seconds (RFC 5861); -1 absent */
    int64_t stale_while_revalidate; /* seconds (RFC 5861); -1 absent */
} edge_cc_t;

/**
 * Parses a Cache-Control value (several header lines joined with ", "). Directive names are
 * case-insensitive; unknown directives are ignored; values may be tokens or quoted strings;
 * delta-seconds above 2^31 are clamped to 2^31 (RFC 9111 section 1.2.2); a directive given twice
 * keeps the smaller value. Returns 0, or EDGE_ERR_INVAL with a reason on syntax it cannot read
 * (what was read before stays in `out`; treat the response as uncacheable).
 */
int edge_cc_parse(const char *v, size_t len, edge_cc_t *out, const char **err_desc);

/**
 * Parses an HTTP-date in the preferred IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT") and the
 * obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994")
 * forms. Returns Unix seconds, or -1 if invalid or before 1970. The weekday is not checked.
 */
int64_t edge_http_date_parse(const char *v, size_t len);

typedef struct edge_ttl_rules {
    int64_t default_ttl_ms;    /* lifetime when the response gives none; default 0 = not cached */
    int64_t max_ttl_ms;        /* cap on any lifetime; default 0 = no cap */
    int64_t stale_if_error_ms; /* stale window when the response has no stale-if-error; 0 none
                                  (give segments e.g. 30 s, playlists 0) */
    int64_t immutable_ttl_ms;  /* lifetime for "immutable" without max-age; default 0 = none */
} edge_ttl_rules_t;

/**
 * Computes an object's freshness from the origin's Cache-Control, Expires and Date header values
 * (NUL-terminated; NULL when absent) received at `now_ms`, per RFC 9111 for a shared cache:
 * no-store, private or no-cache (we do not revalidate) -> not cacheable; s-maxage before max-age
 * before Expires - Date (Date absent or invalid: now); an invalid Expires means already expired.
 * `rules` may be NULL (all zero). Fills `out` (cacheable iff fresh_ms > 0).
 */
void edge_ttl_compute(const char *cache_control, const char *expires, const char *date,
                      int64_t now_ms, const edge_ttl_rules_t *rules, edge_ttl_t *out);

#endif
