/*
 * Tests for the HTTP/1.1 request head parser and response head framing (sw_http1.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sw_http_int.h"

static int parse(const char *s, size_t len, sw__http1_head_t *h, const char **why)
{
    sw__http1_head_init(h, 1024);
    *why = NULL;
    return sw__http1_parse_head((const uint8_t *)s, len, h, why);
}

static int span_is(const char *buf, sw__span_t s, const char *want)
{
    return strlen(want) == s.len && memcmp(buf + s.off, want, s.len) == 0;
}

static void test_simple_get(void **state)
{
    const char *req = "GET /live/a.m3u8?_HLS_msn=5&_HLS_part=2 HTTP/1.1\r\n"
                      "Host: example.com\r\nUser-Agent:  t/1 \r\nAccept: */*\r\n\r\n";
    sw__http1_head_t h;
    const char *why;
    assert_int_equal(parse(req, strlen(req), &h, &why), SW__HTTP1_COMPLETE);
    assert_int_equal(h.head_len, strlen(req));
    assert_true(span_is(req, h.method, "GET"));
    assert_true(span_is(req, h.path, "/live/a.m3u8"));
    assert_true(span_is(req, h.query, "_HLS_msn=5&_HLS_part=2"));
    assert_int_equal(h.version, 11);
    assert_int_equal(h.nheaders, 3);
    assert_true(span_is(req, h.headers[1].name, "User-Agent"));
    assert_true(span_is(req, h.headers[1].value, "t/1"));
    assert_int_equal(h.host_index, 0);
    assert_int_equal(h.content_length, -1);
    assert_true(h.keep_alive);
}

static void test_incremental(void **state)
{
    const char *req = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    size_t head = strlen(req) - 5;
    sw__http1_head_t h;
    const char *why;
    sw__http1_head_init(&h, 1024);
    for (size_t i = 0; i < head; i++)
        assert_int_equal(sw__http1_parse_head((const uint8_t *)req, i, &h, &why),
                         SW__HTTP1_INCOMPLETE);
    assert_int_equal(sw__http1_parse_head((const uint8_t *)req, strlen(req), &h, &why),
                     SW__HTTP1_COMPLETE);
    assert_int_equal(h.head_len, head);
    assert_int_equal(h.content_length, 5);
}

static void test_pipelined(void **state)
{
    const char *req = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n";
    sw__http1_head_t h;
    const char *why;
    assert_int_equal(parse(req, strlen(req), &h, &why), SW__HTTP1_COMPLETE);
    assert_true(span_is(req, h.path, "/a"));
    size_t off = h.head_len;
    assert_int_equal(parse(req + off, strlen(req) - off, &h, &why), SW__HTTP1_COMPLETE);
    assert_true(span_is(req + off, h.path, "/b"));
    assert_false(h.keep_alive);
    assert_int_equal(off + h.head_len, strlen(req));
}

static void test_versions_and_connection(void **state)
{
    sw__http1_head_t h;
    const char *why;
    const char *a = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse(a, strlen(a), &h, &why), SW__HTTP1_COMPLETE);
    assert_int_equal(h.version, 10);
    assert_false(h.keep_alive);
    const char *b = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    assert_int_equal(parse(b, strlen(b), &h, &why), SW__HTTP1_COMPLETE);
    assert_true(h.keep_alive);
    const char *c = "GET / HTTP/1.1\nHost: x\nConnection: foo, close\n\n"; /* bare LF */
    assert_int_equal(parse(c, strlen(c), &h, &why), SW__HTTP1_COMPLETE);
    assert_false(h.keep_alive);
    const char *d = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n";
    assert_int_equal(parse(d, strlen(d), &h, &why), SW__HTTP1_COMPLETE);
    assert_true(h.expect_continue);
    assert_int_equal(h.head_len, strlen(d));
    const char *e = "GET http://example.com:8080/p?x=1 HTTP/1.1\r\n\r\n"; /* absolute form */
    assert_int_equal(parse(e, strlen(e), &h, &why), SW__HTTP1_COMPLETE);
    assert_true(span_is(e, h.authority, "example.com:8080"));
    assert_true(span_is(e, h.path, "/p"));
    assert_true(span_is(e, h.query, "x=1"));
    const char *f = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(parse(f, strlen(f), &h, &why), SW__HTTP1_COMPLETE);
    assert_true(span_is(f, h.path, "*"));
}

struct bad {
    const char *in;
    size_t len; /* 0: strlen */
    int status;
};

static void test_bad_inputs(void **state)
{
    static const struct bad bad[] = {
        {"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},               /* bad method char */
        {"GE(T / HTTP/1.1\r\n\r\n", 0, 400},                         /* bad method char */
        {" / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},                  /* missing method */
        {"GET /\r\nHost: x\r\n\r\n", 0, 400},                        /* HTTP/0.9 */
        {"GET / \r\nHost: x\r\n\r\n", 0, 400},                       /* missing version */
        {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},              /* double space */
        {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 0, 400},              /* trailing space */
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 0, 505},               /* version */
        {"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 0, 400},               /* version */
        {"GET / FTP/1.1\r\nHost: x\r\n\r\n", 0, 400},                /* version */
        {"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},             /* bad target */
        {"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},           /* control char */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 0, 400}, /* obs-fold */
        {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 0, 400},    /* header without colon */
        {"GET / HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n", 0, 400},      /* space before colon */
        {"GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n", 0, 400},        /* empty name */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 35, 400},   /* NUL in value */
        {"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 28, 400},            /* NUL in target */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 0, 400},    /* bare CR */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 0, 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 0, 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 0, 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 0, 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 411},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 501},
        {"GET / HTTP/1.1\r\n\r\n", 0, 400},                        /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400},  /* two Hosts */
        {"GET / HTTP/1.1\r\nHost: x\r\nX\x7f: y\r\n\r\n", 0, 400}, /* DEL in name */
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(bad); i++) {
        sw__http1_head_t h;
        const char *why;
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].in);
        int rv = parse(bad[i].in, len, &h, &why);
        if (rv != SW__HTTP1_ERROR || h.status != bad[i].status)
            fail_msg("input %zu: rv %d status %d (want %d)", i, rv, h.status, bad[i].status);
        assert_non_null(why);
    }
}

static void test_early_reject(void **state)
{
    /* Garbage in the method fails before the head is complete. */
    sw__http1_head_t h;
    const char *why;
    assert_int_equal(parse("\x16\x03\x01", 3, &h, &why), SW__HTTP1_ERROR);
    assert_int_equal(h.status, 400);
}

static void test_too_large(void **state)
{
    char buf[2048];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    sw__http1_head_t h;
    const char *why;
    assert_int_equal(parse(buf, 1000, &h, &why), SW__HTTP1_INCOMPLETE);
    assert_int_equal(parse(buf, 1025, &h, &why), SW__HTTP1_ERROR);
    assert_int_equal(h.status, 431);
    /* complete but over the limit */
    memcpy(buf + 1500, "\r\n\r\n", 4);
    assert_int_equal(parse(buf, 1504, &h, &why), SW__HTTP1_ERROR);
    assert_int_equal(h.status, 431);
    /* too many headers */
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < SW__HTTP1_MAX_HEADERS + 1; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "H: %d\r\n", i);
    n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
    sw__http1_head_init(&h, sizeof(many));
    assert_int_equal(sw__http1_parse_head((const uint8_t *)many, n, &h, &why), SW__HTTP1_ERROR);
    assert_int_equal(h.status, 431);
}

static void test_format_head(void **state)
{
    sw_str_t s;
    sw_str_init(&s);
    sw_http_header_t hd[] = {{"Content-Type", "text/plain"}};
    assert_int_equal(sw__http1_format_head(&s, 11, 404, hd, 1, 3, 0, 1, "D", "sv"), 0);
    assert_string_equal(s.p, "HTTP/1.1 404 Not Found\r\nDate: D\r\nServer: sv\r\n"
                             "Content-Type: text/plain\r\nContent-Length: 3\r\n\r\n");
    sw_str_reset(&s);
    assert_int_equal(sw__http1_format_head(&s, 11, 200, NULL, 0, -1, 1, 0, "D", "sv"), 0);
    assert_string_equal(s.p, "HTTP/1.1 200 OK\r\nDate: D\r\nServer: sv\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    sw_str_reset(&s);
    assert_int_equal(sw__http1_format_head(&s, 10, 200, NULL, 0, 0, 0, 1, "D", "sv"), 0);
    assert_string_equal(s.p, "HTTP/1.0 200 OK\r\nDate: D\r\nServer: sv\r\n"
                             "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    sw_str_reset(&s);
    assert_int_equal(sw__http1_format_head(&s, 11, 206, NULL, 0, 10000000000LL, 0, 1, "D", "sv"),
                     0);
    assert_string_equal(s.p, "HTTP/1.1 206 Partial Content\r\nDate: D\r\nServer: sv\r\n"
                             "Content-Length: 10000000000\r\n\r\n");
    sw_str_dispose(&s);
    assert_string_equal(sw_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(sw_http_reason(799), "Unknown");
}

static void test_u64_dec(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *s;
    } cases[] = {{0, "0"},
                 {7, "7"},
                 {10, "10"},
                 {200, "200"},
                 {1234567890123ULL, "1234567890123"},
                 {UINT64_MAX, "18446744073709551615"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[SW_U64_DEC];
        memset(buf, 'x', sizeof(buf));
        assert_int_equal(sw_u64_dec(buf, cases[i].v), strlen(cases[i].s));
        assert_string_equal(buf, cases[i].s);
    }
    sw_str_t s;
    sw_str_init(&s);
    assert_int_equal(sw_str_put_u64(&s, 42), 0);
    assert_int_equal(sw_str_put_u64(&s, 0), 0);
    assert_string_equal(s.p, "420");
    sw_str_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get), cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_pipelined),  cmocka_unit_test(test_versions_and_connection),
        cmocka_unit_test(test_bad_inputs), cmocka_unit_test(test_early_reject),
        cmocka_unit_test(test_too_large),  cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_u64_dec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
