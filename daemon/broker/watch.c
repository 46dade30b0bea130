/* watch.c - who hears of a job besides the one answer its submitter gets: clients that fetch
 * it (a result already kept, or when it finishes), and the progress reports of a running job,
 * to its submitter and its fetchers. See jobs.h. */
#define _GNU_SOURCE
#include "jobs.h"

#include "outbox.h"
#include "pool.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* fetch: the job's result — now if it is finished, when it finishes otherwise. */
void jobs_fetch(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h)
{
    const config_t *cfg = jobs_broker(jobs)->cfg;
    outbox_t *out = jobs_broker(jobs)->out;
    job_t *job = jobs_find(jobs, h->id);
    char msg[WIRE_TEXT_MAX];

    if (!job) {
        snprintf(msg, sizeof(msg),
                 "forqd has no job '%.*s': it was never submitted here, or finished longer ago "
                 "than forqd remembers (the last %ld jobs, %ld s, %ld bytes of results)",
                 (int)h->id.len, h->id.ptr, cfg->retain_count, cfg->retain_ms / 1000,
                 cfg->retain_bytes);
        wire_hdr_t r = {.cmd = WIRE_RESULT,
                        .id = h->id,
                        .state = WIRE_ST_UNKNOWN,
                        .code = wire_str("unknown_job"),
                        .msg = wire_str(msg)};
        outbox_send(out, o, &r, NULL);
        return;
    }
    if (job->phase == JOB_DONE) {
        zmq_msg_t copy;
        bool has = zmq_msg_size(&job->msg) > 0;
        zmq_msg_init(&copy);
        if (has)
            zmq_msg_copy(&copy, &job->msg);
        outbox_send_raw(out, o->ident, o->ilen, o->delim, job->rhdr, job->rhdr_len,
                        has ? &copy : NULL);
        zmq_msg_close(&copy);
        return;
    }
    /* the submitter gets the result anyway */
    if (o->ilen == job->client->ident_len && memcmp(o->ident, job->client->ident, o->ilen) == 0)
        return;
    size_t n = 0;
    for (watcher_t *w = job->x ? job->x->watchers : NULL; w; w = w->next, n++)
        if (w->ident_len == o->ilen && memcmp(w->ident, o->ident, o->ilen) == 0)
            return;
    if (n >= WATCHERS_MAX) {
        outbox_error(out, o, h, "too_many_watchers",
                     "this job already has 16 fetchers waiting; fetch it again once it is done");
        return;
    }
    watcher_t *w = xcalloc(1, sizeof(*w) + o->ilen);
    w->delim = o->delim;
    w->ident_len = (uint8_t)o->ilen;
    memcpy(w->ident, o->ident, o->ilen);
    w->next = job_extra(job)->watchers;
    job->x->watchers = w;
}

void jobs_worker_progress(jobs_t *jobs, worker_t *w, const wire_hdr_t *p)
{
    job_t *job = w->job;
    wire_hdr_t h = {.cmd = WIRE_PROGRESS,
                    .id = {job ? job->id : "", job ? job->id_len : 0},
                    .done = p->done,
                    .total = p->total,
                    .msg = p->msg};
    const msgpack_sbuffer *e;
    client_t *c;

    if (!job || p->id.len != job->id_len || memcmp(p->id.ptr, job->id, job->id_len) != 0)
        return;
    w->prog_done = p->done; /* for status and the job list */
    w->prog_total = p->total;
    snprintf(w->prog_text, sizeof(w->prog_text), "%.*s", (int)p->msg.len,
             p->msg.ptr ? p->msg.ptr : "");
    if (!(e = outbox_encode(jobs_broker(jobs)->out, &h)))
        return;
    c = job->client;
    for (watcher_t *x = job->x ? job->x->watchers : NULL; x; x = x->next)
        outbox_send_raw(jobs_broker(jobs)->out, x->ident, x->ident_len, x->delim, e->data, e->size,
                        NULL);
    outbox_send_raw(jobs_broker(jobs)->out, c->ident, c->ident_len, c->delim, e->data, e->size,
                    NULL);
}

void jobs_remote_progress(jobs_t *jobs, job_t *job, const wire_hdr_t *p)
{
    wire_hdr_t h = {.cmd = WIRE_PROGRESS,
                    .id = {job->id, job->id_len},
                    .done = p->done,
                    .total = p->total,
                    .msg = p->msg};
    const msgpack_sbuffer *e;
    client_t *c = job->client;

    if (!(e = outbox_encode(jobs_broker(jobs)->out, &h)))
        return;
    for (watcher_t *x = job->x ? job->x->watchers : NULL; x; x = x->next)
        outbox_send_raw(jobs_broker(jobs)->out, x->ident, x->ident_len, x->delim, e->data, e->size,
                        NULL);
    outbox_send_raw(jobs_broker(jobs)->out, c->ident, c->ident_len, c->delim, e->data, e->size,
                    NULL);
}
