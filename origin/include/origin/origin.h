/*
 * origin/origin.h: the Shortwave origin as a library. shortwave-origin's main.c parses flags and
 * the config file into an origin_config_t, creates the loop, calls origin_new() and runs the loop.
 *
 * The origin takes SRT publishers (origin_ingest), packages each stream into CMAF with hls/, keeps
 * a DVR window on disk under `data_dir`, serves LL-HLS and DASH over the sw/ HTTP server, exposes a
 * control API and Prometheus metrics, and registers live streams in Redis when configured.
 *
 * Threading: everything here runs on the loop's thread; the SRT and demux threads live inside
 * origin_ingest and talk to the loop through a uv_async_t.
 */
#ifndef ORIGIN_ORIGIN_H
#define ORIGIN_ORIGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "shorts/shorts.h"
#include "sw/conf.h"

enum {
    ORIGIN_OK = 0,
    ORIGIN_ERR_NOMEM = -1,
    ORIGIN_ERR_CONFIG = -2, /* a bad value; the error text names it */
    ORIGIN_ERR_LISTEN = -3, /* an address could not be bound */
    ORIGIN_ERR_IO = -4,     /* the data folder is not usable; an output cannot be written */
    ORIGIN_ERR_MEDIA = -5,  /* a media file cannot be opened, read or decoded */
};

typedef struct origin_rule_conf {
    char *prefix;
    char *passphrase;
    int64_t key_length;
} origin_rule_conf_t;

typedef struct origin_pull_conf {
    char *name;
    char *url;
} origin_pull_conf_t;

/* Every field is a config key; origin_conf_keys() documents them with their defaults. */
typedef struct origin_config {
    char *srt;        /* SRT listen address */
    char *http;       /* HTTP listen address */
    char *data;       /* DVR folder */
    char *redis;      /* redis://host:port[/db], or NULL */
    char *public_url; /* how edges reach this origin (announced in Redis) */
    char *api_token;  /* Bearer token for POST/DELETE under /api/, or NULL: loopback only */
    char *access_log; /* "off", "stderr" or a file */
    int log_level;

    int64_t srt_latency_ms;
    int srt_tsbpd;
    int64_t srt_stall_ms;
    int64_t srt_probe_ms;
    int64_t srt_max_publishers; /* 0: no limit */
    int64_t srt_max_per_source; /* 0: no limit */
    int srt_require_passphrase;
    char **srt_allow; /* prefixes of "live/NAME"; none: any */
    size_t srt_nallow;

    int64_t segment_ms;
    int64_t part_ms;
    int64_t dvr_ms;
    int64_t live_segments;
    int64_t memory_segments;

    int64_t http_max_connections;
    int64_t http_idle_ms;
    int64_t http_header_ms;
    int64_t http_notsent_lowat;

    int64_t redis_ttl_ms;

    origin_rule_conf_t *rules;
    size_t nrules;
    origin_pull_conf_t *pulls;
    size_t npulls;
} origin_config_t;

/** Fills `cfg` with the defaults. */
void origin_config_init(origin_config_t *cfg);
/** Frees what the config owns. */
void origin_config_dispose(origin_config_t *cfg);
/**
 * Checks what no single key can: api_token must be set when `http` is not a loopback address.
 * Returns 0, or ORIGIN_ERR_CONFIG with a sentence in err. origin_new() checks it too.
 */
int origin_config_check(const origin_config_t *cfg, char *err, size_t errlen);
/** The key table (for sw_conf_load, flags and the reference). */
const sw_conf_key_t *origin_conf_keys(void);

typedef struct origin origin_t;

/**
 * Starts the origin on `loop`: opens the data folder, binds SRT and HTTP, connects to Redis in the
 * background. Copies what it keeps of `cfg`. Returns 0, or an ORIGIN_ERR_* with a sentence in err.
 */
int origin_new(origin_t **out, uv_loop_t *loop, const origin_config_t *cfg, char *err,
               size_t errlen);

/**
 * Applies what can change while publishers stay (SIGHUP): log_level, api_token, access_log
 * (reopened, for logrotate), the [prefix]
 * rules, [srt] max_publishers, max_per_source, allow and require_passphrase, and the [pull]
 * sections. Other keys are left as they run (the daemon says which need a restart). Checks
 * before it changes anything: returns 0, or ORIGIN_ERR_CONFIG / ORIGIN_ERR_NOMEM with a sentence
 * in err and the running configuration untouched. Loop thread.
 */
int origin_reload(origin_t *o, const origin_config_t *cfg, char *err, size_t errlen);

/**
 * Stops taking publishers and requests, closes open segments, and calls `on_closed` once every
 * handle is closed; then origin_free() may be called.
 */
void origin_shutdown(origin_t *o, void (*on_closed)(void *data), void *data);
void origin_free(origin_t *o);

/* Offline analysis (`shortwave-origin --analyze`): origin_analyze(). */
typedef struct origin_analyze_opts {
    const char *ts_path;     /* the media: MPEG-TS, or any file libavformat reads */
    const char *events_path; /* room events, one JSON object a line; NULL: none (no moments) */
    const shorts_config_t *shorts; /* the detector's settings; NULL: shorts_config_init()'s */
    FILE *out;                     /* gets the moments: one JSON array */
    FILE *signals; /* NULL, or gets every signal fed to the detector as a JSON line */
} origin_analyze_opts_t;

/**
 * Runs the shorts/ detector over a recorded show, as the live origin would: reads the whole
 * events file first (src/origin_analyze.h has its format) and sorts it by time (stable), then
 * demuxes the media, decodes its first audio stream and measures its EBU R128 short-term loudness
 * (libebur128) every 100 ms of audio, takes every packet of its first video stream as one frame
 * (its size and keyframe flag; no video decoding), and feeds these and the events to the detector
 * in time order. Times are seconds with t = 0 at the first video packet's DTS (the first audio
 * packet's without video). Writes the moments to opts->out as one JSON array
 * ([{"start":s,"end":s,"score":x,"sku":"...","evidence":{...}}, ...], one moment a line), only
 * once the analysis succeeded. With opts->signals, writes each signal as it is fed, one JSON
 * object a line: {"signal":"start",...} first, then "loudness" (t, lufs: null for silence),
 * "video" (t, bytes, key) and "event" (t, type and the event's fields) lines.
 *
 * A bad line of the events file stops the analysis: a score computed from a file read in part
 * would look right and be wrong. Blocking; any thread; no loop needed. Returns 0, or, with a
 * sentence in err: ORIGIN_ERR_CONFIG (the events file cannot be read, or a line is bad: the
 * sentence names the file and the line), ORIGIN_ERR_MEDIA (the media cannot be opened, has
 * neither audio nor video, its audio has no decoder, or reading it failed), ORIGIN_ERR_IO (an
 * output could not be written) or ORIGIN_ERR_NOMEM.
 */
int origin_analyze(const origin_analyze_opts_t *opts, char *err, size_t errlen);

#endif
