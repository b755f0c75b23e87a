/*
 * srt_load.c: an SRT load generator for the origin benchmark. One process, one thread: N SRT
 * caller sockets, all publishing the same MPEG-TS file held in memory, each paced at the file's
 * own bitrate (file size over the PCR span, constant rate) in 1316-byte (7 x 188) messages. The
 * file loops when it ends; the TS is not rewritten, so a loop is a timestamp jump for the receiver.
 *
 * Sends are non-blocking (SRTO_SNDSYN off) and made on a fixed tick from this thread; SRT's own
 * threads do the packet work. By default every socket is bound to one local UDP port, so they share
 * one SRT multiplexer (one send and one receive thread) instead of two threads per socket.
 *
 * Two ways to address the receivers:
 *   --port P              every stream goes to P with streamid "#!::r=PREFIXk,m=publish"
 *   --port P --per-port   stream k goes to port P+k without a streamid (one receiver per port)
 *
 * Output (stdout, line-buffered): a header, one line per failure, "connected C/N ..." once every
 * connect has settled, and a final "RESULT key=value ..." line. SIGINT or SIGTERM ends the run
 * early (still printing RESULT). Exit status 0 if every stream was still connected at the end.
 *
 * Build: cc -O2 -Wall -Wextra -o srt_load srt_load.c $(pkg-config --cflags --libs srt)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <srt/srt.h>

#define TS_PKT       188
#define MSG_BYTES    (7 * TS_PKT)
#define TICK_NS      (5 * 1000000LL)
#define MAX_BEHIND_S 0.2 /* further behind than this (descheduled): skip ahead, count it */

enum { ST_IDLE, ST_CONNECTING, ST_CONNECTED, ST_FAILED, ST_BROKEN };

typedef struct load_stream {
    SRTSOCKET sock;
    int state;
    int64_t connect_ns; /* when srt_connect() was called */
    int64_t start_ns;   /* when byte 0 of the file is due */
    double sent;        /* bytes sent since start_ns, for pacing */
    size_t pos;         /* next byte of the file */
    uint64_t loops, full, skips;
} load_stream_t;

typedef struct load_opts {
    const char *file, *host, *prefix, *mux;
    int port, per_port, streams, latency_ms, burst;
    double seconds, spread_ms, bitrate, connect_timeout;
} load_opts_t;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: srt_load --file TS --port P [--host 127.0.0.1] [--streams 1] [--seconds 30]\n"
        "                [--prefix live/bench] [--per-port] [--latency 120] [--spread-ms 2000]\n"
        "                [--bitrate BPS] [--burst 16] [--connect-timeout 10]"
        " [--mux shared|own]\n");
}

static int parse_args(load_opts_t *o, int argc, char **argv)
{
    *o = (load_opts_t){.host = "127.0.0.1",
                       .prefix = "live/bench",
                       .mux = "shared",
                       .streams = 1,
                       .latency_ms = 120,
                       .burst = 16,
                       .seconds = 30,
                       .spread_ms = 2000,
                       .connect_timeout = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--per-port") == 0) {
            o->per_port = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            return -1;
        }
        i++;
        if (strcmp(a, "--file") == 0)
            o->file = v;
        else if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--prefix") == 0)
            o->prefix = v;
        else if (strcmp(a, "--mux") == 0)
            o->mux = v;
        else if (strcmp(a, "--port") == 0)
            o->port = atoi(v);
        else if (strcmp(a, "--streams") == 0)
            o->streams = atoi(v);
        else if (strcmp(a, "--latency") == 0)
            o->latency_ms = atoi(v);
        else if (strcmp(a, "--burst") == 0)
            o->burst = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            o->seconds = atof(v);
        else if (strcmp(a, "--spread-ms") == 0)
            o->spread_ms = atof(v);
        else if (strcmp(a, "--bitrate") == 0)
            o->bitrate = atof(v);
        else if (strcmp(a, "--connect-timeout") == 0)
            o->connect_timeout = atof(v);
        else {
            usage();
            return -1;
        }
    }
    if (o->file == NULL || o->port <= 0 || o->port > 65535 || o->streams <= 0 || o->seconds <= 0 ||
        o->burst <= 0) {
        usage();
        return -1;
    }
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0)
        goto out;
    long size = ftell(f);
    if (size < TS_PKT || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    size -= size % TS_PKT;
    if ((buf = malloc((size_t)size)) == NULL)
        goto out;
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
        goto out;
    }
    *len = (size_t)size;
out:
    fclose(f);
    return buf;
}

/* The span of the first PID that carries a PCR, in seconds; 0 if none or not monotonic. */
static double pcr_span(const uint8_t *ts, size_t len)
{
    int pid = -1;
    double first = -1, last = -1;

    for (size_t off = 0; off + TS_PKT <= len; off += TS_PKT) {
        const uint8_t *p = ts + off;
        if (p[0] != 0x47 || !(p[3] & 0x20) || p[4] < 7 || !(p[5] & 0x10))
            continue;
        int this_pid = ((p[1] & 0x1f) << 8) | p[2];
        if (pid < 0)
            pid = this_pid;
        if (this_pid != pid)
            continue;
        uint64_t base = ((uint64_t)p[6] << 25) | ((uint64_t)p[7] << 17) | ((uint64_t)p[8] << 9) |
                        ((uint64_t)p[9] << 1) | (p[10] >> 7);
        unsigned ext = ((p[10] & 1u) << 8) | p[11];
        double t = (double)(base * 300 + ext) / 27e6;
        if (first < 0)
            first = t;
        last = t;
    }
    return first >= 0 && last > first ? last - first : 0;
}

static int bind_shared(SRTSOCKET s, const char *host, int *local_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*local_port)};

    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    if (srt_bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    if (*local_port == 0) {
        int len = sizeof(sa);
        if (srt_getsockname(s, (struct sockaddr *)&sa, &len) != 0)
            return -1;
        *local_port = ntohs(sa.sin_port);
    }
    return 0;
}

static int start_connect(load_stream_t *st, int k, const load_opts_t *o, int *local_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int no = 0, yes = 1, lat = o->latency_ms;
    char sid[512];

    sa.sin_port = htons((uint16_t)(o->per_port ? o->port + k : o->port));
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -1;
    if ((st->sock = srt_create_socket()) == SRT_INVALID_SOCK)
        return -1;
    srt_setsockflag(st->sock, SRTO_SNDSYN, &no, sizeof(no));
    srt_setsockflag(st->sock, SRTO_RCVSYN, &no, sizeof(no));
    srt_setsockflag(st->sock, SRTO_SENDER, &yes, sizeof(yes));
    srt_setsockflag(st->sock, SRTO_LATENCY, &lat, sizeof(lat));
    if (!o->per_port) {
        int n = snprintf(sid, sizeof(sid), "#!::r=%s%d,m=publish", o->prefix, k);
        srt_setsockflag(st->sock, SRTO_STREAMID, sid, n);
    }
    if (strcmp(o->mux, "shared") == 0 && bind_shared(st->sock, o->host, local_port) != 0)
        return -1;
    if (srt_connect(st->sock, (struct sockaddr *)&sa, sizeof(sa)) == SRT_ERROR)
        return -1;
    st->state = ST_CONNECTING;
    st->connect_ns = now_ns();
    return 0;
}

/* Sends what is due on one connected stream; returns -1 if the connection broke. */
static int pump(load_stream_t *st, const uint8_t *file, size_t len, double byterate, int64_t now)
{
    if (now < st->start_ns)
        return 0;
    double due = (double)(now - st->start_ns) / 1e9 * byterate;
    if (due - st->sent > MAX_BEHIND_S * byterate) {
        st->sent = due - MAX_BEHIND_S * byterate;
        st->skips++;
    }
    while (st->sent < due) {
        size_t n = len - st->pos < MSG_BYTES ? len - st->pos : MSG_BYTES;
        if (srt_sendmsg2(st->sock, (const char *)file + st->pos, (int)n, NULL) == SRT_ERROR) {
            if (srt_getlasterror(NULL) == SRT_EASYNCSND) {
                st->full++;
                return 0;
            }
            return -1;
        }
        st->sent += (double)n;
        st->pos += n;
        if (st->pos == len) {
            st->pos = 0;
            st->loops++;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    load_opts_t o;
    size_t len = 0;
    int rv = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (parse_args(&o, argc, argv) != 0)
        return 2;
    uint8_t *file = read_file(o.file, &len);
    if (file == NULL) {
        fprintf(stderr, "srt_load: cannot read %s: %s\n", o.file, strerror(errno));
        return 2;
    }
    double span = pcr_span(file, len);
    double bitrate = o.bitrate > 0 ? o.bitrate : span > 0 ? (double)len * 8 / span : 0;
    if (bitrate <= 0) {
        fprintf(stderr, "srt_load: no PCR in %s; pass --bitrate\n", o.file);
        free(file);
        return 2;
    }
    double byterate = bitrate / 8;
    printf("srt_load: %s: %zu bytes, %.2f s, %.0f bit/s; %d streams for %.1f s (mux %s)\n", o.file,
           len, span, bitrate, o.streams, o.seconds, o.mux);

    load_stream_t *sts = calloc((size_t)o.streams, sizeof(*sts));
    if (sts == NULL || srt_startup() < 0) {
        fprintf(stderr, "srt_load: startup failed\n");
        free(sts);
        free(file);
        return 2;
    }
    srt_setloglevel(LOG_ERR);
    for (int k = 0; k < o.streams; k++)
        sts[k].sock = SRT_INVALID_SOCK;

    int64_t t0 = now_ns(), end = t0 + (int64_t)(o.seconds * 1e9), next = t0;
    int64_t spread = (int64_t)(o.spread_ms * 1e6), timeout = (int64_t)(o.connect_timeout * 1e9);
    int local_port = 0, next_k = 0, connecting = 0, connected = 0, failed = 0, broken = 0;
    int settled_reported = 0;

    while (!stop && now_ns() < end) {
        int64_t now = now_ns();
        /* Open new connections, at most `burst` handshakes in flight. */
        while (next_k < o.streams && connecting < o.burst) {
            load_stream_t *st = &sts[next_k];
            if (start_connect(st, next_k, &o, &local_port) != 0) {
                printf("stream %d: connect failed: %s\n", next_k, srt_getlasterror_str());
                st->state = ST_FAILED;
                failed++;
            } else {
                connecting++;
            }
            next_k++;
        }
        for (int k = 0; k < next_k; k++) {
            load_stream_t *st = &sts[k];
            if (st->state == ST_CONNECTING) {
                SRT_SOCKSTATUS ss = srt_getsockstate(st->sock);
                if (ss == SRTS_CONNECTED) {
                    st->state = ST_CONNECTED;
                    int64_t slot = t0 + spread * k / o.streams;
                    st->start_ns = now > slot ? now : slot;
                    connecting--;
                    connected++;
                } else if (ss != SRTS_CONNECTING && ss != SRTS_OPENED) {
                    printf("stream %d: connect failed: state %d, reject reason %d (%s)\n", k,
                           (int)ss, srt_getrejectreason(st->sock),
                           srt_rejectreason_str(srt_getrejectreason(st->sock)));
                    st->state = ST_FAILED;
                    connecting--;
                    failed++;
                } else if (now - st->connect_ns > timeout) {
                    printf("stream %d: connect timed out\n", k);
                    st->state = ST_FAILED;
                    connecting--;
                    failed++;
                }
            } else if (st->state == ST_CONNECTED && pump(st, file, len, byterate, now) != 0) {
                printf("stream %d: broken after %.1f s: %s\n", k, (now - st->start_ns) / 1e9,
                       srt_getlasterror_str());
                st->state = ST_BROKEN;
                connected--;
                broken++;
            }
        }
        if (!settled_reported && next_k == o.streams && connecting == 0) {
            printf("connected %d/%d in %.2f s (failed %d)\n", connected, o.streams,
                   (now - t0) / 1e9, failed);
            settled_reported = 1;
        }
        next += TICK_NS;
        if (next < now)
            next = now;
        struct timespec ts = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }

    uint64_t pkts = 0, retrans = 0, loss = 0, drop = 0, full = 0, skips = 0, loops = 0;
    int ever = 0;
    for (int k = 0; k < o.streams; k++) {
        load_stream_t *st = &sts[k];
        if (st->sock == SRT_INVALID_SOCK)
            continue;
        SRT_TRACEBSTATS bs;
        if (st->state == ST_CONNECTED || st->state == ST_BROKEN) {
            ever++;
            if (srt_bstats(st->sock, &bs, 0) == 0) {
                pkts += (uint64_t)bs.pktSentTotal;
                retrans += (uint64_t)bs.pktRetransTotal;
                loss += (uint64_t)bs.pktSndLossTotal;
                drop += (uint64_t)bs.pktSndDropTotal;
            }
        }
        full += st->full;
        skips += st->skips;
        loops += st->loops;
        srt_close(st->sock);
    }
    printf("RESULT streams=%d connected=%d ever_connected=%d failed=%d broken=%d sent_pkts=%llu "
           "retrans=%llu snd_loss=%llu snd_drop=%llu send_full=%llu skips=%llu loops=%llu "
           "bitrate=%.0f\n",
           o.streams, connected, ever, failed, broken, (unsigned long long)pkts,
           (unsigned long long)retrans, (unsigned long long)loss, (unsigned long long)drop,
           (unsigned long long)full, (unsigned long long)skips, (unsigned long long)loops, bitrate);
    rv = connected == o.streams ? 0 : 1;
    srt_cleanup();
    free(sts);
    free(file);
    return rv;
}
