/* wire_read.c - reading untrusted msgpack bytes in place: the structural check every frame from
 * the network passes before anything is unpacked, and the readers that then take values out of
 * checked bytes without allocating (a header's scalars, a map's or a string's header, a
 * value's length).
 *
 * wire_check() is a single pass over the bytes with a small stack of "elements still to read"
 * per open container. It keeps the sum of all pending elements and refuses a container whose
 * declared count, added to that sum, exceeds the bytes left: every element takes at least one
 * byte, so a frame that passes cannot make msgpack-c reserve more than a small multiple of its
 * own size. Strings, binaries and extensions must fit in what remains. Exactly one value, no
 * trailing bytes. */
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(wire_err_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(wire_err_t *err, const char *code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->field = NULL;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

uint64_t wire_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Check the one value at the start of data; *ret_len gets its length. */
static int check_one(const void *data, size_t len, unsigned max_depth, size_t *ret_len,
                     wire_err_t *err)
{
    const uint8_t *p = data;
    size_t pos = 0;
    uint64_t stack[WIRE_DEPTH_MAX + 1];
    unsigned depth = 0;
    uint64_t pending = 1; /* elements declared and not yet read, all levels */

    if (max_depth > WIRE_DEPTH_MAX)
        max_depth = WIRE_DEPTH_MAX;
    if (len == 0)
        return fail(err, "bad_message", "empty frame where a msgpack value was expected");
    stack[0] = 1;
    for (;;) {
        while (stack[depth] == 0) {
            if (depth == 0)
                goto done;
            depth--;
        }
        if (pos >= len)
            return fail(err, "bad_message", "msgpack value truncated at byte %zu", pos);
        stack[depth]--;
        pending--;

        uint8_t b = p[pos++];
        size_t left = len - pos;
        uint64_t n = 0;    /* container elements */
        uint64_t skip = 0; /* bytes of scalar body */
        unsigned lenb = 0; /* bytes of a length field */
        bool container = false;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool: nothing follows */
        } else if (b >= 0x80 && b <= 0x8f) {
            n = 2u * (b & 0x0f);
            container = true;
        } else if (b >= 0x90 && b <= 0x9f) {
            n = b & 0x0f;
            container = true;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            /* one line per type byte reads better than clang-format's layout */
            /* clang-format off */
            switch (b) {
            case 0xc4: case 0xd9: lenb = 1; break;             /* bin8, str8 */
            case 0xc5: case 0xda: lenb = 2; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: lenb = 4; break;             /* bin32, str32 */
            case 0xc7: lenb = 1; skip = 1; break;              /* ext8: len, type */
            case 0xc8: lenb = 2; skip = 1; break;              /* ext16 */
            case 0xc9: lenb = 4; skip = 1; break;              /* ext32 */
            case 0xca: skip = 4; break;                        /* float32 */
            case 0xcb: skip = 8; break;                        /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                        /* fixext1..16: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: lenb = 2; container = true; break;      /* array16 */
            case 0xdd: lenb = 4; container = true; break;      /* array32 */
            case 0xde: lenb = 2; container = true; break;      /* map16 */
            case 0xdf: lenb = 4; container = true; break;      /* map32 */
            default:
                return fail(err, "bad_message", "invalid msgpack type byte 0x%02x at byte %zu",
                            b, pos - 1);
            }
            /* clang-format on */
        }
        if (lenb) {
            if (left < lenb)
                return fail(err, "bad_message", "msgpack length field truncated at byte %zu", pos);
            uint64_t v = wire_be(p + pos, lenb);
            pos += lenb;
            left -= lenb;
            if (container)
                n = (b == 0xde || b == 0xdf) ? 2 * v : v;
            else
                skip += v;
        }
        if (container) {
            if (n > left || pending + n > left)
                return fail(err, "bad_message",
                            "msgpack container at byte %zu declares %llu elements but only %zu "
                            "bytes follow",
                            pos, (unsigned long long)n, left);
            /* an empty container is a level too: msgpack-c opens it like any other */
            if (depth + 1 > max_depth)
                return fail(err, "too_deep", "msgpack value nested deeper than %u levels",
                            max_depth);
            if (n > 0) {
                stack[++depth] = n;
                pending += n;
            }
        } else if (skip) {
            if (skip > left)
                return fail(err, "bad_message",
                            "msgpack value at byte %zu declares %llu bytes but only %zu follow",
                            pos, (unsigned long long)skip, left);
            pos += skip;
        }
    }
done:
    *ret_len = pos;
    return 0;
}

int wire_check(const void *data, size_t len, unsigned max_depth, wire_err_t *err)
{
    size_t n;
    int r = check_one(data, len, max_depth, &n, err);
    if (r < 0)
        return r;
    if (n != len)
        return fail(err, "bad_message", "%zu trailing bytes after the msgpack value", len - n);
    return 0;
}

int wire_map_header(const void *data, size_t len, uint32_t *ret_n, size_t *ret_off)
{
    const uint8_t *p = data;

    if (len >= 1 && (p[0] & 0xf0) == 0x80) {
        *ret_n = p[0] & 0x0f;
        *ret_off = 1;
    } else if (len >= 3 && p[0] == 0xde) {
        *ret_n = (uint32_t)wire_be(p + 1, 2);
        *ret_off = 3;
    } else if (len >= 5 && p[0] == 0xdf) {
        *ret_n = (uint32_t)wire_be(p + 1, 4);
        *ret_off = 5;
    } else {
        return -1;
    }
    return 0;
}

int wire_str_header(const void *data, size_t len, const char **ret, size_t *ret_len,
                    size_t *ret_next)
{
    const uint8_t *p = data;
    size_t h, n;

    if (len >= 1 && (p[0] & 0xe0) == 0xa0)
        h = 1, n = p[0] & 0x1f;
    else if (len >= 2 && p[0] == 0xd9)
        h = 2, n = p[1];
    else if (len >= 3 && p[0] == 0xda)
        h = 3, n = (size_t)wire_be(p + 1, 2);
    else if (len >= 5 && p[0] == 0xdb)
        h = 5, n = (size_t)wire_be(p + 1, 4);
    else
        return -1;
    if (n > len - h)
        return -1;
    *ret = (const char *)p + h;
    *ret_len = n;
    *ret_next = h + n;
    return 0;
}

int wire_value_len(const void *data, size_t len, unsigned max_depth, size_t *ret_len,
                   wire_err_t *err)
{
    return check_one(data, len, max_depth, ret_len, err);
}

int wire_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *ret,
                wire_err_t *err)
{
    size_t off = 0;
    int r = wire_check(data, len, WIRE_DEPTH_MAX, err);
    if (r < 0)
        return r;
    if (msgpack_unpack(data, len, &off, zone, ret) != MSGPACK_UNPACK_SUCCESS)
        return fail(err, "bad_message", "msgpack value could not be unpacked");
    return 0;
}

/* ---- names ---- */

/* Read the scalar (or empty container) at p[*pos] into o, as msgpack_unpack would have it, and
 * step past it. Only for bytes wire_check() proved: every length is backed by the frame, no
 * container holds anything (depth 1 below the map). */
void wire_read_scalar(const uint8_t *p, size_t *pos, msgpack_object *o)
{
    uint8_t b = p[(*pos)++];
    uint64_t u;
    unsigned n = 0; /* bytes of a fixed-width body, or of a length field (str, bin, ext) */

    memset(o, 0, sizeof(*o));
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
        return;
    }
    if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
        return;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.size = b & 0x1f;
        o->via.str.ptr = (const char *)p + *pos;
        *pos += o->via.str.size;
        return;
    }
    if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)) {
        /* an empty container (wire_check refused a full one below the header) */
        o->type = (b <= 0x8f || b >= 0xde) ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY;
        *pos += b >= 0xdc ? (b == 0xdc || b == 0xde ? 2 : 4) : 0;
        return;
    }
    switch (b) {
    case 0xc0:
        o->type = MSGPACK_OBJECT_NIL;
        return;
    case 0xc2:
    case 0xc3:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
        return;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        n = 1u << (b - 0xcc);
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = wire_be(p + *pos, n);
        *pos += n;
        return;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int64_t i;
        n = 1u << (b - 0xd0);
        u = wire_be(p + *pos, n);
        *pos += n;
        /* sign-extend the n-byte two's complement */
        i = n == 8 ? (int64_t)u : (int64_t)(u << (64 - 8 * n)) >> (64 - 8 * n);
        if (i < 0) {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = i;
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)i;
        }
        return;
    }
    case 0xca:
    case 0xcb:
        n = b == 0xca ? 4 : 8;
        u = wire_be(p + *pos, n);
        *pos += n;
        if (n == 4) {
            uint32_t u32 = (uint32_t)u;
            float fl;
            memcpy(&fl, &u32, sizeof(fl));
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = fl;
        } else {
            o->type = MSGPACK_OBJECT_FLOAT64;
            memcpy(&o->via.f64, &u, sizeof(u));
        }
        return;
    case 0xd9:
    case 0xda:
    case 0xdb:
    case 0xc4:
    case 0xc5:
    case 0xc6:
        n = b >= 0xd9 ? 1u << (b - 0xd9) : 1u << (b - 0xc4);
        o->type = b >= 0xd9 ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN;
        o->via.str.size = (uint32_t)wire_be(p + *pos, n); /* bin's view has the same layout */
        *pos += n;
        o->via.str.ptr = (const char *)p + *pos;
        *pos += o->via.str.size;
        return;
    default: /* ext: fixext1..16 (0xd4..0xd8), ext8/16/32 (0xc7..0xc9) */
        o->type = MSGPACK_OBJECT_EXT;
        if (b >= 0xd4) {
            u = 1u << (b - 0xd4);
        } else {
            n = 1u << (b - 0xc7);
            u = wire_be(p + *pos, n);
            *pos += n;
        }
        o->via.ext.type = (int8_t)p[*pos];
        o->via.ext.size = (uint32_t)u;
        o->via.ext.ptr = (const char *)p + *pos + 1;
        *pos += 1 + u;
        return;
    }
}
