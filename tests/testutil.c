/* testutil.c - see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

static bool wrapped(void)
{
    const char *w = getenv("FORQ_TEST_WRAP");
    return w && *w;
}

bool test_quick(void)
{
    const char *q = getenv("FORQ_TEST_QUICK");
    return (q && strcmp(q, "1") == 0) || wrapped();
}

int test_ms(int ms)
{
    return wrapped() ? ms * 20 : ms;
}

int sh(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");
    size_t n;
    int status;
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* "/tmp/<name>." followed by the six characters mkdtemp and mkstemp replace. */
static void temp_template(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "/tmp/%s.", name);
    ck_assert_msg(n > 0 && (size_t)n + 7 <= size, "temporary path for %s too long", name);
    memset(buf + n, 'X', 6);
    buf[n + 6] = '\0';
}

char *temp_dir(char *buf, size_t size, const char *name)
{
    temp_template(buf, size, name);
    ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
    return buf;
}

int temp_file(char *buf, size_t size, const char *name)
{
    int fd;
    temp_template(buf, size, name);
    fd = mkstemp(buf);
    ck_assert_msg(fd >= 0, "mkstemp %s: %s", buf, strerror(errno));
    return fd;
}
