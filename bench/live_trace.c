/*
 * live_trace.c: the synthetic live-viewer trace of live_trace.h.
 */
#include <stdio.h>

#include "live_trace.h"

typedef struct rng {
    uint64_t s;
} rng_t;

/* xorshift64*: fast, and the same sequence on every platform. */
static uint64_t next_rand(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static int64_t gcd(int64_t a, int64_t b)
{
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void live_trace_default(live_trace_t *t)
{
    t->streams = 50;
    t->live_viewers = 500;
    t->dvr_viewers = 40;
    t->steps = 300;
    t->seed = 0x9e3779b97f4a7c15ull;
}

#define PARTS    4
#define PL_BYTES 2048
#define PL_TTL   1000
#define SEG_TTL  600000

int live_trace_run(const live_trace_t *t, live_trace_cb cb, void *data)
{
    static double cdf[LIVE_TRACE_MAX_STREAMS];
    static int viewer_stream[LIVE_TRACE_MAX_VIEWERS], dvr_stream[LIVE_TRACE_MAX_VIEWERS];
    static int64_t dvr_pos[LIVE_TRACE_MAX_VIEWERS];
    static size_t seg_bytes[LIVE_TRACE_MAX_STREAMS];
    rng_t r = {t->seed != 0 ? t->seed : 1};
    char key[96];

    if (t->streams < 1 || t->streams > LIVE_TRACE_MAX_STREAMS || t->live_viewers < 0 ||
        t->live_viewers > LIVE_TRACE_MAX_VIEWERS || t->dvr_viewers < 0 ||
        t->dvr_viewers > LIVE_TRACE_MAX_VIEWERS || t->steps < 0)
        return -1;
    double sum = 0;
    for (int s = 0; s < t->streams; s++) {
        sum += 1.0 / (s + 1);
        cdf[s] = sum;
        seg_bytes[s] = (size_t)(250000 << (s % 3)); /* 2 s at 1, 2 or 4 Mbit/s */
    }
    for (int v = 0; v < t->live_viewers; v++) {
        double u = (double)(next_rand(&r) >> 11) / 9007199254740992.0 * sum;
        int s = 0;
        while (s < t->streams - 1 && cdf[s] < u)
            s++;
        viewer_stream[v] = s;
    }
    for (int d = 0; d < t->dvr_viewers; d++) {
        dvr_stream[d] = (int)(next_rand(&r) % (uint64_t)t->streams);
        dvr_pos[d] = -1;
    }

    int64_t stride = 7;
    while (t->live_viewers > 0 && gcd(stride, t->live_viewers) != 1)
        stride += 2;
    for (int64_t step = 0; step < t->steps; step++) {
        for (int p = 0; p < PARTS; p++) {
            int64_t now = step * 2000 + p * 500;
            int n = t->live_viewers;
            /* Viewers in a different order each sub-step: a stride prime to n visits each once. */
            int start = n > 0 ? (int)(next_rand(&r) % (uint64_t)n) : 0;
            for (int i = 0; i < n; i++) {
                int v = (int)((start + (int64_t)i * stride) % n), s = viewer_stream[v];
                snprintf(key, sizeof(key), "/live/s%d/index.m3u8", s);
                cb(data, key, PL_BYTES, PL_TTL, now);
                if (v % 2 == 0) {
                    snprintf(key, sizeof(key), "/live/s%d/seg%lld.p%d.m4s", s, (long long)step, p);
                    cb(data, key, seg_bytes[s] / PARTS, SEG_TTL, now);
                } else if (p == v % PARTS && step > 0) {
                    snprintf(key, sizeof(key), "/live/s%d/seg%lld.m4s", s, (long long)step - 1);
                    cb(data, key, seg_bytes[s], SEG_TTL, now);
                }
            }
            if (p != 0)
                continue;
            for (int d = 0; d < t->dvr_viewers; d++) {
                int s = dvr_stream[d];
                if (dvr_pos[d] < 0 || dvr_pos[d] >= step - 1) { /* caught up: seek back again */
                    int64_t back = (int64_t)(next_rand(&r) % 300);
                    dvr_pos[d] = step - 1 - back < 0 ? 0 : step - 1 - back;
                }
                snprintf(key, sizeof(key), "/live/s%d/seg%lld.m4s?dvr=1", s,
                         (long long)dvr_pos[d]++);
                cb(data, key, seg_bytes[s], SEG_TTL, now);
            }
        }
    }
    return 0;
}
