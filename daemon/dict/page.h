/* page.h - the answers of the listing ops (PROTOCOL.md section 6.8, "Pages"): a page of one
 * dict's keys or items, or a page of the dicts with their key counts, packed as the reply's
 * value frame (an array) with the reply's fields (`count`, `more`, and the cursor in `key`).
 *
 * keys and items list a dict in the order its keys were first added, from after a cursor that
 * must be one of its keys; dicts lists the dicts in byte order of their names, from after any
 * name. Both pack only the page: O(page) past finding where it starts. */
#ifndef FORQ_DICT_PAGE_H
#define FORQ_DICT_PAGE_H

#include "store.h"
#include "wire.h"

#include <msgpack.h>
#include <stdbool.h>

#define PAGE_DEF 1000  /* entries in a page when the request's limit is 0 or absent */
#define PAGE_MAX 10000 /* and at most, whatever the limit */

/* A packed page: the value frame and the reply's fields. */
typedef struct {
    msgpack_sbuffer frame;         /* the value frame (owned: page_done) */
    wire_hdr_t rep;                /* count, more, key (into cursor[]) */
    char cursor[WIRE_KEY_MAX + 1]; /* the next page's cursor: a copy, the store may change */
} page_t;

/* Page through h->name's keys (or [key, ver, value] items) after the cursor h->key (none: from
 * the first), at most h->limit. 0 with *p filled (page_done it), or -ENOENT when the cursor is
 * not a key of the dict (nothing to free). */
int page_keys(page_t *p, dstore_t *s, const wire_hdr_t *h, bool items);

/* Page through the dicts, as [name, keys] pairs, after the name h->key (none: from the first),
 * at most h->limit of those `keep` accepts (NULL: every dict; ud is keep's). *p is filled:
 * page_done it. Cost: dstore_iter_dicts. */
void page_dicts(page_t *p, dstore_t *s, const wire_hdr_t *h, dstore_keep_fn keep, void *ud);

/* Free the page's frame. */
void page_done(page_t *p);

#endif
