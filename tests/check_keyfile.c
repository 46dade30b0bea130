/* check_keyfile.c - CURVE key files (proto/keyfile.h): a new pair is mode 0600 whatever the umask,
 * never overwrites a file unless forced (then atomically), reads back to the same keys; public-only
 * and secret-only files; every malformed file and loose permissions refused with their messages;
 * a server key given as a key or as a file. */
#define _GNU_SOURCE
#include "keyfile.h"
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
#include <zmq.h>

/* A pair made by zmq_curve_keypair, and a second public key. */
#define PUB  "sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^jb"
#define SEC  "+#GY55(5cE0uztLERJ(ELkk1L/:#CS4fv(H}7yBB"
#define PUB2 "(U]B.:r:&h*gAf#Q)N#4aq?^nl)k%l@Y%Uc/Q@Z$"

static char dir[256], path[300];

static void setup(void)
{
    temp_dir(dir, sizeof(dir), "forq-keyfile");
    snprintf(path, sizeof(path), "%s/key", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];

    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void write_file(const char *p, const char *text, mode_t mode)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_text(const char *p)
{
    static char buf[4096];
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    ck_assert_int_ge(fd, 0);
    n = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_mode & 07777;
}

static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* keyfile_read expecting an error: returns it; checks errno and that outputs are untouched. */
static const char *read_err(const char *text, mode_t mode, int want_errno)
{
    static char err[512];
    char pub[FORQ_KEY_Z85] = "untouched", sec[FORQ_KEY_Z85] = "untouched";

    write_file(path, text, mode);
    errno = 0;
    ck_assert_int_eq(keyfile_read(path, pub, sec, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, want_errno);
    ck_assert_str_eq(pub, "untouched");
    ck_assert_str_eq(sec, "untouched");
    ck_assert_ptr_null(strchr(err, '\n'));
    return err;
}

/* "PATH" + rest */
static const char *at_path(const char *rest)
{
    static char buf[600];
    snprintf(buf, sizeof(buf), "%s%s", path, rest);
    return buf;
}

START_TEST(test_generate)
{
    char pub[FORQ_KEY_Z85], rpub[FORQ_KEY_Z85], rsec[FORQ_KEY_Z85], derived[FORQ_KEY_Z85];
    char err[512] = "", want[512];
    const char *text;
    mode_t old = umask(0); /* a generous umask must not widen the file */

    ck_assert_int_eq(keyfile_generate(path, false, pub, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ck_assert(keyfile_is_key(pub));
    ck_assert_uint_eq(mode_of(path), 0600);
    text = read_text(path);
    ck_assert_int_eq(keyfile_read(path, rpub, rsec, err, sizeof(err)), 0);
    ck_assert_str_eq(rpub, pub);
    ck_assert(keyfile_is_key(rsec));
    ck_assert_int_eq(keyfile_public_of(rsec, derived), 0);
    ck_assert_str_eq(derived, pub);
    snprintf(want, sizeof(want),
             "# forq CURVE key pair: keep this file secret (made by forq keygen)\n"
             "public-key = %s\nsecret-key = %s\n",
             pub, rsec);
    ck_assert_str_eq(text, want);

    /* a stingy umask (no bits for the owner either) still gives 0600 */
    unlink(path);
    umask(0377);
    ck_assert_int_eq(keyfile_generate(path, false, pub, err, sizeof(err)), 0);
    ck_assert_uint_eq(mode_of(path), 0600);
    ck_assert_int_eq(keyfile_read(path, rpub, rsec, err, sizeof(err)), 0);
    ck_assert_str_eq(rpub, pub);
    umask(old); /* for the next test, when they are not forked (valgrind) */
}
END_TEST

START_TEST(test_generate_exclusive)
{
    char pub[FORQ_KEY_Z85], pub2[FORQ_KEY_Z85], rpub[FORQ_KEY_Z85], err[512];
    char before[4096], want[1024];

    ck_assert_int_eq(keyfile_generate(path, false, pub, err, sizeof(err)), 0);
    strcpy(before, read_text(path));
    strcpy(pub2, "untouched");
    ck_assert_int_eq(keyfile_generate(path, false, pub2, err, sizeof(err)), -EEXIST);
    snprintf(want, sizeof(want),
             "%s already exists; a key file is never overwritten: remove it first or choose "
             "another file",
             path);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(pub2, "untouched");
    ck_assert_str_eq(read_text(path), before);
    ck_assert_int_eq(files_in_dir(), 1);

    /* not through a symbolic link either, even a dangling one */
    char link[320];
    snprintf(link, sizeof(link), "%s/link", dir);
    ck_assert_int_eq(symlink("nowhere", link), 0);
    ck_assert_int_eq(keyfile_generate(link, false, pub2, err, sizeof(err)), -EEXIST);
    unlink(link);

    /* forced: replaced, atomically (no temporary file left), still 0600 */
    chmod(path, 0644);
    ck_assert_int_eq(keyfile_generate(path, true, pub2, err, sizeof(err)), 0);
    ck_assert_str_ne(pub2, pub);
    ck_assert_uint_eq(mode_of(path), 0600);
    ck_assert_int_eq(keyfile_read(path, rpub, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(rpub, pub2);
    ck_assert_int_eq(files_in_dir(), 1);
    /* forced with nothing to replace: made */
    unlink(path);
    ck_assert_int_eq(keyfile_generate(path, true, pub2, err, sizeof(err)), 0);
    ck_assert_int_eq(files_in_dir(), 1);
}
END_TEST

START_TEST(test_generate_errors)
{
    char pub[FORQ_KEY_Z85] = "untouched", err[512], p[400], want[1024];

    snprintf(p, sizeof(p), "%s/no/such/dir/key", dir);
    ck_assert_int_eq(keyfile_generate(p, false, pub, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want),
             "%s: cannot create the key file: No such file or directory; check the directory", p);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(keyfile_generate(p, true, pub, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(pub, "untouched");

    /* forced, the temporary file's name ("PATH." and six X, in keyfile.c's 4,200 bytes) must
     * fit: one byte short is refused before anything is made; one shorter reaches the system,
     * which refuses a name that long itself */
    char *lp = malloc(4194), *lerr = malloc(8192);
    memset(lp, 'k', 4193);
    lp[0] = '/';
    lp[4193] = '\0';
    ck_assert_int_eq(keyfile_generate(lp, true, pub, lerr, 8192), -ENAMETOOLONG);
    ck_assert_msg(strstr(lerr, ": path too long; use a shorter one"), "%s", lerr);
    lp[4192] = '\0';
    ck_assert_int_eq(keyfile_generate(lp, true, pub, lerr, 8192), -ENAMETOOLONG);
    ck_assert_msg(strstr(lerr, ": cannot create the key file: File name too long"), "%s", lerr);
    ck_assert_str_eq(pub, "untouched");
    free(lp);
    free(lerr);
}
END_TEST

START_TEST(test_public_only)
{
    char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85] = "x", err[512];

    /* readable by all: fine without a secret */
    write_file(path, "# the server's key\npublic-key = " PUB "\n", 0644);
    ck_assert_int_eq(keyfile_read(path, pub, sec, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
    ck_assert_str_eq(sec, "");
    /* spacing, tabs, CRLF, no final newline */
    write_file(path, "  # c\r\n\r\n\tpublic-key=" PUB "  \r", 0644);
    ck_assert_int_eq(keyfile_read(path, pub, sec, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
}
END_TEST

START_TEST(test_secret_only_and_match)
{
    char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85], err[512];

    write_file(path, "secret-key = " SEC "\n", 0600);
    ck_assert_int_eq(keyfile_read(path, pub, sec, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
    ck_assert_str_eq(sec, SEC);
    /* order does not matter */
    write_file(path, "secret-key = " SEC "\npublic-key = " PUB "\n", 0600);
    ck_assert_int_eq(keyfile_read(path, pub, sec, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
    ck_assert_str_eq(read_err("public-key = " PUB2 "\nsecret-key = " SEC "\n", 0600, EINVAL),
                     at_path(":1: this public-key is not the secret-key's (line 2); the file is "
                             "damaged: make a new pair with forq keygen"));
}
END_TEST

START_TEST(test_loose_permissions)
{
    char pub[FORQ_KEY_Z85], err[512], want[1024];
    const char *text = "public-key = " PUB "\nsecret-key = " SEC "\n";
    const mode_t loose[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601, 0660};

    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        snprintf(want, sizeof(want),
                 "%s: holds a secret key but group or others may access it (mode %04o); "
                 "chmod 600 %s",
                 path, (unsigned)loose[i], path);
        ck_assert_str_eq(read_err(text, loose[i], EPERM), want);
        /* refused even to a caller who wants only the public key */
        ck_assert_int_eq(keyfile_read(path, pub, NULL, err, sizeof(err)), -1);
        ck_assert_int_eq(keyfile_public(path, pub, err, sizeof(err)), -1);
        ck_assert_str_eq(err, want);
    }
    write_file(path, text, 0400);
    ck_assert_int_eq(keyfile_read(path, pub, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
}
END_TEST

START_TEST(test_bad_files)
{
    ck_assert_str_eq(read_err("public-key = " PUB "x\n", 0600, EINVAL),
                     at_path(":1: the public-key has 41 characters, a CURVE key 40 (Z85); copy "
                             "it whole, or make a new pair with forq keygen"));
    ck_assert_str_eq(read_err("public-key = x\n", 0600, EINVAL),
                     at_path(":1: the public-key has 1 character, a CURVE key 40 (Z85); copy it "
                             "whole, or make a new pair with forq keygen"));
    ck_assert_str_eq(read_err("# c\nsecret-key =\n", 0600, EINVAL),
                     at_path(":2: the secret-key has 0 characters, a CURVE key 40 (Z85); copy it "
                             "whole, or make a new pair with forq keygen"));
    /* a character outside Z85; a group whose value passes 2^32 */
    ck_assert_str_eq(
        read_err("public-key = sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~\n", 0600, EINVAL),
        at_path(":1: the public-key is not valid Z85 (a character outside the "
                "alphabet or a value too large); copy it again, or make a new pair "
                "with forq keygen"));
    ck_assert_str_eq(
        read_err("secret-key = %%%%%5(5cE0uztLERJ(ELkk1L/:#CS4fv(H}7yBB\n", 0600, EINVAL),
        at_path(":1: the secret-key is not valid Z85 (a character outside the "
                "alphabet or a value too large); copy it again, or make a new pair "
                "with forq keygen"));
    ck_assert_str_eq(read_err("public-key = " PUB "\npublic-key = " PUB "\n", 0600, EINVAL),
                     at_path(":2: public-key is given twice (line 1); keep one"));
    ck_assert_str_eq(read_err("public_key = " PUB "\n", 0600, EINVAL),
                     at_path(":1: unknown name 'public_key'; a key file has public-key = KEY and "
                             "secret-key = KEY"));
    ck_assert_str_eq(read_err(PUB "\n", 0600, EINVAL),
                     at_path(":1: unknown name 'sj}(*dD5[^JT2:i6&!GSSc.EuW1)'; a key file has "
                             "public-key = KEY and secret-key = KEY"));
    ck_assert_str_eq(read_err("\n\npublic key\n", 0600, EINVAL),
                     at_path(":3: not a `name = value` line; a key file has public-key = KEY and "
                             "secret-key = KEY"));
    ck_assert_str_eq(read_err("public-key = " PUB " # mine\n", 0600, EINVAL),
                     at_path(":1: the public-key has 47 characters, a CURVE key 40 (Z85); copy "
                             "it whole, or make a new pair with forq keygen"));
    ck_assert_str_eq(read_err("public-key = \x01" PUB "\n", 0600, EINVAL),
                     at_path(":1: a control character (0x01); a key file is text: make a new one "
                             "with forq keygen"));
    ck_assert_str_eq(read_err("", 0600, EINVAL),
                     at_path(": no public-key or secret-key line; is it a forq key file? (forq "
                             "keygen makes one)"));
    ck_assert_str_eq(read_err("# only comments\n\n", 0600, EINVAL),
                     at_path(": no public-key or secret-key line; is it a forq key file? (forq "
                             "keygen makes one)"));
}
END_TEST

START_TEST(test_unreadable)
{
    char pub[FORQ_KEY_Z85] = "untouched", err[512], want[1024];
    char *big;

    errno = 0;
    ck_assert_int_eq(keyfile_read(path, pub, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, ENOENT);
    snprintf(want, sizeof(want), "%s: no such key file; make one with forq keygen --out %s", path,
             path);
    ck_assert_str_eq(err, want);

    errno = 0;
    ck_assert_int_eq(keyfile_read(dir, pub, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, EISDIR);
    snprintf(want, sizeof(want), "%s: not a key file (not a regular file); give the path of a file",
             dir);
    ck_assert_str_eq(err, want);

    big = malloc(KEYFILE_SIZE_MAX + 2);
    ck_assert_ptr_nonnull(big);
    memset(big, '#', KEYFILE_SIZE_MAX + 1);
    big[KEYFILE_SIZE_MAX + 1] = '\0';
    snprintf(want, sizeof(want),
             "%s: larger than 16 KiB, too large for a key file; is it the right file?", path);
    ck_assert_str_eq(read_err(big, 0600, EFBIG), want);
    /* just at the limit: read (and found wanting) */
    big[KEYFILE_SIZE_MAX] = '\0';
    ck_assert_str_eq(read_err(big, 0600, EINVAL),
                     at_path(": no public-key or secret-key line; is it a forq key file? (forq "
                             "keygen makes one)"));
    free(big);
    ck_assert_str_eq(pub, "untouched");
}
END_TEST

START_TEST(test_public)
{
    char pub[FORQ_KEY_Z85] = "", err[512], want[1024];

    /* a key as it is, even if a file of that name existed */
    ck_assert_int_eq(keyfile_public(PUB2, pub, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB2);
    /* a public-only file */
    write_file(path, "public-key = " PUB "\n", 0644);
    ck_assert_int_eq(keyfile_public(path, pub, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);
    /* a full pair, kept private */
    write_file(path, "public-key = " PUB2 "\nsecret-key = " SEC "\n", 0600);
    ck_assert_int_eq(keyfile_public(path, pub, err, sizeof(err)), -1);
    ck_assert_str_eq(err, at_path(":1: this public-key is not the secret-key's (line 2); the file "
                                  "is damaged: make a new pair with forq keygen"));
    write_file(path, "secret-key = " SEC "\n", 0600);
    ck_assert_int_eq(keyfile_public(path, pub, err, sizeof(err)), 0);
    ck_assert_str_eq(pub, PUB);

    /* neither */
    strcpy(pub, "untouched");
    ck_assert_int_eq(
        keyfile_public("sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~", pub, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "'sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~' is neither a CURVE public "
                          "key (40 Z85 characters) nor a key file; give the server's public key "
                          "(forqd --show-key prints it) or its file");
    ck_assert_int_eq(keyfile_public("", pub, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "no server key given; give its public key (forqd --show-key prints it) "
                          "or its key file");
    ck_assert_int_eq(keyfile_public(dir, pub, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: not a key file (not a regular file); give the path of a file",
             dir);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(pub, "untouched");
}
END_TEST

START_TEST(test_is_key_and_public_of)
{
    char pub[FORQ_KEY_Z85] = "untouched", short_key[FORQ_KEY_Z85] = "short";
    char too_large[FORQ_KEY_Z85] = "%%%%%5(5cE0uztLERJ(ELkk1L/:#CS4fv(H}7yBB";

    ck_assert(keyfile_is_key(PUB));
    ck_assert(keyfile_is_key(SEC));
    ck_assert(!keyfile_is_key(NULL));
    ck_assert(!keyfile_is_key(""));
    ck_assert(!keyfile_is_key(PUB "x"));
    ck_assert(!keyfile_is_key("sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j"));
    ck_assert(!keyfile_is_key("sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j~"));
    ck_assert(!keyfile_is_key("sj}(*dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^j "));
    ck_assert(!keyfile_is_key("%%%%%dD5[^JT2:i6&!GSSc.EuW1)=TA@RYgWE^jb"));
    ck_assert_int_eq(keyfile_public_of(SEC, pub), 0);
    ck_assert_str_eq(pub, PUB);
    strcpy(pub, "untouched");
    ck_assert_int_eq(keyfile_public_of(short_key, pub), -EINVAL);
    ck_assert_int_eq(keyfile_public_of(too_large, pub), -EINVAL);
    ck_assert_str_eq(pub, "untouched");
}
END_TEST

static Suite *keyfile_suite(void)
{
    Suite *s = suite_create("keyfile");
    TCase *tc = tcase_create("keyfile");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, test_ms(30));
    tcase_add_test(tc, test_generate);
    tcase_add_test(tc, test_generate_exclusive);
    tcase_add_test(tc, test_generate_errors);
    tcase_add_test(tc, test_public_only);
    tcase_add_test(tc, test_secret_only_and_match);
    tcase_add_test(tc, test_loose_permissions);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_public);
    tcase_add_test(tc, test_is_key_and_public_of);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(keyfile_suite());
}
