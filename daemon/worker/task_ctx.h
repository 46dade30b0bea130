/* task_ctx.h - the worker's side of forq_task_ctx_t: what a running task can see and the error
 * it set. The layout is private to forqd; plugins use the functions of <forq/task.h>. */
#ifndef FORQ_TASK_CTX_H
#define FORQ_TASK_CTX_H

#include "config.h"
#include "forq/task.h"
#include "wire.h"
#include "wlink.h"

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

/* Set the error forq_task_dict_error() reports; returns FORQ_TASK_DICT_ERROR. */
int task_ctx_fail(forq_task_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send the `dict` command h (op, name and the op's fields set here by the caller; cmd and req
 * set here) with value (may be NULL) on the worker's link, checked first as forqd would
 * (ops_check_request), and wait up to wait_ms (-1: for ever) for its answer. FORQ_TASK_DICT_OK
 * with the answer's header in *ret, borrowing from *ret_m (free ret_m->base) and zone; or
 * FORQ_TASK_DICT_ERROR with the reason set (an `error` answer, no answer, no link). */
int task_ctx_call(forq_task_ctx_t *ctx, wire_hdr_t *h, const void *value, size_t len, int wait_ms,
                  msgpack_zone *zone, wlink_msg_t *ret_m, wire_hdr_t *ret);

/* The built-in tasks, registered in every forkserver. */
extern const forq_plugin_t builtin_plugin;

/* The exec task (task_exec.c). */
int task_exec(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out);

#endif
