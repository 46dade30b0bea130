/* nodes.c - the head's side of worker nodes. See nodes.h and PROTOCOL.md section 14.
 *
 * Like ZeroMQ's Paranoid Pirate queue: a ROUTER, nodes are DEALERs named by their routing id
 * ("node:" + name, so that a node that reconnects takes its entry over), any message counts as
 * a heartbeat, and a node silent for 3 heartbeat intervals is lost. Credit is counted here: a
 * node never holds more runs than the credit it announced (its slots plus its prefetch). */
#define _GNU_SOURCE
#include "nodes.h"

#include "access.h"
#include "jobs.h"
#include "log.h"
#include "nodemsg.h"
#include "outbox.h"
#include "tasks.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <utlist.h>
#include <uthash.h>

typedef struct run {
    UT_hash_handle hh;       /* in nodes->runs by id */
    struct run *prev, *next; /* in its node's list */
    job_t *job;              /* the attempt's job */
    node_t *node;            /* where it runs */
    uint64_t started_ms;     /* when it was sent */
    char id[48];             /* run id: head instance, sequence */
} run_t;

struct node {
    UT_hash_handle hh; /* in nodes->tab by routing id */
    char name[WIRE_ID_MAX + 1];
    char addr[64];      /* peer address, for status */
    const char **tasks; /* interned names (tasks.c) */
    size_t n_tasks;
    char **tags; /* owned */
    size_t n_tags;
    uint16_t who;        /* the identity it joined with (its key's name; local without keys) */
    uint32_t slots;      /* its workers */
    uint32_t credit;     /* runs it may hold at once */
    uint32_t inflight;   /* runs it holds */
    bool draining;       /* it said bye: send it nothing more */
    uint64_t last_heard; /* ms */
    uint64_t last_sent;  /* ms */
    uint64_t joined_ms;
    uint64_t done; /* runs it answered */
    run_t *runs;   /* DL list */
    size_t ilen;
    uint8_t ident[256]; /* routing id */
};

struct nodes {
    broker_t *b;
    void *sock;         /* ROUTER on --node-listen */
    node_t *tab;        /* by routing id */
    run_t *runs;        /* by run id */
    uint64_t seq;       /* of run ids */
    msgpack_zone zone;  /* scratch */
    uint64_t dropped;   /* late results of superseded attempts */
    uint64_t last_tick; /* when the tick last ran (ms) */
};

static void node_free(node_t *node)
{
    for (size_t i = 0; i < node->n_tags; i++)
        free(node->tags[i]);
    free(node->tags);
    free(node->tasks);
    free(node);
}

static run_t *run_of(const job_t *job)
{
    return job->x ? job->x->run : NULL;
}

static void send_to(nodes_t *n, node_t *node, const char *kind, const void *data, size_t len,
                    zmq_msg_t *m1, zmq_msg_t *m2)
{
    if (nodemsg_send(n->sock, node->ident, node->ilen, kind, data, len, m1, m2) < 0)
        log_debug("node %s: a %s could not be sent: %s", node->name, kind, zmq_strerror(errno));
    node->last_sent = now_ms();
}

/* Send an FJP header (and payload, shared) to node. */
static void send_fjp(nodes_t *n, node_t *node, const wire_hdr_t *h, zmq_msg_t *payload)
{
    const msgpack_sbuffer *e = outbox_encode(n->b->out, h);
    zmq_msg_t hm;

    if (!e)
        return;
    zmq_msg_init_size(&hm, e->size);
    memcpy(zmq_msg_data(&hm), e->data, e->size);
    send_to(n, node, "fjp", NULL, 0, &hm, payload);
    zmq_msg_close(&hm);
}

void nodes_run_end(nodes_t *n, job_t *job)
{
    run_t *r = run_of(job);

    if (!r)
        return;
    HASH_DEL(n->runs, r);
    DL_DELETE(r->node->runs, r);
    r->node->inflight--;
    job->x->run = NULL;
    free(r);
}

/* A node is gone: each of its jobs is retried if it may be, else lost; why NULL: it left
 * cleanly, and its jobs go back to the queue. */
static void node_drop(nodes_t *n, node_t *node, const char *why)
{
    char msg[WIRE_TEXT_MAX];

    snprintf(msg, sizeof(msg), "node %s lost (%s)", node->name, why ? why : "it left");
    while (node->runs) {
        job_t *job = node->runs->job;
        wire_hdr_t x = {.msg = wire_str(msg)};
        if (!why) {
            /* it left cleanly, having answered every run it saw: it never saw this one (sent
             * as it was stopping), which runs elsewhere, no attempt spent */
            jobs_requeue(n->b->jobs, job);
            continue;
        }
        if (!jobs_retry(n->b->jobs, job))
            jobs_finish(n->b->jobs, job, WIRE_ST_LOST, &x, NULL);
    }
    HASH_DEL(n->tab, node);
    node_free(node);
}

/* ---- what nodes say ---- */

static void welcome(nodes_t *n, node_t *node)
{
    char buf[64];
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint64(&pk, NODE_VERSION);
    msgpack_pack_str_with_body(&pk, "hb_ms", 5);
    msgpack_pack_uint64(&pk, (uint64_t)n->b->cfg->heartbeat_ms);
    msgpack_pack_str_with_body(&pk, "instance", 8);
    msgpack_pack_uint64(&pk, n->b->instance);
    send_to(n, node, "welcome", sb.data, sb.size, NULL, NULL);
    msgpack_sbuffer_destroy(&sb);
    (void)buf;
}

static void refuse(nodes_t *n, zmq_msg_t *ident, const char *why)
{
    char buf[WIRE_TEXT_MAX + 16];
    msgpack_sbuffer sb;
    msgpack_packer pk;

    snprintf(buf, sizeof(buf), "%s", why);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "msg", 3);
    msgpack_pack_str_with_body(&pk, buf, strlen(buf));
    nodemsg_send(n->sock, zmq_msg_data(ident), zmq_msg_size(ident), "refuse", sb.data, sb.size,
                 NULL, NULL);
    msgpack_sbuffer_destroy(&sb);
}

static bool held_has(const msgpack_object *held, const char *id)
{
    size_t len, n = strlen(id);
    for (uint32_t i = 0; i < held->via.array.size; i++) {
        const char *s = nodemsg_str(&held->via.array.ptr[i], &len);
        if (s && len == n && memcmp(s, id, n) == 0)
            return true;
    }
    return false;
}

static void on_join(nodes_t *n, zmq_msg_t *f, int nf)
{
    node_t *node;
    nodemsg_join_t j;
    const char *why = NULL, *peer = zmq_msg_gets(&f[1], "Peer-Address");
    uint16_t who = access_who(n->b->access, &f[1]);
    char msg[WIRE_TEXT_MAX];

    msgpack_zone_clear(&n->zone);
    if (nf < 3 ||
        nodemsg_join_decode(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &n->zone, &j, &why) < 0) {
        snprintf(msg, sizeof(msg), "refused a node at %s: %s", peer ? peer : "?",
                 why ? why : "its join has no map");
        log_warn("%s", msg);
        refuse(n, &f[0], msg);
        return;
    }
    if (who != ACCESS_LOCAL && !auth_is_node(access_rights(n->b->access, who))) {
        snprintf(msg, sizeof(msg),
                 "refused node %.*s at %s: its key (%s) has no node role in the clients file; "
                 "add `node` to its line",
                 (int)j.name_len, j.name, peer ? peer : "?", access_name(n->b->access, who));
        log_warn("%s", msg);
        refuse(n, &f[0], msg);
        return;
    }
    HASH_FIND(hh, n->tab, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), node);
    if (!node) {
        node = xcalloc(1, sizeof(*node));
        node->ilen =
            zmq_msg_size(&f[0]) < sizeof(node->ident) ? zmq_msg_size(&f[0]) : sizeof(node->ident);
        memcpy(node->ident, zmq_msg_data(&f[0]), node->ilen);
        HASH_ADD(hh, n->tab, ident[0], node->ilen, node);
        node->joined_ms = now_ms();
    }
    snprintf(node->name, sizeof(node->name), "%.*s", (int)j.name_len, j.name);
    snprintf(node->addr, sizeof(node->addr), "%s", peer ? peer : "");
    free(node->tasks);
    node->n_tasks = j.tasks.via.array.size;
    node->tasks = xcalloc(node->n_tasks + 1, sizeof(*node->tasks));
    for (size_t i = 0; i < node->n_tasks; i++) {
        size_t len;
        const char *s = nodemsg_str(&j.tasks.via.array.ptr[i], &len);
        node->tasks[i] = tasks_intern(n->b->tasks, s, len);
    }
    for (size_t i = 0; i < node->n_tags; i++)
        free(node->tags[i]);
    free(node->tags);
    node->n_tags = j.tags.via.array.size;
    node->tags = xcalloc(node->n_tags + 1, sizeof(*node->tags));
    for (size_t i = 0; i < node->n_tags; i++) {
        size_t len;
        const char *s = nodemsg_str(&j.tags.via.array.ptr[i], &len);
        node->tags[i] = xstrndup(s, len);
    }
    node->who = who;
    node->slots = (uint32_t)j.slots;
    node->credit = (uint32_t)j.credit;
    node->draining = false;
    node->last_heard = now_ms();
    /* runs the head gave it that it no longer holds were lost on the way */
    for (run_t *r = node->runs, *tmp; r && (tmp = r->next, 1); r = tmp) {
        if (!held_has(&j.held, r->id)) {
            wire_hdr_t x = {.msg = wire_str("its node rejoined without it")};
            if (!jobs_retry(n->b->jobs, r->job))
                jobs_finish(n->b->jobs, r->job, WIRE_ST_LOST, &x, NULL);
        }
    }
    /* runs it holds that the head gave up on (or another head gave): cancel them there */
    for (uint32_t i = 0; i < j.held.via.array.size; i++) {
        size_t len;
        const char *s = nodemsg_str(&j.held.via.array.ptr[i], &len);
        run_t *r;
        HASH_FIND(hh, n->runs, s, len, r);
        if (!r || r->node != node) {
            wire_hdr_t c = {.cmd = WIRE_CANCEL, .id = {s, len}};
            send_fjp(n, node, &c, NULL);
        }
    }
    welcome(n, node);
    log_notice("node %s joined from %s%s: %u slots, %zu tasks, %zu tags", node->name,
               node->addr[0] ? node->addr : "?",
               who == ACCESS_LOCAL ? " without keys (--insecure-tcp)" : "", node->slots,
               node->n_tasks, node->n_tags);
}

/* An FJP message from a node: a result or progress of a run. */
static void on_fjp(nodes_t *n, node_t *node, zmq_msg_t *f, int nf)
{
    wire_hdr_t h;
    wire_err_t err;
    run_t *r;

    msgpack_zone_clear(&n->zone);
    if (nf < 3 || wire_hdr_decode(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &n->zone, &h, &err) < 0)
        return;
    HASH_FIND(hh, n->runs, h.id.ptr, h.id.len, r);
    if (!r || r->node != node) {
        if (h.cmd == WIRE_RESULT) {
            n->dropped++;
            log_info("node %s: dropped the late result of run %.*s (an attempt the head gave up "
                     "on)",
                     node->name, (int)h.id.len, h.id.ptr);
        }
        return;
    }
    job_t *job = r->job;
    if (h.cmd == WIRE_DICT) {
        /* its task uses the head's dict service, with its submitter's rights */
        uint8_t route[NODES_ROUTE_LEN + sizeof(node->ident)];
        memcpy(route, NODES_ROUTE, NODES_ROUTE_LEN);
        memcpy(route + NODES_ROUTE_LEN, node->ident, node->ilen);
        origin_t o = {.ident = route, .ilen = NODES_ROUTE_LEN + node->ilen, .who = job->owner};
        if (n->b->dict && commands_dict_allowed(n->b, &o, &h))
            n->b->dict->request(n->b->dict_ud, &o, &h, nf > 3 ? &f[3] : NULL);
        else if (!n->b->dict)
            outbox_error(n->b->out, &o, &h, "unknown_command", "this forqd has no dict service");
        return;
    }
    if (h.cmd == WIRE_PROGRESS) {
        jobs_remote_progress(n->b->jobs, job, &h);
        return;
    }
    if (h.cmd != WIRE_RESULT)
        return;
    node->done++;
    if (h.state == WIRE_ST_OK || h.state == WIRE_ST_ERROR)
        tasks_ran(job->task, h.run_us); /* short tasks get the node's whole credit */
    zmq_msg_t *payload = nf > 3 ? &f[3] : NULL;
    wire_hdr_t x = {.etype = h.etype,
                    .msg = h.msg,
                    .code = h.code,
                    .run_us = h.run_us,
                    .signal = h.signal,
                    .exit_code = h.exit_code,
                    .has_exit = h.has_exit,
                    .pid = h.pid};
    bool asked = job->x && job->x->cancel_told;
    if (h.state == WIRE_ST_RUNNING || h.state == WIRE_ST_QUEUED || h.state == WIRE_ST_UNKNOWN)
        return;
    if ((h.state == WIRE_ST_CANCELLED && !asked && !h.attempts) ||
        (h.state == WIRE_ST_REJECTED && h.code.ptr && h.code.len == 13 &&
         memcmp(h.code.ptr, "shutting_down", 13) == 0)) {
        /* the node stopped before it started the job (or as it came): it runs elsewhere, no
         * attempt spent */
        jobs_requeue(n->b->jobs, job);
        return;
    }
    if ((h.state == WIRE_ST_CRASHED || h.state == WIRE_ST_LOST ||
         (h.state == WIRE_ST_CANCELLED && !asked)) &&
        jobs_retry(n->b->jobs, job))
        return;
    wire_err_t werr;
    if (h.state == WIRE_ST_OK &&
        (!payload ||
         wire_check(zmq_msg_data(payload), zmq_msg_size(payload), WIRE_DEPTH_MAX, &werr) < 0)) {
        /* a node is another machine: its result is checked before a client unpacks it */
        x.etype = wire_str("TaskError");
        x.msg = wire_str(payload ? "the node sent a result frame that is not one valid msgpack "
                                   "value"
                                 : "the node sent no result frame");
        jobs_finish(n->b->jobs, job, WIRE_ST_ERROR, &x, NULL);
        return;
    }
    if (h.state == WIRE_ST_OK && job->x && job->x->cancel_told)
        x.msg = (wire_str_t){0};
    jobs_finish(n->b->jobs, job, h.state, &x, h.state == WIRE_ST_OK ? payload : NULL);
}

static bool node_input(nodes_t *n)
{
    zmq_msg_t f[NODE_FRAMES_MAX];
    int nf = nodemsg_recv(n->sock, f, NODE_FRAMES_MAX);
    node_t *node;

    if (nf == -1)
        return false;
    if (nf < -1)
        nf = -2 - nf;
    if (nf < 2)
        goto out;
    HASH_FIND(hh, n->tab, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), node);
    if (nodemsg_is(&f[1], "join")) {
        on_join(n, f, nf);
        goto out;
    }
    if (!node) {
        /* a node the head does not know (it was declared lost, or the head restarted) */
        nodemsg_send(n->sock, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), "rejoin", NULL, 0, NULL,
                     NULL);
        if (nodemsg_is(&f[1], "fjp"))
            on_fjp(n, &(node_t){.name = "(unknown)"}, f, nf);
        goto out;
    }
    if (access_who(n->b->access, &f[1]) != node->who) {
        /* another key using a node's routing id: not that node */
        log_warn("ignored a message in the name of node %s from another key (%s)", node->name,
                 access_name(n->b->access, access_who(n->b->access, &f[1])));
        goto out;
    }
    node->last_heard = now_ms();
    if (nodemsg_is(&f[1], "fjp")) {
        on_fjp(n, node, f, nf);
    } else if (nodemsg_is(&f[1], "bye")) {
        log_notice("node %s is leaving: it gets no more jobs and finishes the %u it holds",
                   node->name, node->inflight);
        node->draining = true;
    } else if (nodemsg_is(&f[1], "gone")) {
        log_notice("node %s left", node->name);
        node_drop(n, node, NULL);
    }
out:
    nodemsg_close(f, nf);
    return true;
}

static void on_readable(void *ud, short revents)
{
    nodes_t *n = ud;

    (void)revents;
    for (int i = 0; i < BROKER_BATCH && node_input(n); i++)
        ;
}

/* Heartbeats out, silent nodes lost. */
static uint64_t tick(void *ud, uint64_t now)
{
    nodes_t *n = ud;
    uint64_t hb = (uint64_t)n->b->cfg->heartbeat_ms, next = LOOP_NEVER;
    node_t *node, *tmp;

    /* what the nodes sent while this forqd could not read (it was stopped, or busy) counts
     * before silence does: a head that was frozen does not lose every node when it thaws */
    for (int i = 0; i < BROKER_BATCH && node_input(n); i++)
        ;
    now = now_ms();
    if (n->tab && n->last_tick && now > n->last_tick + 2 * hb) {
        /* this forqd did not run for a while (stopped, or starved): silence is counted only
         * while it listened, so every node gets its 3 intervals again */
        log_warn("the broker did not run for %" PRIu64 " ms; nodes get %" PRIu64
                 " ms to be heard again",
                 now - n->last_tick, 3 * hb);
        for (node = n->tab; node; node = node->hh.next)
            node->last_heard = now;
    }
    n->last_tick = now;
    HASH_ITER(hh, n->tab, node, tmp)
    {
        if (now >= node->last_heard + 3 * hb) {
            log_warn("node %s lost: no heartbeat for %" PRIu64 " ms (3 intervals); its %u job(s) "
                     "are retried or answered lost",
                     node->name, now - node->last_heard, node->inflight);
            node_drop(n, node, "no heartbeat");
            continue;
        }
        if (now >= node->last_sent + hb)
            send_to(n, node, "hb", NULL, 0, NULL, NULL);
        uint64_t at = node->last_sent + hb < node->last_heard + 3 * hb ? node->last_sent + hb
                                                                       : node->last_heard + 3 * hb;
        if (at < next)
            next = at;
    }
    return next;
}

int nodes_route(nodes_t *n, const uint8_t *ident, size_t ilen, zmq_msg_t *hdr, zmq_msg_t *payload)
{
    node_t *node;

    if (!n)
        return -EHOSTUNREACH;
    HASH_FIND(hh, n->tab, ident, ilen, node);
    if (!node || !n->sock)
        return -EHOSTUNREACH;
    if (nodemsg_send(n->sock, node->ident, node->ilen, "fjp", NULL, 0, hdr, payload) < 0)
        return -EHOSTUNREACH;
    node->last_sent = now_ms();
    return 0;
}

/* ---- jobs.c's side ---- */

bool nodes_offer(const nodes_t *n, const char *task, size_t len)
{
    for (const node_t *node = n ? n->tab : NULL; node; node = node->hh.next)
        for (size_t i = 0; i < node->n_tasks; i++)
            if (strlen(node->tasks[i]) == len && memcmp(node->tasks[i], task, len) == 0)
                return true;
    return false;
}

static bool has_tags(const node_t *node, const char *want)
{
    while (want && *want) {
        const char *comma = strchr(want, ',');
        size_t len = comma ? (size_t)(comma - want) : strlen(want);
        bool found = len == 0;
        for (size_t i = 0; i < node->n_tags && !found; i++)
            found = strlen(node->tags[i]) == len && memcmp(node->tags[i], want, len) == 0;
        if (!found)
            return false;
        want = comma ? comma + 1 : NULL;
    }
    return true;
}

bool nodes_have_room(const nodes_t *n)
{
    for (const node_t *node = n ? n->tab : NULL; node; node = node->hh.next)
        if (!node->draining && node->inflight < node->credit)
            return true;
    return false;
}

node_t *nodes_pick(nodes_t *n, const job_t *job)
{
    node_t *best = NULL;
    uint32_t room = 0;

    /* a node may hold its whole credit of a short task's jobs (they wait in its workers'
     * prefetch, as the head's own do); of other tasks, its slots and as many again at most,
     * so that a long job does not wait at one node while another is idle */
    bool is_short = tasks_is_short(job->task);
    for (node_t *node = n ? n->tab : NULL; node; node = node->hh.next) {
        uint32_t cap = is_short || node->credit < 2 * node->slots ? node->credit : 2 * node->slots;
        uint32_t free_ = cap > node->inflight ? cap - node->inflight : 0;
        if (free_ <= room || node->draining)
            continue;
        size_t i = 0;
        while (i < node->n_tasks && node->tasks[i] != job->task)
            i++;
        if (i == node->n_tasks || !has_tags(node, job->x ? job->x->tags : NULL))
            continue;
        best = node;
        room = free_;
    }
    return best;
}

void nodes_start(nodes_t *n, node_t *node, job_t *job)
{
    run_t *r = xcalloc(1, sizeof(*r));
    zmq_msg_t args;

    snprintf(r->id, sizeof(r->id), "%016" PRIx64 ".%" PRIx64, n->b->instance, ++n->seq);
    r->job = job;
    r->node = node;
    r->started_ms = now_ms();
    job_extra(job)->run = r;
    HASH_ADD(hh, n->runs, id[0], strlen(r->id), r);
    DL_APPEND(node->runs, r);
    node->inflight++;
    wire_hdr_t h = {.cmd = WIRE_SUBMIT,
                    .id = wire_str(r->id),
                    .task = wire_str(job->task),
                    .timeout_ms = job->timeout_ms,
                    .priority = job->prio,
                    .has_priority = true,
                    .max_result = job->max_result,
                    .as_bytes = job->as_bytes,
                    .cpu_s = job->cpu_s,
                    .chunk = job->chunk};
    zmq_msg_init(&args);
    zmq_msg_copy(&args, &job->msg); /* a reference: the args stay for a retry */
    send_fjp(n, node, &h, &args);
    zmq_msg_close(&args);
}

void nodes_cancel(nodes_t *n, job_t *job)
{
    run_t *r = run_of(job);

    if (r) {
        wire_hdr_t c = {.cmd = WIRE_CANCEL, .id = wire_str(r->id)};
        send_fjp(n, r->node, &c, NULL);
    }
}

const char *nodes_run_where(const job_t *job, uint64_t *ret_started_ms)
{
    run_t *r = run_of(job);

    *ret_started_ms = r ? r->started_ms : 0;
    return r ? r->node->name : "?";
}

void nodes_visit(nodes_t *n, bool (*fn)(const job_t *job, void *ud), void *ud)
{
    for (node_t *node = n ? n->tab : NULL; node; node = node->hh.next)
        for (run_t *r = node->runs; r; r = r->next)
            if (!fn(r->job, ud))
                return;
}

void nodes_stop_all(nodes_t *n, bool final)
{
    node_t *node, *tmp;

    if (!n)
        return;
    HASH_ITER(hh, n->tab, node, tmp)
    {
        for (run_t *r = node->runs, *next; r; r = next) {
            next = r->next;
            if (final) {
                wire_hdr_t x = {.msg = wire_str("forqd stopped before its node reported")};
                nodes_cancel(n, r->job);
                jobs_finish(n->b->jobs, r->job, WIRE_ST_LOST, &x, NULL);
            } else {
                job_extra(r->job)->cancel_told = true;
                nodes_cancel(n, r->job);
            }
        }
    }
}

size_t nodes_count(const nodes_t *n)
{
    return n ? HASH_COUNT(n->tab) : 0;
}

size_t nodes_slots(const nodes_t *n)
{
    size_t s = 0;
    for (const node_t *node = n ? n->tab : NULL; node; node = node->hh.next)
        s += node->slots;
    return s;
}

size_t nodes_busy(const nodes_t *n)
{
    size_t s = 0;
    for (const node_t *node = n ? n->tab : NULL; node; node = node->hh.next)
        s += node->inflight < node->slots ? node->inflight : node->slots;
    return s;
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

void nodes_pack(const nodes_t *n, msgpack_packer *pk)
{
    uint64_t now = now_ms();

    msgpack_pack_array(pk, nodes_count(n));
    for (const node_t *node = n ? n->tab : NULL; node; node = node->hh.next) {
        msgpack_pack_map(pk, 10);
        pack_kv_str(pk, "name", node->name);
        pack_kv_str(pk, "address", node->addr);
        pack_kv_uint(pk, "slots", node->slots);
        pack_kv_uint(pk, "busy", node->inflight < node->slots ? node->inflight : node->slots);
        pack_kv_uint(pk, "inflight", node->inflight);
        pack_kv_uint(pk, "heartbeat_ms", now - node->last_heard);
        pack_kv_uint(pk, "done", node->done);
        msgpack_pack_str_with_body(pk, "draining", 8);
        if (node->draining)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        msgpack_pack_str_with_body(pk, "tasks", 5);
        msgpack_pack_array(pk, node->n_tasks);
        for (size_t i = 0; i < node->n_tasks; i++)
            msgpack_pack_str_with_body(pk, node->tasks[i], strlen(node->tasks[i]));
        msgpack_pack_str_with_body(pk, "tags", 4);
        msgpack_pack_array(pk, node->n_tags);
        for (size_t i = 0; i < node->n_tags; i++)
            msgpack_pack_str_with_body(pk, node->tags[i], strlen(node->tags[i]));
    }
}

/* ---- life ---- */

nodes_t *nodes_new(broker_t *b)
{
    nodes_t *n = xcalloc(1, sizeof(*n));

    n->b = b;
    msgpack_zone_init(&n->zone, 4096);
    return n;
}

int nodes_bind(nodes_t *n, void *zctx)
{
    const config_t *cfg = n->b->cfg;
    int one = 1, linger = 0, hwm = 1000000;
    int64_t maxmsg = cfg->max_payload + WIRE_HEADER_MAX;

    if (cfg->node_listen.n == 0)
        return 0;
    n->sock = zmq_socket(zctx, ZMQ_ROUTER);
    zmq_setsockopt(n->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof(one));
    zmq_setsockopt(n->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(n->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(n->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(n->sock, ZMQ_LINGER, &linger, sizeof(linger));
    for (size_t i = 0; i < cfg->node_listen.n; i++) {
        const char *ep = cfg->node_listen.items[i];
        access_bind_options(n->b->access, n->sock, ep);
        if (strncmp(ep, "tcp://", 6) == 0 && config_needs_curve(cfg))
            zmq_setsockopt(n->sock, ZMQ_ZAP_DOMAIN, ACCESS_NODE_DOMAIN, strlen(ACCESS_NODE_DOMAIN));
        if (zmq_bind(n->sock, ep) < 0) {
            fprintf(stderr, "forqd: cannot accept nodes on %s: %s\n", ep, zmq_strerror(errno));
            return -errno;
        }
        if (strncmp(ep, "tcp://", 6) == 0 && cfg->insecure_tcp)
            log_warn("nodes join %s in plaintext, without keys (--insecure-tcp): anyone who "
                     "reaches the port can run jobs' arguments; use it on loopback only",
                     ep);
    }
    loop_io_add(n->b->loop, n->sock, -1, ZMQ_POLLIN, ORDER_CLIENTS, on_readable, n);
    loop_tick_add(n->b->loop, tick, n);
    log_notice("accepting nodes on %s%s", cfg->node_listen.items[0],
               cfg->node_listen.n > 1 ? " and more" : "");
    return 0;
}

void nodes_destroy(nodes_t **np)
{
    nodes_t *n = *np;
    node_t *node, *tmp;
    run_t *r, *rt;

    if (!n)
        return;
    HASH_ITER(hh, n->runs, r, rt)
    {
        HASH_DEL(n->runs, r);
        free(r);
    }
    HASH_ITER(hh, n->tab, node, tmp)
    {
        HASH_DEL(n->tab, node);
        node_free(node);
    }
    if (n->sock)
        zmq_close(n->sock);
    msgpack_zone_destroy(&n->zone);
    free(n);
    *np = NULL;
}
