/*
 * ingest_probe: runs origin's SRT ingest on a libuv loop and prints one line per event to stdout,
 * for tests/integration/test_ingest.py. The library's own log lines (publish, refuse, unpublish
 * with the reason) go to stderr.
 *
 *   ingest_probe --listen 127.0.0.1:19000 [--latency MS] [--stall MS] [--probe MS]
 *                [--queue BYTES] [--rule PREFIX=PASSPHRASE[:KEYLEN]]... [--pull NAME=URL]...
 *                [--drop NAME:SECONDS] [--run SECONDS]
 *
 * Output:
 *   READY <listen>
 *   PUBLISH <name> <peer>
 *   TRACK <name> video|audio <codec> <rate> <channels> <extradata_len>
 *   PACKET <name> video=<n> audio=<n> keys=<n> bytes=<n>   (totals, every second and at the end)
 *   STATS <name> rtt_ms=<x> mbps=<x> recv=<n> loss=<n> drop=<n> latency_ms=<n>   (every second)
 *   DELAY <name> n=<n> p50_us=<n> p99_us=<n> max_us=<n>   (demuxer -> on_packet, at the end)
 *   UNPUBLISH <name> <reason>
 *   ORDER <what>   (an event out of the order origin_ingest.h promises: a track or packet of an
 *                   unknown publisher, a packet before its track, a dts older than the previous
 *                   one of its track; test_ingest.py fails on any)
 *   BYE
 * SIGTERM or SIGINT (or --run) frees the ingest, which unpublishes everyone, then exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "sw/log.h"
#include "sw/sw.h"

#include "origin_ingest.h"

#define MAX_RULES   16
#define MAX_PULLS   16
#define MAX_SAMPLES 20000

typedef struct probe_pub {
    struct probe_pub *next;
    origin_pub_t *pub;
    char name[80];
    uint64_t n[HLS_NTRACKS], keys, bytes;
    int has_track[HLS_NTRACKS];
    int64_t last_dts[HLS_NTRACKS];
    uint32_t *delay_us;
    size_t ndelay;
    int drop_at; /* seconds after publish, or -1 */
    int age;
} probe_pub_t;

static uv_loop_t loop;
static uv_timer_t tick, stop_timer;
static uv_signal_t sig_term, sig_int;
static origin_ingest_t *ingest;
static probe_pub_t *pubs;
static const char *drop_name;
static int drop_after = -1;

static probe_pub_t *find(origin_pub_t *pub)
{
    for (probe_pub_t *p = pubs; p != NULL; p = p->next)
        if (p->pub == pub)
            return p;
    return NULL;
}

static void on_publish(void *data, origin_pub_t *pub, const char *name, const char *peer)
{
    probe_pub_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        abort();
    if (find(pub) != NULL)
        printf("ORDER %s: a second on_publish for one publisher\n", name);
    p->pub = pub;
    p->last_dts[HLS_VIDEO] = p->last_dts[HLS_AUDIO] = INT64_MIN;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->delay_us = malloc(MAX_SAMPLES * sizeof(*p->delay_us));
    p->drop_at = drop_name != NULL && strcmp(drop_name, name) == 0 ? drop_after : -1;
    p->next = pubs;
    pubs = p;
    printf("PUBLISH %s %s\n", name, peer);
    fflush(stdout);
}

static void on_track(void *data, origin_pub_t *pub, int kind, const hls_track_info_t *info)
{
    static const char *codecs[] = {"none", "h264", "hevc", "aac", "opus"};
    probe_pub_t *p = find(pub);
    if (p == NULL)
        printf("ORDER on_track of a publisher without on_publish\n");
    else
        p->has_track[kind] = 1;
    printf("TRACK %s %s %s %u %u %zu\n", p != NULL ? p->name : "?",
           kind == HLS_VIDEO ? "video" : "audio",
           (unsigned)info->codec < 5 ? codecs[info->codec] : "?", info->sample_rate, info->channels,
           info->extradata_len);
    fflush(stdout);
}

static void on_packet(void *data, origin_pub_t *pub, origin_packet_t *pkt)
{
    probe_pub_t *p = find(pub);
    if (p == NULL)
        printf("ORDER on_packet of a publisher without on_publish\n");
    if (p != NULL && !p->has_track[pkt->kind])
        printf("ORDER %s: %s packet before its on_track\n", p->name,
               pkt->kind == HLS_VIDEO ? "a video" : "an audio");
    /* The publishers of test_ingest.py send increasing timestamps: an older dts in a track means
     * that the ingest swapped two packets. */
    if (p != NULL && pkt->dts < p->last_dts[pkt->kind])
        printf("ORDER %s: %s dts %lld after %lld\n", p->name,
               pkt->kind == HLS_VIDEO ? "video" : "audio", (long long)pkt->dts,
               (long long)p->last_dts[pkt->kind]);
    if (p != NULL) {
        p->last_dts[pkt->kind] = pkt->dts;
        p->n[pkt->kind == HLS_AUDIO]++;
        p->keys += pkt->kind == HLS_VIDEO && pkt->key;
        p->bytes += pkt->len;
        if (p->delay_us != NULL && p->ndelay < MAX_SAMPLES)
            p->delay_us[p->ndelay++] = (uint32_t)((sw_mono_ns() - pkt->recv_ns) / 1000);
    }
    origin_packet_free(pkt);
}

static void print_counts(const probe_pub_t *p)
{
    printf("PACKET %s video=%llu audio=%llu keys=%llu bytes=%llu\n", p->name,
           (unsigned long long)p->n[HLS_VIDEO], (unsigned long long)p->n[HLS_AUDIO],
           (unsigned long long)p->keys, (unsigned long long)p->bytes);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void on_unpublish(void *data, origin_pub_t *pub, const char *reason)
{
    probe_pub_t **pp = &pubs, *p;
    while ((p = *pp) != NULL && p->pub != pub)
        pp = &p->next;
    if (p == NULL) {
        printf("UNPUBLISH ? %s\n", reason);
        fflush(stdout);
        return;
    }
    *pp = p->next;
    print_counts(p);
    if (p->ndelay > 0) {
        qsort(p->delay_us, p->ndelay, sizeof(*p->delay_us), cmp_u32);
        printf("DELAY %s n=%zu p50_us=%u p99_us=%u max_us=%u\n", p->name, p->ndelay,
               p->delay_us[p->ndelay / 2], p->delay_us[p->ndelay * 99 / 100],
               p->delay_us[p->ndelay - 1]);
    }
    printf("UNPUBLISH %s %s\n", p->name, reason);
    fflush(stdout);
    free(p->delay_us);
    free(p);
}

static void on_tick(uv_timer_t *t)
{
    for (probe_pub_t *p = pubs; p != NULL; p = p->next) {
        origin_srt_stats_t st;
        print_counts(p);
        if (origin_pub_stats(p->pub, &st) == 0)
            printf("STATS %s rtt_ms=%.2f mbps=%.2f recv=%lld loss=%lld drop=%lld latency_ms=%d\n",
                   p->name, st.rtt_ms, st.recv_mbps, (long long)st.pkt_recv, (long long)st.pkt_loss,
                   (long long)st.pkt_drop, st.latency_ms);
        if (p->drop_at >= 0 && ++p->age == p->drop_at)
            origin_ingest_drop(ingest, p->pub, "asked by ingest_probe --drop");
    }
    fflush(stdout);
}

static void shutdown_all(void)
{
    if (ingest == NULL)
        return;
    origin_ingest_free(ingest);
    ingest = NULL;
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&stop_timer, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    shutdown_all();
}

static void on_stop_timer(uv_timer_t *t)
{
    shutdown_all();
}

static void usage(void)
{
    fprintf(stderr, "usage: ingest_probe --listen ADDR [--latency MS] [--stall MS] [--probe MS] "
                    "[--queue BYTES] [--rule PREFIX=PASS[:KEYLEN]]... [--pull NAME=URL]... "
                    "[--drop NAME:SECONDS] [--run SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    origin_ingest_config_t cfg = {.listen = NULL};
    origin_srt_rule_t rules[MAX_RULES];
    origin_srt_pull_t pulls[MAX_PULLS];
    int run_s = 0;
    char err[256];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--listen") == 0) {
            cfg.listen = v;
        } else if (strcmp(a, "--latency") == 0) {
            cfg.latency_ms = atoi(v);
        } else if (strcmp(a, "--stall") == 0) {
            cfg.stall_ms = atoi(v);
        } else if (strcmp(a, "--probe") == 0) {
            cfg.probe_ms = atoi(v);
        } else if (strcmp(a, "--queue") == 0) {
            cfg.queue_bytes = (size_t)strtoull(v, NULL, 10);
        } else if (strcmp(a, "--run") == 0) {
            run_s = atoi(v);
        } else if (strcmp(a, "--drop") == 0) {
            char *c = strchr(v, ':');
            if (c == NULL)
                usage();
            *c = '\0';
            drop_name = v;
            drop_after = atoi(c + 1);
        } else if (strcmp(a, "--rule") == 0 && cfg.nrules < MAX_RULES) {
            char *eq = strchr(v, '=');
            if (eq == NULL)
                usage();
            *eq = '\0';
            origin_srt_rule_t *r = &rules[cfg.nrules++];
            r->prefix = (char *)v;
            r->passphrase = eq + 1;
            char *colon = strchr(eq + 1, ':');
            r->pbkeylen = 0;
            if (colon != NULL) {
                *colon = '\0';
                r->pbkeylen = atoi(colon + 1);
            }
        } else if (strcmp(a, "--pull") == 0 && cfg.npulls < MAX_PULLS) {
            char *eq = strchr(v, '=');
            if (eq == NULL)
                usage();
            *eq = '\0';
            pulls[cfg.npulls].name = (char *)v;
            pulls[cfg.npulls++].url = eq + 1;
        } else {
            usage();
        }
    }
    cfg.rules = rules;
    cfg.pulls = pulls;
    signal(SIGPIPE, SIG_IGN);
    if (getenv("SW_LOG_LEVEL") != NULL && sw_log_level_parse(getenv("SW_LOG_LEVEL")) >= 0)
        sw_log_set_level(sw_log_level_parse(getenv("SW_LOG_LEVEL")));

    origin_ingest_cbs_t cbs = {on_publish, on_track, on_packet, on_unpublish};
    uv_loop_init(&loop);
    if (origin_ingest_new(&ingest, &loop, &cfg, &cbs, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "ingest_probe: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 1000, 1000);
    uv_timer_init(&loop, &stop_timer);
    if (run_s > 0)
        uv_timer_start(&stop_timer, on_stop_timer, (uint64_t)run_s * 1000, 0);
    uv_signal_init(&loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(&loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    printf("READY %s\n", cfg.listen != NULL ? cfg.listen : "-");
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&loop);
    printf("BYE%s\n", rv != 0 ? " (loop not closed)" : "");
    fflush(stdout);
    return 0;
}
