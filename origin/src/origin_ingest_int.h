/*
 * origin_ingest_int.h (internal to the ingest files): the objects shared by origin_ingest.c (the
 * loop side), origin_srt.c (the SRT thread) and origin_demux.c (one thread per publisher).
 *
 * Ownership of a publisher: the SRT thread creates it, posts EV_PUBLISH and starts its demux
 * thread. From then on only the demux thread reads the socket (blocking, with a short receive
 * timeout); the SRT thread no longer watches it. The demux thread ends by recording a reason and
 * handing the publisher back to the SRT thread (in->close_list); the SRT thread closes the socket,
 * forgets the publisher and posts EV_UNPUBLISH as the publisher's last event. The loop joins the
 * (finished) demux thread, calls on_unpublish, releases the name and frees the publisher.
 *
 * Locks: in->mutex guards the event list, the close list and the publisher list; in->names_mutex
 * guards the set of live names (taken in the SRT handshake callback, which runs on an SRT
 * thread); pub->mutex guards the stop flag and the reason. Order: in->mutex before pub->mutex;
 * names_mutex is never held with another lock.
 */
#ifndef ORIGIN_INGEST_INT_H
#define ORIGIN_INGEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <srt/srt.h>

#include "origin_ingest.h"

#define ORIGIN__NAME_MAX     64
#define ORIGIN__RESOURCE_MAX 256
#define ORIGIN__REASON_MAX   160
/* SRTO_RCVTIMEO of a publisher's socket: how often a demux thread blocked in srt_recvmsg() looks
 * at its stop, stall and probe deadlines. */
#define ORIGIN__RCV_TIMEOUT_MS 100

struct origin_pub {
    origin_ingest_t *in;
    char name[ORIGIN__NAME_MAX + 1];
    char resource[ORIGIN__RESOURCE_MAX];
    char peer[64];
    int pull_index; /* index into in->pulls, or -1 for a listener publisher */
    /* Read by the demux thread only; closed by the SRT thread once the demux thread is done. */
    SRTSOCKET sock;
    int64_t publish_ms;

    /* Guarded by mutex. */
    pthread_mutex_t mutex;
    int stop;                        /* drop requested (API or shutdown) */
    char reason[ORIGIN__REASON_MAX]; /* the first reason recorded wins */

    /* Demux thread only while it runs; the loop reads them after joining it. */
    uint64_t bytes_in;
    uint64_t last_bytes_ns; /* monotonic time of the last bytes from the socket */

    /* Set before the demux thread starts. */
    pthread_t thread;
    int thread_started;

    /* Links, guarded by in->mutex. */
    struct origin_pub *next, *prev; /* in->pubs */
    struct origin_pub *close_next;  /* in->close_list */
};

enum { ORIGIN__EV_PUBLISH, ORIGIN__EV_TRACK, ORIGIN__EV_PACKET, ORIGIN__EV_UNPUBLISH };

typedef struct origin__event {
    struct origin__event *next;
    int type;
    origin_pub_t *pub;
    int kind;              /* EV_TRACK */
    hls_track_info_t info; /* EV_TRACK; extradata points into the allocation */
    origin_packet_t *pkt;  /* EV_PACKET */
} origin__event_t;

/* A live (or reserved, during a handshake) stream name. */
typedef struct origin__name {
    char name[ORIGIN__NAME_MAX + 1];
    SRTSOCKET sock;   /* the socket that reserved it */
    int live;         /* 0 while the handshake is in progress */
    int64_t since_ms; /* reservation time, to expire reservations of failed handshakes */
    char peer[64];
    char ip[64]; /* the peer's address without its port, for max_per_source */
    int pull;    /* a configured pull's: not counted against the limits */
} origin__name_t;

/* Who may publish: the rules, the allow list and the limits, in the form the handshake matches
 * (prefixes of "live/NAME", origin_rule_prefix()). Read under in->names_mutex. */
typedef struct origin__access {
    origin_srt_rule_t *rules;
    size_t nrules;
    char **allow;
    size_t nallow;
    char **pull_names; /* the configured pulls' names, which listener publishers may not take */
    size_t npull_names;
    int max_publishers, max_per_source, require_passphrase;
} origin__access_t;

typedef struct origin__pull {
    origin_srt_pull_t cfg;
    struct sockaddr_storage addr;
    int addrlen;
    char host[256];
    char streamid[512];
    char passphrase[80];
    int pbkeylen;
    int latency_ms;
    SRTSOCKET sock; /* connecting or connected, else SRT_INVALID_SOCK */
    int connected;
    int retired; /* removed by a reload: never tried again (its index stays valid) */
    int64_t next_try_ms;
} origin__pull_t;

struct origin_ingest {
    uv_loop_t *loop;
    uv_async_t async;
    origin_ingest_cbs_t cbs;
    void *data;

    /* Copied config. */
    char *listen;
    int latency_ms, stall_ms, probe_ms;
    int tsbpd;
    size_t queue_bytes;      /* unused since the demux threads read their sockets directly */
    origin__access_t access; /* guarded by names_mutex */
    origin__pull_t *pulls;   /* the SRT thread's (and the loop's before it starts, after it ends) */
    size_t npulls;
    origin__pull_t *new_pulls; /* a reload's pulls, guarded by `mutex`, applied by the SRT thread */
    size_t nnew_pulls;
    int new_pulls_ready;

    pthread_mutex_t mutex;
    pthread_cond_t cond; /* signalled on every posted event, for origin_ingest_free() */
    origin__event_t *ev_head, *ev_tail;
    origin_pub_t *close_list;
    origin_pub_t *pubs;
    size_t npubs;
    int shutting_down;

    pthread_mutex_t names_mutex;
    origin__name_t *names;
    size_t nnames, names_cap;
    atomic_ullong refused[ORIGIN_REFUSE__N]; /* handshakes refused, by reason */
    /* Recent refusals (origin_srt.c refuse()): a caller that retries at once, as
     * srt-live-transmit does several times a second, would fill the log with the same line. */
    pthread_mutex_t refuse_mutex;
    struct origin__refusal {
        char key[200]; /* address, code, streamid */
        int64_t since_ms;
        unsigned repeats;
    } refusals[16];
    atomic_ullong handoffs;   /* origin__post() calls, from any thread */
    uint64_t events, wakeups; /* the loop's: delivered events, async callbacks */

    /* SRT threads. */
    SRTSOCKET listener;
    pthread_t srt_thread, accept_thread;
    int srt_thread_started, accept_thread_started;
    pthread_cond_t srt_cond; /* with `mutex`: wakes srt_main for the close list or a stop */
    atomic_int srt_stop;
};

/* origin_ingest.c */
/* Appends `ev` to the loop's event list and wakes the loop. Takes ownership of `ev`. Any thread. */
void origin__post(origin_ingest_t *in, origin__event_t *ev);
/* Appends the events `head` to `tail` (linked by `next`, tail->next NULL), in their order, under
 * one lock, and wakes the loop once. Takes ownership of them. Any thread. */
void origin__post_list(origin_ingest_t *in, origin__event_t *head, origin__event_t *tail);
/* pthread_cond_timedwait() for at most `ms` from now (`mutex` held). */
int origin__cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, long ms);
void origin__pub_set_reason(origin_pub_t *pub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void origin__pub_free(origin_pub_t *pub);
/* Asks the publisher's demux thread to end (within its receive timeout); the first reason
 * recorded is the one logged. Any thread, with in->mutex held or not (pub->mutex is taken). */
void origin__pub_stop(origin_pub_t *pub, const char *reason);
/* Hands `pub` to the SRT thread (in->close_list), which closes its socket and posts its last
 * event, and wakes that thread. */
void origin__pub_close_later(origin_ingest_t *in, origin_pub_t *pub);

/* origin_ingest.c */
/* Copies `cfg`'s rules, allow list and limits into `a`, prefixes in their matching form. Returns 0,
 * or -1 with err filled. */
int origin__access_init(origin__access_t *a, const origin_ingest_config_t *cfg, char *err,
                        size_t errlen);
void origin__access_dispose(origin__access_t *a);
void origin__pulls_free(origin__pull_t *pulls, size_t n);

/* origin_srt.c */
int origin__srt_start(origin_ingest_t *in, char *err, size_t errlen);
void origin__srt_stop(origin_ingest_t *in);
void origin__names_release(origin_ingest_t *in, const char *name, SRTSOCKET sock);
/* Resolves a pull's URL into `pl` (loop thread). Returns 0, or -1 with err filled. */
int origin__pull_parse(origin__pull_t *pl, int default_latency, char *err, size_t errlen);

/* origin_demux.c: the demux thread's body; `arg` is the origin_pub_t. */
void *origin__demux_main(void *arg);

/* Routes libav's log lines into ours; called once, with srt_startup(). */
void origin__demux_global_init(void);

#endif
