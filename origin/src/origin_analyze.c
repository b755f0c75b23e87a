/*
 * origin_analyze.c: `shortwave-origin --analyze`, the shorts/ detector over a recorded show
 * (origin_analyze() in origin.h). The events file is read whole first (origin_analyze_events.c
 * parses its lines); then the media is demuxed once, its audio decoded and measured, and every
 * signal goes to the detector in time order, interleaved with the events.
 *
 * The live origin will feed the same detector from its demux threads; nothing here is shared
 * with them but the detector, so a tuning run measures exactly what the live path decides.
 */
#include <ebur128.h>
#include <errno.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/samplefmt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin_analyze.h"
#include "origin_ingest_int.h" /* origin__demux_global_init() */
#include "origin_int.h"
#include "sw/log.h"

/* Short-term loudness is measured every this many seconds of audio (shorts.h asks for ~100 ms). */
#define MEASURE_EVERY_S 0.1
/* shorts_next() is asked again once the media time moved on by this much. */
#define POLL_EVERY_S 0.1

typedef struct item {
    origin_aev_t a;
    size_t seq; /* the line's order, so that the sort is stable */
} item_t;

typedef struct analysis {
    const origin_analyze_opts_t *opts;
    char *err;
    size_t errlen;
    shorts_detector_t *d;

    item_t *ev;
    size_t nev, next_ev;

    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int vi, ai;     /* stream indices, -1 without */
    double t0;      /* seconds, on the streams' own clock: t = 0 on the media timeline */
    double t_video; /* the latest time fed, per kind (-HUGE_VAL before the first) */
    double t_audio;
    double polled; /* the `now` shorts_next() was last asked with */

    ebur128_state *r128;
    int rate, channels;
    int64_t step, pending; /* samples per measurement; fed since the last one */
    float *buf;            /* one frame, interleaved */
    size_t bufcap;
    uint64_t bad_packets;

    sw_str_t moments, line;
    size_t nmoments;
} analysis_t;

static int fail(analysis_t *an, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(analysis_t *an, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(an->err, an->errlen, fmt, ap);
    va_end(ap);
    return rv;
}

static int nomem(analysis_t *an)
{
    return fail(an, ORIGIN_ERR_NOMEM, "out of memory");
}

/* Writes the scratch line to the signals file. */
static int put_signal(analysis_t *an)
{
    if (an->line.failed)
        return nomem(an);
    sw_str_puts(&an->line, "\n");
    if (fwrite(an->line.p, 1, an->line.len, an->opts->signals) != an->line.len)
        return fail(an, ORIGIN_ERR_IO, "cannot write the signals: %s", strerror(errno));
    sw_str_reset(&an->line);
    return 0;
}

/* Events file. */

static int cmp_item(const void *pa, const void *pb)
{
    const item_t *a = pa, *b = pb;
    if (a->a.ev.t != b->a.ev.t)
        return a->a.ev.t < b->a.ev.t ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int read_events(analysis_t *an, const char *path)
{
    origin_aev_state_t st;
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t n;
    int rv = 0;

    FILE *f = fopen(path, "r");
    if (f == NULL)
        return fail(an, ORIGIN_ERR_CONFIG, "%s: cannot open: %s", path, strerror(errno));
    origin__aev_state_init(&st);
    while ((n = getline(&line, &cap, f)) >= 0) {
        origin_aev_t a;
        const char *why;

        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        int r = origin__aev_parse(&st, line, (size_t)n, &a, &why);
        if (r == ORIGIN_AEV_BAD) {
            rv = fail(an, ORIGIN_ERR_CONFIG, "%s:%zu: %s", path, lineno, why);
            goto out;
        }
        if (r == ORIGIN_AEV_SKIP)
            continue;
        if (an->nev == alloc) {
            size_t na = alloc ? alloc * 2 : 256;
            item_t *ne = realloc(an->ev, na * sizeof(*ne));
            if (ne == NULL) {
                rv = nomem(an);
                goto out;
            }
            an->ev = ne;
            alloc = na;
        }
        an->ev[an->nev] = (item_t){.a = a, .seq = an->nev};
        an->nev++;
    }
    if (ferror(f))
        rv = fail(an, ORIGIN_ERR_CONFIG, "%s: read error after line %zu: %s", path, lineno,
                  strerror(errno));
    else if (an->nev > 0)
        qsort(an->ev, an->nev, sizeof(*an->ev), cmp_item);
out:
    free(line);
    fclose(f);
    return rv;
}

/* Feeds every event up to media time `t` (all of them for HUGE_VAL). */
static int feed_events(analysis_t *an, double t)
{
    for (; an->next_ev < an->nev && an->ev[an->next_ev].a.ev.t <= t; an->next_ev++) {
        origin_aev_t *a = &an->ev[an->next_ev].a;
        /* The array moved while it grew: the sku is pointed at where it is now. */
        a->ev.sku = a->ev.type == SHORTS_EV_CHAT ? NULL : a->sku;
        int rv = shorts_event(an->d, &a->ev);
        if (rv != 0)
            return fail(an, rv == SHORTS_ERR_NOMEM ? ORIGIN_ERR_NOMEM : ORIGIN_ERR_CONFIG,
                        "the detector refused an event at t=%.3f: %s", a->ev.t,
                        shorts_strerror(rv));
        if (an->opts->signals == NULL)
            continue;
        sw_str_printf(&an->line, "{\"signal\":\"event\",\"t\":%.4f,\"type\":\"%s\"", a->ev.t,
                      origin__aev_type_name(a->ev.type));
        if (a->ev.type == SHORTS_EV_CHAT) {
            sw_str_printf(&an->line, ",\"count\":%.17g,\"window_s\":%.17g}", a->ev.count,
                          a->ev.window_s);
        } else {
            sw_str_puts(&an->line, ",\"sku\":\"");
            sw_str_json_escape(&an->line, a->sku);
            sw_str_puts(&an->line, "\"");
            if (a->ev.type == SHORTS_EV_CART)
                sw_str_printf(&an->line, ",\"qty\":%d", a->ev.qty);
            sw_str_puts(&an->line, "}");
        }
        if ((rv = put_signal(an)) != 0)
            return rv;
    }
    return 0;
}

/* Moments. */

static int take_moments(analysis_t *an, double now)
{
    shorts_moment_t m;

    while (shorts_next(an->d, now, &m) == 1) {
        sw_str_puts(&an->moments, an->nmoments++ ? ",\n" : "\n");
        if (shorts_moment_json(&m, &an->moments) != 0 || an->moments.failed)
            return nomem(an);
    }
    return 0;
}

/* Asks the detector for moments once every kind of signal the media has reached `now`. */
static int poll_moments(analysis_t *an)
{
    double now = HUGE_VAL;
    if (an->vi >= 0)
        now = fmin(now, an->t_video);
    if (an->ai >= 0)
        now = fmin(now, an->t_audio);
    if (now == -HUGE_VAL || now < an->polled + POLL_EVERY_S)
        return 0;
    an->polled = now;
    return take_moments(an, now);
}

/* Media. */

/* A packet's or a frame's time in seconds on its stream's clock, or NAN. */
static double ts_seconds(const AVStream *s, int64_t ts)
{
    return ts == AV_NOPTS_VALUE ? NAN : (double)ts * av_q2d(s->time_base);
}

static int open_media(analysis_t *an)
{
    const char *path = an->opts->ts_path;
    char msg[128];
    int rv;

    if ((rv = avformat_open_input(&an->fmt, path, NULL, NULL)) < 0) {
        av_strerror(rv, msg, sizeof(msg));
        return fail(an, ORIGIN_ERR_MEDIA, "%s: cannot open: %s", path, msg);
    }
    if ((rv = avformat_find_stream_info(an->fmt, NULL)) < 0) {
        av_strerror(rv, msg, sizeof(msg));
        return fail(an, ORIGIN_ERR_MEDIA, "%s: cannot read its streams: %s", path, msg);
    }
    an->vi = an->ai = -1;
    for (unsigned i = 0; i < an->fmt->nb_streams; i++) {
        enum AVMediaType type = an->fmt->streams[i]->codecpar->codec_type;
        if (type == AVMEDIA_TYPE_VIDEO && an->vi < 0)
            an->vi = (int)i;
        if (type == AVMEDIA_TYPE_AUDIO && an->ai < 0)
            an->ai = (int)i;
    }
    if (an->vi < 0 && an->ai < 0)
        return fail(an, ORIGIN_ERR_MEDIA, "%s: neither audio nor video", path);
    return 0;
}

static int open_decoder(analysis_t *an)
{
    const AVCodecParameters *par = an->fmt->streams[an->ai]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    char msg[128];
    int rv;

    if (codec == NULL)
        return fail(an, ORIGIN_ERR_MEDIA, "%s: no decoder for its audio (%s)", an->opts->ts_path,
                    avcodec_get_name(par->codec_id));
    if ((an->dec = avcodec_alloc_context3(codec)) == NULL)
        return nomem(an);
    if ((rv = avcodec_parameters_to_context(an->dec, par)) < 0 ||
        (rv = avcodec_open2(an->dec, codec, NULL)) < 0) {
        av_strerror(rv, msg, sizeof(msg));
        return fail(an, ORIGIN_ERR_MEDIA, "%s: cannot open the audio decoder: %s",
                    an->opts->ts_path, msg);
    }
    return 0;
}

/*
 * t = 0 is the first video packet's DTS, which may come after audio packets in the file: one
 * pass over the packets finds it (it stops there, so it costs a fraction of a second's demuxing
 * in a normal file), then the file is opened again for the analysis proper.
 */
static int find_t0(analysis_t *an)
{
    double first_audio = NAN;
    int found = 0;

    /* Without video the first audio packet is t = 0, and the pass stops there. */
    while (!found && (an->vi >= 0 || isnan(first_audio)) && av_read_frame(an->fmt, an->pkt) >= 0) {
        const AVStream *s = an->fmt->streams[an->pkt->stream_index];
        double t = ts_seconds(s, an->pkt->dts != AV_NOPTS_VALUE ? an->pkt->dts : an->pkt->pts);
        if (!isnan(t)) {
            if (an->pkt->stream_index == an->vi) {
                an->t0 = t;
                found = 1;
            } else if (an->pkt->stream_index == an->ai && isnan(first_audio)) {
                first_audio = t;
            }
        }
        av_packet_unref(an->pkt);
    }
    if (!found && isnan(first_audio))
        return fail(an, ORIGIN_ERR_MEDIA, "%s: no timestamped audio or video packet",
                    an->opts->ts_path);
    if (!found)
        an->t0 = first_audio;
    avformat_close_input(&an->fmt);
    return open_media(an);
}

/* One short-term loudness value at media time `t`. */
static int loudness(analysis_t *an, double t, double lufs)
{
    int rv;

    t = fmax(t, an->t_audio); /* each kind in time order, as shorts.h requires */
    if ((rv = feed_events(an, t)) != 0)
        return rv;
    if ((rv = shorts_loudness(an->d, t, lufs)) != 0)
        return fail(an, rv == SHORTS_ERR_NOMEM ? ORIGIN_ERR_NOMEM : ORIGIN_ERR_MEDIA,
                    "the detector refused a loudness value at t=%.3f: %s", t, shorts_strerror(rv));
    an->t_audio = t;
    if (an->opts->signals != NULL) {
        sw_str_printf(&an->line, "{\"signal\":\"loudness\",\"t\":%.4f,\"lufs\":", t);
        if (isfinite(lufs))
            sw_str_printf(&an->line, "%.3f}", lufs);
        else
            sw_str_puts(&an->line, "null}");
        if ((rv = put_signal(an)) != 0)
            return rv;
    }
    return poll_moments(an);
}

/*
 * The frame's samples as interleaved floats in an->buf, whatever the decoder gave (AAC's is
 * planar float): libebur128 takes interleaved frames only, and converting by hand here spares a
 * dependency on libswresample.
 */
static int interleave(analysis_t *an, const AVFrame *fr, int ch)
{
    size_t n = (size_t)fr->nb_samples * (size_t)ch;
    enum AVSampleFormat fmt = (enum AVSampleFormat)fr->format;
    enum AVSampleFormat packed = av_get_packed_sample_fmt(fmt);
    int planar = av_sample_fmt_is_planar(fmt);

    if (n > an->bufcap) {
        float *nb = realloc(an->buf, n * sizeof(*nb));
        if (nb == NULL)
            return nomem(an);
        an->buf = nb;
        an->bufcap = n;
    }
    for (int c = 0; c < ch; c++) {
        const uint8_t *plane = fr->extended_data[planar ? c : 0];
        for (int i = 0; i < fr->nb_samples; i++) {
            size_t at = planar ? (size_t)i : (size_t)i * (size_t)ch + (size_t)c;
            float v;
            switch (packed) {
            case AV_SAMPLE_FMT_FLT:
                v = ((const float *)plane)[at];
                break;
            case AV_SAMPLE_FMT_DBL:
                v = (float)((const double *)plane)[at];
                break;
            case AV_SAMPLE_FMT_S16:
                v = ((const int16_t *)plane)[at] / 32768.f;
                break;
            case AV_SAMPLE_FMT_S32:
                v = (float)(((const int32_t *)plane)[at] / 2147483648.);
                break;
            case AV_SAMPLE_FMT_U8:
                v = (((const uint8_t *)plane)[at] - 128) / 128.f;
                break;
            default:
                return fail(an, ORIGIN_ERR_MEDIA, "%s: unsupported audio sample format %s",
                            an->opts->ts_path, av_get_sample_fmt_name(fmt));
            }
            an->buf[(size_t)i * (size_t)ch + (size_t)c] = v;
        }
    }
    return 0;
}

/* One decoded audio frame: fed to libebur128, measured at every MEASURE_EVERY_S boundary. */
static int audio_frame(analysis_t *an, const AVFrame *fr)
{
    const AVStream *s = an->fmt->streams[an->ai];
    int ch = fr->ch_layout.nb_channels, rv;

    if (ch <= 0 || fr->sample_rate <= 0 || fr->nb_samples <= 0)
        return 0;
    if (an->r128 == NULL || ch != an->channels || fr->sample_rate != an->rate) {
        /* A new format starts a new measurement: the 3 s window restarts, as after a cut. */
        if (an->r128 == NULL)
            an->r128 = ebur128_init((unsigned)ch, (unsigned long)fr->sample_rate, EBUR128_MODE_S);
        else if (ebur128_change_parameters(an->r128, (unsigned)ch,
                                           (unsigned long)fr->sample_rate) == EBUR128_ERROR_NOMEM)
            return nomem(an);
        if (an->r128 == NULL)
            return nomem(an);
        an->channels = ch;
        an->rate = fr->sample_rate;
        an->step = (int64_t)lround(fr->sample_rate * MEASURE_EVERY_S);
        if (an->step < 1)
            an->step = 1;
        an->pending = 0;
    }
    double start = ts_seconds(s, fr->best_effort_timestamp) - an->t0;
    if (isnan(start)) /* no timestamp: it follows the previous frame */
        start = an->t_audio == -HUGE_VAL ? 0 : an->t_audio;
    if ((rv = interleave(an, fr, ch)) != 0)
        return rv;
    for (int64_t off = 0; off < fr->nb_samples;) {
        int64_t n = an->step - an->pending;
        if (n > fr->nb_samples - off)
            n = fr->nb_samples - off;
        if (ebur128_add_frames_float(an->r128, an->buf + off * ch, (size_t)n) != EBUR128_SUCCESS)
            return nomem(an);
        off += n;
        an->pending += n;
        if (an->pending < an->step)
            continue;
        an->pending = 0;
        double lufs;
        if (ebur128_loudness_shortterm(an->r128, &lufs) != EBUR128_SUCCESS)
            lufs = -HUGE_VAL;
        /* The value is that of the 3 s that end here: it is stamped with their end. */
        if ((rv = loudness(an, start + (double)off / fr->sample_rate, lufs)) != 0)
            return rv;
    }
    return 0;
}

/* Sends one packet to the audio decoder (NULL: flush) and measures what comes out. */
static int audio_packet(analysis_t *an, const AVPacket *pkt)
{
    int rv = avcodec_send_packet(an->dec, pkt);
    if (rv < 0 && rv != AVERROR_EOF) {
        /* A damaged packet: the decoder resumes on the next, as a player would. */
        an->bad_packets++;
        return 0;
    }
    while ((rv = avcodec_receive_frame(an->dec, an->frame)) >= 0) {
        rv = audio_frame(an, an->frame);
        av_frame_unref(an->frame);
        if (rv != 0)
            return rv;
    }
    if (rv != AVERROR(EAGAIN) && rv != AVERROR_EOF)
        an->bad_packets++;
    return 0;
}

static int video_packet(analysis_t *an, const AVPacket *pkt)
{
    const AVStream *s = an->fmt->streams[an->vi];
    double t = ts_seconds(s, pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts) - an->t0;
    int key = (pkt->flags & AV_PKT_FLAG_KEY) != 0, rv;

    if (isnan(t))
        return 0;
    t = fmax(t, an->t_video);
    if ((rv = feed_events(an, t)) != 0)
        return rv;
    if ((rv = shorts_video(an->d, t, (size_t)pkt->size, key)) != 0)
        return fail(an, rv == SHORTS_ERR_NOMEM ? ORIGIN_ERR_NOMEM : ORIGIN_ERR_MEDIA,
                    "the detector refused a video frame at t=%.3f: %s", t, shorts_strerror(rv));
    an->t_video = t;
    if (an->opts->signals != NULL) {
        sw_str_printf(&an->line, "{\"signal\":\"video\",\"t\":%.4f,\"bytes\":%d,\"key\":%s}", t,
                      pkt->size, key ? "true" : "false");
        if ((rv = put_signal(an)) != 0)
            return rv;
    }
    return poll_moments(an);
}

static int run_media(analysis_t *an)
{
    char msg[128];
    int rv;

    if (an->opts->signals != NULL) {
        sw_str_printf(&an->line, "{\"signal\":\"start\",\"t0\":\"%s\",\"video\":%s,\"audio\":%s}",
                      an->vi >= 0 ? "video" : "audio", an->vi >= 0 ? "true" : "false",
                      an->ai >= 0 ? "true" : "false");
        if ((rv = put_signal(an)) != 0)
            return rv;
    }
    while ((rv = av_read_frame(an->fmt, an->pkt)) >= 0) {
        if (an->pkt->stream_index == an->vi)
            rv = video_packet(an, an->pkt);
        else if (an->pkt->stream_index == an->ai)
            rv = audio_packet(an, an->pkt);
        else
            rv = 0;
        av_packet_unref(an->pkt);
        if (rv != 0)
            return rv;
    }
    if (rv != AVERROR_EOF) {
        av_strerror(rv, msg, sizeof(msg));
        return fail(an, ORIGIN_ERR_MEDIA, "%s: read error: %s", an->opts->ts_path, msg);
    }
    if (an->ai >= 0 && (rv = audio_packet(an, NULL)) != 0)
        return rv;
    return 0;
}

/* The rest of the events (those past the media's end), the end of the input, the last moments. */
static int finish(analysis_t *an)
{
    int rv;
    double end = fmax(an->t_video, an->t_audio);

    if (an->nev > 0)
        end = fmax(end, an->ev[an->nev - 1].a.ev.t);
    if ((rv = feed_events(an, HUGE_VAL)) != 0)
        return rv;
    shorts_finish(an->d);
    if ((rv = take_moments(an, end)) != 0)
        return rv;
    sw_str_puts(&an->moments, an->nmoments ? "\n]\n" : "]\n");
    if (an->moments.failed)
        return nomem(an);
    if (fwrite(an->moments.p, 1, an->moments.len, an->opts->out) != an->moments.len ||
        fflush(an->opts->out) != 0)
        return fail(an, ORIGIN_ERR_IO, "cannot write the moments: %s", strerror(errno));
    if (an->opts->signals != NULL && fflush(an->opts->signals) != 0)
        return fail(an, ORIGIN_ERR_IO, "cannot write the signals: %s", strerror(errno));
    if (an->bad_packets > 0)
        sw_log(SW_LOG_WARN, "analyze", "%s: %" PRIu64 " audio packets did not decode (skipped)",
               an->opts->ts_path, an->bad_packets);
    return 0;
}

int origin_analyze(const origin_analyze_opts_t *opts, char *err, size_t errlen)
{
    analysis_t an = {.opts = opts,
                     .err = err,
                     .errlen = errlen,
                     .vi = -1,
                     .ai = -1,
                     .t_video = -HUGE_VAL,
                     .t_audio = -HUGE_VAL,
                     .polled = -HUGE_VAL};
    int rv;

    sw_str_init(&an.moments);
    sw_str_init(&an.line);
    sw_str_puts(&an.moments, "[");
    origin__demux_global_init(); /* libav's log lines go to ours, at debug level */
    if ((rv = shorts_detector_new(&an.d, opts->shorts)) != 0) {
        rv = rv == SHORTS_ERR_NOMEM
                 ? nomem(&an)
                 : fail(&an, ORIGIN_ERR_CONFIG, "the detector's settings: %s", shorts_strerror(rv));
        goto out;
    }
    if (opts->events_path != NULL && (rv = read_events(&an, opts->events_path)) != 0)
        goto out;
    if ((an.pkt = av_packet_alloc()) == NULL || (an.frame = av_frame_alloc()) == NULL) {
        rv = nomem(&an);
        goto out;
    }
    if ((rv = open_media(&an)) != 0 || (rv = find_t0(&an)) != 0 ||
        (an.ai >= 0 && (rv = open_decoder(&an)) != 0) || (rv = run_media(&an)) != 0 ||
        (rv = finish(&an)) != 0)
        goto out;
out:
    if (an.r128 != NULL)
        ebur128_destroy(&an.r128);
    free(an.buf);
    avcodec_free_context(&an.dec);
    avformat_close_input(&an.fmt);
    av_frame_free(&an.frame);
    av_packet_free(&an.pkt);
    free(an.ev);
    shorts_detector_free(an.d);
    sw_str_dispose(&an.moments);
    sw_str_dispose(&an.line);
    return rv;
}
