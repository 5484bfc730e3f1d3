/* Stream ids and the trim floor: the MINID below which no consumer group, no rebuild point and
 * no retention rule needs an entry any more. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "archiver.h"

static int
parse_u64(const char *s, const char **end, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return ASTRO_ERR;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno != 0)
        return ASTRO_ERR;
    *out = v;
    *end = e;
    return ASTRO_OK;
}

int
arc_id_parse(const char *s, struct arc_id *out)
{
    const char *p;
    if (s == NULL || parse_u64(s, &p, &out->ms) != ASTRO_OK)
        return ASTRO_ERR;
    out->seq = 0;
    if (*p == '\0')
        return ASTRO_OK;
    if (*p != '-' || parse_u64(p + 1, &p, &out->seq) != ASTRO_OK || *p != '\0')
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
arc_id_cmp(struct arc_id a, struct arc_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

struct arc_id
arc_id_next(struct arc_id a)
{
    if (a.seq == UINT64_MAX)
        return (struct arc_id){a.ms + 1, 0};
    return (struct arc_id){a.ms, a.seq + 1};
}

void
arc_id_format(struct arc_id a, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRIu64 "-%" PRIu64, a.ms, a.seq);
}

/* A group needs its first pending entry (all pending ids are at or below last-delivered) or,
 * with nothing pending, everything after its last-delivered id: entries it has not read yet. */
static struct arc_id
group_needs(const struct arc_group_info *g)
{
    return g->has_pending ? g->first_pending : arc_id_next(g->last_delivered);
}

bool
arc_trim_floor(const struct arc_group_info *groups, size_t ngroups, struct arc_id age,
               const struct arc_id *rebuild, struct arc_id *minid)
{
    if (ngroups == 0)
        return false; /* nobody archives it: keep everything */
    struct arc_id floor = age;
    for (size_t i = 0; i < ngroups; i++) {
        struct arc_id need = group_needs(&groups[i]);
        if (arc_id_cmp(need, floor) < 0)
            floor = need;
    }
    if (rebuild != NULL && arc_id_cmp(*rebuild, floor) < 0)
        floor = *rebuild;
    *minid = floor;
    return true;
}
