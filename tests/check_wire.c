/* check_wire.c - the protocol codec: round trips, every truncation, corruption, and limits. */
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static msgpack_zone zone;

static void setup(void)
{
    msgpack_zone_init(&zone, 4096);
}

static void teardown(void)
{
    msgpack_zone_destroy(&zone);
}

static msgpack_sbuffer encode(const wire_hdr_t *h)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(wire_hdr_encode(&sb, h), 0);
    return sb;
}

static wire_hdr_t full_submit(void)
{
    wire_hdr_t h = {.cmd = WIRE_SUBMIT,
                    .id = wire_str("abc-1"),
                    .req = 7,
                    .has_req = true,
                    .task = wire_str("count_primes"),
                    .timeout_ms = 1500,
                    .deadline_ms = 99,
                    .priority = 0,
                    .has_priority = true,
                    .retries = 3,
                    .max_result = 1 << 20,
                    .as_bytes = 1ull << 33,
                    .cpu_s = 12};
    return h;
}

START_TEST(test_roundtrip_submit)
{
    wire_hdr_t h = full_submit(), d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);

    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_int_eq(d.version, WIRE_VERSION);
    ck_assert_int_eq(d.cmd, WIRE_SUBMIT);
    ck_assert(wire_str_eq(d.id, "abc-1"));
    ck_assert(wire_str_eq(d.task, "count_primes"));
    ck_assert(d.has_req);
    ck_assert_uint_eq(d.req, 7);
    ck_assert_uint_eq(d.timeout_ms, 1500);
    ck_assert_uint_eq(d.deadline_ms, 99);
    ck_assert(d.has_priority);
    ck_assert_uint_eq(d.priority, 0);
    ck_assert_uint_eq(d.retries, 3);
    ck_assert_uint_eq(d.max_result, 1 << 20);
    ck_assert_uint_eq(d.as_bytes, 1ull << 33);
    ck_assert_uint_eq(d.cpu_s, 12);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_roundtrip_result)
{
    wire_hdr_t h = {.cmd = WIRE_RESULT,
                    .id = wire_str("x"),
                    .state = WIRE_ST_CRASHED,
                    .signal = 11,
                    .exit_code = -3,
                    .has_exit = true,
                    .attempts = 2,
                    .pid = 4242,
                    .etype = wire_str("ValueError"),
                    .msg = wire_str("bad \"thing\""),
                    .code = wire_str("c"),
                    .run_us = 12345,
                    .outcome = wire_str("killing"),
                    .retire = true};
    wire_hdr_t d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);

    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_int_eq(d.state, WIRE_ST_CRASHED);
    ck_assert_int_eq(d.signal, 11);
    ck_assert(d.has_exit);
    ck_assert_int_eq(d.exit_code, -3);
    ck_assert_uint_eq(d.attempts, 2);
    ck_assert_int_eq(d.pid, 4242);
    ck_assert(wire_str_eq(d.etype, "ValueError"));
    ck_assert(wire_str_eq(d.msg, "bad \"thing\""));
    ck_assert(wire_str_eq(d.code, "c"));
    ck_assert(wire_str_eq(d.outcome, "killing"));
    ck_assert_uint_eq(d.run_us, 12345);
    ck_assert(d.retire);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_every_command_roundtrips)
{
    for (int c = WIRE_SUBMIT; c <= WIRE_PROGRESS; c++) {
        if (c == WIRE_DICT)
            continue; /* needs op and name: tested apart */
        wire_hdr_t h = {.cmd = (wire_cmd_t)c,
                        .id = wire_str("j1"),
                        .task = wire_str("echo"),
                        .state = WIRE_ST_OK};
        wire_hdr_t d;
        wire_err_t err;
        msgpack_sbuffer sb = encode(&h);
        ck_assert_msg(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err) == 0, "%s: %s",
                      wire_cmd_name(h.cmd), err.msg);
        ck_assert_int_eq(d.cmd, c);
        ck_assert_int_eq(wire_cmd_from(wire_cmd_name(h.cmd), strlen(wire_cmd_name(h.cmd))), c);
        msgpack_sbuffer_destroy(&sb);
        msgpack_zone_clear(&zone);
    }
    for (int s = WIRE_ST_QUEUED; s < WIRE_ST_COUNT_; s++)
        ck_assert_int_eq(wire_state_from(wire_state_name(s), strlen(wire_state_name(s))), s);
}
END_TEST

/* Every proper prefix of a valid header must be refused, and never crash. */
START_TEST(test_every_truncation_rejected)
{
    wire_hdr_t h = full_submit(), d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);

    for (size_t n = 0; n < sb.size; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(copy, sb.data, n);
        ck_assert_msg(wire_hdr_decode(copy, n, &zone, &d, &err) < 0, "prefix %zu accepted", n);
        ck_assert_ptr_nonnull(err.code);
        ck_assert(strlen(err.msg) > 0);
        free(copy);
        msgpack_zone_clear(&zone);
    }
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Flip every byte to every value: decode must return cleanly (accept or refuse), never crash. */
START_TEST(test_corruption_never_crashes)
{
    wire_hdr_t h = full_submit(), d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);
    char *copy = malloc(sb.size);

    for (size_t i = 0; i < sb.size; i++) {
        for (int v = 0; v < 256; v++) {
            memcpy(copy, sb.data, sb.size);
            copy[i] = (char)v;
            int r = wire_hdr_decode(copy, sb.size, &zone, &d, &err);
            ck_assert(r == 0 || r == -EBADMSG);
            msgpack_zone_clear(&zone);
        }
    }
    free(copy);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_value_len)
{
    wire_err_t err;
    size_t n = 0;
    /* [1, "ab"] followed by nil */
    static const unsigned char two[] = {0x92, 0x01, 0xa2, 'a', 'b', 0xc0};
    ck_assert_int_eq(wire_value_len(two, sizeof(two), 4, &n, &err), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(wire_value_len(two + 5, 1, 4, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_lt(wire_value_len(two, 3, 4, &n, &err), 0);
}
END_TEST

START_TEST(test_progress_and_chunk_fields)
{
    wire_hdr_t h = {.cmd = WIRE_PROGRESS,
                    .id = wire_str("p"),
                    .done = 0,
                    .total = 10,
                    .msg = wire_str("starting")},
               d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);
    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_int_eq(d.cmd, WIRE_PROGRESS);
    ck_assert_uint_eq(d.done, 0);
    ck_assert_uint_eq(d.total, 10);
    ck_assert(wire_str_eq(d.msg, "starting"));
    msgpack_sbuffer_destroy(&sb);
    h = full_submit();
    h.chunk = true;
    sb = encode(&h);
    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert(d.chunk);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_dict_fields)
{
    wire_hdr_t h = {.cmd = WIRE_DICT,
                    .op = wire_str("cas"),
                    .name = wire_str("d1"),
                    .key = wire_str("any key: text"),
                    .ver = 0,
                    .has_ver = true,
                    .delta = -3,
                    .has_delta = true,
                    .limit = 50},
               d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);
    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert(wire_str_eq(d.op, "cas"));
    ck_assert(wire_str_eq(d.key, "any key: text"));
    ck_assert(d.has_ver);
    ck_assert_uint_eq(d.ver, 0);
    ck_assert_int_eq(d.delta, -3);
    ck_assert_uint_eq(d.limit, 50);
    msgpack_sbuffer_destroy(&sb);
    h.name = wire_str("bad name");
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_field");
    msgpack_sbuffer_destroy(&sb);
    /* a dict header without a name decodes: whether its op needs one is the op table's to say
     * (check_ops); without an op it does not */
    h = (wire_hdr_t){.cmd = WIRE_DICT, .op = wire_str("dicts")};
    sb = encode(&h);
    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_ptr_null(d.name.ptr);
    msgpack_sbuffer_destroy(&sb);
    h = (wire_hdr_t){.cmd = WIRE_DICT, .name = wire_str("d")};
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "missing_field");
    ck_assert_ptr_nonnull(strstr(err.msg, "'op'"));
    msgpack_sbuffer_destroy(&sb);
    h = (wire_hdr_t){.cmd = WIRE_DICT_REPLY, .found = false, .more = true, .count = 3};
    sb = encode(&h);
    ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert(!d.found);
    ck_assert(d.more);
    ck_assert_uint_eq(d.count, 3);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_trailing_bytes_rejected)
{
    wire_hdr_t h = full_submit(), d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_message");
    ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* The attack msgpack-c 4.0 falls for: a few bytes that declare billions of elements. */
START_TEST(test_huge_declared_containers_rejected)
{
    static const unsigned char array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const unsigned char map32[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    static const unsigned char nested[] = {0x91, 0x91, 0xdd, 0x10, 0x00, 0x00, 0x00, 0xc0};
    static const unsigned char str32[] = {0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
    static const unsigned char bin32[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 'a'};
    static const unsigned char ext32[] = {0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01, 'a'};
    /* 3 elements declared, each needs a byte: only 2 follow */
    static const unsigned char short_array[] = {0x93, 0xc0, 0xc0};
    const struct {
        const unsigned char *b;
        size_t n;
    } cases[] = {{array32, sizeof(array32)},
                 {map32, sizeof(map32)},
                 {nested, sizeof(nested)},
                 {str32, sizeof(str32)},
                 {bin32, sizeof(bin32)},
                 {ext32, sizeof(ext32)},
                 {short_array, sizeof(short_array)}};
    wire_err_t err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(wire_check(cases[i].b, cases[i].n, WIRE_DEPTH_MAX, &err) == -EBADMSG,
                      "case %zu accepted", i);
        ck_assert_str_eq(err.code, "bad_message");
    }
}
END_TEST

START_TEST(test_depth_limit)
{
    unsigned char buf[200];
    wire_err_t err;
    size_t n = 0;

    for (int i = 0; i < 70; i++)
        buf[n++] = 0x91; /* array of one */
    buf[n++] = 0xc0;
    ck_assert_int_eq(wire_check(buf, n, WIRE_DEPTH_MAX, &err), -EBADMSG);
    ck_assert_str_eq(err.code, "too_deep");
    /* within the limit it passes */
    ck_assert_int_eq(wire_check(buf + 70 - 10, 11, WIRE_DEPTH_MAX, &err), 0);
    /* WIRE_DEPTH_MAX containers pass, one more does not, an empty innermost one counted too */
    for (int empty = 0; empty <= 1; empty++) {
        for (int levels = WIRE_DEPTH_MAX; levels <= WIRE_DEPTH_MAX + 1; levels++) {
            n = 0;
            for (int i = 0; i < levels - empty; i++)
                buf[n++] = 0x91;
            if (empty)
                buf[n++] = 0x90;
            else
                buf[n++] = 0x01;
            int r = wire_check(buf, n, WIRE_DEPTH_MAX, &err);
            ck_assert_msg(levels <= WIRE_DEPTH_MAX ? r == 0 : r == -EBADMSG,
                          "%d levels (empty innermost: %d): %d", levels, empty, r);
        }
    }
}
END_TEST

/* The limit is msgpack-c's own: its unpacker keeps WIRE_DEPTH_MAX containers open, no more
 * (MSGPACK_EMBED_STACK_SIZE, compiled into the library): what passes wire_check unpacks. */
/* Reading a checked frame in place: map and string headers of every width, and refusals. */
START_TEST(test_map_and_str_headers)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t n;
    size_t off, len, next;
    const char *str;
    static char body[70000];
    const size_t sizes[] = {3, 31, 200, 65535, 65536};

    memset(body, 'k', sizeof(body));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, (uint32_t)sizes[i]);
        ck_assert_int_eq(wire_map_header(sb.data, sb.size, &n, &off), 0);
        ck_assert_uint_eq(n, sizes[i]);
        ck_assert_uint_eq(off, sb.size);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_str_with_body(&pk, body, sizes[i]);
        msgpack_pack_nil(&pk);
        ck_assert_int_eq(wire_str_header(sb.data, sb.size, &str, &len, &next), 0);
        ck_assert_uint_eq(len, sizes[i]);
        ck_assert_ptr_eq(str + len, sb.data + next);
        ck_assert_int_eq((unsigned char)sb.data[next], 0xc0);
        /* cut short: refused, never read past the end */
        ck_assert_int_eq(wire_str_header(sb.data, next - 1, &str, &len, &next), -1);
    }
    ck_assert_int_eq(wire_map_header("\x91\x01", 2, &n, &off), -1);      /* an array */
    ck_assert_int_eq(wire_map_header("\xde\x00", 2, &n, &off), -1);      /* map16 cut short */
    ck_assert_int_eq(wire_str_header("\x01", 1, &str, &len, &next), -1); /* an integer */
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_depth_limit_is_msgpack_cs)
{
    unsigned char buf[WIRE_DEPTH_MAX + 4];
    msgpack_zone z;
    msgpack_object o;

    msgpack_zone_init(&z, 4096);
    for (int levels = WIRE_DEPTH_MAX; levels <= WIRE_DEPTH_MAX + 1; levels++) {
        size_t n = 0, off = 0;
        for (int i = 0; i < levels - 1; i++)
            buf[n++] = 0x91;
        buf[n++] = 0x90;
        msgpack_unpack_return r = msgpack_unpack((const char *)buf, n, &off, &z, &o);
        ck_assert_msg(levels <= WIRE_DEPTH_MAX ? r == MSGPACK_UNPACK_SUCCESS
                                               : r != MSGPACK_UNPACK_SUCCESS,
                      "msgpack_unpack of %d levels: %d", levels, (int)r);
    }
    msgpack_zone_destroy(&z);
}
END_TEST

START_TEST(test_invalid_type_byte)
{
    static const unsigned char c1[] = {0xc1};
    wire_err_t err;
    ck_assert_int_eq(wire_check(c1, 1, 4, &err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err.msg, "0xc1"));
    ck_assert_int_eq(wire_check(c1, 0, 4, &err), -EBADMSG);
}
END_TEST

/* Every valid scalar and container encoding passes the check. */
START_TEST(test_check_accepts_all_types)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    wire_err_t err;
    msgpack_object o;
    char big[70000];

    memset(big, 'x', sizeof(big));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 20);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_int8(&pk, -5);
    msgpack_pack_int16(&pk, -500);
    msgpack_pack_int32(&pk, -70000);
    msgpack_pack_int64(&pk, -5000000000);
    msgpack_pack_uint8(&pk, 200);
    msgpack_pack_uint16(&pk, 60000);
    msgpack_pack_uint32(&pk, 4000000000u);
    msgpack_pack_uint64(&pk, 1ull << 63);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_str(&pk, 300);
    msgpack_pack_str_body(&pk, big, 300);
    msgpack_pack_str(&pk, sizeof(big));
    msgpack_pack_str_body(&pk, big, sizeof(big));
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "abc", 3);
    msgpack_pack_ext(&pk, 4, 1);
    msgpack_pack_ext_body(&pk, "abcd", 4);
    msgpack_pack_ext(&pk, 5, 2);
    msgpack_pack_ext_body(&pk, "abcde", 5);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, 17);
    for (int i = 0; i < 17; i++)
        msgpack_pack_int(&pk, i);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(wire_check(sb.data, sb.size, WIRE_DEPTH_MAX, &err), 0);
    ck_assert_int_eq(wire_unpack(sb.data, sb.size, &zone, &o, &err), 0);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o.via.array.size, 20);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* A header map with v (unless version < 0), cmd (unless NULL), id, task, and one extra key whose
 * value is a string (kind 0), -1 (1), 1000 (2) or [nil] (3). */
static msgpack_sbuffer raw_header(const char *cmd, int version, const char *extra_key,
                                  int extra_kind)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (version >= 0) + (cmd != NULL) + (extra_key != NULL));
    if (version >= 0) {
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_int(&pk, version);
    }
    if (cmd) {
        msgpack_pack_str_with_body(&pk, "cmd", 3);
        msgpack_pack_str_with_body(&pk, cmd, strlen(cmd));
    }
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_str_with_body(&pk, "j", 1);
    msgpack_pack_str_with_body(&pk, "task", 4);
    msgpack_pack_str_with_body(&pk, "echo", 4);
    if (extra_key) {
        msgpack_pack_str_with_body(&pk, extra_key, strlen(extra_key));
        switch (extra_kind) {
        case 0:
            msgpack_pack_str_with_body(&pk, "text", 4);
            break;
        case 1:
            msgpack_pack_int(&pk, -1);
            break;
        case 2:
            msgpack_pack_uint64(&pk, 1000);
            break;
        default:
            msgpack_pack_array(&pk, 1);
            msgpack_pack_nil(&pk);
        }
    }
    return sb;
}

static const char *decode_code(msgpack_sbuffer *sb)
{
    static wire_err_t err;
    wire_hdr_t d;
    int r = wire_hdr_decode(sb->data, sb->size, &zone, &d, &err);
    msgpack_sbuffer_destroy(sb);
    msgpack_zone_clear(&zone);
    return r == 0 ? "ok" : err.code;
}

START_TEST(test_header_field_errors)
{
    msgpack_sbuffer sb;

    sb = raw_header("submit", 1, NULL, 0);
    ck_assert_str_eq(decode_code(&sb), "ok");
    sb = raw_header("submit", 2, NULL, 0);
    ck_assert_str_eq(decode_code(&sb), "bad_version");
    sb = raw_header("submit", -1, NULL, 0);
    ck_assert_str_eq(decode_code(&sb), "missing_field");
    sb = raw_header(NULL, 1, NULL, 0);
    ck_assert_str_eq(decode_code(&sb), "missing_field");
    sb = raw_header("launch", 1, NULL, 0);
    ck_assert_str_eq(decode_code(&sb), "unknown_command");
    sb = raw_header("submit", 1, "priority", 2); /* 1000 > 9 */
    ck_assert_str_eq(decode_code(&sb), "bad_field");
    sb = raw_header("submit", 1, "timeout_ms", 1); /* negative */
    ck_assert_str_eq(decode_code(&sb), "bad_field");
    sb = raw_header("submit", 1, "retries", 0); /* string for a number */
    ck_assert_str_eq(decode_code(&sb), "bad_field");
    sb = raw_header("submit", 1, "msg", 2); /* number for a string */
    ck_assert_str_eq(decode_code(&sb), "bad_field");
    sb = raw_header("submit", 1, "future_field", 0); /* unknown keys are ignored */
    ck_assert_str_eq(decode_code(&sb), "ok");
    sb = raw_header("submit", 1, "timeout_ms", 3); /* nested value in a flat header */
    ck_assert_str_eq(decode_code(&sb), "too_deep");
}
END_TEST

START_TEST(test_header_limits)
{
    wire_hdr_t h = full_submit(), d;
    wire_err_t err;
    char longid[WIRE_ID_MAX + 2], text[WIRE_TEXT_MAX + 2];
    msgpack_sbuffer sb;

    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    h.id = wire_str(longid);
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_field");
    msgpack_sbuffer_destroy(&sb);

    h = full_submit();
    h.id = wire_str("bad id!");
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_field");
    msgpack_sbuffer_destroy(&sb);

    h = full_submit();
    h.task = wire_str("no/slash");
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_field");
    msgpack_sbuffer_destroy(&sb);

    memset(text, 'm', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    h = (wire_hdr_t){.cmd = WIRE_ERROR, .msg = wire_str(text)};
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_field");
    msgpack_sbuffer_destroy(&sb);

    /* a header larger than WIRE_HEADER_MAX */
    char *big = calloc(1, WIRE_HEADER_MAX + 10);
    ck_assert_int_lt(wire_hdr_decode(big, WIRE_HEADER_MAX + 10, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "too_large");
    free(big);

    /* not a map */
    ck_assert_int_lt(wire_hdr_decode("\x90", 1, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_header");
    /* non-string key */
    ck_assert_int_lt(wire_hdr_decode("\x81\x01\x01", 3, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_header");
}
END_TEST

START_TEST(test_too_many_keys)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    wire_hdr_t d;
    wire_err_t err;
    char k[8];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, WIRE_KEYS_MAX + 1);
    for (int i = 0; i < WIRE_KEYS_MAX + 1; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        msgpack_pack_str_with_body(&pk, k, strlen(k));
        msgpack_pack_nil(&pk);
    }
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "bad_header");
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_required_fields)
{
    wire_hdr_t h = {.cmd = WIRE_SUBMIT, .id = wire_str("a")}, d;
    wire_err_t err;
    msgpack_sbuffer sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_str_eq(err.code, "missing_field");
    ck_assert_ptr_nonnull(strstr(err.msg, "task"));
    /* the error reply can still name the id */
    ck_assert(wire_str_eq(d.id, "a"));
    msgpack_sbuffer_destroy(&sb);

    h = (wire_hdr_t){.cmd = WIRE_CANCEL, .req = 5, .has_req = true};
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "id"));
    ck_assert(d.has_req);
    ck_assert_uint_eq(d.req, 5);
    msgpack_sbuffer_destroy(&sb);

    h = (wire_hdr_t){.cmd = WIRE_RESULT, .id = wire_str("a")};
    sb = encode(&h);
    ck_assert_int_lt(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "status"));
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_names)
{
    ck_assert(wire_id_is_valid("a", 1));
    ck_assert(wire_id_is_valid("A.b_c:d-9", 9));
    ck_assert(!wire_id_is_valid("", 0));
    ck_assert(!wire_id_is_valid("a b", 3));
    ck_assert(!wire_id_is_valid("a\0b", 3));
    ck_assert(!wire_task_is_valid("x/y", 3));
    ck_assert_ptr_null(wire_cmd_name(WIRE_CMD_NONE));
    ck_assert_int_eq(wire_cmd_from("nope", 4), WIRE_CMD_NONE);
    ck_assert_int_eq(wire_state_from("nope", 4), WIRE_ST_NONE);
}
END_TEST

/* ---- the field table: every field through encode and decode ---- */

static const wire_field_t *field_table(size_t *n)
{
    const wire_field_t *t = wire_fields(n);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_gt(*n, 0);
    return t;
}

static void *member(wire_hdr_t *h, const wire_field_t *f)
{
    return (char *)h + f->off;
}

static bool flag_of(const wire_hdr_t *h, const wire_field_t *f)
{
    return f->has_off != WIRE_NO_FLAG && *(const bool *)((const char *)h + f->has_off);
}

/* Does field f hold the same value in a and b (strings by content)? */
static bool same_value(const wire_hdr_t *a, const wire_hdr_t *b, const wire_field_t *f)
{
    const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;

    if (flag_of(a, f) != flag_of(b, f))
        return false;
    if (f->kind == WIRE_FK_STR) {
        const wire_str_t *sa = (const wire_str_t *)(const void *)pa;
        const wire_str_t *sb = (const wire_str_t *)(const void *)pb;
        if (!sa->ptr || !sb->ptr)
            return !sa->ptr == !sb->ptr;
        return sa->len == sb->len && memcmp(sa->ptr, sb->ptr, sa->len) == 0;
    }
    return memcmp(pa, pb, f->size) == 0;
}

/* The command a header carrying only field f is sent with: one that requires no fields. */
static wire_cmd_t cmd_for(const wire_field_t *f)
{
    return f->only != WIRE_CMD_NONE ? f->only : WIRE_ERROR;
}

/* Set field f of h to an extreme value of its kind (its bound, the widest integer, ...). */
static void set_extreme(wire_hdr_t *h, const wire_field_t *f, char *buf, int variant)
{
    void *at = member(h, f);

    switch (f->kind) {
    case WIRE_FK_VERSION:
        *(uint32_t *)at = WIRE_VERSION;
        break;
    case WIRE_FK_CMD:
        *(wire_cmd_t *)at = variant ? WIRE_PONG : WIRE_STATS_REPLY;
        break;
    case WIRE_FK_STATE:
        *(wire_state_t *)at = variant ? WIRE_ST_QUEUED : (wire_state_t)(WIRE_ST_COUNT_ - 1);
        break;
    case WIRE_FK_STR: {
        size_t n = variant ? 1 : (size_t)f->max;
        memset(buf, variant ? 'z' : 'a', n);
        *(wire_str_t *)at = (wire_str_t){buf, n};
        break;
    }
    case WIRE_FK_UINT: {
        uint64_t v = f->max ? f->max : f->size == sizeof(uint32_t) ? UINT32_MAX : UINT64_MAX;
        if (variant)
            v = 1;
        if (f->size == sizeof(uint32_t))
            *(uint32_t *)at = (uint32_t)v;
        else
            *(uint64_t *)at = v;
        break;
    }
    case WIRE_FK_INT:
        *(int64_t *)at = variant ? INT64_MAX : INT64_MIN;
        break;
    case WIRE_FK_BOOL:
        *(bool *)at = true;
        break;
    }
    if (f->has_off != WIRE_NO_FLAG)
        *(bool *)((char *)h + f->has_off) = true;
}

/* The number of entries of an encoded header map. */
static uint32_t map_entries(const msgpack_sbuffer *sb)
{
    msgpack_object o;
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack(sb->data, sb->size, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_MAP);
    return o.via.map.size;
}

START_TEST(test_field_table_is_sound)
{
    size_t n;
    const wire_field_t *t = field_table(&n);
    unsigned char used[sizeof(wire_hdr_t)] = {0};

    ck_assert_str_eq(t[0].key, "v"); /* encode writes the version first */
    for (size_t i = 0; i < n; i++) {
        const wire_field_t *f = &t[i];
        size_t want = 0;

        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(t[j].key, f->key) != 0, "field '%s' twice", f->key);
        switch (f->kind) {
        case WIRE_FK_VERSION:
            want = sizeof(uint32_t);
            break;
        case WIRE_FK_CMD:
            want = sizeof(wire_cmd_t);
            break;
        case WIRE_FK_STATE:
            want = sizeof(wire_state_t);
            break;
        case WIRE_FK_STR:
            want = sizeof(wire_str_t);
            break;
        case WIRE_FK_UINT:
            want = f->size == sizeof(uint32_t) ? 4 : 8;
            break;
        case WIRE_FK_INT:
            want = sizeof(int64_t);
            break;
        case WIRE_FK_BOOL:
            want = sizeof(bool);
            break;
        }
        ck_assert_msg(f->size == want, "field '%s' has a member of %zu bytes", f->key, f->size);
        ck_assert_uint_le(f->off + f->size, sizeof(wire_hdr_t));
        if (f->kind == WIRE_FK_STR)
            ck_assert_msg(f->max > 0 && f->max < WIRE_HEADER_MAX, "'%s' has no bound", f->key);
        /* no two fields share a byte of wire_hdr_t */
        for (size_t b = f->off; b < f->off + f->size; b++)
            ck_assert_msg(!used[b]++, "field '%s' overlaps another", f->key);
        if (f->has_off != WIRE_NO_FLAG) {
            ck_assert_uint_lt(f->has_off, sizeof(wire_hdr_t));
            ck_assert_msg(!used[f->has_off]++, "has_ flag of '%s' overlaps", f->key);
        }
    }
}
END_TEST

/* Each field alone, at an extreme of its kind and at a small value: encoded as one more map
 * entry than the header's v and cmd, decoded into its own member and no other. */
START_TEST(test_every_field_roundtrips)
{
    size_t n;
    const wire_field_t *t = field_table(&n);
    static char buf[WIRE_KEY_MAX + 1];

    for (size_t i = 0; i < n; i++) {
        for (int variant = 0; variant < 2; variant++) {
            const wire_field_t *f = &t[i];
            wire_hdr_t h = {.cmd = cmd_for(f)}, d;
            wire_err_t err;

            set_extreme(&h, f, buf, variant);
            msgpack_sbuffer sb = encode(&h);
            ck_assert_uint_eq(map_entries(&sb),
                              (f->kind == WIRE_FK_VERSION || f->kind == WIRE_FK_CMD ? 2 : 3));
            ck_assert_msg(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err) == 0, "field '%s': %s",
                          f->key, err.msg);
            h.version = WIRE_VERSION; /* decode says which version it read */
            for (size_t j = 0; j < n; j++)
                ck_assert_msg(same_value(&h, &d, &t[j]), "field '%s' came back wrong after '%s'",
                              t[j].key, f->key);
            msgpack_sbuffer_destroy(&sb);
            msgpack_zone_clear(&zone);
        }
    }
}
END_TEST

/* A field that is not set is not written (unless its command always carries it); a has_ flag
 * writes a zero, and decode sets the flag again. */
START_TEST(test_unset_fields_not_written)
{
    size_t n;
    const wire_field_t *t = field_table(&n);

    for (size_t i = 0; i < n; i++) {
        const wire_field_t *f = &t[i];
        if (f->kind == WIRE_FK_VERSION || f->kind == WIRE_FK_CMD)
            continue;
        wire_hdr_t h = {.cmd = WIRE_ERROR}, d;
        wire_err_t err;
        msgpack_sbuffer sb = encode(&h);
        ck_assert_uint_eq(map_entries(&sb), 2 + (f->always == WIRE_ERROR));
        msgpack_sbuffer_destroy(&sb);
        if (f->has_off == WIRE_NO_FLAG)
            continue;
        *(bool *)((char *)&h + f->has_off) = true;
        sb = encode(&h);
        ck_assert_uint_eq(map_entries(&sb), 3);
        ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), 0);
        ck_assert_msg(flag_of(&d, f), "has_ flag of '%s' lost", f->key);
        ck_assert_msg(same_value(&h, &d, f), "zero '%s' came back wrong", f->key);
        msgpack_sbuffer_destroy(&sb);
        msgpack_zone_clear(&zone);
    }
    /* the two command-bound fields */
    wire_hdr_t h = {.cmd = WIRE_PROGRESS, .id = wire_str("p")};
    msgpack_sbuffer sb = encode(&h);
    ck_assert_uint_eq(map_entries(&sb), 4); /* v, cmd, id, done: 0 */
    msgpack_sbuffer_destroy(&sb);
    h = (wire_hdr_t){.cmd = WIRE_DICT_REPLY};
    sb = encode(&h);
    ck_assert_uint_eq(map_entries(&sb), 3); /* v, cmd, found: false */
    msgpack_sbuffer_destroy(&sb);
    h = (wire_hdr_t){.cmd = WIRE_ERROR, .found = true};
    sb = encode(&h);
    ck_assert_uint_eq(map_entries(&sb), 2); /* found belongs to dict_reply alone */
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Every field refuses a value of the wrong type, and one past its bound, naming itself. */
START_TEST(test_every_field_checks_type_and_bound)
{
    size_t n;
    const wire_field_t *t = field_table(&n);

    for (size_t i = 0; i < n; i++) {
        const wire_field_t *f = &t[i];
        if (f->kind == WIRE_FK_CMD)
            continue; /* a bad command has its own error: test_header_field_errors */
        for (int bad = 0; bad < 2; bad++) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            wire_hdr_t d;
            wire_err_t err;
            bool version = f->kind == WIRE_FK_VERSION;

            if (bad == 1 && !(f->max || f->kind == WIRE_FK_STATE ||
                              (f->kind == WIRE_FK_UINT && f->size == sizeof(uint32_t))))
                continue; /* nothing is out of bounds for it */
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, version ? 2 : 3);
            msgpack_pack_str_with_body(&pk, "cmd", 3);
            msgpack_pack_str_with_body(&pk, "error", 5);
            if (!version) {
                msgpack_pack_str_with_body(&pk, "v", 1);
                msgpack_pack_uint64(&pk, WIRE_VERSION);
            }
            msgpack_pack_str_with_body(&pk, f->key, strlen(f->key));
            if (bad == 0) { /* the wrong type */
                if (f->kind == WIRE_FK_STR || f->kind == WIRE_FK_STATE)
                    msgpack_pack_uint64(&pk, 1);
                else if (f->kind == WIRE_FK_BOOL)
                    msgpack_pack_uint64(&pk, 1);
                else
                    msgpack_pack_str_with_body(&pk, "1", 1);
            } else if (f->kind == WIRE_FK_STR) {
                char *big = calloc(1, f->max + 1);
                memset(big, 'a', f->max + 1);
                msgpack_pack_str_with_body(&pk, big, f->max + 1);
                free(big);
            } else if (f->kind == WIRE_FK_STATE) {
                msgpack_pack_str_with_body(&pk, "sleeping", 8);
            } else {
                msgpack_pack_uint64(&pk, f->max ? f->max + 1 : (uint64_t)UINT32_MAX + 1);
            }
            ck_assert_int_eq(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err), -EBADMSG);
            ck_assert_msg(strcmp(err.code, version ? "bad_version" : "bad_field") == 0 ||
                              (version && bad == 0 && strcmp(err.code, "bad_field") == 0),
                          "field '%s': %s", f->key, err.code);
            if (!version)
                ck_assert_msg(strstr(err.msg, f->key), "'%s' not named in: %s", f->key, err.msg);
            msgpack_sbuffer_destroy(&sb);
            msgpack_zone_clear(&zone);
        }
    }
}
END_TEST

/* Unknown keys, whatever their scalar value, are skipped and disturb nothing; so are keys that
 * only begin or end like a known one. */
START_TEST(test_unknown_fields_ignored)
{
    static const char *const keys[] = {"future_field", "ti", "timeout", "timeout_ms2", "V",
                                       "cmdx",         "",   "statu",   "key ",        "found_"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        for (int kind = 0; kind < 6; kind++) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            wire_hdr_t d;
            wire_err_t err;

            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 5);
            msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
            switch (kind) {
            case 0:
                msgpack_pack_nil(&pk);
                break;
            case 1:
                msgpack_pack_true(&pk);
                break;
            case 2:
                msgpack_pack_int64(&pk, -7);
                break;
            case 3:
                msgpack_pack_double(&pk, 0.5);
                break;
            case 4:
                msgpack_pack_str_with_body(&pk, "x", 1);
                break;
            default:
                msgpack_pack_bin_with_body(&pk, "x", 1);
            }
            msgpack_pack_str_with_body(&pk, "v", 1);
            msgpack_pack_uint64(&pk, 1);
            msgpack_pack_str_with_body(&pk, "cmd", 3);
            msgpack_pack_str_with_body(&pk, "cancel", 6);
            msgpack_pack_str_with_body(&pk, "id", 2);
            msgpack_pack_str_with_body(&pk, "j", 1);
            msgpack_pack_str_with_body(&pk, "timeout_ms", 10);
            msgpack_pack_uint64(&pk, 77);
            ck_assert_msg(wire_hdr_decode(sb.data, sb.size, &zone, &d, &err) == 0, "'%s' (%d): %s",
                          keys[i], kind, err.msg);
            ck_assert_int_eq(d.cmd, WIRE_CANCEL);
            ck_assert(wire_str_eq(d.id, "j"));
            ck_assert_uint_eq(d.timeout_ms, 77);
            msgpack_sbuffer_destroy(&sb);
            msgpack_zone_clear(&zone);
        }
    }
}
END_TEST

/* Every command and state has a name that leads back to it. */
START_TEST(test_every_name_roundtrips)
{
    for (int c = WIRE_CMD_NONE + 1; c < WIRE_CMD_COUNT_; c++) {
        const char *name = wire_cmd_name((wire_cmd_t)c);
        ck_assert_msg(name != NULL, "command %d has no name", c);
        ck_assert_int_eq(wire_cmd_from(name, strlen(name)), c);
    }
    ck_assert_ptr_null(wire_cmd_name(WIRE_CMD_COUNT_));
    for (int s = WIRE_ST_NONE + 1; s < WIRE_ST_COUNT_; s++) {
        const char *name = wire_state_name((wire_state_t)s);
        ck_assert_msg(name != NULL, "state %d has no name", s);
        ck_assert_int_eq(wire_state_from(name, strlen(name)), s);
    }
    ck_assert_ptr_null(wire_state_name(WIRE_ST_COUNT_));
    ck_assert_ptr_null(wire_state_name(WIRE_ST_NONE));
}
END_TEST

/* wire_hdr_decode reads the header map in place (no msgpack_unpack): every width of every
 * scalar must mean what msgpack-c makes of it. Each case is {v:1, cmd:"dict", op:"get",
 * <field>: <raw value bytes>}, decoded and compared with the value msgpack-c unpacks. */
START_TEST(test_decode_reads_every_encoding)
{
    static const struct {
        const char *field;
        const char *raw;
        size_t len;
        const char *code; /* "ok" or the error */
    } cases[] = {
        {"req", "\x05", 1, "ok"},
        {"req", "\xcc\xfe", 2, "ok"},
        {"req", "\xcd\x12\x34", 3, "ok"},
        {"req", "\xce\x12\x34\x56\x78", 5, "ok"},
        {"req", "\xcf\xff\x34\x56\x78\x9a\xbc\xde\xf0", 9, "ok"},
        {"req", "\xd0\x05", 2, "ok"},
        {"req", "\xd1\x7f\xff", 3, "ok"},
        {"req", "\xd2\x00\x01\x00\x00", 5, "ok"},
        {"req", "\xd3\x00\x00\x00\x01\x00\x00\x00\x00", 9, "ok"},
        {"req", "\xd0\xfb", 2, "bad_field"}, /* -5 */
        {"req", "\xca\x40\xa0\x00\x00", 5, "bad_field"},
        {"req", "\xcb\x40\x14\x00\x00\x00\x00\x00\x00", 9, "bad_field"},
        {"delta", "\xfb", 1, "ok"},
        {"delta", "\xd0\x80", 2, "ok"},
        {"delta", "\xd1\x80\x00", 3, "ok"},
        {"delta", "\xd2\x80\x00\x00\x00", 5, "ok"},
        {"delta", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "ok"},
        {"delta", "\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9, "ok"},
        {"delta", "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, "bad_field"},
        {"delta", "\xc0", 1, "bad_field"},
        {"found", "\xc3", 1, "ok"},
        {"found", "\xc2", 1, "ok"},
        {"found", "\x01", 1, "bad_field"},
        {"key",
         "\xa3"
         "abc",
         4, "ok"},
        {"key",
         "\xd9\x03"
         "abc",
         5, "ok"},
        {"key",
         "\xda\x00\x03"
         "abc",
         6, "ok"},
        {"key",
         "\xdb\x00\x00\x00\x03"
         "abc",
         8, "ok"},
        {"key",
         "\xc4\x03"
         "abc",
         5, "bad_field"},
        {"key",
         "\xc5\x00\x03"
         "abc",
         6, "bad_field"},
        {"key", "\xd4\x01\x02", 3, "bad_field"},
        {"key",
         "\xc7\x02\x01"
         "ab",
         5, "bad_field"},
        {"zz",
         "\xd8\x01"
         "0123456789abcdef",
         18, "ok"},
        {"zz", "\xc8\x00\x01\x01z", 5, "ok"},
        {"zz", "\xca\x40\xa0\x00\x00", 5, "ok"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        size_t n = 0, fl = strlen(cases[i].field);
        static const char head[] = "\x84\xa1v\x01\xa3"
                                   "cmd\xa4"
                                   "dict\xa2op\xa3get";
        memcpy(buf, head, sizeof(head) - 1);
        n = sizeof(head) - 1;
        buf[n++] = (char)(0xa0 | fl);
        memcpy(buf + n, cases[i].field, fl);
        n += fl;
        memcpy(buf + n, cases[i].raw, cases[i].len);
        n += cases[i].len;

        wire_hdr_t h;
        wire_err_t err;
        int r = wire_hdr_decode(buf, n, &zone, &h, &err);
        ck_assert_msg(strcmp(r == 0 ? "ok" : err.code, cases[i].code) == 0,
                      "case %zu (%s): got %s, want %s", i, cases[i].field, r == 0 ? "ok" : err.code,
                      cases[i].code);
        if (r < 0)
            continue;
        /* the reference: msgpack-c's own reading of the value */
        msgpack_object o;
        size_t off = 0;
        ck_assert_int_eq(msgpack_unpack(cases[i].raw, cases[i].len, &off, &zone, &o),
                         MSGPACK_UNPACK_SUCCESS);
        if (strcmp(cases[i].field, "req") == 0) {
            ck_assert(h.has_req);
            ck_assert_uint_eq(h.req, o.via.u64);
        } else if (strcmp(cases[i].field, "delta") == 0) {
            ck_assert(h.has_delta);
            ck_assert(o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
                      o.type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            ck_assert_int_eq(h.delta, o.via.i64);
        } else if (strcmp(cases[i].field, "found") == 0) {
            ck_assert_int_eq(h.found, o.via.boolean);
        } else if (strcmp(cases[i].field, "key") == 0) {
            ck_assert_uint_eq(h.key.len, 3);
            ck_assert_int_eq(memcmp(h.key.ptr, "abc", 3), 0);
        }
        ck_assert(wire_str_eq(h.op, "get"));
        msgpack_zone_clear(&zone);
    }
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("codec");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_roundtrip_submit);
    tcase_add_test(tc, test_roundtrip_result);
    tcase_add_test(tc, test_every_command_roundtrips);
    tcase_add_test(tc, test_every_truncation_rejected);
    tcase_add_test(tc, test_corruption_never_crashes);
    tcase_add_test(tc, test_trailing_bytes_rejected);
    tcase_add_test(tc, test_value_len);
    tcase_add_test(tc, test_dict_fields);
    tcase_add_test(tc, test_progress_and_chunk_fields);
    tcase_add_test(tc, test_huge_declared_containers_rejected);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_depth_limit_is_msgpack_cs);
    tcase_add_test(tc, test_map_and_str_headers);
    tcase_add_test(tc, test_invalid_type_byte);
    tcase_add_test(tc, test_check_accepts_all_types);
    tcase_add_test(tc, test_header_field_errors);
    tcase_add_test(tc, test_header_limits);
    tcase_add_test(tc, test_too_many_keys);
    tcase_add_test(tc, test_required_fields);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_field_table_is_sound);
    tcase_add_test(tc, test_every_field_roundtrips);
    tcase_add_test(tc, test_unset_fields_not_written);
    tcase_add_test(tc, test_every_field_checks_type_and_bound);
    tcase_add_test(tc, test_unknown_fields_ignored);
    tcase_add_test(tc, test_every_name_roundtrips);
    tcase_add_test(tc, test_decode_reads_every_encoding);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(wire_suite());
}
