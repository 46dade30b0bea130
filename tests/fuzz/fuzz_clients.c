/* fuzz_clients.c - libFuzzer harness for the clients-file parser (daemon/auth/clients.h): the
 * input is the whole file. Whatever it holds, parsing must not crash, leak or read out of
 * bounds (ASan, UBSan, LeakSanitizer), and:
 *   - refused: the error is one NUL-terminated line that starts with "PATH:LINE: ", LINE within
 *     the file's lines, and the table pointer is untouched; the same bytes are refused the same
 *     way again (no state between parses);
 *   - accepted: every client is found by its key and by its name, in file order, with a name of
 *     1-64 of [A-Za-z0-9._-] other than "local" (so no two share a key or a name); there are no
 *     more clients than 42-byte lines fit in the input; the rights agree with auth_missing and
 *     write implies read; exec is granted only when the file names it; the same bytes parse to
 *     the same count again.
 * A 1-byte error buffer is tried too (truncation must stay in bounds). */
#define _GNU_SOURCE
#include "clients.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATH "fuzz.clients"

static void check_error(const char *err, size_t size, const uint8_t *data)
{
    size_t lines = 1, n = strlen(err);
    unsigned long line;
    char *end;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (n == 0 || strchr(err, '\n') || strncmp(err, PATH ":", strlen(PATH ":")) != 0)
        abort();
    line = strtoul(err + strlen(PATH ":"), &end, 10);
    if (line == 0 || line > lines || strncmp(end, ": ", 2) != 0 || end[2] == '\0')
        abort();
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > AUTH_NAME_MAX || strcmp(name, "local") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", name[i]))
            return false;
    return true;
}

/* The rights of c on a few names, against auth_missing. */
static void check_rights(const auth_client_t *c, bool exec_named)
{
    static const char *const probes[] = {"exec", "echo", "count_primes", "results", "", "x",
                                         "*",    "[",    "local"};
    char buf[80];

    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        const char *p = probes[i];
        size_t n = strlen(p);
        bool sub = auth_may_submit(c, p), rd = auth_may_read(c, p, n), wr = auth_may_write(c, p, n);

        if (wr && !rd) /* write implies read */
            abort();
        if (sub && strcmp(p, "exec") == 0 && !exec_named) /* no glob grants exec */
            abort();
        if ((auth_missing(c, AUTH_SUBMIT, p, n, buf, sizeof(buf)) == NULL) != sub ||
            (auth_missing(c, AUTH_READ, p, n, buf, sizeof(buf)) == NULL) != rd ||
            (auth_missing(c, AUTH_WRITE, p, n, buf, sizeof(buf)) == NULL) != wr)
            abort();
    }
    if ((auth_missing(c, AUTH_ADMIN, NULL, 0, buf, sizeof(buf)) == NULL) != auth_is_admin(c))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_table_t *t = (auth_table_t *)&t, *t2 = NULL; /* t must stay untouched on failure */
    char err[512], err2[512], tiny[1] = {'x'};
    int r;

    r = auth_table_parse((const char *)data, size, PATH, &t, err, sizeof(err));
    if (r != 0) {
        if (r != -1 || t != (auth_table_t *)&t)
            abort();
        check_error(err, size, data);
        if (auth_table_parse((const char *)data, size, PATH, &t2, err2, sizeof(err2)) != -1 ||
            strcmp(err, err2) != 0)
            abort();
        if (auth_table_parse((const char *)data, size, PATH, &t2, tiny, sizeof(tiny)) != -1 ||
            tiny[0] != '\0')
            abort();
        return 0;
    }
    size_t n = auth_table_count(t);
    bool exec_named = memmem(data, size, "exec", 4) != NULL;
    if (n > size / 42) /* a client line is at least a key, a blank and a name */
        abort();
    if (auth_by_name(t, "local") || auth_table_at(t, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        const auth_client_t *c = auth_table_at(t, i);
        const char *name = auth_name(c);
        const uint8_t *key = auth_key(c);

        if (!c || !name || !key || !name_ok(name) || auth_by_name(t, name) != c ||
            auth_by_key(t, key) != c)
            abort();
        check_rights(c, exec_named);
    }
    if (auth_table_parse((const char *)data, size, PATH, &t2, err2, sizeof(err2)) != 0 ||
        auth_table_count(t2) != n)
        abort();
    auth_table_free(&t2);
    auth_table_free(&t);
    if (t)
        abort();
    return 0;
}
