/*
 * origin_ingest_int.h (internal to the ingest files): the objects shared by origin_ingest.c (the
 * loop side), origin_srt.c (the SRT thread) and origin_demux.c (one thread per publisher).
 *
 * Ownership of a publisher: the SRT thread creates it, posts EV_PUBLISH and starts its demux
 * thread. The demux thread ends by recording a reason and handing the publisher back to the SRT
 * thread (in->close_list); the SRT thread closes the socket, forgets the publisher and posts
 * EV_UNPUBLISH as the publisher's last event. The loop joins the (finished) demux thread, calls
 * on_unpublish, releases the name and frees the publisher.
 *
 * Locks: in->mutex guards the event list, the close list and the publisher list; in->names_mutex
 * guards the set of live names (taken in the SRT handshake callback, which runs on an SRT
 * thread); pub->mutex guards the byte queue and the end flags. Order: in->mutex before pub->mutex;
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

/* One block of the byte queue; the SRT thread appends, the demux thread consumes. */
typedef struct origin__chunk {
    struct origin__chunk *next;
    size_t off, len; /* unread bytes are data[off..len) */
    uint64_t ns;     /* monotonic time of the last append */
    uint8_t data[];
} origin__chunk_t;

#define ORIGIN__CHUNK_CAP (32 * 1024)

struct origin_pub {
    origin_ingest_t *in;
    char name[ORIGIN__NAME_MAX + 1];
    char resource[ORIGIN__RESOURCE_MAX];
    char peer[64];
    int pull_index; /* index into in->pulls, or -1 for a listener publisher */
    SRTSOCKET sock; /* owned by the SRT thread until it posts EV_UNPUBLISH */
    int64_t publish_ms;

    /* Guarded by mutex. */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    origin__chunk_t *head, *tail;
    size_t queued;
    uint64_t bytes_in;
    uint64_t last_bytes_ns;              /* monotonic time of the last bytes from the socket */
    uint64_t taken_ns;                   /* arrival time of the newest bytes the demuxer has read */
    int eof;                             /* the socket is gone: no more bytes will come */
    int stop;                            /* drop requested (API or shutdown) */
    char reason[ORIGIN__REASON_MAX];     /* the first reason recorded wins */
    char eof_reason[ORIGIN__REASON_MAX]; /* why the socket ended; used once the queue is empty */

    /* Demux thread. */
    pthread_t thread;
    int thread_started;

    /* SRT thread only. */
    int in_epoll;

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
} origin__name_t;

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
    size_t queue_bytes;
    origin_srt_rule_t *rules;
    size_t nrules;
    origin__pull_t *pulls;
    size_t npulls;

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

    /* SRT thread. */
    SRTSOCKET listener;
    int eid;
    pthread_t srt_thread;
    int srt_thread_started;
    atomic_int srt_stop;
    origin_pub_t **live; /* publishers whose socket the SRT thread reads, SRT thread only */
    size_t nlive, live_cap;
};

/* origin_ingest.c */
void origin__post(origin_ingest_t *in, origin__event_t *ev);
void origin__pub_set_reason(origin_pub_t *pub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void origin__pub_free(origin_pub_t *pub);

/* origin_srt.c */
int origin__srt_start(origin_ingest_t *in, char *err, size_t errlen);
void origin__srt_stop(origin_ingest_t *in);
void origin__names_release(origin_ingest_t *in, const char *name, SRTSOCKET sock);

/* origin_demux.c: the demux thread's body; `arg` is the origin_pub_t. */
void *origin__demux_main(void *arg);

/* Routes libav's log lines into ours; called once, with srt_startup(). */
void origin__demux_global_init(void);

#endif
