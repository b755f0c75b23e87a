/*
 * Unit test of the DVR index compaction job (origin_dvr.c, included to reach do_compact()): on a
 * real file, with the lines an origin writes, it keeps the whole DVR window however long it is,
 * not a fixed number of bytes of the tail, and drops what is older.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "origin_dvr.c"

static void test_compact_job_keeps_window(void **state)
{
    char dir[] = "/tmp/sw-dvr-compact-XXXXXX", path[1100];
    const int64_t t0 = 1796000000000, window = 2 * 3600000;
    const int nseg = 5400; /* three hours of 2 s segments */

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/index.log", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* Lines as the origin wrote them before they carried a checksum: both versions read them. */
    for (int i = 0; i < nseg; i++) {
        int64_t pdt = t0 + (int64_t)i * 2000;
        fprintf(f, "seg v %d %lld 180000 %lld 1 0 1000 %lld 90000 0\n", i, (long long)i * 180000,
                (long long)pdt, (long long)t0);
        fprintf(f, "seg a %d %lld 96000 %lld 1 0 100 %lld 48000 0\n", i, (long long)i * 96000,
                (long long)pdt, (long long)t0);
    }
    assert_int_equal(fclose(f), 0);

    struct origin o;
    memset(&o, 0, sizeof(o));
    o.hls_cfg.window_ms = (uint32_t)window;
    dvr_job_t *j = calloc(1, sizeof(*j));
    assert_non_null(j);
    j->o = &o;
    j->op = JOB_COMPACT;
    snprintf(j->path, sizeof(j->path), "%s", path);
    do_compact(j);
    assert_int_equal(j->rv, 0);
    free(j);

    /* Every segment of the window is still there, in both tracks; nothing 10 minutes older. */
    int64_t newest = t0 + (int64_t)(nseg - 1) * 2000;
    int in_window[2] = {0, 0}, too_old = 0;
    char line[512];
    assert_non_null(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f) != NULL) {
        char k;
        long long msn, pdt;
        assert_int_equal(sscanf(line, "seg %c %lld %*d %*d %lld", &k, &msn, &pdt), 3);
        if (pdt >= newest - window)
            in_window[k == 'v']++;
        if (pdt < newest - window - 600000)
            too_old++;
    }
    fclose(f);
    assert_int_equal(in_window[1], 3601);
    assert_int_equal(in_window[0], 3601);
    assert_int_equal(too_old, 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_job_keeps_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
