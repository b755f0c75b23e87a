/*
 * origin_analyze.h (internal to origin/): the offline analyzer's events file, one JSON object a
 * line, parsed without I/O (fuzzed by tests/fuzz/fuzz_origin_analyze.c). origin_analyze.c reads
 * the file and the media and feeds both to the shorts/ detector.
 *
 * A line is one room event:
 *   {"type": "add_to_cart", "t": 12.5, "sku": "SKU-1", "qty": 2}
 *   {"type": "product_pinned", "ts_ms": 1764322212500, "data": {"product_id": "SKU-1"}}
 * - `type`: product_pinned, product_unpinned, add_to_cart, chat_rate; any other type is skipped
 *   whatever else the line holds, and so are blank lines.
 * - the time, at the top level: `t` (seconds on the media timeline, t = 0 at the first video
 *   frame) or `ts_ms` (wall-clock Unix milliseconds), one of the two. `ts_ms` needs a line
 *   {"type": "stream_start", "epoch_ms": E} before it: E is the wall-clock time of t = 0, so
 *   t = (ts_ms - E) / 1000. A file has at most one stream_start.
 * - the event's fields flat or under `data` (not the same field in both): `sku` (or its alias
 *   `product_id`, not both), a string of 1 to 64 bytes without control characters;
 *   add_to_cart's `qty`, an integer from 1 to 100000 (1 when absent); chat_rate's `count`, a
 *   number from 0 to 1e9 (messages), and `window_s`, a number above 0 and at most 3600 (seconds).
 *   Other members are ignored (an exported event carries its title, price, viewer...).
 * Anything else is an error, with a reason: the analysis scores what it reads, so a file it
 * misreads must not give a score that looks right (origin_analyze() stops at the first one).
 */
#ifndef ORIGIN_ANALYZE_H
#define ORIGIN_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "shorts/shorts.h"

#define ORIGIN_AEV_MAX_LINE 65536     /* bytes in one line of the events file */
#define ORIGIN_AEV_MAX_T    10000000. /* |t| in seconds: about 115 days */
#define ORIGIN_AEV_MAX_QTY  100000

enum {
    ORIGIN_AEV_SKIP = 0,  /* nothing to feed: a blank line, stream_start, an unknown type */
    ORIGIN_AEV_EVENT = 1, /* *out holds an event */
    ORIGIN_AEV_BAD = -1,  /* *err_desc says why */
};

/* What one file's lines share: the stream_start epoch. */
typedef struct origin_aev_state {
    int has_epoch;
    int64_t epoch_ms;
    char _why[200]; /* a reason that is not static (jansson's), until the next line */
} origin_aev_state_t;

/* One parsed event; `ev.sku` points into `sku` (NULL for chat_rate). */
typedef struct origin_aev {
    shorts_event_t ev;
    char sku[65];
} origin_aev_t;

void origin__aev_state_init(origin_aev_state_t *st);

/**
 * Parses one line (`len` bytes, without its newline; it need not be NUL-terminated). Returns
 * ORIGIN_AEV_EVENT with *out filled, ORIGIN_AEV_SKIP, or ORIGIN_AEV_BAD with *err_desc pointing
 * at a sentence (static, or in `st` until the next call). A stream_start line updates `st`.
 */
int origin__aev_parse(origin_aev_state_t *st, const char *line, size_t len, origin_aev_t *out,
                      const char **err_desc);

/** The events file's name of a SHORTS_EV_* type ("add_to_cart", ...). */
const char *origin__aev_type_name(int type);

#endif
