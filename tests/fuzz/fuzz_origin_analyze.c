/*
 * Fuzz target for the offline analyzer's events file (origin_analyze_events.c): any bytes, split
 * into lines as origin_analyze() splits the file, each parsed with one shared state. An accepted
 * line must give an event the detector takes (a known type, a finite time on the timeline, a sku
 * of 1 to 64 bytes for the product events, qty from 1, count and window_s in range for
 * chat_rate); a refused one must say why; nothing may read outside the input.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "origin_analyze.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    origin_aev_state_t st;
    shorts_detector_t *d = NULL;

    if (shorts_detector_new(&d, NULL) != 0)
        return 0;
    origin__aev_state_init(&st);
    for (size_t at = 0; at < size;) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl != NULL ? (size_t)(nl - (data + at)) : size - at;
        /* A copy of exactly the line's bytes, so that ASan sees any read past its end. */
        char *line = malloc(len ? len : 1);
        origin_aev_t a;
        const char *why = NULL;

        if (line == NULL)
            break;
        memcpy(line, data + at, len);
        int rv = origin__aev_parse(&st, line, len, &a, &why);
        if (rv == ORIGIN_AEV_EVENT) {
            CHECK(isfinite(a.ev.t) && fabs(a.ev.t) <= ORIGIN_AEV_MAX_T);
            if (a.ev.type == SHORTS_EV_CHAT) {
                CHECK(a.ev.sku == NULL && a.ev.count >= 0 && a.ev.window_s > 0);
            } else {
                CHECK(a.ev.type == SHORTS_EV_PIN || a.ev.type == SHORTS_EV_UNPIN ||
                      a.ev.type == SHORTS_EV_CART);
                CHECK(a.ev.sku == a.sku && strlen(a.sku) >= 1 && strlen(a.sku) <= 64);
                CHECK(a.ev.type != SHORTS_EV_CART ||
                      (a.ev.qty >= 1 && a.ev.qty <= ORIGIN_AEV_MAX_QTY));
            }
            CHECK(shorts_event(d, &a.ev) == 0);
        } else if (rv == ORIGIN_AEV_BAD) {
            CHECK(why != NULL && why[0] != '\0');
        } else {
            CHECK(rv == ORIGIN_AEV_SKIP);
        }
        free(line);
        at += len + (nl != NULL);
    }
    shorts_detector_free(d);
    return 0;
}
