/* tasks.h - the task names the forkserver offers (interned: a job's `task` points into this
 * table for as long as the broker lives) and each task's moving average of run time, which
 * decides whether its jobs may be sent ahead to busy workers. */
#ifndef FORQ_TASKS_H
#define FORQ_TASKS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tasks tasks_t;

tasks_t *tasks_new(void);
void tasks_destroy(tasks_t **t);
/* The forkserver's HELLO: NUL-terminated names back to back. The names it lacks stay interned
 * but are no longer offered. Returns how many it offers. */
size_t tasks_learn(tasks_t *t, const char *names, size_t len);
/* The interned name, if it is offered now; NULL otherwise. */
const char *tasks_find(tasks_t *t, const char *name, size_t len);
size_t tasks_count(const tasks_t *t);
/* The interned name, made when new (not offered by the forkserver: a node's task). */
const char *tasks_intern(tasks_t *t, const char *name, size_t len);
/* Does this forqd's own forkserver offer the (interned) task now? */
bool tasks_is_local(const char *task);
/* Pack the offered names as a msgpack array. */
void tasks_pack(const tasks_t *t, msgpack_packer *pk);
/* A map of the present tasks: name -> doc string ("" when a task has none). */
void tasks_pack_docs(const tasks_t *t, msgpack_packer *pk);
/* Does this (interned) task run in under a millisecond, on average of its recent jobs? */
bool tasks_is_short(const char *task);
/* A job of this (interned) task ran for run_us. */
void tasks_ran(const char *task, uint64_t run_us);

#endif
