/* jobtab.c - see jobtab.h. */
#include "jobtab.h"

#include "job.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 32);
}

static size_t slot_of(const jobtab_t *t, const char *id, size_t len)
{
    return (size_t)hash(id, len) & (t->cap - 1);
}

struct job *jobtab_find(const jobtab_t *t, const char *id, size_t len)
{
    if (t->n == 0)
        return NULL;
    for (size_t i = slot_of(t, id, len);; i = (i + 1) & (t->cap - 1)) {
        job_t *j = t->slots[i];
        if (!j)
            return NULL;
        if (j->id_len == len && memcmp(j->id, id, len) == 0)
            return j;
    }
}

static void put(jobtab_t *t, job_t *job)
{
    size_t i = slot_of(t, job->id, job->id_len);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = job;
}

void jobtab_add(jobtab_t *t, struct job *job)
{
    if ((t->n + 1) * 4 > t->cap * 3) {
        jobtab_t bigger = {xcalloc(t->cap ? 2 * t->cap : 64, sizeof(job_t *)),
                           t->cap ? 2 * t->cap : 64, t->n};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i])
                put(&bigger, t->slots[i]);
        free(t->slots);
        *t = bigger;
    }
    put(t, job);
    t->n++;
}

void jobtab_del(jobtab_t *t, struct job *job)
{
    size_t i = slot_of(t, job->id, job->id_len), mask = t->cap - 1;

    while (t->slots[i] != job)
        i = (i + 1) & mask;
    t->slots[i] = NULL;
    t->n--;
    /* close the gap: move back every following job whose probe passes over slot i */
    for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->slots[j]->id, t->slots[j]->id_len);
        /* j's job may stay unless its home is cyclically in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            t->slots[j] = NULL;
            i = j;
        }
    }
}

void jobtab_free(jobtab_t *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
