/*
 * fuzz_edge_cachecontrol.c: edge_cc_parse(), edge_http_date_parse() and edge_ttl_compute() on
 * arbitrary bytes: the input splits at NULs into Cache-Control, Expires and Date. Checks that
 * the results are consistent: no-store and private are never cacheable, lifetimes are never
 * negative and never above the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/http_util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[4096 + 3];
    edge_cc_t cc;
    edge_ttl_t t;
    const char *why = NULL;
    const edge_ttl_rules_t rules = {1000, 86400000, 30000, 3600000};

    if (size > 4096)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *cc_s = buf, *exp_s = cc_s + strlen(cc_s) + 1;
    const char *date_s = exp_s + strlen(exp_s) + 1;
    if (exp_s > buf + size)
        exp_s = NULL;
    if (exp_s == NULL || date_s > buf + size)
        date_s = NULL;

    int rv = edge_cc_parse((const char *)data, size, &cc, &why);
    CHECK(rv == 0 || (rv == EDGE_ERR_INVAL && why != NULL));
    CHECK(cc.max_age >= -1 && cc.max_age <= 2147483648ll);
    CHECK(cc.s_maxage >= -1 && cc.s_maxage <= 2147483648ll);

    int64_t d = edge_http_date_parse((const char *)data, size);
    CHECK(d >= -1);

    edge_ttl_compute(cc_s, exp_s, date_s, 1795849200000ll, &rules, &t);
    CHECK(t.fresh_ms >= 0 && t.fresh_ms <= rules.max_ttl_ms);
    CHECK(t.cacheable == (t.fresh_ms > 0));
    CHECK(!t.is_private || !t.cacheable);
    CHECK(t.stale_if_error_ms >= 0);
    return 0;
}
