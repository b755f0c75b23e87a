/*
 * test_web.c: edge/web.h. Loading a web root (good, missing pages, unreadable, too many or too
 * big files), routing (pages, assets, ETag/304) and 25 hostile paths that must be answered 404 by
 * the edge itself or left to the cache path, never mapped to a file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "edge/web.h"

static void put(const char *dir, const char *name, const char *body)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
}

static char *make_root(void)
{
    char tmpl[] = "/tmp/sw-test-web-XXXXXX", assets[64];
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    d = strdup(d);
    snprintf(assets, sizeof(assets), "%s/assets", d);
    assert_int_equal(mkdir(assets, 0700), 0);
    put(d, "watch.html", "<!doctype html>watch");
    put(d, "shorts.html", "<!doctype html>shorts");
    put(assets, "watch-ABC123.js", "console.log(1)");
    put(assets, "watch-ABC123.css", "body{}");
    put(assets, ".hidden.js", "secret");
    put(assets, "weird name.js", "skipped");
    return d;
}

static void rm_root(char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

static const char *header(const edge_web_resp_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void test_routes(void **state)
{
    char *d = make_root(), err[256];
    edge_web_t *w = NULL;
    edge_web_resp_t r;
    (void)state;

    assert_int_equal(edge_web_open(&w, d, err, sizeof(err)), 0);
    assert_non_null(w);

    assert_int_equal(edge_web_route(w, "/watch/room42", NULL, &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen("<!doctype html>watch"));
    assert_memory_equal(r.body, "<!doctype html>watch", r.len);
    assert_string_equal(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_string_equal(header(&r, "cache-control"), "no-cache");
    const char *etag = header(&r, "etag");
    assert_non_null(etag);
    assert_int_equal(strlen(etag), 18);
    char tag[32];
    snprintf(tag, sizeof(tag), "%s", etag);

    /* Conditional requests: the page's own tag, a list holding it, "*", W/; others serve. */
    assert_int_equal(edge_web_route(w, "/watch/a.b-c_D", tag, &r), 1);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.len, 0);
    char list[64];
    snprintf(list, sizeof(list), "\"x\", W/%s", tag);
    assert_int_equal(edge_web_route(w, "/watch/a", list, &r), 1);
    assert_int_equal(r.status, 304);
    assert_int_equal(edge_web_route(w, "/watch/a", "*", &r), 1);
    assert_int_equal(r.status, 304);
    assert_int_equal(edge_web_route(w, "/watch/a", "\"0000000000000000\"", &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(edge_web_route(w, "/watch/a", "garbage, \"", &r), 1);
    assert_int_equal(r.status, 200); /* malformed: ignored */

    assert_int_equal(edge_web_route(w, "/shorts", NULL, &r), 1);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "<!doctype html>shorts", r.len);

    assert_int_equal(edge_web_route(w, "/assets/watch-ABC123.js", NULL, &r), 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_string_equal(header(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert_int_equal(edge_web_route(w, "/assets/watch-ABC123.css", NULL, &r), 1);
    assert_string_equal(header(&r, "content-type"), "text/css; charset=utf-8");

    /* Ours, but 404: bad room ids, unknown or unloadable assets, traversal in every spelling. */
    char long_room[80];
    memset(long_room, 'r', 65);
    long_room[65] = '\0';
    char long_path[100];
    snprintf(long_path, sizeof(long_path), "/watch/%s", long_room);
    const char *not_found[] = {
        "/watch/",
        long_path,
        "/watch/a/b",
        "/watch/a%2Fb",
        "/watch/..",
        "/watch/a b",
        "/watch/a%00",
        "/watch/<script>",
        "/watch/a?b",
        "/assets/",
        "/assets/nope.js",
        "/assets/../watch.html",
        "/assets/..",
        "/assets/.hidden.js",
        "/assets/weird name.js",
        "/assets/%2e%2e%2fwatch.html",
        "/assets/sub/x.js",
        "/assets//watch-ABC123.js",
        "/assets/watch-ABC123.js/",
    };
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        memset(&r, 0, sizeof(r));
        if (edge_web_route(w, not_found[i], NULL, &r) != 1 || r.status != 404)
            fail_msg("\"%s\": expected our 404, got %d", not_found[i], r.status);
    }
    memset(long_room, 'r', 64);
    long_room[64] = '\0';
    snprintf(long_path, sizeof(long_path), "/watch/%s", long_room);
    assert_int_equal(edge_web_route(w, long_path, NULL, &r), 1);
    assert_int_equal(r.status, 200);

    /* Not ours: left to the cache path. */
    const char *others[] = {"/",           "/watch",  "/shorts/",
                            "/shortsx",    "/assets", "/live/a/index.m3u8",
                            "/api/shorts", "/WATCH/a"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (edge_web_route(w, others[i], NULL, &r) != 0)
            fail_msg("\"%s\" taken by the web routes", others[i]);

    edge_web_free(w);
    assert_int_equal(edge_web_route(NULL, "/watch/a", NULL, &r), 0);
    edge_web_free(NULL);
    rm_root(d);
}

static void test_open_errors(void **state)
{
    char *d = make_root(), err[256], path[512];
    edge_web_t *w = (edge_web_t *)1;
    (void)state;

    assert_int_equal(edge_web_open(&w, "/nonexistent/sw-web", err, sizeof(err)), EDGE_ERR_INVAL);
    assert_null(w);
    assert_non_null(strstr(err, "/nonexistent/sw-web/watch.html"));

    snprintf(path, sizeof(path), "%s/shorts.html", d);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(edge_web_open(&w, d, err, sizeof(err)), EDGE_ERR_INVAL);
    assert_non_null(strstr(err, "shorts.html"));
    put(d, "shorts.html", "x");

    /* A file over the per-file bound (sparse, so the test writes nothing). */
    snprintf(path, sizeof(path), "%s/assets/big.js", d);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (off_t)EDGE_WEB_MAX_FILE_BYTES + 1), 0);
    fclose(f);
    assert_int_equal(edge_web_open(&w, d, err, sizeof(err)), EDGE_ERR_TOO_BIG);
    assert_null(w);
    assert_int_equal(unlink(path), 0);

    /* More files than the bound. */
    for (int i = 0; i <= EDGE_WEB_MAX_FILES; i++) {
        char name[32], dir[512];
        snprintf(dir, sizeof(dir), "%s/assets", d);
        snprintf(name, sizeof(name), "f%d.js", i);
        put(dir, name, "x");
    }
    assert_int_equal(edge_web_open(&w, d, err, sizeof(err)), EDGE_ERR_TOO_BIG);
    assert_null(w);
    rm_root(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
