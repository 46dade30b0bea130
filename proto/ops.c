/* ops.c - the dict op table and the check of a dict request against it.
 *
 * The table is indexed by ops_id_t, so ops_get() is an array access and ops_find() a short
 * scan (15 entries); a _Static_assert keeps the table as long as the enum, and check_ops tests
 * that every entry's id is its index. The text refusing an unknown op lists the ops from the
 * table, so it names a new op by itself, in the order forqd has always named them. */
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

/* The order is the one forqd's unknown-op message has always listed them in. */
/* clang-format off */
static const ops_desc_t ops[] = {
    [OPS_GET] = {.name = "get", .id = OPS_GET, .needs = KEY, .reply = OPS_REPLY_VALUE,
                 .reply_has_ver = true, .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_SET] = {.name = "set", .id = OPS_SET, .needs = KEY | VALUE, .reply = OPS_REPLY_VERSION,
                 .mutates = true, .reply_has_ver = true,
                 .args_min = 2, .args_max = 2, .json_arg = 1},
    [OPS_DEL] = {.name = "del", .id = OPS_DEL, .needs = KEY, .reply = OPS_REPLY_FOUND,
                 .mutates = true, .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_HAS] = {.name = "has", .id = OPS_HAS, .needs = KEY, .reply = OPS_REPLY_FOUND,
                 .reply_has_ver = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_KEYS] = {.name = "keys", .id = OPS_KEYS, .takes = KEY | LIMIT, .reply = OPS_REPLY_PAGE,
                  .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_ITEMS] = {.name = "items", .id = OPS_ITEMS, .takes = KEY | LIMIT,
                   .reply = OPS_REPLY_PAGE,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_LEN] = {.name = "len", .id = OPS_LEN, .reply = OPS_REPLY_COUNT,
                 .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_CLEAR] = {.name = "clear", .id = OPS_CLEAR, .reply = OPS_REPLY_COUNT, .mutates = true,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
    [OPS_UPDATE] = {.name = "update", .id = OPS_UPDATE, .needs = VALUE,
                    .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                    .args_min = 1, .args_max = 1, .json_arg = 0},
    [OPS_SETDEFAULT] = {.name = "setdefault", .id = OPS_SETDEFAULT, .needs = KEY | VALUE,
                        .reply = OPS_REPLY_VALUE, .mutates = true, .reply_has_ver = true,
                        .args_min = 2, .args_max = 2, .json_arg = 1},
    [OPS_POP] = {.name = "pop", .id = OPS_POP, .needs = KEY, .reply = OPS_REPLY_VALUE,
                 .mutates = true, .reply_has_ver = true, .absent_is_not_found = true,
                 .args_min = 1, .args_max = 1, .json_arg = -1},
    [OPS_INCR] = {.name = "incr", .id = OPS_INCR, .needs = KEY, .takes = DELTA,
                  .reply = OPS_REPLY_INT, .mutates = true, .reply_has_ver = true,
                  .args_min = 1, .args_max = 2, .json_arg = -1},
    [OPS_CAS] = {.name = "cas", .id = OPS_CAS, .needs = KEY | VALUE | VER,
                 .reply = OPS_REPLY_VERSION, .mutates = true, .reply_has_ver = true,
                 .reply_code = "conflict",
                 .args_min = 3, .args_max = 3, .json_arg = 2},
    [OPS_WAIT] = {.name = "wait", .id = OPS_WAIT, .needs = KEY, .takes = VER | TIMEOUT,
                  .reply = OPS_REPLY_VALUE, .reply_has_ver = true, .absent_is_not_found = true,
                  .reply_code = "timeout",
                  .args_min = 1, .args_max = 1, .json_arg = -1},
    /* the CLI's `forq dict list` takes no NAME: its operand counts are those after the op */
    [OPS_DICTS] = {.name = "dicts", .id = OPS_DICTS, .nameless = true, .takes = KEY | LIMIT,
                   .reply = OPS_REPLY_PAGE,
                   .args_min = 0, .args_max = 0, .json_arg = -1},
};
/* clang-format on */

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

static int refuse(wire_err_t *err, const char *code, const char *msg)
{
    err->code = code;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    return -EBADMSG;
}

/* "unknown dict op; use get, set, ..., cas or wait" */
static int refuse_unknown(wire_err_t *err)
{
    size_t n = (size_t)snprintf(err->msg, sizeof(err->msg), "unknown dict op; use ");

    for (size_t i = OPS_NONE + 1; i < N_ELEMS(ops) && n < sizeof(err->msg); i++) {
        const char *sep = i == OPS_NONE + 1 ? "" : i + 1 == N_ELEMS(ops) ? " or " : ", ";
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
        return refuse_unknown(err);
    /* the name is checked here, not by the header's decoder, because whether an op needs one
     * is the table's to say; a name that is there was checked by wire.c (bad_field) */
    if (!op->nameless && !h->name.ptr)
        return refuse(err, "missing_field",
                      "this dict op needs a 'name': the dict's, 1-64 characters of A-Z a-z 0-9 "
                      ". _ : -");
    if ((op->needs & OPS_F_KEY) &&
        (!h->key.ptr || h->key.len == 0 || memchr(h->key.ptr, '\0', h->key.len)))
        return refuse(err, "missing_field", "this dict op needs a non-empty 'key' without NUL");
    wants_value = (op->needs & OPS_F_VALUE) != 0;
    if (wants_value != has_value)
        return refuse(err, "bad_frames",
                      has_value ? "this dict op takes no value frame"
                                : "this dict op needs one value frame");
    /* a stored value goes out again inside an items page, two levels deeper; update's map is
     * one level above its values */
    if (has_value &&
        wire_check(value, len,
                   op->id == OPS_UPDATE ? WIRE_VALUE_DEPTH_MAX + 1 : WIRE_VALUE_DEPTH_MAX,
                   err) < 0) {
        if (strcmp(err->code, "too_deep") == 0)
            snprintf(err->msg, sizeof(err->msg),
                     "a dict value may nest at most %d levels (an items page wraps it in two "
                     "more); flatten it",
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
    if (ret_op)
        *ret_op = op;
    return 0;
}
