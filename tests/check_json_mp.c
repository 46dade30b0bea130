/* check_json_mp.c - JSON <-> msgpack: libforq's forq_json_to_msgpack() and
 * forq_msgpack_to_json() (client/json.c), which the forq command uses through its thin layer
 * on jansson values (client/cli/json_mp.c): every type both ways with the exact msgpack bytes
 * where the encoding matters, nesting, integers at the edges of int64 and beyond, floats that
 * JSON cannot hold, bin and ext as {"$base64"} objects, map keys that are not strings, the
 * errors for JSON that has no msgpack form, and the command's layer round trip. */
#include "json_mp.h"
#include "testutil.h"

#include <check.h>
#include <forq/forq.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pack the JSON text `js` (any value); returns 0 with the bytes in *sb (caller destroys), or -1
 * with the reason in err. */
static int pack_json(const char *js, msgpack_sbuffer *sb, char *err, size_t errlen)
{
    void *data = NULL;
    size_t len = 0;
    forq_err_t e = forq_json_to_msgpack(js, &data, &len);

    msgpack_sbuffer_init(sb);
    err[0] = '\0';
    if (e != FORQ_OK) {
        ck_assert_int_eq(e, FORQ_ERR_INVALID);
        snprintf(err, errlen, "%s", forq_errdetail());
        return -1;
    }
    msgpack_sbuffer_write(sb, data, len);
    free(data);
    return 0;
}

/* JSON text `js` must pack to exactly `want` (n bytes). */
static void expect_bytes(const char *js, const void *want, size_t n)
{
    msgpack_sbuffer sb;
    char err[128];

    ck_assert_msg(pack_json(js, &sb, err, sizeof(err)) == 0, "%s: %s", js, err);
    ck_assert_msg(sb.size == n && memcmp(sb.data, want, n) == 0, "%s packed to %zu bytes", js,
                  sb.size);
    msgpack_sbuffer_destroy(&sb);
}
#define EXPECT_BYTES(js, lit) expect_bytes(js, lit, sizeof(lit) - 1)

/* The msgpack bytes (one value) as compact JSON with sorted keys; caller frees. */
static char *to_json(const void *data, size_t len)
{
    char *text, *s;
    json_error_t jerr;

    ck_assert_msg(forq_msgpack_to_json(data, len, &text) == FORQ_OK, "%s", forq_errdetail());
    /* the library keeps the keys' order; sorted here, so a test does not depend on it */
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(j != NULL, "forq_msgpack_to_json wrote %s: %s", text, jerr.text);
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    ck_assert_ptr_nonnull(s);
    json_decref(j);
    free(text);
    return s;
}

/* msgpack bytes `mp` must come out as the JSON text `want`. */
static void expect_json(const void *mp, size_t n, const char *want)
{
    char *got = to_json(mp, n);
    ck_assert_msg(strcmp(got, want) == 0, "got %s, want %s", got, want);
    free(got);
}
#define EXPECT_JSON(lit, want) expect_json(lit, sizeof(lit) - 1, want)

/* JSON -> msgpack -> JSON gives `want` (the same text for most values). */
static void expect_round_trip(const char *js, const char *want)
{
    msgpack_sbuffer sb;
    char err[128];

    ck_assert_msg(pack_json(js, &sb, err, sizeof(err)) == 0, "%s: %s", js, err);
    char *got = to_json(sb.data, sb.size);
    ck_assert_msg(strcmp(got, want) == 0, "%s came back as %s, want %s", js, got, want);
    free(got);
    msgpack_sbuffer_destroy(&sb);
}

/* Packing `js` fails with a reason containing `reason`. */
static void expect_error(const char *js, const char *reason)
{
    msgpack_sbuffer sb;
    char err[128];

    ck_assert_msg(pack_json(js, &sb, err, sizeof(err)) == -1, "%s packed", js);
    ck_assert_msg(strstr(err, reason) != NULL, "%s: reason '%s', want '%s'", js, err, reason);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(test_scalars_to_msgpack)
{
    EXPECT_BYTES("null", "\xc0");
    EXPECT_BYTES("true", "\xc3");
    EXPECT_BYTES("false", "\xc2");
    /* integers take msgpack's smallest form */
    EXPECT_BYTES("0", "\x00");
    EXPECT_BYTES("127", "\x7f");
    EXPECT_BYTES("128", "\xcc\x80");
    EXPECT_BYTES("-1", "\xff");
    EXPECT_BYTES("-32", "\xe0");
    EXPECT_BYTES("-33", "\xd0\xdf");
    EXPECT_BYTES("65536", "\xce\x00\x01\x00\x00");
    EXPECT_BYTES("9223372036854775807", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
    EXPECT_BYTES("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
    /* a JSON real is a float64, even when whole */
    EXPECT_BYTES("1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
    EXPECT_BYTES("2.0", "\xcb\x40\x00\x00\x00\x00\x00\x00\x00");
    EXPECT_BYTES("-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00");
    /* strings: fixstr, str8, UTF-8 passed through as bytes */
    EXPECT_BYTES("\"\"", "\xa0");
    EXPECT_BYTES("\"abc\"", "\xa3"
                            "abc");
    EXPECT_BYTES("\"\\u00e9\"", "\xa2\xc3\xa9");
    EXPECT_BYTES("\"a\\u0000b\"", "\xa3"
                                  "a\0b"); /* an embedded NUL is kept */
    EXPECT_BYTES("\"0123456789012345678901234567890123456789\"",
                 "\xd9\x28"
                 "0123456789012345678901234567890123456789");
}
END_TEST

START_TEST(test_containers_to_msgpack)
{
    EXPECT_BYTES("[]", "\x90");
    EXPECT_BYTES("{}", "\x80");
    EXPECT_BYTES("[1,[2,[3]]]", "\x92\x01\x92\x02\x91\x03");
    EXPECT_BYTES("{\"a\":1}", "\x81\xa1"
                              "a\x01");
    EXPECT_BYTES("{\"a\":{\"b\":[null,true]}}", "\x81\xa1"
                                                "a\x81\xa1"
                                                "b\x92\xc0\xc3");
    /* 16 elements take array16 */
    EXPECT_BYTES("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
                 "\xdc\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
}
END_TEST

START_TEST(test_base64_object_is_bin)
{
    EXPECT_BYTES("{\"$base64\":\"AAEC/w==\"}", "\xc4\x04\x00\x01\x02\xff");
    EXPECT_BYTES("{\"$base64\":\"\"}", "\xc4\x00");
    EXPECT_BYTES("[{\"$base64\":\"YQ==\"}]", "\x91\xc4\x01"
                                             "a");
    /* with any other key it is a plain map (so {"$ext", "$base64"} does not make ext) */
    EXPECT_BYTES("{\"$base64\":\"YQ==\",\"x\":1}", "\x82\xa7$base64\xa4YQ==\xa1x\x01");
    EXPECT_BYTES("{\"$ext\":5,\"$base64\":\"YQ==\"}", "\x82\xa4$ext\x05\xa7$base64\xa4YQ==");
}
END_TEST

START_TEST(test_errors)
{
    expect_error("{\"$base64\":5}", "must hold a base64 string");
    expect_error("{\"$base64\":null}", "must hold a base64 string");
    expect_error("{\"$base64\":\"not base64!\"}", "must hold a base64 string");
    expect_error("{\"$base64\":\"YQ=\"}", "must hold a base64 string"); /* truncated */
    /* the error comes up from any depth */
    expect_error("[1,2,{\"$base64\":[]}]", "must hold a base64 string");
    expect_error("{\"k\":[{\"deep\":{\"$base64\":\"%%%\"}}]}", "must hold a base64 string");
}
END_TEST

START_TEST(test_scalars_to_json)
{
    EXPECT_JSON("\xc0", "null");
    EXPECT_JSON("\xc3", "true");
    EXPECT_JSON("\xc2", "false");
    EXPECT_JSON("\x05", "5");
    EXPECT_JSON("\xe0", "-32");
    EXPECT_JSON("\xcd\x01\x00", "256");
    EXPECT_JSON("\xd1\xff\x00", "-256");
    EXPECT_JSON("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", "9223372036854775807");
    EXPECT_JSON("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "-9223372036854775808");
    /* unsigned past int64: JSON (jansson) has no such integer, so a real */
    EXPECT_JSON("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", "9.2233720368547758e18");
    EXPECT_JSON("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "1.8446744073709552e19");
    /* floats, 32 and 64 bits */
    EXPECT_JSON("\xca\x3f\xc0\x00\x00", "1.5");
    EXPECT_JSON("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", "1.5");
    EXPECT_JSON("\xcb\xc0\x5e\xdd\x2f\x1a\x9f\xbe\x77", "-123.456");
    /* NaN and the infinities have no JSON: null */
    EXPECT_JSON("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", "null");
    EXPECT_JSON("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", "null");
    EXPECT_JSON("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", "null");
    EXPECT_JSON("\xca\x7f\x80\x00\x00", "null");
    /* strings, str8 and str16 forms the same */
    EXPECT_JSON("\xa3"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xd9\x03"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xda\x00\x03"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xa2\xc3\xa9", "\"\xc3\xa9\""); /* UTF-8 out as it is */
}
END_TEST

START_TEST(test_bytes_to_json)
{
    /* bin: {"$base64"}, any length, the empty one too */
    EXPECT_JSON("\xc4\x04\x00\x01\x02\xff", "{\"$base64\":\"AAEC/w==\"}");
    EXPECT_JSON("\xc4\x00", "{\"$base64\":\"\"}");
    EXPECT_JSON("\xc5\x00\x02xy", "{\"$base64\":\"eHk=\"}");
    /* a str that is not UTF-8 shows its bytes rather than fail */
    EXPECT_JSON("\xa2\xff\xfe", "{\"$base64\":\"//4=\"}");
    /* ext: its type alongside, negative types too */
    EXPECT_JSON("\xd4\x05\x61", "{\"$base64\":\"YQ==\",\"$ext\":5}");
    EXPECT_JSON("\xd5\xff\x61\x62", "{\"$base64\":\"YWI=\",\"$ext\":-1}");
    EXPECT_JSON("\xc7\x00\x07", "{\"$base64\":\"\",\"$ext\":7}");
}
END_TEST

START_TEST(test_containers_to_json)
{
    EXPECT_JSON("\x90", "[]");
    EXPECT_JSON("\x80", "{}");
    EXPECT_JSON("\x93\x01\x92\x02\x91\x03\xc0", "[1,[2,[3]],null]");
    EXPECT_JSON("\x82\xa1"
                "b\x02\xa1"
                "a\x91\xc3",
                "{\"a\":[true],\"b\":2}");
    /* keys that are not strings are written as their JSON text */
    EXPECT_JSON("\x81\x01\xa1x", "{\"1\":\"x\"}");
    EXPECT_JSON("\x81\xc0\x02", "{\"null\":2}");
    EXPECT_JSON("\x81\x92\x01\x02\x03", "{\"[1,2]\":3}");
    EXPECT_JSON("\x81\xc4\x01"
                "a\x04",
                "{\"{\\\"$base64\\\":\\\"YQ==\\\"}\":4}");
    /* a repeated key: the last value wins; a string key ends at a NUL */
    EXPECT_JSON("\x82\xa1k\x01\xa1k\x02", "{\"k\":2}");
    EXPECT_JSON("\x81\xa3k\0z\x01", "{\"k\":1}");
    /* nesting as deep as msgpack-c unpacks (its stack holds 32 levels) */
    char deep[32];
    for (int i = 0; i < 31; i++)
        deep[i] = (char)0x91;
    deep[31] = (char)0xc0;
    char *got = to_json(deep, sizeof(deep));
    ck_assert_uint_eq(strlen(got), 31 * 2 + 4);
    ck_assert(strncmp(got, "[[[[", 4) == 0);
    ck_assert(strstr(got, "[null]") != NULL);
    free(got);
}
END_TEST

START_TEST(test_round_trips)
{
    const char *same[] = {
        "null",
        "true",
        "[]",
        "{}",
        "-1",
        "0",
        "4294967296",
        "-9223372036854775808",
        "9223372036854775807",
        "1.5",
        "-0.25",
        "1.8446744073709552e19", /* 2^64: exact in 17 digits */
        "\"caf\xc3\xa9 \xe2\x98\x83\"",
        "\"\"", /* msgpack-c gives a NULL pointer for an empty str: still "" */
        "[1,\"two\",{\"3\":[true,null]}]",
        "{\"$base64\":\"AAEC/w==\"}",
        "{\"a\":{\"b\":{\"c\":[[],{},[{\"$base64\":\"\"}]]}},\"z\":-7}",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        expect_round_trip(same[i], same[i]);
    /* a whole real stays a real */
    expect_round_trip("2.0", "2.0");
    /* an object of $ext and $base64 is a map on the way in: it comes back as the same map */
    expect_round_trip("{\"$base64\":\"YQ==\",\"$ext\":5}", "{\"$base64\":\"YQ==\",\"$ext\":5}");
}
END_TEST

/* msgpack -> JSON -> msgpack keeps the value, for what JSON can hold. */
START_TEST(test_msgpack_round_trip)
{
    msgpack_sbuffer sb, back;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    char err[128];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "ints", 4);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_uint64(&pk, 300);
    msgpack_pack_int64(&pk, INT64_MAX);
    msgpack_pack_str_with_body(&pk, "bin", 3);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 0.1);

    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    json_t *j = msgpack_to_json(&o);
    ck_assert_ptr_nonnull(j);
    msgpack_sbuffer_init(&back);
    msgpack_packer_init(&pk, &back, msgpack_sbuffer_write);
    ck_assert_int_eq(json_to_msgpack(j, &pk, err, sizeof(err)), 0);
    json_decref(j);
    /* the same bytes: key order is kept and every value takes the same form */
    ck_assert_uint_eq(back.size, sb.size);
    ck_assert_mem_eq(back.data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&back);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
}
END_TEST

START_TEST(test_long_values)
{
    /* a long string and a long bin both ways */
    size_t n = 100000;
    char *s = malloc(n + 3);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[128];

    s[0] = '"';
    for (size_t i = 1; i <= n; i++)
        s[i] = (char)('a' + i % 26);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    ck_assert_int_eq(pack_json(s, &sb, err, sizeof(err)), 0);
    ck_assert_uint_eq(sb.size, n + 5); /* str32 */
    ck_assert_uint_eq((uint8_t)sb.data[0], 0xdb);
    char *back = to_json(sb.data, sb.size);
    ck_assert_str_eq(back, s);
    free(back);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, s, n);
    back = to_json(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_uint_eq(strlen(back), strlen("{\"$base64\":\"\"}") + (n + 2) / 3 * 4);
    ck_assert_int_eq(pack_json(back, &sb, err, sizeof(err)), 0);
    ck_assert_uint_eq(sb.size, n + 5); /* bin32 */
    ck_assert_uint_eq((uint8_t)sb.data[0], 0xc6);
    ck_assert_mem_eq(sb.data + 5, s, n);
    msgpack_sbuffer_destroy(&sb);
    free(back);
    free(s);
}
END_TEST

static Suite *json_mp_suite(void)
{
    Suite *s = suite_create("json_mp");
    TCase *tc = tcase_create("json_mp");

    tcase_add_test(tc, test_scalars_to_msgpack);
    tcase_add_test(tc, test_containers_to_msgpack);
    tcase_add_test(tc, test_base64_object_is_bin);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_scalars_to_json);
    tcase_add_test(tc, test_bytes_to_json);
    tcase_add_test(tc, test_containers_to_json);
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_msgpack_round_trip);
    tcase_add_test(tc, test_long_values);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(json_mp_suite());
}
