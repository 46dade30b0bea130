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
#include <unistd.h>
#include <zlib.h>

#define FRAME_HDR   8          /* length and crc */
#define FRAME_MAX   (1u << 30) /* a frame longer than this is corruption */
#define COMPACT_MIN (1u << 20) /* do not bother compacting a log smaller than this */

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
};

int dictlog_policy_from(const char *name)
{
    if (strcmp(name, "always") == 0)
        return FSYNC_ALWAYS;
    if (strcmp(name, "everysec") == 0)
        return FSYNC_EVERYSEC;
    if (strcmp(name, "no") == 0)
        return FSYNC_NO;
    return -1;
}

const char *dictlog_policy_name(fsync_policy_t p)
{
    return p == FSYNC_ALWAYS ? "always" : p == FSYNC_EVERYSEC ? "everysec" : "no";
}

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

/* Write one frame holding `payload`. */
static int write_frame(int fd, const void *payload, size_t len)
{
    uint8_t hdr[FRAME_HDR];
    put_le32(hdr, (uint32_t)len);
    put_le32(hdr + 4, (uint32_t)crc32(0L, payload, (uInt)len));
    int r = write_all(fd, hdr, sizeof(hdr));
    return r < 0 ? r : write_all(fd, payload, len);
}

static bool str_of(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *p = o->via.str.ptr;
    *n = o->via.str.size;
    return true;
}

/* Apply one frame's records. Returns false if a record is malformed. */
static bool apply(dstore_t *store, const msgpack_object *recs)
{
    if (recs->type != MSGPACK_OBJECT_ARRAY)
        return false;
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
        case 0:
            if (r->via.array.size != 5 || !str_of(&a[2], &key, &klen) ||
                a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].type != MSGPACK_OBJECT_BIN)
                return false;
            dstore_restore(store, name, nlen, key, klen, a[4].via.bin.ptr, a[4].via.bin.size,
                           a[3].via.u64);
            break;
        case 1:
            if (r->via.array.size != 3 || !str_of(&a[2], &key, &klen))
                return false;
            dstore_forget(store, name, nlen, key, klen);
            break;
        case 2:
            dstore_forget(store, name, nlen, NULL, 0);
            break;
        default:
            return false;
        }
    }
    return true;
}

/* Replay the file into store; returns the offset of the first byte that is not a good frame. */
static uint64_t replay(int fd, uint64_t size, dstore_t *store, char *err, size_t errlen)
{
    uint8_t *buf = xmalloc(size ? size : 1);
    uint64_t off = 0;
    size_t got = 0;

    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    dstore_quiet(store, true);
    while (off + FRAME_HDR <= got) {
        uint32_t len = get_le32(buf + off), crc = get_le32(buf + off + 4);
        msgpack_zone zone;
        msgpack_object o;
        wire_err_t werr;
        bool ok;

        if (len > FRAME_MAX || off + FRAME_HDR + len > got ||
            crc32(0L, buf + off + FRAME_HDR, len) != crc)
            break;
        msgpack_zone_init(&zone, 4096);
        ok = wire_unpack(buf + off + FRAME_HDR, len, &zone, &o, &werr) == 0 && apply(store, &o);
        msgpack_zone_destroy(&zone);
        if (!ok) {
            snprintf(err, errlen, "a frame at byte %llu has a good checksum but bad records",
                     (unsigned long long)off);
            break;
        }
        off += FRAME_HDR + len;
    }
    dstore_quiet(store, false);
    free(buf);
    return off;
}

int dictlog_open(const char *dir, fsync_policy_t policy, dstore_t *store, dictlog_t **ret,
                 size_t *ret_truncated, char *err, size_t errlen)
{
    dictlog_t *l;
    struct stat st;
    uint64_t good;

    *ret_truncated = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int r = -errno;
        snprintf(err, errlen, "cannot create the state directory %s: %s", dir, strerror(errno));
        return r;
    }
    l = xcalloc(1, sizeof(*l));
    l->policy = policy;
    l->path = xmalloc(strlen(dir) + sizeof("/dict.log"));
    sprintf(l->path, "%s/dict.log", dir);
    l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    l->fd = open(l->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (l->dirfd < 0 || l->fd < 0 || fstat(l->fd, &st) < 0) {
        int r = -errno;
        snprintf(err, errlen, "cannot open the dict log %s: %s", l->path, strerror(errno));
        dictlog_close(&l);
        return r;
    }
    err[0] = '\0';
    good = replay(l->fd, (uint64_t)st.st_size, store, err, errlen);
    if (good < (uint64_t)st.st_size) {
        /* a torn tail from a crash in the middle of a write: cut it off */
        if (ftruncate(l->fd, (off_t)good) < 0 || fsync(l->fd) < 0) {
            int r = -errno;
            snprintf(err, errlen, "cannot truncate the torn tail of %s: %s", l->path,
                     strerror(errno));
            dictlog_close(&l);
            return r;
        }
        *ret_truncated = (size_t)((uint64_t)st.st_size - good);
    }
    l->size = good;
    msgpack_sbuffer_init(&l->batch);
    msgpack_packer_init(&l->pk, &l->batch, msgpack_sbuffer_write);
    l->last_sync_ms = now_ms();
    *ret = l;
    return 0;
}

void dictlog_put(dictlog_t *l, const char *name, size_t nlen, const char *key, size_t klen,
                 const void *val, size_t vlen, uint64_t ver)
{
    msgpack_pack_array(&l->pk, val ? 5 : 3);
    msgpack_pack_int(&l->pk, val ? 0 : 1);
    msgpack_pack_str_with_body(&l->pk, name, nlen);
    msgpack_pack_str_with_body(&l->pk, key, klen);
    if (val) {
        msgpack_pack_uint64(&l->pk, ver);
        msgpack_pack_bin_with_body(&l->pk, val, vlen);
    }
    l->nrec++;
}

void dictlog_put_clear(dictlog_t *l, const char *name, size_t nlen)
{
    msgpack_pack_array(&l->pk, 2);
    msgpack_pack_int(&l->pk, 2);
    msgpack_pack_str_with_body(&l->pk, name, nlen);
    l->nrec++;
}

static int sync_now(dictlog_t *l)
{
    if (fdatasync(l->fd) < 0)
        return -errno;
    l->dirty = false;
    l->last_sync_ms = now_ms();
    return 0;
}

int dictlog_commit(dictlog_t *l)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    int r;

    if (l->nrec == 0)
        return 0;
    msgpack_sbuffer_init(&frame);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, l->nrec);
    msgpack_sbuffer_write(&frame, l->batch.data, l->batch.size);
    msgpack_sbuffer_clear(&l->batch);
    l->nrec = 0;
    r = write_frame(l->fd, frame.data, frame.size);
    if (r == 0) {
        l->size += FRAME_HDR + frame.size;
        l->dirty = true;
        if (l->policy == FSYNC_ALWAYS)
            r = sync_now(l);
    }
    if (r < 0) {
        /* leave no partial frame behind; replay would cut it anyway */
        if (ftruncate(l->fd, (off_t)l->size) < 0)
            log_error("dict log: cannot truncate %s after a failed write: %s", l->path,
                      strerror(errno));
    }
    msgpack_sbuffer_destroy(&frame);
    return r;
}

typedef struct {
    int fd;
    msgpack_sbuffer batch;
    msgpack_packer pk;
    uint32_t n;
    int err;
} snap_t;

static int snap_flush(snap_t *s)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    if (s->n == 0 || s->err)
        return s->err;
    msgpack_sbuffer_init(&frame);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, s->n);
    msgpack_sbuffer_write(&frame, s->batch.data, s->batch.size);
    s->err = write_frame(s->fd, frame.data, frame.size);
    msgpack_sbuffer_destroy(&frame);
    msgpack_sbuffer_clear(&s->batch);
    s->n = 0;
    return s->err;
}

static int snap_visit(void *ud, const char *name, size_t nlen, const char *key, size_t klen,
                      const dval_t *v)
{
    snap_t *s = ud;
    msgpack_pack_array(&s->pk, 5);
    msgpack_pack_int(&s->pk, 0);
    msgpack_pack_str_with_body(&s->pk, name, nlen);
    msgpack_pack_str_with_body(&s->pk, key, klen);
    msgpack_pack_uint64(&s->pk, v->ver);
    msgpack_pack_bin_with_body(&s->pk, v->data, v->len);
    if (++s->n == 1000 || s->batch.size > (1u << 20))
        return snap_flush(s);
    return 0;
}

int dictlog_compact(dictlog_t *l, dstore_t *store)
{
    char *tmp = xmalloc(strlen(l->path) + 5);
    snap_t s = {.fd = -1};
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
    if (l->size > COMPACT_MIN && l->size > 2 * (dstore_bytes(store) + 32 * dstore_keys(store))) {
        uint64_t before = l->size;
        int r = dictlog_compact(l, store);
        if (r < 0)
            return r;
        log_info("dict log compacted from %llu to %llu bytes", (unsigned long long)before,
                 (unsigned long long)l->size);
    }
    return 0;
}

uint64_t dictlog_size(const dictlog_t *l)
{
    return l->size;
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
    free(l->path);
    free(l);
}
