/* dictlog_replay.c - the dict log's replay at open and the recovery of a damaged log (see
 * dictlog.h for the format and what recovery promises; dictlog.c opens, writes and compacts).
 *
 * The whole file is read into memory and walked frame by frame. A frame is applied only when its
 * checksum verifies and every record in it is well formed. Past a damaged stretch, resync finds
 * where intact frames start again, and lost_records says what the stretch held, for the report. */
#define _GNU_SOURCE
#include "dictlog_int.h"

#include "util.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool str_of(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *p = o->via.str.ptr;
    *n = o->via.str.size;
    return true;
}

/* Check one frame's records and, when all of them are good and store is not NULL, apply them:
 * a frame is all or nothing, so nothing is applied before every record has been checked.
 * Returns false if a record is malformed. */
static bool records(dstore_t *store, const msgpack_object *recs)
{
    if (recs->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (int pass = 0; pass < (store ? 2 : 1); pass++) {
        for (uint32_t i = 0; i < recs->via.array.size; i++) {
            const msgpack_object *r = &recs->via.array.ptr[i];
            const char *name, *key;
            size_t nlen, klen;
            if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size < 2 ||
                r->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                !str_of(&r->via.array.ptr[1], &name, &nlen))
                return false;
            const msgpack_object *a = r->via.array.ptr;
            switch (a[0].via.u64) {
            case REC_SET: /* forqd never wrote a key longer than DICT_KEY_MAX */
                if (r->via.array.size != 5 || !str_of(&a[2], &key, &klen) || klen > DICT_KEY_MAX ||
                    a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].type != MSGPACK_OBJECT_BIN)
                    return false;
                if (pass == 1)
                    dstore_restore(store, name, nlen, key, klen, a[4].via.bin.ptr,
                                   a[4].via.bin.size, a[3].via.u64);
                break;
            case REC_DEL:
                if (r->via.array.size != 3 || !str_of(&a[2], &key, &klen))
                    return false;
                if (pass == 1)
                    dstore_forget(store, name, nlen, key, klen);
                break;
            case REC_CLEAR:
                if (r->via.array.size > 3 ||
                    (r->via.array.size == 3 && a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER))
                    return false;
                if (pass == 1 && r->via.array.size == 3)
                    dstore_restore_version(store, a[2].via.u64);
                if (pass == 1) /* for "", as a forqd before the counter record did */
                    dstore_forget(store, name, nlen, NULL, 0);
                break;
            default:
                return false;
            }
        }
    }
    return true;
}

/* What replay found, while it reads. */
typedef struct {
    const uint8_t *buf;
    uint64_t size;
    uint64_t scan_budget; /* payload bytes the resynchronising scan may still checksum */
    int named;            /* keys named in the report so far */
} scan_t;

/* Is there a whole frame at off whose checksum verifies? Its payload length in *ret_len. */
static bool frame_sums(const scan_t *sc, uint64_t off, uint32_t *ret_len)
{
    uint32_t len;

    if (sc->size - off < FRAME_HDR)
        return false;
    len = get_le32(sc->buf + off);
    if (len > FRAME_MAX || len > sc->size - off - FRAME_HDR)
        return false;
    *ret_len = len;
    return crc32(0L, sc->buf + off + FRAME_HDR, len) == get_le32(sc->buf + off + 4);
}

/* Is the frame at off intact: its checksum verifies and every record in it is well formed?
 * With store, also apply it (all records or none). */
static bool frame_intact(const scan_t *sc, uint64_t off, dstore_t *store, uint32_t *ret_len)
{
    msgpack_zone zone;
    msgpack_object o;
    wire_err_t werr;
    bool ok;

    if (!frame_sums(sc, off, ret_len))
        return false;
    msgpack_zone_init(&zone, 4096);
    ok = wire_unpack(sc->buf + off + FRAME_HDR, *ret_len, &zone, &o, &werr) == 0 &&
         records(store, &o);
    msgpack_zone_destroy(&zone);
    return ok;
}

/* Could a frame start at off? A cheap look before the checksum: we only ever write a payload
 * that is an array of at least one record, and a record starts with a 2-, 3- or 5-array and its
 * type (0, 1 or 2). Random bytes pass this about once in 100,000 offsets. */
static bool frame_plausible(const scan_t *sc, uint64_t off)
{
    const uint8_t *p = sc->buf + off + FRAME_HDR;
    uint64_t left = sc->size - off;
    size_t h;

    if (left < FRAME_HDR + 3 || get_le32(sc->buf + off) < 3 ||
        get_le32(sc->buf + off) > left - FRAME_HDR)
        return false;
    if (p[0] >= 0x91 && p[0] <= 0x9f)
        h = 1;
    else if (p[0] == 0xdc)
        h = 3;
    else if (p[0] == 0xdd)
        h = 5;
    else
        return false;
    if (left < FRAME_HDR + h + 2)
        return false;
    return (p[h] == 0x92 || p[h] == 0x93 || p[h] == 0x95) && p[h + 1] <= REC_CLEAR;
}

/* The damaged stretch starts at off: find where intact frames start again. First where the
 * damaged frame says it ends (a flipped bit in a payload leaves its length right: the next frame
 * is exactly there); failing that, the first offset after off where a frame is plausible, its
 * CRC-32 verifies and its records are well formed. A false start needs 32 bits of checksum and
 * the record shape to match by chance (below 1 in 10^14 per offset for random bytes); only a
 * value a client stored that holds a whole forged frame could pass, and only when the damage hit
 * the length field of the frame around it. The checksumming is bounded by scan_budget, so a
 * file full of plausible starts cannot make recovery quadratic. Returns size when nothing
 * intact follows; *ret_by_length tells which way it was found. */
static uint64_t resync(scan_t *sc, uint64_t off, bool *ret_by_length)
{
    uint32_t len;

    *ret_by_length = false;
    if (sc->size - off >= FRAME_HDR) {
        uint64_t end = off + FRAME_HDR + (uint64_t)get_le32(sc->buf + off);
        if (end < sc->size && frame_intact(sc, end, NULL, &len)) {
            *ret_by_length = true;
            return end;
        }
    }
    for (uint64_t p = off + 1; p + FRAME_HDR <= sc->size; p++) {
        if (!frame_plausible(sc, p))
            continue;
        uint32_t want = get_le32(sc->buf + p);
        if (want > sc->scan_budget)
            continue;
        sc->scan_budget -= want;
        if (frame_intact(sc, p, NULL, &len))
            return p;
    }
    return sc->size;
}

/* Count the records of a damaged frame that can still be read, naming up to three keys.
 * Returns -1 when the stretch is not one frame whose records can be read. */
static int64_t lost_records(scan_t *sc, uint64_t off, uint64_t end, char *names, size_t nsize)
{
    msgpack_zone zone;
    msgpack_object o;
    wire_err_t werr;
    int64_t n = -1;

    if (end - off < FRAME_HDR || get_le32(sc->buf + off) != end - off - FRAME_HDR)
        return -1;
    msgpack_zone_init(&zone, 4096);
    if (wire_unpack(sc->buf + off + FRAME_HDR, end - off - FRAME_HDR, &zone, &o, &werr) == 0 &&
        o.type == MSGPACK_OBJECT_ARRAY) {
        n = o.via.array.size;
        for (uint32_t i = 0; i < o.via.array.size; i++) {
            const msgpack_object *r = &o.via.array.ptr[i];
            const char *name, *key = "*";
            size_t nlen, klen = 1, used = strlen(names);
            if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size < 2 ||
                !str_of(&r->via.array.ptr[1], &name, &nlen) || used + 8 >= nsize)
                continue;
            if (r->via.array.size >= 3 && !str_of(&r->via.array.ptr[2], &key, &klen))
                continue;
            if (sc->named++ == 3)
                break;
            snprintf(names + used, nsize - used, "%s%.*s/%.*s", used ? ", " : "",
                     (int)(nlen > 64 ? 64 : nlen), name, (int)(klen > 64 ? 64 : klen), key);
        }
    }
    msgpack_zone_destroy(&zone);
    return n;
}

/* See dictlog_int.h; damaged stretches are skipped as resync finds them. */
uint64_t dictlog_replay(int fd, uint64_t size, dstore_t *store, dictlog_report_t *rep)
{
    uint8_t *buf = xmalloc(size ? size : 1);
    uint64_t off = 0, tail;
    size_t got = 0;
    scan_t sc;

    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    sc = (scan_t){buf, got, 64 * (uint64_t)got + (64u << 20), 0};
    tail = got;
    dstore_quiet(store, true);
    while (off < got) {
        uint32_t len;
        bool by_length, sums;
        uint64_t next;

        if (frame_intact(&sc, off, store, &len)) {
            rep->frames_kept++;
            off += FRAME_HDR + len;
            continue;
        }
        sums = frame_sums(&sc, off, &len); /* checksum good, records bad: never a crash */
        next = resync(&sc, off, &by_length);
        if (next == got && !sums && !rep->damaged) {
            /* nothing intact after it: the tail a crash in the middle of a write leaves */
            tail = off;
            break;
        }
        rep->damaged = true;
        rep->frames_lost++;
        if (!by_length)
            rep->frames_lost_more = true; /* the stretch may have held more than one frame */
        rep->bytes_lost += next - off;
        int64_t nrec = lost_records(&sc, off, next, rep->keys_lost, sizeof(rep->keys_lost));
        if (nrec < 0)
            rep->records_unknown = true;
        else
            rep->records_lost += (uint64_t)nrec;
        off = next;
    }
    dstore_quiet(store, false);
    free(buf);
    if (got < size) /* a short read: what was not read is not replayed, nor cut */
        rep->damaged = true;
    return tail;
}

/* Copy the file open at fd to a new file at path, synced. 0 or -errno. */
static int copy_file(int fd, const char *path, int dirfd)
{
    char buf[65536];
    off_t off = 0;
    ssize_t n;
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), r = 0;

    if (out < 0)
        return -errno;
    while (r == 0 && (n = pread(fd, buf, sizeof(buf), off)) != 0) {
        if (n < 0)
            r = errno == EINTR ? 0 : -errno;
        else if ((r = dictlog_write_all(out, buf, (size_t)n)) == 0)
            off += n;
    }
    if (r == 0 && (fsync(out) < 0 || fsync(dirfd) < 0))
        r = -errno;
    close(out);
    if (r < 0)
        unlink(path);
    return r;
}

/* See dictlog_int.h. A hard link leaves dict.log where it is until the recovered log replaces
 * it, so a crash meanwhile loses nothing. */
int dictlog_keep_damaged(const char *path, int fd, int dirfd, dictlog_report_t *rep)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    for (int i = 0; i < 100; i++) {
        free(rep->damaged_path);
        rep->damaged_path = xmalloc(strlen(path) + 64);
        sprintf(rep->damaged_path, "%s.damaged-%s%s%.0d", path, stamp, i ? "-" : "", i);
        if (link(path, rep->damaged_path) == 0)
            return fsync(dirfd) < 0 ? -errno : 0;
        if (errno == EEXIST)
            continue;
        if (errno != EPERM && errno != EOPNOTSUPP && errno != EXDEV)
            return -errno;
        return copy_file(fd, rep->damaged_path, dirfd); /* no hard links here */
    }
    return -EEXIST;
}
