/*
 * The origin's configuration keys: one table drives the file, the flags and the reference in
 * docs/configuration.md. Keep the three in step when adding a key.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "origin/origin.h"
#include "sw/log.h"

#define OFF(f) offsetof(origin_config_t, f)

static origin_rule_conf_t *rule_for(origin_config_t *c, const char *prefix)
{
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
    origin_rule_conf_t *r = rule_for(cfg, arg);
    if (r == NULL || (value = strdup(value)) == NULL) {
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
    origin_rule_conf_t *r = rule_for(cfg, arg);
    if (r == NULL) {
        *err = "out of memory";
        return -1;
    }
    r->key_length = v;
    return 0;
}

static int set_pull_url(void *cfg, const char *arg, const char *value, const char **err)
{
    if (arg[0] == '\0') {
        *err = "[pull NAME] needs the stream name";
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
     "Bearer token for POST and DELETE under /api/; unset: allowed from loopback only"},
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
     "[prefix RESOURCE-PREFIX] SRT passphrase for streams whose resource starts so"},
    {"prefix", "key_length", SW_CONF_CUSTOM, 0, 0, 0, set_rule_keylen, "16",
     "[prefix RESOURCE-PREFIX] SRT key length in bytes: 16, 24 or 32"},
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
    c->log_level = SW_LOG_INFO;
    c->srt_latency_ms = 120;
    c->srt_tsbpd = 1;
    c->srt_stall_ms = 10000;
    c->srt_probe_ms = 5000;
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
    memset(c, 0, sizeof(*c));
}
