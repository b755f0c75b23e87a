/*
 * shorts/shorts.h: the moments of a live-commerce show that sell, found as they happen. Pure code,
 * as hls/ is: signals in (the audio's loudness, the picture's activity, the room's events, each at
 * a time on the stream's media timeline), decisions out (moments with their boundaries and the
 * evidence for them). No I/O, no clock, no threads, no allocation after a signal but to remember
 * it. The origin feeds it live; `shortwave-origin --analyze` feeds it from a file; the tests feed
 * it directly.
 *
 * What a moment is (issue "Live-to-short", the product decision):
 * - It sells: add-to-cart of one product rises well above that product's rolling baseline (a
 *   burst), while the sound is above the show's quiet level and the picture is not a frozen slate.
 * - Its onset is the host's excitement, which the audio marks: short-term loudness (EBU R128, 3 s)
 *   several LU above its rolling level. Buying follows the onset by the viewers' lag (3 to 8 s on
 * an LL-HLS audience): a burst is matched to the latest onset within [burst - lag_max, burst -
 *   lag_min]. A burst with no such onset is not a moment, nor is an onset with no burst.
 * - It starts at the pin (product_pinned) of its product that came at most pin_lookback_s before
 *   the onset, or lead_s before the onset without one; it ends tail_s after the excitement and the
 *   burst have both ended; min_s to max_s long; moments do not overlap.
 *
 * Times are seconds on the media timeline (t = 0 at the first video frame). Signals of each kind
 * come in time order; kinds may interleave loosely (a moment is decided only once every kind has
 * passed its end, see shorts_next()).
 *
 * Errors: 0, or a negative SHORTS_ERR_*. None leaves the detector unusable.
 */
#ifndef SHORTS_SHORTS_H
#define SHORTS_SHORTS_H

#include <stddef.h>
#include <stdint.h>

#include "sw/str.h"

enum {
    SHORTS_OK = 0,
    SHORTS_ERR_NOMEM = -1,
    SHORTS_ERR_INVAL = -2, /* a bad argument: NaN time, negative size, unknown event type */
};

/** Names a SHORTS_ERR_* code. */
const char *shorts_strerror(int rv);

typedef struct shorts_config {
    double excite_lu;      /* excitement: short-term loudness this far above the rolling level, 6 */
    double calm_lu;        /* ...until it falls below rolling level + this, 2 */
    double level_window_s; /* the rolling level: median short-term loudness over this, 60 s */
    double quiet_lufs;     /* below this the sound is silence, never excitement, -50 LUFS */
    double lag_min_s;      /* viewers' lag, onset to first add of the burst: at least, 3 s */
    double lag_max_s;      /* ...at most, 8 s */
    double cart_window_s;  /* add-to-cart rate window, 10 s */
    double baseline_s;     /* a product's rolling baseline, over this, 300 s */
    double baseline_floor; /* the baseline is never below this many adds per second, 1/60 */
    double cart_factor;    /* a burst: the window's rate at least this times the baseline, 4 */
    int cart_min;          /* ...and at least this many adds (qty summed) in the window, 5 */
    double
        pin_lookback_s;  /* a pin of the product this long before the onset starts the moment, 25 */
    double lead_s;       /* without a pin the moment starts this long before the onset, 8 */
    double tail_s;       /* the moment ends this long after excitement and buying have, 5 */
    double min_s, max_s; /* a moment lasts 15 to 60 s */
    double slate_ratio;  /* picture activity below this fraction of the show's median is a
                            frozen slate, 0.15 */
} shorts_config_t;

/** Fills `cfg` with the defaults above. */
void shorts_config_init(shorts_config_t *cfg);

enum {
    SHORTS_EV_PIN,   /* product_pinned: sku */
    SHORTS_EV_UNPIN, /* product_unpinned: sku */
    SHORTS_EV_CART,  /* add_to_cart: sku, qty */
    SHORTS_EV_CHAT,  /* chat_rate: count messages over window_s */
};

/* One room event. The detector copies what it keeps. */
typedef struct shorts_event {
    int type;               /* SHORTS_EV_* */
    double t;               /* media seconds */
    const char *sku;        /* PIN, UNPIN, CART: 1 to 64 bytes */
    int qty;                /* CART: at least 1 */
    double count, window_s; /* CHAT */
} shorts_event_t;

/* Why a moment was found, and why its boundaries are where they are. */
typedef struct shorts_evidence {
    double onset;          /* excitement began */
    double excite_end;     /* excitement ended (loudness back under level + calm_lu) */
    double peak_lu;        /* the excitement's peak short-term loudness above the level, LU */
    double level_lufs;     /* the rolling level at the onset */
    double buy_first;      /* the first add of the burst's cluster (adds a window apart at most) */
    double buy_start;      /* the burst's first add, leaving out leading adds that stand apart */
    double buy_end;        /* the burst's last add before the rate fell back */
    int adds;              /* adds of the product (qty summed) from buy_start to buy_end */
    double peak_rate;      /* the burst's highest rate, adds per second over cart_window_s */
    double baseline;       /* the product's baseline at the burst, adds per second */
    double lag_s;          /* buy_start - onset (matched when some start from buy_first to buy_start
                              lags the onset by lag_min_s..lag_max_s, give or take 1.5 s) */
    double pin_t;          /* the pin the moment starts at; -1 without one */
    double activity_ratio; /* picture activity around the onset over the show's median */
    double chat_ratio;     /* chat rate at the onset over its median; 0 without chat_rate events */
    const char *start_why; /* "pin" or "lead" (lead_s before the onset) */
    const char *end_why;   /* "excitement" or "buying" (tail_s after it), "max" or "min" */
} shorts_evidence_t;

typedef struct shorts_moment {
    double start, end;
    double score; /* higher sells more: the burst over its baseline times the excitement */
    char sku[65];
    shorts_evidence_t ev;
} shorts_moment_t;

typedef struct shorts_detector shorts_detector_t;

/** Creates a detector. Copies `cfg` (NULL: the defaults). Returns 0, SHORTS_ERR_NOMEM or
 * SHORTS_ERR_INVAL (a config value out of range). */
int shorts_detector_new(shorts_detector_t **out, const shorts_config_t *cfg);
/** NULL does nothing. */
void shorts_detector_free(shorts_detector_t *d);

/** The audio's EBU R128 short-term (3 s) loudness at `t`, in LUFS, about every 100 ms. -HUGE_VAL
 * (or anything below -70) is silence. Returns 0, SHORTS_ERR_INVAL or SHORTS_ERR_NOMEM. */
int shorts_loudness(shorts_detector_t *d, double t, double lufs);

/** One video frame at `t` (its decode time), `bytes` long, a keyframe or not. The picture's
 * activity is the size of its non-key frames. Returns 0, SHORTS_ERR_INVAL or SHORTS_ERR_NOMEM. */
int shorts_video(shorts_detector_t *d, double t, size_t bytes, int key);

/** One room event. Returns 0, SHORTS_ERR_INVAL or SHORTS_ERR_NOMEM. */
int shorts_event(shorts_detector_t *d, const shorts_event_t *ev);

/**
 * The next moment decided by `now` (the media time every kind of signal has reached), in time
 * order, each once. A moment is decided once its end has passed and nothing later could move it.
 * Returns 1 with *out filled, or 0.
 */
int shorts_next(shorts_detector_t *d, double now, shorts_moment_t *out);

/** The input is over (offline analysis): what is pending is decided by what was seen. */
void shorts_finish(shorts_detector_t *d);

/**
 * Appends `m` as a JSON object: {"start":s,"end":s,"score":x,"sku":"...","evidence":{...}}.
 * Returns 0 or SHORTS_ERR_NOMEM.
 */
int shorts_moment_json(const shorts_moment_t *m, sw_str_t *out);

#endif
