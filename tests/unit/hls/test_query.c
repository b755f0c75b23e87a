/*
 * test_query.c: hls_query_parse() on good and hostile LL-HLS query strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hls/hls.h"

static int parse(const char *s, hls_query_t *q, const char **why)
{
    *why = NULL;
    return hls_query_parse(s, strlen(s), q, why);
}

static void test_good(void **state)
{
    hls_query_t q;
    const char *why;

    assert_int_equal(parse("", &q, &why), 0);
    assert_int_equal(q.has_msn, 0);
    assert_int_equal(q.has_part, 0);
    assert_int_equal(q.skip, 0);
    assert_int_equal(hls_query_parse(NULL, 0, &q, &why), 0);

    assert_int_equal(parse("_HLS_msn=5", &q, &why), 0);
    assert_int_equal(q.has_msn, 1);
    assert_int_equal(q.msn, 5);
    assert_int_equal(q.has_part, 0);

    assert_int_equal(parse("_HLS_msn=273&_HLS_part=2", &q, &why), 0);
    assert_int_equal(q.msn, 273);
    assert_int_equal(q.has_part, 1);
    assert_int_equal(q.part, 2);

    /* Order does not matter; _HLS_part may come first. */
    assert_int_equal(parse("_HLS_part=4294967295&_HLS_msn=0", &q, &why), 0);
    assert_int_equal(q.msn, 0);
    assert_int_equal(q.part, UINT32_MAX);

    assert_int_equal(parse("_HLS_skip=YES", &q, &why), 0);
    assert_int_equal(q.skip, 1);
    assert_int_equal(q.has_msn, 0);
    assert_int_equal(parse("_HLS_msn=18446744073709551615&_HLS_skip=v2", &q, &why), 0);
    assert_int_equal(q.skip, 2);
    assert_true(q.msn == UINT64_MAX);

    /* Unknown parameters, empty pairs and leading zeros. */
    assert_int_equal(parse("dvr=1&utm_source=x%20y&&_HLS_msn=007&flag&", &q, &why), 0);
    assert_int_equal(q.msn, 7);
    assert_int_equal(parse("_HLS_msnx=5&x_HLS_msn=6&_hls_msn=7&dvr=1&dvr=2", &q, &why), 0);
    assert_int_equal(q.has_msn, 0);
    assert_null(why);

    /* Only `len` bytes are read. */
    assert_int_equal(hls_query_parse("_HLS_msn=12", 10, &q, &why), 0);
    assert_int_equal(q.msn, 1);
}

static void test_bad(void **state)
{
    static const char *const bad[] = {
        "_HLS_msn",
        "_HLS_msn=",
        "_HLS_msn=-1",
        "_HLS_msn=+1",
        "_HLS_msn= 1",
        "_HLS_msn=1 ",
        "_HLS_msn=1a",
        "_HLS_msn=1.0",
        "_HLS_msn=0x10",
        "_HLS_msn=%31",
        "_HLS_msn=18446744073709551616",
        "_HLS_msn=99999999999999999999",
        "_HLS_msn=000000000000000000001",
        "_HLS_msn=1&_HLS_msn=1",
        "_HLS_part=1",
        "_HLS_part=0&dvr=1",
        "_HLS_msn=1&_HLS_part=",
        "_HLS_msn=1&_HLS_part=-0",
        "_HLS_msn=1&_HLS_part=4294967296",
        "_HLS_msn=1&_HLS_part=1&_HLS_part=1",
        "_HLS_skip",
        "_HLS_skip=",
        "_HLS_skip=yes",
        "_HLS_skip=NO",
        "_HLS_skip=YES ",
        "_HLS_skip=YE%53",
        "_HLS_skip=v3",
        "_HLS_skip=YES&_HLS_skip=YES",
        "_HLS_msn==1",
    };
    hls_query_t q;
    const char *why;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = parse(bad[i], &q, &why);
        if (rv != HLS_ERR_INVAL || why == NULL)
            fail_msg("accepted or no reason for \"%s\"", bad[i]);
    }

    /* An embedded NUL inside the value. */
    assert_int_equal(hls_query_parse("_HLS_msn=1\0", 11, &q, &why), HLS_ERR_INVAL);

    /* The reasons name the fault. */
    parse("_HLS_part=3", &q, &why);
    assert_string_equal(why, "_HLS_part without _HLS_msn");
    parse("_HLS_msn=1&_HLS_msn=2", &q, &why);
    assert_string_equal(why, "_HLS_msn given twice");
    parse("_HLS_msn=x", &q, &why);
    assert_string_equal(why, "_HLS_msn is not a decimal number below 2^64");
    parse("_HLS_skip=1", &q, &why);
    assert_string_equal(why, "_HLS_skip is neither YES nor v2");
    /* err_desc may be NULL. */
    assert_int_equal(hls_query_parse("_HLS_msn=x", 10, &q, NULL), HLS_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
