/* jobtab.h - the broker's table of jobs by id: open addressing with linear probing over an
 * array of pointers (8 bytes a slot, at most 3/4 full), so that a million queued jobs cost
 * about 11-16 bytes each here instead of uthash's 56-byte handle in every job. The keys are
 * the jobs' own ids; the table owns nothing. */
#ifndef FORQ_JOBTAB_H
#define FORQ_JOBTAB_H

#include <stddef.h>
#include <stdint.h>

struct job;

typedef struct {
    struct job **slots; /* NULL = empty */
    size_t cap;         /* a power of two, or 0 */
    size_t n;           /* jobs in it */
} jobtab_t;

/* Find the job with this id, NULL if none. */
struct job *jobtab_find(const jobtab_t *t, const char *id, size_t len);
/* Add a job (its id must not be in the table). Aborts when out of memory, like xmalloc. */
void jobtab_add(jobtab_t *t, struct job *job);
/* Remove a job that is in the table. */
void jobtab_del(jobtab_t *t, struct job *job);
/* The job in slot i (0 <= i < t->cap), NULL for an empty slot: for iterating. */
static inline struct job *jobtab_at(const jobtab_t *t, size_t i)
{
    return t->slots[i];
}
void jobtab_free(jobtab_t *t);

#endif
