/*
 * test_overlay_limits.c: the overlay's abuse limits (edge_overlay_limits.c): who may join under
 * overlay_max_viewers and overlay_max_rooms, the copy of the registry's stream names, and the
 * rate limit of the refusals' log lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge_overlay_int.h"

static void test_viewer_cap(void **state)
{
    edge__ov_load_t l = {.viewers = 4, .max_viewers = 5, .unregistered_rooms = 0, .max_rooms = 10};
    assert_int_equal(edge__overlay_admit(&l, 1, 1), EDGE__ADMIT_OK);
    l.viewers = 5;
    /* The edge's cap holds whatever the room: open, registered, or neither. */
    assert_int_equal(edge__overlay_admit(&l, 1, 1), EDGE__ADMIT_EDGE_FULL);
    assert_int_equal(edge__overlay_admit(&l, 1, 0), EDGE__ADMIT_EDGE_FULL);
    assert_int_equal(edge__overlay_admit(&l, 0, 1), EDGE__ADMIT_EDGE_FULL);
    assert_int_equal(edge__overlay_admit(&l, 0, 0), EDGE__ADMIT_EDGE_FULL);
    l.viewers = 6; /* over it (a registry change cannot do this, but a count may) */
    assert_int_equal(edge__overlay_admit(&l, 1, 1), EDGE__ADMIT_EDGE_FULL);
}

static void test_room_cap(void **state)
{
    edge__ov_load_t l = {.viewers = 0, .max_viewers = 100, .unregistered_rooms = 1, .max_rooms = 2};
    /* Below the cap an unknown room opens (a lobby before its stream starts). */
    assert_int_equal(edge__overlay_admit(&l, 0, 0), EDGE__ADMIT_OK);
    l.unregistered_rooms = 2;
    assert_int_equal(edge__overlay_admit(&l, 0, 0), EDGE__ADMIT_ROOM_REFUSED);
    /* At the cap: a registered stream's room still opens, and an open room still takes viewers
     * (a show that just ended keeps its room while it has viewers). */
    assert_int_equal(edge__overlay_admit(&l, 0, 1), EDGE__ADMIT_OK);
    assert_int_equal(edge__overlay_admit(&l, 1, 0), EDGE__ADMIT_OK);
    l.unregistered_rooms = 3; /* streams ended: more unknown rooms open than the cap */
    assert_int_equal(edge__overlay_admit(&l, 1, 0), EDGE__ADMIT_OK);
    assert_int_equal(edge__overlay_admit(&l, 0, 0), EDGE__ADMIT_ROOM_REFUSED);
    /* overlay_max_rooms = 0: only the registry's streams get rooms. */
    l.max_rooms = 0;
    l.unregistered_rooms = 0;
    assert_int_equal(edge__overlay_admit(&l, 0, 0), EDGE__ADMIT_ROOM_REFUSED);
    assert_int_equal(edge__overlay_admit(&l, 0, 1), EDGE__ADMIT_OK);
}

static void test_registry(void **state)
{
    edge__ov_registry_t reg = {0};
    assert_false(edge__ov_registry_has(&reg, "room42"));
    /* Not NUL-terminated where the reply ends; a name that cannot be a room is left out. */
    const char buf[] = "room42xshowbad nameroom1";
    const char *names[] = {buf, buf + 7, buf + 11, buf + 19, NULL};
    size_t lens[] = {6, 4, 8, 5, 3};
    assert_int_equal(edge__ov_registry_load(&reg, names, lens, 5), 0);
    assert_int_equal(reg.n, 3);
    assert_true(edge__ov_registry_has(&reg, "room42"));
    assert_true(edge__ov_registry_has(&reg, "show"));
    assert_true(edge__ov_registry_has(&reg, "room1"));
    assert_false(edge__ov_registry_has(&reg, "room4"));
    assert_false(edge__ov_registry_has(&reg, "room420"));
    assert_false(edge__ov_registry_has(&reg, "bad name"));
    assert_false(edge__ov_registry_has(&reg, "showbad"));
    /* A new read replaces the set: a stream that ended is gone. */
    const char *next[] = {"show"};
    size_t nlen[] = {4};
    assert_int_equal(edge__ov_registry_load(&reg, next, nlen, 1), 0);
    assert_int_equal(reg.n, 1);
    assert_false(edge__ov_registry_has(&reg, "room42"));
    assert_true(edge__ov_registry_has(&reg, "show"));
    assert_int_equal(edge__ov_registry_load(&reg, NULL, NULL, 0), 0);
    assert_int_equal(reg.n, 0);
    assert_false(edge__ov_registry_has(&reg, "show"));
    edge__ov_registry_dispose(&reg);
    edge__ov_registry_dispose(&reg);
}

static void test_registry_many(void **state)
{
    /* Out of order and many: every name is found, none that was not given. */
    enum { N = 2000 };
    char(*buf)[16] = calloc(N, sizeof(*buf));
    const char **names = calloc(N, sizeof(*names));
    size_t *lens = calloc(N, sizeof(*lens));
    assert_non_null(buf);
    assert_non_null(names);
    assert_non_null(lens);
    for (int i = 0; i < N; i++) {
        int k = (i * 7919) % N; /* a permutation of 0..N-1 (7919 is prime, N is not its multiple) */
        lens[i] = (size_t)snprintf(buf[i], sizeof(buf[i]), "s%d", 2 * k);
        names[i] = buf[i];
    }
    edge__ov_registry_t reg = {0};
    assert_int_equal(edge__ov_registry_load(&reg, names, lens, N), 0);
    assert_int_equal(reg.n, N);
    char name[16];
    for (int k = 0; k < 2 * N; k++) {
        snprintf(name, sizeof(name), "s%d", k);
        assert_int_equal(edge__ov_registry_has(&reg, name), k % 2 == 0);
    }
    edge__ov_registry_dispose(&reg);
    free(buf);
    free(names);
    free(lens);
}

static void test_ratelog(void **state)
{
    edge__ov_ratelog_t rl = {0};
    uint64_t more = 99;
    assert_true(edge__ov_ratelog(&rl, 5000, 1000, &more));
    assert_int_equal(more, 0);
    /* A flood within the period writes nothing and counts what it did not write. */
    more = 99;
    for (int i = 0; i < 500; i++)
        assert_false(edge__ov_ratelog(&rl, 5000 + (uint64_t)i, 1000, &more));
    assert_int_equal(more, 99);
    assert_false(edge__ov_ratelog(&rl, 5999, 1000, &more));
    assert_true(edge__ov_ratelog(&rl, 6000, 1000, &more));
    assert_int_equal(more, 501);
    /* Quiet for a while: the next refusal is logged at once, with nothing suppressed. */
    assert_true(edge__ov_ratelog(&rl, 60000, 1000, &more));
    assert_int_equal(more, 0);
    /* The first line is written even at time 0. */
    edge__ov_ratelog_t z = {0};
    assert_true(edge__ov_ratelog(&z, 0, 1000, &more));
    assert_false(edge__ov_ratelog(&z, 0, 1000, &more));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_viewer_cap), cmocka_unit_test(test_room_cap),
        cmocka_unit_test(test_registry),   cmocka_unit_test(test_registry_many),
        cmocka_unit_test(test_ratelog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
