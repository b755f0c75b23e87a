/*
 * Unit tests of what a restart reads from a DVR folder (origin__dvr_restore in origin_dvr.c), on
 * real files in a temporary folder: after a clean stop, after a crash in the middle of a segment,
 * after a crash before the first segment was logged, with torn lines, unlogged and temporary
 * files, and a file whose size disagrees with its line.
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

#include "origin_int.h"

typedef struct fixture {
    char root[64];
    char dir[128];
    struct origin o;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char p[256];
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/sw-dvr-restore-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/s", f->root);
    mkdir(f->dir, 0755);
    snprintf(p, sizeof(p), "%s/v", f->dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/a", f->dir);
    mkdir(p, 0755);
    f->o.data_dir = f->root;
    f->o.hls_cfg.window_ms = 3600000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void put_file(fixture_t *f, const char *name, size_t size)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < size; i++)
        fputc('x', fp);
    assert_int_equal(fclose(fp), 0);
}

static int exists(fixture_t *f, const char *name)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    return stat(p, &sb) == 0;
}

/* Appends the line of segment `msn` of track `kind` (file `bytes` long, none for a gap). */
static void put_segment(fixture_t *f, FILE *index, int kind, uint64_t msn, uint64_t bytes)
{
    hls_segment_t seg;
    char line[256], name[64];
    memset(&seg, 0, sizeof(seg));
    seg.msn = msn;
    seg.duration = kind == HLS_VIDEO ? 180000 : 96000;
    seg.start = (int64_t)(msn * seg.duration);
    seg.pdt_ms = 1796000000000 + (int64_t)msn * 2000;
    seg.init_gen = 1;
    seg.bytes = bytes;
    assert_true(origin__dvr_line_format(line, sizeof(line), kind, &seg, 1796000000000,
                                        kind == HLS_VIDEO ? 90000 : 48000) > 0);
    fputs(line, index);
    snprintf(name, sizeof(name), "%s/%llu.m4s", kind == HLS_VIDEO ? "v" : "a",
             (unsigned long long)msn);
    put_file(f, name, (size_t)bytes);
}

static FILE *open_index(fixture_t *f)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/index.log", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    return fp;
}

static void test_clean_stop(void **state)
{
    fixture_t *f = *state;
    FILE *ix = open_index(f);
    fputs("start 0\n", ix);
    for (uint64_t m = 0; m < 5; m++) {
        put_segment(f, ix, HLS_VIDEO, m, 100 + m);
        put_segment(f, ix, HLS_AUDIO, m, 10 + m);
    }
    fputs("end\n", ix);
    fclose(ix);
    put_file(f, "v/init-1.mp4", 10);

    origin_dvr_restore_t r;
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_true(r.clean);
    assert_int_equal(r.next_msn, 5);
    assert_int_equal(r.init_gen, 1);
    assert_int_equal(r.origin_ms, 1796000000000);
    assert_int_equal(r.nlines[HLS_VIDEO], 5);
    assert_int_equal(r.nlines[HLS_AUDIO], 5);
    assert_int_equal(r.lines[HLS_AUDIO][4].seg.bytes, 14);
    origin__dvr_restore_dispose(&r);
    assert_true(exists(f, "v/4.m4s") && exists(f, "a/4.m4s"));
}

static void test_crash_mid_segment(void **state)
{
    fixture_t *f = *state;
    FILE *ix = open_index(f);
    fputs("start 0\n", ix);
    for (uint64_t m = 0; m < 5; m++) {
        put_segment(f, ix, HLS_VIDEO, m, 100 + m);
        put_segment(f, ix, HLS_AUDIO, m, 10 + m);
    }
    fputs("seg v 5 900000 1800", ix); /* torn */
    fclose(ix);
    put_file(f, "v/5.m4s", 105);     /* renamed, but its line did not make it */
    put_file(f, "a/5.m4s.tmp", 3);   /* being written */
    put_file(f, "v/init-2.mp4", 10); /* a new init whose segments were never logged */
    put_file(f, "v/init-3.mp4.tmp", 1);
    put_file(f, "v/notes.txt", 1); /* not ours: left alone */

    origin_dvr_restore_t r;
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_false(r.clean);
    /* 5 was handed out (a file carries it), 6 was in progress. */
    assert_int_equal(r.next_msn, 7);
    assert_int_equal(r.init_gen, 3);
    assert_int_equal(r.nlines[HLS_VIDEO], 5);
    assert_int_equal(r.nlines[HLS_AUDIO], 5);
    origin__dvr_restore_dispose(&r);
    assert_false(exists(f, "v/5.m4s"));
    assert_false(exists(f, "a/5.m4s.tmp"));
    /* The torn line is cut off, so that the next run's first line starts a line of its own. */
    char p[256], tail[32] = "";
    snprintf(p, sizeof(p), "%s/index.log", f->dir);
    FILE *ix2 = fopen(p, "r");
    assert_non_null(ix2);
    assert_int_equal(fseek(ix2, -(long)sizeof("crc=00000000\n") + 1, SEEK_END), 0);
    assert_non_null(fgets(tail, sizeof(tail), ix2));
    fclose(ix2);
    assert_string_equal(tail + strlen(tail) - 1, "\n");
    assert_memory_equal(tail, "crc=", 4);
    assert_false(exists(f, "v/init-3.mp4.tmp"));
    assert_true(exists(f, "v/init-2.mp4"));
    assert_true(exists(f, "v/notes.txt"));
    assert_true(exists(f, "v/4.m4s") && exists(f, "a/4.m4s"));
}

static void test_size_mismatch(void **state)
{
    fixture_t *f = *state;
    FILE *ix = open_index(f);
    for (uint64_t m = 0; m < 4; m++)
        put_segment(f, ix, HLS_VIDEO, m, 100);
    fclose(ix);
    put_file(f, "v/2.m4s", 60); /* not what the line describes */

    origin_dvr_restore_t r;
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_int_equal(r.next_msn, 5);
    assert_int_equal(r.nlines[HLS_VIDEO], 3);
    assert_int_equal(r.lines[HLS_VIDEO][2].seg.msn, 3);
    origin__dvr_restore_dispose(&r);
    assert_false(exists(f, "v/2.m4s"));
    assert_true(exists(f, "v/3.m4s"));
}

/* A restarted run that crashed before logging its first segment had handed out that number. */
static void test_crash_before_first_segment(void **state)
{
    fixture_t *f = *state;
    FILE *ix = open_index(f);
    fputs("start 0\n", ix);
    put_segment(f, ix, HLS_VIDEO, 0, 100);
    fputs("start 2\n", ix); /* after an earlier crash */
    fclose(ix);

    origin_dvr_restore_t r;
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_false(r.clean);
    assert_int_equal(r.next_msn, 3);
    origin__dvr_restore_dispose(&r);

    /* The same run stopped cleanly: nothing was handed out past 1. */
    ix = open_index(f);
    fputs("start 0\n", ix);
    put_segment(f, ix, HLS_VIDEO, 0, 100);
    fputs("start 2\nend\n", ix);
    fclose(ix);
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_true(r.clean);
    assert_int_equal(r.next_msn, 2);
    origin__dvr_restore_dispose(&r);
}

static void test_nothing_there(void **state)
{
    fixture_t *f = *state;
    origin_dvr_restore_t r;
    assert_int_equal(origin__dvr_restore(&f->o, "absent", &r), 1);
    /* A folder with garbage only: an earlier run, of which nothing is usable. */
    FILE *ix = open_index(f);
    fputs("\x01\x02garbage\n\0\0\0", ix);
    fclose(ix);
    assert_int_equal(origin__dvr_restore(&f->o, "s", &r), 0);
    assert_false(r.clean);
    assert_int_equal(r.next_msn, 1);
    assert_int_equal(r.nlines[HLS_VIDEO] + r.nlines[HLS_AUDIO], 0);
    origin__dvr_restore_dispose(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_first_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_there, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
