/*
 * origin_demux.c: one thread per publisher runs libavformat's MPEG-TS demuxer over the bytes the
 * SRT thread queues (origin_srt.c), and posts on_track / on_packet events to the loop.
 *
 * Latency: the read callback hands over whatever is queued without waiting for a full buffer;
 * the probe size is small (mpegts only needs PAT/PMT, and streams found later are added on the
 * fly) and avformat_find_stream_info() is never called, so av_read_frame() returns each access
 * unit as soon as the TS demuxer and the codec parser have seen its end.
 *
 * Every wait is bounded: the read callback waits on the publisher's condition variable for at
 * most WAIT_MS at a time and checks stop, stall and probe deadlines in between.
 */
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
#define WAIT_MS       100
/* A track slot silent for this long may be taken by another stream of the same kind. */
#define SLOT_SWITCH_NS (2000 * 1000000ull)

typedef struct demux {
    origin_pub_t *pub;
    origin_ingest_t *in;
    uint64_t start_ns;
    int has_track;
    uint64_t last_pkt_ns;
    int slot_index[HLS_NTRACKS]; /* AVStream index feeding each slot, or -1 */
    hls_codec_t slot_codec[HLS_NTRACKS];
    uint64_t slot_last_ns[HLS_NTRACKS];
    int64_t slot_next_dts[HLS_NTRACKS]; /* expected dts of the next packet, or AV_NOPTS_VALUE */
    uint64_t logged_ignored;            /* stream indices < 64 already logged as ignored */
    uint64_t no_ts;                     /* packets dropped for having no timestamp */
} demux_t;

/* Checks the stop, stall and probe deadlines with pub->mutex held; records why. Returns 1 to stop.
 */
static int must_stop_locked(demux_t *d)
{
    origin_pub_t *pub = d->pub;
    uint64_t now = sw_mono_ns();

    if (pub->stop || pub->reason[0] != '\0')
        return 1;
    if (!pub->eof && now - pub->last_bytes_ns > (uint64_t)d->in->stall_ms * 1000000) {
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

static void wait_a_bit(origin_pub_t *pub)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&pub->cond, &pub->mutex, &ts);
}

/* Copies up to `size` queued bytes, freeing consumed chunks. pub->mutex held. */
static size_t take_locked(origin_pub_t *pub, uint8_t *buf, size_t size, int consume)
{
    size_t n = 0;
    origin__chunk_t *c = pub->head;

    while (c != NULL && n < size) {
        size_t k = c->len - c->off;
        if (k > size - n)
            k = size - n;
        memcpy(buf + n, c->data + c->off, k);
        n += k;
        if (consume)
            pub->taken_ns = c->ns;
        if (!consume) {
            c = c->next;
            continue;
        }
        c->off += k;
        if (c->off == c->len) {
            pub->head = c->next;
            if (pub->head == NULL)
                pub->tail = NULL;
            free(c);
            c = pub->head;
        }
    }
    if (consume)
        pub->queued -= n;
    return n;
}

/* The AVIO read callback: blocks until bytes, the end of the socket, or a reason to stop. */
static int on_read(void *opaque, uint8_t *buf, int size)
{
    demux_t *d = opaque;
    origin_pub_t *pub = d->pub;
    int rv;

    pthread_mutex_lock(&pub->mutex);
    for (;;) {
        /* Checked before serving bytes too: garbage that never completes a PES packet keeps
         * av_read_frame() reading, and only this callback sees the deadlines then. */
        if (must_stop_locked(d)) {
            rv = AVERROR_EXIT;
            break;
        }
        if (pub->queued > 0) {
            rv = (int)take_locked(pub, buf, (size_t)size, 1);
            break;
        }
        if (pub->eof) {
            if (pub->reason[0] == '\0')
                snprintf(pub->reason, sizeof(pub->reason), "%s", pub->eof_reason);
            rv = AVERROR_EOF;
            break;
        }
        wait_a_bit(pub);
    }
    pthread_mutex_unlock(&pub->mutex);
    return rv;
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

/* Waits for the first bytes and checks them, so that random bytes get a clear reason. */
static int sniff(demux_t *d)
{
    origin_pub_t *pub = d->pub;
    uint8_t b[SNIFF_BYTES];
    size_t n = 0;
    int rv = -1;

    pthread_mutex_lock(&pub->mutex);
    for (;;) {
        if (pub->queued >= SNIFF_BYTES || (pub->eof && pub->queued > 0)) {
            n = take_locked(pub, b, sizeof(b), 0);
            break;
        }
        if (must_stop_locked(d))
            goto out;
        if (pub->eof) {
            if (pub->reason[0] == '\0')
                snprintf(pub->reason, sizeof(pub->reason), "%.120s before sending any bytes",
                         pub->eof_reason);
            goto out;
        }
        wait_a_bit(pub);
    }
    if (!looks_like_ts(b, n)) {
        if (pub->reason[0] == '\0')
            snprintf(pub->reason, sizeof(pub->reason),
                     "not MPEG-TS: no 0x47 sync byte every 188 bytes in the first %zu bytes", n);
        goto out;
    }
    rv = 0;
out:
    pthread_mutex_unlock(&pub->mutex);
    return rv;
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
    origin__post(d->in, ev);
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
    p->recv_ns = now;
    p->len = (size_t)pkt->size;
    p->data = (uint8_t *)(p + 1);
    if (pkt->size > 0)
        memcpy(p->data, pkt->data, (size_t)pkt->size);
#ifdef ORIGIN_DEMUX_TRACE
    /* Hand check of the demuxer's delay: from the arrival of the newest bytes it had read when
     * this packet came out, to now. */
    pthread_mutex_lock(&d->pub->mutex);
    uint64_t taken = d->pub->taken_ns;
    pthread_mutex_unlock(&d->pub->mutex);
    sw_log(SW_LOG_DEBUG, "srt", "%s: trace kind=%d size=%d demux_us=%llu", d->pub->name, kind,
           pkt->size, (unsigned long long)((now - taken) / 1000));
#endif
    ev->type = ORIGIN__EV_PACKET;
    ev->pub = d->pub;
    ev->pkt = p;
    origin__post(d->in, ev);
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
    demux_t d = {.pub = pub, .in = in, .start_ns = sw_mono_ns()};

    d.slot_index[HLS_VIDEO] = d.slot_index[HLS_AUDIO] = -1;
    d.slot_next_dts[HLS_VIDEO] = d.slot_next_dts[HLS_AUDIO] = AV_NOPTS_VALUE;
    run(&d);
    if (d.no_ts > 0)
        sw_log(SW_LOG_WARN, "srt", "%s: dropped %llu packets without timestamps", pub->name,
               (unsigned long long)d.no_ts);
    origin__pub_set_reason(pub, "demuxer ended");

    /* Hand the publisher back to the SRT thread, which closes the socket and posts its last
     * event. Nothing touches `pub` here after this. */
    pthread_mutex_lock(&in->mutex);
    pub->close_next = in->close_list;
    in->close_list = pub;
    pthread_mutex_unlock(&in->mutex);
    return NULL;
}
