/*
 * test_http_util.c: edge/http_util.h. Cache keys (good spellings, 20+ hostile ones), Range (good
 * lists, 20+ ignored or unsatisfiable ones, coalescing, the multipart/byteranges framing),
 * If-None-Match, Cache-Control, HTTP-date, freshness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "edge/http_util.h"

static const char *key(const char *path, const char *query)
{
    static char out[EDGE_KEY_MAX];
    const char *why = NULL;
    int rv = edge_key_normalize(path, query, NULL, out, sizeof(out), &why);
    if (rv != 0)
        fail_msg("rejected \"%s\" ? \"%s\": %s", path, query ? query : "(null)", why);
    return out;
}

static void test_key_good(void **state)
{
    assert_string_equal(key("/live/a/index.m3u8", NULL), "/live/a/index.m3u8");
    assert_string_equal(key("/live/a/index.m3u8", ""), "/live/a/index.m3u8");
    /* LL-HLS parameters sorted, trackers dropped, fragment dropped. */
    assert_string_equal(key("/live/a/index.m3u8", "_HLS_part=2&utm_source=x&_HLS_msn=273#frag"),
                        "/live/a/index.m3u8?_HLS_msn=273&_HLS_part=2");
    assert_string_equal(key("/live/a/index.m3u8", "_HLS_skip=YES&_HLS_msn=5&_HLS_part=0"),
                        "/live/a/index.m3u8?_HLS_msn=5&_HLS_part=0&_HLS_skip=YES");
    assert_string_equal(key("/live/a/index.m3u8?dvr=1&sw_sig=abc&fbclid=zz", NULL),
                        "/live/a/index.m3u8?dvr=1");
    assert_string_equal(key("/a#x?_HLS_msn=1", NULL), "/a");
    assert_string_equal(key("/a?b", "dvr=1"), "/a%3Fb?dvr=1"); /* a '?' in a separate path */
    /* Escapes: unreserved decoded, others uppercased. */
    assert_string_equal(key("/live/%61%62%7e/seg%2d1.m4s", NULL), "/live/ab~/seg-1.m4s");
    assert_string_equal(key("/live/a%3ab/x%c3%a9", NULL), "/live/a%3Ab/x%C3%A9");
    assert_string_equal(key("/a", "dvr=%31%2b"), "/a?dvr=1%2B");
    assert_string_equal(key("/a", "%5fHLS_msn=7"), "/a?_HLS_msn=7");
    /* Slashes and dot segments. */
    assert_string_equal(key("//live///a//seg.m4s", NULL), "/live/a/seg.m4s");
    assert_string_equal(key("/live/./a/%2e/seg.m4s", NULL), "/live/a/seg.m4s");
    assert_string_equal(key("/live/a/.", NULL), "/live/a/");
    assert_string_equal(key("/", NULL), "/");
    assert_string_equal(key("/a/...b/..c/", NULL), "/a/...b/..c/");
    /* Empty parameters, flags without a value. */
    assert_string_equal(key("/a", "&&dvr&&"), "/a?dvr");
    assert_string_equal(key("/a", "dvr="), "/a?dvr");

    /* A configured keep list. */
    static const char *const keep[] = {"v", "lang", NULL};
    edge_key_rules_t rules = {keep};
    char out[64];
    const char *why;
    assert_int_equal(
        edge_key_normalize("/x", "lang=de&_HLS_msn=1&v=2", &rules, out, sizeof(out), &why), 0);
    assert_string_equal(out, "/x?lang=de&v=2");
    /* Exactly fits, then one byte short. */
    assert_int_equal(edge_key_normalize("/abc", NULL, NULL, out, 5, &why), 0);
    assert_int_equal(edge_key_normalize("/abc", NULL, NULL, out, 4, &why), EDGE_ERR_TOO_BIG);
    assert_int_equal(edge_key_normalize("/abc", NULL, NULL, out, 0, NULL), EDGE_ERR_TOO_BIG);
}

static void test_key_bad(void **state)
{
    static const struct {
        const char *path, *query;
    } bad[] = {
        {"", NULL},
        {"live/a.m3u8", NULL},
        {"/live/../secret", NULL},
        {"/live/..", NULL},
        {"/..", NULL},
        {"/live/%2e%2e/secret", NULL},
        {"/live/%2E%2E/secret", NULL},
        {"/live/.%2e/secret", NULL},
        {"/live/%2e./secret", NULL},
        {"/live%2fsecret", NULL},
        {"/live%2Fsecret", NULL},
        {"/live%5csecret", NULL},
        {"/live\\..\\secret", NULL},
        {"/live/a%00.m3u8", NULL},
        {"/live/a%", NULL},
        {"/live/a%4", NULL},
        {"/live/a%zz", NULL},
        {"/live/a%4g", NULL},
        {"/live/a b", NULL},
        {"/live/a\tb", NULL},
        {"/live/a\x7f", NULL},
        {"/live/\xc3\xa9", NULL},
        {"/a", "_HLS_msn=1&_HLS_msn=2"},
        {"/a", "_HLS_msn=1&%5FHLS_msn=2"},
        {"/a", "dvr=%"},
        {"/a", "utm_source=%zz"},
        {"/a", "x=a b"},
        {"/a", "dvr=\x01"},
        {"?_HLS_msn=1", NULL},
        {"/a/..?x=1", NULL},
    };
    char out[EDGE_KEY_MAX];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        int rv = edge_key_normalize(bad[i].path, bad[i].query, NULL, out, sizeof(out), &why);
        if (rv != EDGE_ERR_INVAL || why == NULL || out[0] != '\0')
            fail_msg("accepted or no reason for \"%s\" ? \"%s\"", bad[i].path,
                     bad[i].query ? bad[i].query : "(null)");
    }
    const char *why;
    edge_key_normalize("/a/../b", NULL, NULL, out, sizeof(out), &why);
    assert_string_equal(why, "\"..\" segment in path");
    edge_key_normalize("/a%2fb", NULL, NULL, out, sizeof(out), &why);
    assert_string_equal(why, "encoded slash or backslash in path");
    edge_key_normalize("a", NULL, NULL, out, sizeof(out), &why);
    assert_string_equal(why, "path does not start with /");
    /* Too many kept parameters, too long a key. */
    static const char *const keep[] = {"a", NULL};
    edge_key_rules_t rules = {keep};
    char q[256] = "";
    for (int i = 0; i < 17; i++)
        strcat(q, "a=1&");
    assert_int_equal(edge_key_normalize("/x", q, &rules, out, sizeof(out), &why), EDGE_ERR_INVAL);
    char longp[3000];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(edge_key_normalize(longp, NULL, NULL, out, sizeof(out), &why),
                     EDGE_ERR_TOO_BIG);
}

static int range(const char *h, int64_t len, edge_range_set_t *rs)
{
    const char *why;
    return edge_range_parse(h, strlen(h), len, rs, &why);
}

static void test_range_good(void **state)
{
    edge_range_set_t rs;
    const char *why;

    assert_int_equal(edge_range_parse(NULL, 0, 100, &rs, &why), EDGE_RANGE_NONE);
    assert_int_equal(range("bytes=0-499", 1000, &rs), EDGE_RANGE_RANGES);
    assert_int_equal(rs.n, 1);
    assert_true(rs.r[0].first == 0 && rs.r[0].last == 499);
    assert_int_equal(range("bytes=500-", 1000, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].first == 500 && rs.r[0].last == 999);
    assert_int_equal(range("bytes=-200", 1000, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].first == 800 && rs.r[0].last == 999);
    assert_int_equal(range("bytes=-5000", 1000, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].first == 0 && rs.r[0].last == 999);
    assert_int_equal(range("bytes=900-5000", 1000, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].first == 900 && rs.r[0].last == 999);
    assert_int_equal(range("Bytes = 0-0", 1000, &rs), EDGE_RANGE_NONE); /* no OWS around = */
    assert_int_equal(range("BYTES=0-0", 1000, &rs), EDGE_RANGE_RANGES);
    /* Lists keep the client's order; empty elements and OWS are fine. */
    assert_int_equal(range("bytes=500-599, 0-99 ,,-10", 1000, &rs), EDGE_RANGE_RANGES);
    assert_int_equal(rs.n, 3);
    assert_true(rs.r[0].first == 500 && rs.r[1].first == 0 && rs.r[2].first == 990);
    /* Unsatisfiable members are dropped if others remain. */
    assert_int_equal(range("bytes=2000-3000,0-9", 1000, &rs), EDGE_RANGE_RANGES);
    assert_int_equal(rs.n, 1);
    /* 16 ranges are fine. */
    assert_int_equal(range("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,"
                           "24-24,26-26,28-28,30-30",
                           1000, &rs),
                     EDGE_RANGE_RANGES);
    assert_int_equal(rs.n, 16);
    /* Unknown length: open ranges stay open. */
    assert_int_equal(range("bytes=100-", -1, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].first == 100 && rs.r[0].last == EDGE_RANGE_OPEN);
    assert_int_equal(range("bytes=100-199", -1, &rs), EDGE_RANGE_RANGES);
    assert_true(rs.r[0].last == 199);
}

static void test_range_bad(void **state)
{
    static const char *const ignored[] = {
        "",
        "bytes",
        "bytes=",
        "bytes= ",
        "bytes=,",
        "items=0-1",
        "bytes:0-1",
        "bytes=a-b",
        "bytes=1",
        "bytes=-",
        "bytes=--1",
        "bytes=5-4",
        "bytes=0-1x",
        "bytes=0-1;2-3",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=0x10-20",
        "bytes=99999999999999999999-",
        "bytes=0-99999999999999999999",
        "bytes=-1234567890123456789",
        "bytes=0-499,400-999",
        "bytes=0-,10-20",
        "bytes=-500,0-600",
        "bytes=0-0,0-0",
        ("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,"
         "28-28,30-30,32-32"),
        " bytes = 0-1",
        "bytes=0 -1",
    };
    edge_range_set_t rs;
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        const char *why = NULL;
        int rv = edge_range_parse(ignored[i], strlen(ignored[i]), 1000, &rs, &why);
        if (rv != EDGE_RANGE_NONE || why == NULL)
            fail_msg("not ignored or no reason: \"%s\"", ignored[i]);
    }
    static const char *const unsat[] = {
        "bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=5000-,1000-1001", "bytes=-0,-0",
    };
    for (size_t i = 0; i < sizeof(unsat) / sizeof(unsat[0]); i++) {
        const char *why = NULL;
        if (edge_range_parse(unsat[i], strlen(unsat[i]), 1000, &rs, &why) !=
                EDGE_RANGE_UNSATISFIABLE ||
            why == NULL)
            fail_msg("not unsatisfiable: \"%s\"", unsat[i]);
    }
    assert_int_equal(range("bytes=0-", 0, &rs), EDGE_RANGE_UNSATISFIABLE);
    assert_int_equal(range("bytes=-10", 0, &rs), EDGE_RANGE_UNSATISFIABLE);
    assert_int_equal(range("bytes=-10", -1, &rs), EDGE_RANGE_NONE);
    const char *why;
    edge_range_parse("bytes=0-5,3-9", 13, 100, &rs, &why);
    assert_string_equal(why, "overlapping ranges");
}

static void test_range_coalesce(void **state)
{
    edge_range_set_t rs;

    assert_int_equal(range("bytes=0-99,100-199", 1000, &rs), EDGE_RANGE_RANGES);
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 1);
    assert_true(rs.r[0].first == 0 && rs.r[0].last == 199);
    assert_int_equal(range("bytes=0-9,10-19,20-29,40-49,50-", 100, &rs), EDGE_RANGE_RANGES);
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 2);
    assert_true(rs.r[0].first == 0 && rs.r[0].last == 29);
    assert_true(rs.r[1].first == 40 && rs.r[1].last == 99);
    /* Only a range that continues its predecessor: the client's order stays. */
    assert_int_equal(range("bytes=100-199,0-99", 1000, &rs), EDGE_RANGE_RANGES);
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 2);
    assert_true(rs.r[0].first == 100 && rs.r[1].first == 0);
    assert_int_equal(range("bytes=0-9,11-19", 1000, &rs), EDGE_RANGE_RANGES);
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 2);
    /* An open range (length unknown) continues nothing. */
    assert_int_equal(range("bytes=10-,0-9", -1, &rs), EDGE_RANGE_RANGES);
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 2);
    rs.n = 0;
    edge_range_coalesce(&rs);
    assert_int_equal(rs.n, 0);
}

static void test_byteranges_layout(void **state)
{
    static const char part0[] = "--B0\r\nContent-Type: video/mp4\r\n"
                                "Content-Range: bytes 0-9/100\r\n\r\n";
    static const char part1[] = "\r\n--B0\r\nContent-Type: video/mp4\r\n"
                                "Content-Range: bytes 90-99/100\r\n\r\n";
    static const char close[] = "\r\n--B0--\r\n";
    edge_range_set_t rs;
    size_t off[EDGE_RANGE_MAX + 2], off2[EDGE_RANGE_MAX + 2];
    uint64_t body, body2;
    char out[512];

    assert_int_equal(range("bytes=0-9,-10", 100, &rs), EDGE_RANGE_RANGES);
    size_t need = edge_byteranges_layout(&rs, 100, "video/mp4", "B0", NULL, 0, off, &body);
    size_t want = strlen(part0) + strlen(part1) + strlen(close);
    assert_int_equal(need, want);
    assert_int_equal(body, want + 20);
    memset(out, 'x', sizeof(out));
    assert_int_equal(edge_byteranges_layout(&rs, 100, "video/mp4", "B0", out, need, off2, &body2),
                     need);
    assert_memory_equal(off, off2, sizeof(size_t) * 4);
    assert_int_equal(body2, body);
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], strlen(part0));
    assert_int_equal(off[2], strlen(part0) + strlen(part1));
    assert_int_equal(off[3], need);
    assert_memory_equal(out, part0, strlen(part0));
    assert_memory_equal(out + off[1], part1, strlen(part1));
    assert_memory_equal(out + off[2], close, strlen(close));
    assert_int_equal(out[need], 'x'); /* nothing written past the framing */

    /* Too small: the same length is reported and nothing is written past the buffer. */
    memset(out, 'x', sizeof(out));
    assert_int_equal(edge_byteranges_layout(&rs, 100, "video/mp4", "B0", out, 20, off2, &body2),
                     need);
    for (size_t i = 20; i < sizeof(out); i++)
        assert_int_equal(out[i], 'x');

    /* No media type: the parts carry none. */
    need = edge_byteranges_layout(&rs, 100, "", "B0", out, sizeof(out), off, &body);
    assert_true(need < sizeof(out));
    assert_memory_equal(out, "--B0\r\nContent-Range: bytes 0-9/100\r\n\r\n", off[1]);
    assert_int_equal(edge_byteranges_layout(&rs, 100, NULL, "B0", NULL, 0, off2, &body2), need);

    /* The largest positions the parser takes fit. */
    int64_t big = 999999999999999999;
    assert_int_equal(range("bytes=0-0,999999999999999990-", big, &rs), EDGE_RANGE_RANGES);
    need = edge_byteranges_layout(&rs, (uint64_t)big, "a/b", "B0", out, sizeof(out), off, &body);
    assert_true(need < sizeof(out));
    static const char tail[] = "\r\n--B0\r\nContent-Type: a/b\r\nContent-Range: bytes "
                               "999999999999999990-999999999999999998/999999999999999999\r\n\r\n";
    assert_int_equal(off[2] - off[1], strlen(tail));
    assert_memory_equal(out + off[1], tail, strlen(tail));
    assert_int_equal(body, need + 1 + 9);
}

static int M(const char *hdr, const char *tag)
{
    return edge_etag_match(hdr, strlen(hdr), tag);
}

static void test_etag(void **state)
{
    assert_int_equal(M("\"abc\"", "\"abc\""), 1);
    assert_int_equal(M("W/\"abc\"", "\"abc\""), 1); /* weak comparison */
    assert_int_equal(M("\"abc\"", "W/\"abc\""), 1);
    assert_int_equal(M("\"x\", \"y\" ,W/\"abc\"", "\"abc\""), 1);
    assert_int_equal(M("\"x\", \"y\"", "\"abc\""), 0);
    assert_int_equal(M("\"abcd\"", "\"abc\""), 0);
    assert_int_equal(M("*", "\"abc\""), 1);
    assert_int_equal(M(" * ", NULL), 1);
    assert_int_equal(M("\"abc\"", NULL), 0);
    assert_int_equal(M("\"\"", "\"\""), 1);
    assert_int_equal(edge_etag_match(NULL, 0, "\"a\""), 0);
    assert_int_equal(M("abc", "\"abc\""), EDGE_ERR_INVAL);
    assert_int_equal(M("\"abc", "\"abc\""), EDGE_ERR_INVAL);
    assert_int_equal(M("*, \"a\"", "\"a\""), EDGE_ERR_INVAL);
    assert_int_equal(M("\"a\" \"b\"", "\"a\""), EDGE_ERR_INVAL);
    assert_int_equal(M("\"a b\"", "\"a b\""), EDGE_ERR_INVAL);
    assert_int_equal(M("", "\"a\""), EDGE_ERR_INVAL);
    assert_int_equal(M(" , ", "\"a\""), EDGE_ERR_INVAL);
    assert_int_equal(M("w/\"a\"", "\"a\""), EDGE_ERR_INVAL);
}

static void test_cc(void **state)
{
    edge_cc_t cc;
    const char *why;
#define P(s) edge_cc_parse((s), strlen(s), &cc, &why)
    assert_int_equal(P("max-age=2, s-maxage=1, public"), 0);
    assert_int_equal(cc.max_age, 2);
    assert_int_equal(cc.s_maxage, 1);
    assert_true(cc.is_public);
    assert_int_equal(cc.stale_if_error, -1);
    assert_int_equal(P("NO-STORE"), 0);
    assert_true(cc.no_store);
    assert_int_equal(P("private=\"Set-Cookie\", no-cache=\"x,y\""), 0);
    assert_true(cc.is_private && cc.no_cache);
    assert_int_equal(P("max-age=\"10\", stale-if-error=30, immutable"), 0);
    assert_int_equal(cc.max_age, 10);
    assert_int_equal(cc.stale_if_error, 30);
    assert_true(cc.immutable);
    assert_int_equal(P("max-age=abc"), 0);
    assert_int_equal(cc.max_age, 0); /* invalid: stale */
    assert_int_equal(P("max-age=60, max-age=5"), 0);
    assert_int_equal(cc.max_age, 5);
    assert_int_equal(P("max-age=99999999999999999999999"), 0);
    assert_int_equal(cc.max_age, 2147483648ll);
    assert_int_equal(P("foo=bar, ,, must-revalidate, x-ext=\"a\\\"b\""), 0);
    assert_true(cc.must_revalidate);
    assert_int_equal(P(""), 0);
    assert_int_equal(P("max-age=1 2"), EDGE_ERR_INVAL);
    assert_int_equal(P("=1"), EDGE_ERR_INVAL);
    assert_int_equal(P("a=\"unterminated"), EDGE_ERR_INVAL);
    assert_int_equal(P("a=\"x\\"), EDGE_ERR_INVAL);
    assert_int_equal(P("max-age=1;no-store"), EDGE_ERR_INVAL);
#undef P
}

static void test_dates(void **state)
{
#define D(s) edge_http_date_parse((s), strlen(s))
    assert_int_equal(D("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    assert_int_equal(D("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    assert_int_equal(D("Sun Nov  6 08:49:37 1994"), 784111777);
    assert_int_equal(D("Sat, 28 Nov 2026 07:00:00 GMT"), 1795849200);
    assert_int_equal(D("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    assert_int_equal(D("Tue, 29 Feb 2028 12:00:00 GMT"), 1835438400);
    assert_int_equal(D("Thu, 29 Feb 2027 12:00:00 GMT"), -1);
    assert_int_equal(D("Sun, 31 Apr 1994 08:49:37 GMT"), -1);
    assert_int_equal(D("Sun, 06 Nov 1994 08:49:37 UTC"), -1);
    assert_int_equal(D("Sun, 06 Nov 1994 24:49:37 GMT"), -1);
    assert_int_equal(D("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
    assert_int_equal(D("0"), -1);
    assert_int_equal(D(""), -1);
    assert_int_equal(D("Sun, 6 Nov 1994 08:49:37 GMT"), -1);
    assert_int_equal(D("Su Dec 06 08:49:37 1374"), -1); /* before 1970 (found by the fuzzer) */
#undef D
}

static void test_ttl(void **state)
{
    edge_ttl_t t;
    edge_ttl_rules_t r = {0};
    int64_t now = 1795849200000; /* Sat, 28 Nov 2026 07:00:00 GMT */

    edge_ttl_compute("max-age=2", NULL, NULL, now, NULL, &t);
    assert_true(t.cacheable);
    assert_int_equal(t.fresh_ms, 2000);
    edge_ttl_compute("max-age=2, s-maxage=60", NULL, NULL, now, NULL, &t);
    assert_int_equal(t.fresh_ms, 60000);
    edge_ttl_compute("max-age=2", "Sat, 28 Nov 2026 08:00:00 GMT", NULL, now, NULL, &t);
    assert_int_equal(t.fresh_ms, 2000); /* max-age beats Expires */
    edge_ttl_compute(NULL, "Sat, 28 Nov 2026 07:00:10 GMT", "Sat, 28 Nov 2026 07:00:00 GMT",
                     now + 500, NULL, &t);
    assert_int_equal(t.fresh_ms, 10000); /* Expires - Date, not Expires - now */
    edge_ttl_compute(NULL, "Sat, 28 Nov 2026 07:00:10 GMT", NULL, now + 500, NULL, &t);
    assert_int_equal(t.fresh_ms, 9500);
    edge_ttl_compute(NULL, "0", NULL, now, NULL, &t);
    assert_false(t.cacheable); /* invalid Expires: already expired */
    edge_ttl_compute(NULL, "Sat, 28 Nov 2026 06:00:00 GMT", NULL, now, NULL, &t);
    assert_false(t.cacheable);
    assert_int_equal(t.fresh_ms, 0);
    edge_ttl_compute("no-store, max-age=60", NULL, NULL, now, NULL, &t);
    assert_false(t.cacheable);
    edge_ttl_compute("private, max-age=60", NULL, NULL, now, NULL, &t);
    assert_false(t.cacheable);
    assert_true(t.is_private);
    edge_ttl_compute("no-cache", NULL, NULL, now, NULL, &t);
    assert_false(t.cacheable);
    edge_ttl_compute("max-age=1;x", NULL, NULL, now, NULL, &t);
    assert_false(t.cacheable);
    edge_ttl_compute(NULL, NULL, NULL, now, NULL, &t);
    assert_false(t.cacheable);

    r.default_ttl_ms = 1000;
    r.stale_if_error_ms = 30000;
    r.immutable_ttl_ms = 86400000;
    r.max_ttl_ms = 3600000;
    edge_ttl_compute(NULL, NULL, NULL, now, &r, &t);
    assert_true(t.cacheable);
    assert_int_equal(t.fresh_ms, 1000);
    assert_int_equal(t.stale_if_error_ms, 30000);
    edge_ttl_compute("immutable", NULL, NULL, now, &r, &t);
    assert_true(t.immutable);
    assert_int_equal(t.fresh_ms, 3600000); /* capped */
    edge_ttl_compute("max-age=10, stale-if-error=5", NULL, NULL, now, &r, &t);
    assert_int_equal(t.stale_if_error_ms, 5000);
    edge_ttl_compute("max-age=10, must-revalidate", NULL, NULL, now, &r, &t);
    assert_int_equal(t.stale_if_error_ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_good),       cmocka_unit_test(test_key_bad),
        cmocka_unit_test(test_range_good),     cmocka_unit_test(test_range_bad),
        cmocka_unit_test(test_range_coalesce), cmocka_unit_test(test_byteranges_layout),
        cmocka_unit_test(test_etag),           cmocka_unit_test(test_cc),
        cmocka_unit_test(test_dates),          cmocka_unit_test(test_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
