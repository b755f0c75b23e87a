/*
 * Unit tests for shorts_detect.c: shows made of signals, with the loudness computed the way EBU
 * R128 short-term loudness is (the mean energy of the last 3 s, every 100 ms), so that the
 * detector sees the smeared edges it sees on real audio.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shorts_detect.c" /* the internals, for the memory bound */

#define STEP 0.1

/* A show: per 100 ms, the level of the sound (LUFS, the momentary loudness of a steady signal)
 * and the bytes of each of its 3 frames; the room's events; built piece by piece. */
typedef struct show {
    double dur;
    double level[40000]; /* up to 4000 s */
    double frame_bytes[40000];
    shorts_event_t ev[4000];
    char skus[4000][16];
    int nev;
} show_t;

static show_t show_;

static show_t *show_new(double dur)
{
    show_t *s = &show_;
    memset(s, 0, sizeof(*s));
    s->dur = dur;
    for (int i = 0; i < (int)(dur / STEP); i++) {
        s->level[i] = -30 + ((i / 73) % 3 - 1) * 0.7; /* a little wander */
        s->frame_bytes[i] = 900 + (i * 37 % 200);
    }
    return s;
}

/* The sound from `a` to `b` is `db` louder (or, with silence set, silent). */
static void loud(show_t *s, double a, double b, double db)
{
    for (int i = (int)(a / STEP); i < (int)(b / STEP); i++)
        s->level[i] += db;
}

static void silence(show_t *s, double a, double b)
{
    for (int i = (int)(a / STEP); i < (int)(b / STEP); i++)
        s->level[i] = -120;
}

static void slate(show_t *s, double a, double b)
{
    for (int i = (int)(a / STEP); i < (int)(b / STEP); i++)
        s->frame_bytes[i] = 12;
}

static void event(show_t *s, int type, double t, const char *sku, int qty)
{
    shorts_event_t *e = &s->ev[s->nev];
    snprintf(s->skus[s->nev], sizeof(s->skus[0]), "%s", sku ? sku : "");
    *e = (shorts_event_t){.type = type, .t = t, .sku = sku ? s->skus[s->nev] : NULL, .qty = qty};
    s->nev++;
}

/* Adds of `sku` every `every` s from `a` to `b`. */
static void buy(show_t *s, const char *sku, double a, double b, double every)
{
    for (double t = a; t < b; t += every)
        event(s, SHORTS_EV_CART, t, sku, 1);
}

/* Background: adds of two other products every 40 and 55 s, and chat every 5 s. */
static void background(show_t *s)
{
    buy(s, "BG-1", 3, s->dur, 40);
    buy(s, "BG-2", 17, s->dur, 55);
    for (double t = 5; t < s->dur; t += 5) {
        shorts_event_t *e = &s->ev[s->nev++];
        *e = (shorts_event_t){.type = SHORTS_EV_CHAT, .t = t, .count = 20, .window_s = 5};
    }
}

static int cmp_ev(const void *a, const void *b)
{
    const shorts_event_t *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/*
 * Feeds the show in time order, asking for moments as it goes (live); returns how many, in
 * out[]. `decided_at[i]` is the media time moment i was handed out.
 */
static int run_show(show_t *s, const shorts_config_t *cfg, shorts_moment_t *out, int max,
                    double *decided_at)
{
    shorts_detector_t *d;
    int n = 0, k = 0;
    double energy[30] = {0};

    assert_int_equal(shorts_detector_new(&d, cfg), 0);
    qsort(s->ev, (size_t)s->nev, sizeof(s->ev[0]), cmp_ev);
    for (int i = 0; i < (int)(s->dur / STEP); i++) {
        double t = i * STEP, sum = 0;
        energy[i % 30] = s->level[i] < -100 ? 0 : pow(10, s->level[i] / 10);
        for (int j = 0; j < 30; j++)
            sum += energy[j];
        for (int f = 0; f < 3; f++)
            assert_int_equal(shorts_video(d, t + f * STEP / 3, (size_t)s->frame_bytes[i],
                                          (i % 20 == 0) && f == 0),
                             0);
        while (k < s->nev && s->ev[k].t <= t)
            assert_int_equal(shorts_event(d, &s->ev[k++]), 0);
        if (i >= 30)
            assert_int_equal(shorts_loudness(d, t, sum > 0 ? 10 * log10(sum / 30) : -HUGE_VAL), 0);
        while (n < max && shorts_next(d, t, &out[n]) == 1) {
            if (decided_at != NULL)
                decided_at[n] = t;
            n++;
        }
    }
    shorts_finish(d);
    while (n < max && shorts_next(d, s->dur, &out[n]) == 1) {
        if (decided_at != NULL)
            decided_at[n] = s->dur;
        n++;
    }
    shorts_detector_free(d);
    return n;
}

static void near(double got, double want, double tol, const char *what)
{
    if (fabs(got - want) > tol)
        fail_msg("%s: %.2f, expected %.2f +- %.2f", what, got, want, tol);
}

/* A moment that sells: pinned at 90, the host excited 100-110, buying 105-121. */
static void test_moment_with_pin(void **state)
{
    show_t *s = show_new(240);
    shorts_moment_t m[4];
    double at[4];

    background(s);
    event(s, SHORTS_EV_PIN, 90, "SKU-7", 0);
    loud(s, 100, 110, 12);
    buy(s, "SKU-7", 105, 121, 1);
    assert_int_equal(run_show(s, NULL, m, 4, at), 1);
    assert_string_equal(m[0].sku, "SKU-7");
    near(m[0].start, 90, 0.01, "start at the pin");
    near(m[0].end, 120 + 5, 0.5, "end: the last add + 5");
    near(m[0].ev.onset, 100, 0.6, "onset");
    near(m[0].ev.excite_end, 110, 0.6, "excitement end");
    near(m[0].ev.lag_s, 5, 0.6, "lag");
    assert_string_equal(m[0].ev.start_why, "pin");
    assert_string_equal(m[0].ev.end_why, "buying");
    assert_true(m[0].ev.peak_lu > 10);
    assert_true(m[0].ev.baseline > 0 && m[0].ev.peak_rate / m[0].ev.baseline >= 4);
    assert_true(m[0].score > 0);
    /* Live: handed out once the burst is over (a quiet window after the last add), within
     * seconds of its end, never before. */
    assert_true(at[0] >= m[0].end && at[0] <= m[0].end + 6);

    sw_str_t js;
    sw_str_init(&js);
    assert_int_equal(shorts_moment_json(&m[0], &js), 0);
    assert_non_null(strstr(js.p, "\"sku\":\"SKU-7\""));
    assert_non_null(strstr(js.p, "\"start_why\":\"pin\""));
    assert_non_null(strstr(js.p, "\"start\":90.000"));
    sw_str_dispose(&js);
}

/* No pin (or one too early): the moment starts 8 s before the onset; a long excitement ends it. */
static void test_moment_without_pin(void **state)
{
    show_t *s = show_new(240);
    shorts_moment_t m[4];

    background(s);
    event(s, SHORTS_EV_PIN, 60, "SKU-8", 0); /* 40 s before the onset: too early */
    event(s, SHORTS_EV_PIN, 95, "OTHER", 0); /* another product's */
    loud(s, 100, 124, 10);
    buy(s, "SKU-8", 107, 115, 0.8);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 1);
    near(m[0].start, 92, 0.6, "start: onset - 8");
    assert_string_equal(m[0].ev.start_why, "lead");
    assert_true(m[0].ev.pin_t < 0);
    near(m[0].end, 129, 0.6, "end: excitement end + 5");
    assert_string_equal(m[0].ev.end_why, "excitement");
}

/* Each decoy alone makes nothing. */
static void test_decoys(void **state)
{
    shorts_moment_t m[4];
    show_t *s;

    s = show_new(200); /* loudness without buying */
    background(s);
    loud(s, 80, 95, 14);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* a chat spike without buying */
    background(s);
    for (double t = 80; t < 100; t += 5) {
        shorts_event_t *e = &s->ev[s->nev++];
        *e = (shorts_event_t){.type = SHORTS_EV_CHAT, .t = t, .count = 200, .window_s = 5};
    }
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* buying while a static slate shows in silence */
    background(s);
    slate(s, 70, 120);
    silence(s, 70, 120);
    buy(s, "SKU-9", 85, 100, 0.7);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* the same with the sound up: a frozen picture is still no moment */
    background(s);
    slate(s, 70, 120);
    loud(s, 80, 90, 12);
    buy(s, "SKU-9", 85, 100, 0.7);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* a pin nobody buys */
    background(s);
    event(s, SHORTS_EV_PIN, 80, "SKU-10", 0);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* a camera cut: a burst of bytes */
    background(s);
    for (int i = 800; i < 830; i++)
        s->frame_bytes[i] = 40000;
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* buying first, excitement after: the picture did not show it */
    background(s);
    buy(s, "SKU-11", 80, 95, 0.7);
    loud(s, 90, 100, 12);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* excitement, then buying 20 s later: too late to follow it */
    background(s);
    loud(s, 60, 70, 12);
    buy(s, "SKU-12", 80, 95, 0.7);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);

    s = show_new(200); /* background buying at its usual rate, loud or not */
    background(s);
    loud(s, 60, 70, 12);
    buy(s, "BG-1", 64, 80, 8);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 0);
}

/* Lengths are clamped to 15..60 s; two moments do not overlap; each excitement is used once. */
static void test_lengths_and_overlap(void **state)
{
    show_t *s = show_new(400);
    shorts_moment_t m[4];

    background(s);
    /* Short: pinned just before the onset at 50, excited 4 s, quick adds 54-56.5: 49.5..61.5
     * is 12 s, made 15. */
    event(s, SHORTS_EV_PIN, 49.5, "A", 0);
    loud(s, 50, 54, 12);
    buy(s, "A", 54, 57, 0.5);
    /* Long: pinned at 150, excited 170-240, buying 175-235: cut at 60 s. */
    event(s, SHORTS_EV_PIN, 150, "B", 0);
    loud(s, 170, 240, 12);
    buy(s, "B", 175, 235, 1);
    /* Another product bought at the same time follows the same excitement: not a second moment
     * (and not one overlapping the first). */
    buy(s, "C", 176, 190, 0.5);
    assert_int_equal(run_show(s, NULL, m, 4, NULL), 2);
    near(m[0].start, 49.5, 0.01, "short start");
    near(m[0].end - m[0].start, 15, 0.01, "short length");
    assert_string_equal(m[0].ev.end_why, "min");
    assert_string_equal(m[1].sku, "B");
    near(m[1].start, 150, 0.01, "long start");
    near(m[1].end - m[1].start, 60, 0.01, "long length");
    assert_string_equal(m[1].ev.end_why, "max");
    assert_true(m[1].start >= m[0].end);
}

/* The lag window follows the configuration. */
static void test_config_lag(void **state)
{
    show_t *s = show_new(200);
    shorts_moment_t m[2];
    shorts_config_t cfg;

    shorts_config_init(&cfg);
    background(s);
    loud(s, 60, 70, 12);
    buy(s, "L", 73, 85, 0.6); /* 13 s after the onset */
    assert_int_equal(run_show(s, &cfg, m, 2, NULL), 0);
    s = show_new(200);
    background(s);
    loud(s, 60, 70, 12);
    buy(s, "L", 73, 85, 0.6);
    cfg.lag_max_s = 14;
    assert_int_equal(run_show(s, &cfg, m, 2, NULL), 1);
    near(m[0].ev.lag_s, 13, 0.6, "lag");
}

static void test_bad_input(void **state)
{
    shorts_detector_t *d;
    shorts_config_t cfg;

    shorts_config_init(&cfg);
    cfg.lag_max_s = 1; /* below lag_min_s */
    assert_int_equal(shorts_detector_new(&d, &cfg), SHORTS_ERR_INVAL);
    shorts_config_init(&cfg);
    cfg.calm_lu = cfg.excite_lu;
    assert_int_equal(shorts_detector_new(&d, &cfg), SHORTS_ERR_INVAL);
    assert_int_equal(shorts_detector_new(&d, NULL), 0);
    assert_int_equal(shorts_loudness(d, NAN, -20), SHORTS_ERR_INVAL);
    assert_int_equal(shorts_loudness(d, 1, NAN), SHORTS_ERR_INVAL);
    assert_int_equal(shorts_video(d, NAN, 10, 0), SHORTS_ERR_INVAL);
    shorts_event_t e = {.type = SHORTS_EV_CART, .t = 1, .sku = "X", .qty = 0};
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    e.qty = 1;
    e.sku = NULL;
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    e.sku = "";
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    char long_sku[80];
    memset(long_sku, 'x', 65);
    long_sku[65] = '\0';
    e.sku = long_sku;
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    e = (shorts_event_t){.type = 99, .t = 1};
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    e = (shorts_event_t){.type = SHORTS_EV_CHAT, .t = 1, .count = 3, .window_s = 0};
    assert_int_equal(shorts_event(d, &e), SHORTS_ERR_INVAL);
    assert_int_equal(shorts_event(d, NULL), SHORTS_ERR_INVAL);
    /* Time going back is ignored, not an error; infinities are clamped. */
    assert_int_equal(shorts_loudness(d, 5, -20), 0);
    assert_int_equal(shorts_loudness(d, 4, -20), 0);
    assert_int_equal(shorts_loudness(d, 6, -HUGE_VAL), 0);
    assert_int_equal(d->nloud, 2);
    shorts_detector_free(d);
    shorts_detector_free(NULL);
    assert_string_equal(shorts_strerror(SHORTS_ERR_INVAL), "invalid argument");
}

/* An hour of signals with a moment every ten minutes: every one found, memory bounded. */
static void test_long_show(void **state)
{
    show_t *s = show_new(3600);
    shorts_moment_t m[16];

    background(s);
    for (int k = 0; k < 6; k++) {
        double o = 300 + k * 600;
        loud(s, o, o + 10, 12);
        buy(s, k % 2 ? "ODD" : "EVEN", o + 5, o + 18, 0.8);
    }
    assert_int_equal(run_show(s, NULL, m, 16, NULL), 6);
    for (int k = 0; k < 6; k++)
        near(m[k].ev.onset, 300 + k * 600, 0.6, "onset");
}

/* Two hours of signals without a moment: what is kept stays bounded (KEEP_S of each kind). */
static void test_memory_bound(void **state)
{
    shorts_detector_t *d;
    shorts_moment_t m;

    assert_int_equal(shorts_detector_new(&d, NULL), 0);
    for (int i = 0; i < 72000; i++) {
        double t = i * STEP;
        assert_int_equal(shorts_loudness(d, t, -30 + (i % 50 == 0 ? 9 : 0)), 0);
        assert_int_equal(shorts_video(d, t, 1000, i % 20 == 0), 0);
        if (i % 37 == 0) {
            shorts_event_t e = {.type = SHORTS_EV_CART, .t = t, .sku = "BG", .qty = 1};
            assert_int_equal(shorts_event(d, &e), 0);
        }
        assert_int_equal(shorts_next(d, t, &m), 0);
    }
    assert_true(d->nloud <= 2 * (KEEP_S + 20) / STEP);
    assert_true(d->nsecs <= 2 * (KEEP_S + 20));
    assert_true(d->products[0].nadds < 2048);
    shorts_detector_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moment_with_pin), cmocka_unit_test(test_moment_without_pin),
        cmocka_unit_test(test_decoys),          cmocka_unit_test(test_lengths_and_overlap),
        cmocka_unit_test(test_config_lag),      cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_long_show),       cmocka_unit_test(test_memory_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
