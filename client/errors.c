/* errors.c - libforq's error codes: their names, and the per-thread detail of the last failure.
 *
 * Every failing call returns a forq_err_t and leaves a one-line detail for forq_errdetail(). One
 * client serves many threads, so the detail is kept per thread (a thread-local buffer), not per
 * client: a failure in one thread never overwrites the detail another thread is about to read.
 * The code names are one table indexed by the append-only enum; a static assertion ties the
 * table's size to the enum's last value, so a new code cannot be left without a name. */
#define _GNU_SOURCE
#include "client_int.h"

#include <stdarg.h>
#include <stdio.h>

static __thread char detail_buf[512];

forq_err_t errors_fail(forq_err_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail_buf, sizeof(detail_buf), fmt, ap);
    va_end(ap);
    return err;
}

const char *forq_errdetail(void)
{
    return detail_buf;
}

static const char *const err_names[] = {
    [FORQ_OK] = "success",
    [FORQ_ERR_INVALID] = "invalid argument",
    [FORQ_ERR_NOMEM] = "out of memory",
    [FORQ_ERR_CONNECT] = "cannot reach forqd",
    [FORQ_ERR_TIMEOUT] = "timed out waiting",
    [FORQ_ERR_PROTOCOL] = "protocol error",
    [FORQ_ERR_CLOSED] = "client closed",
    [FORQ_ERR_PENDING] = "result not ready",
    [FORQ_ERR_TASK] = "task raised an error",
    [FORQ_ERR_CANCELLED] = "job cancelled",
    [FORQ_ERR_JOB_TIMEOUT] = "job timed out",
    [FORQ_ERR_CRASHED] = "job's worker crashed",
    [FORQ_ERR_REJECTED] = "job rejected",
    [FORQ_ERR_LOST] = "job lost",
    [FORQ_ERR_SYSTEM] = "system error",
    [FORQ_ERR_NOT_FOUND] = "no such job",
    [FORQ_ERR_EXHAUSTED] = "no more items",
    [FORQ_ERR_CONFLICT] = "version conflict",
    [FORQ_ERR_FULL] = "dict service full",
    [FORQ_ERR_FORBIDDEN] = "forbidden",
    [FORQ_ERR_EMPTY] = "queue empty",
};
_Static_assert(sizeof(err_names) / sizeof(err_names[0]) == FORQ_ERR_EMPTY + 1,
               "every forq_err_t has a name in err_names");

const char *forq_strerror(forq_err_t err)
{
    if ((unsigned)err < sizeof(err_names) / sizeof(err_names[0]) && err_names[err])
        return err_names[err];
    return "unknown error";
}

/* forq_state_t is the wire's state list with PENDING in the place of the wire's "none". */
_Static_assert((int)FORQ_STATE_QUEUED == (int)WIRE_ST_QUEUED &&
                   (int)FORQ_STATE_OK == (int)WIRE_ST_OK &&
                   (int)FORQ_STATE_LOST == (int)WIRE_ST_LOST &&
                   (int)FORQ_STATE_UNKNOWN == (int)WIRE_ST_UNKNOWN &&
                   (int)FORQ_STATE_UNKNOWN + 1 == (int)WIRE_ST_COUNT_,
               "forq_state_t follows wire_state_t");

const char *forq_state_name(forq_state_t st)
{
    if (st == FORQ_STATE_PENDING)
        return "pending";
    const char *n = wire_state_name((wire_state_t)st);
    return n ? n : "unknown";
}
