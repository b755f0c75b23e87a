/*
 * Runs the sw HTTP server on a real uv loop in a second thread, bound to 127.0.0.1:0, and drives
 * it with blocking client sockets from the test thread: keep-alive, a held request answered from
 * a uv_timer, abort on client disconnect, a streamed chunked response, HEAD, 431 and 400; which
 * connections get TCP_NOTSENT_LOWAT; and the errors of the TLS setup calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sw/http.h"

static uv_loop_t loop;
static uv_async_t stop_async;
static sw_http_server_t *server;
static pthread_t thread;
static int port;
static atomic_int aborts;
static atomic_int closed_cb;

typedef struct held {
    uv_timer_t timer;
    sw_http_req_t *req;
    int writes; /* > 0: streamed; writes left */
} held_t;

static void on_held_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_abort(sw_http_req_t *req, void *data)
{
    held_t *h = data;
    atomic_fetch_add(&aborts, 1);
    uv_close((uv_handle_t *)&h->timer, on_held_closed);
}

static void on_held_timer(uv_timer_t *t)
{
    held_t *h = t->data;
    sw_http_req_t *req = h->req;
    if (h->writes > 0) {
        sw_http_write(req, "part\n", 5);
        if (--h->writes > 0)
            return; /* the repeating timer fires again */
        uv_close((uv_handle_t *)&h->timer, on_held_closed);
        sw_http_end(req);
        return;
    }
    uv_close((uv_handle_t *)&h->timer, on_held_closed);
    sw_http_respond(req, 200, NULL, 0, "late\n", 5);
}

static void on_request(void *data, sw_http_req_t *req)
{
    if (strcmp(req->path, "/hello") == 0) {
        static const sw_http_header_t h[] = {{"Content-Type", "text/plain"}};
        sw_http_respond(req, 200, h, 1, "hello\n", 6);
        return;
    }
    if (strcmp(req->path, "/hold") == 0 || strcmp(req->path, "/stream") == 0) {
        held_t *h = calloc(1, sizeof(*h));
        assert_non_null(h);
        h->req = req;
        uv_timer_init(&loop, &h->timer);
        h->timer.data = h;
        sw_http_req_on_abort(req, on_abort, h);
        if (strcmp(req->path, "/stream") == 0) {
            h->writes = 3;
            assert_int_equal(sw_http_start(req, 200, NULL, 0, -1), 0);
            assert_int_equal(sw_http_start(req, 200, NULL, 0, -1), SW_ERR_STATE);
            uv_timer_start(&h->timer, on_held_timer, 20, 20);
        } else {
            uv_timer_start(&h->timer, on_held_timer, strstr(req->query, "long") ? 10000 : 150, 0);
        }
        return;
    }
    sw_http_respond_error(req, 404, "not found");
}

static void on_server_closed(void *data)
{
    atomic_store(&closed_cb, 1);
    uv_close((uv_handle_t *)&stop_async, NULL);
}

static void on_stop(uv_async_t *a)
{
    sw_http_server_close(server, on_server_closed, NULL);
}

static void *run_loop(void *arg)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    sw_http_server_config_t cfg;
    sw_http_server_config_init(&cfg);
    cfg.max_header_bytes = 1024;
    cfg.header_timeout_ms = 2000;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sw_http_server_new(&server, &loop, &cfg, on_request, NULL), 0);
    const char *why = NULL;
    assert_int_equal(sw_http_server_listen(server, "127.0.0.1:0", 0, &port, &why), 0);
    assert_true(port > 0);
    assert_int_not_equal(sw_http_server_listen(server, "nonsense", 0, NULL, &why), 0);
    assert_non_null(why);
    uv_async_init(&loop, &stop_async, on_stop);
    assert_int_equal(pthread_create(&thread, NULL, run_loop, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    uv_async_send(&stop_async);
    pthread_join(thread, NULL);
    assert_true(atomic_load(&closed_cb));
    sw_http_server_free(server);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

/* Reads until `end` has been seen (or the peer closes, with end NULL). Bounded by SO_RCVTIMEO. */
static size_t recv_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (end != NULL && strstr(buf, end) != NULL)
            break;
    }
    return len;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_keepalive(void **state)
{
    char buf[4096];
    int fd = client();
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), "hello\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 6\r\n"));
    assert_non_null(strstr(buf, "Server: shortwave\r\n"));
    assert_non_null(strstr(buf, "Date: "));
    send_str(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), "not found\n");
    assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(buf, "Content-Type: text/plain"));
    close(fd);
}

static void test_held(void **state)
{
    char buf[4096];
    int fd = client();
    double t0 = now_s();
    /* Pipelined behind the held request: must come out second. */
    send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), "hello\n");
    assert_true(now_s() - t0 >= 0.14);
    char *late = strstr(buf, "late\n"), *hello = strstr(buf, "hello\n");
    assert_non_null(late);
    assert_non_null(hello);
    assert_true(late < hello);
    close(fd);
}

static void test_abort(void **state)
{
    int before = atomic_load(&aborts);
    int fd = client();
    send_str(fd, "GET /hold?long HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(100 * 1000);
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&aborts) == before; i++)
        usleep(10 * 1000);
    assert_int_equal(atomic_load(&aborts), before + 1);
}

static void test_stream(void **state)
{
    char buf[4096];
    int fd = client();
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), "0\r\n\r\n");
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "5\r\npart\n\r\n5\r\npart\n\r\n5\r\npart\n\r\n0\r\n\r\n");
    close(fd);
    /* HTTP/1.0: no chunking, the body ends with the connection */
    fd = client();
    send_str(fd, "GET /stream HTTP/1.0\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), NULL);
    assert_null(strstr(buf, "chunked"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    body = strstr(buf, "\r\n\r\n");
    assert_string_equal(body + 4, "part\npart\npart\n");
    close(fd);
}

static void test_head(void **state)
{
    char buf[4096];
    int fd = client();
    send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), NULL);
    /* the first response has Content-Length: 6 and no body: the second starts right after */
    const char *first_end = strstr(buf, "\r\n\r\n");
    assert_non_null(first_end);
    assert_non_null(strstr(buf, "Content-Length: 6\r\n"));
    assert_memory_equal(first_end + 4, "HTTP/1.1 200 OK", 15);
    assert_non_null(strstr(first_end, "hello\n"));
    close(fd);
}

static void test_bad(void **state)
{
    char buf[8192];
    int fd = client();
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nX: ");
    char big[2048];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    send(fd, big, strlen(big), MSG_NOSIGNAL);
    recv_until(fd, buf, sizeof(buf), NULL);
    assert_memory_equal(buf, "HTTP/1.1 431 ", 13);
    close(fd);

    fd = client();
    send_str(fd, "GET /hel lo HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), NULL);
    assert_memory_equal(buf, "HTTP/1.1 400 ", 13);
    close(fd);

    fd = client();
    send_str(fd, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), NULL);
    assert_memory_equal(buf, "HTTP/1.1 413 ", 13);
    close(fd);

    /* and the server still answers */
    fd = client();
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), NULL);
    assert_non_null(strstr(buf, "hello\n"));
    close(fd);
}

/* The server's end of client socket `fd`: the server runs in this process, so its accepted
 * socket is one of our descriptors, the one whose peer is the client's local address. */
static int server_end(int fd)
{
    struct sockaddr_in me, a, b;
    socklen_t len = sizeof(me);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    for (int i = 3; i < 1024; i++) {
        socklen_t la = sizeof(a), lb = sizeof(b);
        if (i != fd && getsockname(i, (struct sockaddr *)&a, &la) == 0 &&
            getpeername(i, (struct sockaddr *)&b, &lb) == 0 && a.sin_family == AF_INET &&
            a.sin_port == htons((uint16_t)port) && b.sin_port == me.sin_port)
            return i;
    }
    fail_msg("no server socket for the client's port %u", ntohs(me.sin_port));
    return -1;
}

static int notsent_lowat(int fd)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(server_end(fd), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len), 0);
    return v;
}

/* TCP_NOTSENT_LOWAT (the default 256 KiB) is set on a connection once it speaks HTTP/2, where
 * it lets the server order frames; an HTTP/1.1 connection keeps the kernel's (0 reads back). */
static void test_notsent_lowat(void **state)
{
    char buf[4096];
    int h1 = client();
    send_str(h1, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(h1, buf, sizeof(buf), "hello\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_int_equal(notsent_lowat(h1), 0);

    int h2 = client();
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                  "\0\0\0\4\0\0\0\0\0"; /* and an empty SETTINGS frame */
    assert_int_equal(send(h2, preface, sizeof(preface) - 1, 0), (ssize_t)sizeof(preface) - 1);
    /* The server's SETTINGS frame (type 4) comes after its HTTP/2 session was set up. */
    assert_true(recv(h2, buf, 9, MSG_WAITALL) == 9);
    assert_int_equal(buf[3], 4);
    assert_int_equal(notsent_lowat(h2), 256 * 1024);
    close(h1);
    close(h2);
}

/* TLS setup errors, on a server of its own that never runs: files that cannot be loaded are
 * SW_ERR_INVAL with a reason naming the file; a reload without a TLS listener is SW_ERR_STATE. */
static void test_tls_errors(void **state)
{
    uv_loop_t l2;
    sw_http_server_t *s2;
    const char *why = NULL;
    assert_int_equal(uv_loop_init(&l2), 0);
    assert_int_equal(sw_http_server_new(&s2, &l2, NULL, on_request, NULL), 0);
    assert_int_equal(
        sw_http_server_reload_tls(s2, "/nonexistent/c.pem", "/nonexistent/k.pem", &why),
        SW_ERR_STATE);
    assert_int_equal(sw_http_server_listen_tls(s2, "127.0.0.1:0", 0, "/nonexistent/c.pem",
                                               "/nonexistent/k.pem", NULL, &why),
                     SW_ERR_INVAL);
    assert_non_null(strstr(why, "/nonexistent/c.pem"));
    char path[] = "/tmp/sw-test-cert-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a certificate\n", 18), 18);
    close(fd);
    assert_int_equal(sw_http_server_listen_tls(s2, "127.0.0.1:0", 0, path, path, NULL, &why),
                     SW_ERR_INVAL);
    assert_non_null(strstr(why, path));
    unlink(path);
    sw_http_server_close(s2, NULL, NULL);
    uv_run(&l2, UV_RUN_DEFAULT);
    sw_http_server_free(s2);
    assert_int_equal(uv_loop_close(&l2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive),     cmocka_unit_test(test_held),
        cmocka_unit_test(test_abort),         cmocka_unit_test(test_stream),
        cmocka_unit_test(test_head),          cmocka_unit_test(test_bad),
        cmocka_unit_test(test_notsent_lowat), cmocka_unit_test(test_tls_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
