/* check_dictlog.c - the dict log: replay restores values and versions, a torn tail is cut and
 * reported, a full disk fails the write and leaves the file as it was, compaction keeps the
 * state and shrinks the file. */
#define _GNU_SOURCE
#include "dictlog.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static Suite *dictlog_suite(void)
{
    Suite *su = suite_create("dictlog");
    TCase *tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replay_restores_values_and_versions);
    tcase_add_test(tc, test_torn_tail_is_cut);
    tcase_add_test(tc, test_full_disk_fails_cleanly);
    tcase_add_test(tc, test_compaction);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(dictlog_suite());
}
