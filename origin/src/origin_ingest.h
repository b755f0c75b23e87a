/*
 * origin_ingest.h (internal to origin/): SRT ingest and MPEG-TS demux, off the loop.
 *
 * Threads: one SRT thread runs srt_epoll_uwait() over the listener and the caller-mode pulls that
 * are connecting, and never blocks on anything else. One demux thread per publisher runs
 * libavformat's MPEG-TS demuxer over a custom AVIOContext that reads the publisher's SRT socket
 * directly (blocking, with a 100 ms receive timeout between deadline checks). Events go to the loop
 * thread through a locked list and one uv_async_t, drained whole; they arrive per publisher in this
 * order: on_publish, then on_track and on_packet interleaved, then on_unpublish exactly once.
 *
 * Stream names: a streamid "#!::r=live/room42,m=publish" or plain "live/room42" publishes the
 * resource "live/room42". A resource's first element is its application ("live" by convention);
 * the stream's name is the rest with '/' as '-' ("live/vip/room42" is "vip-room42"), or the only
 * element of a one-element resource, and must be 1 to 64 of [A-Za-z0-9_-]. Rules (passphrases,
 * the allow list) match "live/NAME", a function of the name alone, so that every route to one
 * name ("live/vip/room42", "live/vip-room42", "other/vip/room42") meets the same rule. A second
 * publisher on a live name is refused in the handshake with SRT_REJX_CONFLICT; a missing or wrong
 * passphrase is refused by SRT itself; a bad streamid gets SRT_REJX_BAD_REQUEST; m=request
 * (playing over SRT) gets SRT_REJX_BAD_MODE; a pull's name, a resource outside the allow list, or
 * one with no passphrase under require_passphrase gets SRT_REJX_FORBIDDEN (1403) or
 * SRT_REJX_UNAUTHORIZED (1401); max_publishers and max_per_source get SRT_REJX_OVERLOAD (1402).
 */
#ifndef ORIGIN_INGEST_H
#define ORIGIN_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hls/hls.h"

typedef struct origin_ingest origin_ingest_t;
typedef struct origin_pub origin_pub_t;

/* Passphrase rules: the first rule whose prefix starts "live/NAME" applies. A prefix is "" or
 * starts with "live/"; past it a '/' counts as the '-' it is in a name ("live/vip/" is
 * "live/vip-"). */
typedef struct origin_srt_rule {
    char *prefix;     /* "" matches everything */
    char *passphrase; /* 10..79 characters; NULL or "" for none */
    int pbkeylen;     /* 0 (default 16), 16, 24 or 32 */
} origin_srt_rule_t;

/* Caller mode: connect out to a remote SRT listener and publish what it sends as `name`. */
typedef struct origin_srt_pull {
    char *name; /* stream name, e.g. "room7" */
    char *url;  /* srt://host:port?streamid=...&passphrase=...&latency=MS */
} origin_srt_pull_t;

typedef struct origin_ingest_config {
    const char *listen; /* "0.0.0.0:9000" */
    int latency_ms;     /* SRTO_LATENCY for accepted sockets, default 120 */
    int no_tsbpd;       /* SRTO_TSBPDMODE off: deliver as packets arrive (see origin_srt.c) */
    int stall_ms;       /* no media bytes for this long drops the publisher, default 10000 */
    int probe_ms;       /* no supported elementary stream within this drops it, default 5000 */
    size_t queue_bytes; /* unused: the demux threads read their sockets directly, with no queue */
    const origin_srt_rule_t *rules;
    size_t nrules;
    const origin_srt_pull_t *pulls;
    size_t npulls;
    /* Limits (0: none). Pulls are the operator's own: they count, but are never refused. */
    int max_publishers;       /* publishers and handshakes in progress, in all */
    int max_per_source;       /* of those, from one source IP address */
    int require_passphrase;   /* refuse a name no passphrase rule covers */
    const char *const *allow; /* prefixes of "live/NAME" that may publish; NULL or none: all */
    size_t nallow;
} origin_ingest_config_t;

/* One demuxed access unit. Owned by the receiver of on_packet, freed with origin_packet_free(). */
typedef struct origin_packet {
    int kind;         /* HLS_VIDEO or HLS_AUDIO */
    int key;          /* sync sample */
    int64_t pts, dts; /* 90 kHz, as in the TS (AV_NOPTS_VALUE mapped to dts) */
    int64_t recv_ms;  /* wall clock when the demuxer produced it */
    uint64_t recv_ns; /* monotonic clock, for latency measurements */
    size_t len;
    uint8_t *data;
} origin_packet_t;

void origin_packet_free(origin_packet_t *p);

typedef struct origin_srt_stats {
    double rtt_ms;
    double recv_mbps; /* receive rate */
    int64_t pkt_recv; /* totals since connect */
    int64_t pkt_loss;
    int64_t pkt_retrans; /* retransmitted packets received */
    int64_t pkt_drop;    /* too-late packets dropped */
    int64_t bytes_recv;
    int buffer_ms;  /* receiver buffer, ms of data */
    int latency_ms; /* negotiated */
} origin_srt_stats_t;

typedef struct origin_ingest_cbs {
    /* A publisher was accepted (or a pull connected). `name` is the stream name, `peer` "ip:port".
     */
    void (*on_publish)(void *data, origin_pub_t *pub, const char *name, const char *peer);
    /* A supported elementary stream was found (or changed codec). `info` lives during the call. */
    void (*on_track)(void *data, origin_pub_t *pub, int kind, const hls_track_info_t *info);
    /* Takes ownership of `pkt`. */
    void (*on_packet)(void *data, origin_pub_t *pub, origin_packet_t *pkt);
    /* The publisher is gone; `reason` is a sentence for the log. `pub` is freed after it returns.
     */
    void (*on_unpublish)(void *data, origin_pub_t *pub, const char *reason);
} origin_ingest_cbs_t;

/**
 * Binds the SRT listener, starts the SRT thread and the pulls. Copies `cfg` (and its strings).
 * Returns 0, or -1 with err (bind failure, bad rule) filled.
 */
int origin_ingest_new(origin_ingest_t **out, uv_loop_t *loop, const origin_ingest_config_t *cfg,
                      const origin_ingest_cbs_t *cbs, void *data, char *err, size_t errlen);

/**
 * Stops the threads, closes every socket, delivers the remaining on_unpublish events, then frees.
 * Loop thread. NULL does nothing.
 */
void origin_ingest_free(origin_ingest_t *in);

/**
 * Applies a new configuration's rules, allow list, limits and pulls without dropping a
 * publisher (SIGHUP). Other fields of `cfg` are ignored. Checks everything before it changes
 * anything: returns 0, or -1 with err filled and the running configuration kept. New handshakes
 * meet the new rules at once; live publishers stay, even those the new rules would refuse. Pulls
 * are compared by name and URL: a removed or changed one is stopped (its publisher dropped), a new
 * one starts within one round of the SRT thread. Loop thread.
 */
int origin_ingest_reload(origin_ingest_t *in, const origin_ingest_config_t *cfg, char *err,
                         size_t errlen);

/** Drops a publisher (DELETE /api/streams/NAME). on_unpublish follows. Loop thread. */
void origin_ingest_drop(origin_ingest_t *in, origin_pub_t *pub, const char *reason);

/* Why a handshake was refused; counted for /metrics. */
enum {
    ORIGIN_REFUSE_BAD_REQUEST,  /* SRT_REJX_BAD_REQUEST: the streamid or name does not parse */
    ORIGIN_REFUSE_BAD_MODE,     /* SRT_REJX_BAD_MODE: m= other than publish */
    ORIGIN_REFUSE_CONFLICT,     /* SRT_REJX_CONFLICT: the name is live */
    ORIGIN_REFUSE_FORBIDDEN,    /* SRT_REJX_FORBIDDEN: outside the allow list, or a pull's name */
    ORIGIN_REFUSE_UNAUTHORIZED, /* SRT_REJX_UNAUTHORIZED: require_passphrase and no rule has one */
    ORIGIN_REFUSE_OVERLOAD,     /* SRT_REJX_OVERLOAD: max_publishers or max_per_source */
    ORIGIN_REFUSE_DOWN,         /* SRT_REJX_DOWN: shutting down */
    ORIGIN_REFUSE_HANDSHAKE,    /* SRT refused it after us: a wrong or missing passphrase */
    ORIGIN_REFUSE__N
};

/** The reason's label for metrics ("bad_request", "overload", ...). */
const char *origin_refuse_name(int reason);

/** Handshakes refused so far for `reason`. Any thread. */
uint64_t origin_ingest_refused(origin_ingest_t *in, int reason);

/* How the SRT and demux threads hand their events to the loop (for /metrics). */
typedef struct origin_ingest_counts {
    uint64_t events;   /* events delivered: publish, track, packet, unpublish */
    uint64_t handoffs; /* appends to the event list, each one lock and one uv_async_send() */
    uint64_t wakeups;  /* the loop's async callbacks (sends that come together wake it once) */
} origin_ingest_counts_t;

/** Fills `out` with the totals since origin_ingest_new(). Loop thread. */
void origin_ingest_get_counts(origin_ingest_t *in, origin_ingest_counts_t *out);

/** SRT statistics of a live publisher. Loop thread, while `pub` is alive. Returns 0 or -1. */
int origin_pub_stats(origin_pub_t *pub, origin_srt_stats_t *out);

/**
 * Parses an SRT streamid into a resource ("live/room42") and a mode. Accepts the access-control
 * form "#!::r=live/room42,m=publish" (other keys ignored) and a plain "live/room42".
 * Returns 0 or -1 with *err_desc set. `mode` receives "publish" (the default) or what m= said.
 */
int origin_streamid_parse(const char *sid, size_t len, char *resource, size_t rlen, char *mode,
                          size_t mlen, const char **err_desc);

/**
 * The stream name of a resource: its elements after the first, joined by '-' ("live/vip/room42" is
 * "vip-room42"), or its only element; checked. Returns 0 or -1 with *err_desc.
 */
int origin_stream_name(const char *resource, char *name, size_t nlen, const char **err_desc);

/**
 * A rule's prefix as it is matched against "live/NAME": "" or "live", or "live/..." with each '/'
 * after "live/" turned into '-'. Returns 0, or -1 with *err_desc for any other prefix.
 */
int origin_rule_prefix(const char *prefix, char *out, size_t outlen, const char **err_desc);

#endif
