/*
 * origin_srt.c: the SRT side of the ingest. Two threads: one sleeps in a blocking srt_accept() on
 * the listener; the other (srt_main) keeps house every WAIT_MS, or at once when a publisher ends:
 * it closes ended publishers, forgets failed handshakes, and connects the caller-mode pulls (their
 * sockets are non-blocking and their state is polled). Neither uses srt_epoll_uwait(): libsrt's
 * wait wakes every 10 ms whatever the timeout, a steady cost for an idle origin. A connected
 * publisher's socket is switched to blocking reads with a short timeout and handed to its demux
 * thread (origin_demux.c), which reads it directly, as ffmpeg's srt:// protocol does: queueing
 * every message through another thread cost two thread hand-offs per 1316-byte message.
 *
 * Timestamp-based packet delivery (TSBPD, `[srt] tsbpd`) is on by default, as in libsrt. It paces
 * delivery by sending time, which a remuxer does not need, and costs a libsrt thread per
 * publisher; but with it a packet that cannot be recovered within the latency is dropped (by the
 * sender too), which bounds what an overloaded link or origin retransmits. Off, libsrt delivers
 * packets in order as soon as they are complete and retransmits every lost one however late:
 * cheaper per packet and lossless on a sound link (test_origin_loss runs both through a relay
 * that drops 5 % of the data packets), but with no bound on retransmission: 150 publishers on an
 * overloaded machine went into a retransmission spiral and lost their connections.
 *
 * Access control happens in the handshake (srt_listen_callback(), called on an SRT thread): the
 * streamid names the resource, the first matching rule sets the passphrase on the new socket, and
 * the stream name is reserved in the set of live names so that a second publisher is refused
 * with SRT_REJX_CONFLICT. A reservation whose handshake then fails (a wrong passphrase is refused
 * by SRT after our callback) is released as soon as libsrt has dropped its socket, so that the
 * publisher's next attempt with the right one gets in at once; one whose handshake neither
 * completes nor fails expires after RESERVE_MS.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <srt/access_control.h>

#include "sw/log.h"
#include "sw/sw.h"

#include "origin_ingest_int.h"

#define RESERVE_MS 3000 /* a handshake reservation not accepted by then is stale */
#define RETRY_MS   3000 /* pull reconnect interval */
#define WAIT_MS    100  /* housekeeping interval of srt_main */

static pthread_once_t startup_once = PTHREAD_ONCE_INIT;
static int startup_rv;

/*
 * libsrt prints its own lines to stderr ("RCV-DROPPED 3 packet(s) ... delayed" when a publisher's
 * link loses packets past the latency), whatever our log level. They come here instead: its errors
 * as our warnings (they concern one connection, not the origin), its warnings at debug level (the
 * outcomes that matter, drops and stalls, are logged by us with the stream's name). libsrt formats
 * a line before handing it over, so below debug level it is told to skip its warnings altogether:
 * under heavy loss that is one RCV-DROPPED line per gap and stream. `area` is libsrt's function
 * name, which the message repeats.
 */
static void on_srt_log(void *opaque, int level, const char *file, int line, const char *area,
                       const char *message)
{
    (void)opaque;
    (void)file;
    (void)line;
    (void)area;
    int ours = level <= LOG_ERR ? SW_LOG_WARN : SW_LOG_DEBUG;
    if (!sw_log_enabled(ours) || message == NULL)
        return;
    /* libsrt 1.5.1 says this whenever a blocking read times out with nothing to read, which our
     * demux threads do every ORIGIN__RCV_TIMEOUT_MS while a publisher is silent. */
    if (strstr(message, "nothing to read") != NULL)
        return;
    /* And this when origin__srt_stop() closes the listener under the blocking srt_accept(). */
    if (strstr(message, "listener socket") != NULL && strstr(message, "already closed") != NULL)
        return;
    while (*message == ':' || *message == ' ')
        message++;
    size_t n = strlen(message);
    while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
        n--;
    sw_log(ours, "libsrt", "%.*s", (int)n, message);
}

/* Runs once, before the first ingest starts: the log level is set by then (origin/main.c). */
static void do_startup(void)
{
    startup_rv = srt_startup();
    srt_setloghandler(NULL, on_srt_log);
    srt_setlogflags(SRT_LOGF_DISABLE_TIME | SRT_LOGF_DISABLE_THREADNAME |
                    SRT_LOGF_DISABLE_SEVERITY | SRT_LOGF_DISABLE_EOL);
    srt_setloglevel(sw_log_enabled(SW_LOG_DEBUG) ? LOG_WARNING : LOG_ERR);
    origin__demux_global_init();
}

static const char *srt_err(void)
{
    return srt_getlasterror_str();
}

static const char *rejx_name(int code)
{
    switch (code) {
    case SRT_REJX_BAD_REQUEST:
        return "SRT_REJX_BAD_REQUEST";
    case SRT_REJX_BAD_MODE:
        return "SRT_REJX_BAD_MODE";
    case SRT_REJX_CONFLICT:
        return "SRT_REJX_CONFLICT";
    case SRT_REJX_DOWN:
        return "SRT_REJX_DOWN";
    case SRT_REJX_FORBIDDEN:
        return "SRT_REJX_FORBIDDEN";
    case SRT_REJX_UNAUTHORIZED:
        return "SRT_REJX_UNAUTHORIZED";
    case SRT_REJX_OVERLOAD:
        return "SRT_REJX_OVERLOAD";
    default:
        return "SRT_REJX_?";
    }
}

/* ---- live names ---------------------------------------------------------------------------- */

/*
 * Whether the handshake of a reserved socket failed. libsrt maps the new socket before it calls
 * on_listen() and drops it when the rest of the handshake fails (a bad or missing passphrase);
 * until then it is SRTS_INIT, and SRTS_CONNECTED once it waits for srt_accept(). Safe to call
 * from on_listen(), which calls srt_setsockflag() on its own socket the same way.
 */
static int handshake_failed(SRTSOCKET s)
{
    SRT_SOCKSTATUS st = srt_getsockstate(s);
    return st == SRTS_BROKEN || st == SRTS_CLOSING || st == SRTS_CLOSED || st == SRTS_NONEXIST;
}

/* Whether a reservation no longer holds its name: a handshake that failed or never completed. */
static int name_stale(const origin__name_t *e, int64_t now)
{
    return !e->live && (now - e->since_ms > RESERVE_MS || handshake_failed(e->sock));
}

/* The address part of "ip:port" or "[ip6]:port". */
static void peer_ip(const char *peer, char *ip, size_t len)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);
    snprintf(ip, len, "%.*s", (int)n, peer);
}

/*
 * Reserves `name` for `sock` (names_mutex held). `limited` applies max_publishers and
 * max_per_source and counts the name against them (a listener's publisher); pulls are the
 * operator's own, bounded by the config, and neither count nor are refused. Returns -1, or an
 * ORIGIN_REFUSE_* with `why` filled.
 */
static int names_reserve_locked(origin_ingest_t *in, const char *name, SRTSOCKET sock,
                                const char *peer, int live, int limited, char *why, size_t whylen)
{
    const origin__access_t *a = &in->access;
    int64_t now = sw_now_ms();
    origin__name_t *e = NULL;
    char ip[64];
    int total = 0, same = 0;

    peer_ip(peer, ip, sizeof(ip));
    for (size_t i = 0; i < in->nnames; i++) {
        origin__name_t *n = &in->names[i];
        int stale = name_stale(n, now);
        if (strcmp(n->name, name) == 0) {
            if (!stale) {
                snprintf(why, whylen, "stream %s is already publishing from %s", name, n->peer);
                return ORIGIN_REFUSE_CONFLICT;
            }
            e = n; /* a handshake that failed or never completed: take its place */
        } else if (!stale && !n->pull) {
            total++;
            same += strcmp(n->ip, ip) == 0;
        }
    }
    if (limited && a->max_publishers > 0 && total >= a->max_publishers) {
        snprintf(why, whylen, "max_publishers (%d) reached", a->max_publishers);
        return ORIGIN_REFUSE_OVERLOAD;
    }
    if (limited && a->max_per_source > 0 && same >= a->max_per_source) {
        snprintf(why, whylen, "max_per_source (%d) reached for %s", a->max_per_source, ip);
        return ORIGIN_REFUSE_OVERLOAD;
    }
    if (e == NULL) {
        if (in->nnames == in->names_cap) {
            size_t cap = in->names_cap ? in->names_cap * 2 : 64;
            origin__name_t *n = realloc(in->names, cap * sizeof(*n));
            if (n == NULL) {
                snprintf(why, whylen, "out of memory");
                return ORIGIN_REFUSE_OVERLOAD;
            }
            in->names = n;
            in->names_cap = cap;
        }
        e = &in->names[in->nnames++];
        snprintf(e->name, sizeof(e->name), "%s", name);
    }
    snprintf(e->peer, sizeof(e->peer), "%s", peer);
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    e->sock = sock;
    e->live = live;
    e->pull = !limited;
    e->since_ms = now;
    return -1;
}

/* The handshake of `sock` completed: its reservation becomes live. Returns 0 or -1. */
static int names_confirm(origin_ingest_t *in, const char *name, SRTSOCKET sock)
{
    int rv = -1;

    pthread_mutex_lock(&in->names_mutex);
    for (size_t i = 0; i < in->nnames; i++) {
        if (in->names[i].sock == sock && strcmp(in->names[i].name, name) == 0) {
            in->names[i].live = 1;
            rv = 0;
            break;
        }
    }
    pthread_mutex_unlock(&in->names_mutex);
    return rv;
}

void origin__names_release(origin_ingest_t *in, const char *name, SRTSOCKET sock)
{
    pthread_mutex_lock(&in->names_mutex);
    for (size_t i = 0; i < in->nnames; i++) {
        if (in->names[i].sock == sock && strcmp(in->names[i].name, name) == 0) {
            in->names[i] = in->names[--in->nnames];
            break;
        }
    }
    pthread_mutex_unlock(&in->names_mutex);
}

/* Logs and forgets the reservations of handshakes that failed or never completed. */
static void names_sweep(origin_ingest_t *in)
{
    int64_t now = sw_now_ms();

    pthread_mutex_lock(&in->names_mutex);
    for (size_t i = 0; i < in->nnames;) {
        origin__name_t *e = &in->names[i];
        if (name_stale(e, now)) {
            sw_log(SW_LOG_WARN, "srt",
                   "refused %s for %s: handshake did not complete (SRT rejected it, e.g. wrong "
                   "or missing passphrase)",
                   e->peer, e->name);
            atomic_fetch_add(&in->refused[ORIGIN_REFUSE_HANDSHAKE], 1);
            *e = in->names[--in->nnames];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&in->names_mutex);
}

/* ---- handshake ------------------------------------------------------------------------------ */

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Decides whether `name` may publish from `peer` and reserves it (a listener's handshake). On
 * success fills the passphrase (empty for none) and key length to set on the socket and returns
 * -1; otherwise returns an ORIGIN_REFUSE_* with `why` filled. Rules and the allow list match
 * "live/NAME" (origin_ingest.h), so every resource that names one stream meets the same ones.
 */
static int admit(origin_ingest_t *in, const char *name, SRTSOCKET ns, const char *peer, char *pass,
                 size_t passlen, int *pbkeylen, char *why, size_t whylen)
{
    char canon[ORIGIN__NAME_MAX + 8];
    int rv = -1;

    snprintf(canon, sizeof(canon), "live/%.64s", name);
    pthread_mutex_lock(&in->names_mutex);
    const origin__access_t *a = &in->access;
    const origin_srt_rule_t *rule = NULL;
    size_t i;
    for (i = 0; i < a->npull_names; i++) {
        if (strcmp(a->pull_names[i], name) == 0) {
            snprintf(why, whylen, "stream %s is published by the configured pull", name);
            rv = ORIGIN_REFUSE_FORBIDDEN;
            goto out;
        }
    }
    for (i = 0; i < a->nallow && !has_prefix(canon, a->allow[i]); i++)
        ;
    if (a->nallow > 0 && i == a->nallow) {
        snprintf(why, whylen, "%s is outside the allow list", canon);
        rv = ORIGIN_REFUSE_FORBIDDEN;
        goto out;
    }
    for (i = 0; i < a->nrules && rule == NULL; i++)
        if (has_prefix(canon, a->rules[i].prefix))
            rule = &a->rules[i];
    if (a->require_passphrase && (rule == NULL || rule->passphrase[0] == '\0')) {
        snprintf(why, whylen, "no [prefix] with a passphrase covers %s (require_passphrase)",
                 canon);
        rv = ORIGIN_REFUSE_UNAUTHORIZED;
        goto out;
    }
    snprintf(pass, passlen, "%s", rule != NULL ? rule->passphrase : "");
    *pbkeylen = rule != NULL ? rule->pbkeylen : 0;
    rv = names_reserve_locked(in, name, ns, peer, 0, 1, why, whylen);
out:
    pthread_mutex_unlock(&in->names_mutex);
    return rv;
}

static int refuse(origin_ingest_t *in, SRTSOCKET ns, int reason, const char *peer, const char *sid,
                  const char *why)
{
    static const int codes[ORIGIN_REFUSE__N] = {
        [ORIGIN_REFUSE_BAD_REQUEST] = SRT_REJX_BAD_REQUEST,
        [ORIGIN_REFUSE_BAD_MODE] = SRT_REJX_BAD_MODE,
        [ORIGIN_REFUSE_CONFLICT] = SRT_REJX_CONFLICT,
        [ORIGIN_REFUSE_FORBIDDEN] = SRT_REJX_FORBIDDEN,
        [ORIGIN_REFUSE_UNAUTHORIZED] = SRT_REJX_UNAUTHORIZED,
        [ORIGIN_REFUSE_OVERLOAD] = SRT_REJX_OVERLOAD,
        [ORIGIN_REFUSE_DOWN] = SRT_REJX_DOWN,
        [ORIGIN_REFUSE_HANDSHAKE] = SRT_REJX_BAD_REQUEST,
    };
    int code = codes[reason];
    char ip[64], line[200];

    atomic_fetch_add(&in->refused[reason], 1);
    srt_setrejectreason(ns, code);
    /* The same refusal of the same address again within 10 s of its last line is counted, not
     * logged: the next line for it says how many there were. Sixteen such refusals are
     * remembered, the oldest forgotten first. */
    peer_ip(peer, ip, sizeof(ip));
    snprintf(line, sizeof(line), "%s %d %.100s", ip, code, sid);
    int64_t now = sw_now_ms();
    unsigned repeats = 0;
    int repeat = 0;
    pthread_mutex_lock(&in->refuse_mutex);
    struct origin__refusal *slot = &in->refusals[0];
    for (size_t i = 0; i < SW_ARRAY_SIZE(in->refusals); i++) {
        struct origin__refusal *r = &in->refusals[i];
        if (strcmp(r->key, line) == 0) {
            slot = r;
            break;
        }
        if (r->since_ms < slot->since_ms)
            slot = r;
    }
    if (strcmp(slot->key, line) == 0 && now - slot->since_ms < 10000) {
        slot->repeats++;
        repeat = 1;
    } else {
        repeats = strcmp(slot->key, line) == 0 ? slot->repeats : 0;
        snprintf(slot->key, sizeof(slot->key), "%s", line);
        slot->since_ms = now;
        slot->repeats = 0;
    }
    pthread_mutex_unlock(&in->refuse_mutex);
    if (repeat)
        return -1;
    if (repeats > 0)
        sw_log(SW_LOG_WARN, "srt", "refused %s streamid \"%.100s\" %u more times in 10 s", peer,
               sid, repeats);
    sw_log(SW_LOG_WARN, "srt", "refused %s streamid \"%.100s\": %s (%d) %s", peer, sid,
           rejx_name(code), code, why);
    return -1;
}

static int on_listen(void *opaq, SRTSOCKET ns, int hsversion, const struct sockaddr *peeraddr,
                     const char *streamid)
{
    origin_ingest_t *in = opaq;
    char peer[64], resource[ORIGIN__RESOURCE_MAX], mode[16], name[ORIGIN__NAME_MAX + 1];
    char why[200], pass[80];
    const char *err_desc = NULL;
    const char *sid = streamid != NULL ? streamid : "";
    int pbkeylen = 0, reason;

    sw_addr_format(peeraddr, peer, sizeof(peer));
    pthread_mutex_lock(&in->mutex);
    int down = in->shutting_down;
    pthread_mutex_unlock(&in->mutex);
    if (down)
        return refuse(in, ns, ORIGIN_REFUSE_DOWN, peer, sid, "origin shutting down");
    if (hsversion < 5)
        return refuse(in, ns, ORIGIN_REFUSE_BAD_REQUEST, peer, sid,
                      "HSv4 caller cannot send a streamid");
    if (origin_streamid_parse(sid, strlen(sid), resource, sizeof(resource), mode, sizeof(mode),
                              &err_desc) != 0 ||
        origin_stream_name(resource, name, sizeof(name), &err_desc) != 0)
        return refuse(in, ns, ORIGIN_REFUSE_BAD_REQUEST, peer, sid, err_desc);
    if (strcmp(mode, "publish") != 0) {
        snprintf(why, sizeof(why), "mode \"%s\" not supported (publish only)", mode);
        return refuse(in, ns, ORIGIN_REFUSE_BAD_MODE, peer, sid, why);
    }
    if ((reason = admit(in, name, ns, peer, pass, sizeof(pass), &pbkeylen, why, sizeof(why))) >= 0)
        return refuse(in, ns, reason, peer, sid, why);
    if (pass[0] != '\0') {
        if (srt_setsockflag(ns, SRTO_PASSPHRASE, pass, (int)strlen(pass)) != 0) {
            origin__names_release(in, name, ns);
            return refuse(in, ns, ORIGIN_REFUSE_BAD_REQUEST, peer, sid, srt_err());
        }
        if (pbkeylen != 0)
            srt_setsockflag(ns, SRTO_PBKEYLEN, &pbkeylen, sizeof(pbkeylen));
    }
    return 0;
}

/* ---- publishers on the SRT thread ------------------------------------------------------------ */

/* Creates a publisher for a connected socket: posts EV_PUBLISH, then starts its demux thread.
 * Returns 0, or -1 when the ingest is shutting down or out of memory (the caller closes). */
static int pub_start(origin_ingest_t *in, SRTSOCKET s, const char *name, const char *resource,
                     const char *peer, int pull_index)
{
    origin_pub_t *pub;
    origin__event_t *ev;

    if ((pub = calloc(1, sizeof(*pub))) == NULL)
        return -1;
    if ((ev = calloc(1, sizeof(*ev))) == NULL) {
        free(pub);
        return -1;
    }
    pub->in = in;
    snprintf(pub->name, sizeof(pub->name), "%s", name);
    snprintf(pub->resource, sizeof(pub->resource), "%s", resource);
    snprintf(pub->peer, sizeof(pub->peer), "%s", peer);
    pub->pull_index = pull_index;
    pub->sock = s;
    pub->publish_ms = sw_now_ms();
    pub->last_bytes_ns = sw_mono_ns();
    pthread_mutex_init(&pub->mutex, NULL);

    pthread_mutex_lock(&in->mutex);
    if (in->shutting_down) {
        pthread_mutex_unlock(&in->mutex);
        free(ev);
        origin__pub_free(pub);
        return -1;
    }
    pub->next = in->pubs;
    if (in->pubs != NULL)
        in->pubs->prev = pub;
    in->pubs = pub;
    in->npubs++;
    pthread_mutex_unlock(&in->mutex);

    /* From here on the demux thread reads the socket: blocking, so that it sleeps in libsrt
     * until a message is ready, but never longer than the timeout, so that it checks its stop,
     * stall and probe deadlines between reads. */
    int yes = 1, timeo = ORIGIN__RCV_TIMEOUT_MS;
    srt_setsockflag(s, SRTO_RCVSYN, &yes, sizeof(yes));
    srt_setsockflag(s, SRTO_RCVTIMEO, &timeo, sizeof(timeo));

    int latency = 0, len = sizeof(latency);
    srt_getsockflag(s, SRTO_RCVLATENCY, &latency, &len);
    sw_log(SW_LOG_INFO, "srt", "publish %s from %s (resource %s, %s, latency %d ms)", name, peer,
           resource, pull_index >= 0 ? "pull" : "listener", latency);
    ev->type = ORIGIN__EV_PUBLISH;
    ev->pub = pub;
    origin__post(in, ev);

    /* Under pub->mutex: the demux thread takes it (to check its deadlines, to record why it
     * ended) before it can hand `pub` back for freeing, so these writes come first even when the
     * thread ends at once and srt_main, another thread, closes it. */
    pthread_mutex_lock(&pub->mutex);
    int rc = pthread_create(&pub->thread, NULL, origin__demux_main, pub);
    pub->thread_started = rc == 0;
    pthread_mutex_unlock(&pub->mutex);
    if (rc != 0) {
        origin__pub_set_reason(pub, "could not start a demux thread");
        origin__pub_close_later(in, pub);
    }
    return 0;
}

/* The demux threads hand their publishers back here once they have ended. */
static void process_close_list(origin_ingest_t *in)
{
    pthread_mutex_lock(&in->mutex);
    origin_pub_t *pub = in->close_list;
    in->close_list = NULL;
    pthread_mutex_unlock(&in->mutex);

    while (pub != NULL) {
        origin_pub_t *next = pub->close_next;
        origin__event_t *ev = calloc(1, sizeof(*ev));
        srt_close(pub->sock);
        if (pub->pull_index >= 0) {
            origin__pull_t *pl = &in->pulls[pub->pull_index];
            pl->sock = SRT_INVALID_SOCK;
            pl->connected = 0;
            pl->next_try_ms = sw_now_ms() + RETRY_MS;
        }
        if (ev == NULL) {
            /* Retry on the next round rather than lose the publisher's last event. */
            origin__pub_close_later(in, pub);
        } else {
            ev->type = ORIGIN__EV_UNPUBLISH;
            ev->pub = pub;
            origin__post(in, ev);
        }
        pub = next;
    }
}

/* Waits for the next publisher whose handshake completed and starts it. Returns -1 when the
 * listener fails (closed by origin__srt_stop()). */
static int accept_one(origin_ingest_t *in)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    SRTSOCKET s = srt_accept(in->listener, (struct sockaddr *)&ss, &sslen);
    if (s == SRT_INVALID_SOCK)
        return -1;

    char peer[64], sid[513], resource[ORIGIN__RESOURCE_MAX], mode[16];
    char name[ORIGIN__NAME_MAX + 1];
    int sidlen = sizeof(sid) - 1;
    sw_addr_format(&ss, peer, sizeof(peer));
    if (srt_getsockflag(s, SRTO_STREAMID, sid, &sidlen) != 0)
        sidlen = 0;
    sid[sidlen] = '\0';
    /* Parsed and checked in on_listen() already; this only recovers the name. */
    if (origin_streamid_parse(sid, (size_t)sidlen, resource, sizeof(resource), mode, sizeof(mode),
                              NULL) != 0 ||
        origin_stream_name(resource, name, sizeof(name), NULL) != 0) {
        srt_close(s);
        return 0;
    }
    if (names_confirm(in, name, s) != 0) {
        sw_log(SW_LOG_WARN, "srt", "refused %s for %s: its reservation expired", peer, name);
        srt_close(s);
        return 0;
    }
    if (pub_start(in, s, name, resource, peer, -1) != 0) {
        origin__names_release(in, name, s);
        srt_close(s);
    }
    return 0;
}

/* ---- caller-mode pulls ----------------------------------------------------------------------- */

static void pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < outlen; i++) {
        unsigned int v;
        if (s[i] == '%' && i + 2 < len && sscanf(s + i + 1, "%2x", &v) == 1) {
            out[j++] = (char)v;
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
}

/* Parses "srt://host:port?streamid=...&passphrase=...&latency=MS&pbkeylen=N" and resolves the host
 * (once, at startup, on the loop thread). */
int origin__pull_parse(origin__pull_t *pl, int default_latency, char *err, size_t errlen)
{
    const char *u = pl->cfg.url;
    char port[16];

    if (strncmp(u, "srt://", 6) != 0) {
        snprintf(err, errlen, "pull %s: url must start with srt://", pl->cfg.name);
        return -1;
    }
    u += 6;
    const char *q = strchr(u, '?');
    size_t hp = q != NULL ? (size_t)(q - u) : strlen(u);
    const char *colon = memrchr(u, ':', hp);
    if (colon == NULL || (size_t)(colon - u) >= sizeof(pl->host) ||
        hp - (size_t)(colon - u) - 1 >= sizeof(port) || colon == u) {
        snprintf(err, errlen, "pull %s: url needs host:port", pl->cfg.name);
        return -1;
    }
    memcpy(pl->host, u, (size_t)(colon - u));
    pl->host[colon - u] = '\0';
    memcpy(port, colon + 1, hp - (size_t)(colon - u) - 1);
    port[hp - (size_t)(colon - u) - 1] = '\0';
    pl->latency_ms = default_latency;
    while (q != NULL) {
        const char *k = q + 1, *amp = strchr(k, '&');
        size_t kl = amp != NULL ? (size_t)(amp - k) : strlen(k);
        const char *eq = memchr(k, '=', kl);
        if (eq != NULL) {
            size_t nlen = (size_t)(eq - k), vlen = kl - nlen - 1;
            char val[512];
            pct_decode(eq + 1, vlen, val, sizeof(val));
            if (nlen == 8 && strncmp(k, "streamid", 8) == 0)
                snprintf(pl->streamid, sizeof(pl->streamid), "%s", val);
            else if (nlen == 10 && strncmp(k, "passphrase", 10) == 0)
                snprintf(pl->passphrase, sizeof(pl->passphrase), "%.79s", val);
            else if (nlen == 7 && strncmp(k, "latency", 7) == 0) {
                /* Milliseconds, as srt-live-transmit's URIs say it (ffmpeg's are microseconds:
                 * 120000 there would be two minutes here, so it is refused). */
                char *end;
                long v = strtol(val, &end, 10);
                if (*val == '\0' || *end != '\0' || v < 20 || v > 8000) {
                    snprintf(err, errlen, "pull %s: latency=%s: expected milliseconds, 20 to 8000",
                             pl->cfg.name, val);
                    return -1;
                }
                pl->latency_ms = (int)v;
            } else if (nlen == 8 && strncmp(k, "pbkeylen", 8) == 0) {
                pl->pbkeylen = atoi(val);
                if (pl->pbkeylen != 0 && pl->pbkeylen != 16 && pl->pbkeylen != 24 &&
                    pl->pbkeylen != 32) {
                    snprintf(err, errlen, "pull %s: pbkeylen=%s: expected 16, 24 or 32",
                             pl->cfg.name, val);
                    return -1;
                }
            } else {
                snprintf(err, errlen,
                         "pull %s: unknown parameter \"%.*s\" (streamid, passphrase, latency, "
                         "pbkeylen)",
                         pl->cfg.name, (int)nlen, k);
                return -1;
            }
        }
        q = amp;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *res;
    int rv = getaddrinfo(pl->host, port, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "pull %s: cannot resolve %s: %s", pl->cfg.name, pl->host,
                 gai_strerror(rv));
        return -1;
    }
    memcpy(&pl->addr, res->ai_addr, res->ai_addrlen);
    pl->addrlen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void pull_fail(origin_ingest_t *in, origin__pull_t *pl, const char *why)
{
    sw_log(SW_LOG_WARN, "srt", "pull %s from %s: %s; retrying in %d s", pl->cfg.name, pl->cfg.url,
           why, RETRY_MS / 1000);
    origin__names_release(in, pl->cfg.name, pl->sock);
    srt_close(pl->sock);
    pl->sock = SRT_INVALID_SOCK;
    pl->next_try_ms = sw_now_ms() + RETRY_MS;
}

static void pulls_tick(origin_ingest_t *in)
{
    int64_t now = sw_now_ms();

    for (size_t i = 0; i < in->npulls; i++) {
        origin__pull_t *pl = &in->pulls[i];
        char why[200];
        if (pl->retired || pl->sock != SRT_INVALID_SOCK || now < pl->next_try_ms)
            continue;
        pl->next_try_ms = now + RETRY_MS;
        SRTSOCKET s = srt_create_socket();
        if (s == SRT_INVALID_SOCK)
            continue;
        pthread_mutex_lock(&in->names_mutex);
        int reason = names_reserve_locked(in, pl->cfg.name, s, pl->host, 1, 0, why, sizeof(why));
        pthread_mutex_unlock(&in->names_mutex);
        if (reason >= 0) {
            srt_close(s); /* still live (from a listener publisher, or not yet released) */
            continue;
        }
        int no = 0;
        srt_setsockflag(s, SRTO_RCVSYN, &no, sizeof(no));
        srt_setsockflag(s, SRTO_TSBPDMODE, &in->tsbpd, sizeof(in->tsbpd));
        srt_setsockflag(s, SRTO_LATENCY, &pl->latency_ms, sizeof(pl->latency_ms));
        if (pl->streamid[0] != '\0')
            srt_setsockflag(s, SRTO_STREAMID, pl->streamid, (int)strlen(pl->streamid));
        if (pl->passphrase[0] != '\0')
            srt_setsockflag(s, SRTO_PASSPHRASE, pl->passphrase, (int)strlen(pl->passphrase));
        if (pl->pbkeylen != 0)
            srt_setsockflag(s, SRTO_PBKEYLEN, &pl->pbkeylen, sizeof(pl->pbkeylen));
        pl->sock = s;
        pl->connected = 0;
        if (srt_connect(s, (struct sockaddr *)&pl->addr, pl->addrlen) == SRT_ERROR)
            pull_fail(in, pl, srt_err());
    }
}

static void pull_event(origin_ingest_t *in, origin__pull_t *pl)
{
    SRT_SOCKSTATUS st = srt_getsockstate(pl->sock);

    if (st == SRTS_CONNECTING)
        return;
    if (st != SRTS_CONNECTED) {
        pull_fail(in, pl, srt_rejectreason_str(srt_getrejectreason(pl->sock)));
        return;
    }
    /* Its demux thread reads it from now on. */
    pl->connected = 1;
    char peer[64];
    sw_addr_format(&pl->addr, peer, sizeof(peer));
    if (pub_start(in, pl->sock, pl->cfg.name, pl->cfg.name, peer, (int)(pl - in->pulls)) != 0) {
        pl->connected = 0;
        pull_fail(in, pl, "ingest shutting down");
    }
}

/* Stops pull `i`, removed or changed by a reload: a connecting socket is closed, a live publisher
 * dropped (its close, in process_close_list(), leaves the pull alone since it is retired). */
static void pull_retire(origin_ingest_t *in, size_t i)
{
    origin__pull_t *pl = &in->pulls[i];

    pl->retired = 1;
    sw_log(SW_LOG_INFO, "srt", "reload: pull %s (%s) removed", pl->cfg.name, pl->cfg.url);
    if (pl->sock == SRT_INVALID_SOCK)
        return;
    if (!pl->connected) {
        origin__names_release(in, pl->cfg.name, pl->sock);
        srt_close(pl->sock);
        pl->sock = SRT_INVALID_SOCK;
        return;
    }
    pthread_mutex_lock(&in->mutex);
    for (origin_pub_t *p = in->pubs; p != NULL; p = p->next)
        if (p->pull_index == (int)i)
            origin__pub_stop(p, "pull removed by a reload");
    pthread_mutex_unlock(&in->mutex);
}

/* Applies a reload's pulls (origin_ingest_reload()): an unchanged pull (same name and URL) keeps
 * running, the others are retired, the new ones appended. Indexes never move: publishers hold
 * them. */
static void pulls_apply(origin_ingest_t *in)
{
    pthread_mutex_lock(&in->mutex);
    origin__pull_t *next = in->new_pulls;
    size_t n = in->nnew_pulls;
    int ready = in->new_pulls_ready;
    in->new_pulls = NULL;
    in->nnew_pulls = 0;
    in->new_pulls_ready = 0;
    pthread_mutex_unlock(&in->mutex);
    if (!ready)
        return;

    unsigned char *kept = calloc(n ? n : 1, 1);
    if (kept == NULL) {
        sw_log(SW_LOG_ERROR, "srt", "reload: out of memory; the pulls stay as they were");
        origin__pulls_free(next, n);
        return;
    }
    size_t add = 0;
    for (size_t i = 0; i < in->npulls; i++) {
        origin__pull_t *pl = &in->pulls[i];
        size_t j;
        if (pl->retired)
            continue;
        for (j = 0; j < n; j++)
            if (!kept[j] && strcmp(next[j].cfg.name, pl->cfg.name) == 0 &&
                strcmp(next[j].cfg.url, pl->cfg.url) == 0)
                break;
        if (j < n)
            kept[j] = 1;
        else
            pull_retire(in, i);
    }
    for (size_t j = 0; j < n; j++)
        add += !kept[j];
    origin__pull_t *grown = add ? realloc(in->pulls, (in->npulls + add) * sizeof(*grown)) : NULL;
    if (add && grown == NULL) {
        sw_log(SW_LOG_ERROR, "srt", "reload: out of memory; new pulls not started");
    } else if (add) {
        in->pulls = grown;
        for (size_t j = 0; j < n; j++) {
            if (kept[j])
                continue;
            in->pulls[in->npulls] = next[j];
            sw_log(SW_LOG_INFO, "srt", "reload: pull %s (%s) added", next[j].cfg.name,
                   next[j].cfg.url);
            memset(&next[j], 0, sizeof(next[j])); /* moved */
            in->npulls++;
        }
    }
    origin__pulls_free(next, n);
    free(kept);
}

/* ---- the threads ----------------------------------------------------------------------------- */

static void *accept_main(void *arg)
{
    origin_ingest_t *in = arg;

    pthread_setname_np(pthread_self(), "sw-srt-accept");

    while (!atomic_load(&in->srt_stop)) {
        if (accept_one(in) != 0 && !atomic_load(&in->srt_stop)) {
            sw_log(SW_LOG_ERROR, "srt", "accept on %s: %s", in->listen, srt_err());
            struct timespec t = {0, WAIT_MS * 1000000L};
            nanosleep(&t, NULL); /* never a busy loop on a listener that keeps failing */
        }
    }
    return NULL;
}

static void *srt_main(void *arg)
{
    origin_ingest_t *in = arg;
    uint64_t last_tick = 0;

    pthread_setname_np(pthread_self(), "sw-srt");

    while (!atomic_load(&in->srt_stop)) {
        pthread_mutex_lock(&in->mutex);
        if (in->close_list == NULL && !atomic_load(&in->srt_stop))
            origin__cond_wait_ms(&in->srt_cond, &in->mutex, WAIT_MS);
        pthread_mutex_unlock(&in->mutex);
        process_close_list(in);
        pulls_apply(in);
        for (size_t i = 0; i < in->npulls; i++)
            if (in->pulls[i].sock != SRT_INVALID_SOCK && !in->pulls[i].connected)
                pull_event(in, &in->pulls[i]);
        /* Every round (at most WAIT_MS apart): a refused handshake frees its name at once. */
        names_sweep(in);
        uint64_t now = sw_mono_ns();
        if (now - last_tick > 500 * 1000000ull) {
            last_tick = now;
            pthread_mutex_lock(&in->mutex);
            int down = in->shutting_down;
            pthread_mutex_unlock(&in->mutex);
            if (!down)
                pulls_tick(in);
        }
    }
    return NULL;
}

int origin__srt_start(origin_ingest_t *in, char *err, size_t errlen)
{
    pthread_once(&startup_once, do_startup);
    if (startup_rv < 0) {
        snprintf(err, errlen, "srt_startup failed: %s", srt_err());
        return -1;
    }
    if (in->listen != NULL) {
        struct sockaddr_storage ss;
        if (sw_addr_parse(in->listen, &ss) != 0) {
            snprintf(err, errlen, "srt listen: bad address \"%s\"", in->listen);
            return -1;
        }
        if ((in->listener = srt_create_socket()) == SRT_INVALID_SOCK) {
            snprintf(err, errlen, "srt_create_socket: %s", srt_err());
            return -1;
        }
        /* Accepted sockets inherit these. srt_accept() blocks (SRTO_RCVSYN's default). */
        srt_setsockflag(in->listener, SRTO_TSBPDMODE, &in->tsbpd, sizeof(in->tsbpd));
        srt_setsockflag(in->listener, SRTO_LATENCY, &in->latency_ms, sizeof(in->latency_ms));
        srt_setsockflag(in->listener, SRTO_RCVLATENCY, &in->latency_ms, sizeof(in->latency_ms));
        int sslen = ss.ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                             : (int)sizeof(struct sockaddr_in);
        if (srt_bind(in->listener, (struct sockaddr *)&ss, sslen) != 0) {
            snprintf(err, errlen, "srt bind %s: %s", in->listen, srt_err());
            goto fail_listener;
        }
        if (srt_listen_callback(in->listener, on_listen, in) != 0 ||
            srt_listen(in->listener, 256) != 0) {
            snprintf(err, errlen, "srt listen %s: %s", in->listen, srt_err());
            goto fail_listener;
        }
        if (in->tsbpd)
            sw_log(SW_LOG_INFO, "srt", "listening on %s (TSBPD on, latency %d ms)", in->listen,
                   in->latency_ms);
        else
            sw_log(SW_LOG_INFO, "srt", "listening on %s (TSBPD off)", in->listen);
    }

    if (pthread_create(&in->srt_thread, NULL, srt_main, in) != 0) {
        snprintf(err, errlen, "cannot start the SRT thread");
        goto fail_listener;
    }
    in->srt_thread_started = 1;
    if (in->listener != SRT_INVALID_SOCK) {
        if (pthread_create(&in->accept_thread, NULL, accept_main, in) != 0) {
            snprintf(err, errlen, "cannot start the SRT accept thread");
            origin__srt_stop(in);
            return -1;
        }
        in->accept_thread_started = 1;
    }
    return 0;
fail_listener:
    if (in->listener != SRT_INVALID_SOCK)
        srt_close(in->listener);
    in->listener = SRT_INVALID_SOCK;
    return -1;
}

void origin__srt_stop(origin_ingest_t *in)
{
    atomic_store(&in->srt_stop, 1);
    pthread_mutex_lock(&in->mutex);
    pthread_cond_signal(&in->srt_cond);
    pthread_mutex_unlock(&in->mutex);
    if (in->srt_thread_started) {
        pthread_join(in->srt_thread, NULL);
        in->srt_thread_started = 0;
    }
    /* Closing the listener wakes the blocking srt_accept(). */
    if (in->listener != SRT_INVALID_SOCK)
        srt_close(in->listener);
    if (in->accept_thread_started) {
        pthread_join(in->accept_thread, NULL);
        in->accept_thread_started = 0;
    }
    in->listener = SRT_INVALID_SOCK;
    /* Publishers are all gone (origin_ingest_free() waited for them); close what is left. */
    for (size_t i = 0; i < in->npulls; i++) {
        if (in->pulls[i].sock != SRT_INVALID_SOCK)
            srt_close(in->pulls[i].sock);
        in->pulls[i].sock = SRT_INVALID_SOCK;
    }
}

int origin_pub_stats(origin_pub_t *pub, origin_srt_stats_t *out)
{
    SRT_TRACEBSTATS st;

    memset(out, 0, sizeof(*out));
    if (srt_bistats(pub->sock, &st, 0, 1) != 0)
        return -1;
    out->rtt_ms = st.msRTT;
    out->recv_mbps = st.mbpsRecvRate;
    out->pkt_recv = st.pktRecvTotal;
    out->pkt_loss = st.pktRcvLossTotal;
    out->pkt_retrans = st.pktRcvRetrans;
    out->pkt_drop = st.pktRcvDropTotal;
    out->bytes_recv = (int64_t)st.byteRecvTotal;
    out->buffer_ms = st.msRcvBuf;
    out->latency_ms = st.msRcvTsbPdDelay;
    return 0;
}
