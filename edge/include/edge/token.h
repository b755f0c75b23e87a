/*
 * edge/token.h: signed URLs. A shop backend grants a viewer access to a path prefix until a time,
 * optionally bound to the viewer's address; the edge checks the grant with no round trip.
 *
 * Token: query parameters on the request URL, in any order, among others:
 *   sw_exp=UNIX_SECONDS       expiry, decimal
 *   sw_prefix=PREFIX          the granted path prefix, percent-encoded ("%2Flive%2Froom42%2F");
 *                             it should end with '/' so it cannot match "/live/room420/"
 *                             visible ASCII only: sign a non-ASCII path in the escaped form
 *                             the cache key keeps ("/caf%C3%A9/")
 *   sw_kid=ID                 key id (optional: without it every configured key is tried)
 *   sw_ip=1                   present when the signature covers the client address
 *   sw_sig=BASE64URL          unpadded base64url of HMAC-SHA256(key, MESSAGE), 43 characters
 * MESSAGE is PREFIX "\n" UNIX_SECONDS, plus "\n" CLIENT_ADDRESS when sw_ip=1, where PREFIX is the
 * decoded prefix and UNIX_SECONDS the decimal digits exactly as sent. edge/README.md shows how a
 * backend mints one in ten lines of Python.
 *
 * The edge's cache key drops every sw_* parameter, so tokens never split the cache.
 * Threading: pure functions; any thread.
 */
#ifndef EDGE_TOKEN_H
#define EDGE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "edge/err.h"

typedef struct edge_token_key {
    const char *kid;    /* key id, e.g. "2026-11"; [A-Za-z0-9_-]{1,32} */
    const uint8_t *key; /* secret; borrowed, must outlive the config */
    size_t key_len;
} edge_token_key_t;

typedef struct edge_token_config {
    const edge_token_key_t *keys; /* accepted keys: rotate by adding the new one, then dropping
                                     the old one once its tokens have expired */
    size_t nkeys;
    int require_ip; /* refuse tokens not bound to the client address */
} edge_token_config_t;

/** Longest query string edge_token_mint() writes, NUL included, for a 256-byte prefix. */
#define EDGE_TOKEN_MAX 1024

/**
 * Verifies the token in `query` (the request's raw query string, without '?'; `len` bytes) for a
 * request of `path`, which must be the normalized path (edge_key_normalize()), so that a "..",
 * already refused there, cannot climb out of the prefix. `client_ip` is the client's address in
 * text form as the minting side knows it (may be NULL if no token binds one). `now_s` is Unix
 * seconds. The signature is compared in constant time. Returns 0, or with a reason in
 * `*err_desc` (may be NULL): EDGE_ERR_TOKEN_MALFORMED (parameter missing, repeated or bad),
 * EDGE_ERR_TOKEN_BAD_SIG (no key verifies it, unknown sw_kid, or not bound to the address while
 * cfg->require_ip), EDGE_ERR_TOKEN_EXPIRED, EDGE_ERR_TOKEN_PREFIX (path outside sw_prefix).
 */
int edge_token_verify(const edge_token_config_t *cfg, const char *path, const char *query,
                      size_t len, const char *client_ip, int64_t now_s, const char **err_desc);

/**
 * Mints a token for `prefix` valid until `exp_s` with `key` (its kid is included), bound to
 * `client_ip` unless NULL: writes "sw_exp=..&sw_prefix=..&sw_kid=..[&sw_ip=1]&sw_sig=.." into
 * `out` (NUL-terminated). For tests, tools and the docs; backends use the README snippet.
 * Returns 0, EDGE_ERR_INVAL (prefix empty, not starting with '/' or not visible ASCII; negative
 * expiry) or EDGE_ERR_TOO_BIG (`outlen` short).
 */
int edge_token_mint(const edge_token_key_t *key, const char *prefix, int64_t exp_s,
                    const char *client_ip, char *out, size_t outlen);

#endif
