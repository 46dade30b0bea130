/* task_ctx.h - the worker's side of forq_task_ctx_t: what a running task can see and the error
 * it set. The layout is private to forqd; plugins use the functions of <forq/task.h>. */
#ifndef FORQ_TASK_CTX_H
#define FORQ_TASK_CTX_H

#include "config.h"
#include "forq/task.h"
#include "wire.h"

#include <stdbool.h>

struct forq_task_ctx {
    const char *job_id;                 /* NUL-terminated copy of the job id */
    const char *task;                   /* NUL-terminated task name */
    const config_t *cfg;                /* forqd's configuration (exec allow list) */
    size_t max_result;                  /* result size limit of this job */
    bool failed;                        /* forq_task_error() was called */
    char etype[WIRE_TEXT_MAX + 1];      /* error type, when failed */
    char emsg[WIRE_TEXT_MAX + 1];       /* error message, when failed */
    struct wlink *link;                 /* the worker's link to forqd (NULL in unit tests) */
    uint64_t last_progress_us;          /* when the last progress report went out */
    uint64_t dict_req;                  /* request numbers of dict calls */
    char dict_error[WIRE_TEXT_MAX + 1]; /* why the last dict call failed */
    bool cancelled;                     /* a cancel naming this job has come (ABI 2) */
};

/* The built-in tasks, registered in every forkserver. */
extern const forq_plugin_t builtin_plugin;

/* The exec task (task_exec.c). */
int task_exec(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out);

#endif
