/* check_clients.c - the authorised-clients file (daemon/auth/clients.h): what a good file grants
 * (globs, exec only when named, read vs write, admin, the local identity), every error with its
 * whole message, lookups by key and by name, a 10,000-line file, and loading from disk. */
#define _GNU_SOURCE
#include "clients.h"
#include "testutil.h"

#include "util.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Keys made by zmq_curve_keypair; K3 has a '#' inside, which is no comment there. */
#define K1 "sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^jb"
#define K2 "(U]B.:r:&h*gAf#Q)N#4aq?^nl)k%l@Y%Uc/Q@Z$"
#define K3 "y7e0Z6rzqEalf#GC-adz)2ZxtC1^52^)yrXR8tzu"
#define K4 "@@Ny8{D:^<Y*nHZt[Jz!A]zY}vH&y2e(}Qyok{:h"

static auth_table_t *parse_ok(const char *text)
{
    auth_table_t *t = NULL;
    char err[512] = "";

    ck_assert_msg(auth_table_parse(text, strlen(text), "clients.conf", &t, err, sizeof(err)) == 0,
                  "parse failed: %s", err);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Parse text expecting an error; returns it (static). */
static const char *parse_err(const char *text, size_t len)
{
    static char err[512];
    auth_table_t *t = (auth_table_t *)&err; /* must stay untouched */

    memset(err, 'x', sizeof(err));
    ck_assert_int_eq(auth_table_parse(text, len, "clients.conf", &t, err, sizeof(err)), -1);
    ck_assert_ptr_eq(t, (auth_table_t *)&err);
    ck_assert_ptr_nonnull(memchr(err, '\0', sizeof(err)));
    ck_assert_ptr_null(strchr(err, '\n'));
    return err;
}

#define ASSERT_ERR(text, want) ck_assert_str_eq(parse_err(text, strlen(text)), want)

static const uint8_t *raw(const char *z85)
{
    static uint8_t buf[32];
    ck_assert_ptr_nonnull(zmq_z85_decode(buf, z85));
    return buf;
}

START_TEST(test_good_file)
{
    auth_table_t *t = parse_ok("# forq clients\n"
                               "\n"
                               "   \t\n" K1 "  alice  tasks=count_*,sha256 read=* # a comment\n"
                               "\t" K2 "\tbob\r\n"
                               "# " K4 " commented-out\n" K3 " ops admin write=scratch,res.* "
                               "tasks=*,exec");
    const auth_client_t *a, *b, *o;

    ck_assert_uint_eq(auth_table_count(t), 3);
    a = auth_by_name(t, "alice");
    b = auth_by_name(t, "bob");
    o = auth_by_name(t, "ops");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_eq(auth_by_key(t, raw(K1)), a);
    ck_assert_ptr_eq(auth_by_key(t, raw(K2)), b);
    ck_assert_ptr_eq(auth_by_key(t, raw(K3)), o);
    ck_assert_ptr_null(auth_by_key(t, raw(K4)));
    ck_assert_ptr_eq(auth_table_at(t, 0), a);
    ck_assert_ptr_eq(auth_table_at(t, 1), b);
    ck_assert_ptr_eq(auth_table_at(t, 2), o);
    ck_assert_ptr_null(auth_table_at(t, 3));
    ck_assert_str_eq(auth_name(a), "alice");
    ck_assert_str_eq(auth_name(o), "ops");
    ck_assert_mem_eq(auth_key(b), raw(K2), 32);

    ck_assert(auth_may_submit(a, "count_primes"));
    ck_assert(auth_may_submit(a, "sha256"));
    ck_assert(!auth_may_submit(a, "echo"));
    ck_assert(auth_may_read(a, "anything", 8));
    ck_assert(!auth_may_write(a, "anything", 8));
    ck_assert(!auth_is_admin(a));
    /* no permissions: nothing */
    ck_assert(!auth_may_submit(b, "echo"));
    ck_assert(!auth_may_read(b, "x", 1));
    ck_assert(!auth_may_write(b, "x", 1));
    ck_assert(!auth_is_admin(b));
    ck_assert(auth_is_admin(o));
    ck_assert(!auth_is_node(a) && !auth_is_node(b) && !auth_is_node(o));
    ck_assert(!auth_is_node(NULL) && !auth_is_node(auth_local()));
    ck_assert(auth_may_submit(o, "exec"));
    ck_assert(auth_may_write(o, "res.1", 5));
    ck_assert(auth_may_read(o, "scratch", 7));
    ck_assert(!auth_may_read(o, "results", 7));
    auth_table_free(&t);
    ck_assert_ptr_null(t);
    /* the node role: a worker node may join; it gives no other right */
    t = parse_ok(K1 " rack1-07 node\n");
    a = auth_by_name(t, "rack1-07");
    ck_assert(auth_is_node(a));
    ck_assert(!auth_is_admin(a));
    ck_assert(!auth_may_submit(a, "echo"));
    auth_table_free(&t);
}
END_TEST

START_TEST(test_empty_files)
{
    const char *texts[] = {"", "\n", "# nothing\n\n", "  \t\r\n# x\n   # y"};

    for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
        auth_table_t *t = parse_ok(texts[i]);
        ck_assert_uint_eq(auth_table_count(t), 0);
        ck_assert_ptr_null(auth_table_at(t, 0));
        ck_assert_ptr_null(auth_by_key(t, raw(K1)));
        ck_assert_ptr_null(auth_by_name(t, "alice"));
        auth_table_free(&t);
    }
}
END_TEST

START_TEST(test_free_null)
{
    auth_table_t *t = NULL;

    auth_table_free(NULL);
    auth_table_free(&t);
    t = parse_ok(K1 " a\n");
    auth_table_free(&t);
    auth_table_free(&t);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(auth_table_count(NULL), 0);
    ck_assert_ptr_null(auth_by_key(NULL, raw(K1)));
    ck_assert_ptr_null(auth_by_name(NULL, "a"));
    ck_assert_ptr_null(auth_name(NULL));
    ck_assert_ptr_null(auth_key(NULL));
    ck_assert(!auth_may_submit(NULL, "echo"));
    ck_assert(!auth_may_read(NULL, "d", 1));
    ck_assert(!auth_may_write(NULL, "d", 1));
    ck_assert(!auth_is_admin(NULL));
}
END_TEST

START_TEST(test_globs)
{
    auth_table_t *t = parse_ok(K1 " g tasks=count_*,sha256,[a-c]x,?y,w\\*\n");
    const auth_client_t *c = auth_by_name(t, "g");

    ck_assert(auth_may_submit(c, "count_primes"));
    ck_assert(auth_may_submit(c, "count_"));
    ck_assert(!auth_may_submit(c, "xcount_primes"));
    ck_assert(auth_may_submit(c, "sha256"));
    ck_assert(!auth_may_submit(c, "sha2566"));
    ck_assert(!auth_may_submit(c, "sha25"));
    ck_assert(auth_may_submit(c, "bx"));
    ck_assert(!auth_may_submit(c, "dx"));
    ck_assert(auth_may_submit(c, "zy"));
    ck_assert(!auth_may_submit(c, "y"));
    ck_assert(auth_may_submit(c, "w*"));
    ck_assert(!auth_may_submit(c, "wx"));
    ck_assert(!auth_may_submit(c, ""));
    auth_table_free(&t);
}
END_TEST

START_TEST(test_exec_only_when_named)
{
    auth_table_t *t = parse_ok(K1 " star tasks=*\n" K2 " globs tasks=e*,ex?c,[e]xec,exe[c],*c\n" K3
                                  " named tasks=echo,exec\n" K4 " onlyexec tasks=exec\n");
    const auth_client_t *star = auth_by_name(t, "star"), *globs = auth_by_name(t, "globs"),
                        *named = auth_by_name(t, "named"), *only = auth_by_name(t, "onlyexec");

    ck_assert(auth_may_submit(star, "echo"));
    ck_assert(!auth_may_submit(star, "exec"));
    ck_assert(auth_may_submit(globs, "echo"));
    ck_assert(!auth_may_submit(globs, "exec"));
    ck_assert(auth_may_submit(named, "exec"));
    ck_assert(auth_may_submit(named, "echo"));
    ck_assert(!auth_may_submit(named, "execute"));
    ck_assert(auth_may_submit(only, "exec"));
    ck_assert(!auth_may_submit(only, "echo"));
    ck_assert(auth_may_submit(auth_local(), "exec"));
    ck_assert_str_eq(auth_name(auth_local()), "local");
    auth_table_free(&t);
}
END_TEST

START_TEST(test_read_write)
{
    auth_table_t *t = parse_ok(K1 " rw read=res*,config write=scratch,tmp-?\n" K2 " w write=*\n");
    const auth_client_t *c = auth_by_name(t, "rw"), *w = auth_by_name(t, "w");
    char longname[600];

    ck_assert(auth_may_read(c, "results", 7));
    ck_assert(!auth_may_write(c, "results", 7));
    ck_assert(auth_may_read(c, "config", 6));
    ck_assert(!auth_may_write(c, "config", 6));
    ck_assert(auth_may_read(c, "scratch", 7)); /* write implies read */
    ck_assert(auth_may_write(c, "scratch", 7));
    ck_assert(auth_may_write(c, "tmp-1", 5));
    ck_assert(!auth_may_write(c, "tmp-12", 6));
    ck_assert(!auth_may_read(c, "other", 5));
    /* not NUL-terminated: only len bytes count */
    ck_assert(auth_may_read(c, "configXYZ", 6));
    ck_assert(!auth_may_read(c, "configXYZ", 9));
    ck_assert(auth_may_write(c, "scratchpad", 7));
    ck_assert(!auth_may_write(c, "scratchpad", 10));
    /* a NUL inside a name matches nothing, not the part before it */
    ck_assert(!auth_may_read(c, "config\0x", 8));
    ck_assert(!auth_may_write(w, "a\0b", 3));
    ck_assert(auth_may_write(w, "ab", 2));
    /* a long name (past the stack buffer) */
    memset(longname, 'q', sizeof(longname));
    ck_assert(auth_may_write(w, longname, sizeof(longname)));
    ck_assert(!auth_may_read(c, longname, sizeof(longname)));
    memcpy(longname, "res", 3);
    ck_assert(auth_may_read(c, longname, sizeof(longname)));
    /* the local identity may do anything */
    ck_assert(auth_may_read(auth_local(), "x", 1));
    ck_assert(auth_may_write(auth_local(), "x", 1));
    ck_assert(auth_is_admin(auth_local()));
    ck_assert_ptr_null(auth_key(auth_local()));
    auth_table_free(&t);
}
END_TEST

START_TEST(test_missing)
{
    auth_table_t *t = parse_ok(K1 " c tasks=echo,ec*ho read=results write=scratch\n" K2
                                  " a admin\n" K3 " w tasks=e*\n");
    const auth_client_t *c = auth_by_name(t, "c"), *a = auth_by_name(t, "a"),
                        *w = auth_by_name(t, "w");
    char buf[64], big[300];

    ck_assert_str_eq(auth_missing(c, AUTH_SUBMIT, "count_primes", 12, buf, sizeof(buf)),
                     "tasks=count_primes");
    ck_assert_ptr_null(auth_missing(c, AUTH_SUBMIT, "echo", 4, buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(c, AUTH_SUBMIT, "exec", 4, buf, sizeof(buf)), "tasks=exec");
    ck_assert_ptr_null(auth_missing(c, AUTH_READ, "results", 7, buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(c, AUTH_WRITE, "results", 7, buf, sizeof(buf)), "write=results");
    ck_assert_str_eq(auth_missing(c, AUTH_READ, "other", 5, buf, sizeof(buf)), "read=other");
    ck_assert_ptr_null(auth_missing(c, AUTH_WRITE, "scratch", 7, buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(c, AUTH_ADMIN, NULL, 0, buf, sizeof(buf)), "admin");
    ck_assert_ptr_null(auth_missing(a, AUTH_ADMIN, NULL, 0, buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(a, AUTH_READ, "resultsXX", 7, buf, sizeof(buf)), "read=results");
    /* unprintable bytes shown as '?', the whole truncated to the buffer */
    ck_assert_str_eq(auth_missing(c, AUTH_READ, "a\x01\xff", 3, buf, sizeof(buf)), "read=a??");
    ck_assert_str_eq(auth_missing(c, AUTH_WRITE, "abcdefgh", 8, buf, 10), "write=abc");
    ck_assert_str_eq(auth_missing(c, AUTH_WRITE, "abcdefgh", 8, buf, 4), "wri");
    ck_assert_ptr_null(auth_missing(auth_local(), AUTH_SUBMIT, "exec", 4, buf, sizeof(buf)));
    /* names longer than the stack copy */
    memset(big, 'e', sizeof(big));
    ck_assert_ptr_null(auth_missing(auth_local(), AUTH_SUBMIT, big, sizeof(big), buf, sizeof(buf)));
    ck_assert_ptr_null(auth_missing(w, AUTH_SUBMIT, big, sizeof(big), buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(c, AUTH_SUBMIT, big, sizeof(big), buf, 10), "tasks=eee");
    ck_assert_str_eq(auth_missing(c, AUTH_SUBMIT, "ec\0ho", 5, buf, sizeof(buf)), "tasks=ec?ho");
    ck_assert_ptr_null(auth_missing(auth_local(), AUTH_ADMIN, NULL, 0, buf, sizeof(buf)));
    ck_assert_str_eq(auth_missing(NULL, AUTH_READ, "d", 1, buf, sizeof(buf)), "read=d");
    auth_table_free(&t);
}
END_TEST

/* Every error of a line, with its whole message. */
START_TEST(test_errors)
{
    static const char with_nul[] = K1 " al\0ce\n";
    char line[5000];

    ASSERT_ERR("a\n", "clients.conf:1: 'a' is not a public key: it has 1 character, a CURVE "
                      "public key has 40 (Z85); copy the key forq keygen printed");
    ASSERT_ERR("abc alice\n", "clients.conf:1: 'abc' is not a public key: it has 3 characters, "
                              "a CURVE public key has 40 (Z85); copy the key forq keygen printed");
    ASSERT_ERR("# c\n\n" K1 "x alice\n",
               "clients.conf:3: '" K1 "x' is not a public key: it has 41 characters, a CURVE "
               "public key has 40 (Z85); copy the key forq keygen printed");
    /* a character outside Z85 ('~'), and a group whose value passes 2^32 */
    ASSERT_ERR("sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~ alice\n",
               "clients.conf:1: 'sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~' is not a CURVE "
               "public key in Z85 (a character outside the Z85 alphabet or a value too large); "
               "copy the key forq keygen printed");
    ASSERT_ERR("%%%%%dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^jb alice\n",
               "clients.conf:1: '%%%%%dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^jb' is not a CURVE "
               "public key in Z85 (a character outside the Z85 alphabet or a value too large); "
               "copy the key forq keygen printed");
    ASSERT_ERR(K1 " alice\n" K2 " bob\n" K1 " carol\n",
               "clients.conf:3: this key is already client 'alice' (line 1); give each key one "
               "line");
    ASSERT_ERR(K1 "\n", "clients.conf:1: no name after the key; a client line is PUBLIC-KEY "
                        "NAME [PERMISSION ...]");
    ASSERT_ERR(K1 "   # alice\n", "clients.conf:1: no name after the key; a client line is "
                                  "PUBLIC-KEY NAME [PERMISSION ...]");
    ASSERT_ERR(K1 " a234567890123456789012345678901234567890123456789012345678901234x\n",
               "clients.conf:1: name 'a23456789012345678901234567890123456789012345...' is 65 "
               "characters; use at most 64 of A-Z a-z 0-9 . _ -");
    ASSERT_ERR(K1 " al/ice\n", "clients.conf:1: name 'al/ice' has the character '/'; use only "
                               "A-Z a-z 0-9 . _ -");
    ASSERT_ERR(K1 " al\xc3\xa9\n", "clients.conf:1: name 'al?"
                                   "?' has the character '?'; use only "
                                   "A-Z a-z 0-9 . _ -");
    ASSERT_ERR(K1 " local admin\n", "clients.conf:1: the name local is reserved for ipc "
                                    "clients; choose another name");
    ASSERT_ERR(K1 " alice\n# x\n" K2 " alice\n", "clients.conf:3: the name 'alice' is already "
                                                 "taken (line 1); give each client its own name");
    ASSERT_ERR(K1 " alice foo=bar\n",
               "clients.conf:1: unknown permission 'foo=bar'; use "
               "tasks=GLOB,..., read=GLOB,..., write=GLOB,..., admin or node");
    ASSERT_ERR(K1 " alice Admin\n", "clients.conf:1: unknown permission 'Admin'; use "
                                    "tasks=GLOB,..., read=GLOB,..., write=GLOB,..., admin or node");
    ASSERT_ERR(K1 " alice exec\n", "clients.conf:1: unknown permission 'exec'; exec is a task: "
                                   "name it in tasks=...,exec");
    ASSERT_ERR(K1 " alice tasks\n", "clients.conf:1: tasks needs its globs: "
                                    "tasks=GLOB[,GLOB...]");
    ASSERT_ERR(K1 " alice write\n", "clients.conf:1: write needs its globs: "
                                    "write=GLOB[,GLOB...]");
    ASSERT_ERR(K1 " alice admin=yes\n", "clients.conf:1: 'admin=yes': admin takes no value; "
                                        "write just admin");
    ASSERT_ERR(K1 " alice admin tasks=* admin\n", "clients.conf:1: admin is given twice; give "
                                                  "it once");
    ASSERT_ERR(K1 " rack1 node=yes\n", "clients.conf:1: 'node=yes': node takes no value; "
                                       "write just node");
    ASSERT_ERR(K1 " rack1 node node\n", "clients.conf:1: node is given twice; give it once");
    ASSERT_ERR(K1 " alice tasks=a tasks=b\n", "clients.conf:1: tasks= is given twice; list all "
                                              "its globs in one tasks=GLOB,GLOB...");
    ASSERT_ERR(K1 " alice read=\n", "clients.conf:1: empty glob in 'read='; separate globs with "
                                    "single commas, without spaces (read=GLOB,GLOB)");
    ASSERT_ERR(K1 " alice read=a,,b\n", "clients.conf:1: empty glob in 'read=a,,b'; separate "
                                        "globs with single commas, without spaces "
                                        "(read=GLOB,GLOB)");
    ASSERT_ERR(K1 " alice tasks=a, b\n", "clients.conf:1: empty glob in 'tasks=a,'; separate "
                                         "globs with single commas, without spaces "
                                         "(tasks=GLOB,GLOB)");
    ASSERT_ERR(K1 " alice write=,a\n", "clients.conf:1: empty glob in 'write=,a'; separate "
                                       "globs with single commas, without spaces "
                                       "(write=GLOB,GLOB)");
    ASSERT_ERR(K1 " alice\x01 tasks=*\n", "clients.conf:1: control character 0x01 in column 47; "
                                          "a clients file is plain text (remove it)");
    ASSERT_ERR(K1 " alice\x7f\n", "clients.conf:1: control character 0x7f in column 47; a "
                                  "clients file is plain text (remove it)");
    ck_assert_str_eq(parse_err(with_nul, sizeof(with_nul) - 1),
                     "clients.conf:1: control character 0x00 in column 44; a clients file is "
                     "plain text (remove it)");

    /* lines up to 4096 bytes; one more is an error */
    snprintf(line, sizeof(line), "%s alice tasks=", K1);
    memset(line + strlen(line), 'x', 4096 - strlen(line));
    line[4096] = '\0';
    auth_table_t *t = parse_ok(line);
    ck_assert(auth_may_submit(auth_by_name(t, "alice"), line + 53));
    auth_table_free(&t);
    strcpy(line + 4096, "x\n");
    ASSERT_ERR(line, "clients.conf:1: line is 4097 bytes, longer than 4096; shorten it (fewer, "
                     "broader globs)");
    /* a long comment line is no exception */
    memset(line, '#', 4097);
    strcpy(line + 4097, "\n");
    ASSERT_ERR(line, "clients.conf:1: line is 4097 bytes, longer than 4096; shorten it (fewer, "
                     "broader globs)");
}
END_TEST

/* Only the first error is reported, on the line it is; a short error buffer is truncated,
 * NUL-terminated. */
START_TEST(test_first_error_only)
{
    const char *text = "# header\n" K1 " alice\n\n" K2 " alice\n" K3 " bob frob\n";
    auth_table_t *t = NULL;
    char small[24];

    ASSERT_ERR(text, "clients.conf:4: the name 'alice' is already taken (line 2); give each "
                     "client its own name");
    ck_assert_int_eq(
        auth_table_parse(text, strlen(text), "/etc/forq/clients", &t, small, sizeof(small)), -1);
    ck_assert_str_eq(small, "/etc/forq/clients:4: th");
    ck_assert_ptr_null(t);
    /* no buffer at all is fine too */
    ck_assert_int_eq(auth_table_parse(text, strlen(text), "x", &t, NULL, 0), -1);
    ck_assert_ptr_null(t);
}
END_TEST

/* 10,000 clients, each with its own key: parsed fast, every one found by key and by name. */
START_TEST(test_ten_thousand)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 128, len = 0;
    char *text = malloc(cap), z85[41], name[32], err[256];
    uint8_t key[32];
    auth_table_t *t = NULL;
    uint64_t t0, ms;

    ck_assert_ptr_nonnull(text);
    for (int i = 0; i < N; i++) {
        for (int b = 0; b < 32; b++)
            key[b] = (uint8_t)((i * 2654435761u) >> (b % 4 * 8)) ^ (uint8_t)(b * 37);
        memcpy(key, &i, sizeof(i));
        ck_assert_ptr_nonnull(zmq_z85_encode(z85, key, 32));
        len += (size_t)snprintf(text + len, cap - len, "%s client-%d tasks=t%d,c* read=d%d\n", z85,
                                i, i, i);
    }
    t0 = now_us();
    ck_assert_msg(auth_table_parse(text, len, "big", &t, err, sizeof(err)) == 0, "%s", err);
    ms = (now_us() - t0) / 1000;
    ck_assert_uint_eq(auth_table_count(t), N);
    /* well under a millisecond per hundred lines; the bound allows a sanitizer build */
    ck_assert_msg(ms < (uint64_t)test_ms(1000), "10,000 lines took %llu ms",
                  (unsigned long long)ms);
    for (int i = 0; i < N; i++) {
        const auth_client_t *c;
        char task[16];
        for (int b = 0; b < 32; b++)
            key[b] = (uint8_t)((i * 2654435761u) >> (b % 4 * 8)) ^ (uint8_t)(b * 37);
        memcpy(key, &i, sizeof(i));
        snprintf(name, sizeof(name), "client-%d", i);
        c = auth_by_key(t, key);
        if (c != auth_by_name(t, name) || !c || c != auth_table_at(t, (size_t)i))
            ck_abort_msg("client %d not found by key and name", i);
        snprintf(task, sizeof(task), "t%d", i);
        if (!auth_may_submit(c, task) || auth_may_submit(c, "t") || !auth_may_submit(c, "count"))
            ck_abort_msg("client %d: wrong tasks", i);
    }
    printf("10,000-line clients file parsed in %llu ms\n", (unsigned long long)ms);
    auth_table_free(&t);
    free(text);
}
END_TEST

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

START_TEST(test_load)
{
    char dir[256], path[300], want[1024], err[1024];
    auth_table_t *t = NULL;

    temp_dir(dir, sizeof(dir), "forq-clients");
    snprintf(path, sizeof(path), "%s/clients", dir);

    ck_assert_int_eq(auth_table_load(path, &t, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s: no such clients file; create it with one line per client, `PUBLIC-KEY NAME "
             "[PERMISSION ...]` (forq keygen makes a client's key)",
             path);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(auth_table_load(dir, &t, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s: the clients file is not a regular file; give the path of a file", dir);
    ck_assert_str_eq(err, want);

    write_file(path, K1 " alice tasks=*\n" K2 " bob\n", 0644);
    ck_assert_msg(auth_table_load(path, &t, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(auth_table_count(t), 2);
    ck_assert(auth_may_submit(auth_by_key(t, raw(K1)), "echo"));
    auth_table_free(&t);

    /* errors name the path */
    write_file(path, K1 " alice\n" K2 " bob tasks=\n", 0600);
    ck_assert_int_eq(auth_table_load(path, &t, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s:2: empty glob in 'tasks='; separate globs with single commas, without spaces "
             "(tasks=GLOB,GLOB)",
             path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(t);

    /* anyone who may write the file may let himself in */
    write_file(path, K1 " alice\n", 0664);
    ck_assert_int_eq(auth_table_load(path, &t, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s: the clients file is writable by its group (mode 0664), who could add a key; "
             "chmod go-w %s",
             path, path);
    ck_assert_str_eq(err, want);
    write_file(path, K1 " alice\n", 0602);
    ck_assert_int_eq(auth_table_load(path, &t, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s: the clients file is writable by all users (mode 0602), who could add a key; "
             "chmod go-w %s",
             path, path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(t);

    /* an empty file: no remote client */
    write_file(path, "", 0600);
    ck_assert_int_eq(auth_table_load(path, &t, err, sizeof(err)), 0);
    ck_assert_uint_eq(auth_table_count(t), 0);
    auth_table_free(&t);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *clients_suite(void)
{
    Suite *s = suite_create("clients");
    TCase *tc = tcase_create("clients");

    tcase_set_timeout(tc, test_ms(60));
    tcase_add_test(tc, test_good_file);
    tcase_add_test(tc, test_empty_files);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_globs);
    tcase_add_test(tc, test_exec_only_when_named);
    tcase_add_test(tc, test_read_write);
    tcase_add_test(tc, test_missing);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_first_error_only);
    tcase_add_test(tc, test_ten_thousand);
    tcase_add_test(tc, test_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(clients_suite());
}
