/*
 * The origin's configuration keys: one table drives the file, the flags and the reference in
 * docs/configuration.md. Keep the three in step when adding a key.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "origin/origin.h"
#include "sw/log.h"
#include "sw/sw.h"

#include "origin_ingest.h"

#define OFF(f) offsetof(origin_config_t, f)

/* The rule of section [prefix PREFIX], created on first use. NULL with *err set. */
static origin_rule_conf_t *rule_for(origin_config_t *c, const char *prefix, const char **err)
{
    char buf[256];

    if (origin_rule_prefix(prefix, buf, sizeof(buf), err) != 0)
        return NULL;
    *err = "out of memory";
    for (size_t i = 0; i < c->nrules; i++)
        if (strcmp(c->rules[i].prefix, prefix) == 0)
            return &c->rules[i];
    origin_rule_conf_t *r = realloc(c->rules, (c->nrules + 1) * sizeof(*r));
    if (r == NULL)
        return NULL;
    c->rules = r;
    r = &c->rules[c->nrules];
    memset(r, 0, sizeof(*r));
    if ((r->prefix = strdup(prefix)) == NULL)
        return NULL;
    c->nrules++;
    return r;
}

static origin_pull_conf_t *pull_for(origin_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->npulls; i++)
        if (strcmp(c->pulls[i].name, name) == 0)
            return &c->pulls[i];
    origin_pull_conf_t *p = realloc(c->pulls, (c->npulls + 1) * sizeof(*p));
    if (p == NULL)
        return NULL;
    c->pulls = p;
    p = &c->pulls[c->npulls];
    memset(p, 0, sizeof(*p));
    if ((p->name = strdup(name)) == NULL)
        return NULL;
    c->npulls++;
    return p;
}

static int set_rule_passphrase(void *cfg, const char *arg, const char *value, const char **err)
{
    size_t n = strlen(value);
    if (n != 0 && (n < 10 || n > 79)) {
        *err = "an SRT passphrase has 10 to 79 characters";
        return -1;
    }
    origin_rule_conf_t *r = rule_for(cfg, arg, err);
    if (r == NULL)
        return -1;
    if ((value = strdup(value)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    free(r->passphrase);
    r->passphrase = (char *)value;
    return 0;
}

static int set_rule_keylen(void *cfg, const char *arg, const char *value, const char **err)
{
    int v = atoi(value);
    if (strcmp(value, "16") != 0 && strcmp(value, "24") != 0 && strcmp(value, "32") != 0) {
        *err = "key_length is 16, 24 or 32 (bytes: AES-128, -192, -256)";
        return -1;
    }
    origin_rule_conf_t *r = rule_for(cfg, arg, err);
    if (r == NULL)
        return -1;
    r->key_length = v;
    return 0;
}

static int set_pull_url(void *cfg, const char *arg, const char *value, const char **err)
{
    char name[80];

    if (arg[0] == '\0') {
        *err = "[pull NAME] needs the stream name";
        return -1;
    }
    if (strchr(arg, '/') != NULL || origin_stream_name(arg, name, sizeof(name), err) != 0) {
        if (strchr(arg, '/') != NULL)
            *err = "a pull's NAME is a stream name: 1 to 64 of A-Za-z0-9_-";
        return -1;
    }
    if (strncmp(value, "srt://", 6) != 0) {
        *err = "a pull url starts with srt://";
        return -1;
    }
    origin_pull_conf_t *p = pull_for(cfg, arg);
    if (p == NULL || (value = strdup(value)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    free(p->url);
    p->url = (char *)value;
    return 0;
}

/* [srt] allow: comma-separated prefixes of "live/NAME"; the key may be repeated. */
static int set_allow(void *cfg, const char *arg, const char *value, const char **err)
{
    origin_config_t *c = cfg;
    const char *p = value;

    (void)arg;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            return 0;
        size_t n = strcspn(p, ", ");
        char item[256], canon[256];
        if (n >= sizeof(item)) {
            *err = "an allow prefix is longer than 255 characters";
            return -1;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (origin_rule_prefix(item, canon, sizeof(canon), err) != 0)
            return -1;
        char **a = realloc(c->srt_allow, (c->srt_nallow + 1) * sizeof(*a));
        if (a == NULL || (a[c->srt_nallow] = strdup(item)) == NULL) {
            if (a != NULL)
                c->srt_allow = a;
            *err = "out of memory";
            return -1;
        }
        c->srt_allow = a;
        c->srt_nallow++;
        p += n;
    }
}

static const sw_conf_key_t keys[] = {
    {"", "srt", SW_CONF_STR, OFF(srt), 0, 0, NULL, "0.0.0.0:9000", "SRT listen address"},
    {"", "http", SW_CONF_STR, OFF(http), 0, 0, NULL, "0.0.0.0:8080",
     "HTTP listen address (HTTP/1.1 and h2c)"},
    {"", "data", SW_CONF_STR, OFF(data), 0, 0, NULL, "/var/lib/shortwave",
     "folder for the DVR window (one sub-folder per stream)"},
    {"", "redis", SW_CONF_STR, OFF(redis), 0, 0, NULL, "(none)",
     "redis://HOST:PORT[/DB] to register live streams in; empty for none"},
    {"", "public_url", SW_CONF_STR, OFF(public_url), 0, 0, NULL, "from `http`",
     "base URL edges use to reach this origin, announced in Redis"},
    {"", "api_token", SW_CONF_STR, OFF(api_token), 0, 0, NULL, "(none)",
     "Bearer token for POST and DELETE under /api/ (or SHORTWAVE_API_TOKEN); required unless "
     "http is on loopback"},
    {"", "access_log", SW_CONF_STR, OFF(access_log), 0, 0, NULL, "off",
     "one logfmt line per request to this file, stderr or off; SIGHUP reopens it"},
    {"", "log_level", SW_CONF_LOGLEVEL, OFF(log_level), 0, 0, NULL, "info",
     "error, warn, info or debug"},
    {"srt", "latency", SW_CONF_DURATION, OFF(srt_latency_ms), 20, 8000, NULL, "120ms",
     "SRT receiver latency (the sender's is negotiated up to it)"},
    {"srt", "tsbpd", SW_CONF_BOOL, OFF(srt_tsbpd), 0, 0, NULL, "yes",
     "timestamp-based delivery: drop what cannot be recovered within latency; no: retransmit all"},
    {"srt", "stall_timeout", SW_CONF_DURATION, OFF(srt_stall_ms), 500, 600000, NULL, "10s",
     "a publisher that sends no media for this long is dropped"},
    {"srt", "probe_timeout", SW_CONF_DURATION, OFF(srt_probe_ms), 500, 60000, NULL, "5s",
     "a publisher without H.264/HEVC video or AAC/Opus audio by then is dropped"},
    {"srt", "max_publishers", SW_CONF_INT, OFF(srt_max_publishers), 0, 100000, NULL, "200",
     "publishers (and handshakes in progress) at most; more are refused (1402); 0: no limit"},
    {"srt", "max_per_source", SW_CONF_INT, OFF(srt_max_per_source), 0, 100000, NULL, "20",
     "publishers from one IP address at most (1402); 0: no limit"},
    {"srt", "allow", SW_CONF_CUSTOM, 0, 0, 0, set_allow, "(any)",
     "prefixes of live/NAME that may publish, comma-separated; others are refused (1403)"},
    {"srt", "require_passphrase", SW_CONF_BOOL, OFF(srt_require_passphrase), 0, 0, NULL, "no",
     "refuse names that no [prefix] with a passphrase covers (1401)"},
    {"hls", "segment_duration", SW_CONF_DURATION, OFF(segment_ms), 500, 20000, NULL, "2s",
     "target segment duration (segments start on keyframes)"},
    {"hls", "part_duration", SW_CONF_DURATION, OFF(part_ms), 100, 5000, NULL, "334ms",
     "LL-HLS part target duration"},
    {"hls", "dvr_window", SW_CONF_DURATION, OFF(dvr_ms), 10000, 48LL * 3600000, NULL, "2h",
     "how much of each stream is kept on disk and addressable"},
    {"hls", "live_segments", SW_CONF_INT, OFF(live_segments), 3, 100, NULL, "6",
     "segments listed in a live playlist"},
    {"hls", "memory_segments", SW_CONF_INT, OFF(memory_segments), 2, 1000, NULL, "8",
     "recent segments served from memory (older ones from disk)"},
    {"http", "max_connections", SW_CONF_INT, OFF(http_max_connections), 1, 1000000, NULL, "10000",
     "open HTTP connections at most"},
    {"http", "idle_timeout", SW_CONF_DURATION, OFF(http_idle_ms), 1000, 3600000, NULL, "60s",
     "keep-alive connections idle longer are closed"},
    {"http", "header_timeout", SW_CONF_DURATION, OFF(http_header_ms), 500, 600000, NULL, "10s",
     "a request head must arrive within this"},
    {"http", "notsent_lowat", SW_CONF_SIZE, OFF(http_notsent_lowat), 0, 64 << 20, NULL, "256k",
     "kernel buffer of output not yet sent, per HTTP/2 connection (TCP_NOTSENT_LOWAT); 0: the "
     "kernel's"},
    {"redis", "ttl", SW_CONF_DURATION, OFF(redis_ttl_ms), 3000, 3600000, NULL, "15s",
     "lifetime of a stream's registration; refreshed every third of it"},
    {"prefix", "passphrase", SW_CONF_CUSTOM, 0, 0, 0, set_rule_passphrase, "(none)",
     "[prefix live/...] SRT passphrase for the streams whose live/NAME starts so"},
    {"prefix", "key_length", SW_CONF_CUSTOM, 0, 0, 0, set_rule_keylen, "16",
     "[prefix live/...] SRT key length in bytes: 16, 24 or 32"},
    {"pull", "url", SW_CONF_CUSTOM, 0, 0, 0, set_pull_url, "(none)",
     "[pull NAME] srt:// URL to pull from in caller mode, published as NAME"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

const sw_conf_key_t *origin_conf_keys(void)
{
    return keys;
}

void origin_config_init(origin_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->srt = strdup("0.0.0.0:9000");
    c->http = strdup("0.0.0.0:8080");
    c->data = strdup("/var/lib/shortwave");
    c->access_log = strdup("off");
    c->log_level = SW_LOG_INFO;
    c->srt_latency_ms = 120;
    c->srt_tsbpd = 1;
    c->srt_stall_ms = 10000;
    c->srt_probe_ms = 5000;
    c->srt_max_publishers = 200;
    c->srt_max_per_source = 20;
    c->segment_ms = 2000;
    c->part_ms = 334;
    c->dvr_ms = 2 * 3600000;
    c->live_segments = 6;
    c->memory_segments = 8;
    c->http_max_connections = 10000;
    c->http_idle_ms = 60000;
    c->http_header_ms = 10000;
    c->http_notsent_lowat = 256 * 1024;
    c->redis_ttl_ms = 15000;
}

void origin_config_dispose(origin_config_t *c)
{
    sw_conf_free_strings(keys, c);
    for (size_t i = 0; i < c->nrules; i++) {
        free(c->rules[i].prefix);
        free(c->rules[i].passphrase);
    }
    free(c->rules);
    for (size_t i = 0; i < c->npulls; i++) {
        free(c->pulls[i].name);
        free(c->pulls[i].url);
    }
    free(c->pulls);
    for (size_t i = 0; i < c->srt_nallow; i++)
        free(c->srt_allow[i]);
    free(c->srt_allow);
    memset(c, 0, sizeof(*c));
}

/* Whether `addr` ("127.0.0.1:8080", "[::1]:8080") is a loopback address, which no other host
 * reaches. */
static int loopback_only(const char *addr)
{
    struct sockaddr_storage ss;

    if (addr == NULL || sw_addr_parse(addr, &ss) != 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&ss;
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int origin_config_check(const origin_config_t *c, char *err, size_t errlen)
{
    if ((c->api_token == NULL || c->api_token[0] == '\0') && !loopback_only(c->http)) {
        snprintf(err, errlen,
                 "api_token is required when http (%s) is not a loopback address: without it "
                 "anyone who reaches the port could drop publishers and pin products; set it in "
                 "the file or in the environment variable SHORTWAVE_API_TOKEN",
                 c->http != NULL ? c->http : "(none)");
        return ORIGIN_ERR_CONFIG;
    }
    return 0;
}
