/*
 * httpd_test: a tiny server on the sw HTTP core for tests/integration/test_http_core.py.
 *
 *   httpd_test [--listen 127.0.0.1:0] [--header-timeout MS] [--idle-timeout MS]
 *              [--max-header BYTES] [--max-streams N] [--max-body BYTES]
 *              [--max-conn-body BYTES] [--max-server-body BYTES] [--log LEVEL]
 *              [--tls PORT|HOST:PORT --cert FILE --key FILE]
 *
 * Prints "listening PORT" on stdout once ready, then "tls PORT" with --tls (HTTP/2 or HTTP/1.1 by
 * ALPN; a bare PORT binds 127.0.0.1). SIGHUP reloads the certificate and key from the same files
 * and prints "reloaded" or "reload failed: WHY". Exits 0 after SIGTERM once everything is closed.
 *   GET /hello          fixed body
 *   GET /stream         chunked, 5 writes 50 ms apart from a timer
 *   GET /hold?ms=N      answered after N ms
 *   GET /big            1 MiB body through sw_http_write_rbuf()
 *   POST /echo          the request body back
 *   POST /len           the request body's length ("N\n"), not the body
 *   GET /stats          the server's counters
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw/http.h"
#include "sw/log.h"

#define BIG_LEN (1024 * 1024)

static sw_rbuf_t *big;
static sw_http_server_t *server;
static uv_signal_t sigterm, sigint, sighup;
static const char *cert_file, *key_file;

typedef struct timed {
    uv_timer_t timer;
    sw_http_req_t *req; /* NULL once answered or aborted */
    int left;           /* /stream writes still to do; 0 for /hold */
    int ms;
} timed_t;

static void on_timed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void timed_done(timed_t *t)
{
    t->req = NULL;
    uv_close((uv_handle_t *)&t->timer, on_timed_closed);
}

static void on_timed_abort(sw_http_req_t *req, void *data)
{
    timed_done(data);
}

static void on_timed(uv_timer_t *timer)
{
    timed_t *t = timer->data;
    sw_http_req_t *req = t->req;
    if (t->left == 0) {
        char body[64];
        int n = snprintf(body, sizeof(body), "held %d\n", t->ms);
        static const sw_http_header_t h = {"Content-Type", "text/plain"};
        timed_done(t);
        sw_http_respond(req, 200, &h, 1, body, (size_t)n);
        return;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "chunk %d\n", 6 - t->left);
    sw_http_write(req, line, (size_t)n);
    if (--t->left == 0) {
        timed_done(t);
        sw_http_end(req);
        return;
    }
    uv_timer_start(&t->timer, on_timed, 50, 0);
}

static void start_timed(sw_http_req_t *req, int left, int ms)
{
    timed_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        sw_http_respond_error(req, 500, "out of memory");
        return;
    }
    t->req = req;
    t->left = left;
    t->ms = ms;
    uv_timer_init(uv_handle_get_loop((uv_handle_t *)&sigterm), &t->timer);
    t->timer.data = t;
    sw_http_req_on_abort(req, on_timed_abort, t);
    uv_timer_start(&t->timer, on_timed, left ? 50 : (uint64_t)ms, 0);
}

static void on_request(void *data, sw_http_req_t *req)
{
    static const sw_http_header_t text = {"Content-Type", "text/plain"};
    if (strcmp(req->path, "/hello") == 0) {
        static const char hello[] = "Hello from shortwave\n";
        sw_http_respond(req, 200, &text, 1, hello, sizeof(hello) - 1);
    } else if (strcmp(req->path, "/stream") == 0) {
        if (sw_http_start(req, 200, &text, 1, -1) == 0)
            start_timed(req, 5, 0);
    } else if (strcmp(req->path, "/hold") == 0) {
        const char *q = strstr(req->query, "ms=");
        int ms = q != NULL ? atoi(q + 3) : 100;
        start_timed(req, 0, ms < 0 ? 0 : ms > 60000 ? 60000 : ms);
    } else if (strcmp(req->path, "/big") == 0) {
        static const sw_http_header_t bin = {"Content-Type", "application/octet-stream"};
        if (sw_http_start(req, 200, &bin, 1, BIG_LEN) != 0)
            return;
        for (size_t off = 0; off < BIG_LEN; off += BIG_LEN / 4)
            sw_http_write_rbuf(req, big, off, BIG_LEN / 4);
        sw_http_end(req);
    } else if (strcmp(req->path, "/echo") == 0) {
        sw_http_respond(req, 200, &text, 1, req->body, req->body_len);
    } else if (strcmp(req->path, "/len") == 0) {
        char body[32];
        int n = snprintf(body, sizeof(body), "%zu\n", req->body_len);
        sw_http_respond(req, 200, &text, 1, body, (size_t)n);
    } else if (strcmp(req->path, "/stats") == 0) {
        sw_http_stats_t st;
        char body[320];
        sw_http_server_stats(server, &st);
        int n = snprintf(body, sizeof(body),
                         "connections %llu\naccepted %llu\nrequests %llu %llu %llu\n"
                         "bytes_out %llu\nbad_requests %llu\nbody_bytes %llu\n"
                         "bodies_refused %llu\n",
                         (unsigned long long)st.connections, (unsigned long long)st.accepted,
                         (unsigned long long)st.requests[0], (unsigned long long)st.requests[1],
                         (unsigned long long)st.requests[2], (unsigned long long)st.bytes_out,
                         (unsigned long long)st.bad_requests, (unsigned long long)st.body_bytes,
                         (unsigned long long)st.bodies_refused);
        sw_http_respond(req, 200, &text, 1, body, (size_t)n);
    } else {
        sw_http_respond_error(req, 404, "not found");
    }
}

static void on_server_closed(void *data)
{
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    const char *why = NULL;
    if (sw_http_server_reload_tls(server, cert_file, key_file, &why) == 0)
        printf("reloaded\n");
    else
        printf("reload failed: %s\n", why);
    fflush(stdout);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sw_log(SW_LOG_INFO, "httpd_test", "signal %d: closing", signum);
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    uv_signal_stop(&sighup);
    sw_http_server_close(server, on_server_closed, NULL);
}

int main(int argc, char **argv)
{
    sw_http_server_config_t cfg;
    const char *listen = "127.0.0.1:0", *tls = NULL;
    sw_http_server_config_init(&cfg);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[i + 1];
        else if (strcmp(argv[i], "--header-timeout") == 0)
            cfg.header_timeout_ms = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--idle-timeout") == 0)
            cfg.idle_timeout_ms = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-header") == 0)
            cfg.max_header_bytes = (size_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-streams") == 0)
            cfg.max_streams = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-body") == 0)
            cfg.max_body_bytes = (size_t)atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--max-conn-body") == 0)
            cfg.max_conn_body_bytes = (size_t)atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--max-server-body") == 0)
            cfg.max_server_body_bytes = (size_t)atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--tls") == 0)
            tls = argv[i + 1];
        else if (strcmp(argv[i], "--cert") == 0)
            cert_file = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key_file = argv[i + 1];
        else if (strcmp(argv[i], "--log") == 0)
            sw_log_set_level(sw_log_level_parse(argv[i + 1]));
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if ((big = sw_rbuf_new(BIG_LEN)) == NULL)
        return 1;
    for (size_t i = 0; i < BIG_LEN; i++)
        big->data[i] = (uint8_t)((i * 7 + i / 251) & 0xff);
    big->len = BIG_LEN;

    uv_loop_t loop;
    uv_loop_init(&loop);
    if (sw_http_server_new(&server, &loop, &cfg, on_request, NULL) != 0)
        return 1;
    int port;
    const char *why = NULL;
    if (sw_http_server_listen(server, listen, 0, &port, &why) != 0) {
        fprintf(stderr, "listen %s: %s\n", listen, why);
        return 1;
    }
    int tls_port = 0;
    if (tls != NULL) {
        char addr[128];
        snprintf(addr, sizeof(addr), strchr(tls, ':') != NULL ? "%s" : "127.0.0.1:%s", tls);
        int rv = sw_http_server_listen_tls(server, addr, 0, cert_file, key_file, &tls_port, &why);
        if (rv != 0) {
            fprintf(stderr, "listen tls %s: %s (%s)\n", addr, why, sw_strerror(rv));
            sw_http_server_close(server, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
            sw_http_server_free(server);
            sw_rbuf_unref(big);
            uv_loop_close(&loop);
            return 1;
        }
    }
    uv_signal_init(&loop, &sigterm);
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sighup);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sighup, on_sighup, SIGHUP);
    printf("listening %d\n", port);
    if (tls != NULL)
        printf("tls %d\n", tls_port);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    sw_http_server_free(server);
    sw_rbuf_unref(big);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
