/* map.c - map, starmap, imap and imap_unordered over chunk jobs.
 *
 * The input is an array (forq_map), a feed of packed items (forq_imap) or a callback that packs
 * item i into the map's own buffer (forq_map_gen). Items are packed `chunksize` at a time into one
 * chunk job (PROTOCOL.md: "chunk"), which a worker runs item by item and answers with one entry per
 * item: [0, value] or [1, etype, msg]. At most `window` chunks are in flight or waiting to be read,
 * and the input is pulled from the caller's feed only when the window has room, from inside
 * forq_map_next(): the map's memory is bounded by window * chunksize items however long the input
 * is.
 *
 * Results are yielded in input order (the head chunk first), or with `unordered` in the order
 * chunks finish: a listener on each chunk's future puts it on a completion queue (wait.h), which
 * is reference-counted apart from the map, so a listener firing on the I/O thread never touches
 * a map that is being destroyed. Borrowed result pointers point into the chunk's result, which
 * is freed at the next call.
 *
 * The map keeps its own copies of the option strings (opts.job.store_*): every chunk is
 * submitted long after forq_map() returned, and each chunk's future copies them again. */
#define _GNU_SOURCE
#include "client_int.h"

#include "conn.h"
#include "wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_DEF  64
#define WINDOW_DEF 8

typedef struct chunk {
    struct chunk *next;     /* submission order */
    forq_future_t *f;       /* the chunk job */
    future_listener_t *reg; /* completion listener (unordered) until it fires */
    size_t first, count;    /* input items first .. first + count - 1 */
    size_t pos;             /* items already yielded */
    size_t off;             /* read offset in the result */
    bool parsed;            /* the result's array header was read */
} chunk_t;

struct forq_map {
    forq_client_t *c;
    char task[FORQ_ID_MAX + 1];
    forq_map_opts_t opts;         /* opts.job's strings are the copies below */
    char *store_dict, *store_key; /* owned */
    char *tags;                   /* owned */
    forq_map_feed_fn feed;        /* the input, or NULL for an array or a generator */
    forq_map_gen_fn gen;          /* the input packed by the caller's callback, or NULL */
    void *feed_ud;                /* userdata of feed or gen */
    size_t gen_n;                 /* gen: items 0 .. gen_n - 1 at most */
    msgpack_sbuffer item;         /* gen: the item it packed last */
    const void *const *items;     /* array input */
    const size_t *lens;
    size_t n_items;
    bool input_done, feed_failed, cancelled;
    size_t fed;           /* items fed so far: the next item's index */
    size_t failed;        /* items yielded other than ok */
    chunk_t *head, *tail; /* chunks not fully yielded, submission order */
    size_t nchunks;
    chunk_t *current;    /* the chunk being yielded (unordered) */
    chunk_t *consumed;   /* fully yielded: freed at the next call */
    cq_t *cq;            /* completion queue (unordered) */
    msgpack_sbuffer buf; /* a chunk's args while it is built */
    char etype[WIRE_TEXT_MAX + 1], detail[WIRE_TEXT_MAX + 1];
};

void forq_map_opts_init(forq_map_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->chunksize = CHUNK_DEF;
    o->window = WINDOW_DEF;
    forq_submit_opts_init(&o->job);
}

/* ---- building and submitting chunks ---- */

/* The next input item, or 0 at the end, -1 on a feed error. */
static int next_item(forq_map_t *m, const void **item, size_t *len)
{
    if (m->gen) {
        msgpack_packer pk;
        int r;
        if (m->fed >= m->gen_n)
            return 0;
        msgpack_sbuffer_clear(&m->item);
        msgpack_packer_init(&pk, &m->item, msgpack_sbuffer_write);
        if ((r = m->gen(m->feed_ud, m->fed, &pk)) == 1) {
            *item = m->item.size ? m->item.data : NULL; /* nothing packed: not one value */
            *len = m->item.size;
        }
        return r < 0 ? -1 : r > 0;
    }
    if (!m->feed) {
        if (m->fed >= m->n_items)
            return 0;
        *item = m->items[m->fed];
        *len = m->lens[m->fed];
        return 1;
    }
    return m->feed(m->feed_ud, item, len);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Build and submit one chunk. Returns FORQ_OK (maybe with no chunk at the end of the input). */
static forq_err_t submit_chunk(forq_map_t *m)
{
    static const uint8_t array32[5] = {0xdd, 0, 0, 0, 0};
    static const uint8_t one[1] = {0x91};
    size_t count = 0, first = m->fed;
    wire_err_t werr;
    chunk_t *ch;
    forq_err_t e;

    msgpack_sbuffer_clear(&m->buf);
    msgpack_sbuffer_write(&m->buf, (const char *)array32, sizeof(array32));
    while (count < m->opts.chunksize) {
        const void *item;
        size_t len;
        int r = next_item(m, &item, &len);
        if (r == 0) {
            m->input_done = true;
            break;
        }
        if (r < 0 || !item || wire_check(item, len, WIRE_DEPTH_MAX - 1, &werr) < 0) {
            m->input_done = m->feed_failed = true;
            errors_fail(FORQ_ERR_INVALID, "input item %zu %s", m->fed,
                        r < 0 ? "could not be read (its feed or callback returned -1)"
                              : "is not one msgpack value");
            break;
        }
        if (!m->opts.star)
            msgpack_sbuffer_write(&m->buf, (const char *)one, 1); /* [item] */
        msgpack_sbuffer_write(&m->buf, item, len);
        m->fed++;
        count++;
    }
    if (count == 0)
        return FORQ_OK;
    put_be32((uint8_t *)m->buf.data + 1, (uint32_t)count);

    if (!(ch = calloc(1, sizeof(*ch))) || !(ch->f = future_new())) {
        free(ch);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    ch->first = first;
    ch->count = count;
    conn_new_id(m->c, ch->f->key, sizeof(ch->f->key));
    if ((e = future_set_job(ch->f, m->task, &m->opts.job, true)) != FORQ_OK ||
        (e = client_submit(m->c, ch->f, m->buf.data, m->buf.size)) != FORQ_OK) {
        future_unref(ch->f);
        free(ch);
        return e;
    }
    if (m->cq && !cq_listen(m->cq, ch->f, &ch->reg)) {
        /* without a listener it would never be yielded: cancel it and fail the map */
        client_cancel_async(m->c, ch->f->key);
        future_unref(ch->f);
        free(ch);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    if (m->tail)
        m->tail->next = ch;
    else
        m->head = ch;
    m->tail = ch;
    m->nchunks++;
    return FORQ_OK;
}

static forq_err_t refill(forq_map_t *m)
{
    while (!m->input_done && !m->cancelled && m->nchunks < m->opts.window) {
        forq_err_t e = submit_chunk(m);
        if (e != FORQ_OK)
            return e;
    }
    return FORQ_OK;
}

/* ---- reading a chunk's result ---- */

typedef struct {
    const uint8_t *p;
    size_t len, off;
} rd_t;

static bool rd_array(rd_t *r, uint32_t *n)
{
    if (r->off >= r->len)
        return false;
    uint8_t b = r->p[r->off];
    if (b >= 0x90 && b <= 0x9f) {
        *n = b & 0x0f;
        r->off += 1;
    } else if (b == 0xdc && r->off + 3 <= r->len) {
        *n = (uint32_t)r->p[r->off + 1] << 8 | r->p[r->off + 2];
        r->off += 3;
    } else if (b == 0xdd && r->off + 5 <= r->len) {
        *n = (uint32_t)r->p[r->off + 1] << 24 | (uint32_t)r->p[r->off + 2] << 16 |
             (uint32_t)r->p[r->off + 3] << 8 | r->p[r->off + 4];
        r->off += 5;
    } else {
        return false;
    }
    return true;
}

/* A string of the entry, copied NUL-terminated into buf. */
static bool rd_str(rd_t *r, char *buf, size_t size)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t n, off = 0;
    wire_err_t err;
    bool ok;

    if (wire_value_len(r->p + r->off, r->len - r->off, 1, &n, &err) < 0)
        return false;
    msgpack_zone_init(&zone, 64);
    ok =
        msgpack_unpack((const char *)r->p + r->off, n, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_STR;
    if (ok)
        snprintf(buf, size, "%.*s", (int)o.via.str.size, o.via.str.ptr);
    msgpack_zone_destroy(&zone);
    r->off += n;
    return ok;
}

/* Yield the chunk's next item into ret. */
static void yield(forq_map_t *m, chunk_t *ch, forq_map_item_t *ret)
{
    forq_future_t *f = ch->f;
    rd_t r = {f->result, f->result_len, ch->off};
    uint32_t n, status_n = 0;
    size_t vlen;
    wire_err_t err;

    memset(ret, 0, sizeof(*ret));
    ret->index = ch->first + ch->pos;
    ret->detail = "";
    if (f->state != FORQ_STATE_OK) {
        ret->state = f->state;
        snprintf(m->detail, sizeof(m->detail), "its chunk job %s %s: %s", f->key,
                 forq_state_name(f->state), f->detail ? f->detail : "");
        ret->detail = m->detail;
        goto out;
    }
    if (!ch->parsed) {
        if (!rd_array(&r, &n) || n != ch->count)
            goto bad;
        ch->parsed = true;
    }
    /* entry: [0, value] or [1, etype, msg] */
    if (!rd_array(&r, &n) || (n != 2 && n != 3) || r.off >= r.len || r.p[r.off] > 1)
        goto bad;
    status_n = r.p[r.off++];
    if (status_n == 0 && n == 2) {
        if (wire_value_len(r.p + r.off, r.len - r.off, WIRE_DEPTH_MAX, &vlen, &err) < 0)
            goto bad;
        ret->state = FORQ_STATE_OK;
        ret->data = r.p + r.off;
        ret->len = vlen;
        r.off += vlen;
    } else if (status_n == 1 && n == 3) {
        if (!rd_str(&r, m->etype, sizeof(m->etype)) || !rd_str(&r, m->detail, sizeof(m->detail)))
            goto bad;
        ret->state = FORQ_STATE_ERROR;
        ret->error_type = m->etype;
        ret->detail = m->detail;
    } else {
        goto bad;
    }
    goto out;
bad:
    ret->state = FORQ_STATE_LOST;
    snprintf(m->detail, sizeof(m->detail), "its chunk job %s answered a malformed chunk result",
             f->key);
    ret->detail = m->detail;
out:
    ch->off = r.off;
    ch->pos++;
    if (ret->state != FORQ_STATE_OK)
        m->failed++;
}

static void chunk_free(chunk_t *ch)
{
    if (ch) {
        future_unref(ch->f);
        free(ch);
    }
}

/* Take ch out of the list of chunks not fully yielded. */
static void unlink_chunk(forq_map_t *m, chunk_t *ch)
{
    chunk_t **p = &m->head, *prev = NULL;
    while (*p && *p != ch) {
        prev = *p;
        p = &(*p)->next;
    }
    if (!*p)
        return;
    *p = ch->next;
    if (m->tail == ch)
        m->tail = prev;
    m->nchunks--;
}

/* ---- public ---- */

static forq_err_t map_new(forq_client_t *c, const char *task, const forq_map_opts_t *opts,
                          forq_map_t **ret)
{
    forq_map_t *m;

    if (!c || !ret)
        return errors_fail(FORQ_ERR_INVALID, "client and ret_map are required");
    if (!task || !wire_task_is_valid(task, strlen(task)))
        return errors_fail(FORQ_ERR_INVALID,
                           "task name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (!(m = calloc(1, sizeof(*m))))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    if (opts)
        m->opts = *opts;
    else
        forq_map_opts_init(&m->opts);
    if (m->opts.chunksize == 0 || m->opts.chunksize > 1000000 || m->opts.window == 0 ||
        m->opts.job.id || m->opts.job.priority < 0 || m->opts.job.priority > WIRE_PRIORITY_MAX ||
        m->opts.job.retries > WIRE_RETRIES_MAX) {
        free(m);
        return errors_fail(FORQ_ERR_INVALID, "map options: chunksize 1..1000000, window >= 1, "
                                             "job.id NULL, priority 0..9, retries <= 100");
    }
    /* copies: chunks are submitted from forq_map_next(), long after the caller's call */
    m->opts.job.store_dict = m->store_dict =
        opts && opts->job.store_dict ? strdup(opts->job.store_dict) : NULL;
    m->opts.job.store_key = m->store_key =
        opts && opts->job.store_key ? strdup(opts->job.store_key) : NULL;
    m->opts.job.tags = m->tags = opts && opts->job.tags ? strdup(opts->job.tags) : NULL;
    if ((opts && opts->job.store_dict && !m->store_dict) ||
        (opts && opts->job.store_key && !m->store_key) || (opts && opts->job.tags && !m->tags) ||
        (m->opts.unordered && !(m->cq = cq_new(m->opts.window)))) {
        free(m->store_dict);
        free(m->store_key);
        free(m->tags);
        free(m);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    m->c = c;
    snprintf(m->task, sizeof(m->task), "%s", task);
    msgpack_sbuffer_init(&m->buf);
    msgpack_sbuffer_init(&m->item);
    *ret = m;
    return FORQ_OK;
}

forq_err_t forq_imap(forq_client_t *c, const char *task, forq_map_feed_fn feed, void *userdata,
                     const forq_map_opts_t *opts, forq_map_t **ret_map)
{
    forq_err_t e;
    if (!feed)
        return errors_fail(FORQ_ERR_INVALID, "forq_imap needs a feed function");
    if ((e = map_new(c, task, opts, ret_map)) == FORQ_OK) {
        (*ret_map)->feed = feed;
        (*ret_map)->feed_ud = userdata;
    }
    return e;
}

forq_err_t forq_map_gen(forq_client_t *c, const char *task, size_t n, forq_map_gen_fn gen,
                        void *userdata, const forq_map_opts_t *opts, forq_map_t **ret_map)
{
    forq_err_t e;
    if (!gen)
        return errors_fail(FORQ_ERR_INVALID, "forq_map_gen needs a gen function");
    if ((e = map_new(c, task, opts, ret_map)) == FORQ_OK) {
        (*ret_map)->gen = gen;
        (*ret_map)->feed_ud = userdata;
        (*ret_map)->gen_n = n;
    }
    return e;
}

forq_err_t forq_map(forq_client_t *c, const char *task, const void *const *items,
                    const size_t *lens, size_t n, const forq_map_opts_t *opts, forq_map_t **ret_map)
{
    forq_err_t e;
    if (n && (!items || !lens))
        return errors_fail(FORQ_ERR_INVALID, "forq_map needs items and lens");
    if ((e = map_new(c, task, opts, ret_map)) == FORQ_OK) {
        (*ret_map)->items = items;
        (*ret_map)->lens = lens;
        (*ret_map)->n_items = n;
    }
    return e;
}

/* The chunk whose future is f (unordered). */
static chunk_t *chunk_of(forq_map_t *m, forq_future_t *f)
{
    for (chunk_t *ch = m->head; ch; ch = ch->next)
        if (ch->f == f)
            return ch;
    return NULL;
}

/* The next finished chunk in completion order, waiting up to timeout_ms. */
static chunk_t *next_done(forq_map_t *m, int timeout_ms)
{
    forq_future_t *f = cq_pop(m->cq, timeout_ms);

    if (!f)
        return NULL;
    chunk_t *ch = chunk_of(m, f);
    future_unref(f); /* the chunk holds its own reference */
    if (ch)
        ch->reg = NULL; /* fired, and freed by its firer */
    return ch;
}

forq_err_t forq_map_next(forq_map_t *m, int timeout_ms, forq_map_item_t *ret_item)
{
    chunk_t *ch;
    forq_err_t e;

    if (!m || !ret_item)
        return errors_fail(FORQ_ERR_INVALID, "map and ret_item are required");
    chunk_free(m->consumed);
    m->consumed = NULL;
    if ((e = refill(m)) != FORQ_OK)
        return e;
    if (m->opts.unordered) {
        if (!m->current) {
            if (!m->head)
                goto end;
            if (!(m->current = next_done(m, timeout_ms)))
                return errors_fail(FORQ_ERR_TIMEOUT, "no chunk finished within %d ms", timeout_ms);
        }
        ch = m->current;
    } else {
        if (!(ch = m->head))
            goto end;
        if (!future_wait_done(ch->f, timeout_ms))
            return errors_fail(FORQ_ERR_TIMEOUT, "item %zu is not done after %d ms",
                               ch->first + ch->pos, timeout_ms);
    }
    yield(m, ch, ret_item);
    if (ch->pos == ch->count) {
        unlink_chunk(m, ch);
        if (m->current == ch)
            m->current = NULL;
        m->consumed = ch; /* its result backs ret_item until the next call */
    }
    return FORQ_OK;
end:
    if (m->feed_failed)
        return errors_fail(FORQ_ERR_INVALID, "the map stopped at item %zu: its input failed",
                           m->fed);
    return errors_fail(FORQ_ERR_EXHAUSTED, "all %zu items were yielded", m->fed);
}

forq_err_t forq_map_cancel(forq_map_t *m)
{
    if (!m)
        return errors_fail(FORQ_ERR_INVALID, "map is NULL");
    m->cancelled = true;
    for (chunk_t *ch = m->head; ch; ch = ch->next)
        if (!forq_future_done(ch->f))
            client_cancel_async(m->c, ch->f->key);
    return FORQ_OK;
}

size_t forq_map_failed(const forq_map_t *m)
{
    return m ? m->failed : 0;
}

void forq_map_destroy(forq_map_t **mp)
{
    forq_map_t *m;

    if (!mp || !(m = *mp))
        return;
    *mp = NULL;
    chunk_free(m->consumed);
    while (m->head) {
        chunk_t *ch = m->head;
        m->head = ch->next;
        if (!forq_future_done(ch->f))
            client_cancel_async(m->c, ch->f->key);
        if (ch->reg)
            cq_unlisten(m->cq, ch->f, &ch->reg);
        chunk_free(ch);
    }
    cq_close(&m->cq);
    msgpack_sbuffer_destroy(&m->buf);
    msgpack_sbuffer_destroy(&m->item);
    free(m->store_dict);
    free(m->store_key);
    free(m->tags);
    free(m);
}
