/* check_dictlist.c - end to end, listing the dicts (the dict op `dicts`, forq_dict_list): an
 * empty service, the order and key counts over several pages, dicts created and emptied between
 * pages, the protocol's fields from a raw peer (no name, a cursor that is no dict, the limits),
 * the asynchronous form, and a restart from the log. Rights (a CURVE client sees only what it
 * may read) are in check_auth.c, the CLI's `forq dict list` in check_cli_cmds.c. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static forqd_t d;
static forq_client_t *c;

#define T (test_ms(5000))

/* Store n keys in dict `name`. */
static void fill(const char *name, int n)
{
    char key[32];

    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(forq_dict_set(c, name, key, "\x01", 1, T, NULL), FORQ_OK);
    }
}

/* One page as "name:keys," text; the page's length and the next cursor (caller frees). */
static size_t page(const char *after, size_t limit, char *out, size_t size, char **ret_next)
{
    void *data = NULL;
    size_t len = 0, off = 0, n;
    msgpack_zone zone;
    msgpack_object o;
    forq_err_t e = forq_dict_list(c, after, limit, T, &data, &len, ret_next);

    ck_assert_msg(e == FORQ_OK, "forq_dict_list: %s: %s", forq_strerror(e), forq_errdetail());
    msgpack_zone_init(&zone, 4096);
    ck_assert_int_eq(msgpack_unpack(data, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    out[0] = '\0';
    for (uint32_t i = 0; i < o.via.array.size; i++) {
        const msgpack_object *p = &o.via.array.ptr[i];
        ck_assert_int_eq(p->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(p->via.array.size, 2);
        ck_assert_int_eq(p->via.array.ptr[0].type, MSGPACK_OBJECT_STR);
        ck_assert_int_eq(p->via.array.ptr[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        size_t at = strlen(out);
        snprintf(out + at, size - at, "%.*s:%llu,", (int)p->via.array.ptr[0].via.str.size,
                 p->via.array.ptr[0].via.str.ptr, (unsigned long long)p->via.array.ptr[1].via.u64);
    }
    n = o.via.array.size;
    msgpack_zone_destroy(&zone);
    free(data);
    return n;
}

START_TEST(test_empty_and_pages)
{
    /* created out of name order, with 1..7 keys each */
    static const char *const names[] = {"q", "b.2", "zeta", "a", "b", "m:x", "a-1", "b.10"};
    char out[4096], all[4096] = "", *next = NULL, *after = NULL;
    int pages = 0;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_uint_eq(page(NULL, 0, out, sizeof(out), &next), 0);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_null(next);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        fill(names[i], (int)i % 7 + 1);
    /* byte order: '-' < '.' < ':' < letters; "b" before "b.10" before "b.2" */
    ck_assert_uint_eq(page(NULL, 0, out, sizeof(out), &next), 8);
    ck_assert_str_eq(out, "a:4,a-1:7,b:5,b.10:1,b.2:2,m:x:6,q:1,zeta:3,");
    ck_assert_ptr_null(next);
    /* pages of 3: the cursor each page gives; the last page has none */
    do {
        size_t n = page(after, 3, out, sizeof(out), &next);
        ck_assert_uint_le(n, 3);
        strcat(all, out);
        free(after);
        after = next;
        pages++;
    } while (after);
    ck_assert_int_eq(pages, 3);
    ck_assert_str_eq(all, "a:4,a-1:7,b:5,b.10:1,b.2:2,m:x:6,q:1,zeta:3,");
    /* exactly 3 left after "b.2": no empty fourth page */
    ck_assert_uint_eq(page("b.2", 3, out, sizeof(out), &next), 3);
    ck_assert_ptr_null(next);
    /* an emptied dict is gone from the list; stats counts the same dicts */
    size_t removed;
    ck_assert_int_eq(forq_dict_clear(c, "m:x", T, &removed), FORQ_OK);
    ck_assert_int_eq(forq_dict_del(c, "q", "k0", T), FORQ_OK);
    ck_assert_uint_eq(page(NULL, 0, out, sizeof(out), &next), 6);
    ck_assert_str_eq(out, "a:4,a-1:7,b:5,b.10:1,b.2:2,zeta:3,");
    ck_assert_int_eq(stat_of(c, "dicts"), 6);
    /* local errors: a cursor that cannot be one, no place for the page */
    void *data;
    size_t len;
    ck_assert_int_eq(forq_dict_list(c, "", 0, T, &data, &len, NULL), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_dict_list(c, NULL, 0, T, NULL, &len, NULL), FORQ_ERR_INVALID);
    e2e_down(&d, &c);
}
END_TEST

/* Paging resumes whatever changes between pages: the cursor's own dict emptied, dicts created
 * before and after it, one after it emptied. */
START_TEST(test_changes_between_pages)
{
    char out[4096], *next = NULL, *after;

    e2e_up(&d, &c, 1, NULL);
    fill("d1", 1);
    fill("d2", 2);
    fill("d3", 3);
    fill("d4", 4);
    fill("d5", 5);
    ck_assert_uint_eq(page(NULL, 2, out, sizeof(out), &next), 2);
    ck_assert_str_eq(out, "d1:1,d2:2,");
    ck_assert_str_eq(next, "d2");
    after = next;
    ck_assert_int_eq(forq_dict_clear(c, "d2", T, NULL), FORQ_OK); /* the cursor's dict */
    fill("d0", 1);                                                /* before the cursor */
    fill("d2x", 1);                                               /* right after it */
    ck_assert_int_eq(forq_dict_clear(c, "d4", T, NULL), FORQ_OK); /* ahead */
    fill("d9", 9);                                                /* at the end */
    ck_assert_uint_eq(page(after, 2, out, sizeof(out), &next), 2);
    ck_assert_str_eq(out, "d2x:1,d3:3,");
    free(after);
    after = next;
    ck_assert_uint_eq(page(after, 2, out, sizeof(out), &next), 2);
    ck_assert_str_eq(out, "d5:5,d9:9,");
    ck_assert_ptr_null(next);
    free(after);
    /* a cursor that never was a dict is a place in the order too */
    ck_assert_uint_eq(page("d4", 0, out, sizeof(out), &next), 2);
    ck_assert_str_eq(out, "d5:5,d9:9,");
    ck_assert_uint_eq(page("zzz", 0, out, sizeof(out), &next), 0);
    ck_assert_ptr_null(next);
    e2e_down(&d, &c);
}
END_TEST

/* The request and reply fields, from a peer that speaks the protocol itself. */
static void raw_call(void *s, const wire_hdr_t *h, msgpack_zone *zone, char *buf, size_t size,
                     wire_hdr_t *r, msgpack_object *value)
{
    static char frame[1 << 20];
    msgpack_sbuffer sb;
    wire_err_t err;
    int more = 0, len, vlen;
    size_t ms = sizeof(more), off = 0;

    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(wire_hdr_encode(&sb, h), 0);
    ck_assert_int_eq(zmq_send(s, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
    len = zmq_recv(s, buf, size, 0);
    ck_assert_int_gt(len, 0);
    msgpack_zone_clear(zone);
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, zone, r, &err), 0);
    value->type = MSGPACK_OBJECT_NIL;
    ck_assert_int_eq(zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ms), 0);
    if (!more)
        return;
    vlen = zmq_recv(s, frame, sizeof(frame), 0);
    ck_assert_int_ge(vlen, 0);
    ck_assert_int_le(vlen, (int)sizeof(frame));
    ck_assert_int_eq(msgpack_unpack(frame, (size_t)vlen, &off, zone, value),
                     MSGPACK_UNPACK_SUCCESS);
}

START_TEST(test_protocol_fields)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int tmo = test_ms(5000), zero = 0;
    char buf[WIRE_HEADER_MAX];
    msgpack_zone zone;
    msgpack_object v;
    wire_hdr_t r;

    e2e_up(&d, &c, 1, NULL);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_connect(s, d.endpoint), 0);
    msgpack_zone_init(&zone, 4096);

    /* an empty service: the value frame is there, an empty array; no count, more or key */
    wire_hdr_t h = {.cmd = WIRE_DICT, .op = wire_str("dicts"), .req = 1, .has_req = true};
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_int_eq(r.cmd, WIRE_DICT_REPLY);
    ck_assert_uint_eq(r.req, 1);
    ck_assert(!r.found && !r.more && r.count == 0 && !r.key.ptr);
    ck_assert_int_eq(v.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(v.via.array.size, 0);

    /* 10,001 dicts of one key: limit 0 is 1000, a limit over 10,000 is 10,000 */
    enum { N = 10001 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "n%05d", i);
        ck_assert_int_eq(forq_dict_set(c, name, "k", "\xc3", 1, T, NULL), FORQ_OK);
    }
    h.req = 2;
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_uint_eq(r.count, 1000);
    ck_assert(r.more);
    ck_assert(wire_str_eq(r.key, "n00999"));
    ck_assert_uint_eq(v.via.array.size, 1000);
    h.limit = 1000000;
    h.req = 3;
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_uint_eq(r.count, 10000);
    ck_assert(r.more);
    ck_assert(wire_str_eq(r.key, "n09999"));
    /* the last page: neither more nor key */
    h.key = wire_str("n09999");
    h.req = 4;
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_uint_eq(r.count, 1);
    ck_assert(!r.more && !r.key.ptr);
    const msgpack_object *p = v.via.array.ptr[0].via.array.ptr;
    ck_assert(p[0].via.str.size == 6 && memcmp(p[0].via.str.ptr, "n10000", 6) == 0);
    ck_assert_uint_eq(p[1].via.u64, 1);

    /* a name sent along is checked, then ignored */
    h = (wire_hdr_t){.cmd = WIRE_DICT,
                     .op = wire_str("dicts"),
                     .name = wire_str("n00000"),
                     .key = wire_str("n09998"),
                     .req = 5,
                     .has_req = true};
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_int_eq(r.cmd, WIRE_DICT_REPLY);
    ck_assert_uint_eq(r.count, 2);
    h.name = wire_str("bad name");
    h.req = 6;
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_int_eq(r.cmd, WIRE_ERROR);
    ck_assert(wire_str_eq(r.code, "bad_field"));
    /* every other op still needs the name: refused after the op is known */
    h = (wire_hdr_t){.cmd = WIRE_DICT, .op = wire_str("len"), .req = 7, .has_req = true};
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert_int_eq(r.cmd, WIRE_ERROR);
    ck_assert(wire_str_eq(r.code, "missing_field"));
    ck_assert_uint_eq(r.req, 7);
    h.op = wire_str("lists");
    h.req = 8;
    raw_call(s, &h, &zone, buf, sizeof(buf), &r, &v);
    ck_assert(wire_str_eq(r.code, "bad_op"));
    ck_assert_msg(memmem(r.msg.ptr, r.msg.len, "dicts, mget or mset", 19), "%.*s", (int)r.msg.len,
                  r.msg.ptr);
    /* dicts takes no value frame */
    h = (wire_hdr_t){.cmd = WIRE_DICT, .op = wire_str("dicts"), .req = 9, .has_req = true};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(wire_hdr_encode(&sb, &h), 0);
    ck_assert_int_eq(zmq_send(s, sb.data, sb.size, ZMQ_SNDMORE), (int)sb.size);
    ck_assert_int_eq(zmq_send(s, "\x01", 1, 0), 1);
    msgpack_sbuffer_destroy(&sb);
    int len = zmq_recv(s, buf, sizeof(buf), 0);
    wire_err_t err;
    ck_assert_int_gt(len, 0);
    msgpack_zone_clear(&zone);
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, &zone, &r, &err), 0);
    ck_assert(wire_str_eq(r.code, "bad_frames"));

    msgpack_zone_destroy(&zone);
    zmq_close(s);
    zmq_ctx_term(ctx);
    e2e_down(&d, &c);
}
END_TEST

/* forq_dict_submit with op "dicts": no name needed; the page is the future's result. */
START_TEST(test_async)
{
    forq_dict_op_t op;
    forq_future_t *f = NULL;
    uint64_t count = 0;
    const void *data;
    size_t len;

    e2e_up(&d, &c, 1, NULL);
    fill("x", 2);
    fill("y", 1);
    forq_dict_op_init(&op);
    op.op = "dicts";
    op.key = "x";
    ck_assert_int_eq(forq_dict_submit(c, &op, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    ck_assert_int_eq(forq_dict_reply(f, NULL, NULL, &count), FORQ_OK);
    ck_assert_uint_eq(count, 1);
    ck_assert_int_eq(forq_future_result(f, &data, &len), FORQ_OK);
    ck_assert_uint_eq(len, 5); /* [["y", 1]] */
    ck_assert(memcmp(data, "\x91\x92\xa1y\x01", 5) == 0);
    forq_future_destroy(&f);
    /* the other ops still need their dict */
    op.op = "len";
    ck_assert_int_eq(forq_dict_submit(c, &op, &f), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "needs the dict's name"));
    e2e_down(&d, &c);
}
END_TEST

/* With --state-dir the dicts come back from the log in the same order, counts and all. */
START_TEST(test_after_restart)
{
    char dir[256], out[4096], *next;
    const char *extra[] = {"--state-dir", dir, NULL};

    temp_dir(dir, sizeof(dir), "forq-dictlist");
    e2e_up(&d, &c, 1, extra);
    fill("later", 2);
    fill("early", 3);
    fill("gone", 1);
    ck_assert_int_eq(forq_dict_del(c, "gone", "k0", T), FORQ_OK);
    e2e_down(&d, &c);
    e2e_up(&d, &c, 1, extra);
    ck_assert_uint_eq(page(NULL, 0, out, sizeof(out), &next), 2);
    ck_assert_str_eq(out, "early:3,later:2,");
    e2e_down(&d, &c);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
}
END_TEST

static Suite *dictlist_suite(void)
{
    Suite *s = suite_create("dictlist");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_empty_and_pages);
    tcase_add_test(tc, test_changes_between_pages);
    tcase_add_test(tc, test_async);
    tcase_add_test(tc, test_after_restart);
    suite_add_tcase(s, tc);
    /* under valgrind (FORQ_TEST_CORE_ONLY): not the 10,001 dicts */
    if (!getenv("FORQ_TEST_CORE_ONLY")) {
        TCase *full = tcase_create("full");
        tcase_set_timeout(full, test_ms(120));
        tcase_add_test(full, test_protocol_fields);
        suite_add_tcase(s, full);
    }
    return s;
}

int main(void)
{
    return run_suite(dictlist_suite());
}
