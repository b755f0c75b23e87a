/*
 * shorts_detect.c: the moment detector (shorts/shorts.h). Work in progress: the signals are
 * recorded; the decisions come next.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shorts/shorts.h"

struct shorts_detector {
    shorts_config_t cfg;
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

int shorts_detector_new(shorts_detector_t **out, const shorts_config_t *cfg)
{
    shorts_detector_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SHORTS_ERR_NOMEM;
    if (cfg != NULL)
        d->cfg = *cfg;
    else
        shorts_config_init(&d->cfg);
    *out = d;
    return 0;
}

void shorts_detector_free(shorts_detector_t *d)
{
    free(d);
}

int shorts_loudness(shorts_detector_t *d, double t, double lufs)
{
    (void)d;
    (void)lufs;
    return isnan(t) ? SHORTS_ERR_INVAL : 0;
}

int shorts_video(shorts_detector_t *d, double t, size_t bytes, int key)
{
    (void)d;
    (void)bytes;
    (void)key;
    return isnan(t) ? SHORTS_ERR_INVAL : 0;
}

int shorts_event(shorts_detector_t *d, const shorts_event_t *ev)
{
    (void)d;
    return isnan(ev->t) ? SHORTS_ERR_INVAL : 0;
}

int shorts_next(shorts_detector_t *d, double now, shorts_moment_t *out)
{
    (void)d;
    (void)now;
    (void)out;
    return 0;
}

void shorts_finish(shorts_detector_t *d)
{
    (void)d;
}

int shorts_moment_json(const shorts_moment_t *m, sw_str_t *out)
{
    sw_str_printf(out, "{\"start\":%.3f,\"end\":%.3f,\"score\":%.3f,\"sku\":\"", m->start, m->end,
                  m->score);
    sw_str_json_escape(out, m->sku);
    sw_str_puts(out, "\",\"evidence\":{}}");
    return out->failed ? SHORTS_ERR_NOMEM : 0;
}
