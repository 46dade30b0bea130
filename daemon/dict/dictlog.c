/* dictlog.c - see dictlog.h: the open, the frames written, compaction. The replay at open and
 * the recovery of a damaged log are in dictlog_replay.c. */
#define _GNU_SOURCE
#include "dictlog_int.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define COMPACT_MIN (1u << 20)  /* do not bother compacting a log smaller than this */
#define VER_RESERVE (1u << 16)  /* versions reserved on disk ahead of those handed out */
#define RETRY_MIN   1000u       /* ms before a failed compaction is tried again, doubling */
#define RETRY_MAX   60000u      /* ... up to this */
#define STREAM_BUF  (64u << 10) /* a frame goes out through a buffer of this size */

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

int dictlog_write_all(int fd, const void *buf, size_t n)
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
    good = dictlog_replay(l->fd, (uint64_t)st.st_size, store, &l->report);
    l->reserved = dstore_version(store); /* a reservation replayed: the store's counter is at it */
    l->size = (uint64_t)st.st_size;
    l->last_sync_ms = now_ms();
    if (l->report.damaged) {
        /* corruption in the middle: keep the file aside, write what was recovered afresh */
        dictlog_report_t *rp = &l->report;
        if ((r = dictlog_keep_damaged(l->path, l->fd, l->dirfd, &l->report)) < 0) {
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
        w->err = dictlog_write_all(w->fd, buf, len);
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
    if ((r = dictlog_write_all(fd, hdr, sizeof(hdr))) < 0)
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
