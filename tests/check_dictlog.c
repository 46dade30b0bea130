/* check_dictlog.c - the dict log: replay restores values and versions, a torn tail is cut and
 * reported, a full disk fails the write and leaves the file as it was, compaction keeps the
 * state and shrinks the file; damage in the middle is kept aside and every intact frame around it
 * recovered, a frame is all or nothing (and a record no forqd writes is damage), versions never
 * repeat after a compaction, a failing compaction backs off; an update is logged before it is
 * applied, from its request. */
#define _GNU_SOURCE
#include "dictlog.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64];
static dstore_limits_t lim = {1000000, 1 << 20, 1 << 30};

static void setup(void)
{
    temp_dir(dir, sizeof(dir), "forq-dictlog");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        /* a leftover temporary directory is harmless */
    }
}

static off_t file_size(void)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Open a store and its log (replaying it). */
static dictlog_t *open_log_with(dstore_t **s, size_t *cut, fsync_policy_t policy)
{
    char err[256];
    dictlog_t *l = NULL;
    *s = dstore_new(&lim, NULL, NULL);
    ck_assert_msg(dictlog_open(dir, policy, *s, &l, cut, err, sizeof(err)) == 0, "%s", err);
    return l;
}

static dictlog_t *open_log(dstore_t **s, size_t *cut)
{
    return open_log_with(s, cut, FSYNC_ALWAYS);
}

#define N(x) x, strlen(x)

START_TEST(test_replay_restores_values_and_versions)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    uint64_t va, vb;
    dval_t v;

    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), "\x01", 1, &va), 0);
    dictlog_put(l, N("d"), N("a"), "\x01", 1, va);
    ck_assert_int_eq(dstore_set(s, N("d"), N("b"), "\x02", 1, &vb), 0);
    dictlog_put(l, N("d"), N("b"), "\x02", 1, vb);
    ck_assert_int_eq(dictlog_commit(l), 0);
    ck_assert_int_eq(dstore_del(s, N("d"), N("a")), 0);
    dictlog_put(l, N("d"), N("a"), NULL, 0, 0);
    dictlog_put_clear(l, N("gone"));
    ck_assert_int_eq(dictlog_commit(l), 0);
    ck_assert_int_eq(dictlog_commit(l), 0); /* nothing pending: nothing written */
    dictlog_close(&l);
    dstore_free(s);

    l = open_log(&s, &cut);
    ck_assert_uint_eq(cut, 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), -ENOENT);
    ck_assert_int_eq(dstore_get(s, N("d"), N("b"), &v), 0);
    ck_assert_uint_eq(v.ver, vb);
    /* versions keep growing after a restart */
    uint64_t vc;
    ck_assert_int_eq(dstore_set(s, N("d"), N("c"), "\x03", 1, &vc), 0);
    ck_assert_uint_gt(vc, vb);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

START_TEST(test_torn_tail_is_cut)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    uint64_t ver;
    char path[128];

    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        dstore_set(s, N("d"), N(key), "\x05", 1, &ver);
        dictlog_put(l, N("d"), N(key), "\x05", 1, ver);
        ck_assert_int_eq(dictlog_commit(l), 0);
    }
    dictlog_close(&l);
    dstore_free(s);
    off_t good = file_size();
    /* a crash in the middle of the next write: half a frame, then garbage */
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "\x20\x00\x00\x00\x12\x34\x56\x78\x93", 9), 9);
    close(fd);
    l = open_log(&s, &cut);
    ck_assert_uint_eq(cut, 9);
    ck_assert_int_eq(file_size(), good);
    ck_assert_uint_eq(dstore_len(s, N("d")), 3);
    dictlog_close(&l);
    dstore_free(s);
    /* a corrupt checksum in the middle cuts from there */
    fd = open(path, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "\xff", 1, good - 3), 1);
    close(fd);
    l = open_log(&s, &cut);
    ck_assert_uint_gt(cut, 0);
    ck_assert_uint_eq(dstore_len(s, N("d")), 2);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

static ssize_t disk_full(int fd, const void *buf, size_t n)
{
    /* the first bytes fit, then the disk is full */
    (void)fd, (void)buf;
    errno = ENOSPC;
    return n > 4 ? 4 : -1;
}

START_TEST(test_full_disk_fails_cleanly)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    uint64_t ver;

    dstore_set(s, N("d"), N("a"), "\x01", 1, &ver);
    dictlog_put(l, N("d"), N("a"), "\x01", 1, ver);
    ck_assert_int_eq(dictlog_commit(l), 0);
    off_t before = file_size();
    dictlog_write_fn = disk_full;
    dictlog_put(l, N("d"), N("b"), "\x02", 1, ver + 1);
    ck_assert_int_eq(dictlog_commit(l), -ENOSPC);
    dictlog_write_fn = write;
    ck_assert_int_eq(file_size(), before); /* no partial frame left */
    ck_assert_uint_eq(dictlog_size(l), (uint64_t)before);
    /* the disk has room again: writes go on */
    dictlog_put(l, N("d"), N("c"), "\x03", 1, ver + 2);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_close(&l);
    dstore_free(s);
    l = open_log(&s, &cut);
    ck_assert_uint_eq(cut, 0);
    dval_t v;
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("b"), &v), -ENOENT);
    ck_assert_int_eq(dstore_get(s, N("d"), N("c"), &v), 0);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* An update's entries: keys "u<i>" (a few given twice), values of vlen(i) bytes. */
static size_t upd_vlen(size_t i)
{
    return i == 7 ? 200000 : 1 + i % 300; /* one value larger than the log's write buffer */
}

static void upd_get(const void *ud, size_t i, dstore_kv_t *ret)
{
    static char keys[2000][8];
    const char *vals = ud;
    size_t k = i % 10 == 9 ? i - 5 : i; /* every tenth entry repeats an earlier key */
    snprintf(keys[i], sizeof(keys[i]), "u%zu", k);
    *ret = (dstore_kv_t){keys[i], strlen(keys[i]), vals + i, upd_vlen(i)};
}

/* An update is logged before it is applied, its records packed from the request while the frame
 * is written (never held whole): the frame is larger than the write buffer, holds one record
 * per distinct key with its last value, and replays to exactly the state the store applied; a
 * full disk refuses it and leaves the file as it was. */
START_TEST(test_update_logged_first)
{
    dstore_t *s, *t;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    char *vals = malloc(2000 + 200000);
    dstore_batch_t b = {2000, upd_get, vals};
    dstore_plan_t p;
    uint64_t ver, va;
    dval_t v, w;

    for (size_t i = 0; i < 2000 + 200000; i++)
        vals[i] = (char)(0xa0 + i % 16); /* fixstr headers: any run of bytes is no worse */
    ck_assert_int_eq(dstore_set(s, N("d"), N("u3"), "\x01", 1, &va), 0);
    dictlog_put(l, N("d"), N("u3"), "\x01", 1, va);
    ck_assert_int_eq(dictlog_commit(l), 0);
    off_t before = file_size();
    ck_assert_int_eq(dstore_update_plan(s, N("d"), &b, &p), 0);
    ck_assert_uint_eq(p.distinct, 1800);
    ck_assert_uint_eq(p.first_ver, va + 1);
    dictlog_write_fn = disk_full;
    ck_assert_int_eq(dictlog_commit_update(l, N("d"), &b, &p), -ENOSPC);
    dictlog_write_fn = write;
    ck_assert_int_eq(file_size(), before);
    dstore_plan_done(&p);
    ck_assert_uint_eq(dstore_len(s, N("d")), 1); /* refused: nothing applied */
    ck_assert_int_eq(dstore_update_plan(s, N("d"), &b, &p), 0);
    ck_assert_int_eq(dictlog_commit_update(l, N("d"), &b, &p), 0);
    ck_assert_int_gt(file_size() - before, 200000 + 1800 * 100); /* values average 150 bytes */
    dstore_update_apply(s, N("d"), &b, &p, &ver);
    ck_assert_uint_eq(ver, va + 1800);
    ck_assert_uint_eq(dstore_len(s, N("d")), 1800);
    dictlog_close(&l);
    l = open_log(&t, &cut);
    ck_assert_uint_eq(cut, 0);
    ck_assert_uint_eq(dstore_len(t, N("d")), 1800);
    ck_assert_uint_eq(dstore_bytes(t), dstore_bytes(s));
    for (size_t i = 0; i < 2000; i++) {
        char key[8];
        snprintf(key, sizeof(key), "u%zu", i);
        if (dstore_get(s, N("d"), N(key), &v) < 0) {
            ck_assert_int_eq(dstore_get(t, N("d"), N(key), &w), -ENOENT);
            continue;
        }
        ck_assert_int_eq(dstore_get(t, N("d"), N(key), &w), 0);
        ck_assert_uint_eq(w.ver, v.ver);
        ck_assert_uint_eq(w.len, v.len);
        ck_assert_int_eq(memcmp(w.data, v.data, v.len), 0);
    }
    /* u4 was given again as entry 9: its last value, the version of its first place */
    ck_assert_int_eq(dstore_get(t, N("d"), N("u4"), &w), 0);
    ck_assert_uint_eq(w.len, upd_vlen(9));
    ck_assert_uint_eq(w.ver, va + 5);
    /* versions go on above the update's */
    ck_assert_int_eq(dstore_set(t, N("d"), N("x"), "\x01", 1, &ver), 0);
    ck_assert_uint_gt(ver, va + 1800);
    dictlog_close(&l);
    dstore_free(s);
    dstore_free(t);
    free(vals);
}
END_TEST

START_TEST(test_compaction)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log_with(&s, &cut, FSYNC_NO);
    uint64_t ver;
    dval_t v;

    /* many overwrites of few keys: the log outgrows the data */
    for (int i = 0; i < 20000; i++) {
        char key[8], val[2] = {(char)0xa1, (char)('a' + i % 26)};
        snprintf(key, sizeof(key), "k%d", i % 10);
        dstore_set(s, N("d"), N(key), val, 2, &ver);
        dictlog_put(l, N("d"), N(key), val, 2, ver);
        ck_assert_int_eq(dictlog_commit(l), 0);
    }
    uint64_t big = dictlog_size(l);
    ck_assert_uint_gt(big, 400000);
    ck_assert_int_eq(dictlog_compact(l, s), 0);
    ck_assert_uint_lt(dictlog_size(l), 1000);
    ck_assert_int_eq(file_size(), (off_t)dictlog_size(l));
    /* appends go on after it */
    dstore_set(s, N("d"), N("new"), "\x07", 1, &ver);
    dictlog_put(l, N("d"), N("new"), "\x07", 1, ver);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_close(&l);
    dstore_free(s);
    l = open_log(&s, &cut);
    ck_assert_uint_eq(dstore_len(s, N("d")), 11);
    ck_assert_int_eq(dstore_get(s, N("d"), N("k9"), &v), 0);
    ck_assert_int_eq(((const char *)v.data)[1], 'a' + 19999 % 26);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* The name of the one file DIR/dict.log.damaged-* (into buf), or NULL if there is none. */
static char *damaged_file(char *buf, size_t size)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    int found = 0;

    ck_assert_ptr_nonnull(dp);
    while ((de = readdir(dp)))
        if (strncmp(de->d_name, "dict.log.damaged-", 17) == 0) {
            snprintf(buf, size, "%s/%s", dir, de->d_name);
            found++;
        }
    closedir(dp);
    ck_assert_int_le(found, 1);
    return found ? buf : NULL;
}

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    ck_assert_ptr_nonnull(f);
    *ret_len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Write a log of n frames, one key each (d/k0 .. d/k<n-1>); ret_off[i] is where frame i starts. */
static void write_frames(int n, off_t *ret_off)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    uint64_t ver;

    for (int i = 0; i < n; i++) {
        char key[16], val[40];
        snprintf(key, sizeof(key), "k%d", i);
        memset(val, 'v', sizeof(val));
        val[0] = (char)0xd9; /* str8 */
        val[1] = (char)(sizeof(val) - 2);
        ret_off[i] = (off_t)dictlog_size(l);
        ck_assert_int_eq(dstore_set(s, N("d"), N(key), val, sizeof(val), &ver), 0);
        dictlog_put(l, N("d"), N(key), val, sizeof(val), ver);
        ck_assert_int_eq(dictlog_commit(l), 0);
    }
    ret_off[n] = (off_t)dictlog_size(l);
    dictlog_close(&l);
    dstore_free(s);
}

static void flip_bit(off_t at, int bit)
{
    char path[128];
    unsigned char b;
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    int fd = open(path, O_RDWR);
    ck_assert_int_eq(pread(fd, &b, 1, at), 1);
    b ^= (unsigned char)(1u << bit);
    ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

/* A flipped bit in the middle: the frames before and after it are kept, the damaged file is
 * kept aside unchanged, the log is rewritten, and the message says what was lost. */
static void check_bitflip(off_t at, int bit, const char *lost)
{
    enum { NF = 10, K = 4 };
    off_t off[NF + 1];
    char err[512], kept[400], path[128];
    dstore_t *s;
    dictlog_t *l;
    size_t cut, len, len0;
    dval_t v;

    write_frames(NF, off);
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    flip_bit(off[K] + at, bit);
    char *before = read_file(path, &len0);
    s = dstore_new(&lim, NULL, NULL);
    ck_assert_msg(dictlog_open(dir, FSYNC_ALWAYS, s, &l, &cut, err, sizeof(err)) == 0, "%s", err);
    fprintf(stderr, "bit flip at byte %lld of frame %d: %s\n", (long long)at, K, err);
    ck_assert_uint_eq(cut, 0);
    /* every frame but the damaged one */
    ck_assert_uint_eq(dstore_len(s, N("d")), NF - 1);
    for (int i = 0; i < NF; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(dstore_get(s, N("d"), N(key), &v), i == K ? -ENOENT : 0);
    }
    ck_assert_ptr_nonnull(strstr(err, "damaged"));
    ck_assert_ptr_nonnull(strstr(err, lost));
    ck_assert_ptr_nonnull(strstr(err, "9 intact frames recovered"));
    /* the damaged file is kept as it was, and named */
    ck_assert_ptr_nonnull(damaged_file(kept, sizeof(kept)));
    ck_assert_ptr_nonnull(strstr(err, kept));
    char *aside = read_file(kept, &len);
    ck_assert_uint_eq(len, len0);
    ck_assert_int_eq(memcmp(aside, before, len), 0);
    free(aside);
    free(before);
    /* the new log is whole: it replays with nothing to recover, and takes writes */
    uint64_t ver;
    ck_assert_int_eq(dstore_set(s, N("d"), N("after"), "\x01", 1, &ver), 0);
    dictlog_put(l, N("d"), N("after"), "\x01", 1, ver);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_close(&l);
    dstore_free(s);
    s = dstore_new(&lim, NULL, NULL);
    ck_assert_msg(dictlog_open(dir, FSYNC_ALWAYS, s, &l, &cut, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(cut, 0);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(dstore_len(s, N("d")), NF);
    dictlog_close(&l);
    dstore_free(s);
}

START_TEST(test_bitflip_in_a_payload)
{
    /* in the value of frame 4: its length still says where frame 5 starts */
    check_bitflip(8 + 20, 3, ": 1 frame(s), 59 bytes, 1 key change(s) (d/k4) lost");
}
END_TEST

START_TEST(test_bitflip_in_a_length)
{
    /* in the length of frame 4: frame 5 is found by scanning */
    check_bitflip(1, 4, ": at least 1 frame(s), 59 bytes, key changes that cannot be read lost");
}
END_TEST

/* tests/fuzz's dictlog-partial-frame-applied.bin without its mode byte: a frame with a good
 * checksum (put in below) whose first record, users/alice, is good and whose second is not;
 * then counters/hits = 42 (ver 4), a delete, and a clear of counters. */
static const char partial_frame[] =
    "\x26\x00\x00\x00\xd3\xd0\xa7\x8b\x92\x95\x00\xa5\x75\x73\x65\x72\x73\xa5\x61\x6c\x69\x63"
    "\x65\x01\xc4\x01\x04\x92\xa1\x78\x95\x00\xa5\x75\x73\x65\x72\x73\xa3\x62\x6f\x62\x02\xc4"
    "\x01\xc3\x15\x00\x00\x00\xa7\x67\x40\x26\x91\x95\x00\xa8\x63\x6f\x75\x6e\x74\x65\x72\x73"
    "\xa4\x68\x69\x74\x73\x04\xc4\x01\x2a\x0d\x00\x00\x00\xb4\xc9\x98\xbf\x91\x93\x01\xa5\x75"
    "\xe7\x03\x00\x00\xa3\x62\x6f\x62\x0c\x00\x00\x00\xb8\x7b\x6e\x76\x91\x92\x02\xa8\x63\x6f"
    "\x75\x6e\x74\x65\x72\x73";

START_TEST(test_frame_is_all_or_nothing)
{
    unsigned char buf[sizeof(partial_frame) - 1];
    char path[128], err[512], kept[400];
    dstore_t *s;
    dictlog_t *l;
    size_t cut;
    dval_t v;
    uint64_t ver;

    memcpy(buf, partial_frame, sizeof(buf));
    for (size_t off = 0; off + 8 <= sizeof(buf);) { /* the right checksums, as the fuzzer did */
        uint32_t len = buf[off] | (uint32_t)buf[off + 1] << 8, crc;
        crc = (uint32_t)crc32(0L, buf + off + 8, len);
        for (int i = 0; i < 4; i++)
            buf[off + 4 + i] = (unsigned char)(crc >> (8 * i));
        off += 8 + len;
    }
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
    s = dstore_new(&lim, NULL, NULL);
    ck_assert_msg(dictlog_open(dir, FSYNC_ALWAYS, s, &l, &cut, err, sizeof(err)) == 0, "%s", err);
    /* nothing of the bad frame was applied, and what follows it was */
    ck_assert_int_eq(dstore_get(s, N("users"), N("alice"), &v), -ENOENT);
    ck_assert_uint_eq(dstore_keys(s), 0);
    /* not a torn tail: kept aside, never cut */
    ck_assert_uint_eq(cut, 0);
    ck_assert_ptr_nonnull(damaged_file(kept, sizeof(kept)));
    ck_assert_ptr_nonnull(strstr(err, "2 key change(s)"));
    /* hits had version 4: the next is above it */
    ck_assert_int_eq(dstore_set(s, N("c"), N("x"), "\x01", 1, &ver), 0);
    ck_assert_uint_gt(ver, 4);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* A record with a key longer than forqd ever writes (the store keeps a key's length in 16 bits)
 * is a bad record like any other: its frame is damage, never applied, and nothing aborts. */
START_TEST(test_overlong_key_is_damage)
{
    static char key[DICT_KEY_MAX + 1];
    char err[512], kept[400];
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    dval_t v;

    memset(key, 'k', sizeof(key));
    dictlog_put(l, N("d"), key, sizeof(key), "\x01", 1, 1);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_put(l, N("d"), N("after"), "\x02", 1, 2);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_close(&l);
    dstore_free(s);
    s = dstore_new(&lim, NULL, NULL);
    ck_assert_msg(dictlog_open(dir, FSYNC_ALWAYS, s, &l, &cut, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_nonnull(damaged_file(kept, sizeof(kept)));
    ck_assert_uint_eq(dstore_len(s, N("d")), 1);
    ck_assert_int_eq(dstore_get(s, N("d"), N("after"), &v), 0);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* Versions never repeat: not after the newest key is deleted, compacted away and replayed. */
START_TEST(test_versions_survive_compaction)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log(&s, &cut);
    uint64_t ver, top = 0;

    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(dstore_set(s, N("d"), N(key), "\x01", 1, &ver), 0);
        dictlog_put(l, N("d"), N(key), "\x01", 1, ver);
        ck_assert_int_eq(dictlog_commit(l), 0);
        top = ver;
    }
    ck_assert_int_eq(dstore_del(s, N("d"), N("k4")), 0); /* the newest */
    dictlog_put(l, N("d"), N("k4"), NULL, 0, 0);
    ck_assert_int_eq(dictlog_commit(l), 0);
    ck_assert_int_eq(dictlog_compact(l, s), 0);
    dictlog_close(&l);
    dstore_free(s);
    l = open_log(&s, &cut);
    ck_assert_int_eq(dstore_set(s, N("d"), N("new"), "\x01", 1, &ver), 0);
    ck_assert_uint_gt(ver, top);
    dictlog_put(l, N("d"), N("new"), "\x01", 1, ver);
    ck_assert_int_eq(dictlog_commit(l), 0);
    dictlog_close(&l);
    dstore_free(s);

    /* the same when everything is deleted: an empty store keeps its counter */
    l = open_log(&s, &cut);
    dstore_clear(s, N("d"));
    dictlog_put_clear(l, N("d"));
    ck_assert_int_eq(dictlog_commit(l), 0);
    ck_assert_int_eq(dictlog_compact(l, s), 0);
    top = ver;
    dictlog_close(&l);
    dstore_free(s);
    l = open_log(&s, &cut);
    ck_assert_uint_eq(dstore_keys(s), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("again"), "\x01", 1, &ver), 0);
    ck_assert_uint_gt(ver, top);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* A log written before the counter record existed replays as it always did. */
START_TEST(test_old_log_replays)
{
    /* [[0, "d", "a", 7, bin 0x01]], [[1, "d", "a"], [2, "e"]], [[0, "d", "b", 9, bin 0x02]] */
    static const char *const payloads[] = {
        "\x91\x95\x00\xa1\x64\xa1\x61\x07\xc4\x01\x01",
        "\x92\x93\x01\xa1\x64\xa1\x61\x92\x02\xa1\x65",
        "\x91\x95\x00\xa1\x64\xa1\x62\x09\xc4\x01\x02",
    };
    static const size_t lens[] = {11, 11, 11};
    char path[128];
    dstore_t *s;
    size_t cut;
    dval_t v;
    uint64_t ver;

    snprintf(path, sizeof(path), "%s/dict.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (int i = 0; i < 3; i++) {
        unsigned char hdr[8];
        uint32_t crc = (uint32_t)crc32(0L, (const unsigned char *)payloads[i], (uInt)lens[i]);
        for (int j = 0; j < 4; j++) {
            hdr[j] = (unsigned char)(lens[i] >> (8 * j));
            hdr[4 + j] = (unsigned char)(crc >> (8 * j));
        }
        ck_assert_int_eq(write(fd, hdr, 8), 8);
        ck_assert_int_eq(write(fd, payloads[i], lens[i]), (ssize_t)lens[i]);
    }
    close(fd);
    dictlog_t *l = open_log(&s, &cut);
    ck_assert_uint_eq(cut, 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), -ENOENT);
    ck_assert_int_eq(dstore_get(s, N("d"), N("b"), &v), 0);
    ck_assert_uint_eq(v.ver, 9);
    ck_assert_int_eq(dstore_set(s, N("d"), N("c"), "\x01", 1, &ver), 0);
    ck_assert_uint_eq(ver, 10);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

/* Versions never repeat after a crash that lost writes the kernel had not written (fsync no):
 * the first frame reserves versions ahead, synced; a replay starts above the reservation. */
START_TEST(test_versions_survive_a_lost_tail)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log_with(&s, &cut, FSYNC_NO);
    uint64_t ver, top = 0;
    off_t first = 0;

    for (int i = 0; i < 3; i++) { /* as the service does it */
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(dstore_set(s, N("d"), N(key), "\x01", 1, &ver), 0);
        dictlog_put(l, N("d"), N(key), "\x01", 1, ver);
        dictlog_put_version(l, dstore_version(s));
        ck_assert_int_eq(dictlog_commit(l), 0);
        if (i == 0)
            first = (off_t)dictlog_size(l);
        top = ver;
    }
    dictlog_close(&l);
    dstore_free(s);
    /* the crash: only the first frame reached the disk */
    char path[128];
    snprintf(path, sizeof(path), "%s/dict.log", dir);
    ck_assert_int_eq(truncate(path, first), 0);
    l = open_log(&s, &cut);
    ck_assert_uint_eq(dstore_len(s, N("d")), 1);
    ck_assert_int_eq(dstore_set(s, N("d"), N("new"), "\x01", 1, &ver), 0);
    ck_assert_uint_gt(ver, top);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

static int write_calls;

static ssize_t full_disk_counted(int fd, const void *buf, size_t n)
{
    (void)fd, (void)buf, (void)n;
    write_calls++;
    errno = ENOSPC;
    return -1;
}

/* A compaction that cannot run is not retried on every turn: after 1 s, doubling to 60 s. */
START_TEST(test_compaction_backs_off)
{
    dstore_t *s;
    size_t cut;
    dictlog_t *l = open_log_with(&s, &cut, FSYNC_NO);
    char val[200];
    uint64_t ver, t0 = 1000000;
    int failures = 0, tries_in_first_second = 0;

    memset(val, 'x', sizeof(val));
    val[0] = (char)0xd9;
    val[1] = (char)(sizeof(val) - 2);
    for (int i = 0; i < 6000; i++) { /* over 1 MiB of log for 10 live keys: compaction is due */
        char key[8];
        snprintf(key, sizeof(key), "k%d", i % 10);
        dstore_set(s, N("d"), N(key), val, sizeof(val), &ver);
        dictlog_put(l, N("d"), N(key), val, sizeof(val), ver);
        ck_assert_int_eq(dictlog_commit(l), 0);
    }
    ck_assert_uint_gt(dictlog_size(l), 1u << 20);
    dictlog_write_fn = full_disk_counted;
    /* 200 s of loop turns, one every 10 ms */
    for (uint64_t t = t0; t < t0 + 200000; t += 10) {
        int before = write_calls;
        if (dictlog_tick(l, s, t) < 0)
            failures++;
        if (t < t0 + 1000 && write_calls > before)
            tries_in_first_second++;
    }
    dictlog_write_fn = write;
    /* tries at 0, 1, 3, 7, 15, 31, 63, 123, 183 s */
    ck_assert_int_eq(tries_in_first_second, 1);
    ck_assert_int_eq(failures, 9);
    /* the disk has room again: the next try compacts, and the back-off is over */
    uint64_t big = dictlog_size(l);
    for (uint64_t t = t0 + 200000; t < t0 + 260000; t += 10)
        ck_assert_int_eq(dictlog_tick(l, s, t), 0);
    ck_assert_uint_lt(dictlog_size(l), big / 100);
    dictlog_close(&l);
    dstore_free(s);
}
END_TEST

static Suite *dictlog_suite(void)
{
    Suite *su = suite_create("dictlog");
    TCase *tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replay_restores_values_and_versions);
    tcase_add_test(tc, test_torn_tail_is_cut);
    tcase_add_test(tc, test_full_disk_fails_cleanly);
    tcase_add_test(tc, test_update_logged_first);
    tcase_add_test(tc, test_compaction);
    tcase_add_test(tc, test_bitflip_in_a_payload);
    tcase_add_test(tc, test_bitflip_in_a_length);
    tcase_add_test(tc, test_frame_is_all_or_nothing);
    tcase_add_test(tc, test_overlong_key_is_damage);
    tcase_add_test(tc, test_versions_survive_compaction);
    tcase_add_test(tc, test_old_log_replays);
    tcase_add_test(tc, test_versions_survive_a_lost_tail);
    tcase_add_test(tc, test_compaction_backs_off);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(dictlog_suite());
}
