/*
 * origin_demux.c: one thread per publisher reads its SRT socket and runs libavformat's MPEG-TS
 * demuxer over those bytes, and posts on_track / on_packet events to the loop.
 *
 * The AVIO read callback calls srt_recvmsg() itself, as ffmpeg's srt:// protocol does: the socket
 * is blocking with a receive timeout of ORIGIN__RCV_TIMEOUT_MS (set by origin_srt.c), so the
 * thread sleeps inside libsrt until a message is ready and wakes at least that often to check its
 * stop, stall and probe deadlines. An API drop or a shutdown sets `stop`, seen within one timeout.
 *
 * Wake-ups: while media flows, the thread reads at most every ORIGIN_READ_EVERY_MS, taking all the
 * messages that are ready then. A 3 Mbit/s stream brings about 300 a second, each of which would
 * otherwise wake a reader blocked in srt_recvmsg() through a libsrt thread. The cost is at most
 * ORIGIN_READ_EVERY_MS more on a frame's way to its part, and /api/latency counts it (recv_ns in
 * on_packet()).
 *
 * Latency: the read callback returns as soon as it has one message, plus those that are ready
 * already, without waiting for a full buffer; the probe size is small (mpegts only needs PAT/PMT,
 * and streams found later are added on the fly) and avformat_find_stream_info() is never called,
 * so av_read_frame() returns each access unit as soon as the TS demuxer and the codec parser have
 * seen its end.
 *
 * Hand-offs: the events that the bytes of one read give (an access unit each, a track now and
 * then) wait in the thread's own list and go to the loop together, under one lock and with one
 * uv_async_send(), when the read callback next needs bytes from the socket, before it may sleep
 * or block: a 30 fps publisher with AAC makes about 77 events a second from 30 to 50 reads. No
 * event waits for the next read, and a publisher's events keep their order, since only its own
 * thread appends them. Whatever is left when the demuxer stops goes before the publisher is
 * handed back to the SRT thread, whose EV_UNPUBLISH must be its last event.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavformat/avformat.h>
#include <libavutil/error.h>

#include "sw/log.h"
#include "sw/sw.h"

#include "origin_ingest_int.h"

/*
 * libavformat and libavcodec print to stderr by default ("non-existing PPS 0 referenced" when a
 * publisher joins mid-GOP, for instance). Their lines go to our log instead, at debug level: the
 * outcomes that matter (a publisher dropped, samples rejected) are logged by us with the stream's
 * name, which libav's lines lack.
 */
__attribute__((format(printf, 3, 0))) static void on_av_log(void *avcl, int level, const char *fmt,
                                                            va_list ap)
{
    char line[512];
    if (level > AV_LOG_WARNING || !sw_log_enabled(SW_LOG_DEBUG))
        return;
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    sw_log(SW_LOG_DEBUG, "libav", "%s", line);
}

void origin__demux_global_init(void)
{
    av_log_set_callback(on_av_log);
}

#define AVIO_BUF_SIZE (64 * 1024)
#define PROBE_SIZE    (188 * 40)
#define SNIFF_BYTES   (188 * 10)
/* Room for one SRT message: live mode carries at most SRT_LIVE_MAX_PLSIZE (1456) bytes. */
#define MSG_MAX   1500
#define CARRY_CAP (SNIFF_BYTES + MSG_MAX)
/* After one message, read on while more are ready, up to this many per read callback. */
#ifndef ORIGIN_READ_EVERY_MS
#define ORIGIN_READ_EVERY_MS 20
#endif
#ifndef ORIGIN_DEMUX_BATCH
#define ORIGIN_DEMUX_BATCH 32
#endif
/* A track slot silent for this long may be taken by another stream of the same kind. */
#define SLOT_SWITCH_NS (2000 * 1000000ull)

typedef struct demux {
    origin_pub_t *pub;
    origin_ingest_t *in;
    uint64_t start_ns;
    uint64_t next_read_ns; /* no blocking read before this while media flows */
    uint64_t batch_ns;     /* when the bytes of the last read were first there to read (see
                              on_read()) */
    int has_track;
    uint64_t last_pkt_ns;
    int slot_index[HLS_NTRACKS]; /* AVStream index feeding each slot, or -1 */
    hls_codec_t slot_codec[HLS_NTRACKS];
    uint64_t slot_last_ns[HLS_NTRACKS];
    int64_t slot_next_dts[HLS_NTRACKS];  /* expected dts of the next packet, or AV_NOPTS_VALUE */
    uint64_t logged_ignored;             /* stream indices < 64 already logged as ignored */
    uint64_t no_ts;                      /* packets dropped for having no timestamp */
    origin__event_t *batch, *batch_tail; /* events not yet handed to the loop, in order */
    int eof;                             /* the socket is gone: no more bytes will come */
    char eof_reason[ORIGIN__REASON_MAX]; /* why; recorded once `carry` is served */
    size_t carry_off, carry_len;         /* bytes read but not yet handed to libavformat */
    uint8_t carry[CARRY_CAP];
} demux_t;

/* Keeps `ev` for the next hand-off (flush()). Takes ownership of it. */
static void queue(demux_t *d, origin__event_t *ev)
{
    ev->next = NULL;
    if (d->batch_tail != NULL)
        d->batch_tail->next = ev;
    else
        d->batch = ev;
    d->batch_tail = ev;
}

/* Hands the kept events to the loop in one go. */
static void flush(demux_t *d)
{
    if (d->batch == NULL)
        return;
    origin__post_list(d->in, d->batch, d->batch_tail);
    d->batch = d->batch_tail = NULL;
}

/* Checks the stop, stall and probe deadlines with pub->mutex held; records why. Returns 1 to stop.
 */
static int must_stop_locked(demux_t *d)
{
    origin_pub_t *pub = d->pub;
    uint64_t now = sw_mono_ns();

    if (pub->stop || pub->reason[0] != '\0')
        return 1;
    if (!d->eof && now - pub->last_bytes_ns > (uint64_t)d->in->stall_ms * 1000000) {
        snprintf(pub->reason, sizeof(pub->reason), "stalled: no bytes for %.1f s",
                 (now - pub->last_bytes_ns) / 1e9);
        return 1;
    }
    if (!d->has_track && now - d->start_ns > (uint64_t)d->in->probe_ms * 1000000) {
        snprintf(pub->reason, sizeof(pub->reason),
                 "no supported stream (H.264, HEVC, AAC, Opus) within %.1f s",
                 d->in->probe_ms / 1000.0);
        return 1;
    }
    if (d->has_track && now - d->last_pkt_ns > (uint64_t)d->in->stall_ms * 1000000) {
        snprintf(pub->reason, sizeof(pub->reason), "stalled: bytes but no packets for %.1f s",
                 (now - d->last_pkt_ns) / 1e9);
        return 1;
    }
    return 0;
}

static int must_stop(demux_t *d)
{
    pthread_mutex_lock(&d->pub->mutex);
    int rv = must_stop_locked(d);
    pthread_mutex_unlock(&d->pub->mutex);
    return rv;
}

static int on_interrupt(void *opaque)
{
    return must_stop(opaque);
}

/* The socket ended with SRT error `err` (0: closed): records why, for when its bytes are used. */
static void socket_ended(demux_t *d, int err)
{
    uint64_t idle_ms = (sw_mono_ns() - d->pub->last_bytes_ns) / 1000000;

    if (idle_ms >= 4000)
        snprintf(d->eof_reason, sizeof(d->eof_reason),
                 "connection timed out (no packets from the peer for %.1f s)", idle_ms / 1000.0);
    /* SRT_EINVSOCK: the connection broke and libsrt's collector dropped the socket before this
     * thread read again (seen under ThreadSanitizer): an end like any other. */
    else if (err == SRT_ECONNLOST || err == SRT_EINVSOCK || err == 0)
        snprintf(d->eof_reason, sizeof(d->eof_reason), "peer closed the connection");
    else
        snprintf(d->eof_reason, sizeof(d->eof_reason), "connection error: %s",
                 srt_strerror(err, 0));
    d->eof = 1;
}

/* Reads one message into `buf` (at least MSG_MAX bytes of room), waiting up to the socket's
 * receive timeout. Returns its length, 0 when none came in time, or -1 when the socket ended.
 * With a message, *avail_ns (if not NULL) is when libsrt made it available on our monotonic clock,
 * or 0 if that is not known. */
static int recv_one(demux_t *d, uint8_t *buf, size_t room, uint64_t *avail_ns)
{
    origin_pub_t *pub = d->pub;
    SRT_MSGCTRL mc = srt_msgctrl_default;
    int r = srt_recvmsg2(pub->sock, (char *)buf, room > INT_MAX ? INT_MAX : (int)room, &mc);

    if (r > 0) {
        pub->bytes_in += (uint64_t)r;
        pub->last_bytes_ns = sw_mono_ns();
        if (avail_ns != NULL) {
            /* On a receiver, srctime is the message's delivery time (TSBPD: when it became
             * readable), on libsrt's clock. Its age says how long it waited for us: the sleep
             * between reads, or a thread not scheduled at once on a busy core. An age that is
             * negative or over a second is not trusted. */
            int64_t age_us = srt_time_now() - mc.srctime;
            *avail_ns = mc.srctime > 0 && age_us >= 0 && age_us <= 1000000
                            ? pub->last_bytes_ns - (uint64_t)age_us * 1000
                            : 0;
        }
        return r;
    }
    int err = r == 0 ? 0 : srt_getlasterror(NULL);
    if (r < 0 && (err == SRT_ETIMEOUT || err == SRT_EASYNCRCV))
        return 0;
    socket_ended(d, err);
    return -1;
}

/* Whether a message is ready to read without waiting. Cheaper than a failed non-blocking read,
 * which libsrt reports by throwing (and catching) a C++ exception. */
static int ready(demux_t *d)
{
    int32_t ev = 0;
    int len = sizeof(ev);

    return srt_getsockflag(d->pub->sock, SRTO_EVENT, &ev, &len) == 0 && (ev & SRT_EPOLL_IN) != 0;
}

/* The AVIO read callback: blocks until bytes, the end of the socket, or a reason to stop. */
static int on_read(void *opaque, uint8_t *buf, int size)
{
    demux_t *d = opaque;
    size_t room = (size_t)size, n = 0;

    for (;;) {
        /* Checked before serving bytes too: garbage that never completes a PES packet keeps
         * av_read_frame() reading, and only this callback sees the deadlines then. */
        if (must_stop(d))
            return AVERROR_EXIT;
        if (d->carry_len > d->carry_off) {
            n = d->carry_len - d->carry_off;
            if (n > room)
                n = room;
            memcpy(buf, d->carry + d->carry_off, n);
            d->carry_off += n;
            return (int)n;
        }
        if (d->eof) {
            origin__pub_set_reason(d->pub, "%s", d->eof_reason);
            return AVERROR_EOF;
        }
        /* What the previous bytes gave goes to the loop before this thread may wait for more. */
        flush(d);
        int r, slept = 0;
        uint64_t now = sw_mono_ns(), avail = 0;
        if (now < d->next_read_ns && !ready(d)) {
            uint64_t ns = d->next_read_ns - now;
            struct timespec t = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
            nanosleep(&t, NULL);
            slept = ready(d);
        }
        /* The clock of what this read brings starts when libsrt made its first message
         * available. Without that time, bytes there after a sleep count from its start (the
         * earliest they can have come), and bytes a blocking read waited for from its return. */
        if (room >= MSG_MAX) {
            if ((r = recv_one(d, buf, room, &avail)) > 0) {
                n = (size_t)r;
                d->batch_ns = avail != 0 ? avail : slept ? now : sw_mono_ns();
                break;
            }
        } else if ((r = recv_one(d, d->carry, sizeof(d->carry), &avail)) > 0) {
            d->carry_off = 0;
            d->carry_len = (size_t)r;
            d->batch_ns = avail != 0 ? avail : slept ? now : sw_mono_ns();
        }
    }
    for (int i = 1; i < ORIGIN_DEMUX_BATCH && room - n >= MSG_MAX && ready(d); i++) {
        int r = recv_one(d, buf + n, room - n, NULL);
        if (r <= 0)
            break; /* an end is reported by the next call, after these bytes */
        n += (size_t)r;
    }
    d->next_read_ns = sw_mono_ns() + ORIGIN_READ_EVERY_MS * 1000000ull;
    return (int)n;
}

/* Whether `b` looks like a transport stream: a 0x47 sync byte every 188 (or 192, 204) bytes. */
static int looks_like_ts(const uint8_t *b, size_t len)
{
    static const size_t strides[] = {188, 192, 204};

    for (size_t s = 0; s < SW_ARRAY_SIZE(strides); s++) {
        size_t stride = strides[s];
        for (size_t off = 0; off < stride && off < len; off++) {
            size_t count = 0, p;
            for (p = off; p < len && b[p] == 0x47; p += stride)
                count++;
            if (p >= len && count >= 3)
                return 1;
        }
    }
    return 0;
}

/* Reads the first bytes and checks them, so that random bytes get a clear reason. The bytes stay
 * in `carry` for the demuxer. */
static int sniff(demux_t *d)
{
    origin_pub_t *pub = d->pub;

    while (d->carry_len < SNIFF_BYTES) {
        if (d->eof)
            break;
        if (must_stop(d))
            return -1;
        int r = recv_one(d, d->carry + d->carry_len, sizeof(d->carry) - d->carry_len, NULL);
        if (r > 0)
            d->carry_len += (size_t)r;
    }
    if (d->carry_len == 0) {
        origin__pub_set_reason(pub, "%.120s before sending any bytes", d->eof_reason);
        return -1;
    }
    size_t n = d->carry_len < SNIFF_BYTES ? d->carry_len : SNIFF_BYTES;
    if (!looks_like_ts(d->carry, n)) {
        origin__pub_set_reason(
            pub, "not MPEG-TS: no 0x47 sync byte every 188 bytes in the first %zu bytes", n);
        return -1;
    }
    return 0;
}

static hls_codec_t map_codec(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_H264:
        return HLS_CODEC_H264;
    case AV_CODEC_ID_HEVC:
        return HLS_CODEC_HEVC;
    case AV_CODEC_ID_AAC:
        return HLS_CODEC_AAC;
    case AV_CODEC_ID_OPUS:
        return HLS_CODEC_OPUS;
    default:
        return HLS_CODEC_NONE;
    }
}

static const char *codec_name(hls_codec_t c)
{
    static const char *names[] = {"none", "h264", "hevc", "aac", "opus"};
    return (unsigned)c < SW_ARRAY_SIZE(names) ? names[c] : "?";
}

/* Sample rate and channels from an ADTS header, when the demuxer did not fill them. */
static void adts_params(const uint8_t *p, size_t len, uint32_t *rate, uint32_t *ch)
{
    static const uint32_t rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                     22050, 16000, 12000, 11025, 8000,  7350};
    if (len < 7 || p[0] != 0xff || (p[1] & 0xf6) != 0xf0)
        return;
    unsigned sfi = (p[2] >> 2) & 0xf;
    if (*rate == 0 && sfi < SW_ARRAY_SIZE(rates))
        *rate = rates[sfi];
    if (*ch == 0)
        *ch = ((p[2] & 1u) << 2) | (p[3] >> 6);
}

static void ignore_stream(demux_t *d, const AVStream *st, const char *why)
{
    if (st->index < 64 && (d->logged_ignored & (1ull << st->index)))
        return;
    if (st->index < 64)
        d->logged_ignored |= 1ull << st->index;
    const char *type = av_get_media_type_string(st->codecpar->codec_type);
    sw_log(SW_LOG_INFO, "srt", "%s: ignoring stream %d (pid 0x%x, %s %s): %s", d->pub->name,
           st->index, st->id, type != NULL ? type : "unknown",
           avcodec_get_name(st->codecpar->codec_id), why);
}

static int post_track(demux_t *d, int kind, const AVStream *st, hls_codec_t codec,
                      const AVPacket *pkt)
{
    const AVCodecParameters *par = st->codecpar;
    size_t xlen =
        par->extradata != NULL && par->extradata_size > 0 ? (size_t)par->extradata_size : 0;
    origin__event_t *ev = calloc(1, sizeof(*ev) + xlen);

    if (ev == NULL)
        return -1;
    ev->type = ORIGIN__EV_TRACK;
    ev->pub = d->pub;
    ev->kind = kind;
    ev->info.codec = codec;
    if (kind == HLS_AUDIO) {
        ev->info.sample_rate = par->sample_rate > 0 ? (uint32_t)par->sample_rate : 0;
        ev->info.channels =
            par->ch_layout.nb_channels > 0 ? (uint32_t)par->ch_layout.nb_channels : 0;
        if (codec == HLS_CODEC_AAC)
            adts_params(pkt->data, (size_t)pkt->size, &ev->info.sample_rate, &ev->info.channels);
        if (codec == HLS_CODEC_OPUS && ev->info.sample_rate == 0)
            ev->info.sample_rate = 48000; /* Opus always decodes at 48 kHz (RFC 7845 5.1) */
    }
    if (xlen > 0) {
        memcpy(ev + 1, par->extradata, xlen);
        ev->info.extradata = (const uint8_t *)(ev + 1);
        ev->info.extradata_len = xlen;
    }
    sw_log(SW_LOG_INFO, "srt", "%s: %s track %s (pid 0x%x)%s", d->pub->name,
           kind == HLS_VIDEO ? "video" : "audio", codec_name(codec), st->id,
           d->slot_codec[kind] != HLS_CODEC_NONE ? " replaces the previous one" : "");
    d->slot_codec[kind] = codec;
    queue(d, ev);
    return 0;
}

/* Duration of an AAC packet (ADTS frames) or an Opus packet in 90 kHz ticks, 0 when unknown. The
 * codec parser splits a PES holding several audio frames, and only the first one carries the
 * PES timestamp: the others follow from these durations. */
static int64_t audio_duration(hls_codec_t codec, const AVCodecParameters *par, const uint8_t *p,
                              size_t len)
{
    if (codec == HLS_CODEC_AAC) {
        uint32_t rate = par->sample_rate > 0 ? (uint32_t)par->sample_rate : 0, ch = 1;
        adts_params(p, len, &rate, &ch);
        if (rate == 0 || len < 7)
            return 0;
        int64_t blocks = (p[0] == 0xff && (p[1] & 0xf6) == 0xf0) ? (p[6] & 3) + 1 : 1;
        return blocks * 1024 * 90000 / rate;
    }
    if (codec == HLS_CODEC_OPUS && len >= 1) {
        /* RFC 6716 3.1: the TOC byte gives the frame size, the code the frame count. */
        static const int us[32] = {10000, 20000, 40000, 60000, 10000, 20000, 40000, 60000,
                                   10000, 20000, 40000, 60000, 10000, 20000, 10000, 20000,
                                   2500,  5000,  10000, 20000, 2500,  5000,  10000, 20000,
                                   2500,  5000,  10000, 20000, 2500,  5000,  10000, 20000};
        int frames = (p[0] & 3) == 0 ? 1 : (p[0] & 3) < 3 ? 2 : len >= 2 ? (p[1] & 0x3f) : 0;
        return (int64_t)frames * us[p[0] >> 3] * 9 / 100;
    }
    return 0;
}

static int64_t to_90k(int64_t ts, AVRational tb)
{
    if (ts == AV_NOPTS_VALUE || (tb.num == 1 && tb.den == 90000))
        return ts;
    return av_rescale_q(ts, tb, (AVRational){1, 90000});
}

static int on_packet(demux_t *d, const AVFormatContext *fmt, const AVPacket *pkt)
{
    const AVStream *st = fmt->streams[pkt->stream_index];
    int kind;
    uint64_t now = sw_mono_ns();

    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
        kind = HLS_VIDEO;
    else if (st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
        kind = HLS_AUDIO;
    else {
        ignore_stream(d, st, "not audio or video");
        return 0;
    }
    hls_codec_t codec = map_codec(st->codecpar->codec_id);
    if (codec == HLS_CODEC_NONE) {
        ignore_stream(d, st, "codec not supported");
        return 0;
    }
    if (d->slot_index[kind] != st->index) {
        if (d->slot_index[kind] >= 0 && now - d->slot_last_ns[kind] < SLOT_SWITCH_NS) {
            ignore_stream(d, st,
                          kind == HLS_VIDEO ? "a video track is taken already"
                                            : "an audio track is taken already");
            return 0;
        }
        d->slot_index[kind] = st->index;
        d->slot_codec[kind] = HLS_CODEC_NONE;
        d->slot_next_dts[kind] = AV_NOPTS_VALUE;
        if (st->index < 64)
            d->logged_ignored &= ~(1ull << st->index);
    }
    if (d->slot_codec[kind] != codec && post_track(d, kind, st, codec, pkt) != 0)
        return -1;
    d->slot_last_ns[kind] = now;
    d->has_track = 1;
    d->last_pkt_ns = now;

    int64_t pts = to_90k(pkt->pts, st->time_base), dts = to_90k(pkt->dts, st->time_base);
    if (pts == AV_NOPTS_VALUE)
        pts = dts;
    if (dts == AV_NOPTS_VALUE)
        dts = pts;
    if (pts == AV_NOPTS_VALUE)
        pts = dts = d->slot_next_dts[kind];
    int64_t dur = pkt->duration > 0 ? to_90k(pkt->duration, st->time_base) : 0;
    if (dur <= 0 && kind == HLS_AUDIO)
        dur = audio_duration(codec, st->codecpar, pkt->data, (size_t)pkt->size);
    d->slot_next_dts[kind] = dts != AV_NOPTS_VALUE && dur > 0 ? dts + dur : AV_NOPTS_VALUE;
    if (pts == AV_NOPTS_VALUE) {
        if (d->no_ts++ == 0)
            sw_log(SW_LOG_WARN, "srt", "%s: dropping packets without timestamps", d->pub->name);
        return 0;
    }

    origin__event_t *ev = calloc(1, sizeof(*ev));
    origin_packet_t *p = malloc(sizeof(*p) + (size_t)pkt->size);
    if (ev == NULL || p == NULL) {
        free(ev);
        free(p);
        return -1;
    }
    p->kind = kind;
    p->key = kind == HLS_AUDIO || (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    p->pts = pts;
    p->dts = dts;
    p->recv_ms = sw_now_ms();
    /* From when its newest bytes could have been read: the batching wait counts as latency. */
    p->recv_ns = d->batch_ns != 0 && d->batch_ns < now ? d->batch_ns : now;
    p->len = (size_t)pkt->size;
    p->data = (uint8_t *)(p + 1);
    if (pkt->size > 0)
        memcpy(p->data, pkt->data, (size_t)pkt->size);
#ifdef ORIGIN_DEMUX_TRACE
    /* Hand check of the demuxer's delay: from the arrival of the newest bytes it had read when
     * this packet came out, to now. */
    uint64_t taken = d->pub->last_bytes_ns;
    sw_log(SW_LOG_DEBUG, "srt", "%s: trace kind=%d size=%d demux_us=%llu", d->pub->name, kind,
           pkt->size, (unsigned long long)((now - taken) / 1000));
#endif
    ev->type = ORIGIN__EV_PACKET;
    ev->pub = d->pub;
    ev->pkt = p;
    queue(d, ev);
    return 0;
}

static void run(demux_t *d)
{
    origin_pub_t *pub = d->pub;
    AVFormatContext *fmt = NULL;
    AVIOContext *avio = NULL;
    AVPacket *pkt = NULL;
    AVDictionary *opts = NULL;
    uint8_t *iobuf;
    char msg[AV_ERROR_MAX_STRING_SIZE];
    int rv;

    if (sniff(d) != 0)
        return;
    if ((iobuf = av_malloc(AVIO_BUF_SIZE)) == NULL)
        goto nomem;
    if ((avio = avio_alloc_context(iobuf, AVIO_BUF_SIZE, 0, d, on_read, NULL, NULL)) == NULL) {
        av_free(iobuf);
        goto nomem;
    }
    if ((fmt = avformat_alloc_context()) == NULL || (pkt = av_packet_alloc()) == NULL)
        goto nomem;
    fmt->pb = avio;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_NOBUFFER;
#ifdef ORIGIN_DEMUX_TRACE
    if (getenv("ORIGIN_NOPARSE") != NULL)
        fmt->flags |= AVFMT_FLAG_NOPARSE | AVFMT_FLAG_NOFILLIN;
#endif
    fmt->interrupt_callback.callback = on_interrupt;
    fmt->interrupt_callback.opaque = d;
    av_dict_set_int(&opts, "probesize", PROBE_SIZE, 0);
    av_dict_set_int(&opts, "fpsprobesize", 0, 0);
    av_dict_set_int(&opts, "analyzeduration", 0, 0);
    rv = avformat_open_input(&fmt, pub->resource, av_find_input_format("mpegts"), &opts);
    av_dict_free(&opts);
    if (rv < 0) {
        /* avformat_open_input() freed fmt; a stop or EOF reason may explain the failure. */
        av_strerror(rv, msg, sizeof(msg));
        origin__pub_set_reason(pub, "not MPEG-TS: libavformat could not open it (%s)", msg);
        goto out;
    }

    for (long i = 0; i < 1000000000L; i++) {
        if (must_stop(d))
            break;
        rv = av_read_frame(fmt, pkt);
        if (rv == AVERROR(EAGAIN))
            continue;
        if (rv < 0) {
            av_strerror(rv, msg, sizeof(msg));
            origin__pub_set_reason(pub, "demuxer error: %s", msg);
            break;
        }
        rv = on_packet(d, fmt, pkt);
        av_packet_unref(pkt);
        if (rv != 0) {
            origin__pub_set_reason(pub, "out of memory in the demuxer");
            break;
        }
    }
out:
    av_packet_free(&pkt);
    avformat_close_input(&fmt);
    if (avio != NULL)
        av_freep(&avio->buffer);
    avio_context_free(&avio);
    return;
nomem:
    origin__pub_set_reason(pub, "out of memory in the demuxer");
    avformat_free_context(fmt);
    fmt = NULL;
    goto out;
}

void *origin__demux_main(void *arg)
{
    origin_pub_t *pub = arg;
    origin_ingest_t *in = pub->in;
    demux_t *d = calloc(1, sizeof(*d));

    pthread_setname_np(pthread_self(), "sw-demux"); /* for top -H and perf */

    if (d == NULL) {
        origin__pub_set_reason(pub, "out of memory in the demuxer");
        goto out;
    }
    d->pub = pub;
    d->in = in;
    d->start_ns = sw_mono_ns();

    d->slot_index[HLS_VIDEO] = d->slot_index[HLS_AUDIO] = -1;
    d->slot_next_dts[HLS_VIDEO] = d->slot_next_dts[HLS_AUDIO] = AV_NOPTS_VALUE;
    run(d);
    flush(d); /* before the publisher goes back to the SRT thread, which posts its last event */
    if (d->no_ts > 0)
        sw_log(SW_LOG_WARN, "srt", "%s: dropped %llu packets without timestamps", pub->name,
               (unsigned long long)d->no_ts);
    free(d);
out:
    origin__pub_set_reason(pub, "demuxer ended");

    /* Nothing touches `pub` here after this. */
    origin__pub_close_later(in, pub);
    return NULL;
}
