/*
 * edge_overlay_limits.c: the overlay's abuse limits as pure decisions, with no I/O: whether a
 * viewer may join (overlay_max_viewers, overlay_max_rooms), the set of stream names the origins'
 * registry lists, and a rate limit for the log lines refusals write. edge_overlay.c feeds them
 * from its rooms and from `SMEMBERS sw:streams`; tests/unit/edge/test_overlay_limits.c calls them.
 */
#include <stdlib.h>
#include <string.h>

#include "edge_overlay_int.h"

edge__ov_admit_t edge__overlay_admit(const edge__ov_load_t *load, int room_open, int registered)
{
    /* Every viewer takes a connection and a send queue, whichever room it joins, so the edge's
     * cap comes first: an open room is no reason to take one more. */
    if (load->viewers >= load->max_viewers)
        return EDGE__ADMIT_EDGE_FULL;
    /* A room already open costs nothing more (its state is read and it is in the XREAD), and
     * a stream the registry lists is bounded by what the origins publish. Only rooms that would
     * be new and unknown count against the cap: a lobby before its stream starts, or a show
     * whose stream just ended after the room closed here. */
    if (room_open || registered)
        return EDGE__ADMIT_OK;
    if (load->unregistered_rooms >= load->max_rooms)
        return EDGE__ADMIT_ROOM_REFUSED;
    return EDGE__ADMIT_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int edge__ov_registry_load(edge__ov_registry_t *reg, const char *const *names, const size_t *lens,
                           size_t n)
{
    char **v = calloc(n > 0 ? n : 1, sizeof(*v));
    size_t kept = 0;
    if (v == NULL)
        return EDGE_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        /* A name that cannot be a room cannot admit one; it need not be kept. */
        if (names[i] == NULL || !edge__overlay_room_ok(names[i], lens[i]))
            continue;
        if ((v[kept] = strndup(names[i], lens[i])) == NULL) {
            edge__ov_registry_t tmp = {v, kept};
            edge__ov_registry_dispose(&tmp);
            return EDGE_ERR_NOMEM;
        }
        kept++;
    }
    qsort(v, kept, sizeof(*v), cmp_name);
    edge__ov_registry_dispose(reg);
    reg->names = v;
    reg->n = kept;
    return 0;
}

int edge__ov_registry_has(const edge__ov_registry_t *reg, const char *name)
{
    if (reg->n == 0)
        return 0;
    return bsearch(&name, reg->names, reg->n, sizeof(*reg->names), cmp_name) != NULL;
}

void edge__ov_registry_dispose(edge__ov_registry_t *reg)
{
    for (size_t i = 0; i < reg->n; i++)
        free(reg->names[i]);
    free(reg->names);
    reg->names = NULL;
    reg->n = 0;
}

int edge__ov_ratelog(edge__ov_ratelog_t *rl, uint64_t now_ms, uint64_t period_ms,
                     uint64_t *suppressed)
{
    if (rl->logged && now_ms < rl->next_ms) {
        rl->suppressed++;
        return 0;
    }
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    rl->logged = 1;
    rl->next_ms = now_ms + period_ms;
    return 1;
}
