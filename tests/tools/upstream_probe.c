/*
 * upstream_probe: runs edge_upstream on a libuv loop and fetches paths given on the command line,
 * for tests/integration/test_upstream.py.
 *
 *   upstream_probe --origin URL [--origin URL ...] [--parent URL ...] [--h2]
 *                  [--connect-timeout MS] [--first-byte-timeout MS] [--total-timeout MS]
 *                  [--health-interval MS] [--health-fails K] [--health-path PATH]
 *                  [--max-host-conns N] [--repeat N] [--key KEY] [--chunks] [--watch MS]
 *                  [--cancel-after N] PATH...
 *
 * Starts every PATH `repeat` times at once, then prints one line per fetch when it ends:
 *   fetch I path=P status=S bytes=B chunks=C ttfb_ms=T first_chunk_ms=.. last_chunk_ms=..
 *         total_ms=.. sha256=HEX err=E reason=R
 * (`chunk I N t_ms=.. len=..` per chunk with --chunks, as it arrives), `health URL healthy=0|1
 * t_ms=..` on every change seen during --watch MS (health checks are off unless
 * --health-interval is given), then `stats ...` and `node ...` lines, closes everything and
 * exits 0 (2 on bad usage or setup failure). Health checks default to off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "edge/upstream.h"
#include "sw/log.h"
#include "sw/sw.h"

typedef struct probe_fetch {
    int id;
    const char *path;
    edge_fetch_t *f;
    EVP_MD_CTX *md;
    int status;
    uint64_t bytes, chunks;
    uint64_t t0, t_head, t_first, t_last;
    int ended;
} probe_fetch_t;

static edge_upstream_t *up;
static probe_fetch_t *fetches;
static int n_fetches, n_ended, print_chunks, cancel_after = -1;
static uint64_t t_start;
static uv_timer_t watch_timer, poll_timer;
static int watch_ms, watching;
static int last_healthy[EDGE_UPSTREAM_MAX];

static double ms_since(uint64_t t0, uint64_t t)
{
    return t ? (double)(t - t0) / 1e6 : -1.0;
}

static void print_stats(void)
{
    edge_upstream_stats_t st;
    edge_upstream_stats(up, &st);
    printf("stats in_flight=%llu started=%llu completed=%llu failed=%llu cancelled=%llu "
           "failovers=%llu connects=%llu body_bytes=%llu errors=",
           (unsigned long long)st.in_flight, (unsigned long long)st.started,
           (unsigned long long)st.completed, (unsigned long long)st.failed,
           (unsigned long long)st.cancelled, (unsigned long long)st.failovers,
           (unsigned long long)st.connects, (unsigned long long)st.body_bytes);
    for (int k = 0; k < EDGE_UPERR_KINDS; k++)
        printf("%s%llu", k ? "," : "", (unsigned long long)st.errors[k]);
    printf(" ttfb_hist=");
    for (int b = 0; b < EDGE_TTFB_BUCKETS; b++)
        printf("%s%llu", b ? "," : "", (unsigned long long)st.ttfb_hist[b]);
    printf("\n");
    for (size_t i = 0; i < st.n_upstreams; i++) {
        edge_upstream_node_stats_t ns;
        edge_upstream_node_stats(up, i, &ns);
        printf("node %zu url=%s parent=%d healthy=%d attempts=%llu attempt_errors=%llu checks=%llu "
               "check_failures=%llu transitions=%llu last_ttfb_us=%llu\n",
               i, ns.url, ns.is_parent, ns.healthy, (unsigned long long)ns.attempts,
               (unsigned long long)ns.attempt_errors, (unsigned long long)ns.checks,
               (unsigned long long)ns.check_failures, (unsigned long long)ns.transitions,
               (unsigned long long)ns.last_ttfb_us);
    }
    fflush(stdout);
}

static void on_closed(void *data)
{
    printf("closed\n");
    fflush(stdout);
}

static void on_handle_closed(uv_handle_t *h)
{
}

static void maybe_finish(void)
{
    if (n_ended < n_fetches || watching)
        return;
    print_stats();
    uv_close((uv_handle_t *)&watch_timer, on_handle_closed);
    uv_close((uv_handle_t *)&poll_timer, on_handle_closed);
    edge_upstream_close(up, on_closed, NULL);
}

static void on_head(void *data, int status, const edge_header_t *h, size_t n)
{
    probe_fetch_t *p = data;
    p->status = status;
    p->t_head = sw_mono_ns();
}

static void on_data(void *data, sw_rbuf_t *chunk)
{
    probe_fetch_t *p = data;
    uint64_t now = sw_mono_ns();
    if (p->t_first == 0)
        p->t_first = now;
    p->t_last = now;
    p->bytes += chunk->len;
    p->chunks++;
    EVP_DigestUpdate(p->md, chunk->data, chunk->len);
    if (print_chunks) {
        printf("chunk %d %llu t_ms=%.3f len=%zu\n", p->id, (unsigned long long)p->chunks,
               ms_since(p->t0, now), chunk->len);
        fflush(stdout);
    }
    if (cancel_after >= 0 && p->chunks >= (uint64_t)cancel_after) {
        edge_fetch_cancel(p->f);
        printf("fetch %d path=%s status=%d bytes=%llu chunks=%llu cancelled=1\n", p->id, p->path,
               p->status, (unsigned long long)p->bytes, (unsigned long long)p->chunks);
        fflush(stdout);
        EVP_MD_CTX_free(p->md);
        p->md = NULL;
        p->ended = 1;
        n_ended++;
        maybe_finish();
    }
}

static void on_done(void *data, int err, const char *reason)
{
    probe_fetch_t *p = data;
    uint64_t now = sw_mono_ns();
    unsigned char dg[32];
    unsigned int dl = 0;
    char hex[65] = "";
    EVP_DigestFinal_ex(p->md, dg, &dl);
    EVP_MD_CTX_free(p->md);
    p->md = NULL;
    for (unsigned i = 0; i < dl && i < 32; i++)
        sprintf(hex + 2 * i, "%02x", dg[i]);
    printf("fetch %d path=%s status=%d bytes=%llu chunks=%llu ttfb_ms=%.3f first_chunk_ms=%.3f "
           "last_chunk_ms=%.3f total_ms=%.3f sha256=%s err=%d reason=%s\n",
           p->id, p->path, p->status, (unsigned long long)p->bytes, (unsigned long long)p->chunks,
           ms_since(p->t0, p->t_head), ms_since(p->t0, p->t_first), ms_since(p->t0, p->t_last),
           ms_since(p->t0, now), hex, err, reason ? reason : "-");
    fflush(stdout);
    p->ended = 1;
    n_ended++;
    maybe_finish();
}

static void on_watch_done(uv_timer_t *t)
{
    watching = 0;
    maybe_finish();
}

static void on_poll_health(uv_timer_t *t)
{
    edge_upstream_stats_t st;
    edge_upstream_stats(up, &st);
    for (size_t i = 0; i < st.n_upstreams; i++) {
        edge_upstream_node_stats_t ns;
        edge_upstream_node_stats(up, i, &ns);
        if (ns.healthy != last_healthy[i]) {
            last_healthy[i] = ns.healthy;
            printf("health %s healthy=%d t_ms=%.3f\n", ns.url, ns.healthy,
                   ms_since(t_start, sw_mono_ns()));
            fflush(stdout);
        }
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: upstream_probe --origin URL [options] PATH...\n");
    return 2;
}

int main(int argc, char **argv)
{
    edge_upstream_config_t cfg;
    const char *origins[EDGE_UPSTREAM_MAX], *parents[EDGE_UPSTREAM_MAX], *paths[256];
    const char *key = NULL;
    size_t no = 0, np = 0, npaths = 0;
    int repeat = 1;

    edge_upstream_config_init(&cfg);
    cfg.health_interval_ms = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--h2") == 0) {
            cfg.http2_prior_knowledge = 1;
            continue;
        }
        if (strcmp(a, "--chunks") == 0) {
            print_chunks = 1;
            continue;
        }
        if (a[0] != '-') {
            if (npaths < SW_ARRAY_SIZE(paths))
                paths[npaths++] = a;
            continue;
        }
        if (v == NULL)
            return usage();
        i++;
        if (strcmp(a, "--origin") == 0 && no < EDGE_UPSTREAM_MAX)
            origins[no++] = v;
        else if (strcmp(a, "--parent") == 0 && np < EDGE_UPSTREAM_MAX)
            parents[np++] = v;
        else if (strcmp(a, "--connect-timeout") == 0)
            cfg.connect_timeout_ms = (uint32_t)atoi(v);
        else if (strcmp(a, "--first-byte-timeout") == 0)
            cfg.first_byte_timeout_ms = (uint32_t)atoi(v);
        else if (strcmp(a, "--total-timeout") == 0)
            cfg.total_timeout_ms = (uint32_t)atoi(v);
        else if (strcmp(a, "--health-interval") == 0)
            cfg.health_interval_ms = (uint32_t)atoi(v);
        else if (strcmp(a, "--health-fails") == 0)
            cfg.health_fails = (uint32_t)atoi(v);
        else if (strcmp(a, "--health-path") == 0)
            cfg.health_path = v;
        else if (strcmp(a, "--max-host-conns") == 0)
            cfg.max_host_conns = (uint32_t)atoi(v);
        else if (strcmp(a, "--repeat") == 0)
            repeat = atoi(v);
        else if (strcmp(a, "--key") == 0)
            key = v;
        else if (strcmp(a, "--watch") == 0)
            watch_ms = atoi(v);
        else if (strcmp(a, "--cancel-after") == 0)
            cancel_after = atoi(v);
        else
            return usage();
    }
    if ((no == 0 && np == 0) || repeat < 1 || repeat > 10000)
        return usage();
    cfg.origins = origins;
    cfg.n_origins = no;
    cfg.parents = parents;
    cfg.n_parents = np;

    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    if (edge_upstream_new(&up, &loop, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "edge_upstream_new: %s\n", err);
        return 2;
    }
    for (size_t i = 0; i < no + np; i++)
        last_healthy[i] = 1;
    if (key != NULL) {
        printf("pick %s %s\n", key, edge_upstream_pick(up, key));
        fflush(stdout);
    }
    t_start = sw_mono_ns();
    uv_timer_init(&loop, &watch_timer);
    uv_timer_init(&loop, &poll_timer);
    uv_timer_start(&poll_timer, on_poll_health, 10, 10);
    if (watch_ms > 0) {
        watching = 1;
        uv_timer_start(&watch_timer, on_watch_done, (uint64_t)watch_ms, 0);
    }
    n_fetches = (int)npaths * repeat;
    fetches = calloc((size_t)n_fetches + 1, sizeof(*fetches));
    static const edge_fetch_cbs_t cbs = {on_head, on_data, on_done};
    for (int i = 0; i < n_fetches; i++) {
        probe_fetch_t *p = &fetches[i];
        p->id = i;
        p->path = paths[(size_t)i / (size_t)repeat];
        p->md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(p->md, EVP_sha256(), NULL);
        p->t0 = sw_mono_ns();
        int rv = edge_fetch_start(up, p->path, key, &cbs, p, &p->f);
        if (rv != 0) {
            printf("fetch %d path=%s start_error=%d\n", i, p->path, rv);
            EVP_MD_CTX_free(p->md);
            p->md = NULL;
            p->ended = 1;
            n_ended++;
        }
    }
    maybe_finish();
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < n_fetches; i++)
        EVP_MD_CTX_free(fetches[i].md);
    free(fetches);
    int rc = uv_loop_close(&loop);
    if (rc != 0)
        fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(rc));
    return rc == 0 ? 0 : 1;
}
