/* sched.c - see sched.h. */
#include "sched.h"

#include <string.h>
#include <utlist.h>

void sched_init(sched_t *s)
{
    memset(s, 0, sizeof(*s));
}

void sched_lane_init(sched_lane_t *lane, unsigned prio)
{
    memset(lane, 0, sizeof(*lane));
    lane->prio = prio;
}

void sched_push(sched_t *s, sched_lane_t *lane, sched_item_t *item, bool front)
{
    if (lane->len == 0)
        DL_APPEND(s->ring[lane->prio], lane);
    if (front)
        DL_PREPEND(lane->items, item);
    else
        DL_APPEND(lane->items, item);
    item->lane = lane;
    lane->len++;
    s->len[lane->prio]++;
    s->total++;
}

static void unlink_item(sched_t *s, sched_item_t *item)
{
    sched_lane_t *lane = item->lane;

    DL_DELETE(lane->items, item);
    item->lane = NULL;
    item->prev = item->next = NULL;
    lane->len--;
    s->len[lane->prio]--;
    s->total--;
    if (lane->len == 0)
        DL_DELETE(s->ring[lane->prio], lane);
}

sched_item_t *sched_pop(sched_t *s)
{
    if (s->total == 0)
        return NULL;
    for (int p = SCHED_NPRIO - 1; p >= 0; p--) {
        sched_lane_t *lane = s->ring[p];
        if (!lane)
            continue;
        sched_item_t *item = lane->items;
        unlink_item(s, item);
        if (lane->len > 0) {
            /* this client had its turn: to the back of the ring */
            DL_DELETE(s->ring[p], lane);
            DL_APPEND(s->ring[p], lane);
        }
        return item;
    }
    return NULL;
}

sched_item_t *sched_peek(const sched_t *s)
{
    if (s->total == 0)
        return NULL;
    for (int p = SCHED_NPRIO - 1; p >= 0; p--)
        if (s->ring[p])
            return s->ring[p]->items;
    return NULL;
}

void sched_take(sched_t *s, sched_item_t *item)
{
    sched_lane_t *lane = item->lane;

    if (!lane)
        return;
    unlink_item(s, item);
    if (lane->len > 0) {
        /* its client had its turn: to the back of the ring, as sched_pop does */
        DL_DELETE(s->ring[lane->prio], lane);
        DL_APPEND(s->ring[lane->prio], lane);
    }
}

void sched_remove(sched_t *s, sched_item_t *item)
{
    if (item->lane)
        unlink_item(s, item);
}

size_t sched_visit(const sched_t *s, bool (*fn)(sched_item_t *item, void *ud), void *ud)
{
    size_t n = 0;

    for (int p = SCHED_NPRIO - 1; p >= 0; p--)
        for (sched_lane_t *lane = s->ring[p]; lane; lane = lane->next)
            for (sched_item_t *item = lane->items; item; item = item->next) {
                n++;
                if (!fn(item, ud))
                    return n;
            }
    return n;
}
