/*
 * origin.c: the origin's lifecycle, its streams, and the glue between ingest (publishers and their
 * packets) and hls/ (CMAF parts and segments), which then wake the held requests.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "origin_int.h"
#include "sw/log.h"

const double origin_lat_bounds_ms[ORIGIN_LAT_BUCKETS] = {1,   2,   5,   10,  20,   50,
                                                         100, 200, 350, 500, 1000, 2000};

void origin__latency_add(origin_latency_t *l, double ms)
{
    int i = 0;
    while (i < ORIGIN_LAT_BUCKETS && ms > origin_lat_bounds_ms[i])
        i++;
    l->buckets[i]++;
    l->sum_ms += ms;
    l->count++;
    l->ring[l->ring_pos++ % ORIGIN_LAT_RING] = (float)ms;
}

origin_stream_t *origin__stream_find(struct origin *o, const char *name)
{
    for (origin_stream_t *st = o->streams; st != NULL; st = st->next)
        if (strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

/* hls/ events: they arrive from inside hls_stream_write(), on the loop thread. */

static void on_hls_init(void *data, int kind, uint32_t gen, sw_rbuf_t *init)
{
    origin_stream_t *st = data;
    sw_log(SW_LOG_INFO, "hls", "%s: %s init segment %u (%zu bytes)", st->name,
           kind == HLS_VIDEO ? "video" : "audio", gen, init->len);
    origin__dvr_write_init(st, kind, gen, init);
}

static void on_hls_part(void *data, int kind, const hls_segment_t *seg, uint32_t part)
{
    origin_stream_t *st = data;
    uint64_t now = sw_mono_ns();
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    st->part_ready_us[kind] = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;

    for (uint32_t i = 0; i < st->npending[kind]; i++) {
        double ms = (double)(now - st->pending_ns[kind][i]) / 1e6;
        origin__latency_add(&st->o->latency, ms);
        origin__latency_add(&st->o->latency_track[kind], ms);
        if (i + 1 == st->npending[kind])
            origin__latency_add(&st->o->latency_last, ms);
    }
    st->npending[kind] = 0;
    origin__waiters_on_part(st, kind);
}

static void on_hls_segment(void *data, int kind, const hls_segment_t *seg)
{
    origin_stream_t *st = data;
    origin__dvr_write_segment(st, kind, seg);
    origin__waiters_on_segment(st, kind, seg);
}

static void on_hls_expire(void *data, int kind, uint64_t msn)
{
    origin__dvr_expire(data, kind, msn);
}

static void on_hls_log(void *data, int level, const char *msg)
{
    origin_stream_t *st = data;
    sw_log(level, "hls", "%s: %s", st->name, msg);
}

static const hls_stream_cbs_t hls_cbs = {
    .on_init = on_hls_init,
    .on_part = on_hls_part,
    .on_segment = on_hls_segment,
    .on_expire = on_hls_expire,
    .on_log = on_hls_log,
};

static origin_stream_t *stream_new(struct origin *o, const char *name)
{
    origin_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->o = o;
    st->index_fd = -1;
    snprintf(st->name, sizeof(st->name), "%s", name);
    snprintf(st->dir, sizeof(st->dir), "%s/%s", o->data_dir, name);
    st->created_ms = sw_now_ms();
    /* An earlier run's stream was last heard of when its index was last written. */
    char index[1100];
    struct stat sb;
    snprintf(index, sizeof(index), "%s/index.log", st->dir);
    st->last_media_ms = stat(index, &sb) == 0 ? (int64_t)sb.st_mtime * 1000 : 0;

    hls_stream_config_t cfg = o->hls_cfg;
    origin_dvr_restore_t r;
    int restored = origin__dvr_restore(o, name, &r);
    if (restored == ORIGIN_ERR_NOMEM)
        goto fail;
    if (restored == 0) {
        cfg.first_msn = r.next_msn;
        cfg.origin_ms = r.origin_ms;
        cfg.first_init_gen = r.init_gen;
        sw_log(SW_LOG_INFO, "origin", "%s: continuing after a %s at media sequence %llu", name,
               r.clean ? "restart" : "crash", (unsigned long long)r.next_msn);
    }
    if (hls_stream_new(&st->hls, &cfg, &hls_cbs, st) != 0) {
        if (restored == 0)
            origin__dvr_restore_dispose(&r);
        goto fail;
    }
    if (restored == 0) {
        if (origin__dvr_restore_timeline(st, &r) != 0)
            sw_log(SW_LOG_WARN, "origin", "%s: the earlier run's timeline was not restored", name);
        origin__dvr_restore_dispose(&r);
    }
    if (origin__dvr_open(st) != 0)
        goto fail_hls;
    st->next = o->streams;
    o->streams = st;
    o->nstreams++;
    return st;
fail_hls:
    hls_stream_free(st->hls);
fail:
    free(st);
    return NULL;
}

static void stream_free(origin_stream_t *st)
{
    origin__waiters_abort_all(st);
    origin__room_dispose(&st->room);
    origin__dvr_close(st);
    hls_stream_free(st->hls);
    for (int k = 0; k < HLS_NTRACKS; k++)
        free((void *)st->tracks[k].extradata);
    free(st);
}

/*
 * Publisher -> stream, looked up for every packet: an open-addressing table keyed by the
 * publisher's address (live publishers only, so it stays small), with backward-shift deletion.
 */
static size_t pub_slot(const struct origin *o, const origin_pub_t *pub)
{
    uintptr_t h = (uintptr_t)pub;
    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 7) & (o->pubmap_cap - 1);
}

static int pubmap_put(struct origin *o, origin_pub_t *pub, origin_stream_t *st)
{
    if ((o->pubmap_n + 1) * 2 > o->pubmap_cap) {
        size_t cap = o->pubmap_cap ? o->pubmap_cap * 2 : 64;
        origin_pubmap_entry_t *old = o->pubmap, *e = calloc(cap, sizeof(*e));
        size_t old_cap = o->pubmap_cap;
        if (e == NULL)
            return -1;
        o->pubmap = e;
        o->pubmap_cap = cap;
        o->pubmap_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].pub != NULL)
                pubmap_put(o, old[i].pub, old[i].st);
        free(old);
    }
    size_t i = pub_slot(o, pub);
    while (o->pubmap[i].pub != NULL && o->pubmap[i].pub != pub)
        i = (i + 1) & (o->pubmap_cap - 1);
    if (o->pubmap[i].pub == NULL)
        o->pubmap_n++;
    o->pubmap[i].pub = pub;
    o->pubmap[i].st = st;
    return 0;
}

static void pubmap_del(struct origin *o, origin_pub_t *pub)
{
    if (o->pubmap_cap == 0)
        return;
    size_t mask = o->pubmap_cap - 1, i = pub_slot(o, pub);
    while (o->pubmap[i].pub != pub) {
        if (o->pubmap[i].pub == NULL)
            return;
        i = (i + 1) & mask;
    }
    /* Shift back the entries that probed past the hole. */
    for (size_t j = (i + 1) & mask; o->pubmap[j].pub != NULL; j = (j + 1) & mask) {
        size_t home = pub_slot(o, o->pubmap[j].pub);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            o->pubmap[i] = o->pubmap[j];
            i = j;
        }
    }
    o->pubmap[i].pub = NULL;
    o->pubmap[i].st = NULL;
    o->pubmap_n--;
}

static origin_stream_t *stream_of(struct origin *o, origin_pub_t *pub)
{
    if (o->pubmap_cap == 0)
        return NULL;
    for (size_t i = pub_slot(o, pub);; i = (i + 1) & (o->pubmap_cap - 1)) {
        if (o->pubmap[i].pub == pub)
            return o->pubmap[i].st;
        if (o->pubmap[i].pub == NULL)
            return NULL;
    }
}

/* Ingest events. */

static void on_publish(void *data, origin_pub_t *pub, const char *name, const char *peer)
{
    struct origin *o = data;
    origin_stream_t *st = origin__stream_find(o, name);

    if (st == NULL && (st = stream_new(o, name)) == NULL) {
        sw_log(SW_LOG_ERROR, "origin",
               "%s: cannot create the stream (out of memory or %s not "
               "writable); dropping the publisher",
               name, o->data_dir);
        origin_ingest_drop(o->ingest, pub, "origin cannot create the stream");
        return;
    }
    if (st->pub != NULL) {
        /* The ingest refuses a second publisher on a live name in the handshake; this would be
         * a bug there, so keep the first one. */
        sw_log(SW_LOG_ERROR, "origin", "%s: second publisher %s while %s is live; dropping it",
               name, peer, st->peer);
        origin_ingest_drop(o->ingest, pub, "stream already live");
        return;
    }
    if (pubmap_put(o, pub, st) != 0) {
        sw_log(SW_LOG_ERROR, "origin", "%s: out of memory; dropping the publisher", name);
        origin_ingest_drop(o->ingest, pub, "origin out of memory");
        return;
    }
    if (st->publishes > 0)
        hls_stream_discontinuity(st->hls, sw_now_ms());
    st->pub = pub;
    st->publishes++;
    st->publish_ms = sw_now_ms();
    snprintf(st->peer, sizeof(st->peer), "%s", peer);
    o->publishes_total++;
    sw_log(SW_LOG_INFO, "origin", "%s: publisher %s is live (publish #%llu)", name, peer,
           (unsigned long long)st->publishes);
    if (o->redis != NULL)
        origin__redis_announce(o->redis, st);
}

static void on_track(void *data, origin_pub_t *pub, int kind, const hls_track_info_t *info)
{
    origin_stream_t *st = stream_of(data, pub);
    if (st == NULL || kind < 0 || kind >= HLS_NTRACKS)
        return;

    hls_track_info_t *t = &st->tracks[kind];
    free((void *)t->extradata);
    *t = *info;
    t->extradata = NULL;
    t->extradata_len = 0;
    if (info->extradata_len > 0 && (t->extradata = malloc(info->extradata_len)) != NULL) {
        memcpy((void *)t->extradata, info->extradata, info->extradata_len);
        t->extradata_len = info->extradata_len;
    }
    int rv = hls_stream_set_track(st->hls, kind, info);
    if (rv != 0) {
        sw_log(SW_LOG_WARN, "origin", "%s: %s track not packaged: %s", st->name,
               kind == HLS_VIDEO ? "video" : "audio", hls_strerror(rv));
        t->codec = HLS_CODEC_NONE;
    }
}

static void on_packet(void *data, origin_pub_t *pub, origin_packet_t *pkt)
{
    origin_stream_t *st = stream_of(data, pub);
    const char *why = NULL;

    if (st == NULL || pkt->kind < 0 || pkt->kind >= HLS_NTRACKS ||
        st->tracks[pkt->kind].codec == HLS_CODEC_NONE) {
        origin_packet_free(pkt);
        return;
    }
    st->packets++;
    st->bytes_in += pkt->len;
    st->last_media_ms = pkt->recv_ms;
    if (st->npending[pkt->kind] < SW_ARRAY_SIZE(st->pending_ns[0]))
        st->pending_ns[pkt->kind][st->npending[pkt->kind]++] = pkt->recv_ns;

    int rv = hls_stream_write(st->hls, pkt->kind, pkt->data, pkt->len, pkt->pts, pkt->dts, pkt->key,
                              pkt->recv_ms, &why);
    if (rv == HLS_ERR_NOMEM) {
        sw_log(SW_LOG_ERROR, "origin", "%s: out of memory while packaging; dropping the publisher",
               st->name);
        origin_ingest_drop(st->o->ingest, pub, "origin out of memory");
    } else if (rv != 0 && rv != HLS_ERR_AGAIN) {
        st->write_errors++;
        /* One line per error kind would be nicer; the packager already rate-limits its own. */
        if (st->write_errors <= 10 || st->write_errors % 1000 == 0)
            sw_log(SW_LOG_WARN, "origin", "%s: %s sample dropped: %s (%s; %llu so far)", st->name,
                   pkt->kind == HLS_VIDEO ? "video" : "audio", hls_strerror(rv),
                   why ? why : "no detail", (unsigned long long)st->write_errors);
    }
    origin_packet_free(pkt);
}

static void on_unpublish(void *data, origin_pub_t *pub, const char *reason)
{
    struct origin *o = data;
    origin_stream_t *st = stream_of(o, pub);
    if (st == NULL)
        return;
    st->pub = NULL;
    pubmap_del(o, pub);
    o->unpublishes_total++;
    hls_stream_discontinuity(st->hls, sw_now_ms());
    origin__waiters_on_unpublish(st);
    sw_log(SW_LOG_INFO, "origin", "%s: publisher %s left after %llds: %s", st->name, st->peer,
           (long long)((sw_now_ms() - st->publish_ms) / 1000), reason);
    if (o->redis != NULL)
        origin__redis_withdraw(o->redis, st);
}

static const origin_ingest_cbs_t ingest_cbs = {
    .on_publish = on_publish,
    .on_track = on_track,
    .on_packet = on_packet,
    .on_unpublish = on_unpublish,
};

/* When the stream was last live, by the wall clock: its last packet (for a stream of an earlier
 * run, until it publishes again, the time its index was last written: stream_new()). Not its
 * segments' PDT: a sender faster than real time puts those ahead of the clock. */
static int64_t last_media_ms(const origin_stream_t *st)
{
    return st->last_media_ms != 0 ? st->last_media_ms : st->created_ms;
}

/*
 * A stream offline for longer than the DVR window has nothing left to serve: it is forgotten, its
 * memory freed and its folder removed, so that names published once (by anyone) do not pile up in
 * memory and on disk, nor come back at every start. Its registry entry went when its publisher
 * left (origin_redis.c). Checked every 10 s, and at start right after the restore.
 */
static void forget_gone(struct origin *o, int64_t now)
{
    origin_stream_t **pp = &o->streams;

    o->next_forget_ms = now + 10000;
    while (*pp != NULL) {
        origin_stream_t *st = *pp;
        int64_t last = last_media_ms(st);
        if (st->pub != NULL || st->redis_pending > 0 ||
            now - last <= (int64_t)o->hls_cfg.window_ms) {
            pp = &st->next;
            continue;
        }
        if (origin__dvr_remove(st) != 0) {
            o->next_forget_ms = now; /* a write of it is queued: next tick */
            pp = &st->next;
            continue;
        }
        sw_log(SW_LOG_INFO, "origin",
               "%s: offline for %llds, longer than dvr_window (%llds): forgotten (memory, DVR "
               "folder)",
               st->name, (long long)((now - last) / 1000),
               (long long)(o->hls_cfg.window_ms / 1000));
        *pp = st->next;
        o->nstreams--;
        o->streams_forgotten++;
        stream_free(st);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct origin *o = sw_container_of(t, struct origin, tick);
    int64_t now = sw_now_ms();
    if (now >= o->next_forget_ms)
        forget_gone(o, now);
    for (origin_stream_t *st = o->streams; st != NULL; st = st->next)
        origin__waiters_sweep(st, now);
    origin__rooms_sweep(o, now);
    if (o->redis != NULL)
        origin__redis_tick(o->redis);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return 1;
}

/*
 * Streams of an earlier run: their DVR folders come back as offline streams, so their segments
 * stay addressable and a returning publisher continues their media sequence.
 */
static void restore_streams(struct origin *o)
{
    DIR *d = opendir(o->data_dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char index[1200];
        if (!valid_name(e->d_name) || origin__stream_find(o, e->d_name) != NULL)
            continue;
        snprintf(index, sizeof(index), "%s/%s/index.log", o->data_dir, e->d_name);
        if (access(index, R_OK) != 0)
            continue;
        if (stream_new(o, e->d_name) == NULL)
            sw_log(SW_LOG_WARN, "origin", "%s: cannot restore the stream of an earlier run",
                   e->d_name);
    }
    closedir(d);
}

static int mkdir_p(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* The ingest's view of `cfg`. `rules` and `pulls` hold cfg->nrules and cfg->npulls entries; they
 * and `cfg` must outlive `ic`. */
static void ingest_config(const origin_config_t *cfg, origin_ingest_config_t *ic,
                          origin_srt_rule_t *rules, origin_srt_pull_t *pulls)
{
    for (size_t i = 0; i < cfg->nrules; i++) {
        rules[i].prefix = cfg->rules[i].prefix;
        rules[i].passphrase = cfg->rules[i].passphrase;
        rules[i].pbkeylen = (int)cfg->rules[i].key_length;
    }
    for (size_t i = 0; i < cfg->npulls; i++) {
        pulls[i].name = cfg->pulls[i].name;
        pulls[i].url = cfg->pulls[i].url;
    }
    *ic = (origin_ingest_config_t){
        .listen = cfg->srt,
        .latency_ms = (int)cfg->srt_latency_ms,
        .no_tsbpd = !cfg->srt_tsbpd,
        .stall_ms = (int)cfg->srt_stall_ms,
        .probe_ms = (int)cfg->srt_probe_ms,
        .rules = rules,
        .nrules = cfg->nrules,
        .pulls = pulls,
        .npulls = cfg->npulls,
        .max_publishers = (int)cfg->srt_max_publishers,
        .max_per_source = (int)cfg->srt_max_per_source,
        .require_passphrase = cfg->srt_require_passphrase,
        .allow = (const char *const *)cfg->srt_allow,
        .nallow = cfg->srt_nallow,
    };
}

int origin_reload(origin_t *o, const origin_config_t *cfg, char *err, size_t errlen)
{
    origin_srt_rule_t *rules = calloc(cfg->nrules + 1, sizeof(*rules));
    origin_srt_pull_t *pulls = calloc(cfg->npulls + 1, sizeof(*pulls));
    char *token = NULL;
    origin_ingest_config_t ic;
    int rv = ORIGIN_ERR_NOMEM;

    if (rules == NULL || pulls == NULL)
        goto out;
    if (cfg->api_token != NULL && cfg->api_token[0] != '\0' &&
        (token = strdup(cfg->api_token)) == NULL)
        goto out;
    if ((rv = origin_config_check(cfg, err, errlen)) != 0)
        goto out;
    sw_alog_t alog;
    if (sw_alog_open(&alog, cfg->access_log, err, errlen) != 0) {
        rv = ORIGIN_ERR_CONFIG;
        goto out;
    }
    ingest_config(cfg, &ic, rules, pulls);
    if (origin_ingest_reload(o->ingest, &ic, err, errlen) != 0) {
        sw_alog_close(&alog);
        rv = ORIGIN_ERR_CONFIG;
        goto out;
    }
    /* The server holds &o->alog: the new descriptor takes the old one's place. */
    sw_alog_close(&o->alog);
    o->alog = alog;
    free(o->api_token);
    o->api_token = token;
    token = NULL;
    sw_log_set_level(cfg->log_level);
    rv = 0;
out:
    if (rv == ORIGIN_ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    free(token);
    free(rules);
    free(pulls);
    return rv;
}

int origin_new(origin_t **out, uv_loop_t *loop, const origin_config_t *cfg, char *err,
               size_t errlen)
{
    struct origin *o;
    int rv = ORIGIN_ERR_NOMEM;
    const char *desc = NULL;

    if ((rv = origin_config_check(cfg, err, errlen)) != 0)
        return rv;
    rv = ORIGIN_ERR_NOMEM;
    if ((o = calloc(1, sizeof(*o))) == NULL)
        goto fail;
    o->loop = loop;
    o->started_ms = sw_now_ms();
    hls_stream_config_init(&o->hls_cfg);
    o->hls_cfg.segment_ms = (uint32_t)cfg->segment_ms;
    o->hls_cfg.part_ms = (uint32_t)cfg->part_ms;
    o->hls_cfg.window_ms = (uint32_t)cfg->dvr_ms;
    o->hls_cfg.mem_segments = (uint32_t)cfg->memory_segments;
    o->live_segments = (uint32_t)cfg->live_segments;
    /* LL-HLS: a blocked request that cannot be answered within three target durations gets 503. */
    o->block_timeout_ms = 3 * (uint64_t)cfg->segment_ms + 1000;
    snprintf(o->http_addr, sizeof(o->http_addr), "%s", cfg->http);
    if ((o->data_dir = strdup(cfg->data)) == NULL)
        goto fail_origin;
    if (cfg->public_url != NULL && (o->public_url = strdup(cfg->public_url)) == NULL)
        goto fail_dir;
    if (cfg->api_token != NULL && cfg->api_token[0] != '\0' &&
        (o->api_token = strdup(cfg->api_token)) == NULL)
        goto fail_url;

    if (mkdir_p(o->data_dir) != 0 || access(o->data_dir, W_OK) != 0) {
        snprintf(err, errlen, "data folder %s is not writable: %s", o->data_dir, strerror(errno));
        rv = ORIGIN_ERR_IO;
        goto fail_url;
    }

    sw_http_server_config_t hc;
    sw_http_server_config_init(&hc);
    hc.max_connections = (uint32_t)cfg->http_max_connections;
    hc.idle_timeout_ms = (uint32_t)cfg->http_idle_ms;
    hc.header_timeout_ms = (uint32_t)cfg->http_header_ms;
    hc.notsent_lowat = (uint32_t)cfg->http_notsent_lowat;
    hc.server_name = "shortwave-origin";
    if ((rv = sw_http_server_new(&o->http, loop, &hc, origin__http_handle, o)) != 0) {
        rv = ORIGIN_ERR_NOMEM;
        goto fail_url;
    }
    if (sw_http_server_listen(o->http, cfg->http, 0, NULL, &desc) != 0) {
        snprintf(err, errlen, "http = %s: cannot listen: %s", cfg->http, desc ? desc : "error");
        rv = ORIGIN_ERR_LISTEN;
        goto fail_http;
    }
    if (sw_alog_open(&o->alog, cfg->access_log, err, errlen) != 0) {
        rv = ORIGIN_ERR_IO;
        goto fail_http;
    }
    sw_http_server_set_alog(o->http, &o->alog);

    origin_srt_rule_t *rules = calloc(cfg->nrules + 1, sizeof(*rules));
    origin_srt_pull_t *pulls = calloc(cfg->npulls + 1, sizeof(*pulls));
    if (rules == NULL || pulls == NULL) {
        free(rules);
        free(pulls);
        rv = ORIGIN_ERR_NOMEM;
        goto fail_http;
    }
    origin_ingest_config_t ic;
    ingest_config(cfg, &ic, rules, pulls);
    rv = origin_ingest_new(&o->ingest, loop, &ic, &ingest_cbs, o, err, errlen);
    free(rules);
    free(pulls);
    if (rv != 0) {
        rv = ORIGIN_ERR_LISTEN;
        goto fail_http;
    }

    if (cfg->redis != NULL && cfg->redis[0] != '\0' &&
        origin__redis_new(&o->redis, o, cfg->redis, cfg->redis_ttl_ms, err, errlen) != 0) {
        rv = ORIGIN_ERR_CONFIG;
        goto fail_ingest;
    }

    origin__remove_gone(o);
    restore_streams(o);
    forget_gone(o, sw_now_ms());
    uv_timer_init(loop, &o->tick);
    uv_timer_start(&o->tick, on_tick, 250, 250);
    sw_log(SW_LOG_INFO, "origin", "listening: srt %s, http %s, data %s%s%s", cfg->srt, cfg->http,
           o->data_dir, o->redis ? ", redis " : "", o->redis ? cfg->redis : "");
    *out = o;
    return 0;

fail_ingest:
    origin_ingest_free(o->ingest);
fail_http:
    sw_alog_close(&o->alog);
    /* The server has no connections yet; closing it only closes listeners. */
    sw_http_server_close(o->http, NULL, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    sw_http_server_free(o->http);
fail_url:
    free(o->api_token);
    free(o->public_url);
fail_dir:
    free(o->data_dir);
fail_origin:
    free(o);
fail:
    if (rv == ORIGIN_ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    return rv;
}

void origin__closed_one(struct origin *o)
{
    if (--o->pending_closes == 0 && o->on_closed != NULL)
        o->on_closed(o->on_closed_data);
}

static void on_http_closed(void *data)
{
    origin__closed_one(data);
}

static void on_tick_closed(uv_handle_t *h)
{
    origin__closed_one(sw_container_of(h, struct origin, tick));
}

void origin_shutdown(origin_t *o, void (*on_closed)(void *data), void *data)
{
    if (o->closing)
        return;
    o->closing = 1;
    o->on_closed = on_closed;
    o->on_closed_data = data;
    /* Publishers first: their last packets and unpublish events are delivered now, which closes
     * the open segments and writes them to disk. */
    origin_ingest_free(o->ingest);
    o->ingest = NULL;
    for (origin_stream_t *st = o->streams; st != NULL; st = st->next)
        origin__waiters_abort_all(st);
    o->pending_closes = 3;
    sw_http_server_close(o->http, on_http_closed, o);
    uv_close((uv_handle_t *)&o->tick, on_tick_closed);
    if (o->redis != NULL)
        origin__redis_close(o->redis);
    else
        origin__closed_one(o);
}

void origin_free(origin_t *o)
{
    if (o == NULL)
        return;
    origin_stream_t *st = o->streams;
    while (st != NULL) {
        origin_stream_t *next = st->next;
        stream_free(st);
        st = next;
    }
    if (o->http != NULL)
        sw_http_server_free(o->http);
    sw_alog_close(&o->alog);
    free(o->pubmap);
    free(o->data_dir);
    free(o->public_url);
    free(o->api_token);
    free(o);
}
