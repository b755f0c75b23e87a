/*
 * shorts_detect.c: the moment detector (shorts/shorts.h).
 *
 * Three streams of signals, each kept as long as a decision may still need it:
 * - Loudness samples. A rolling level (the median of the non-silent short-term loudness over
 *   level_window_s, recomputed once a second) and a two-state machine on it: calm, then excited
 *   when the loudness reaches level + excite_lu, calm again below level + calm_lu. Short-term
 *   loudness averages the last 3 s of energy, so an excitement's edges are found afterwards where
 *   the energy crosses half-way between the level and the peak, 1.5 s before that crossing: for a
 *   step in energy that is where the step was (excite_edges()).
 * - Add-to-cart per product. A burst starts when the last cart_window_s hold at least cart_min
 *   adds and at least cart_factor times the product's baseline (its rate over the baseline_s
 *   before the window, never below baseline_floor); the baseline is frozen for the burst, which
 *   ends once a whole window passes without an add.
 * - Picture activity: the bytes of non-key frames per second. A static slate encodes to almost
 *   nothing; a moment needs activity of at least slate_ratio times the show's median.
 * A burst that has ended is matched to the latest excitement whose onset lies lag_min_s to
 * lag_max_s before the burst's first add (with a margin for the edges' error); that excitement
 * is used once. The moment's boundaries then follow the rules in shorts.h; it is handed out once
 * the stream has passed its end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shorts/shorts.h"

#define EDGE_S    1.5 /* half the short-term window: where an energy step's half-way crossing lags */
#define LAG_TOL_S 1.5 /* margin on the lag window for the edges' error */
#define KEEP_S    900 /* signals older than this behind the newest are forgotten (live) */
#define NSKU      256 /* products followed at once; more are ignored (and counted) */
#define MAX_READY 64  /* moments decided but not yet handed out */

typedef struct loud {
    double t, lufs;
} loud_t;

typedef struct excite {
    double enter, exit; /* the state machine's crossings; exit < 0 while excited */
    double level;       /* the rolling level when it began */
    double peak;        /* its loudest short-term value */
    double onset, end;  /* its edges, once it has ended (excite_edges()) */
    int used;           /* matched to a burst */
} excite_t;

typedef struct cart {
    double t;
    int qty;
} cart_t;

typedef struct product {
    char sku[65];
    cart_t *adds;
    size_t nadds, cap;
    /* The burst in progress, if any. */
    int in_burst;
    double b_first, b_start, b_last, b_baseline,
        b_peak; /* first: the cluster's; start: the core's */
    int b_adds;
    /* Pins, newest last. */
    double *pins;
    size_t npins, pcap;
} product_t;

typedef struct second {
    long sec;
    double bytes;
} second_t;

typedef struct chat {
    double t, rate;
} chat_t;

struct shorts_detector {
    shorts_config_t cfg;

    loud_t *loud;
    size_t nloud, loud_cap;
    double level;   /* NAN until there is a level */
    double level_t; /* when it was computed */
    int excited;

    excite_t *ex;
    size_t nex, ex_cap;

    product_t *products;
    size_t nproducts;
    uint64_t ignored_skus;

    second_t *secs;
    size_t nsecs, secs_cap;

    chat_t *chats;
    size_t nchats, chats_cap;

    shorts_moment_t ready[MAX_READY];
    size_t nready;
    double last_end;   /* the end of the last moment decided: moments do not overlap */
    double next_prune; /* prune() runs every 10 s of media time */
    int finished;
    double *scratch;
    size_t scratch_cap;
};

const char *shorts_strerror(int rv)
{
    switch (rv) {
    case SHORTS_OK:
        return "ok";
    case SHORTS_ERR_NOMEM:
        return "out of memory";
    case SHORTS_ERR_INVAL:
        return "invalid argument";
    }
    return "unknown error";
}

void shorts_config_init(shorts_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->excite_lu = 6;
    c->calm_lu = 2;
    c->level_window_s = 60;
    c->quiet_lufs = -50;
    c->lag_min_s = 3;
    c->lag_max_s = 8;
    c->cart_window_s = 10;
    c->baseline_s = 300;
    c->baseline_floor = 1.0 / 60;
    c->cart_factor = 4;
    c->cart_min = 5;
    c->pin_lookback_s = 25;
    c->lead_s = 8;
    c->tail_s = 5;
    c->min_s = 15;
    c->max_s = 60;
    c->slate_ratio = 0.15;
}

static int config_ok(const shorts_config_t *c)
{
    return c->excite_lu > 0 && c->calm_lu >= 0 && c->calm_lu < c->excite_lu &&
           c->level_window_s >= 5 && c->lag_min_s >= 0 && c->lag_max_s >= c->lag_min_s &&
           c->cart_window_s > 0 && c->baseline_s > 0 && c->baseline_floor > 0 &&
           c->cart_factor >= 1 && c->cart_min >= 1 && c->pin_lookback_s >= 0 && c->lead_s >= 0 &&
           c->tail_s >= 0 && c->min_s > 0 && c->max_s >= c->min_s && c->slate_ratio >= 0;
}

int shorts_detector_new(shorts_detector_t **out, const shorts_config_t *cfg)
{
    shorts_detector_t *d;

    if (cfg != NULL && !config_ok(cfg))
        return SHORTS_ERR_INVAL;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return SHORTS_ERR_NOMEM;
    if (cfg != NULL)
        d->cfg = *cfg;
    else
        shorts_config_init(&d->cfg);
    d->level = NAN;
    d->level_t = -INFINITY;
    d->last_end = -INFINITY;
    *out = d;
    return 0;
}

void shorts_detector_free(shorts_detector_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nproducts; i++) {
        free(d->products[i].adds);
        free(d->products[i].pins);
    }
    free(d->products);
    free(d->loud);
    free(d->ex);
    free(d->secs);
    free(d->chats);
    free(d->scratch);
    free(d);
}

/* Grows *arr to hold one more element of `size` bytes. Returns 0 or SHORTS_ERR_NOMEM. */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
    void **p = arr;
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = realloc(*p, c * size);
    if (q == NULL)
        return SHORTS_ERR_NOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of `n` values copied into the scratch array. NAN for none. */
static double median(shorts_detector_t *d, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(d->scratch, n, sizeof(double), cmp_double);
    return n % 2 ? d->scratch[n / 2] : (d->scratch[n / 2 - 1] + d->scratch[n / 2]) / 2;
}

static int scratch_fit(shorts_detector_t *d, size_t n)
{
    if (n <= d->scratch_cap)
        return 0;
    double *p = realloc(d->scratch, n * sizeof(double));
    if (p == NULL)
        return SHORTS_ERR_NOMEM;
    d->scratch = p;
    d->scratch_cap = n;
    return 0;
}

/* The index of the first element of sorted `arr` with time >= t. */
#define LOWER_BOUND(arr, n, field, t, out)                                                         \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (n);                                                                 \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = (lo_ + hi_) / 2;                                                         \
            if ((arr)[mid_].field < (t))                                                           \
                lo_ = mid_ + 1;                                                                    \
            else                                                                                   \
                hi_ = mid_;                                                                        \
        }                                                                                          \
        (out) = lo_;                                                                               \
    } while (0)

/* The median non-silent loudness over the level window before `t`. */
static int update_level(shorts_detector_t *d, double t)
{
    size_t from, n = 0;
    LOWER_BOUND(d->loud, d->nloud, t, t - d->cfg.level_window_s, from);
    if (scratch_fit(d, d->nloud - from) != 0)
        return SHORTS_ERR_NOMEM;
    for (size_t i = from; i < d->nloud; i++)
        if (d->loud[i].lufs >= d->cfg.quiet_lufs)
            d->scratch[n++] = d->loud[i].lufs;
    /* Until 6 s have been heard (two short-term windows), there is no level to be excited
     * above. */
    d->level = n >= 20 && d->loud[d->nloud - 1].t - d->loud[from].t >= 6 ? median(d, n) : NAN;
    d->level_t = t;
    return 0;
}

static double pow10_(double lu)
{
    return pow(10, lu / 10);
}

/*
 * The edges of an excitement that has ended: where the energy crossed half-way between the level
 * and the peak, going up and coming down, each EDGE_S earlier (see the file's comment).
 */
static void excite_edges(shorts_detector_t *d, excite_t *e)
{
    double half = 10 * log10((pow10_(e->level) + pow10_(e->peak)) / 2);
    size_t i;

    e->onset = e->enter - EDGE_S;
    e->end = e->exit - EDGE_S;
    LOWER_BOUND(d->loud, d->nloud, t, e->enter - 4, i);
    for (; i < d->nloud && d->loud[i].t <= e->exit; i++) {
        if (d->loud[i].lufs >= half) {
            e->onset = d->loud[i].t - EDGE_S;
            break;
        }
    }
    for (size_t j = d->nloud; j > 0; j--) {
        const loud_t *l = &d->loud[j - 1];
        if (l->t > e->exit)
            continue;
        if (l->t < e->enter)
            break;
        if (l->lufs >= half) {
            e->end = l->t - EDGE_S;
            break;
        }
    }
    if (e->end < e->onset)
        e->end = e->onset;
}

int shorts_loudness(shorts_detector_t *d, double t, double lufs)
{
    const shorts_config_t *c = &d->cfg;

    if (isnan(t) || isnan(lufs))
        return SHORTS_ERR_INVAL;
    if (lufs < -70)
        lufs = -70;
    if (d->nloud > 0 && t < d->loud[d->nloud - 1].t)
        return 0; /* out of order: the series stays monotonic */
    if (grow(&d->loud, &d->loud_cap, d->nloud, sizeof(loud_t)) != 0)
        return SHORTS_ERR_NOMEM;
    d->loud[d->nloud++] = (loud_t){t, lufs};
    /* The level is frozen while excited: the excitement must not raise its own reference. */
    if (!d->excited && t - d->level_t >= 1 && update_level(d, t) != 0)
        return SHORTS_ERR_NOMEM;
    if (isnan(d->level))
        return 0;

    if (!d->excited) {
        if (lufs >= d->level + c->excite_lu && lufs >= c->quiet_lufs) {
            if (grow(&d->ex, &d->ex_cap, d->nex, sizeof(excite_t)) != 0)
                return SHORTS_ERR_NOMEM;
            d->ex[d->nex++] = (excite_t){t, -1, d->level, lufs, NAN, NAN, 0};
            d->excited = 1;
        }
        return 0;
    }
    excite_t *e = &d->ex[d->nex - 1];
    if (lufs > e->peak)
        e->peak = lufs;
    if (lufs < e->level + c->calm_lu) {
        e->exit = t;
        d->excited = 0;
        excite_edges(d, e);
    }
    return 0;
}

int shorts_video(shorts_detector_t *d, double t, size_t bytes, int key)
{
    if (isnan(t))
        return SHORTS_ERR_INVAL;
    long sec = (long)floor(t);
    if (d->nsecs > 0 && sec < d->secs[d->nsecs - 1].sec)
        return 0;
    if (d->nsecs == 0 || d->secs[d->nsecs - 1].sec != sec) {
        if (grow(&d->secs, &d->secs_cap, d->nsecs, sizeof(second_t)) != 0)
            return SHORTS_ERR_NOMEM;
        d->secs[d->nsecs++] = (second_t){sec, 0};
    }
    /* A keyframe's size says how detailed the picture is, not how much it moves. */
    if (!key)
        d->secs[d->nsecs - 1].bytes += (double)bytes;
    return 0;
}

static product_t *product(shorts_detector_t *d, const char *sku)
{
    for (size_t i = 0; i < d->nproducts; i++)
        if (strcmp(d->products[i].sku, sku) == 0)
            return &d->products[i];
    if (d->nproducts == NSKU) {
        d->ignored_skus++;
        return NULL;
    }
    if (d->nproducts % 16 == 0) {
        product_t *p = realloc(d->products, (d->nproducts + 16) * sizeof(*p));
        if (p == NULL)
            return NULL;
        d->products = p;
    }
    product_t *p = &d->products[d->nproducts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->sku, sizeof(p->sku), "%s", sku);
    return p;
}

/* Adds (qty summed) of `p` with from <= t < to. */
static int adds_between(const product_t *p, double from, double to)
{
    size_t i;
    int n = 0;
    LOWER_BOUND(p->adds, p->nadds, t, from, i);
    for (; i < p->nadds && p->adds[i].t < to; i++)
        n += p->adds[i].qty;
    return n;
}

/* Called with each add of `p` (the newest is p->adds[p->nadds - 1]): starts or extends a burst. */
static void burst_add(shorts_detector_t *d, product_t *p)
{
    const shorts_config_t *c = &d->cfg;
    const cart_t *a = &p->adds[p->nadds - 1];
    double w = c->cart_window_s;
    int in_window = adds_between(p, a->t - w, a->t + 1e-9);
    double rate = in_window / w;

    if (p->in_burst) {
        p->b_last = a->t;
        p->b_adds += a->qty;
        if (rate > p->b_peak)
            p->b_peak = rate;
        return;
    }
    double baseline = adds_between(p, a->t - w - c->baseline_s, a->t - w) / c->baseline_s;
    if (baseline < c->baseline_floor)
        baseline = c->baseline_floor;
    if (in_window < c->cart_min || rate < c->cart_factor * baseline)
        return;
    /*
     * Where the burst began. A trailing window finds it late when the rate is modest, so its
     * adds are followed back while they come within a window of each other: the cluster. Its
     * first adds may still be the product's usual trickle that happened to come just before;
     * those standing apart from the rest (a gap over twice the cluster's median) are left out of
     * the core. The onset is then looked for so that some start between the cluster's and the
     * core's lags behind it by the viewers' lag (match_onset()).
     */
    size_t first = p->nadds - 1, core;
    while (first > 0 && p->adds[first].t - p->adds[first - 1].t <= w &&
           a->t - p->adds[first - 1].t <= 3 * w)
        first--;
    size_t ngaps = p->nadds - 1 - first;
    if (scratch_fit(d, ngaps + 1) != 0) {
        core = first;
    } else {
        for (size_t i = 0; i < ngaps; i++)
            d->scratch[i] = p->adds[first + i + 1].t - p->adds[first + i].t;
        double med = median(d, ngaps);
        for (core = first; core + 2 < p->nadds && p->adds[core + 1].t - p->adds[core].t > 2 * med;
             core++)
            ;
    }
    in_window = 0;
    for (size_t i = core; i < p->nadds; i++)
        in_window += p->adds[i].qty;
    p->b_first = p->adds[first].t;
    p->in_burst = 1;
    p->b_start = p->adds[core].t;
    p->b_last = a->t;
    p->b_baseline = baseline;
    p->b_peak = rate;
    p->b_adds = in_window;
}

int shorts_event(shorts_detector_t *d, const shorts_event_t *ev)
{
    product_t *p;

    if (ev == NULL || isnan(ev->t))
        return SHORTS_ERR_INVAL;
    switch (ev->type) {
    case SHORTS_EV_PIN:
    case SHORTS_EV_UNPIN:
    case SHORTS_EV_CART:
        if (ev->sku == NULL || ev->sku[0] == '\0' || strlen(ev->sku) > 64)
            return SHORTS_ERR_INVAL;
        if (ev->type == SHORTS_EV_UNPIN)
            return 0; /* a moment starts at a pin; where it was unpinned does not move it */
        if ((p = product(d, ev->sku)) == NULL)
            return d->nproducts == NSKU ? 0 : SHORTS_ERR_NOMEM;
        if (ev->type == SHORTS_EV_PIN) {
            if (grow(&p->pins, &p->pcap, p->npins, sizeof(double)) != 0)
                return SHORTS_ERR_NOMEM;
            p->pins[p->npins++] = ev->t;
            return 0;
        }
        if (ev->qty < 1)
            return SHORTS_ERR_INVAL;
        if (p->nadds > 0 && ev->t < p->adds[p->nadds - 1].t)
            return 0; /* out of order */
        if (grow(&p->adds, &p->cap, p->nadds, sizeof(cart_t)) != 0)
            return SHORTS_ERR_NOMEM;
        p->adds[p->nadds++] = (cart_t){ev->t, ev->qty};
        burst_add(d, p);
        return 0;
    case SHORTS_EV_CHAT:
        if (!(ev->window_s > 0) || !(ev->count >= 0))
            return SHORTS_ERR_INVAL;
        if (grow(&d->chats, &d->chats_cap, d->nchats, sizeof(chat_t)) != 0)
            return SHORTS_ERR_NOMEM;
        d->chats[d->nchats++] = (chat_t){ev->t, ev->count / ev->window_s};
        return 0;
    }
    return SHORTS_ERR_INVAL;
}

/* Mean non-key bytes per second over [from, to] over the median of every second so far. */
static double activity_ratio(shorts_detector_t *d, double from, double to)
{
    if (d->nsecs == 0 || scratch_fit(d, d->nsecs) != 0)
        return 1; /* no video (an audio-only show): nothing says the picture is frozen */
    for (size_t i = 0; i < d->nsecs; i++)
        d->scratch[i] = d->secs[i].bytes;
    double med = median(d, d->nsecs), sum = 0;
    size_t i, n = 0;
    LOWER_BOUND(d->secs, d->nsecs, sec, (long)floor(from), i);
    for (; i < d->nsecs && d->secs[i].sec <= (long)floor(to); i++, n++)
        sum += d->secs[i].bytes;
    if (n == 0 || !(med > 0))
        return n == 0 ? 0 : 1;
    return sum / (double)n / med;
}

static double chat_ratio(shorts_detector_t *d, double from, double to)
{
    if (d->nchats == 0 || scratch_fit(d, d->nchats) != 0)
        return 0;
    double best = 0;
    for (size_t i = 0; i < d->nchats; i++) {
        d->scratch[i] = d->chats[i].rate;
        if (d->chats[i].t >= from && d->chats[i].t <= to && d->chats[i].rate > best)
            best = d->chats[i].rate;
    }
    double med = median(d, d->nchats);
    return med > 0 ? best / med : 0;
}

/* The excitement a burst follows: the latest unused one whose onset lies the viewers' lag before
 * some start of the burst between `first` (its cluster's) and `start` (its core's). NULL if
 * none. */
static excite_t *match_onset(shorts_detector_t *d, double first, double start)
{
    const shorts_config_t *c = &d->cfg;
    for (size_t i = d->nex; i > 0; i--) {
        excite_t *e = &d->ex[i - 1];
        if (e->used || isnan(e->onset))
            continue;
        if (e->onset >= first - c->lag_max_s - LAG_TOL_S &&
            e->onset <= start - c->lag_min_s + LAG_TOL_S)
            return e;
        if (e->onset < first - c->lag_max_s - LAG_TOL_S - c->max_s)
            break;
    }
    return NULL;
}

/* Decides the moment of `p`'s burst, which has ended, if it is one. */
static void decide(shorts_detector_t *d, product_t *p)
{
    const shorts_config_t *c = &d->cfg;
    excite_t *e = match_onset(d, p->b_first, p->b_start);

    p->in_burst = 0;
    if (e == NULL || d->nready == MAX_READY)
        return;
    double act = activity_ratio(d, e->onset, p->b_start);
    if (act < c->slate_ratio)
        return; /* buying while the picture is frozen: not a moment the picture shows */
    e->used = 1;

    shorts_moment_t m;
    memset(&m, 0, sizeof(m));
    snprintf(m.sku, sizeof(m.sku), "%s", p->sku);
    m.ev.onset = e->onset;
    m.ev.excite_end = e->end;
    m.ev.peak_lu = e->peak - e->level;
    m.ev.level_lufs = e->level;
    m.ev.buy_start = p->b_start;
    m.ev.buy_end = p->b_last;
    m.ev.adds = p->b_adds;
    m.ev.peak_rate = p->b_peak;
    m.ev.baseline = p->b_baseline;
    m.ev.buy_first = p->b_first;
    m.ev.lag_s = p->b_start - e->onset;
    m.ev.activity_ratio = act;
    m.ev.chat_ratio = chat_ratio(d, e->onset, p->b_start + c->cart_window_s);
    m.ev.pin_t = -1;
    for (size_t i = p->npins; i > 0; i--) {
        double pt = p->pins[i - 1];
        if (pt <= e->onset && pt >= e->onset - c->pin_lookback_s) {
            m.ev.pin_t = pt;
            break;
        }
    }
    m.start = m.ev.pin_t >= 0 ? m.ev.pin_t : e->onset - c->lead_s;
    m.ev.start_why = m.ev.pin_t >= 0 ? "pin" : "lead";
    if (m.start < 0)
        m.start = 0;
    if (m.start < d->last_end)
        m.start = d->last_end;
    int buying_last = p->b_last > e->end;
    m.end = (buying_last ? p->b_last : e->end) + c->tail_s;
    m.ev.end_why = buying_last ? "buying" : "excitement";
    if (m.end - m.start > c->max_s) {
        m.end = m.start + c->max_s;
        m.ev.end_why = "max";
    } else if (m.end - m.start < c->min_s) {
        m.end = m.start + c->min_s;
        m.ev.end_why = "min";
    }
    m.score = p->b_peak / p->b_baseline * (m.ev.peak_lu > 0 ? m.ev.peak_lu : 0);
    d->last_end = m.end;
    d->ready[d->nready++] = m;
}

/* Ends the bursts over by `now` and decides them, oldest first. */
static void sweep(shorts_detector_t *d, double now)
{
    for (;;) {
        product_t *oldest = NULL;
        for (size_t i = 0; i < d->nproducts; i++) {
            product_t *p = &d->products[i];
            if (!p->in_burst || (now - p->b_last < d->cfg.cart_window_s && !d->finished))
                continue;
            /* Its excitement must have ended, unless it never will within a moment's length. */
            excite_t *e = match_onset(d, p->b_first, p->b_start);
            if (e == NULL && d->excited && !d->finished &&
                now - d->ex[d->nex - 1].enter < d->cfg.max_s)
                continue;
            if (oldest == NULL || p->b_start < oldest->b_start)
                oldest = p;
        }
        if (oldest == NULL)
            return;
        decide(d, oldest);
    }
}

/* Forgets what no decision can need any more (a live show runs for hours). */
static void prune(shorts_detector_t *d, double now)
{
    double keep = now - KEEP_S;
    size_t i;

    if (d->nloud > 4096 && d->loud[d->nloud / 2].t < keep) {
        LOWER_BOUND(d->loud, d->nloud, t, keep, i);
        memmove(d->loud, d->loud + i, (d->nloud - i) * sizeof(*d->loud));
        d->nloud -= i;
    }
    if (d->nsecs > 2048 && d->secs[d->nsecs / 2].sec < (long)keep) {
        LOWER_BOUND(d->secs, d->nsecs, sec, (long)keep, i);
        memmove(d->secs, d->secs + i, (d->nsecs - i) * sizeof(*d->secs));
        d->nsecs -= i;
    }
    if (d->nex > 64 && (d->excited ? d->nex - 1 : d->nex) > 0 && d->ex[d->nex / 2].enter < keep) {
        for (i = 0; i + 1 < d->nex && d->ex[i].enter < keep; i++)
            ;
        memmove(d->ex, d->ex + i, (d->nex - i) * sizeof(*d->ex));
        d->nex -= i;
    }
    if (d->nchats > 1024 && d->chats[d->nchats / 2].t < keep) {
        LOWER_BOUND(d->chats, d->nchats, t, keep, i);
        memmove(d->chats, d->chats + i, (d->nchats - i) * sizeof(*d->chats));
        d->nchats -= i;
    }
    for (size_t k = 0; k < d->nproducts; k++) {
        product_t *p = &d->products[k];
        double pkeep = now - d->cfg.baseline_s - 2 * d->cfg.cart_window_s - d->cfg.max_s;
        if (p->nadds > 1024 && p->adds[p->nadds / 2].t < pkeep && !p->in_burst) {
            LOWER_BOUND(p->adds, p->nadds, t, pkeep, i);
            memmove(p->adds, p->adds + i, (p->nadds - i) * sizeof(*p->adds));
            p->nadds -= i;
        }
        if (p->npins > 256) {
            memmove(p->pins, p->pins + p->npins - 128, 128 * sizeof(double));
            p->npins = 128;
        }
    }
}

int shorts_next(shorts_detector_t *d, double now, shorts_moment_t *out)
{
    sweep(d, now);
    if (now >= d->next_prune) {
        prune(d, now);
        d->next_prune = now + 10;
    }
    if (d->nready == 0 || (!d->finished && now < d->ready[0].end))
        return 0;
    *out = d->ready[0];
    memmove(d->ready, d->ready + 1, (d->nready - 1) * sizeof(d->ready[0]));
    d->nready--;
    return 1;
}

void shorts_finish(shorts_detector_t *d)
{
    d->finished = 1;
    if (d->excited && d->nex > 0) {
        excite_t *e = &d->ex[d->nex - 1];
        e->exit = d->nloud > 0 ? d->loud[d->nloud - 1].t : e->enter;
        d->excited = 0;
        excite_edges(d, e);
    }
}

static void num(sw_str_t *out, const char *name, double v, int comma)
{
    if (isfinite(v))
        sw_str_printf(out, "\"%s\":%.3f%s", name, v, comma ? "," : "");
    else
        sw_str_printf(out, "\"%s\":null%s", name, comma ? "," : "");
}

int shorts_moment_json(const shorts_moment_t *m, sw_str_t *out)
{
    const shorts_evidence_t *e = &m->ev;

    sw_str_puts(out, "{");
    num(out, "start", m->start, 1);
    num(out, "end", m->end, 1);
    num(out, "score", m->score, 1);
    sw_str_puts(out, "\"sku\":\"");
    sw_str_json_escape(out, m->sku);
    sw_str_puts(out, "\",\"evidence\":{");
    num(out, "onset", e->onset, 1);
    num(out, "excite_end", e->excite_end, 1);
    num(out, "peak_lu", e->peak_lu, 1);
    num(out, "level_lufs", e->level_lufs, 1);
    num(out, "buy_first", e->buy_first, 1);
    num(out, "buy_start", e->buy_start, 1);
    num(out, "buy_end", e->buy_end, 1);
    sw_str_printf(out, "\"adds\":%d,", e->adds);
    num(out, "peak_rate", e->peak_rate, 1);
    num(out, "baseline", e->baseline, 1);
    num(out, "lag_s", e->lag_s, 1);
    if (e->pin_t >= 0)
        num(out, "pin", e->pin_t, 1);
    else
        sw_str_puts(out, "\"pin\":null,");
    num(out, "activity_ratio", e->activity_ratio, 1);
    num(out, "chat_ratio", e->chat_ratio, 1);
    sw_str_printf(out, "\"start_why\":\"%s\",\"end_why\":\"%s\"}}",
                  e->start_why ? e->start_why : "", e->end_why ? e->end_why : "");
    return out->failed ? SHORTS_ERR_NOMEM : 0;
}
