/*
 * sw/alog.h: the access log of both daemons, one logfmt line per request:
 *
 *   time=2026-12-08T01:00:00.000Z peer=10.0.0.7:51234 proto=HTTP/2 method=GET
 *   path="/live/room42/v/7.m4s" status=200 bytes=412345 duration_ms=3 cache=HIT
 *
 * then `upstream_ms=N` when the request made an upstream fetch (the edge) and `aborted=1` when
 * the client went away before the response ended. Lines are written with one write(2) on an
 * O_APPEND descriptor, the way nginx writes its access log, so that a line is never split (each
 * thread may hold its own descriptor of the same file) and logrotate may move the file at any
 * time: reopen it (close, then open) on SIGHUP.
 */
#ifndef SW_ALOG_H
#define SW_ALOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sw_alog {
    int fd;    /* -1: off */
    int owned; /* fd is a file we opened (not stderr) */
} sw_alog_t;

/* One finished (or aborted) request. Strings may be NULL; the path and query are quoted. */
typedef struct sw_alog_rec {
    const char *peer, *method, *path, *query;
    const char *cache; /* the edge's x-cache, NULL elsewhere ("-") */
    int version;       /* 10, 11 or 20 */
    int status;        /* 0 if the client went away before an answer */
    int aborted;
    uint64_t bytes;      /* body bytes queued to the client */
    int64_t duration_ms; /* from the handler call to the end of the response */
    int64_t upstream_ms; /* time to the upstream's first byte; -1 when there was no fetch */
} sw_alog_rec_t;

/**
 * Opens the log named by `spec`: "off" (or NULL), "stderr", or a file opened for appending (made
 * 0640 if missing). Returns 0 or SW_ERR_IO with the reason in err[0..errlen).
 */
int sw_alog_open(sw_alog_t *l, const char *spec, char *err, size_t errlen);

/** Closes a log; an "off" or stderr log closes nothing. */
void sw_alog_close(sw_alog_t *l);

/** Writes one line; a failed or short write loses that line, never blocks the caller long. */
void sw_alog_write(const sw_alog_t *l, const sw_alog_rec_t *r);

#endif
