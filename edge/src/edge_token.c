/*
 * edge_token.c: signed URL verification and minting (HMAC-SHA256 through OpenSSL's HMAC()).
 *
 * The checks run in the order that keeps reasons honest: a token must first be well formed and
 * authentic; only then do "expired" and "outside prefix" get reported, so that these reasons are
 * never given for something an attacker made up.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "edge/token.h"
#include "edge_int.h"

#define PREFIX_MAX 512
#define SIG_LEN    32
#define SIG_B64LEN 43 /* unpadded base64url of 32 bytes */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = b64url[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    return o;
}

/* Decodes exactly SIG_B64LEN characters into SIG_LEN bytes. Returns 0 or -1. */
static int sig_decode(const char *in, size_t n, uint8_t out[SIG_LEN])
{
    uint8_t tmp[33];
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (n != SIG_B64LEN)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(b64url, in[i], 64);
        if (p == NULL || in[i] == '\0')
            return -1;
        acc = acc << 6 | (uint32_t)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            tmp[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* 43 * 6 = 258 bits: the 2 spare bits must be zero, so each signature has one spelling. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    memcpy(out, tmp, SIG_LEN);
    return 0;
}

static int compute(const edge_token_key_t *k, const char *prefix, size_t plen, const char *exp,
                   size_t elen, const char *ip, uint8_t mac[SIG_LEN])
{
    char msg[PREFIX_MAX + 128];
    size_t iplen = ip != NULL ? strlen(ip) : 0;
    unsigned int maclen = 0;

    if (plen + elen + iplen + 2 > sizeof(msg))
        return -1;
    size_t n = 0;
    memcpy(msg, prefix, plen);
    n += plen;
    msg[n++] = '\n';
    memcpy(msg + n, exp, elen);
    n += elen;
    if (ip != NULL) {
        msg[n++] = '\n';
        memcpy(msg + n, ip, iplen);
        n += iplen;
    }
    if (HMAC(EVP_sha256(), k->key, (int)k->key_len, (const unsigned char *)msg, n, mac, &maclen) ==
            NULL ||
        maclen != SIG_LEN)
        return -1;
    return 0;
}

typedef struct param {
    const char *v;
    size_t n;
    int seen;
} param_t;

/* Percent-decodes the prefix. Only the escapes matter: '+' stays '+'. */
static int decode_prefix(const char *s, size_t n, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3 || (hi = edge__hexval((unsigned char)s[i + 1])) < 0 ||
                (lo = edge__hexval((unsigned char)s[i + 2])) < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c < 0x21 || c >= 0x7f || o == PREFIX_MAX)
            return -1;
        out[o++] = (char)c;
    }
    *outlen = o;
    return 0;
}

static int fail(const char **err_desc, int rv, const char *why)
{
    if (err_desc != NULL)
        *err_desc = why;
    return rv;
}

int edge_token_verify(const edge_token_config_t *cfg, const char *path, const char *query,
                      size_t len, const char *client_ip, int64_t now_s, const char **err_desc)
{
    static const char *const names[] = {"sw_exp", "sw_prefix", "sw_kid", "sw_ip", "sw_sig"};
    enum { P_EXP, P_PREFIX, P_KID, P_IP, P_SIG, P_N };
    param_t pv[P_N];
    char prefix[PREFIX_MAX];
    size_t plen;
    uint8_t sig[SIG_LEN], mac[SIG_LEN];

    memset(pv, 0, sizeof(pv));
    for (size_t i = 0; query != NULL && i < len;) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && query[eq] != '=')
            eq++;
        for (int k = 0; k < P_N; k++) {
            if (strlen(names[k]) != eq - i || memcmp(query + i, names[k], eq - i) != 0)
                continue;
            if (pv[k].seen)
                return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "a sw_ parameter is repeated");
            pv[k].seen = 1;
            pv[k].v = eq < end ? query + eq + 1 : query + end;
            pv[k].n = eq < end ? end - eq - 1 : 0;
        }
        i = end + 1;
    }
    if (!pv[P_EXP].seen || !pv[P_PREFIX].seen || !pv[P_SIG].seen)
        return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_exp, sw_prefix or sw_sig missing");

    int64_t exp = 0;
    if (pv[P_EXP].n == 0 || pv[P_EXP].n > 12)
        return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_exp is not 1 to 12 digits");
    for (size_t i = 0; i < pv[P_EXP].n; i++) {
        char c = pv[P_EXP].v[i];
        if (c < '0' || c > '9')
            return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_exp is not 1 to 12 digits");
        exp = exp * 10 + (c - '0');
    }
    if (decode_prefix(pv[P_PREFIX].v, pv[P_PREFIX].n, prefix, &plen) != 0 || plen == 0 ||
        prefix[0] != '/')
        return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_prefix is not a percent-encoded path");
    if (sig_decode(pv[P_SIG].v, pv[P_SIG].n, sig) != 0)
        return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_sig is not 43 base64url characters");
    int bound = 0;
    if (pv[P_IP].seen) {
        if (pv[P_IP].n != 1 || pv[P_IP].v[0] != '1')
            return fail(err_desc, EDGE_ERR_TOKEN_MALFORMED, "sw_ip is not 1");
        bound = 1;
    }
    if (bound && client_ip == NULL)
        return fail(err_desc, EDGE_ERR_TOKEN_BAD_SIG, "token bound to an address, none given");
    if (cfg->require_ip && !bound)
        return fail(err_desc, EDGE_ERR_TOKEN_BAD_SIG, "token not bound to the client address");

    int ok = 0, known = 0;
    for (size_t k = 0; k < cfg->nkeys; k++) {
        const edge_token_key_t *key = &cfg->keys[k];
        if (pv[P_KID].seen &&
            (strlen(key->kid) != pv[P_KID].n || memcmp(key->kid, pv[P_KID].v, pv[P_KID].n) != 0))
            continue;
        known = 1;
        if (compute(key, prefix, plen, pv[P_EXP].v, pv[P_EXP].n, bound ? client_ip : NULL, mac) !=
            0)
            continue;
        if (CRYPTO_memcmp(mac, sig, SIG_LEN) == 0) {
            ok = 1;
            break;
        }
    }
    if (!known)
        return fail(err_desc, EDGE_ERR_TOKEN_BAD_SIG, "unknown sw_kid");
    if (!ok)
        return fail(err_desc, EDGE_ERR_TOKEN_BAD_SIG, "signature does not verify");
    if (now_s >= exp)
        return fail(err_desc, EDGE_ERR_TOKEN_EXPIRED, "token expired");
    if (path == NULL || strncmp(path, prefix, plen) != 0 || strlen(path) < plen)
        return fail(err_desc, EDGE_ERR_TOKEN_PREFIX, "path outside the signed prefix");
    return 0;
}

int edge_token_mint(const edge_token_key_t *key, const char *prefix, int64_t exp_s,
                    const char *client_ip, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char exp[24], enc[3 * PREFIX_MAX + 1], sig[SIG_B64LEN + 1];
    uint8_t mac[SIG_LEN];
    size_t plen = strlen(prefix), e = 0;

    if (plen == 0 || plen > PREFIX_MAX || prefix[0] != '/' || exp_s < 0)
        return EDGE_ERR_INVAL;
    for (size_t i = 0; i < plen; i++) {
        if ((unsigned char)prefix[i] < 0x21 || (unsigned char)prefix[i] >= 0x7f)
            return EDGE_ERR_INVAL;
    }
    int elen = snprintf(exp, sizeof(exp), "%lld", (long long)exp_s);
    if (compute(key, prefix, plen, exp, (size_t)elen, client_ip, mac) != 0)
        return EDGE_ERR_INVAL;
    sig[b64url_encode(mac, SIG_LEN, sig)] = '\0';
    /* Encode like Python's urllib.parse.quote(prefix, safe=""): all but unreserved characters. */
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            enc[e++] = (char)c;
        } else {
            enc[e++] = '%';
            enc[e++] = hex[c >> 4];
            enc[e++] = hex[c & 15];
        }
    }
    enc[e] = '\0';
    int n = snprintf(out, outlen, "sw_exp=%s&sw_prefix=%s&sw_kid=%s%s&sw_sig=%s", exp, enc,
                     key->kid, client_ip != NULL ? "&sw_ip=1" : "", sig);
    if (n < 0 || (size_t)n >= outlen)
        return EDGE_ERR_TOO_BIG;
    return 0;
}
