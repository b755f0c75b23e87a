/*
 * test_token.c: edge/token.h. Mint and verify round trips, key rotation, every rejection reason,
 * and tokens made by the Python snippet in edge/README.md: one precomputed here, and one made by
 * running the snippet, extracted from the README itself, with python3 (skipped without python3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edge/token.h"

#define EXP 1800000000 /* 2027-01-15 */
#define NOW 1795849200 /* 2026-11-28 07:00 UTC */

static const uint8_t secret[] = "shop-secret-2026-11";
static const uint8_t old_secret[] = "shop-secret-2026-10";

static const edge_token_key_t keys[] = {
    {"2026-11", secret, sizeof(secret) - 1},
    {"2026-10", old_secret, sizeof(old_secret) - 1},
};

static const edge_token_config_t cfg = {keys, 2, 0};

/* Made by the README snippet:
 * sw_sign(b"shop-secret-2026-11", "2026-11", "/live/room42/", 1800000000[, "203.0.113.7"]) */
static const char py_token[] = "sw_exp=1800000000&sw_prefix=%2Flive%2Froom42%2F&sw_kid=2026-11&"
                               "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw";
static const char py_token_ip[] = "sw_exp=1800000000&sw_prefix=%2Flive%2Froom42%2F&sw_kid=2026-11&"
                                  "sw_ip=1&sw_sig=cJ9etJNGl6teTVB_T5bW_tQh6UxgM9Kz6_couEIxgqY";

static int verify(const edge_token_config_t *c, const char *path, const char *q, const char *ip,
                  int64_t now, const char **why)
{
    *why = NULL;
    return edge_token_verify(c, path, q, strlen(q), ip, now, why);
}

static void test_roundtrip(void **state)
{
    char tok[EDGE_TOKEN_MAX];
    const char *why;

    assert_int_equal(edge_token_mint(&keys[0], "/live/room42/", EXP, NULL, tok, sizeof(tok)), 0);
    assert_string_equal(tok, py_token); /* C and Python agree byte for byte */
    assert_int_equal(verify(&cfg, "/live/room42/index.m3u8", tok, NULL, NOW, &why), 0);
    assert_int_equal(
        edge_token_mint(&keys[0], "/live/room42/", EXP, "203.0.113.7", tok, sizeof(tok)), 0);
    assert_string_equal(tok, py_token_ip);
    assert_int_equal(verify(&cfg, "/live/room42/seg1.m4s", tok, "203.0.113.7", NOW, &why), 0);

    /* Other parameters around the token, in any order. */
    char q[2048];
    snprintf(q, sizeof(q), "_HLS_msn=5&%s&_HLS_part=1&utm_source=x", py_token);
    assert_int_equal(verify(&cfg, "/live/room42/index.m3u8", q, NULL, NOW, &why), 0);
    assert_int_equal(verify(&cfg, "/live/room42/index.m3u8",
                            "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw&sw_kid=2026-11&"
                            "sw_prefix=/live/room42/&sw_exp=1800000000",
                            NULL, NOW, &why),
                     0); /* an unencoded prefix is the same prefix */

    /* Rotation: a token under the old key verifies while that key is listed, with or without
     * sw_kid; once it is dropped, it does not. */
    assert_int_equal(edge_token_mint(&keys[1], "/live/", EXP, NULL, tok, sizeof(tok)), 0);
    assert_int_equal(verify(&cfg, "/live/room1/a.m4s", tok, NULL, NOW, &why), 0);
    char *kid = strstr(tok, "&sw_kid=2026-10");
    assert_non_null(kid);
    memmove(kid, kid + 15, strlen(kid + 15) + 1);
    assert_int_equal(verify(&cfg, "/live/room1/a.m4s", tok, NULL, NOW, &why), 0);
    edge_token_config_t newonly = {keys, 1, 0};
    assert_int_equal(verify(&newonly, "/live/room1/a.m4s", tok, NULL, NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);

    /* Mint limits. */
    assert_int_equal(edge_token_mint(&keys[0], "", EXP, NULL, tok, sizeof(tok)), EDGE_ERR_INVAL);
    assert_int_equal(edge_token_mint(&keys[0], "live", EXP, NULL, tok, sizeof(tok)),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge_token_mint(&keys[0], "/a/", -1, NULL, tok, sizeof(tok)), EDGE_ERR_INVAL);
    assert_int_equal(edge_token_mint(&keys[0], "/a/", EXP, NULL, tok, 40), EDGE_ERR_TOO_BIG);
    assert_int_equal(edge_token_mint(&keys[0], "/liv\xa9/", EXP, NULL, tok, sizeof(tok)),
                     EDGE_ERR_INVAL);
    assert_int_equal(edge_token_mint(&keys[0], "/a b/", EXP, NULL, tok, sizeof(tok)),
                     EDGE_ERR_INVAL);
}

static void test_reject(void **state)
{
    const char *why;
    char q[2048];

    assert_int_equal(verify(&cfg, "/live/room42/a", py_token, NULL, EXP, &why),
                     EDGE_ERR_TOKEN_EXPIRED);
    assert_string_equal(why, "token expired");
    assert_int_equal(verify(&cfg, "/live/room43/a", py_token, NULL, NOW, &why),
                     EDGE_ERR_TOKEN_PREFIX);
    assert_int_equal(verify(&cfg, "/live/room42", py_token, NULL, NOW, &why),
                     EDGE_ERR_TOKEN_PREFIX);
    assert_int_equal(verify(&cfg, NULL, py_token, NULL, NOW, &why), EDGE_ERR_TOKEN_PREFIX);
    /* Address binding. */
    assert_int_equal(verify(&cfg, "/live/room42/a", py_token_ip, "203.0.113.8", NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);
    assert_int_equal(verify(&cfg, "/live/room42/a", py_token_ip, NULL, NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);
    edge_token_config_t strict = {keys, 2, 1};
    assert_int_equal(verify(&strict, "/live/room42/a", py_token, "203.0.113.7", NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);
    assert_int_equal(verify(&strict, "/live/room42/a", py_token_ip, "203.0.113.7", NOW, &why), 0);
    /* Dropping sw_ip from a bound token breaks the signature. */
    snprintf(q, sizeof(q), "%s", py_token_ip);
    char *ip = strstr(q, "&sw_ip=1");
    memmove(ip, ip + 8, strlen(ip + 8) + 1);
    assert_int_equal(verify(&cfg, "/live/room42/a", q, "203.0.113.7", NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);

    static const struct {
        const char *q;
        int rv;
    } bad[] = {
        {"", EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2Flive%2F", EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_exp=1800000000&sw_prefix=%2F&sw_sig="
         "ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=18x&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000000000&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=live&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F%zz&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F%20&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F%A9&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHpr",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw=",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW+cm1/Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        /* the last character carries 2 spare bits: "x" differs from "w" only there */
        {"sw_exp=1800000000&sw_prefix=%2Flive%2Froom42%2F&sw_kid=2026-11&"
         "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprx",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F&sw_ip=2&sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_"
         "Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_MALFORMED},
        {"sw_exp=1800000000&sw_prefix=%2F&sw_kid=nope&sw_sig="
         "ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_BAD_SIG},
        /* a longer expiry or a wider prefix under the same signature */
        {"sw_exp=1900000000&sw_prefix=%2Flive%2Froom42%2F&sw_kid=2026-11&"
         "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_BAD_SIG},
        {"sw_exp=1800000000&sw_prefix=%2Flive%2F&sw_kid=2026-11&"
         "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_BAD_SIG},
        {"sw_exp=01800000000&sw_prefix=%2Flive%2Froom42%2F&sw_kid=2026-11&"
         "sw_sig=ydTLMPoxLoeX1tB5pjwjeIW_cm1_Vd9mDd4ac8vHprw",
         EDGE_ERR_TOKEN_BAD_SIG},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = verify(&cfg, "/live/room42/a", bad[i].q, NULL, NOW, &why);
        if (rv != bad[i].rv || why == NULL)
            fail_msg("\"%s\": got %d (%s), want %d", bad[i].q, rv, why ? why : "-", bad[i].rv);
    }
    assert_int_equal(edge_token_verify(&cfg, "/a", NULL, 0, NULL, NOW, NULL),
                     EDGE_ERR_TOKEN_MALFORMED);
}

/* Runs the ```python block of edge/README.md with python3 and verifies what it prints. */
static void test_readme_snippet(void **state)
{
    char readme[4096], script[] = "/tmp/edge_token_snippet_XXXXXX", cmd[256], line[512];
    const char *src = __FILE__, *tail = strstr(src, "tests/unit/edge/test_token.c");

    if (tail == NULL || system("python3 -c pass >/dev/null 2>&1") != 0) {
        print_message("skipped: no python3 or no source tree\n");
        return;
    }
    snprintf(readme, sizeof(readme), "%.*sedge/README.md", (int)(tail - src), src);
    FILE *f = fopen(readme, "r");
    assert_non_null(f);
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    FILE *out = fdopen(fd, "w");
    int in_block = 0, lines = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (!in_block && strncmp(line, "```python", 9) == 0) {
            in_block = 1;
        } else if (in_block && strncmp(line, "```", 3) == 0) {
            break;
        } else if (in_block) {
            fputs(line, out);
            lines++;
        }
    }
    fclose(f);
    assert_true(lines > 0 && lines <= 12);
    fputs("\nprint(sw_sign(b\"shop-secret-2026-11\", \"2026-11\", \"/live/room42/\", 1800000000))\n"
          "print(sw_sign(b\"shop-secret-2026-10\", \"2026-10\", \"/live/\", 1800000000, "
          "\"2001:db8::1\"))\n",
          out);
    fclose(out);
    snprintf(cmd, sizeof(cmd), "python3 %s", script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char tok1[512] = "", tok2[512] = "";
    assert_non_null(fgets(tok1, sizeof(tok1), p));
    assert_non_null(fgets(tok2, sizeof(tok2), p));
    assert_int_equal(pclose(p), 0);
    unlink(script);
    tok1[strcspn(tok1, "\n")] = '\0';
    tok2[strcspn(tok2, "\n")] = '\0';

    const char *why;
    assert_string_equal(tok1, py_token);
    assert_int_equal(verify(&cfg, "/live/room42/index.m3u8", tok1, NULL, NOW, &why), 0);
    assert_int_equal(verify(&cfg, "/live/room7/index.m3u8", tok2, "2001:db8::1", NOW, &why), 0);
    assert_int_equal(verify(&cfg, "/live/room7/index.m3u8", tok2, "2001:db8::2", NOW, &why),
                     EDGE_ERR_TOKEN_BAD_SIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_readme_snippet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
