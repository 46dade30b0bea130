/* ops.c - the op table of the `dict` command (dict ops and shared types) and the check of a
 * request against it.
 *
 * The table is indexed by ops_id_t, so ops_get() is an array access and ops_find() a short
 * scan (32 entries); a _Static_assert keeps the table as long as the enum, and check_ops tests
 * that every entry's id is its index. The text refusing an unknown op lists the ops from the
 * table, those of the kind its name begins with ("queue." ...; the dict ops for any other), so
 * it names a new op by itself, the dict ops in the order forqd has always named them. */
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define KEY     OPS_F_KEY
#define VALUE   OPS_F_VALUE
#define VER     OPS_F_VER
#define DELTA   OPS_F_DELTA
#define TIMEOUT OPS_F_TIMEOUT
#define LIMIT   OPS_F_LIMIT
#define BLOCK   OPS_F_BLOCK
#define FRONT   OPS_F_FRONT
#define MAXSIZE OPS_F_MAXSIZE
#define LEASE   OPS_F_LEASE
#define TOKEN   OPS_F_TOKEN
#define PERMITS OPS_F_PERMITS
#define START   OPS_F_START
#define FENCE   OPS_F_FENCE
#define OF      OPS_F_OF

#define DICT(n)  .name = n, .verb = n, .kind = OPS_KIND_DICT
#define QUEUE(v) .name = "queue." v, .verb = v, .kind = OPS_KIND_QUEUE
#define LOCK(v)  .name = "lock." v, .verb = v, .kind = OPS_KIND_LOCK
#define EVENT(v) .name = "event." v, .verb = v, .kind = OPS_KIND_EVENT

/* The order is the one forqd's unknown-op message has always listed the dict ops in. Every op
 * that changes something but a lock's own takes a fence. */
/* clang-format off */
static const ops_desc_t ops[] = {
    [OPS_GET] = {DICT("get"), .id = OPS_GET, .needs = KEY, .reply = OPS_REPLY_VALUE,
                 .reply_has_ver = true, .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_SET] = {DICT("set"), .id = OPS_SET, .needs = KEY | VALUE, .takes = FENCE,
                 .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                 .args_min = 2, .args_max = 2, .json_arg = 1},
    [OPS_DEL] = {DICT("del"), .id = OPS_DEL, .needs = KEY, .takes = FENCE,
                 .reply = OPS_REPLY_FOUND, .mutates = true, .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_HAS] = {DICT("has"), .id = OPS_HAS, .needs = KEY, .reply = OPS_REPLY_FOUND,
                 .reply_has_ver = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_KEYS] = {DICT("keys"), .id = OPS_KEYS, .takes = KEY | LIMIT, .reply = OPS_REPLY_PAGE,
                  .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_ITEMS] = {DICT("items"), .id = OPS_ITEMS, .takes = KEY | LIMIT,
                   .reply = OPS_REPLY_PAGE,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_LEN] = {DICT("len"), .id = OPS_LEN, .reply = OPS_REPLY_COUNT,
                 .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_CLEAR] = {DICT("clear"), .id = OPS_CLEAR, .takes = FENCE, .reply = OPS_REPLY_COUNT,
                   .mutates = true,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_UPDATE] = {DICT("update"), .id = OPS_UPDATE, .needs = VALUE, .takes = FENCE,
                    .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                    .args_min = 1, .args_max = 1, .json_arg = 0},
    [OPS_SETDEFAULT] = {DICT("setdefault"), .id = OPS_SETDEFAULT, .needs = KEY | VALUE,
                        .takes = FENCE, .reply = OPS_REPLY_VALUE, .mutates = true,
                        .reply_has_ver = true,
                        .args_min = 2, .args_max = 2, .json_arg = 1},
    [OPS_POP] = {DICT("pop"), .id = OPS_POP, .needs = KEY, .takes = FENCE,
                 .reply = OPS_REPLY_VALUE, .mutates = true, .reply_has_ver = true,
                 .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_INCR] = {DICT("incr"), .id = OPS_INCR, .needs = KEY, .takes = DELTA | FENCE,
                  .reply = OPS_REPLY_INT, .mutates = true, .reply_has_ver = true,
                  .args_min = 1, .args_max = 2, .json_arg = -1},
    [OPS_CAS] = {DICT("cas"), .id = OPS_CAS, .needs = KEY | VALUE | VER, .takes = FENCE,
                 .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                 .reply_code = "conflict",
                 .args_min = 3, .args_max = 3, .json_arg = 2},
    [OPS_WAIT] = {DICT("wait"), .id = OPS_WAIT, .needs = KEY, .takes = VER | TIMEOUT,
                  .reply = OPS_REPLY_VALUE, .reply_has_ver = true, .absent_is_not_found = true,
                  .reply_code = "timeout",
                  .args_min = 1, .args_max = 1, .json_arg = -1},
    /* the CLI's `forq dict list` takes no NAME: its operand counts are those after the op */
    [OPS_DICTS] = {DICT("dicts"), .id = OPS_DICTS, .nameless = true, .takes = KEY | LIMIT,
                   .reply = OPS_REPLY_PAGE,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    /* many keys in one request: mget's value is an array of keys, mset's a map (as update's);
     * the CLI takes mget's keys as operands */
    [OPS_MGET] = {DICT("mget"), .id = OPS_MGET, .needs = VALUE, .reply = OPS_REPLY_MANY,
                  .args_min = 1, .args_max = 255, .json_arg = -1},
    [OPS_MSET] = {DICT("mset"), .id = OPS_MSET, .needs = VALUE, .takes = FENCE,
                  .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                  .args_min = 1, .args_max = 1, .json_arg = 0},
    /* queues: `count` in every reply is the items the queue holds after the op */
    [OPS_QPUT] = {QUEUE("put"), .id = OPS_QPUT, .needs = VALUE,
                  .takes = FRONT | MAXSIZE | BLOCK | TIMEOUT | FENCE, .reply = OPS_REPLY_COUNT,
                  .mutates = true, .reply_code = "full",
                  .args_min = 1, .args_max = 1, .json_arg = 0},
    [OPS_QGET] = {QUEUE("get"), .id = OPS_QGET, .takes = BLOCK | TIMEOUT | FENCE,
                  .reply = OPS_REPLY_VALUE, .mutates = true, .absent_is_not_found = true,
                  .reply_code = "empty",
                  .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_QLEN] = {QUEUE("len"), .id = OPS_QLEN, .reply = OPS_REPLY_COUNT,
                  .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_QRANGE] = {QUEUE("range"), .id = OPS_QRANGE, .takes = START | LIMIT,
                    .reply = OPS_REPLY_PAGE,
                    .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_QCLEAR] = {QUEUE("clear"), .id = OPS_QCLEAR, .takes = FENCE, .reply = OPS_REPLY_COUNT,
                    .mutates = true,
                    .args_min = 0, .args_max = 0, .json_arg = -1},
    /* a blocked request of the same connection, no longer wanted (6.9) */
    [OPS_QWITHDRAW] = {QUEUE("withdraw"), .id = OPS_QWITHDRAW, .needs = OF,
                      .reply = OPS_REPLY_FOUND, .reply_code = "not_waiting",
                      .connection_only = true, .args_min = 0, .args_max = 0, .json_arg = -1},
    /* locks: the token is the grant's, a fence of its own */
    [OPS_LACQUIRE] = {LOCK("acquire"), .id = OPS_LACQUIRE,
                      .takes = LEASE | PERMITS | BLOCK | TIMEOUT, .reply = OPS_REPLY_TOKEN,
                      .mutates = true, .reply_code = "held",
                      .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_LRELEASE] = {LOCK("release"), .id = OPS_LRELEASE, .needs = TOKEN,
                      .reply = OPS_REPLY_FOUND, .mutates = true, .absent_is_not_found = true,
                      .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_LRENEW] = {LOCK("renew"), .id = OPS_LRENEW, .needs = TOKEN, .takes = LEASE,
                    .reply = OPS_REPLY_FOUND, .mutates = true, .absent_is_not_found = true,
                    .args_min = 1, .args_max = 1, .json_arg = -1},
    /* a blocked request of the same connection, no longer wanted (6.9) */
    [OPS_LWITHDRAW] = {LOCK("withdraw"), .id = OPS_LWITHDRAW, .needs = OF,
                      .reply = OPS_REPLY_FOUND, .reply_code = "not_waiting",
                      .connection_only = true, .args_min = 0, .args_max = 0, .json_arg = -1},
    /* events: `found` is whether the event is set */
    [OPS_ESET] = {EVENT("set"), .id = OPS_ESET, .takes = FENCE, .reply = OPS_REPLY_FOUND,
                  .mutates = true,
                  .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_ECLEAR] = {EVENT("clear"), .id = OPS_ECLEAR, .takes = FENCE, .reply = OPS_REPLY_FOUND,
                    .mutates = true,
                    .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_EWAIT] = {EVENT("wait"), .id = OPS_EWAIT, .takes = BLOCK | TIMEOUT,
                   .reply = OPS_REPLY_FOUND, .reply_code = "timeout",
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    /* a blocked request of the same connection, no longer wanted (6.9) */
    [OPS_EWITHDRAW] = {EVENT("withdraw"), .id = OPS_EWITHDRAW, .needs = OF,
                      .reply = OPS_REPLY_FOUND, .reply_code = "not_waiting",
                      .connection_only = true, .args_min = 0, .args_max = 0, .json_arg = -1},
};
/* clang-format on */

static const char *const kind_names[] = {"dict", "queue", "lock", "event"};
_Static_assert(N_ELEMS(kind_names) == OPS_KIND_COUNT_, "every ops_kind_t has a name");

_Static_assert(N_ELEMS(ops) == OPS_COUNT_, "the op table must have an entry for every ops_id_t");

const ops_desc_t *ops_find(const char *name, size_t len)
{
    if (!name)
        return NULL;
    for (size_t i = OPS_NONE + 1; i < N_ELEMS(ops); i++)
        if (strlen(ops[i].name) == len && memcmp(ops[i].name, name, len) == 0)
            return &ops[i];
    return NULL;
}

const ops_desc_t *ops_get(ops_id_t id)
{
    return id > OPS_NONE && (size_t)id < N_ELEMS(ops) ? &ops[id] : NULL;
}

const ops_desc_t *ops_find_verb(ops_kind_t kind, const char *verb)
{
    for (size_t i = OPS_NONE + 1; verb && i < N_ELEMS(ops); i++)
        if (ops[i].kind == kind && !ops[i].connection_only && strcmp(ops[i].verb, verb) == 0)
            return &ops[i];
    return NULL;
}

const char *ops_kind_name(ops_kind_t kind)
{
    return (size_t)kind < N_ELEMS(kind_names) ? kind_names[kind] : NULL;
}

static int refuse(wire_err_t *err, const char *code, const char *msg)
{
    err->code = code;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    return -EBADMSG;
}

/* "unknown dict op; use get, set, ..., dicts, mget or mset"; for a name that begins with a shared
 * type's kind ("queue.pop"), the ops of that kind: "unknown queue op; use queue.put, ..." */
static int refuse_unknown(const wire_str_t *name, wire_err_t *err)
{
    ops_kind_t kind = OPS_KIND_DICT;
    size_t n, last = 0, first = 0;

    for (ops_kind_t k = OPS_KIND_DICT + 1; k < OPS_KIND_COUNT_; k++) {
        size_t kl = strlen(kind_names[k]);
        if (name->ptr && name->len > kl && memcmp(name->ptr, kind_names[k], kl) == 0 &&
            name->ptr[kl] == '.')
            kind = k;
    }
    for (size_t i = OPS_NONE + 1; i < N_ELEMS(ops); i++)
        if (ops[i].kind == kind) {
            first = first ? first : i;
            last = i;
        }
    n = (size_t)snprintf(err->msg, sizeof(err->msg), "unknown %s op; use ", kind_names[kind]);
    for (size_t i = first; i <= last && n < sizeof(err->msg); i++) {
        const char *sep = i == first ? "" : i == last ? " or " : ", ";
        n += (size_t)snprintf(err->msg + n, sizeof(err->msg) - n, "%s%s", sep, ops[i].name);
    }
    err->code = "bad_op";
    return -EBADMSG;
}

int ops_check_request(const wire_hdr_t *h, const void *value, size_t len, bool has_value,
                      const ops_desc_t **ret_op, wire_err_t *err)
{
    const ops_desc_t *op = ops_find(h->op.ptr, h->op.len);
    bool wants_value;

    if (!op)
        return refuse_unknown(&h->op, err);
    /* the name is checked here, not by the header's decoder, because whether an op needs one
     * is the table's to say; a name that is there was checked by wire.c (bad_field) */
    if (!op->nameless && !h->name.ptr) {
        err->code = "missing_field";
        snprintf(err->msg, sizeof(err->msg),
                 "this %s op needs a 'name': the %s's, 1-64 characters of A-Z a-z 0-9 . _ : -",
                 kind_names[op->kind], kind_names[op->kind]);
        return -EBADMSG;
    }
    if ((op->needs & OPS_F_KEY) &&
        (!h->key.ptr || h->key.len == 0 || memchr(h->key.ptr, '\0', h->key.len)))
        return refuse(err, "missing_field", "this dict op needs a non-empty 'key' without NUL");
    wants_value = (op->needs & OPS_F_VALUE) != 0;
    if (wants_value != has_value) {
        err->code = "bad_frames";
        snprintf(err->msg, sizeof(err->msg), "this %s op %s", kind_names[op->kind],
                 has_value ? "takes no value frame" : "needs one value frame");
        return -EBADMSG;
    }
    /* a stored value goes out again inside an items page, two levels deeper; update's map is
     * one level above its values */
    if (has_value &&
        wire_check(value, len,
                   op->id == OPS_UPDATE || op->id == OPS_MSET ? WIRE_VALUE_DEPTH_MAX + 1
                                                              : WIRE_VALUE_DEPTH_MAX,
                   err) < 0) {
        if (strcmp(err->code, "too_deep") == 0 && op->kind == OPS_KIND_DICT)
            snprintf(err->msg, sizeof(err->msg),
                     "a dict value may nest at most %d levels (an items page wraps it in two "
                     "more); flatten it",
                     WIRE_VALUE_DEPTH_MAX);
        else if (strcmp(err->code, "too_deep") == 0)
            snprintf(err->msg, sizeof(err->msg),
                     "a queue item may nest at most %d levels (forqd may wrap it in two more); "
                     "flatten it",
                     WIRE_VALUE_DEPTH_MAX);
        err->code = "bad_value";
        return -EBADMSG;
    }
    if ((op->needs & OPS_F_VER) && !h->has_ver) {
        err->code = "missing_field";
        snprintf(err->msg, sizeof(err->msg), "%s needs 'ver' (0: the key must not exist)",
                 op->name);
        return -EBADMSG;
    }
    if ((op->needs & OPS_F_TOKEN) && !h->has_token) {
        err->code = "missing_field";
        snprintf(err->msg, sizeof(err->msg),
                 "%s needs 'token': the one lock.acquire gave for this lock", op->name);
        return -EBADMSG;
    }
    if ((op->needs & OPS_F_OF) && (!h->has_of || h->of == 0)) {
        err->code = "missing_field";
        snprintf(err->msg, sizeof(err->msg),
                 "%s needs 'of': the req of the blocked request this connection withdraws",
                 op->name);
        return -EBADMSG;
    }
    if (h->lock.ptr && !(op->takes & OPS_F_FENCE)) {
        err->code = "bad_field";
        snprintf(err->msg, sizeof(err->msg),
                 "%s takes no fence ('lock'): only an op that changes a dict, queue or event "
                 "does",
                 op->name);
        return -EBADMSG;
    }
    if (h->lock.ptr && !h->has_token)
        return refuse(err, "missing_field",
                      "a fence needs both 'lock' and 'token' (the token lock.acquire gave)");
    if (ret_op)
        *ret_op = op;
    return 0;
}
