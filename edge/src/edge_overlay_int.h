/*
 * edge_overlay_int.h: internals of the overlay service (edge_overlay*.c). Never included from
 * outside edge/ (tests and fuzz targets excepted).
 *
 *   edge_overlay_msg.c    pure: client message parser, event and state messages as JSON
 *   edge_overlay_redis.c  hiredis on the loop: command and reader connections, XREAD, XRANGE
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

#endif
