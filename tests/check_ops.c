/* check_ops.c - the op table (dict ops and the shared types'): lookup, the request check against
 * what forqd's dict service accepts and refuses, and the table against the op lists its adopters
 * hold today. */
#include "ops.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char *const all_names[] = {"get",
                                        "set",
                                        "del",
                                        "has",
                                        "keys",
                                        "items",
                                        "len",
                                        "clear",
                                        "update",
                                        "setdefault",
                                        "pop",
                                        "incr",
                                        "cas",
                                        "wait",
                                        "dicts",
                                        "mget",
                                        "mset",
                                        "queue.put",
                                        "queue.get",
                                        "queue.len",
                                        "queue.range",
                                        "queue.clear",
                                        "lock.acquire",
                                        "lock.release",
                                        "lock.renew",
                                        "event.set",
                                        "event.clear",
                                        "event.wait",
                                        "queue.withdraw",
                                        "lock.withdraw",
                                        "event.withdraw"};

/* forqd's text for an unknown op, as its dict service sends it (the ops in the table's order:
 * mget and mset, the last added, last) */
static const char unknown_text[] =
    "unknown dict op; use get, set, del, has, keys, items, len, "
    "clear, update, setdefault, pop, incr, cas, wait, dicts, mget or mset";

START_TEST(test_every_op_found)
{
    ck_assert_uint_eq(N_ELEMS(all_names), OPS_COUNT_ - 1);
    for (size_t i = 0; i < N_ELEMS(all_names); i++) {
        const ops_desc_t *op = ops_find(all_names[i], strlen(all_names[i]));
        ck_assert_msg(op != NULL, "'%s' not found", all_names[i]);
        ck_assert_str_eq(op->name, all_names[i]);
        ck_assert_ptr_eq(ops_get(op->id), op);
        ck_assert_uint_le(strlen(op->name), WIRE_OP_MAX); /* the header's bound on "op" */
    }
    for (int id = OPS_NONE + 1; id < OPS_COUNT_; id++) {
        const ops_desc_t *op = ops_get((ops_id_t)id);
        ck_assert_ptr_nonnull(op);
        ck_assert_int_eq(op->id, id);
        ck_assert_ptr_eq(ops_find(op->name, strlen(op->name)), op);
    }
    ck_assert_ptr_null(ops_get(OPS_NONE));
    ck_assert_ptr_null(ops_get(OPS_COUNT_));
    ck_assert_ptr_null(ops_get((ops_id_t)-1));
}
END_TEST

START_TEST(test_unknown_names_refused)
{
    static const char *const bad[] = {"",     "g",     "ge",   "gets",      "GET",         "Get",
                                      "dump", "set ",  " set", "setdefaul", "setdefaults", "incrx",
                                      "wai",  "waits", "clea", "ke"};
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        ck_assert_msg(ops_find(bad[i], strlen(bad[i])) == NULL, "'%s' found", bad[i]);
    ck_assert_ptr_null(ops_find(NULL, 0));
    ck_assert_ptr_null(ops_find("get\0", 4));     /* NUL is not the end of a wire string */
    ck_assert_ptr_nonnull(ops_find("getxyz", 3)); /* the length counts, not a terminator */
    ck_assert_ptr_null(ops_find("get", 2));
}
END_TEST

/* ---- the request check ---- */

/* A dict request header for `op` (NULL: none) with the key given (NULL: none). */
static wire_hdr_t request(const char *op, const char *key, size_t klen)
{
    wire_hdr_t h = {.cmd = WIRE_DICT, .op = wire_str(op), .name = wire_str("d")};
    if (key)
        h.key = (wire_str_t){key, klen};
    return h;
}

static const unsigned char one_value[] = {0x01};                  /* msgpack 1 */
static const unsigned char map_value[] = {0x81, 0xa1, 'k', 0x02}; /* {"k": 2} */

/* Check and return the code ("ok" when accepted); the text in *msg. */
static const char *check(const wire_hdr_t *h, bool has_value, const void *v, size_t n,
                         const char **msg)
{
    static wire_err_t err;
    const ops_desc_t *op = NULL;
    int r;

    memset(&err, 0, sizeof(err));
    r = ops_check_request(h, v, n, has_value, &op, &err);
    if (msg)
        *msg = err.msg;
    if (r == 0) {
        ck_assert_ptr_nonnull(op);
        ck_assert(wire_str_eq(h->op, op->name));
        return "ok";
    }
    ck_assert_int_eq(r, -EBADMSG);
    ck_assert_ptr_null(op); /* untouched on failure */
    ck_assert(err.msg[0]);
    return err.code;
}

START_TEST(test_check_accepts_well_formed)
{
    for (int id = OPS_NONE + 1; id < OPS_COUNT_; id++) {
        const ops_desc_t *op = ops_get((ops_id_t)id);
        bool value = op->needs & OPS_F_VALUE;
        wire_hdr_t h = request(op->name, (op->needs & OPS_F_KEY) ? "k" : NULL, 1);
        if (op->needs & OPS_F_VER)
            h.has_ver = true;
        h.has_token = (op->needs & OPS_F_TOKEN) != 0;
        h.has_of = (op->needs & OPS_F_OF) != 0;
        h.of = 7;
        const void *v = id == OPS_UPDATE || id == OPS_MSET ? (const void *)map_value : one_value;
        size_t n = id == OPS_UPDATE || id == OPS_MSET ? sizeof(map_value) : sizeof(one_value);
        ck_assert_msg(strcmp(check(&h, value, value ? v : NULL, value ? n : 0, NULL), "ok") == 0,
                      "%s refused", op->name);
    }
    /* optional fields are optional */
    wire_hdr_t h = request("keys", "cursor", 6);
    h.limit = 5;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h = request("wait", "k", 1);
    h.timeout_ms = 10;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h.has_ver = true;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h = request("incr", "k", 1);
    h.delta = -4;
    h.has_delta = true;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    /* dicts names no dict: with or without a name, a cursor and a limit */
    h = request("dicts", NULL, 0);
    h.name = (wire_str_t){0};
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h.key = wire_str("some-dict");
    h.limit = 2;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h.name = wire_str("ignored");
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
}
END_TEST

/* Every op but dicts needs the dict's name; a nameless request is checked by the table, after
 * the op (wire.c decodes a dict header without one). */
START_TEST(test_check_name_by_table)
{
    const char *msg;
    int nameless = 0;

    for (int id = OPS_NONE + 1; id < OPS_COUNT_; id++) {
        const ops_desc_t *op = ops_get((ops_id_t)id);
        bool value = op->needs & OPS_F_VALUE;
        wire_hdr_t h = request(op->name, (op->needs & OPS_F_KEY) ? "k" : NULL, 1);
        const void *v = id == OPS_UPDATE || id == OPS_MSET ? (const void *)map_value : one_value;
        size_t n = id == OPS_UPDATE || id == OPS_MSET ? sizeof(map_value) : sizeof(one_value);

        h.has_ver = (op->needs & OPS_F_VER) != 0;
        h.has_token = (op->needs & OPS_F_TOKEN) != 0;
        h.name = (wire_str_t){0};
        const char *code = check(&h, value, value ? v : NULL, value ? n : 0, &msg);
        if (op->nameless) {
            ck_assert_msg(strcmp(code, "ok") == 0, "%s refused without a name", op->name);
            nameless++;
            continue;
        }
        ck_assert_msg(strcmp(code, "missing_field") == 0, "%s without a name: %s", op->name, code);
        ck_assert_ptr_nonnull(strstr(msg, "'name'"));
    }
    ck_assert_int_eq(nameless, 1);
    ck_assert(ops_find("dicts", 5)->nameless);
    /* the op first: an unknown op without a name is bad_op */
    wire_hdr_t h = request("nope", NULL, 0);
    h.name = (wire_str_t){0};
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "bad_op");
}
END_TEST

START_TEST(test_check_refuses_as_forqd_does)
{
    const char *msg;
    wire_hdr_t h;

    h = request("nope", "k", 1);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, unknown_text);
    h = request(NULL, "k", 1);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, unknown_text);

    h = request("get", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "missing_field");
    ck_assert_str_eq(msg, "this dict op needs a non-empty 'key' without NUL");
    h = request("get", "", 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "missing_field");
    h = request("del", "a\0b", 3);
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "missing_field");

    h = request("set", "k", 1);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_frames");
    ck_assert_str_eq(msg, "this dict op needs one value frame");
    h = request("len", NULL, 0);
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), &msg), "bad_frames");
    ck_assert_str_eq(msg, "this dict op takes no value frame");

    /* a value frame that is not one msgpack value: wire_check's own words */
    static const unsigned char two[] = {0x01, 0x02};
    wire_err_t werr;
    ck_assert_int_lt(wire_check(two, sizeof(two), WIRE_DEPTH_MAX, &werr), 0);
    h = request("set", "k", 1);
    ck_assert_str_eq(check(&h, true, two, sizeof(two), &msg), "bad_value");
    ck_assert_str_eq(msg, werr.msg);
    ck_assert_str_eq(check(&h, true, "", 0, &msg), "bad_value"); /* an empty frame */

    h = request("cas", "k", 1);
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), &msg), "missing_field");
    ck_assert_str_eq(msg, "cas needs 'ver' (0: the key must not exist)");
    h.has_ver = true; /* ver 0: the key must not exist */
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), NULL), "ok");

    /* the order forqd checks in: key, frames, value, ver */
    h = request("cas", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "missing_field");
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "missing_field");
    ck_assert_ptr_nonnull(strstr(msg, "'key'"));
    h = request("cas", "k", 1);
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "bad_frames");
    ck_assert_str_eq(check(&h, true, two, sizeof(two), NULL), "bad_value");
}
END_TEST

/* The shared types' ops: the same check, with their own words where a dict's would mislead. */
START_TEST(test_check_shared_types)
{
    const char *msg;
    wire_hdr_t h;

    /* an unknown op of a kind lists that kind's ops; any other name, the dict ops */
    h = request("queue.pop", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, "unknown queue op; use queue.put, queue.get, queue.len, queue.range, "
                          "queue.clear or queue.withdraw");
    h = request("lock.", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, "unknown lock op; use lock.acquire, lock.release, lock.renew or "
                          "lock.withdraw");
    h = request("event.fire", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, "unknown event op; use event.set, event.clear, event.wait or "
                          "event.withdraw");
    h = request("queue", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_op");
    ck_assert_str_eq(msg, unknown_text);

    /* a withdraw names the request it takes back */
    h = request("lock.withdraw", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "missing_field");
    ck_assert_str_eq(msg, "lock.withdraw needs 'of': the req of the blocked request this "
                          "connection withdraws");
    h.has_of = true; /* of: 0 is no req */
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "missing_field");
    h.of = 3;
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    ck_assert_ptr_null(ops_find_verb(OPS_KIND_QUEUE, "withdraw"));

    /* names: the kind's */
    h = request("queue.get", NULL, 0);
    h.name = (wire_str_t){0};
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "missing_field");
    ck_assert_ptr_nonnull(strstr(msg, "this queue op needs a 'name': the queue's"));
    /* a put carries its item; nothing else does */
    h = request("queue.put", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_frames");
    ck_assert_str_eq(msg, "this queue op needs one value frame");
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), NULL), "ok");
    h = request("event.set", NULL, 0);
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), &msg), "bad_frames");
    ck_assert_str_eq(msg, "this event op takes no value frame");
    /* an item nested too deep for a range page */
    unsigned char deep[40];
    memset(deep, 0x91, sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = 0x01;
    h = request("queue.put", NULL, 0);
    ck_assert_str_eq(check(&h, true, deep, sizeof(deep), &msg), "bad_value");
    ck_assert_ptr_nonnull(strstr(msg, "a queue item may nest at most 30 levels"));

    /* release and renew name the grant by its token */
    h = request("lock.release", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "missing_field");
    ck_assert_str_eq(msg, "lock.release needs 'token': the one lock.acquire gave for this lock");
    h.has_token = true; /* token 0 is a token like any other (that no grant has) */
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    h = request("lock.renew", NULL, 0);
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "missing_field");

    /* a fence: lock and token together, on a change */
    h = request("set", "k", 1);
    h.lock = wire_str("L");
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), &msg), "missing_field");
    ck_assert_ptr_nonnull(strstr(msg, "a fence needs both 'lock' and 'token'"));
    h.token = 7;
    h.has_token = true;
    ck_assert_str_eq(check(&h, true, one_value, sizeof(one_value), NULL), "ok");
    h.op = wire_str("queue.get");
    ck_assert_str_eq(check(&h, false, NULL, 0, NULL), "ok");
    /* a read, or a lock's own op, takes no fence: refused, never silently ignored */
    static const char *const unfenced[] = {"get",          "len",         "wait",
                                           "queue.len",    "queue.range", "event.wait",
                                           "lock.acquire", "lock.renew"};
    for (size_t i = 0; i < N_ELEMS(unfenced); i++) {
        h = request(unfenced[i], "k", 1);
        h.lock = wire_str("L");
        h.has_token = true;
        if (!(ops_find(unfenced[i], strlen(unfenced[i]))->needs & OPS_F_KEY))
            h.key = (wire_str_t){0};
        ck_assert_str_eq(check(&h, false, NULL, 0, &msg), "bad_field");
        ck_assert_msg(strstr(msg, "takes no fence") != NULL, "%s: %s", unfenced[i], msg);
    }

    /* the kinds and the CLI's words */
    ck_assert_str_eq(ops_kind_name(OPS_KIND_QUEUE), "queue");
    ck_assert_ptr_null(ops_kind_name(OPS_KIND_COUNT_));
    ck_assert_ptr_eq(ops_find_verb(OPS_KIND_LOCK, "acquire"), ops_get(OPS_LACQUIRE));
    ck_assert_ptr_eq(ops_find_verb(OPS_KIND_DICT, "get"), ops_get(OPS_GET));
    ck_assert_ptr_null(ops_find_verb(OPS_KIND_QUEUE, "acquire"));
    ck_assert_ptr_null(ops_find_verb(OPS_KIND_QUEUE, NULL));
}
END_TEST

/* The broker's check as its dict service wrote it before the table (table and all): the
 * behaviour ops_check_request() must keep. */
typedef enum { NEEDS_NOTHING, NEEDS_KEY, NEEDS_KEY_VALUE, NEEDS_VALUE } needs_t;

static const struct {
    const char *op;
    needs_t needs;
} broker_ops[] = {
    {"get", NEEDS_KEY},       {"set", NEEDS_KEY_VALUE},
    {"del", NEEDS_KEY},       {"has", NEEDS_KEY},
    {"keys", NEEDS_NOTHING},  {"items", NEEDS_NOTHING},
    {"len", NEEDS_NOTHING},   {"clear", NEEDS_NOTHING},
    {"update", NEEDS_VALUE},  {"setdefault", NEEDS_KEY_VALUE},
    {"pop", NEEDS_KEY},       {"incr", NEEDS_KEY},
    {"cas", NEEDS_KEY_VALUE}, {"wait", NEEDS_KEY},
    {"dicts", NEEDS_NOTHING}, /* added with the table, as keys */
};

static const char *broker_check(const wire_hdr_t *h, const void *payload, size_t plen,
                                bool has_payload)
{
    const char *op = NULL;
    needs_t needs = NEEDS_NOTHING;
    wire_err_t werr;

    for (size_t i = 0; i < N_ELEMS(broker_ops); i++)
        if (wire_str_eq(h->op, broker_ops[i].op)) {
            op = broker_ops[i].op;
            needs = broker_ops[i].needs;
        }
    if (!op)
        return "bad_op";
    if ((needs == NEEDS_KEY || needs == NEEDS_KEY_VALUE) &&
        (!h->key.ptr || h->key.len == 0 || memchr(h->key.ptr, '\0', h->key.len)))
        return "missing_field";
    if ((needs == NEEDS_KEY_VALUE || needs == NEEDS_VALUE) != has_payload)
        return "bad_frames";
    if (has_payload && wire_check(payload, plen, WIRE_DEPTH_MAX, &werr) < 0)
        return "bad_value";
    if (strcmp(op, "cas") == 0 && !h->has_ver)
        return "missing_field";
    return "ok";
}

/* Every op name (and some that are not) x key x value frame x ver: the same verdict. */
START_TEST(test_check_matches_broker)
{
    static const char *const names[] = {
        "get", "set",  "del", "has",  "keys",  "items", "len", "clear", "update", "setdefault",
        "pop", "incr", "cas", "wait", "dicts", "dump",  "GET", "",      NULL};
    static const struct {
        const char *key;
        size_t len;
    } keys[] = {{NULL, 0}, {"", 0}, {"k", 1}, {"a\0b", 3}, {"some key: text", 14}};
    static const unsigned char bad[] = {0x92, 0x01};
    static const struct {
        const void *v;
        size_t n;
        bool has;
    } values[] = {{NULL, 0, false},
                  {one_value, sizeof(one_value), true},
                  {map_value, sizeof(map_value), true},
                  {bad, sizeof(bad), true},
                  {"", 0, true}};
    int accepted = 0, cases = 0;

    for (size_t n = 0; n < N_ELEMS(names); n++)
        for (size_t k = 0; k < N_ELEMS(keys); k++)
            for (size_t v = 0; v < N_ELEMS(values); v++)
                for (int ver = 0; ver < 2; ver++) {
                    wire_hdr_t h = request(names[n], keys[k].key, keys[k].len);
                    h.has_ver = ver;
                    const char *want = broker_check(&h, values[v].v, values[v].n, values[v].has);
                    const char *got = check(&h, values[v].has, values[v].v, values[v].n, NULL);
                    ck_assert_msg(strcmp(want, got) == 0,
                                  "op %s key %zu value %zu ver %d: %s, not %s",
                                  names[n] ? names[n] : "(none)", k, v, ver, got, want);
                    accepted += strcmp(got, "ok") == 0;
                    cases++;
                }
    ck_assert_int_gt(accepted, 0);
    ck_assert_int_lt(accepted, cases);
}
END_TEST

/* ---- the table against the lists its adopters held before it replaced them ---- */

START_TEST(test_table_matches_adopters)
{
    /* the CLI's forq dict: operands after NAME ("dump" is the CLI's own, over items) */
    static const struct {
        const char *op;
        int min, max;
    } cli[] = {{"get", 1, 1},
               {"set", 2, 2},
               {"del", 1, 1},
               {"has", 1, 1},
               {"pop", 1, 1},
               {"setdefault", 2, 2},
               {"incr", 1, 2},
               {"cas", 3, 3},
               {"wait", 1, 1},
               {"len", 0, 0},
               {"clear", 0, 0},
               {"update", 1, 1},
               {"keys", 0, 0},
               {"items", 0, 0},
               {"dicts", 0, 0},
               {"mget", 1, 255},
               {"mset", 1, 1},
               /* forq queue/lock/event VERB NAME ...: put VALUE, release/renew TOKEN */
               {"queue.put", 1, 1},
               {"queue.get", 0, 0},
               {"queue.len", 0, 0},
               {"queue.range", 0, 0},
               {"queue.clear", 0, 0},
               {"lock.acquire", 0, 0},
               {"lock.release", 1, 1},
               {"lock.renew", 1, 1},
               {"event.set", 0, 0},
               {"event.clear", 0, 0},
               {"event.wait", 0, 0},
               /* no CLI verb (connection_only): a CLI run has no blocked request to withdraw */
               {"queue.withdraw", 0, 0},
               {"lock.withdraw", 0, 0},
               {"event.withdraw", 0, 0}};
    /* libforq's forq_dict_submit: the ops that need a key */
    static const char *const key_ops[] = {"get", "set",  "del", "has", "setdefault",
                                          "pop", "incr", "cas", "wait"};
    /* the task context: found:false is FORQ_TASK_DICT_NOT_FOUND for these */
    static const char *const not_found[] = {"get",       "del",          "pop",       "wait",
                                            "queue.get", "lock.release", "lock.renew"};
    /* the dict service: the ops that keep pre-images to undo (clear: the whole dict); and the
     * shared types' that change something (the write right, PROTOCOL.md 2.2) */
    static const char *const mutating[] = {
        "set",          "del",          "clear",      "update",    "mset",       "setdefault",
        "pop",          "incr",         "cas",        "queue.put", "queue.get",  "queue.clear",
        "lock.acquire", "lock.release", "lock.renew", "event.set", "event.clear"};

    ck_assert_uint_eq(N_ELEMS(cli), OPS_COUNT_ - 1);
    for (size_t i = 0; i < N_ELEMS(cli); i++) {
        const ops_desc_t *op = ops_find(cli[i].op, strlen(cli[i].op));
        ck_assert_ptr_nonnull(op);
        ck_assert_int_eq(op->args_min, cli[i].min);
        ck_assert_int_eq(op->args_max, cli[i].max);
        ck_assert_int_lt(op->json_arg, (op->args_min > 0 ? op->args_min : 1));
    }
    for (int id = OPS_NONE + 1; id < OPS_COUNT_; id++) {
        const ops_desc_t *op = ops_get((ops_id_t)id);
        bool in_key = false, in_nf = false, in_mut = false;
        for (size_t i = 0; i < N_ELEMS(key_ops); i++)
            in_key |= strcmp(key_ops[i], op->name) == 0;
        for (size_t i = 0; i < N_ELEMS(not_found); i++)
            in_nf |= strcmp(not_found[i], op->name) == 0;
        for (size_t i = 0; i < N_ELEMS(mutating); i++)
            in_mut |= strcmp(mutating[i], op->name) == 0;
        ck_assert_msg(in_key == ((op->needs & OPS_F_KEY) != 0), "%s: key", op->name);
        ck_assert_msg(in_nf == op->absent_is_not_found, "%s: not found", op->name);
        ck_assert_msg(in_mut == op->mutates, "%s: mutates", op->name);
        /* a field is needed or optional, not both */
        ck_assert_uint_eq(op->needs & op->takes, 0);
        /* every change but a lock's own can be fenced; no read can */
        ck_assert_msg(((op->takes & OPS_F_FENCE) != 0) ==
                          (op->mutates && op->kind != OPS_KIND_LOCK),
                      "%s: fence", op->name);
        /* the name is the kind's, then the verb; the verb finds it back (the CLI's, so not a
         * connection_only op's) */
        ck_assert_ptr_eq(ops_find_verb(op->kind, op->verb), op->connection_only ? NULL : op);
        if (op->kind != OPS_KIND_DICT) {
            char full[WIRE_OP_MAX + 1];
            snprintf(full, sizeof(full), "%s.%s", ops_kind_name(op->kind), op->verb);
            ck_assert_str_eq(op->name, full);
        }
    }
    /* the CLI's JSON operand: set/setdefault VALUE, cas VALUE, update MAP */
    ck_assert_int_eq(ops_find("set", 3)->json_arg, 1);
    ck_assert_int_eq(ops_find("setdefault", 10)->json_arg, 1);
    ck_assert_int_eq(ops_find("cas", 3)->json_arg, 2);
    ck_assert_int_eq(ops_find("update", 6)->json_arg, 0);
    /* what the client and task context put in the header */
    ck_assert_uint_eq(ops_find("incr", 4)->takes, OPS_F_DELTA | OPS_F_FENCE);
    ck_assert(ops_find("cas", 3)->needs & OPS_F_VER);
    ck_assert(ops_find("wait", 4)->takes & OPS_F_VER);
    ck_assert(ops_find("wait", 4)->takes & OPS_F_TIMEOUT);
    ck_assert(ops_find("keys", 4)->takes & OPS_F_LIMIT);
    /* what the reply means */
    ck_assert_int_eq(ops_find("len", 3)->reply, OPS_REPLY_COUNT);
    ck_assert_int_eq(ops_find("clear", 5)->reply, OPS_REPLY_COUNT);
    ck_assert_int_eq(ops_find("incr", 4)->reply, OPS_REPLY_INT);
    ck_assert_int_eq(ops_find("items", 5)->reply, OPS_REPLY_PAGE);
    ck_assert_int_eq(ops_find("dicts", 5)->reply, OPS_REPLY_PAGE);
    ck_assert_uint_eq(ops_find("dicts", 5)->takes, OPS_F_KEY | OPS_F_LIMIT);
    ck_assert_int_eq(ops_find("has", 3)->reply, OPS_REPLY_FOUND);
    ck_assert_int_eq(ops_find("get", 3)->reply, OPS_REPLY_VALUE);
    ck_assert_str_eq(ops_find("cas", 3)->reply_code, "conflict");
    ck_assert_str_eq(ops_find("wait", 4)->reply_code, "timeout");
    ck_assert_ptr_null(ops_find("get", 3)->reply_code);
    ck_assert(!ops_find("del", 3)->reply_has_ver);
    ck_assert(!ops_find("len", 3)->reply_has_ver);
    ck_assert(ops_find("set", 3)->reply_has_ver);
}
END_TEST

/* A request built from the table goes through the header codec and passes the check. */
START_TEST(test_request_through_the_codec)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    for (int id = OPS_NONE + 1; id < OPS_COUNT_; id++) {
        const ops_desc_t *op = ops_get((ops_id_t)id);
        wire_hdr_t h = request(op->name, (op->needs & OPS_F_KEY) ? "key" : NULL, 3), d;
        wire_err_t err;
        msgpack_sbuffer sb;
        bool value = op->needs & OPS_F_VALUE;

        h.has_ver = (op->needs & OPS_F_VER) != 0;
        h.has_token = (op->needs & OPS_F_TOKEN) != 0;
        h.has_of = (op->needs & OPS_F_OF) != 0;
        h.of = h.has_of ? 9 : 0;
        if (op->nameless)
            h.name = (wire_str_t){0};
        msgpack_sbuffer_init(&sb);
        ck_assert_int_eq(wire_hdr_encode(&sb, &h), 0);
        ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
        ck_assert_msg(ops_check_request(&d,
                                        id == OPS_UPDATE || id == OPS_MSET ? map_value : one_value,
                                        id == OPS_UPDATE || id == OPS_MSET ? sizeof(map_value)
                                                                           : sizeof(one_value),
                                        value, NULL, &err) == 0,
                      "%s: %s", op->name, err.msg);
        msgpack_sbuffer_destroy(&sb);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_every_op_found);
    tcase_add_test(tc, test_unknown_names_refused);
    tcase_add_test(tc, test_check_accepts_well_formed);
    tcase_add_test(tc, test_check_refuses_as_forqd_does);
    tcase_add_test(tc, test_check_name_by_table);
    tcase_add_test(tc, test_check_shared_types);
    tcase_add_test(tc, test_check_matches_broker);
    tcase_add_test(tc, test_table_matches_adopters);
    tcase_add_test(tc, test_request_through_the_codec);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ops_suite());
}
