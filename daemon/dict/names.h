/* names.h - a set of names kept in byte order, for listing the dicts a page at a time.
 *
 * A skip list: adding or removing a name costs O(log n) on average, finding where a page starts
 * (the first name after a cursor, which need not be in the set) O(log n), and each following
 * name O(1). So a page of p names costs O(log n + p) whatever the set's size, and a page can
 * resume after a name that was removed meanwhile: the order does not depend on what is in the
 * set. The levels come from a generator seeded by the caller (a secret), not from the names, so
 * chosen names cannot make the list degenerate.
 *
 * Names are borrowed: each must stay valid, unchanged, until it is removed. Memory: one
 * allocation per name, 32 bytes plus 8 per level (1.33 levels on average). */
#ifndef FORQ_DICT_NAMES_H
#define FORQ_DICT_NAMES_H

#include <stddef.h>
#include <stdint.h>

typedef struct names names_t;
typedef struct names_node names_node_t;

/* An empty set; the caller owns it (names_free). */
names_t *names_new(uint64_t seed);
/* Free the set (not the names or items). Safe on NULL. */
void names_free(names_t *n);

/* Add name (len bytes, borrowed) with its item. The name must not be in the set. */
void names_add(names_t *n, const char *name, size_t len, void *item);
/* Remove name; nothing happens if it is not in the set. */
void names_del(names_t *n, const char *name, size_t len);

/* The first name after `after` (alen bytes) in byte order (a shorter name before the longer
 * one it begins), or the first of all when after is NULL; NULL past the end. `after` need not
 * be in the set. The node is borrowed until the set changes. */
const names_node_t *names_seek(const names_t *n, const char *after, size_t alen);
/* The name after node, or NULL. */
const names_node_t *names_next(const names_node_t *node);
/* The node's item and name. */
void *names_item(const names_node_t *node);
const char *names_name(const names_node_t *node, size_t *ret_len);

/* Names in the set. */
size_t names_count(const names_t *n);

#endif
