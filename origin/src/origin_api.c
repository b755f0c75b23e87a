/*
 * origin_api.c: the control API (JSON) and Prometheus metrics.
 *
 *   GET    /api/streams          every stream the origin knows, live or not
 *   GET    /api/streams/NAME     one stream, with its publisher's SRT statistics
 *   DELETE /api/streams/NAME     drops the publisher (the stream and its DVR window stay)
 *   GET    /api/time             the clock, ISO 8601 (DASH UTCTiming)
 *   GET    /api/latency          frame-arrival-to-part-servable latency, p50/p90/p99 (ms), in all,
 *                                 by track ("video", "audio") and for parts' last frames only
 *                                 ("last_frame": the origin's own delay)
 *   POST   /api/rooms/ROOM/events  a room event, stamped and written to Redis (origin_rooms.c)
 *   GET    /metrics              Prometheus text format
 *
 * What changes things (POST, DELETE) takes `Authorization: Bearer API_TOKEN` when api_token is
 * set, and comes from loopback only when it is not: an open port must not let anyone drop a
 * publisher or put a product on every viewer's screen. The origin refuses to start without a token
 * when its HTTP listener is not on loopback (origin_config_check()). A POST takes only
 * `Content-Type: application/json`, and no /api/ answer but /api/time (the players' UTCTiming
 * source) carries CORS headers, so a web page on another origin can neither read the API nor
 * post to it without a preflight that fails.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin_int.h"
#include "sw/log.h"
#include "sw/str.h"

void origin__send_json(sw_http_req_t *req, int status, sw_str_t *s)
{
    /* No CORS header: the control API is for operators' tools, not for web pages on other
     * origins, and a browser shows them none of it. */
    sw_http_header_t h[] = {
        {"content-type", "application/json"},
        {"cache-control", "no-store"},
    };
    if (s->failed)
        sw_http_respond_error(req, 500, "out of memory");
    else
        sw_http_respond(req, status, h, SW_ARRAY_SIZE(h), s->p, s->len);
}

void origin__json_error(sw_http_req_t *req, int status, const char *msg)
{
    sw_str_t s;
    sw_str_init(&s);
    sw_str_puts(&s, "{\"error\":\"");
    sw_str_json_escape(&s, msg);
    sw_str_puts(&s, "\"}\n");
    origin__send_json(req, status, &s);
    sw_str_dispose(&s);
}

static const char *codec_name(hls_codec_t c)
{
    switch (c) {
    case HLS_CODEC_H264:
        return "h264";
    case HLS_CODEC_HEVC:
        return "hevc";
    case HLS_CODEC_AAC:
        return "aac";
    case HLS_CODEC_OPUS:
        return "opus";
    default:
        return "none";
    }
}

static void stream_json(sw_str_t *s, origin_stream_t *st, int detail)
{
    int64_t now = sw_now_ms();
    hls_stream_stats_t hs;
    hls_stream_get_stats(st->hls, &hs);
    const hls_track_t *v = hls_stream_track(st->hls, HLS_VIDEO);
    const hls_track_t *a = hls_stream_track(st->hls, HLS_AUDIO);

    sw_str_puts(s, "{\"name\":\"");
    sw_str_json_escape(s, st->name);
    sw_str_printf(s, "\",\"live\":%s,\"publisher\":\"", st->pub ? "true" : "false");
    sw_str_json_escape(s, st->peer);
    sw_str_printf(s, "\",\"uptime_s\":%.1f,\"publishes\":%" PRIu64,
                  st->pub ? (double)(now - st->publish_ms) / 1000.0 : 0.0, st->publishes);
    sw_str_printf(s,
                  ",\"urls\":{\"hls\":\"/live/%s/index.m3u8\",\"dash\":\"/live/%s/manifest.mpd\"}",
                  st->name, st->name);
    if (v != NULL && v->codec != HLS_CODEC_NONE)
        sw_str_printf(s,
                      ",\"video\":{\"codec\":\"%s\",\"codecs\":\"%s\",\"width\":%u,\"height\":%u,"
                      "\"bitrate\":%u,\"last_msn\":%" PRId64 "}",
                      codec_name(v->codec), v->codecs, v->width, v->height, v->bandwidth,
                      (int64_t)v->next_msn - 1);
    if (a != NULL && a->codec != HLS_CODEC_NONE)
        sw_str_printf(s,
                      ",\"audio\":{\"codec\":\"%s\",\"codecs\":\"%s\",\"sample_rate\":%u,"
                      "\"channels\":%u,\"bitrate\":%u}",
                      codec_name(a->codec), a->codecs, a->sample_rate, a->channels, a->bandwidth);
    sw_str_printf(s,
                  ",\"packets\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"segments\":%" PRIu64
                  ",\"parts\":%" PRIu64 ",\"dropped_samples\":%" PRIu64
                  ",\"discontinuities\":%" PRIu64,
                  st->packets, st->bytes_in, hs.segments, hs.parts, hs.dropped, hs.discontinuities);
    origin_srt_stats_t ss;
    if (detail && st->pub != NULL && origin_pub_stats(st->pub, &ss) == 0)
        sw_str_printf(s,
                      ",\"srt\":{\"rtt_ms\":%.3f,\"recv_mbps\":%.3f,\"packets\":%" PRId64
                      ",\"lost\":%" PRId64 ",\"retransmitted\":%" PRId64 ",\"dropped\":%" PRId64
                      ",\"bytes\":%" PRId64 ",\"buffer_ms\":%d,\"latency_ms\":%d}",
                      ss.rtt_ms, ss.recv_mbps, ss.pkt_recv, ss.pkt_loss, ss.pkt_retrans,
                      ss.pkt_drop, ss.bytes_recv, ss.buffer_ms, ss.latency_ms);
    sw_str_puts(s, "}");
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Appends "samples" and, once there are some, the window's quantiles of `l`. */
static void latency_fields(sw_str_t *s, const origin_latency_t *l)
{
    uint32_t n = l->count < ORIGIN_LAT_RING ? (uint32_t)l->count : ORIGIN_LAT_RING;

    sw_str_printf(s, "\"samples\":%" PRIu64, l->count);
    float *sorted = n ? malloc(n * sizeof(float)) : NULL;
    if (sorted != NULL) {
        memcpy(sorted, l->ring, n * sizeof(float));
        qsort(sorted, n, sizeof(float), cmp_float);
        sw_str_printf(s,
                      ",\"window\":%u,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,"
                      "\"max_ms\":%.2f",
                      n, sorted[n / 2], sorted[(n * 9) / 10], sorted[(n * 99) / 100],
                      sorted[n - 1]);
        free(sorted);
    }
}

static void latency_json(struct origin *o, sw_http_req_t *req)
{
    sw_str_t s;

    sw_str_init(&s);
    sw_str_puts(&s, "{");
    latency_fields(&s, &o->latency);
    sw_str_puts(&s, ",\"video\":{");
    latency_fields(&s, &o->latency_track[HLS_VIDEO]);
    sw_str_puts(&s, "},\"audio\":{");
    latency_fields(&s, &o->latency_track[HLS_AUDIO]);
    sw_str_puts(&s, "},\"last_frame\":{");
    latency_fields(&s, &o->latency_last);
    sw_str_puts(&s, "}}\n");
    origin__send_json(req, 200, &s);
    sw_str_dispose(&s);
}

void origin__api_handle(struct origin *o, sw_http_req_t *req, const char *path)
{
    sw_str_t s;
    int is_get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

    if (strcmp(path, "time") == 0 && is_get) {
        char iso[40];
        sw_iso8601(sw_now_ms(), iso, sizeof(iso));
        sw_http_header_t h[] = {
            {"content-type", "text/plain"},
            {"cache-control", "no-store"},
            {"access-control-allow-origin", "*"},
        };
        sw_http_respond(req, 200, h, SW_ARRAY_SIZE(h), iso, strlen(iso));
        return;
    }
    if (strcmp(path, "latency") == 0 && is_get) {
        latency_json(o, req);
        return;
    }
    if (strcmp(path, "streams") == 0 && is_get) {
        sw_str_init(&s);
        sw_str_puts(&s, "{\"streams\":[");
        for (origin_stream_t *st = o->streams; st != NULL; st = st->next) {
            stream_json(&s, st, 0);
            if (st->next != NULL)
                sw_str_puts(&s, ",");
        }
        sw_str_puts(&s, "]}\n");
        origin__send_json(req, 200, &s);
        sw_str_dispose(&s);
        return;
    }
    if (strncmp(path, "rooms/", 6) == 0) {
        origin__rooms_api(o, req, path + 6);
        return;
    }
    if (strncmp(path, "streams/", 8) == 0) {
        origin_stream_t *st = origin__stream_find(o, path + 8);
        if (st == NULL) {
            origin__json_error(req, 404, "no such stream");
            return;
        }
        if (is_get) {
            sw_str_init(&s);
            stream_json(&s, st, 1);
            sw_str_puts(&s, "\n");
            origin__send_json(req, 200, &s);
            sw_str_dispose(&s);
            return;
        }
        if (strcmp(req->method, "DELETE") == 0) {
            if (!origin__api_allowed(o, req)) {
                origin__json_error(req, o->api_token != NULL ? 401 : 403,
                                   o->api_token != NULL
                                       ? "missing or wrong Authorization: Bearer token"
                                       : "only from loopback while the origin has no "
                                         "api_token");
                return;
            }
            if (st->pub == NULL) {
                origin__json_error(req, 409, "stream has no publisher");
                return;
            }
            sw_log(SW_LOG_INFO, "api", "%s: publisher %s dropped by %s", st->name, st->peer,
                   req->peer);
            origin_ingest_drop(o->ingest, st->pub, "dropped through the API");
            sw_str_init(&s);
            sw_str_puts(&s, "{\"dropped\":\"");
            sw_str_json_escape(&s, st->name);
            sw_str_puts(&s, "\"}\n");
            origin__send_json(req, 200, &s);
            sw_str_dispose(&s);
            return;
        }
        origin__json_error(req, 405, "method not allowed");
        return;
    }
    origin__json_error(req, 404, "no such API");
}

/* Prometheus. Label values are stream names, already restricted to [A-Za-z0-9_-]. */

void origin__metrics_handle(struct origin *o, sw_http_req_t *req)
{
    sw_str_t s;
    sw_http_stats_t hs;
    size_t live = 0, waiters = 0;

    sw_str_init(&s);
    for (origin_stream_t *st = o->streams; st != NULL; st = st->next) {
        live += st->pub != NULL;
        waiters += st->waiters[0].n + st->waiters[1].n;
    }
    sw_str_printf(
        &s,
        "# HELP shortwave_origin_streams Streams known to the origin.\n"
        "# TYPE shortwave_origin_streams gauge\n"
        "shortwave_origin_streams{state=\"live\"} %zu\n"
        "shortwave_origin_streams{state=\"offline\"} %zu\n"
        "# TYPE shortwave_origin_publishes_total counter\n"
        "shortwave_origin_publishes_total %" PRIu64 "\n"
        "# TYPE shortwave_origin_unpublishes_total counter\n"
        "shortwave_origin_unpublishes_total %" PRIu64 "\n"
        "# HELP shortwave_origin_streams_forgotten_total Streams offline for longer than the DVR "
        "window, removed with their folders.\n"
        "# TYPE shortwave_origin_streams_forgotten_total counter\n"
        "shortwave_origin_streams_forgotten_total %" PRIu64 "\n"
        "# HELP shortwave_origin_held_requests Requests held for a part not written yet.\n"
        "# TYPE shortwave_origin_held_requests gauge\n"
        "shortwave_origin_held_requests %zu\n"
        "# TYPE shortwave_origin_held_requests_total counter\n"
        "shortwave_origin_held_requests_total %" PRIu64 "\n"
        "# TYPE shortwave_origin_held_timeouts_total counter\n"
        "shortwave_origin_held_timeouts_total %" PRIu64 "\n"
        "# TYPE shortwave_origin_dvr_write_errors_total counter\n"
        "shortwave_origin_dvr_write_errors_total %" PRIu64 "\n",
        live, o->nstreams - live, o->publishes_total, o->unpublishes_total, o->streams_forgotten,
        waiters, o->waiters_total, o->waiters_timed_out, o->dvr_write_errors);

    sw_str_puts(&s,
                "# HELP shortwave_origin_part_latency_ms From a frame leaving the demuxer to "
                "its part being servable.\n# TYPE shortwave_origin_part_latency_ms histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= ORIGIN_LAT_BUCKETS; i++) {
        cum += o->latency.buckets[i];
        if (i < ORIGIN_LAT_BUCKETS)
            sw_str_printf(&s, "shortwave_origin_part_latency_ms_bucket{le=\"%g\"} %" PRIu64 "\n",
                          origin_lat_bounds_ms[i], cum);
        else
            sw_str_printf(&s, "shortwave_origin_part_latency_ms_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                          cum);
    }
    sw_str_printf(&s,
                  "shortwave_origin_part_latency_ms_sum %.3f\n"
                  "shortwave_origin_part_latency_ms_count %" PRIu64 "\n",
                  o->latency.sum_ms, o->latency.count);

    sw_str_puts(&s, "# HELP shortwave_srt_refused_total SRT handshakes refused, by reason.\n"
                    "# TYPE shortwave_srt_refused_total counter\n");
    for (int i = 0; i < ORIGIN_REFUSE__N; i++)
        sw_str_printf(&s, "shortwave_srt_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                      origin_refuse_name(i), origin_ingest_refused(o->ingest, i));

    origin_ingest_counts_t ic;
    origin_ingest_get_counts(o->ingest, &ic);
    sw_str_printf(&s,
                  "# HELP shortwave_origin_ingest_events_total Events the SRT and demux threads "
                  "handed to the loop (publish, track, packet, unpublish).\n"
                  "# TYPE shortwave_origin_ingest_events_total counter\n"
                  "shortwave_origin_ingest_events_total %" PRIu64 "\n"
                  "# HELP shortwave_origin_ingest_handoffs_total Appends to the loop's event "
                  "list, one lock and one uv_async_send each: a demux thread makes one per read "
                  "batch.\n"
                  "# TYPE shortwave_origin_ingest_handoffs_total counter\n"
                  "shortwave_origin_ingest_handoffs_total %" PRIu64 "\n"
                  "# HELP shortwave_origin_ingest_wakeups_total The loop's wake-ups for ingest "
                  "events (hand-offs that come together wake it once).\n"
                  "# TYPE shortwave_origin_ingest_wakeups_total counter\n"
                  "shortwave_origin_ingest_wakeups_total %" PRIu64 "\n",
                  ic.events, ic.handoffs, ic.wakeups);

    static const char *const srt_help = "# TYPE shortwave_srt_rtt_ms gauge\n"
                                        "# TYPE shortwave_srt_receive_mbps gauge\n"
                                        "# TYPE shortwave_srt_buffer_ms gauge\n"
                                        "# TYPE shortwave_srt_latency_ms gauge\n"
                                        "# TYPE shortwave_srt_packets_received_total counter\n"
                                        "# TYPE shortwave_srt_packets_lost_total counter\n"
                                        "# TYPE shortwave_srt_packets_retransmitted_total counter\n"
                                        "# TYPE shortwave_srt_packets_dropped_total counter\n"
                                        "# TYPE shortwave_srt_bytes_received_total counter\n"
                                        "# TYPE shortwave_stream_segments_total counter\n"
                                        "# TYPE shortwave_stream_parts_total counter\n"
                                        "# TYPE shortwave_stream_dropped_samples_total counter\n"
                                        "# TYPE shortwave_stream_discontinuities_total counter\n"
                                        "# TYPE shortwave_stream_bytes_in_total counter\n"
                                        "# TYPE shortwave_stream_forced_cuts_total counter\n";
    sw_str_puts(&s, srt_help);
    for (origin_stream_t *st = o->streams; st != NULL; st = st->next) {
        hls_stream_stats_t h;
        hls_stream_get_stats(st->hls, &h);
        const char *n = st->name;
        sw_str_printf(&s,
                      "shortwave_stream_segments_total{stream=\"%s\"} %" PRIu64 "\n"
                      "shortwave_stream_parts_total{stream=\"%s\"} %" PRIu64 "\n"
                      "shortwave_stream_dropped_samples_total{stream=\"%s\"} %" PRIu64 "\n"
                      "shortwave_stream_discontinuities_total{stream=\"%s\"} %" PRIu64 "\n"
                      "shortwave_stream_bytes_in_total{stream=\"%s\"} %" PRIu64 "\n"
                      "shortwave_stream_forced_cuts_total{stream=\"%s\"} %" PRIu64 "\n",
                      n, h.segments, n, h.parts, n, h.dropped, n, h.discontinuities, n,
                      st->bytes_in, n, h.forced_cuts);
        origin_srt_stats_t ss;
        if (st->pub == NULL || origin_pub_stats(st->pub, &ss) != 0)
            continue;
        sw_str_printf(&s,
                      "shortwave_srt_rtt_ms{stream=\"%s\"} %.3f\n"
                      "shortwave_srt_receive_mbps{stream=\"%s\"} %.3f\n"
                      "shortwave_srt_buffer_ms{stream=\"%s\"} %d\n"
                      "shortwave_srt_latency_ms{stream=\"%s\"} %d\n"
                      "shortwave_srt_packets_received_total{stream=\"%s\"} %" PRId64 "\n"
                      "shortwave_srt_packets_lost_total{stream=\"%s\"} %" PRId64 "\n"
                      "shortwave_srt_packets_retransmitted_total{stream=\"%s\"} %" PRId64 "\n"
                      "shortwave_srt_packets_dropped_total{stream=\"%s\"} %" PRId64 "\n"
                      "shortwave_srt_bytes_received_total{stream=\"%s\"} %" PRId64 "\n",
                      n, ss.rtt_ms, n, ss.recv_mbps, n, ss.buffer_ms, n, ss.latency_ms, n,
                      ss.pkt_recv, n, ss.pkt_loss, n, ss.pkt_retrans, n, ss.pkt_drop, n,
                      ss.bytes_recv);
    }

    sw_http_server_stats(o->http, &hs);
    sw_str_printf(&s,
                  "# TYPE shortwave_http_connections gauge\n"
                  "shortwave_http_connections %" PRIu64 "\n"
                  "# TYPE shortwave_http_requests_total counter\n"
                  "shortwave_http_requests_total{protocol=\"http/1.0\"} %" PRIu64 "\n"
                  "shortwave_http_requests_total{protocol=\"http/1.1\"} %" PRIu64 "\n"
                  "shortwave_http_requests_total{protocol=\"h2\"} %" PRIu64 "\n"
                  "# TYPE shortwave_http_bytes_out_total counter\n"
                  "shortwave_http_bytes_out_total %" PRIu64 "\n"
                  "# TYPE shortwave_http_bad_requests_total counter\n"
                  "shortwave_http_bad_requests_total %" PRIu64 "\n",
                  hs.connections, hs.requests[0], hs.requests[1], hs.requests[2], hs.bytes_out,
                  hs.bad_requests);
    if (o->redis != NULL)
        sw_str_printf(&s,
                      "# TYPE shortwave_redis_connected gauge\n"
                      "shortwave_redis_connected %d\n"
                      "# HELP shortwave_redis_events_reader_connected The XREAD connection for "
                      "room events.\n"
                      "# TYPE shortwave_redis_events_reader_connected gauge\n"
                      "shortwave_redis_events_reader_connected %d\n"
                      "# TYPE shortwave_redis_reconnects_total counter\n"
                      "shortwave_redis_reconnects_total %" PRIu64 "\n",
                      origin__redis_connected(o->redis), origin__redis_reader_connected(o->redis),
                      origin__redis_reconnects(o->redis));
    sw_str_printf(
        &s,
        "# HELP shortwave_origin_room_events_posted_total Events POSTed and written to Redis.\n"
        "# TYPE shortwave_origin_room_events_posted_total counter\n"
        "shortwave_origin_room_events_posted_total %" PRIu64 "\n"
        "# HELP shortwave_origin_room_events_refused_total POSTs refused, by reason.\n"
        "# TYPE shortwave_origin_room_events_refused_total counter\n"
        "shortwave_origin_room_events_refused_total{reason=\"bad_request\"} %" PRIu64 "\n"
        "shortwave_origin_room_events_refused_total{reason=\"unauthorized\"} %" PRIu64 "\n"
        "shortwave_origin_room_events_refused_total{reason=\"not_live\"} %" PRIu64 "\n"
        "# HELP shortwave_origin_room_events_redis_errors_total POSTs that Redis did not take "
        "(not configured, unreachable, an error reply).\n"
        "# TYPE shortwave_origin_room_events_redis_errors_total counter\n"
        "shortwave_origin_room_events_redis_errors_total %" PRIu64 "\n"
        "# HELP shortwave_origin_room_events_read_total Entries read from Redis (XREAD, "
        "XREVRANGE), repeats included.\n"
        "# TYPE shortwave_origin_room_events_read_total counter\n"
        "shortwave_origin_room_events_read_total %" PRIu64 "\n"
        "# TYPE shortwave_origin_room_events_skipped_total counter\n"
        "shortwave_origin_room_events_skipped_total %" PRIu64 "\n",
        o->events_posted, o->events_rejected, o->events_unauthorized, o->events_not_live,
        o->events_redis_errors, o->events_read, o->events_skipped);

    sw_http_header_t h[] = {
        {"content-type", "text/plain; version=0.0.4"},
        {"cache-control", "no-store"},
    };
    if (s.failed)
        sw_http_respond_error(req, 500, "out of memory");
    else
        sw_http_respond(req, 200, h, SW_ARRAY_SIZE(h), s.p, s.len);
    sw_str_dispose(&s);
}
