/*
 * The edge's configuration keys: one table drives the file, the flags and --help.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edge/edge.h"
#include "edge_daemon.h"
#include "sw/log.h"

#define OFF(f) offsetof(edge_config_t, f)

#define PROTECT_MAX_KEYS    8
#define ADMIN_ALLOW_MAX     64
#define DEFAULT_ADMIN_ALLOW "127.0.0.1, ::1"
#define UPSTREAM_MAX        64 /* EDGE_UPSTREAM_MAX of edge/upstream.h */
/* What players need from an origin: live streams and the shorts. Not the origin's /api/ (its
 * publishers' addresses), /metrics or anything it adds later. The DASH UTCTiming source the MPD
 * names, /api/time, is answered by the edge from its own clock (edge_server.c). */
#define DEFAULT_FORWARD "/live/, /shorts/"

/* ---- [protect PREFIX] ---- */

/* Sections with the same prefix add to one entry, so a key may be listed in two places. */
static edge_protect_t *protect_get(edge_config_t *c, const char *prefix, const char **err)
{
    if (prefix[0] != '/') {
        *err = "a [protect PREFIX] section needs a path prefix starting with /";
        return NULL;
    }
    for (size_t i = 0; i < c->n_protect; i++)
        if (strcmp(c->protect[i].prefix, prefix) == 0)
            return &c->protect[i];
    edge_protect_t *p = realloc(c->protect, (c->n_protect + 1) * sizeof(*p));
    if (p == NULL) {
        *err = "out of memory";
        return NULL;
    }
    c->protect = p;
    p = &c->protect[c->n_protect];
    memset(p, 0, sizeof(*p));
    if ((p->prefix = strdup(prefix)) == NULL) {
        *err = "out of memory";
        return NULL;
    }
    c->n_protect++;
    return p;
}

/* key = KID:SECRET. The secret is the rest of the value, used as bytes. */
static int set_protect_key(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_protect_t *p = protect_get(cfg, arg, err);
    if (p == NULL)
        return -1;
    const char *colon = strchr(value, ':');
    size_t kl = colon ? (size_t)(colon - value) : 0;
    if (kl == 0 || kl > 32 ||
        strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_-") != kl) {
        *err = "expected KID:SECRET with KID of 1 to 32 letters, digits, _ or -";
        return -1;
    }
    if (strlen(colon + 1) < 16) {
        *err = "the secret must be at least 16 characters";
        return -1;
    }
    if (p->nkeys == PROTECT_MAX_KEYS) {
        *err = "too many keys for this prefix (8 at most)";
        return -1;
    }
    edge_token_key_t *k = realloc(p->keys, (p->nkeys + 1) * sizeof(*k));
    if (k == NULL) {
        *err = "out of memory";
        return -1;
    }
    p->keys = k;
    char *kid = strndup(value, kl), *secret = strdup(colon + 1);
    if (kid == NULL || secret == NULL) {
        free(kid);
        free(secret);
        *err = "out of memory";
        return -1;
    }
    k[p->nkeys].kid = kid;
    k[p->nkeys].key = (const uint8_t *)secret;
    k[p->nkeys].key_len = strlen(secret);
    p->nkeys++;
    p->token.keys = p->keys;
    p->token.nkeys = p->nkeys;
    return 0;
}

static int set_protect_ip(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_protect_t *p = protect_get(cfg, arg, err);
    if (p == NULL)
        return -1;
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "on") == 0 ||
        strcmp(value, "1") == 0)
        p->token.require_ip = 1;
    else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "off") == 0 ||
             strcmp(value, "0") == 0)
        p->token.require_ip = 0;
    else {
        *err = "expected yes or no";
        return -1;
    }
    return 0;
}

/* ---- admin_allow ---- */

int edge__cidr_parse_list(const char *text, edge_cidr_t *out, size_t max)
{
    size_t n = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, " ,\t");
        if (*p == '\0')
            return (int)n;
        size_t len = strcspn(p, " ,\t");
        char item[64], *slash;
        if (len >= sizeof(item) || n == max)
            return -1;
        memcpy(item, p, len);
        item[len] = '\0';
        p += len;
        edge_cidr_t *e = &out[n];
        int bits = -1;
        if ((slash = strchr(item, '/')) != NULL) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end != '\0' || b < 0)
                return -1;
            bits = (int)b;
            *slash = '\0';
        }
        memset(e->addr, 0, sizeof(e->addr));
        if (inet_pton(AF_INET, item, e->addr) == 1) {
            e->family = AF_INET;
            e->bits = bits < 0 ? 32 : bits;
        } else if (inet_pton(AF_INET6, item, e->addr) == 1) {
            e->family = AF_INET6;
            e->bits = bits < 0 ? 128 : bits;
        } else {
            return -1;
        }
        if (e->bits > (e->family == AF_INET ? 32 : 128))
            return -1;
        n++;
    }
}

int edge__cidr_match(const edge_cidr_t *list, size_t n, const char *ip)
{
    uint8_t a[16];
    int fam;
    if (inet_pton(AF_INET, ip, a) == 1)
        fam = AF_INET;
    else if (inet_pton(AF_INET6, ip, a) == 1)
        fam = AF_INET6;
    else
        return 0;
    for (size_t i = 0; i < n; i++) {
        const edge_cidr_t *e = &list[i];
        if (e->family != fam)
            continue;
        int full = e->bits / 8, rest = e->bits % 8;
        if (memcmp(a, e->addr, (size_t)full) != 0)
            continue;
        if (rest != 0 && ((a[full] ^ e->addr[full]) & (0xff << (8 - rest)) & 0xff) != 0)
            continue;
        return 1;
    }
    return 0;
}

static int set_admin_allow(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    edge_cidr_t tmp[ADMIN_ALLOW_MAX];
    (void)arg;
    int n = edge__cidr_parse_list(value, tmp, ADMIN_ALLOW_MAX);
    if (n < 0) {
        *err = "expected addresses or ADDRESS/BITS, separated by commas (64 at most)";
        return -1;
    }
    edge_cidr_t *l = malloc((size_t)(n > 0 ? n : 1) * sizeof(*l));
    if (l == NULL) {
        *err = "out of memory";
        return -1;
    }
    memcpy(l, tmp, (size_t)n * sizeof(*l));
    free(c->admin_allow);
    c->admin_allow = l;
    c->n_admin_allow = (size_t)n;
    return 0;
}

/* ---- forward_prefixes ---- */

int edge__forward_parse_list(const char *text, edge_prefix_t *out, size_t max, const char **err)
{
    size_t n = 0;
    for (const char *p = text;;) {
        p += strspn(p, " ,\t");
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " ,\t");
        if (n == max) {
            *err = "too many prefixes (16 at most)";
            return -1;
        }
        if (p[0] != '/' || len > EDGE_FORWARD_MAX_LEN) {
            *err = "a prefix starts with / and has at most 63 characters";
            return -1;
        }
        /* Compared with normalized keys: refuse what their paths never hold, and escapes (whose
         * spelling would have to be the normalized one to match). */
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '?' || p[i] == '%' || p[i] == '#' || p[i] == '\\' ||
                (p[i] == '/' && i > 0 && p[i - 1] == '/')) {
                *err = "a prefix is a plain path: no ?, %, #, \\ or //";
                return -1;
            }
        }
        memcpy(out[n].s, p, len);
        out[n].s[len] = '\0';
        out[n].len = len;
        n++;
        p += len;
    }
    if (n == 0) {
        *err = "at least one prefix (/ forwards every path)";
        return -1;
    }
    return (int)n;
}

static int set_forward(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    edge_prefix_t tmp[EDGE_FORWARD_MAX];
    (void)arg;
    int n = edge__forward_parse_list(value, tmp, EDGE_FORWARD_MAX, err);
    if (n < 0)
        return -1;
    memcpy(c->forward, tmp, (size_t)n * sizeof(tmp[0]));
    c->n_forward = (size_t)n;
    return 0;
}

static int set_policy(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    (void)arg;
    if (strcmp(value, "lru") == 0)
        c->cache_policy = EDGE_POLICY_LRU;
    else if (strcmp(value, "s3fifo") == 0)
        c->cache_policy = EDGE_POLICY_S3FIFO;
    else {
        *err = "expected lru or s3fifo";
        return -1;
    }
    return 0;
}

/* Appends an upstream base URL to list[0..*n): origins and parents alike. */
static int add_url(char ***list, size_t *n, const char *value, const char **err)
{
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0 &&
        strncmp(value, "h2c://", 6) != 0) {
        *err = "an upstream URL starts with http://, https:// or h2c://";
        return -1;
    }
    /* The fetcher takes EDGE_UPSTREAM_MAX in all; edge_config_check() counts both lists. */
    if (*n >= UPSTREAM_MAX) {
        *err = "too many upstreams (64 origins and parents at most)";
        return -1;
    }
    char **o = realloc(*list, (*n + 1) * sizeof(*o));
    if (o == NULL) {
        *err = "out of memory";
        return -1;
    }
    *list = o;
    if ((o[*n] = strdup(value)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    (*n)++;
    return 0;
}

static int set_origin(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    (void)arg;
    return add_url(&c->origins, &c->n_origins, value, err);
}

static int set_parent(void *cfg, const char *arg, const char *value, const char **err)
{
    edge_config_t *c = cfg;
    (void)arg;
    return add_url(&c->parents, &c->n_parents, value, err);
}

static const sw_conf_key_t keys[] = {
    {"", "listen", SW_CONF_STR, OFF(listen), 0, 0, NULL, "0.0.0.0:8081",
     "HTTP listen address (HTTP/1.1 and h2c)"},
    {"", "tls_listen", SW_CONF_STR, OFF(tls_listen), 0, 0, NULL, "(none)",
     "HTTPS listen address (HTTP/2 or HTTP/1.1 by ALPN); needs tls_cert and tls_key"},
    {"", "tls_cert", SW_CONF_STR, OFF(tls_cert), 0, 0, NULL, "(none)",
     "PEM certificate chain for tls_listen"},
    {"", "tls_key", SW_CONF_STR, OFF(tls_key), 0, 0, NULL, "(none)",
     "PEM private key for tls_listen"},
    {"", "origin", SW_CONF_CUSTOM, 0, 0, 0, set_origin, "(none)",
     "origin base URL; repeat for failover, first is primary"},
    {"", "parent", SW_CONF_CUSTOM, 0, 0, 0, set_parent, "(none)",
     "parent edge base URL; repeat; /live/NAME/ goes to the parent picked by hashing NAME"},
    {"", "workers", SW_CONF_INT, OFF(workers), 0, 1024, NULL, "0",
     "loop threads sharing the listen ports (SO_REUSEPORT) and one cache; 0: one per CPU"},
    {"", "cache_size", SW_CONF_SIZE, OFF(cache_size), 1 << 20, INT64_MAX, NULL, "256M",
     "memory cache budget (k, M, G)"},
    {"", "cache_policy", SW_CONF_CUSTOM, 0, 0, 0, set_policy, "lru",
     "which object the cache drops first: lru or s3fifo (edge/README.md has the comparison)"},
    {"", "forward_prefixes", SW_CONF_CUSTOM, 0, 0, 0, set_forward, DEFAULT_FORWARD,
     "path prefixes fetched from upstream, comma-separated; other paths get 404; / forwards all"},
    {"", "stale_if_error", SW_CONF_DURATION, OFF(stale_if_error_ms), 0, 86400000, NULL, "30s",
     "how long an expired object may stand in for a failed fetch when the upstream names no "
     "stale-if-error; never for playlists"},
    {"", "web_root", SW_CONF_STR, OFF(web_root), 0, 0, NULL, "bin/../web",
     "folder of the viewer pages and bundles (web/build.mjs), loaded into memory at start"},
    {"", "log_level", SW_CONF_LOGLEVEL, OFF(log_level), 0, 0, NULL, "info",
     "error, warn, info or debug"},
    {"", "access_log", SW_CONF_STR, OFF(access_log), 0, 0, NULL, "off",
     "one logfmt line per request: a file (reopened on SIGHUP), stderr or off"},
    {"", "admin_allow", SW_CONF_CUSTOM, 0, 0, 0, set_admin_allow, DEFAULT_ADMIN_ALLOW,
     "addresses (ADDR or ADDR/BITS, comma-separated) allowed to call /api/purge"},
    {"", "admin_token", SW_CONF_STR, OFF(admin_token), 0, 0, NULL, "(none)",
     "if set, /api/purge also needs the header Authorization: Bearer TOKEN"},
    {"", "redis", SW_CONF_STR, OFF(redis), 0, 0, NULL, "(none)",
     "redis://[:PASSWORD@]HOST[:PORT][/DB]; enables the /overlay/ websockets"},
    {"", "edge_name", SW_CONF_STR, OFF(edge_name), 0, 0, NULL, "(host name)",
     "this edge's name in add-to-cart entries"},
    {"", "overlay_allowed_origins", SW_CONF_STR, OFF(overlay_allowed_origins), 0, 0, NULL, "(any)",
     "Origin values allowed to open an overlay websocket, comma-separated"},
    {"", "overlay_token_key", SW_CONF_STR, OFF(overlay_token_key), 0, 0, NULL, "(none)",
     "[KID:]SECRET: overlay websockets need a signed URL for /live/ROOM/overlay"},
    {"", "overlay_max_message", SW_CONF_SIZE, OFF(overlay_max_message), 64, 1 << 20, NULL, "4k",
     "largest client message; a bigger one closes with 1009"},
    {"", "overlay_send_queue", SW_CONF_INT, OFF(overlay_send_queue), 8, 65536, NULL, "256",
     "messages queued per viewer; a viewer still behind closes with 1013"},
    {"", "overlay_cart_rate", SW_CONF_INT, OFF(overlay_cart_rate), 1, 1000, NULL, "5",
     "add_to_cart per second per connection"},
    {"", "overlay_cart_burst", SW_CONF_INT, OFF(overlay_cart_burst), 1, 1000, NULL, "10",
     "add_to_cart burst per connection"},
    {"", "overlay_cart_maxlen", SW_CONF_INT, OFF(overlay_cart_maxlen), 1, 1000000000, NULL,
     "100000", "entries kept in each room's cart stream (XADD MAXLEN ~, trimmed in whole nodes)"},
    {"", "overlay_max_viewers", SW_CONF_INT, OFF(overlay_max_viewers), 1, 10000000, NULL, "10000",
     "overlay websockets on this edge (all workers); more are closed with 1013"},
    {"", "overlay_max_rooms", SW_CONF_INT, OFF(overlay_max_rooms), 0, 1000000, NULL, "100",
     "open rooms whose stream the registry (sw:streams) does not list; a new one past: 1013"},
    {"protect", "key", SW_CONF_CUSTOM, 0, 0, 0, set_protect_key, "(none)",
     "[protect PREFIX] KID:SECRET; paths under PREFIX need a signed URL; two keys to rotate"},
    {"protect", "require_ip", SW_CONF_CUSTOM, 0, 0, 0, set_protect_ip, "no",
     "[protect PREFIX] refuse tokens not bound to the client address"},
    {"http", "max_connections", SW_CONF_INT, OFF(max_connections), 1, 1000000, NULL, "10000",
     "open connections at most; more are closed at once"},
    {"http", "max_header_bytes", SW_CONF_SIZE, OFF(max_header_bytes), 1024, 1 << 20, NULL, "16k",
     "request line and headers at most (431 beyond)"},
    {"http", "max_streams", SW_CONF_INT, OFF(max_streams), 1, 65535, NULL, "256",
     "HTTP/2 concurrent streams per connection"},
    {"http", "idle_timeout", SW_CONF_DURATION, OFF(idle_timeout_ms), 1000, 3600000, NULL, "60s",
     "a keep-alive connection with nothing to do is closed after this"},
    {"http", "header_timeout", SW_CONF_DURATION, OFF(header_timeout_ms), 100, 600000, NULL, "10s",
     "a request head must arrive within this (slowloris)"},
    {"http", "send_timeout", SW_CONF_DURATION, OFF(send_timeout_ms), 100, 3600000, NULL, "30s",
     "a response whose queued bytes make no progress this long closes the connection"},
    {"http", "drain_timeout", SW_CONF_DURATION, OFF(drain_timeout_ms), 0, 3600000, NULL, "10s",
     "on SIGTERM, how long responses under way may take to finish"},
    {"http", "notsent_lowat", SW_CONF_SIZE, OFF(notsent_lowat), 0, 64 << 20, NULL, "256k",
     "kernel buffer of output not yet sent, per HTTP/2 connection (TCP_NOTSENT_LOWAT); 0: the "
     "kernel's"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

int edge_config_check(const edge_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->n_origins == 0) {
        snprintf(err, errlen, "no origin configured (--origin URL or origin = URL)");
        return EDGE_ERR_INVAL;
    }
    if (cfg->n_origins + cfg->n_parents > UPSTREAM_MAX) {
        snprintf(err, errlen, "too many upstreams: %zu origins and %zu parents (64 at most)",
                 cfg->n_origins, cfg->n_parents);
        return EDGE_ERR_INVAL;
    }
    if (cfg->tls_listen != NULL && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        snprintf(err, errlen, "tls_listen needs tls_cert and tls_key");
        return EDGE_ERR_INVAL;
    }
    for (size_t i = 0; i < cfg->n_protect; i++) {
        if (cfg->protect[i].nkeys == 0) {
            snprintf(err, errlen, "[protect %s] has no key (key = KID:SECRET)",
                     cfg->protect[i].prefix);
            return EDGE_ERR_INVAL;
        }
    }
    return 0;
}

const sw_conf_key_t *edge_conf_keys(void)
{
    return keys;
}

void edge_config_init(edge_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = strdup("0.0.0.0:8081");
    c->cache_size = 256LL << 20;
    c->cache_policy = EDGE_POLICY_LRU;
    const char *why;
    c->n_forward =
        (size_t)edge__forward_parse_list(DEFAULT_FORWARD, c->forward, EDGE_FORWARD_MAX, &why);
    c->stale_if_error_ms = 30000;
    c->log_level = SW_LOG_INFO;
    c->access_log = strdup("off");
    if ((c->admin_allow = malloc(2 * sizeof(*c->admin_allow))) != NULL)
        c->n_admin_allow = (size_t)edge__cidr_parse_list(DEFAULT_ADMIN_ALLOW, c->admin_allow, 2);
    c->max_connections = 10000;
    c->max_header_bytes = 16 * 1024;
    c->max_streams = 256;
    c->idle_timeout_ms = 60000;
    c->header_timeout_ms = 10000;
    c->send_timeout_ms = 30000;
    c->overlay_max_message = 4096;
    c->overlay_send_queue = 256;
    c->overlay_cart_rate = 5;
    c->overlay_cart_burst = 10;
    c->overlay_cart_maxlen = 100000;
    c->overlay_max_viewers = 10000;
    c->overlay_max_rooms = 100;
    c->drain_timeout_ms = 10000;
    c->notsent_lowat = 256 * 1024;
}

void edge_config_dispose(edge_config_t *c)
{
    sw_conf_free_strings(keys, c);
    for (size_t i = 0; i < c->n_origins; i++)
        free(c->origins[i]);
    free(c->origins);
    for (size_t i = 0; i < c->n_parents; i++)
        free(c->parents[i]);
    free(c->parents);
    for (size_t i = 0; i < c->n_protect; i++) {
        edge_protect_t *p = &c->protect[i];
        for (size_t k = 0; k < p->nkeys; k++) {
            free((char *)p->keys[k].kid);
            free((uint8_t *)p->keys[k].key);
        }
        free(p->keys);
        free(p->prefix);
    }
    free(c->protect);
    free(c->admin_allow);
    memset(c, 0, sizeof(*c));
}
