/* update.c - the dict ops `update` and `mset`: a map of string keys to values, all or none
 * (PROTOCOL.md 6.8), with the bound on the memory one request may cost. The two differ only in
 * the reply's `count`: update's counts the map's entries, mset's the distinct keys written. */
#include "svc.h"

#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* An update's entries in its request's frame (proven well formed): entry i's key starts at
 * at[i], its value ends where the next key starts (at[n]: after the last). */
typedef struct {
    const uint8_t *p;
    const uint32_t *at; /* frames are under 4 GiB: --max-payload is at most 1 GiB */
} frame_entries_t;

static void frame_entry(const void *ud, size_t i, dstore_kv_t *ret)
{
    const frame_entries_t *f = ud;
    size_t next = 0;

    wire_str_header(f->p + f->at[i], f->at[i + 1] - f->at[i], &ret->key, &ret->klen, &next);
    ret->val = f->p + f->at[i] + next;
    ret->vlen = f->at[i + 1] - f->at[i] - next;
}

/* Limits before work: the entry count, read from the map's header, is checked against the
 * per-request bound and --dict-max-keys before anything is allocated. One linear walk then notes
 * where each entry starts: keys and values stay in the frame (values are stored as sent).
 *
 * Memory (issue 11 item 3): the store checks the whole update first (dstore_update_plan), the
 * log's frame is packed from the request and written before anything changes, and only then is
 * the update applied. A log that cannot take it leaves nothing to undo: no copy of the old state
 * per key, which cost more than the update. The bound: PROTOCOL.md `update`, check_dictsvc. */
void svc_update(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    const uint8_t *p = zmq_msg_data(payload);
    size_t len = zmq_msg_size(payload), off;
    uint32_t n;
    char msg[256];
    int r = 0;

    const char *what = wire_str_eq(h->op, "mset") ? "mset" : "update";

    if (wire_map_header(p, len, &n, &off) < 0) {
        snprintf(msg, sizeof(msg), "%s takes a map of string keys to values", what);
        outbox_error(s->out, o, h, "bad_value", msg);
        return;
    }
    if (n > MULTI_KEYS_MAX) {
        snprintf(msg, sizeof(msg),
                 "%s: %" PRIu32 " keys in one request, over the limit of %u per %s; send "
                 "them in several %ss",
                 what, n, MULTI_KEYS_MAX, what, what);
        outbox_error(s->out, o, h, "too_large", msg);
        return;
    }
    if (n > (uint64_t)s->cfg->dict_max_keys) {
        snprintf(msg, sizeof(msg),
                 "%s: %" PRIu32 " keys in one request, more than this forqd's "
                 "--dict-max-keys of %ld; send fewer keys or raise the limit",
                 what, n, s->cfg->dict_max_keys);
        outbox_error(s->out, o, h, "dict_full", msg);
        return;
    }
    uint32_t *at = xmalloc(((size_t)n + 1) * sizeof(*at));
    frame_entries_t fe = {p, at};
    dstore_batch_t batch = {n, frame_entry, &fe};
    dstore_plan_t plan;
    wire_err_t werr;

    for (uint32_t i = 0; i < n && r == 0; i++) {
        const char *key;
        size_t klen, vlen, next;
        at[i] = (uint32_t)off;
        if (wire_str_header(p + off, len - off, &key, &klen, &next) < 0 || klen == 0 ||
            klen > WIRE_KEY_MAX || memchr(key, '\0', klen)) {
            r = -EBADMSG;
            break;
        }
        off += next;
        if (wire_value_len(p + off, len - off, WIRE_DEPTH_MAX, &vlen, &werr) < 0) {
            r = -EINVAL;
            break;
        }
        off += vlen;
    }
    at[n] = (uint32_t)off;
    if (r == -EBADMSG) {
        snprintf(msg, sizeof(msg),
                 "%s: keys must be non-empty strings of at most 1024 bytes without NUL", what);
        outbox_error(s->out, o, h, "bad_key", msg);
    } else if (r < 0) {
        snprintf(msg, sizeof(msg), "%s takes a map of string keys to values", what);
        outbox_error(s->out, o, h, "bad_value", msg);
    } else if ((r = dstore_update_plan(s->store, h->name.ptr, h->name.len, &batch, &plan)) < 0) {
        svc_store_error(s, o, h, r);
    } else {
        uint64_t ver = 0;
        size_t distinct = plan.distinct;
        if (s->log)
            r = dictlog_commit_update(s->log, h->name.ptr, h->name.len, &batch, &plan);
        if (r < 0) {
            dstore_plan_done(&plan);
            svc_log_refused(s, o, h, r);
        } else {
            s->logged = s->log != NULL; /* the hook must not log the changes again */
            dstore_update_apply(s->store, h->name.ptr, h->name.len, &batch, &plan, &ver);
            s->logged = false;
            wire_hdr_t rep = {
                .count = what[0] == 'm' ? distinct : n, .ver = ver, .has_ver = true, .found = true};
            svc_reply(s, o, h, &rep, NULL, 0);
        }
    }
    free(at);
}
