/* client.c - libforq's public calls on a client: creating and destroying it, the requests
 * (ping, cancel, status, stats, fetch, and the request machinery dict.c uses) and submission.
 *
 * Everything here is a thin layer over the connection (conn.c): a call checks its arguments,
 * builds a wire header, makes a future for the answer and either returns it (submit, fetch,
 * asynchronous requests) or waits for it (conn_wait) and turns the reply into the call's
 * output. Every answer is a future: a job's future is the caller's, a request's future is the
 * waiting call's, keyed "#<request number>".
 *
 * A job keeps what it needs to be submitted again after forqd restarted (future_set_job): its
 * options with copies of their strings, and a copy of its args when it allows retries - the
 * caller's buffers are free once forq_submit() returns. */
#define _GNU_SOURCE
#include "client_int.h"

#include "conn.h"
#include "endpoint.h"
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void forq_client_opts_init(forq_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->linger_ms = 2000;
    o->lost_after_ms = FORQ_LOST_AFTER_DEF;
}

/* An ipc endpoint whose socket file is missing, is not a socket or has no listener cannot be
 * forqd: say so at once rather than after the connect timeout. FORQ_OK when it may be (or when
 * this cannot tell: an abstract name, a path too long for a probe). */
static forq_err_t probe_ipc(const char *ep)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = ep + strlen("ipc://");
    struct stat st;
    int fd, r, err;

    if (strncmp(ep, "ipc://", 6) != 0 || path[0] == '@' || strlen(path) >= sizeof(sa.sun_path))
        return FORQ_OK;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return errors_fail(FORQ_ERR_CONNECT,
                               "no forqd at %s: the socket file does not exist; is forqd running? "
                               "see -e / $FORQ_ENDPOINT",
                               ep);
        return FORQ_OK; /* ZeroMQ will say more */
    }
    if (!S_ISSOCK(st.st_mode))
        return errors_fail(FORQ_ERR_CONNECT,
                           "no forqd at %s: that path is not a socket; see -e / $FORQ_ENDPOINT",
                           ep);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return FORQ_OK;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (r < 0 && err == ECONNREFUSED)
        return errors_fail(FORQ_ERR_CONNECT,
                           "no forqd at %s: nothing listens on the socket file (left behind by a "
                           "forqd that stopped?); is forqd running? see -e / $FORQ_ENDPOINT",
                           ep);
    if (r < 0 && (err == EACCES || err == EPERM))
        return errors_fail(FORQ_ERR_CONNECT,
                           "cannot connect to forqd at %s: permission denied; run as a user "
                           "its socket admits, or see -e / $FORQ_ENDPOINT",
                           ep);
    return FORQ_OK;
}

forq_err_t forq_client_new(const forq_client_opts_t *opts, forq_client_t **ret_client)
{
    forq_client_opts_t defaults;
    forq_client_t *c;
    char ep[4200];
    forq_err_t e;

    if (!ret_client)
        return errors_fail(FORQ_ERR_INVALID, "forq_client_new: ret_client is NULL");
    if (!opts) {
        forq_client_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->endpoint)
        snprintf(ep, sizeof(ep), "%s", opts->endpoint);
    else if (getenv("FORQ_ENDPOINT") && *getenv("FORQ_ENDPOINT"))
        snprintf(ep, sizeof(ep), "%s", getenv("FORQ_ENDPOINT"));
    else if (endpoint_default(ep, sizeof(ep)) < 0)
        return errors_fail(FORQ_ERR_INVALID,
                           "the default endpoint path is too long; set FORQ_ENDPOINT");
    if (strncmp(ep, "ipc://", 6) != 0 && strncmp(ep, "tcp://", 6) != 0)
        return errors_fail(FORQ_ERR_INVALID, "endpoint '%s' must start with ipc:// or tcp://", ep);
    if (opts->connect_timeout_ms > 0 && (e = probe_ipc(ep)) != FORQ_OK)
        return e;
    if ((e = conn_new(ep, opts, &c)) != FORQ_OK)
        return e;
    if (opts->connect_timeout_ms > 0 &&
        (e = forq_client_ping(c, opts->connect_timeout_ms, NULL)) != FORQ_OK) {
        char keep[512];
        snprintf(keep, sizeof(keep), "%s", forq_errdetail());
        forq_client_destroy(&c);
        return errors_fail(e, "%s", keep);
    }
    *ret_client = c;
    return FORQ_OK;
}

void forq_client_destroy(forq_client_t **cp)
{
    forq_client_t *c;

    if (!cp || !(c = *cp))
        return;
    *cp = NULL;
    conn_destroy(c);
}

const char *forq_client_endpoint(const forq_client_t *c)
{
    return c ? conn_endpoint(c) : NULL;
}

int64_t forq_client_unreachable_ms(forq_client_t *c)
{
    return c ? health_unreachable_ms(c) : 0;
}

/* ---- requests ---- */

static forq_err_t request(forq_client_t *c, wire_hdr_t *h, int timeout_ms, forq_future_t **ret_f)
{
    return client_request(c, h, NULL, 0, timeout_ms, NULL, ret_f);
}

static forq_err_t request_send(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                               bool will_wait, forq_future_t **ret_f)
{
    forq_future_t *f;
    forq_err_t e;

    if (!c)
        return errors_fail(FORQ_ERR_INVALID, "client is NULL");
    if (!(f = future_new()))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    f->is_request = true;
    h->req = conn_next_req(c);
    h->has_req = true;
    snprintf(f->key, sizeof(f->key), "#%llu", (unsigned long long)h->req);
    if ((e = conn_send(c, h, payload, plen, payload != NULL, f, will_wait)) != FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_f = f;
    return FORQ_OK;
}

forq_err_t client_request_async(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                                forq_future_t **ret_f)
{
    return request_send(c, h, payload, plen, false, ret_f);
}

forq_err_t client_request(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                          int timeout_ms, forq_err_t (*err_of_code)(const char *code),
                          forq_future_t **ret_f)
{
    forq_future_t *f = NULL;
    forq_err_t e;

    if ((e = request_send(c, h, payload, plen, true, &f)) != FORQ_OK)
        return e;
    if (!conn_wait(c, f, timeout_ms)) {
        char why[512];
        future_unref(f); /* leaves the table with its last reference */
        if (h->cmd != WIRE_PING && !health_refused(c))
            return errors_fail(FORQ_ERR_TIMEOUT,
                               "forqd did not answer at %s within %d ms; is it running?",
                               conn_endpoint(c), timeout_ms);
        health_why_silent(c, timeout_ms, why, sizeof(why));
        return errors_fail(FORQ_ERR_CONNECT, "%s", why);
    }
    if (f->reply_cmd != WIRE_ERROR && f->state == FORQ_STATE_LOST && health_refused(c)) {
        /* unreachable because forqd refuses the handshake: say why */
        char why[512];
        health_why_silent(c, timeout_ms, why, sizeof(why));
        future_unref(f);
        return errors_fail(FORQ_ERR_CONNECT, "%s", why);
    }
    if (f->reply_cmd == WIRE_ERROR || f->state == FORQ_STATE_LOST) {
        /* LOST without a reply: forqd was unreachable for lost_after_ms (a request cannot
         * outlive its client) */
        e = f->reply_cmd != WIRE_ERROR                     ? FORQ_ERR_CONNECT
            : f->code && strcmp(f->code, "forbidden") == 0 ? FORQ_ERR_FORBIDDEN
            : err_of_code                                  ? err_of_code(f->code ? f->code : "")
                                                           : FORQ_ERR_PROTOCOL;
        errors_fail(e, "%s%s%s", f->code ? f->code : "", f->code ? ": " : "",
                    f->detail ? f->detail : "");
        future_unref(f);
        return e;
    }
    *ret_f = f;
    return FORQ_OK;
}

forq_err_t forq_client_ping(forq_client_t *c, int timeout_ms, char **ret_version)
{
    wire_hdr_t h = {.cmd = WIRE_PING};
    forq_future_t *f;
    forq_err_t e = request(c, &h, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = strdup(f->detail ? f->detail : "forqd");
    future_unref(f);
    return FORQ_OK;
}

static bool id_ok(const char *id)
{
    return id && wire_id_is_valid(id, strlen(id));
}

/* A request about job `id` (cancel, status): checks the id, then request(). */
static forq_err_t id_request(forq_client_t *c, wire_cmd_t cmd, const char *id, int timeout_ms,
                             forq_future_t **ret_f)
{
    wire_hdr_t h = {.cmd = cmd, .id = wire_str(id)};

    if (!id_ok(id))
        return errors_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    return request(c, &h, timeout_ms, ret_f);
}

forq_err_t forq_client_cancel(forq_client_t *c, const char *id, int timeout_ms,
                              forq_cancel_t *ret_outcome)
{
    forq_future_t *f;
    forq_err_t e;

    if ((e = id_request(c, WIRE_CANCEL, id, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_outcome) {
        const char *o = f->outcome ? f->outcome : "";
        *ret_outcome = strcmp(o, "dequeued") == 0   ? FORQ_CANCEL_DEQUEUED
                       : strcmp(o, "killing") == 0  ? FORQ_CANCEL_KILLING
                       : strcmp(o, "finished") == 0 ? FORQ_CANCEL_FINISHED
                                                    : FORQ_CANCEL_UNKNOWN;
    }
    future_unref(f);
    return FORQ_OK;
}

forq_err_t client_cancel_async(forq_client_t *c, const char *id)
{
    wire_hdr_t h = {.cmd = WIRE_CANCEL, .id = wire_str(id)};
    return conn_send(c, &h, NULL, 0, false, NULL, false);
}

forq_err_t forq_client_status(forq_client_t *c, const char *id, int timeout_ms,
                              forq_job_info_t *ret_info)
{
    forq_future_t *f;
    forq_err_t e;

    if ((e = id_request(c, WIRE_STATUS, id, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_info) {
        memset(ret_info, 0, sizeof(*ret_info));
        ret_info->state = f->state;
        snprintf(ret_info->task, sizeof(ret_info->task), "%s", f->task_name ? f->task_name : "");
        ret_info->attempts = f->attempts;
        ret_info->pid = f->pid;
        ret_info->priority = f->priority;
        snprintf(ret_info->owner, sizeof(ret_info->owner), "%s", f->owner ? f->owner : "");
        ret_info->age_ms = f->age_ms;
        ret_info->run_ms = f->run_ms;
        ret_info->done = f->st_done;
        ret_info->total = f->st_total;
        if (f->state == FORQ_STATE_RUNNING)
            snprintf(ret_info->text, sizeof(ret_info->text), "%s", f->detail ? f->detail : "");
    }
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_client_jobs(forq_client_t *c, const char *state, const char *task, size_t limit,
                            int timeout_ms, void **ret_data, size_t *ret_len, bool *ret_more)
{
    wire_hdr_t h = {.cmd = WIRE_JOBS, .limit = limit};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID, "forq_client_jobs: ret_data and ret_len are required");
    if (state) {
        h.state = wire_state_from(state, strlen(state));
        if (h.state != WIRE_ST_QUEUED && h.state != WIRE_ST_RUNNING)
            return errors_fail(FORQ_ERR_INVALID,
                               "forq_client_jobs: state is \"queued\" or \"running\" (or NULL "
                               "for both), not \"%s\"",
                               state);
    }
    if (task)
        h.task = wire_str(task);
    if ((e = request(c, &h, timeout_ms, &f)) != FORQ_OK)
        return e;
    *ret_data = f->result;
    *ret_len = f->result_len;
    f->result = NULL;
    if (ret_more)
        *ret_more = f->more;
    future_unref(f);
    if (!*ret_data)
        return errors_fail(FORQ_ERR_PROTOCOL, "forqd's job list came without its payload");
    return FORQ_OK;
}

forq_err_t forq_client_purge(forq_client_t *c, const char *task, int timeout_ms, size_t *ret_count)
{
    wire_hdr_t h = {.cmd = WIRE_PURGE};
    forq_future_t *f;
    forq_err_t e;

    if (task)
        h.task = wire_str(task);
    if ((e = request(c, &h, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_count)
        *ret_count = (size_t)f->count;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_client_stats(forq_client_t *c, int timeout_ms, void **ret_data, size_t *ret_len)
{
    wire_hdr_t h = {.cmd = WIRE_STATS};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID,
                           "forq_client_stats: ret_data and ret_len are required");
    if ((e = request(c, &h, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (!f->result) {
        future_unref(f);
        return errors_fail(FORQ_ERR_PROTOCOL, "forqd's stats reply had no payload");
    }
    *ret_data = f->result;
    *ret_len = f->result_len;
    f->result = NULL;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_client_fetch(forq_client_t *c, const char *id, forq_future_t **ret_future)
{
    wire_hdr_t h = {.cmd = WIRE_FETCH, .id = wire_str(id)};
    forq_future_t *f;
    forq_err_t e;

    if (!c || !ret_future)
        return errors_fail(FORQ_ERR_INVALID, "client and ret_future are required");
    if (!id_ok(id))
        return errors_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (!(f = future_new()))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    snprintf(f->key, sizeof(f->key), "%s", id);
    if ((e = conn_send(c, &h, NULL, 0, false, f, false)) != FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_future = f;
    return FORQ_OK;
}

/* ---- submit ---- */

void forq_submit_opts_init(forq_submit_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->priority = WIRE_PRIORITY_DEF;
}

forq_err_t client_submit(forq_client_t *c, forq_future_t *f, const void *args, size_t args_len)
{
    wire_hdr_t h;
    forq_err_t e;

    /* over forqd's limit, ZeroMQ would drop the connection (PROTOCOL.md section 6.5) */
    if ((e = health_check_payload(c, "the args frame", args_len)) != FORQ_OK)
        return e;
    f->args_len = args_len;
    if (f->opts.retries > 0) {
        /* kept to submit again if a restarted forqd has never heard of the job */
        if (!(f->args = malloc(args_len ? args_len : 1)))
            return errors_fail(FORQ_ERR_NOMEM, "out of memory");
        memcpy(f->args, args, args_len);
        f->args_len = args_len;
    }
    future_submit_hdr(f, &h);
    return conn_send(c, &h, args, args_len, true, f, false);
}

forq_err_t forq_submit(forq_client_t *c, const char *task, const void *args, size_t args_len,
                       const forq_submit_opts_t *opts, forq_future_t **ret_future)
{
    forq_submit_opts_t defaults;
    wire_err_t werr;
    forq_future_t *f;
    forq_err_t e;

    if (!c || !ret_future)
        return errors_fail(FORQ_ERR_INVALID, "forq_submit: client and ret_future are required");
    if (!opts) {
        forq_submit_opts_init(&defaults);
        opts = &defaults;
    }
    if (!task || !wire_task_is_valid(task, strlen(task)))
        return errors_fail(FORQ_ERR_INVALID,
                           "task name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->id && !id_ok(opts->id))
        return errors_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->priority < 0 || opts->priority > WIRE_PRIORITY_MAX)
        return errors_fail(FORQ_ERR_INVALID, "priority must be from 0 to %d", WIRE_PRIORITY_MAX);
    if (opts->retries > WIRE_RETRIES_MAX)
        return errors_fail(FORQ_ERR_INVALID, "retries must be at most %d", WIRE_RETRIES_MAX);
    if (!(opts->timeout >= 0) || !(opts->deadline >= 0))
        return errors_fail(FORQ_ERR_INVALID, "timeout and deadline must not be negative");
    if ((opts->store_dict || opts->store_key) &&
        (!opts->store_dict || !wire_id_is_valid(opts->store_dict, strlen(opts->store_dict)) ||
         !opts->store_key || !*opts->store_key || strlen(opts->store_key) > WIRE_KEY_MAX))
        return errors_fail(FORQ_ERR_INVALID, "store_dict (a dict name) and store_key (1-1024 "
                                             "bytes) go together");
    if (opts->tags && (!*opts->tags || strlen(opts->tags) > 256))
        return errors_fail(FORQ_ERR_INVALID, "tags must be 1-256 bytes: names joined by commas");
    if (!args || wire_check(args, args_len, WIRE_DEPTH_MAX, &werr) < 0)
        return errors_fail(FORQ_ERR_INVALID, "args must be exactly one msgpack value: %s",
                           args ? werr.msg : "args is NULL");
    if (!(f = future_new()))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    if (opts->id)
        snprintf(f->key, sizeof(f->key), "%s", opts->id);
    else
        conn_new_id(c, f->key, sizeof(f->key));
    if ((e = future_set_job(f, task, opts, false)) != FORQ_OK ||
        (e = client_submit(c, f, args, args_len)) != FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_future = f;
    return FORQ_OK;
}
