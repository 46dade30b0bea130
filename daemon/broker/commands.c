/* commands.c - what a client may ask, each request checked before anything changes: submit
 * (every reason to reject a job, with a message that says what to do), cancel, status, fetch,
 * ping, stats, and dict (handed to the attached dict service). */
#define _GNU_SOURCE
#include "broker_int.h"

#include "access.h"
#include "forq_config.h"
#include "ops.h"
#include "jobs.h"
#include "log.h"
#include "nodes.h"
#include "outbox.h"
#include "pool.h"
#include "stats.h"
#include "tasks.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void reject(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reject(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                   const char *fmt, ...)
{
    char msg[WIRE_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    wire_hdr_t h = {.cmd = WIRE_RESULT,
                    .id = req->id,
                    .state = WIRE_ST_REJECTED,
                    .code = wire_str(code),
                    .msg = wire_str(msg)};
    b->st.rejected++;
    log_debug("job %.*s rejected: %s", (int)req->id.len, req->id.ptr, msg);
    outbox_send(b->out, o, &h, NULL);
}

/* Whatever is wrong with a result's dict name or key, the submit gets this one answer. */
#define BAD_STORE                                                                                  \
    "to store the result give both 'name' (a dict name of 1-64 characters of A-Z a-z 0-9 . _ : "   \
    "-) and 'key' (1-1024 bytes, no NUL)"

/* The `forbidden` answer to a request o may not make: an error, or a submit's rejection. */
static void forbid(broker_t *b, const origin_t *o, const wire_hdr_t *h, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void forbid(broker_t *b, const origin_t *o, const wire_hdr_t *h, const char *fmt, ...)
{
    char msg[WIRE_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (h->cmd == WIRE_SUBMIT)
        return reject(b, o, h, "forbidden", "%s", msg);
    outbox_error(b->out, o, h, "forbidden", msg);
}

/* The rights o acts with; NULL (after answering `forbidden`) when its key is no longer
 * allowed. */
static const auth_client_t *rights_of(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    const auth_client_t *r = access_rights(b->access, o->who);

    if (!r)
        forbid(b, o, h,
               "the key this client connected with is no longer in forqd's clients file; ask "
               "forqd's operator to add it again");
    return r;
}

bool commands_dict_allowed(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    const ops_desc_t *op = ops_find(h->op.ptr, h->op.len);
    const auth_client_t *r;

    /* every right; or a malformed request, which the dict service answers; or an op on no
     * dict (dicts), which anyone may ask: the service lists only what broker_dict_readable
     * lets the asker read */
    if (o->who == ACCESS_LOCAL || !op || op->nameless || !h->name.ptr)
        return true;
    if (!(r = rights_of(b, o, h))) /* a task of a removed client */
        return false;
    /* a queue, lock or event is a name under the same globs as a dict (PROTOCOL.md 2.2) */
    if (!(op->mutates ? auth_may_write(r, h->name.ptr, h->name.len)
                      : auth_may_read(r, h->name.ptr, h->name.len))) {
        forbid(b, o, h,
               "%s may not %s %s '%.*s' (%s): forqd's clients file gives it no %s=%.*s; ask "
               "forqd's operator",
               access_name(b->access, o->who), op->mutates ? "change" : "read",
               ops_kind_name(op->kind), (int)h->name.len, h->name.ptr, op->name,
               op->mutates ? "write" : "read", (int)h->name.len, h->name.ptr);
        return false;
    }
    /* a fence asks about a lock: reading it needs the right to read that name */
    if (h->lock.ptr && !auth_may_read(r, h->lock.ptr, h->lock.len)) {
        forbid(b, o, h,
               "%s may not read lock '%.*s' (the fence of %s): forqd's clients file gives it no "
               "read=%.*s; ask forqd's operator",
               access_name(b->access, o->who), (int)h->lock.len, h->lock.ptr, op->name,
               (int)h->lock.len, h->lock.ptr);
        return false;
    }
    return true;
}

bool broker_dict_readable(broker_t *b, uint16_t who, const char *name, size_t len)
{
    return auth_may_read(access_rights(b->access, who), name, len);
}

/* May o see and act on `job` (status, cancel, fetch)? If not, `forbidden` is answered. */
static bool job_allowed(broker_t *b, const origin_t *o, const wire_hdr_t *h, const job_t *job)
{
    if (!job || job->owner == o->who || access_admin(b->access, o->who))
        return true;
    forbid(b, o, h,
           "job '%.*s' belongs to another client: only its owner, or a client with the admin "
           "right, may see, wait for or cancel it",
           (int)h->id.len, h->id.ptr);
    return false;
}

static bool client_may_send(wire_cmd_t cmd)
{
    return cmd == WIRE_SUBMIT || cmd == WIRE_CANCEL || cmd == WIRE_STATUS || cmd == WIRE_STATS ||
           cmd == WIRE_PING || cmd == WIRE_FETCH || cmd == WIRE_DICT || cmd == WIRE_JOBS ||
           cmd == WIRE_PURGE;
}

static void refuse_command(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "'%s' is not a command a client may send", wire_cmd_name(h->cmd));
    outbox_error(b->out, o, h, "unknown_command", msg);
}

void commands_malformed(broker_t *b, const origin_t *o, const wire_hdr_t *h, const wire_err_t *err)
{
    /* a command clients may not send is refused as such, whatever its fields */
    if (h->cmd != WIRE_CMD_NONE && wire_cmd_name(h->cmd) && !client_may_send(h->cmd))
        return refuse_command(b, o, h);
    /* a submit's store name or key: the one answer, whichever field is wrong and how */
    if (h->cmd == WIRE_SUBMIT && h->id.ptr && err->field &&
        (strcmp(err->field, "name") == 0 || strcmp(err->field, "key") == 0))
        return reject(b, o, h, "bad_store", "%s", BAD_STORE);
    outbox_error(b->out, o, h, err->code, err->msg);
}

static void on_submit(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *args)
{
    const config_t *cfg = b->cfg;
    job_t *old = jobs_find(b->jobs, h->id);
    const char *task;
    jobs_counts_t jc;
    client_t *c;
    wire_err_t werr;

    const auth_client_t *rights = access_rights(b->access, o->who); /* not NULL: checked */

    if (old && old->phase != JOB_DONE) {
        outbox_error(b->out, o, h, "duplicate_id",
                     "a job with this id is queued or running; choose a new id");
        return;
    }
    if (b->draining)
        return reject(b, o, h, "shutting_down",
                      "forqd is shutting down and accepts no new jobs; retry when it is back");
    if (!(task = tasks_find(b->tasks, h->task.ptr, h->task.len)) &&
        nodes_offer(b->nodes, h->task.ptr, h->task.len))
        task = tasks_intern(b->tasks, h->task.ptr, h->task.len); /* a node's task */
    if (!task)
        return reject(b, o, h, "unknown_task",
                      "forqd has no task '%.*s'; 'forq status' lists the tasks it has",
                      (int)h->task.len, h->task.ptr);
    if (!auth_may_submit(rights, task))
        return reject(b, o, h, "forbidden",
                      "%s may not submit task '%s': forqd's clients file gives it no "
                      "tasks=%s; ask forqd's operator",
                      access_name(b->access, o->who), task, task);
    if (strcmp(task, "exec") == 0 && cfg->exec_allow.n == 0)
        return reject(b, o, h, "task_disabled",
                      "the exec task is disabled; start forqd with --allow-exec PROGRAM");
    if (zmq_msg_size(args) > (size_t)cfg->max_payload)
        return reject(b, o, h, "too_large",
                      "the args frame is %zu bytes, more than this forqd's --max-payload of %ld",
                      zmq_msg_size(args), cfg->max_payload);
    if (wire_check(zmq_msg_data(args), zmq_msg_size(args), WIRE_DEPTH_MAX, &werr) < 0)
        return reject(b, o, h, "bad_args", "the args frame is not one valid msgpack value: %s",
                      werr.msg);
    if ((h->name.ptr || h->key.ptr) &&
        (!h->name.ptr || !h->key.ptr || !wire_id_is_valid(h->name.ptr, h->name.len) ||
         h->key.len == 0 || memchr(h->key.ptr, '\0', h->key.len)))
        return reject(b, o, h, "bad_store", "%s", BAD_STORE);
    if (h->name.ptr && !auth_may_write(rights, h->name.ptr, h->name.len))
        return reject(b, o, h, "forbidden",
                      "%s may not store results in dict '%.*s': forqd's clients file gives it "
                      "no write=%.*s; ask forqd's operator",
                      access_name(b->access, o->who), (int)h->name.len, h->name.ptr,
                      (int)h->name.len, h->name.ptr);
    if (old && old->owner != o->who)
        return reject(b, o, h, "duplicate_id", "another client used this job id; choose a new id");
    jobs_counts(b->jobs, &jc);
    if ((long)jc.queued >= cfg->queue_max)
        return reject(b, o, h, "queue_full",
                      "forqd's queue holds %zu jobs, its limit (--queue-max); retry later",
                      jc.queued);
    if (o->who != ACCESS_LOCAL && access_live(b->access, o->who) >= (size_t)cfg->client_queue_max)
        return reject(b, o, h, "client_queue_full",
                      "%s has %zu unfinished jobs, its limit (--client-queue-max); wait for "
                      "results before submitting more",
                      access_name(b->access, o->who), access_live(b->access, o->who));
    c = outbox_client(b->out, o->ident, o->ilen, true);
    if (c->live == 0 && c->backlog_n == 0) {
        c->who = o->who; /* new, or idle: the routing id is the sender's now */
    } else if (c->who != o->who) {
        forbid(b, o, h,
               "this routing id is in use by another client; give each client its own (libforq "
               "makes a random one)");
        return;
    }
    c->delim = o->delim;
    if ((long)(c->live + c->backlog_n) >= cfg->client_queue_max) {
        reject(b, o, h, "client_queue_full",
               "this client has %zu unfinished jobs and undelivered results, its limit "
               "(--client-queue-max); wait for results before submitting more",
               c->live + c->backlog_n);
        outbox_client_release(b->out, c);
        return;
    }
    if (c->backlog_bytes > (size_t)cfg->client_backlog_bytes) {
        reject(b, o, h, "client_queue_full",
               "forqd holds %zu bytes of results this client has not read, more than its limit "
               "(--client-backlog-bytes %ld); read them before submitting more",
               c->backlog_bytes, cfg->client_backlog_bytes);
        return;
    }
    jobs_accept(b->jobs, c, h, task, args);
}

static void on_status(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    job_t *job = jobs_find(b->jobs, h->id);
    wire_hdr_t r = {.cmd = WIRE_STATUS_REPLY,
                    .id = h->id,
                    .req = h->req,
                    .has_req = h->has_req,
                    .state = WIRE_ST_UNKNOWN};

    if (!job_allowed(b, o, h, job))
        return;
    if (job) {
        uint64_t now = now_ms();
        r.task = wire_str(job->task);
        r.attempts = job->attempts;
        r.owner = wire_str(access_name(b->access, job->owner));
        r.age_ms = now - job->accepted_ms;
        if (job->phase == JOB_QUEUED || job->phase == JOB_AHEAD) {
            r.state = WIRE_ST_QUEUED;
            r.priority = job->prio;
            r.has_priority = true;
        } else if (job->phase == JOB_RUNNING) {
            r.state = WIRE_ST_RUNNING;
            r.pid = job->worker->pid;
            r.run_ms = now - job->worker->job_started_ms;
            r.done = job->worker->prog_done;
            r.total = job->worker->prog_total;
            if (job->worker->prog_text[0])
                r.msg = wire_str(job->worker->prog_text);
        } else if (job->phase == JOB_REMOTE) {
            uint64_t started;
            r.state = WIRE_ST_RUNNING;
            r.msg = wire_str(nodes_run_where(job, &started)); /* the node's name */
            r.run_ms = now - started;
        } else {
            r.state = job->final;
        }
    }
    outbox_send(b->out, o, &r, NULL);
}

void commands_handle(broker_t *b, const origin_t *o, const wire_hdr_t *h, int frames,
                     zmq_msg_t *payload)
{
    if (h->cmd != WIRE_PING && client_may_send(h->cmd) && !rights_of(b, o, h))
        return; /* a removed key: only a ping is answered */
    switch (h->cmd) {
    case WIRE_SUBMIT:
        if (frames != 1) {
            outbox_error(b->out, o, h, "bad_frames",
                         "submit takes exactly one args frame after the header");
            return;
        }
        on_submit(b, o, h, payload);
        return;
    case WIRE_DICT:
        if (frames > 1) {
            outbox_error(b->out, o, h, "bad_frames",
                         "dict takes at most one value frame after the header");
            return;
        }
        if (b->dict && commands_dict_allowed(b, o, h))
            b->dict->request(b->dict_ud, o, h, frames ? payload : NULL);
        else if (b->dict)
            return;
        else
            outbox_error(b->out, o, h, "unknown_command", "this forqd has no dict service");
        return;
    case WIRE_CANCEL:
    case WIRE_STATUS:
    case WIRE_STATS:
    case WIRE_PING:
    case WIRE_FETCH:
    case WIRE_JOBS:
    case WIRE_PURGE:
        if (frames != 0) {
            outbox_error(b->out, o, h, "bad_frames",
                         "this command takes no frame after the header");
            return;
        }
        break;
    default:
        refuse_command(b, o, h);
        return;
    }
    if ((h->cmd == WIRE_CANCEL || h->cmd == WIRE_FETCH) &&
        !job_allowed(b, o, h, jobs_find(b->jobs, h->id)))
        return;
    if (h->cmd == WIRE_CANCEL) {
        jobs_cancel(b->jobs, o, h);
    } else if (h->cmd == WIRE_STATUS) {
        on_status(b, o, h);
    } else if (h->cmd == WIRE_STATS) {
        stats_reply(b, o, h);
    } else if (h->cmd == WIRE_FETCH) {
        jobs_fetch(b->jobs, o, h);
    } else if (h->cmd == WIRE_JOBS) {
        jobs_list(b->jobs, o, h);
    } else if (h->cmd == WIRE_PURGE) {
        jobs_purge(b->jobs, o, h);
    } else {
        wire_hdr_t r = {.cmd = WIRE_PONG,
                        .req = h->req,
                        .has_req = h->has_req,
                        .pid = getpid(),
                        .msg = wire_str("forqd " FORQ_VERSION),
                        .max_payload = (uint64_t)b->cfg->max_payload,
                        .instance = b->instance};
        outbox_send(b->out, o, &r, NULL);
    }
}
