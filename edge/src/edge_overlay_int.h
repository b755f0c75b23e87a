/*
 * edge_overlay_int.h: internals of the overlay service (edge_overlay*.c). Never included from
 * outside edge/ (tests and fuzz targets excepted).
 *
 *   edge_overlay_msg.c    pure: client message parser, event and state messages as JSON
 *   edge_overlay_redis.c  hiredis on the loop: command and reader connections, XREAD, XRANGE
 *   edge_overlay_limits.c pure: who may join (viewer and room caps), the registry's names
 *   edge_overlay.c        libwebsockets, rooms, viewers, send queues, fan-out, metrics
 */
#ifndef EDGE_OVERLAY_INT_H
#define EDGE_OVERLAY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edge/overlay.h"
#include "sw/str.h"

/* Coalescing slots of server messages: a newer message of a slot replaces an older one still
 * queued on a connection (latest pin wins). Price and stock updates coalesce per sku. */
enum {
    EDGE__SLOT_NONE = 0, /* never coalesced: short_ready, acks, errors, resync */
    EDGE__SLOT_PIN,      /* product_pinned, product_unpinned */
    EDGE__SLOT_FLASH,    /* flash_sale */
    EDGE__SLOT_PRICE,    /* price_update, per sku */
    EDGE__SLOT_STOCK,    /* stock_update, per sku */
    EDGE__SLOT_COUNT,    /* viewer_count */
};

/* An event as the edge keeps it: the message text and what the room state needs to know. */
typedef struct edge__ov_event {
    sw_str_t json; /* the server-to-client message */
    int slot;
    char sku[EDGE_OVERLAY_SKU_MAX + 1];
    char id[48];
} edge__ov_event_t;

/**
 * Builds the message for a stream entry: {"type","id","media_time", then the fields of `data`}.
 * `media_time` may be NULL (then the millisecond part of `id` is used). `ev->json` must be
 * initialized; it is reset first. Returns 0, EDGE_ERR_INVAL (unknown type, data not a JSON
 * object, bad id; *err_desc says which) or EDGE_ERR_NOMEM.
 */
int edge__overlay_event(const char *id, const char *type, const char *data, size_t data_len,
                        const char *media_time, edge__ov_event_t *ev, const char **err_desc);

/**
 * Checks a message stored in the room's state hash (`pinned`, `flash_sale`): a JSON object with
 * a known "type" and an "id"; fills `ev` like edge__overlay_event(). Returns 0, EDGE_ERR_INVAL or
 * EDGE_ERR_NOMEM.
 */
int edge__overlay_state(const char *json, size_t len, edge__ov_event_t *ev, const char **err_desc);

/** Compares two stream ids already checked by edge_overlay_parse_id(): <0, 0, >0. */
int edge__overlay_idcmp(const char *a, const char *b);

/** Checks a room name: 1 to 64 of A-Z a-z 0-9 _ - . Returns 1 if valid. */
int edge__overlay_room_ok(const char *room, size_t len);

/* ---- limits (edge_overlay_limits.c): pure, any thread ---- */

/* What the edge holds when a viewer asks to join: the figures overlay_max_* bound. */
typedef struct edge__ov_load {
    size_t viewers;            /* viewers in rooms on this edge (the whole process) */
    size_t max_viewers;        /* overlay_max_viewers */
    size_t unregistered_rooms; /* open rooms whose name the registry does not list */
    size_t max_rooms;          /* overlay_max_rooms */
} edge__ov_load_t;

typedef enum edge__ov_admit {
    EDGE__ADMIT_OK = 0,
    EDGE__ADMIT_EDGE_FULL,    /* overlay_max_viewers viewers already */
    EDGE__ADMIT_ROOM_REFUSED, /* a new room the registry does not list, and the cap is reached */
} edge__ov_admit_t;

/**
 * Decides whether one more viewer may join a room: the edge's viewer cap first, then, for a room
 * not open here yet (`room_open` 0) whose stream the registry does not list (`registered` 0),
 * the cap on such rooms. Needs no Redis: `registered` comes from the edge's copy of the
 * registry (edge__ov_registry_has()).
 */
edge__ov_admit_t edge__overlay_admit(const edge__ov_load_t *load, int room_open, int registered);

/* The stream names the origins' registry lists (`SMEMBERS sw:streams`), sorted for bsearch. */
typedef struct edge__ov_registry {
    char **names;
    size_t n;
} edge__ov_registry_t;

/**
 * Replaces the set with names[i][0..lens[i]) for i < n (copied; names that are not valid room
 * names are left out). `reg` starts zeroed. Returns 0, or EDGE_ERR_NOMEM and leaves `reg` as it
 * was.
 */
int edge__ov_registry_load(edge__ov_registry_t *reg, const char *const *names, const size_t *lens,
                           size_t n);

/** Returns 1 if `name` is in the set. */
int edge__ov_registry_has(const edge__ov_registry_t *reg, const char *name);

/** Frees the names; the set is empty afterwards. */
void edge__ov_registry_dispose(edge__ov_registry_t *reg);

/* One log line per period for a kind of refusal that a flood could repeat; starts zeroed. */
typedef struct edge__ov_ratelog {
    uint64_t next_ms;    /* no line before this */
    uint64_t suppressed; /* refusals not logged since the last line */
    int logged;          /* a line was written */
} edge__ov_ratelog_t;

/**
 * Returns 1 if a line may be written at `now_ms` (the first one, then at most one per
 * `period_ms`), with *suppressed set to the refusals that were not logged since the last line;
 * otherwise counts this one as suppressed and returns 0 (*suppressed untouched).
 */
int edge__ov_ratelog(edge__ov_ratelog_t *rl, uint64_t now_ms, uint64_t period_ms,
                     uint64_t *suppressed);

#endif
