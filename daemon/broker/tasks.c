/* tasks.c - interned task names and their run-time averages. See tasks.h. */
#define _GNU_SOURCE
#include "tasks.h"

#include "util.h"

#include <string.h>
#include <uthash.h>

typedef struct task_name {
    UT_hash_handle hh;
    bool present;     /* offered by the current forkserver */
    uint64_t avg_us;  /* moving average of its jobs' run time */
    uint32_t samples; /* jobs in it, up to a cap */
    char *doc;        /* its one-line doc string, as the forkserver said (owned), or NULL */
    char name[];      /* what jobs point to */
} task_name_t;

struct tasks {
    task_name_t *tab; /* by name */
};

static task_name_t *of(const char *task)
{
    return container_of(task, task_name_t, name);
}

tasks_t *tasks_new(void)
{
    return xcalloc(1, sizeof(tasks_t));
}

void tasks_destroy(tasks_t **tp)
{
    tasks_t *t = *tp;
    task_name_t *n, *tmp;

    if (!t)
        return;
    HASH_ITER(hh, t->tab, n, tmp)
    {
        HASH_DEL(t->tab, n);
        free(n->doc);
        free(n);
    }
    free(t);
    *tp = NULL;
}

size_t tasks_learn(tasks_t *t, const char *names, size_t len)
{
    task_name_t *n, *tmp;
    size_t count = 0;

    HASH_ITER(hh, t->tab, n, tmp)
    n->present = false;
    for (size_t off = 0; off < len;) {
        const char *s = names + off, *tab;
        size_t whole = strnlen(s, len - off), k;
        if (whole == 0 || off + whole >= len)
            break;
        /* "name\tdoc" or "name" */
        tab = memchr(s, '\t', whole);
        k = tab ? (size_t)(tab - s) : whole;
        HASH_FIND(hh, t->tab, s, k, n);
        if (!n) {
            n = xcalloc(1, sizeof(*n) + k + 1);
            memcpy(n->name, s, k);
            HASH_ADD(hh, t->tab, name[0], k, n);
        }
        n->present = true;
        free(n->doc);
        n->doc = tab ? xstrndup(tab + 1, whole - k - 1) : NULL;
        count++;
        off += whole + 1;
    }
    return count;
}

const char *tasks_find(tasks_t *t, const char *name, size_t len)
{
    task_name_t *n;

    HASH_FIND(hh, t->tab, name, len, n);
    return n && n->present ? n->name : NULL;
}

size_t tasks_count(const tasks_t *t)
{
    size_t count = 0;

    for (const task_name_t *n = t->tab; n; n = n->hh.next)
        count += n->present;
    return count;
}

void tasks_pack(const tasks_t *t, msgpack_packer *pk)
{
    msgpack_pack_array(pk, tasks_count(t));
    for (const task_name_t *n = t->tab; n; n = n->hh.next) {
        if (!n->present)
            continue;
        msgpack_pack_str(pk, strlen(n->name));
        msgpack_pack_str_body(pk, n->name, strlen(n->name));
    }
}

void tasks_pack_docs(const tasks_t *t, msgpack_packer *pk)
{
    msgpack_pack_map(pk, tasks_count(t));
    for (const task_name_t *n = t->tab; n; n = n->hh.next) {
        if (!n->present)
            continue;
        size_t k = strlen(n->name), d = n->doc ? strlen(n->doc) : 0;
        msgpack_pack_str(pk, k);
        msgpack_pack_str_body(pk, n->name, k);
        msgpack_pack_str(pk, d);
        msgpack_pack_str_body(pk, n->doc ? n->doc : "", d);
    }
}

/* Only jobs of such tasks go ahead to busy workers: for them the round trip of handing out one
 * job at a time is most of the cost, and a job waiting behind another costs little. */
bool tasks_is_short(const char *task)
{
    const task_name_t *n = of(task);
    return n->samples >= 3 && n->avg_us < 1000;
}

void tasks_ran(const char *task, uint64_t run_us)
{
    task_name_t *n = of(task);

    if (n->samples == 0)
        n->avg_us = run_us;
    else
        n->avg_us = n->avg_us - n->avg_us / 8 + run_us / 8;
    if (n->samples < 1000)
        n->samples++;
}

const char *tasks_intern(tasks_t *t, const char *name, size_t len)
{
    task_name_t *n;

    HASH_FIND(hh, t->tab, name, len, n);
    if (!n) {
        n = xcalloc(1, sizeof(*n) + len + 1);
        memcpy(n->name, name, len);
        HASH_ADD(hh, t->tab, name[0], len, n);
    }
    return n->name;
}

bool tasks_is_local(const char *task)
{
    return of(task)->present;
}
