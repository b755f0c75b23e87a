/*
 * HTTP/2 and HTTP/1.1 request bodies in the server core, without sockets: an nghttp2 client
 * session talks to a connection of the real server whose transport hands what the server writes
 * back to the test (as in tests/fuzz/fuzz_sw_http2.c), so every frame is seen. Checks: a body on
 * GET or OPTIONS is answered 400 without a handler call, and the upload is ended with RST_STREAM
 * (NO_ERROR); an empty DATA frame is no body; DELETE may have one (the edge's purge API); a body
 * over max_body_bytes gets 413 before it ends; the per-connection and per-server caps refuse a
 * stream with REFUSED_STREAM while the others complete; bytes held go back to zero; a stream that
 * takes a body gets a larger window than the 64 KiB every stream starts with; HTTP/1.1 refuses
 * bodies on GET (400) and over the server's cap (503).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "sw_http_int.h"

#define MIB (1024 * 1024)

static uv_loop_t loop;
static sw_http_server_t *server;
static int handled; /* handler calls */

/* What the server wrote, not yet given to the client. */
static uint8_t *wire;
static size_t wire_len, wire_cap;

static void on_request(void *data, sw_http_req_t *req)
{
    handled++;
    char body[32];
    int n = snprintf(body, sizeof(body), "%zu", req->body_len);
    sw_http_respond(req, 200, NULL, 0, body, (size_t)n);
}

static void fake_on_read(sw__conn_t *c, const uint8_t *buf, size_t len)
{
    sw__conn_feed(c, buf, len);
}

static void fake_flush(sw__conn_t *c)
{
    size_t n = c->out.bytes;
    if (wire_len + n > wire_cap) {
        wire_cap = (wire_len + n) * 2;
        wire = realloc(wire, wire_cap);
        assert_non_null(wire);
    }
    assert_int_equal(sw__queue_read(&c->out, wire + wire_len, n), n);
    wire_len += n;
}

static const sw__transport_t fake = {.name = "fake", .on_read = fake_on_read, .flush = fake_flush};

static uint32_t idle_timeout_ms = 60000;

static void server_start(size_t max_body, size_t conn_cap, size_t server_cap)
{
    sw_http_server_config_t cfg;
    sw_http_server_config_init(&cfg);
    cfg.idle_timeout_ms = idle_timeout_ms;
    cfg.max_body_bytes = max_body;
    cfg.max_conn_body_bytes = conn_cap;
    cfg.max_server_body_bytes = server_cap;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sw_http_server_new(&server, &loop, &cfg, on_request, NULL), 0);
    handled = 0;
}

static void server_stop(void)
{
    sw_http_server_close(server, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    sw_http_server_free(server);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(wire);
    wire = NULL;
    wire_len = wire_cap = 0;
}

static uint64_t stat_body_bytes(void)
{
    sw_http_stats_t st;
    sw_http_server_stats(server, &st);
    return st.body_bytes;
}

static uint64_t stat_refused(void)
{
    sw_http_stats_t st;
    sw_http_server_stats(server, &st);
    return st.bodies_refused;
}

/* ---- an nghttp2 client on one fake connection ---- */

#define MAX_STREAMS 8

typedef struct stream {
    int32_t id;
    size_t body_left; /* request body bytes still to send */
    size_t hold;      /* the last bytes of it that the client holds back (DEFERRED) */
    int status;       /* response :status, 0 before */
    char data[64];    /* response body */
    size_t data_len;
    int closed;
    uint32_t close_code;
} stream_t;

typedef struct client {
    nghttp2_session *ng;
    sw__conn_t *conn;
    stream_t st[MAX_STREAMS];
    int n;
    int32_t stream_window; /* the server's SETTINGS_INITIAL_WINDOW_SIZE */
    int32_t window_update; /* the largest stream WINDOW_UPDATE received */
} client_t;

static stream_t *find(client_t *cl, int32_t id)
{
    for (int i = 0; i < cl->n; i++)
        if (cl->st[i].id == id)
            return &cl->st[i];
    return NULL;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    stream_t *s = find(ud, frame->hd.stream_id);
    if (s != NULL && namelen == 7 && memcmp(name, ":status", 7) == 0)
        s->status = atoi((const char *)value);
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    stream_t *s = find(ud, id);
    if (s != NULL && s->data_len + len < sizeof(s->data)) {
        memcpy(s->data + s->data_len, data, len);
        s->data_len += len;
    }
    return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    stream_t *s = find(ud, id);
    if (s != NULL) {
        s->closed = 1;
        s->close_code = code;
    }
    return 0;
}

static int on_frame(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    client_t *cl = ud;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        for (size_t i = 0; i < frame->settings.niv; i++)
            if (frame->settings.iv[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
                cl->stream_window = (int32_t)frame->settings.iv[i].value;
    }
    if (frame->hd.type == NGHTTP2_WINDOW_UPDATE && frame->hd.stream_id != 0 &&
        frame->window_update.window_size_increment > cl->window_update)
        cl->window_update = frame->window_update.window_size_increment;
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    stream_t *s = src->ptr;
    if (s->body_left > 0 && s->body_left == s->hold)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = s->body_left - s->hold < length ? s->body_left - s->hold : length;
    memset(buf, 'b', n);
    s->body_left -= n;
    if (s->body_left == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void client_open(client_t *cl)
{
    memset(cl, 0, sizeof(*cl));
    nghttp2_session_callbacks *cbs;
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    assert_int_equal(nghttp2_session_client_new(&cl->ng, cbs, cl), 0);
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(cl->ng, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    cl->conn = sw__conn_new(server, &fake);
    assert_non_null(cl->conn);
}

/* Moves bytes both ways until neither side has anything to say. Bounded. */
static void pump(client_t *cl)
{
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(cl->ng, &p)) > 0) {
            cl->conn->tp->on_read(cl->conn, p, (size_t)n);
            moved = 1;
        }
        assert_true(n == 0);
        if (wire_len > 0) {
            size_t len = wire_len;
            wire_len = 0;
            /* wire may grow while the client reads: the server answers at once */
            uint8_t *copy = malloc(len);
            assert_non_null(copy);
            memcpy(copy, wire, len);
            assert_int_equal(nghttp2_session_mem_recv(cl->ng, copy, len), (ssize_t)len);
            free(copy);
            moved = 1;
        }
        if (!moved)
            return;
    }
    fail_msg("the client and the server kept talking");
}

/* Submits a request; `body` > 0 sends that many bytes; `end_empty`: no body, but the HEADERS
 * frame leaves the stream open and an empty DATA frame ends it. `cl_hdr` adds content-length. */
static stream_t *request(client_t *cl, const char *method, size_t body, int end_empty, int cl_hdr)
{
    assert_true(cl->n < MAX_STREAMS);
    stream_t *s = &cl->st[cl->n++];
    char len[24];
    snprintf(len, sizeof(len), "%zu", body);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nva[] = {NV(":method", method), NV(":scheme", "http"), NV(":path", "/x"),
                        NV(":authority", "t"), NV("content-length", len)};
#undef NV
    s->body_left = body;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    s->id = nghttp2_submit_request(cl->ng, NULL, nva, cl_hdr ? 5 : 4,
                                   body > 0 || end_empty ? &prd : NULL, NULL);
    assert_true(s->id > 0);
    return s;
}

static void client_close(client_t *cl)
{
    sw__conn_close(cl->conn);
    uv_run(&loop, UV_RUN_NOWAIT);
    nghttp2_session_del(cl->ng);
}

/* ---- tests ---- */

/* GET and OPTIONS with a body: 400 without a handler call, RST_STREAM(NO_ERROR) after the
 * answer; GET with an empty DATA frame, or content-length 0, is served, and so is DELETE with a
 * body (the edge's DELETE /api/purge reads a form body). */
static void test_bodyless_methods(void **state)
{
    server_start(MIB, 0, 64 * MIB);
    client_t cl;
    client_open(&cl);
    stream_t *get = request(&cl, "GET", 300000, 0, 0);
    stream_t *opt = request(&cl, "OPTIONS", 10, 0, 1);
    stream_t *del = request(&cl, "DELETE", 10, 0, 1);
    stream_t *empty = request(&cl, "GET", 0, 1, 0);
    stream_t *zero = request(&cl, "GET", 0, 1, 1);
    pump(&cl);
    assert_int_equal(get->status, 400);
    assert_true(get->closed);
    assert_int_equal(get->close_code, NGHTTP2_NO_ERROR);
    assert_true(get->body_left > 0); /* told to stop before it sent everything */
    assert_int_equal(opt->status, 400);
    assert_true(opt->closed);
    assert_int_equal(del->status, 200);
    assert_string_equal(del->data, "10");
    assert_int_equal(empty->status, 200);
    assert_string_equal(empty->data, "0");
    assert_int_equal(zero->status, 200);
    assert_int_equal(handled, 3);
    assert_int_equal(stat_body_bytes(), 0);
    /* the connection serves on */
    stream_t *post = request(&cl, "POST", 5000, 0, 1);
    pump(&cl);
    assert_int_equal(post->status, 200);
    assert_string_equal(post->data, "5000");
    client_close(&cl);
    server_stop();
}

/* A GET announcing a body in its content-length is answered before any DATA is sent: the
 * client's window for it stays closed here, and the 400 must not wait for the upload. */
static void test_bodyless_announced(void **state)
{
    server_start(MIB, 0, 64 * MIB);
    client_t cl;
    client_open(&cl);
    stream_t *get = request(&cl, "GET", 10, 0, 1);
    get->hold = 10; /* only the HEADERS frame goes */
    pump(&cl);
    assert_int_equal(get->status, 400);
    assert_int_equal(get->body_left, 10);
    assert_true(get->closed);
    assert_int_equal(handled, 0);
    client_close(&cl);
    server_stop();
}

/* Three 1 MiB bodies at once on one connection whose cap is 2 MiB: two are served whole, the
 * third is refused with REFUSED_STREAM; the count of buffered bytes goes back to 0. A body over
 * max_body_bytes gets 413 and RST_STREAM(NO_ERROR) before it has all been sent. */
static void test_conn_cap(void **state)
{
    server_start(MIB, 2 * MIB, 64 * MIB);
    client_t cl;
    client_open(&cl);
    stream_t *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = request(&cl, "POST", MIB, 0, 1);
    pump(&cl);
    int ok = 0, refused = 0;
    for (int i = 0; i < 3; i++) {
        assert_true(s[i]->closed);
        if (s[i]->status == 200) {
            assert_string_equal(s[i]->data, "1048576");
            ok++;
        } else if (s[i]->close_code == NGHTTP2_REFUSED_STREAM && s[i]->status == 0) {
            refused++;
        }
    }
    assert_int_equal(ok, 2);
    assert_int_equal(refused, 1);
    assert_int_equal(stat_refused(), 1);
    assert_int_equal(stat_body_bytes(), 0);
    /* bodies have a stream window of their own length beyond the starting 64 KiB */
    assert_int_equal(cl.stream_window, 65535);
    assert_true(cl.window_update >= MIB - 65535);

    stream_t *big = request(&cl, "POST", 4 * MIB, 0, 0);
    pump(&cl);
    assert_int_equal(big->status, 413);
    assert_true(big->closed);
    assert_int_equal(big->close_code, NGHTTP2_NO_ERROR);
    assert_true(big->body_left > 0);
    assert_int_equal(stat_body_bytes(), 0);
    client_close(&cl);
    server_stop();
}

/* The server's cap across connections: two connections each hold 1 MiB of a body not finished
 * yet (the server's cap is 2 MiB); a third connection's announced body is refused before the
 * client has sent any of it, and once the first two have finished, a new body on the third is
 * served. */
static void test_server_cap(void **state)
{
    server_start(MIB, MIB, 2 * MIB);
    client_t a, b, c;
    client_open(&a);
    client_open(&b);
    client_open(&c);
    /* no content-length, and the last byte held back: the bodies stay open */
    stream_t *sa = request(&a, "POST", MIB, 0, 0), *sb = request(&b, "POST", MIB, 0, 0);
    sa->hold = sb->hold = 1;
    pump(&a);
    pump(&b);
    assert_false(sa->closed);
    assert_false(sb->closed);
    assert_int_equal(stat_body_bytes(), 2 * MIB);
    stream_t *sc = request(&c, "POST", 100, 0, 1);
    sc->hold = 100; /* HEADERS only: the refusal must not wait for DATA */
    pump(&c);
    assert_true(sc->closed);
    assert_int_equal(sc->close_code, NGHTTP2_REFUSED_STREAM);
    assert_int_equal(sc->body_left, 100);
    assert_int_equal(stat_refused(), 1);
    /* a and b finish: their bytes go back, c's next body fits */
    client_close(&a);
    client_close(&b);
    assert_int_equal(stat_body_bytes(), 0);
    stream_t *sc2 = request(&c, "POST", 100, 0, 1);
    pump(&c);
    assert_int_equal(sc2->status, 200);
    assert_string_equal(sc2->data, "100");
    client_close(&c);
    server_stop();
}

/* A client that goes quiet with a body half sent: its connection is closed after idle_timeout,
 * like an idle one, and the bytes go back to the server's cap (an HTTP/2 connection with open
 * streams has no idle deadline otherwise, and 32 such clients would hold the default 64 MiB). */
static void test_quiet_upload(void **state)
{
    idle_timeout_ms = 50;
    server_start(MIB, 0, 64 * MIB);
    idle_timeout_ms = 60000;
    client_t cl;
    client_open(&cl);
    stream_t *s = request(&cl, "POST", 1000, 0, 1);
    s->hold = 500;
    pump(&cl);
    assert_int_equal(stat_body_bytes(), 1000);
    /* Only the connection's timer is active: the loop returns once it has fired, or at once
     * when it is not armed. */
    uint64_t t0 = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(stat_body_bytes(), 0);
    assert_true(uv_now(&loop) - t0 >= 40);
    sw_http_stats_t st;
    sw_http_server_stats(server, &st);
    assert_int_equal(st.connections, 0);
    nghttp2_session_del(cl.ng); /* the connection is gone already */
    server_stop();
}

/* HTTP/1.1 on a fake connection: GET with Content-Length > 0 is 400 and the connection closes
 * after it; a head announcing a body over the server's cap is 503; both leave no bytes held. */
static void test_http1(void **state)
{
    server_start(MIB, MIB, MIB);
    sw__conn_t *c = sw__conn_new(server, &fake);
    assert_non_null(c);
    static const char get[] = "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    c->tp->on_read(c, (const uint8_t *)get, sizeof(get) - 1);
    assert_true(wire_len > 12);
    assert_memory_equal(wire, "HTTP/1.1 400 ", 13);
    assert_true(c->close_after_flush);
    assert_int_equal(handled, 0);
    sw__conn_close(c);
    wire_len = 0;

    /* the first connection holds 1 MiB (its head is in, its body is not), the second is 503 */
    sw__conn_t *c1 = sw__conn_new(server, &fake), *c2 = sw__conn_new(server, &fake);
    static const char post[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n";
    c1->tp->on_read(c1, (const uint8_t *)post, sizeof(post) - 1);
    assert_int_equal(wire_len, 0);
    assert_int_equal(stat_body_bytes(), MIB);
    static const char post2[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";
    c2->tp->on_read(c2, (const uint8_t *)post2, sizeof(post2) - 1);
    assert_true(wire_len > 12);
    assert_memory_equal(wire, "HTTP/1.1 503 ", 13);
    assert_int_equal(stat_refused(), 1);
    sw__conn_close(c1);
    sw__conn_close(c2);
    assert_int_equal(stat_body_bytes(), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    server_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodyless_methods), cmocka_unit_test(test_bodyless_announced),
        cmocka_unit_test(test_conn_cap),         cmocka_unit_test(test_server_cap),
        cmocka_unit_test(test_quiet_upload),     cmocka_unit_test(test_http1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
