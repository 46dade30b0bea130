/* names.c - see names.h. A classic skip list (Pugh, 1990) with p = 1/4: a node is on level i + 1
 * with probability 1/4 when it is on level i, so a search looks at about 2 * log4(n) nodes on
 * its way down. LEVELS_MAX levels serve 4^16 (more than four billion) names. Every node is on
 * level 0, which is the whole set in order: a page walks it. */
#include "names.h"

#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LEVELS_MAX 16

struct names_node {
    void *item;       /* the caller's */
    const char *name; /* borrowed from the caller */
    size_t len;
    uint8_t levels;            /* next[] has this many entries */
    struct names_node *next[]; /* on each level, the following node */
};

struct names {
    names_node_t *head[LEVELS_MAX]; /* the first node on each level */
    uint8_t levels;                 /* levels in use */
    size_t count;
    uint64_t rng; /* xorshift64* state, never 0 */
};

names_t *names_new(uint64_t seed)
{
    names_t *n = xcalloc(1, sizeof(*n));
    n->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    return n;
}

void names_free(names_t *n)
{
    names_node_t *x, *next;

    if (!n)
        return;
    for (x = n->head[0]; x; x = next) {
        next = x->next[0];
        free(x);
    }
    free(n);
}

/* Byte order, a prefix first. */
static int cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

static unsigned random_levels(names_t *n)
{
    uint64_t r;
    unsigned levels = 1;

    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    r = n->rng * 0x2545f4914f6cdd1dULL;
    while (levels < LEVELS_MAX && (r & 3) == 0) {
        levels++;
        r >>= 2;
    }
    return levels;
}

/* The link to follow on level i from x (NULL: from the head). */
static names_node_t **link_of(names_t *n, names_node_t *x, unsigned i)
{
    return x ? &x->next[i] : &n->head[i];
}

/* For every level, the last node before name (NULL: the head) into prev[]. When `strictly`
 * is false, "before" includes a node holding name itself. */
static void find_prev(const names_t *n, const char *name, size_t len, bool strictly,
                      names_node_t *prev[LEVELS_MAX])
{
    names_node_t *x = NULL;

    for (int i = LEVELS_MAX - 1; i >= n->levels; i--)
        prev[i] = NULL; /* levels no node is on yet */
    for (int i = n->levels - 1; i >= 0; i--) {
        for (;;) {
            names_node_t *y = x ? x->next[i] : n->head[i];
            int c;
            if (!y)
                break;
            c = cmp(y->name, y->len, name, len);
            if (c > 0 || (c == 0 && strictly))
                break;
            x = y;
        }
        prev[i] = x;
    }
}

void names_add(names_t *n, const char *name, size_t len, void *item)
{
    names_node_t *prev[LEVELS_MAX], *x;
    unsigned levels = random_levels(n);

    find_prev(n, name, len, true, prev);
    x = xcalloc(1, sizeof(*x) + levels * sizeof(x->next[0]));
    x->item = item;
    x->name = name;
    x->len = len;
    x->levels = (uint8_t)levels;
    for (unsigned i = 0; i < levels; i++) {
        names_node_t **l = link_of(n, prev[i], i);
        x->next[i] = *l;
        *l = x;
    }
    if (levels > n->levels)
        n->levels = (uint8_t)levels;
    n->count++;
}

void names_del(names_t *n, const char *name, size_t len)
{
    names_node_t *prev[LEVELS_MAX], *x;

    find_prev(n, name, len, true, prev);
    x = *link_of(n, prev[0], 0);
    if (!x || cmp(x->name, x->len, name, len) != 0)
        return;
    for (unsigned i = 0; i < x->levels; i++)
        *link_of(n, prev[i], i) = x->next[i];
    while (n->levels > 0 && !n->head[n->levels - 1])
        n->levels--;
    n->count--;
    free(x);
}

const names_node_t *names_seek(const names_t *n, const char *after, size_t alen)
{
    names_node_t *prev[LEVELS_MAX];

    if (!after)
        return n->head[0];
    find_prev(n, after, alen, false, prev);
    return prev[0] ? prev[0]->next[0] : n->head[0];
}

const names_node_t *names_next(const names_node_t *node)
{
    return node->next[0];
}

void *names_item(const names_node_t *node)
{
    return node->item;
}

const char *names_name(const names_node_t *node, size_t *ret_len)
{
    *ret_len = node->len;
    return node->name;
}

size_t names_count(const names_t *n)
{
    return n->count;
}
