/*
 * origin_int.h: the origin's internal objects. Stays in origin/src.
 *
 * origin_t owns the ingest, the HTTP server, the Redis link and a list of streams. A stream
 * outlives its publishers: when a publisher goes away the stream stays (its DVR window is still
 * served, and a publisher that comes back continues its media sequence after a discontinuity).
 */
#ifndef ORIGIN_INT_H
#define ORIGIN_INT_H

#include <stdint.h>
#include <uv.h>

#include "hls/hls.h"
#include "origin/origin.h"
#include "origin_ingest.h"
#include "sw/alog.h"
#include "sw/http.h"
#include "sw/str.h"

typedef struct origin_stream origin_stream_t;
typedef struct origin_waiter origin_waiter_t;
typedef struct origin_redis origin_redis_t;
typedef struct origin_event_in origin_event_in_t;

/* What a held request waits for. */
enum origin_wait_type {
    ORIGIN_WAIT_PLAYLIST = 0, /* blocking playlist reload: _HLS_msn / _HLS_part */
    ORIGIN_WAIT_PART = 1,     /* a preload-hinted part that is not written yet */
    ORIGIN_WAIT_SEGMENT = 2,  /* a segment being written, streamed part by part (chunked) */
};

struct origin_waiter {
    origin_waiter_t *prev, *next;
    origin_stream_t *st;
    sw_http_req_t *req;
    int type;
    int kind;
    hls_query_t q; /* PLAYLIST: what it waits for; PART: msn and part */
    hls_render_opts_t opts;
    uint32_t sent_parts; /* SEGMENT: parts already written */
    uint64_t deadline_ms;
};

typedef struct origin_wait_list {
    origin_waiter_t *head;
    size_t n;
} origin_wait_list_t;

/* The Cache-Control of media bytes (segments, parts, init segments), from memory or the DVR
 * files: they never change once written. stale-if-error lets a cache that expired them (one
 * that caps lifetimes) serve them while we are down: a stale copy of an immutable segment is the
 * segment, so the window is long: two days, the longest dvr_window, in which a player may still
 * seek to it. Playlists send stale-if-error=0 instead (origin_http.c says why). */
#define ORIGIN__CC_MEDIA "public, max-age=31536000, immutable, stale-if-error=172800"

/* Latency from a frame's arrival to its part being servable: a histogram for Prometheus and a ring
 * of recent samples for exact p50/p99 in the API. */
#define ORIGIN_LAT_BUCKETS 12
#define ORIGIN_LAT_RING    8192

typedef struct origin_latency {
    uint64_t buckets[ORIGIN_LAT_BUCKETS + 1]; /* the last one is +Inf */
    double sum_ms;
    uint64_t count;
    float ring[ORIGIN_LAT_RING];
    uint32_t ring_pos;
} origin_latency_t;

extern const double origin_lat_bounds_ms[ORIGIN_LAT_BUCKETS];

/*
 * A stream's room events (origin_rooms.c): what its playlists and MPD show as EXT-X-DATERANGE and
 * EventStream, sorted by media time, at most ORIGIN_ROOM_MAX_EVENTS and none older than the DVR
 * window. `ev[i].id` and `ev[i].data` (the client message) are owned; `type` is static.
 */
#define ORIGIN_ROOM_MAX_EVENTS 1000
#define ORIGIN_EVENTS_MAXLEN   10000 /* XADD MAXLEN ~: entries kept per room in Redis */
#define ORIGIN_EVENT_MAX_BODY  4096  /* bytes in a POST body */
#define ORIGIN_EVENT_ID_MAX    48

typedef struct origin_room {
    hls_daterange_t *ev;
    size_t n, cap;
    char last_id[ORIGIN_EVENT_ID_MAX]; /* the newest entry id seen: where XREAD goes on */
    int loaded;                        /* the DVR window was read (XREVRANGE) */
} origin_room_t;

struct origin_stream {
    origin_stream_t *next;
    struct origin *o;
    char name[72];
    char dir[1024]; /* data/NAME */
    hls_stream_t *hls;
    origin_pub_t *pub; /* the live publisher, NULL when offline */
    char peer[64];
    int64_t created_ms;
    int64_t publish_ms; /* when the current (or last) publisher started */
    int64_t last_media_ms;
    uint64_t publishes;
    uint64_t packets, bytes_in, write_errors;
    hls_track_info_t tracks[HLS_NTRACKS]; /* codecs as the demuxer announced them */
    /* Frames written since the track's last part, for the latency figures. */
    uint64_t pending_ns[HLS_NTRACKS][64];
    uint32_t npending[HLS_NTRACKS];
    /* Wall clock (unix µs) when the newest part of each track became servable; sent with the
     * playlists as x-sw-part-ready-us so that a client can measure how fast it was answered. */
    int64_t part_ready_us[HLS_NTRACKS];
    origin_wait_list_t waiters[HLS_NTRACKS];
    int index_fd; /* data/NAME/index.log, appended per segment */
    uint64_t index_bytes;
    uint64_t index_limit; /* compact index.log past this size (origin_dvr.c) */
    /* DVR writes of this stream, run one at a time in order (origin_dvr.c). */
    struct dvr_job *dvr_running, *dvr_head, *dvr_tail;
    origin_room_t room;
    /* Redis replies still to come that name this stream (a room's window read, an event's write):
     * it is not freed before they arrive (forget_gone() in origin.c). */
    unsigned redis_pending;
};

typedef struct origin_pubmap_entry {
    origin_pub_t *pub;
    origin_stream_t *st;
} origin_pubmap_entry_t;

struct origin {
    uv_loop_t *loop;
    hls_stream_config_t hls_cfg;
    uint32_t live_segments;
    char *data_dir;
    char *public_url;
    char http_addr[128];
    uint64_t block_timeout_ms;

    origin_ingest_t *ingest;
    sw_http_server_t *http;
    origin_redis_t *redis;
    uv_timer_t tick;

    origin_stream_t *streams;
    size_t nstreams;
    origin_pubmap_entry_t *pubmap; /* live publisher -> stream (origin.c) */
    size_t pubmap_cap, pubmap_n;
    int64_t started_ms;
    int closing;
    int pending_closes;
    void (*on_closed)(void *data);
    void *on_closed_data;

    origin_latency_t latency;
    /* The same by track: audio arrives in PES packets of several frames, video frame by frame,
     * so their figures differ, and the sum alone hides which one is late. */
    origin_latency_t latency_track[HLS_NTRACKS];
    /* Only each part's last frame: the origin's own delay (reading, demuxing, the hand-off to
     * the loop, packaging), without the wait for the rest of the part that the others include. */
    origin_latency_t latency_last;
    uint64_t publishes_total;
    uint64_t unpublishes_total;
    uint64_t streams_forgotten; /* offline longer than the DVR window (origin.c) */
    sw_alog_t alog;             /* access_log; reopened by origin_reload() */
    int64_t next_forget_ms;
    uint64_t waiters_total, waiters_timed_out;
    uint64_t dvr_write_errors;

    char *api_token; /* Bearer token for POST/DELETE under /api/; NULL: loopback only */
    struct origin_publish *publishing; /* POSTed events waiting for Redis (origin_rooms.c) */
    uint64_t events_posted, events_rejected, events_unauthorized, events_not_live;
    uint64_t events_redis_errors, events_read, events_skipped;
};

/* origin.c */
origin_stream_t *origin__stream_find(struct origin *o, const char *name);

/* origin_http.c: routes and held requests. */
void origin__http_handle(void *data, sw_http_req_t *req);
void origin__waiters_on_part(origin_stream_t *st, int kind);
void origin__waiters_on_segment(origin_stream_t *st, int kind, const hls_segment_t *seg);
void origin__waiters_sweep(origin_stream_t *st, int64_t now_ms);
void origin__waiters_abort_all(origin_stream_t *st);
/* The publisher left: a segment it had not begun will not be the one the request was for (the
 * next publisher's first segment takes that number, in a new Period): 404 to those held. */
void origin__waiters_on_unpublish(origin_stream_t *st);
void origin__send_cors(sw_http_req_t *req);

/* origin_api.c: /api and /metrics. */
void origin__api_handle(struct origin *o, sw_http_req_t *req, const char *path);
void origin__metrics_handle(struct origin *o, sw_http_req_t *req);
void origin__latency_add(origin_latency_t *l, double ms);

/* origin_dvrindex.c: the lines of index.log (pure; fuzzed by fuzz_origin_dvrindex). */
#define ORIGIN_DVR_MAX_BYTES     (64u << 20) /* the largest segment file the DVR reads back */
#define ORIGIN_DVR_MAX_TIMESCALE 1000000

enum { ORIGIN_DVR_LINE_SEG = 1, ORIGIN_DVR_LINE_START = 2, ORIGIN_DVR_LINE_END = 3 };

typedef struct origin_dvr_line {
    int type;           /* ORIGIN_DVR_LINE_SEG, _START or _END */
    int kind;           /* HLS_VIDEO or HLS_AUDIO (a segment line) */
    hls_segment_t seg;  /* msn, start, duration, pdt_ms, init_gen, discontinuity, bytes, gap; no
                           parts; complete. A start line: msn only, the run's first number. */
    int64_t origin_ms;  /* the run's wall clock of output time 0 */
    uint32_t timescale; /* 0 in a line written before the field was */
    int checked;        /* it carried a checksum, which matched (older lines have none) */
} origin_dvr_line_t;

/** CRC-32 (IEEE 802.3, as zlib's crc32()) of `len` bytes. */
uint32_t origin__dvr_crc32(const char *s, size_t len);
/**
 * Formats the index line of segment `seg` of track `kind`, with its checksum and a newline, into
 * `buf`. Returns its length, or -1 when `size` is too small (256 bytes always suffice).
 */
int origin__dvr_line_format(char *buf, size_t size, int kind, const hls_segment_t *seg,
                            int64_t origin_ms, uint32_t timescale);
/**
 * Parses one line of index.log: exactly `len` bytes (no NUL needed) ending with its newline.
 * Returns 0 with `out` filled, or -1 with `*err_desc` (a static string) saying why: a torn line
 * (no newline), a checksum mismatch, a bad field or a value out of range. Never reads outside
 * [line, line + len).
 */
int origin__dvr_line_parse(const char *line, size_t len, origin_dvr_line_t *out,
                           const char **err_desc);
/**
 * Compaction of index.log: copies to `out` (room for `len` bytes; may not overlap `in` unless it
 * is `in`) the segment lines of `in` that end after `keep_from_ms` (unix ms), dropping the
 * rest, "end" lines and lines that do not parse. Returns the bytes written.
 */
size_t origin__dvr_index_compact(const char *in, size_t len, int64_t keep_from_ms, char *out);

/* origin_dvr.c: the DVR window on disk. */
int origin__dvr_open(origin_stream_t *st);
void origin__dvr_close(origin_stream_t *st);
/* Removes the stream's DVR folder (renamed at once, deleted on the thread pool) and closes its
 * index. Returns 0, or -1 while a write of the stream is queued (try later). */
int origin__dvr_remove(origin_stream_t *st);
/* Deletes what origin__dvr_remove() renamed and an earlier run left behind (at start). */
void origin__remove_gone(struct origin *o);
void origin__dvr_write_init(origin_stream_t *st, int kind, uint32_t gen, sw_rbuf_t *init);
void origin__dvr_write_segment(origin_stream_t *st, int kind, const hls_segment_t *seg);
void origin__dvr_expire(origin_stream_t *st, int kind, uint64_t msn);
/*
 * What an earlier run left in data/NAME, read by origin__dvr_restore(): the index lines that are
 * valid (they parse, and a segment's file is on disk with the logged size), where numbering goes
 * on, and whether that run stopped cleanly.
 */
typedef struct origin_dvr_restore {
    uint64_t next_msn; /* past every number the earlier run may have handed out */
    int64_t origin_ms; /* the wall clock of its output time 0 */
    uint32_t init_gen; /* the highest init generation on disk or in the index */
    int clean;         /* index.log ends with "end" */
    origin_dvr_line_t *lines[HLS_NTRACKS]; /* each track's valid segment lines, in file order */
    size_t nlines[HLS_NTRACKS], cap[HLS_NTRACKS];
} origin_dvr_restore_t;

/*
 * Reads data/NAME (index.log and the file names in v/ and a/) on the calling thread; run before
 * the loop serves anything. After a crash it deletes what the crash cut short: a torn last line
 * of index.log (cut off, so that the next line appended does not join it), temporary files,
 * and segment files that no valid line describes past the track's last valid one, or whose size
 * disagrees with their line; their numbers still count as handed out. Returns 0 with `r` filled
 * (free with origin__dvr_restore_dispose), 1 when there is no earlier run, or ORIGIN_ERR_NOMEM
 * (nothing to dispose in either case).
 */
int origin__dvr_restore(struct origin *o, const char *name, origin_dvr_restore_t *r);
/*
 * Puts the earlier run's segments back on st's timeline (st->hls was made with first_msn =
 * r->next_msn), so that DVR playlists still list them: per track, the run without holes and
 * inside the window ending at its last valid segment, then a gap segment for each number that was
 * handed out but whose media is lost (after a crash: the segment in progress at least), which it
 * appends to index.log (on the calling thread), so that a later restart restores the run through
 * them. 0 or -1.
 */
int origin__dvr_restore_timeline(origin_stream_t *st, const origin_dvr_restore_t *r);
void origin__dvr_restore_dispose(origin_dvr_restore_t *r);
/* Serves data/NAME/{v,a}/FILE from disk (async read); 404 when absent. */
void origin__dvr_serve(origin_stream_t *st, sw_http_req_t *req, int kind, const char *file,
                       const char *content_type);

/* origin_redis.c: the stream registry in Redis (optional). */
int origin__redis_new(origin_redis_t **out, struct origin *o, const char *url, int64_t ttl_ms,
                      char *err, size_t errlen);
void origin__redis_announce(origin_redis_t *r, origin_stream_t *st);
void origin__redis_withdraw(origin_redis_t *r, origin_stream_t *st);
void origin__redis_tick(origin_redis_t *r);
int origin__redis_connected(const origin_redis_t *r);
uint64_t origin__redis_reconnects(const origin_redis_t *r);
/*
 * Room events. publish: one EVAL (XADD + state hash, see origin_redis.c); `cb` gets the entry id,
 * or NULL and a reason, exactly once; returns -1 without calling it when Redis is not connected.
 * load_room: reads the stream's DVR window of events (XREVRANGE) into st->room. reader_kick:
 * makes the events reader (XREAD BLOCK over the live rooms) include rooms newly loaded.
 */
int origin__redis_publish(origin_redis_t *r, const char *room, const origin_event_in_t *ev,
                          const char *media_time, const char *msg_prefix, const char *msg_suffix,
                          void (*cb)(void *data, const char *id, const char *err), void *data);
void origin__redis_load_room(origin_redis_t *r, origin_stream_t *st);
void origin__redis_reader_kick(origin_redis_t *r);
int origin__redis_reader_connected(const origin_redis_t *r);
/* Closes the link; counts one pending close on `o` and calls origin__closed_one() when done. */
void origin__redis_close(origin_redis_t *r);
void origin__closed_one(struct origin *o);

/* origin_event.c: room events as text (pure; fuzzed). */
struct origin_event_in {
    const char *type; /* static */
    char *sku;        /* data.sku, or NULL */
    char *data;       /* the data object, compact JSON */
    char *inner;      /* its members without the braces: what follows in the client message */
};

/**
 * Checks a POST body {"type": ..., "data": {...}} against docs/overlay-protocol.md. Returns 0 with
 * `out` filled (free with origin__event_in_dispose), -1 with the reason in `err` (for a 400), or
 * ORIGIN_ERR_NOMEM.
 */
int origin__event_parse(const uint8_t *body, size_t len, origin_event_in_t *out, char *err,
                        size_t errlen);
void origin__event_in_dispose(origin_event_in_t *ev);
/** The static name of a known event type, or NULL. */
const char *origin__event_type_name(const char *s);
/**
 * 1 when events of `type` go into the media (EXT-X-DATERANGE, EventStream); 0 for a signal that
 * only the shorts detector reads (chat_rate), and for an unknown type.
 */
int origin__event_in_media(const char *type);
/** 1 to 64 characters of A-Z a-z 0-9 _ - . */
int origin__room_name_valid(const char *s, size_t n);
/** RFC 3339 UTC ("...T09:30:00Z" or "...T09:30:00.123Z") to unix ms; -1 when it is not that. */
int64_t origin__parse_utc_ms(const char *s);
/** Appends the client message {"type","id","media_time",<inner>}. Returns 0 or NOMEM. */
int origin__event_message(sw_str_t *out, const char *type, const char *id, int64_t media_ms,
                          const char *inner);
/**
 * A Redis entry's type and data: returns 0 with the static type name and the data's members
 * (malloc'd, for origin__event_message), -1 for an unknown type or data that is not a JSON
 * object, or ORIGIN_ERR_NOMEM.
 */
int origin__event_from_entry(const char *type, const char *data, size_t data_len,
                             const char **type_out, char **inner_out);

/* origin_rooms.c: POST /api/rooms/ROOM/events and each stream's events. */
void origin__rooms_api(struct origin *o, sw_http_req_t *req, const char *rest);
/** An entry of room:NAME:events (from XREAD or XREVRANGE); `media_time` may be NULL. */
void origin__room_entry(origin_stream_t *st, const char *id, const char *type, const char *data,
                        size_t data_len, const char *media_time);
/** Unix ms of the first instant the stream's DVR window holds (0 when it holds nothing). */
int64_t origin__room_window_ms(const origin_stream_t *st);
void origin__room_dispose(origin_room_t *room);
/** Answers 503 to POSTs that Redis has not answered within ORIGIN_PUBLISH_TIMEOUT_MS. */
void origin__rooms_sweep(struct origin *o, int64_t now_ms);
/** Whether `req` may change things: a matching Bearer token, or loopback when none is set. */
int origin__api_allowed(struct origin *o, sw_http_req_t *req);
/* Answers with the JSON in `s` (no-store, CORS), or 500 if building it ran out of memory. */
void origin__send_json(sw_http_req_t *req, int status, sw_str_t *s);
/* Answers {"error":"msg"}. */
void origin__json_error(sw_http_req_t *req, int status, const char *msg);

static inline const char *origin__kind_dir(int kind)
{
    return kind == HLS_VIDEO ? "v" : "a";
}

#endif
