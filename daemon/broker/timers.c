/* timers.c - see timers.h. */
#include "timers.h"

#include "util.h"

void timer_node_init(timer_node_t *t)
{
    t->at = 0;
    t->idx = TIMER_IDLE;
    t->kind = 0;
}

static void put(timers_t *h, size_t i, timer_node_t *t)
{
    h->v[i] = t;
    t->idx = i;
}

static void sift_up(timers_t *h, size_t i)
{
    timer_node_t *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->at <= t->at)
            break;
        put(h, i, h->v[parent]);
        i = parent;
    }
    put(h, i, t);
}

static void sift_down(timers_t *h, size_t i)
{
    timer_node_t *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->at < h->v[c]->at)
            c++;
        if (t->at <= h->v[c]->at)
            break;
        put(h, i, h->v[c]);
        i = c;
    }
    put(h, i, t);
}

void timers_add(timers_t *h, timer_node_t *t, uint64_t at)
{
    timers_del(h, t);
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    t->at = at;
    put(h, h->n++, t);
    sift_up(h, t->idx);
}

void timers_del(timers_t *h, timer_node_t *t)
{
    size_t i = t->idx;
    if (i == TIMER_IDLE)
        return;
    t->idx = TIMER_IDLE;
    if (--h->n == i)
        return;
    timer_node_t *moved = h->v[h->n];
    put(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->idx);
}

timer_node_t *timers_peek(const timers_t *h)
{
    return h->n ? h->v[0] : NULL;
}

void timers_done(timers_t *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
