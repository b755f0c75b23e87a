/*
 * Fuzzes the HTTP/2 server path: the input follows the client connection preface into a
 * connection of the real server core, whose transport discards what the server writes. Requests
 * to "/" are answered at once, "/s..." start a streamed response that stays open (aborted when
 * the connection closes), anything else gets a 404. Body limits are small (4 KiB a body, 8 KiB a
 * connection) so that short inputs reach them; once the connection is closed, no body byte may
 * still be counted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_http_int.h"

static uv_loop_t loop;
static sw_http_server_t *server;

static void on_request(void *data, sw_http_req_t *req)
{
    if (strcmp(req->path, "/") == 0) {
        sw_http_respond(req, 200, NULL, 0, req->body, req->body_len);
    } else if (strncmp(req->path, "/s", 2) == 0) {
        if (sw_http_start(req, 200, NULL, 0, -1) == 0)
            sw_http_write(req, "stream", 6);
    } else {
        sw_http_respond_error(req, 404, "not found");
    }
}

static void fake_on_read(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__conn_feed(c, buf, len);
}

/* The "socket" takes everything at once. */
static void fake_flush(sw__conn_t *c)
{
    sw__queue_consume(&c->out, c->out.bytes);
}

static const sw__transport_t fake = {.name = "fake", .on_read = fake_on_read, .flush = fake_flush};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (server == NULL) {
        sw_http_server_config_t cfg;
        sw_http_server_config_init(&cfg);
        cfg.max_body_bytes = 4096;
        cfg.max_conn_body_bytes = 8192;
        cfg.max_server_body_bytes = 8192;
        cfg.max_streams = 16;
        uv_loop_init(&loop);
        if (sw_http_server_new(&server, &loop, &cfg, on_request, NULL) != 0)
            abort();
    }
    sw__conn_t *c = sw__conn_new(server, &fake);
    if (c == NULL)
        return 0;
    c->tp->on_read(c, sw__h2_preface, sizeof(sw__h2_preface));
    /* Feed in two pieces to exercise resumption inside nghttp2. */
    size_t cut = size / 2;
    c->tp->on_read(c, data, cut);
    c->tp->on_read(c, data + cut, size - cut);
    sw__conn_close(c);
    sw_http_stats_t st;
    sw_http_server_stats(server, &st);
    if (st.body_bytes != 0)
        abort(); /* a body's bytes outlived its stream */
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
