/* dictlog.c - see dictlog.h. */
#define _GNU_SOURCE
#include "dictlog.h"

#include "log.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define FRAME_HDR   8           /* length and crc */
#define FRAME_MAX   (1u << 30)  /* a frame longer than this is corruption */
#define COMPACT_MIN (1u << 20)  /* do not bother compacting a log smaller than this */
#define VER_RESERVE (1u << 16)  /* versions reserved on disk ahead of those handed out */
#define RETRY_MIN   1000u       /* ms before a failed compaction is tried again, doubling */
#define RETRY_MAX   60000u      /* ... up to this */
#define STREAM_BUF  (64u << 10) /* a frame goes out through a buffer of this size */

/* Record types; REC_CLEAR with a third element carries the store's version counter. */
enum { REC_SET = 0, REC_DEL = 1, REC_CLEAR = 2 };

ssize_t (*dictlog_write_fn)(int fd, const void *buf, size_t n) = write;

struct dictlog {
    int fd;     /* the log, O_APPEND */
    int dirfd;  /* the state directory, for syncing renames */
    char *path; /* DIR/dict.log */
    fsync_policy_t policy;
    uint64_t size;         /* bytes in the file */
    msgpack_sbuffer batch; /* records of the pending frame */
    msgpack_packer pk;
    uint32_t nrec; /* records in it */
    bool dirty;    /* written since the last sync */
    uint64_t last_sync_ms;
    uint64_t batch_ver;      /* the highest version in the pending frame's records */
    uint64_t counter;        /* the store's version counter, as last told (dictlog_put_version) */
    uint64_t reserved;       /* versions up to this are on disk as a counter record, synced */
    uint64_t retry_at_ms;    /* no compaction before this (after a failed one) */
    uint32_t retry_ms;       /* the current back-off: 0 after a success */
    dictlog_report_t report; /* what the replay at open found */
    uint8_t *wbuf;           /* STREAM_BUF bytes: frames are written through it (fw_t) */
};

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write all of buf, through the fault-injection hook. */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = dictlog_write_fn(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -ENOSPC;
        p += w;
        n -= (size_t)w;
    }
    return 0;
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

/* Replay the file into store, frame by frame, skipping damaged stretches (see resync). Fills
 * rep; returns the offset where a torn tail starts (the file's size when there is none). */
static uint64_t replay(int fd, uint64_t size, dstore_t *store, dictlog_report_t *rep)
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
        else if ((r = write_all(out, buf, (size_t)n)) == 0)
            off += n;
    }
    if (r == 0 && (fsync(out) < 0 || fsync(dirfd) < 0))
        r = -errno;
    close(out);
    if (r < 0)
        unlink(path);
    return r;
}

/* Keep the damaged log as PATH.damaged-<UTC time> (a hard link: dict.log stays where it is until
 * the recovered log replaces it, so a crash meanwhile loses nothing). */
static int keep_damaged(dictlog_t *l)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    for (int i = 0; i < 100; i++) {
        free(l->report.damaged_path);
        l->report.damaged_path = xmalloc(strlen(l->path) + 64);
        sprintf(l->report.damaged_path, "%s.damaged-%s%s%.0d", l->path, stamp, i ? "-" : "", i);
        if (link(l->path, l->report.damaged_path) == 0)
            return fsync(l->dirfd) < 0 ? -errno : 0;
        if (errno == EEXIST)
            continue;
        if (errno != EPERM && errno != EOPNOTSUPP && errno != EXDEV)
            return -errno;
        return copy_file(l->fd, l->report.damaged_path, l->dirfd); /* no hard links here */
    }
    return -EEXIST;
}

int dictlog_open(const char *dir, fsync_policy_t policy, dstore_t *store, dictlog_t **ret,
                 size_t *ret_truncated, char *err, size_t errlen)
{
    dictlog_t *l;
    struct stat st;
    uint64_t good;
    int r;

    *ret_truncated = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create the state directory %s: %s", dir, strerror(errno));
        return r;
    }
    l = xcalloc(1, sizeof(*l));
    l->policy = policy;
    l->path = xmalloc(strlen(dir) + sizeof("/dict.log"));
    sprintf(l->path, "%s/dict.log", dir);
    msgpack_sbuffer_init(&l->batch);
    msgpack_packer_init(&l->pk, &l->batch, msgpack_sbuffer_write);
    l->wbuf = xmalloc(STREAM_BUF);
    l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    l->fd = open(l->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (l->dirfd < 0 || l->fd < 0 || fstat(l->fd, &st) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open the dict log %s: %s", l->path, strerror(errno));
        dictlog_close(&l);
        return r;
    }
    err[0] = '\0';
    good = replay(l->fd, (uint64_t)st.st_size, store, &l->report);
    l->reserved = dstore_version(store); /* a reservation replayed: the store's counter is at it */
    l->size = (uint64_t)st.st_size;
    l->last_sync_ms = now_ms();
    if (l->report.damaged) {
        /* corruption in the middle: keep the file aside, write what was recovered afresh */
        dictlog_report_t *rp = &l->report;
        if ((r = keep_damaged(l)) < 0) {
            snprintf(err, errlen,
                     "the dict log %s is damaged and cannot be kept aside (%s); forqd changed "
                     "nothing: copy it away, free space or fix the directory, and start again",
                     l->path, strerror(-r));
            dictlog_close(&l);
            return r;
        }
        if ((r = dictlog_compact(l, store)) < 0) {
            snprintf(err, errlen,
                     "the dict log %s is damaged and the recovered log cannot be written (%s); "
                     "it is kept as %s: free space and start forqd again",
                     l->path, strerror(-r), rp->damaged_path);
            dictlog_close(&l);
            return r;
        }
        char changes[64];
        if (rp->records_unknown && rp->records_lost == 0)
            snprintf(changes, sizeof(changes), "key changes that cannot be read");
        else
            snprintf(changes, sizeof(changes), "%s%llu key change(s)",
                     rp->records_unknown ? "at least " : "", (unsigned long long)rp->records_lost);
        snprintf(err, errlen,
                 "DATA LOST: the dict log %s was damaged in the middle (a disk error?): %s%llu "
                 "frame(s), %llu bytes, %s%s%s%s lost, %llu intact frames recovered and written "
                 "as a fresh log; the damaged file is kept as %s; check the disk, and the keys "
                 "named",
                 l->path, rp->frames_lost_more ? "at least " : "",
                 (unsigned long long)rp->frames_lost, (unsigned long long)rp->bytes_lost, changes,
                 rp->keys_lost[0] ? " (" : "", rp->keys_lost, rp->keys_lost[0] ? ")" : "",
                 (unsigned long long)rp->frames_kept, rp->damaged_path);
    } else if (good < (uint64_t)st.st_size) {
        /* a torn tail from a crash in the middle of a write: cut it off */
        if (ftruncate(l->fd, (off_t)good) < 0 || fsync(l->fd) < 0) {
            r = -errno;
            snprintf(err, errlen, "cannot truncate the torn tail of %s: %s", l->path,
                     strerror(errno));
            dictlog_close(&l);
            return r;
        }
        l->report.torn_bytes = (uint64_t)st.st_size - good;
        *ret_truncated = (size_t)l->report.torn_bytes;
        l->size = good;
    }
    *ret = l;
    return 0;
}

const dictlog_report_t *dictlog_report(const dictlog_t *l)
{
    return &l->report;
}

/* A record: key holds val at ver (val NULL: key deleted). */
static void pack_record(msgpack_packer *pk, const char *name, size_t nlen, const char *key,
                        size_t klen, const void *val, size_t vlen, uint64_t ver)
{
    msgpack_pack_array(pk, val ? 5 : 3);
    msgpack_pack_int(pk, val ? REC_SET : REC_DEL);
    msgpack_pack_str_with_body(pk, name, nlen);
    msgpack_pack_str_with_body(pk, key, klen);
    if (val) {
        msgpack_pack_uint64(pk, ver);
        msgpack_pack_bin_with_body(pk, val, vlen);
    }
}

void dictlog_put(dictlog_t *l, const char *name, size_t nlen, const char *key, size_t klen,
                 const void *val, size_t vlen, uint64_t ver)
{
    pack_record(&l->pk, name, nlen, key, klen, val, vlen, ver);
    if (val && ver > l->batch_ver)
        l->batch_ver = ver;
    l->nrec++;
}

void dictlog_put_clear(dictlog_t *l, const char *name, size_t nlen)
{
    msgpack_pack_array(&l->pk, 2);
    msgpack_pack_int(&l->pk, REC_CLEAR);
    msgpack_pack_str_with_body(&l->pk, name, nlen);
    l->nrec++;
}

/* The counter record [2, "", ver]: a clear of the dict named "" (no dict has that name) that
 * also says the version counter is at least ver. A forqd from before it replays it as a clear
 * that finds nothing, so a log written now still opens there. */
static void pack_counter(msgpack_packer *pk, uint64_t ver)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, REC_CLEAR);
    msgpack_pack_str_with_body(pk, "", 0);
    msgpack_pack_uint64(pk, ver);
}

void dictlog_put_version(dictlog_t *l, uint64_t ver)
{
    if (ver > l->counter)
        l->counter = ver;
}

static int sync_now(dictlog_t *l)
{
    if (fdatasync(l->fd) < 0)
        return -errno;
    l->dirty = false;
    l->last_sync_ms = now_ms();
    return 0;
}

/* A frame is packed twice rather than held whole: a first pass only measures its payload (the
 * length and CRC-32 that its header holds in front of it), the second writes it through a small
 * buffer. An update's frame is about as large as its request: holding it, and then a copy of it
 * behind the header, cost twice the request again (issue 11 item 3); packing twice costs little
 * next to the store's own work. fw_write is the msgpack_packer's writer for both passes. */
typedef struct {
    int fd;
    uint8_t *buf; /* STREAM_BUF bytes (dictlog_t.wbuf) */
    bool writing; /* the second pass: write, do not measure */
    uint64_t len; /* payload bytes packed */
    uLong crc;    /* their CRC-32 (first pass) */
    size_t used;  /* bytes waiting in buf */
    int err;      /* the first write error (second pass) */
} fw_t;

static void fw_out(fw_t *w, const void *buf, size_t len)
{
    if (w->err)
        return;
    if (w->writing)
        w->err = write_all(w->fd, buf, len);
    else
        w->crc = crc32_z(w->crc, buf, len);
}

static void fw_flush(fw_t *w)
{
    if (w->used)
        fw_out(w, w->buf, w->used);
    w->used = 0;
}

static int fw_write(void *data, const char *buf, size_t len)
{
    fw_t *w = data;

    w->len += len;
    if (w->used + len > STREAM_BUF) {
        fw_flush(w);
        if (len >= STREAM_BUF) { /* a large value goes as it is */
            fw_out(w, buf, len);
            return 0;
        }
    }
    memcpy(w->buf + w->used, buf, len);
    w->used += len;
    return 0;
}

/* An update whose records are packed from its request as the frame is written. */
typedef struct {
    const char *name;
    size_t nlen;
    const dstore_batch_t *b;
    const dstore_plan_t *p;
} upd_t;

/* A frame's payload: nrec records, those packed in batch, then u's (u may be NULL), then the
 * counter record when counter is not 0. */
static void pack_frame(fw_t *w, uint32_t nrec, const msgpack_sbuffer *batch, const upd_t *u,
                       uint64_t counter)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, w, fw_write);
    msgpack_pack_array(&pk, nrec);
    if (batch->size)
        fw_write(w, batch->data, batch->size);
    for (size_t i = 0, k = 0; u && i < u->b->n; i++) {
        dstore_kv_t key, val;
        if (u->p->last[i] == DSTORE_DUP)
            continue; /* one record per key, with its last value, as the store applies it */
        u->b->get(u->b->ud, i, &key);
        u->b->get(u->b->ud, u->p->last[i], &val);
        pack_record(&pk, u->name, u->nlen, key.key, key.klen, val.val, val.vlen,
                    u->p->first_ver + k++);
    }
    if (counter)
        pack_counter(&pk, counter);
    fw_flush(w);
}

/* Write that frame to fd (through l's buffer). 0 or -errno; *ret_len: the bytes written. */
static int write_frame(dictlog_t *l, int fd, uint32_t nrec, const msgpack_sbuffer *batch,
                       const upd_t *u, uint64_t counter, uint64_t *ret_len)
{
    fw_t w = {.fd = fd, .buf = l->wbuf};
    uint8_t hdr[FRAME_HDR];
    int r;

    pack_frame(&w, nrec, batch, u, counter);
    if (w.len > FRAME_MAX)
        return -EFBIG; /* replay would take it for damage */
    put_le32(hdr, (uint32_t)w.len);
    put_le32(hdr + 4, (uint32_t)w.crc);
    if ((r = write_all(fd, hdr, sizeof(hdr))) < 0)
        return r;
    w = (fw_t){.fd = fd, .buf = l->wbuf, .writing = true};
    pack_frame(&w, nrec, batch, u, counter);
    *ret_len = FRAME_HDR + w.len;
    return w.err;
}

static int commit(dictlog_t *l, const upd_t *u)
{
    uint64_t reserve = 0, counter = 0, before = l->size, len = 0;
    uint32_t nrec = l->nrec + (u ? (uint32_t)u->p->distinct : 0);
    int r;

    if (nrec == 0)
        return 0;
    if (u && u->p->distinct && u->p->first_ver + u->p->distinct - 1 > l->batch_ver)
        l->batch_ver = u->p->first_ver + u->p->distinct - 1;
    if (l->counter > l->reserved) {
        /* versions past the last reservation: reserve the next VER_RESERVE on disk, synced
         * before the reply, so that no fsync policy and no crash can hand a version out twice */
        counter = reserve = l->counter + VER_RESERVE;
        nrec++;
    } else if (l->batch_ver < l->counter) {
        /* the records do not show the counter (a delete, a clear, versions spent on undone
         * changes): carry it, for a replay that must skip damaged frames before this one */
        counter = l->counter;
        nrec++;
    }
    r = write_frame(l, l->fd, nrec, &l->batch, u, counter, &len);
    if (r == 0) {
        l->size += len;
        l->dirty = true;
        if (l->policy == FSYNC_ALWAYS || reserve)
            r = sync_now(l);
        if (r == 0 && reserve)
            l->reserved = reserve;
    }
    if (r < 0) {
        /* leave no frame behind, whole or partial: the caller undoes the change, and a frame
         * written but not synced must not come back at the next replay */
        l->size = before;
        if (ftruncate(l->fd, (off_t)l->size) < 0)
            log_error("dict log: cannot truncate %s after a failed write: %s", l->path,
                      strerror(errno));
    }
    l->batch_ver = 0;
    l->nrec = 0;
    if (l->batch.alloc > STREAM_BUF) {
        /* a large change (a big value, a clear's records) leaves no large buffer behind */
        msgpack_sbuffer_destroy(&l->batch);
        msgpack_sbuffer_init(&l->batch);
    } else {
        msgpack_sbuffer_clear(&l->batch);
    }
    return r;
}

int dictlog_commit(dictlog_t *l)
{
    return commit(l, NULL);
}

int dictlog_commit_update(dictlog_t *l, const char *name, size_t nlen, const dstore_batch_t *b,
                          const dstore_plan_t *p)
{
    upd_t u = {name, nlen, b, p};
    dictlog_put_version(l, p->first_ver + p->distinct - 1); /* the store's, once it is applied */
    return commit(l, &u);
}

typedef struct {
    dictlog_t *l;
    int fd;
    msgpack_sbuffer batch;
    msgpack_packer pk;
    uint32_t n;
    int err;
} snap_t;

static int snap_flush(snap_t *s)
{
    uint64_t len;
    if (s->n == 0 || s->err)
        return s->err;
    s->err = write_frame(s->l, s->fd, s->n, &s->batch, NULL, 0, &len);
    msgpack_sbuffer_clear(&s->batch);
    s->n = 0;
    return s->err;
}

static int snap_visit(void *ud, const char *name, size_t nlen, const char *key, size_t klen,
                      const dval_t *v)
{
    snap_t *s = ud;
    pack_record(&s->pk, name, nlen, key, klen, v->data, v->len, v->ver);
    if (++s->n == 1000 || s->batch.size > (1u << 20))
        return snap_flush(s);
    return 0;
}

int dictlog_compact(dictlog_t *l, dstore_t *store)
{
    char *tmp = xmalloc(strlen(l->path) + 5);
    snap_t s = {.l = l, .fd = -1};
    struct stat st;
    int r;

    sprintf(tmp, "%s.new", l->path);
    s.fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        r = -errno;
        goto out;
    }
    msgpack_sbuffer_init(&s.batch);
    msgpack_packer_init(&s.pk, &s.batch, msgpack_sbuffer_write);
    uint64_t counter = dstore_version(store) > l->reserved ? dstore_version(store) : l->reserved;
    if (counter > 0) {
        /* first, the counter: the newest versions may belong to keys deleted since */
        pack_counter(&s.pk, counter);
        s.n++;
    }
    dstore_each(store, snap_visit, &s);
    r = snap_flush(&s);
    msgpack_sbuffer_destroy(&s.batch);
    if (r == 0 && fsync(s.fd) < 0)
        r = -errno;
    if (r == 0 && rename(tmp, l->path) < 0)
        r = -errno;
    if (r == 0 && fsync(l->dirfd) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        close(s.fd);
        goto out;
    }
    close(l->fd);
    l->fd = s.fd;
    l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    l->dirty = false;
out:
    free(tmp);
    return r;
}

int dictlog_tick(dictlog_t *l, dstore_t *store, uint64_t now)
{
    if (l->policy == FSYNC_EVERYSEC && l->dirty && now - l->last_sync_ms >= 1000)
        sync_now(l);
    if (l->size > COMPACT_MIN && l->size > 2 * (dstore_bytes(store) + 32 * dstore_keys(store)) &&
        now >= l->retry_at_ms) {
        uint64_t before = l->size;
        int r = dictlog_compact(l, store);
        if (r < 0) {
            /* a full disk stays full for a while: back off instead of trying every turn */
            l->retry_ms = l->retry_ms ? (l->retry_ms >= RETRY_MAX / 2 ? RETRY_MAX : 2 * l->retry_ms)
                                      : RETRY_MIN;
            l->retry_at_ms = now + l->retry_ms;
            return r;
        }
        l->retry_ms = 0;
        l->retry_at_ms = 0;
        log_info("dict log compacted from %llu to %llu bytes", (unsigned long long)before,
                 (unsigned long long)l->size);
    }
    return 0;
}

uint64_t dictlog_size(const dictlog_t *l)
{
    return l->size;
}

uint32_t dictlog_retry_ms(const dictlog_t *l)
{
    return l->retry_ms;
}

void dictlog_close(dictlog_t **lp)
{
    dictlog_t *l = *lp;
    if (!l)
        return;
    *lp = NULL;
    if (l->fd >= 0) {
        fsync(l->fd);
        close(l->fd);
    }
    if (l->dirfd >= 0)
        close(l->dirfd);
    msgpack_sbuffer_destroy(&l->batch);
    free(l->wbuf);
    free(l->report.damaged_path);
    free(l->path);
    free(l);
}
