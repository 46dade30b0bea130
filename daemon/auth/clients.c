/* clients.c - see clients.h. One pass over the text, line by line and field by field, with no
 * copy of the whole text: each client keeps its name and a copy of its globs, NUL-separated as
 * fnmatch wants them, with one array of pointers per permission. Clients sit in an array in
 * file order and in two uthash tables, by key and by name. A key is accepted only in canonical Z85
 * (decoded, then encoded back to the same text), so one key has one spelling and a line cannot
 * sneak a second entry for a key under another spelling. */
#define _GNU_SOURCE
#include "clients.h"

#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>
#include <zmq.h>

#define KEY_Z85_LEN 40 /* characters of a Z85 CURVE key */

typedef enum { PERM_TASKS, PERM_READ, PERM_WRITE, PERM_COUNT } perm_t;

static const char *const perm_names[PERM_COUNT] = {"tasks", "read", "write"};

typedef struct {
    const char **v; /* the globs, into the client's text */
    size_t n;
} globs_t;

struct auth_client {
    UT_hash_handle hh_key;  /* in auth_table.by_key */
    UT_hash_handle hh_name; /* in auth_table.by_name */
    uint8_t key[32];        /* CURVE public key */
    bool admin;             /* may act on other clients' jobs */
    bool node;              /* may join as a worker node (--node-listen) */
    bool local;             /* the ipc identity: every right */
    unsigned line;          /* where the file gave it (duplicate errors name it) */
    globs_t perm[PERM_COUNT];
    char *text; /* the globs, NUL-separated (owned) */
    char name[AUTH_NAME_MAX + 1];
};

struct auth_table {
    auth_client_t **v;      /* in file order (owned) */
    size_t n, cap;          /* clients, slots */
    auth_client_t *by_key;  /* uthash, hh_key */
    auth_client_t *by_name; /* uthash, hh_name */
};

static const auth_client_t local_client = {.local = true, .admin = true, .name = "local"};

/* ---- errors ---- */

/* The parser's position, for "PATH:LINE: ..." */
typedef struct {
    const char *path;
    unsigned line;
    char *err;
    size_t errlen;
} pos_t;

static int fail(const pos_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const pos_t *p, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!p->err || p->errlen == 0)
        return -1;
    n = snprintf(p->err, p->errlen, "%s:%u: ", p->path ? p->path : "clients", p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A field as it may appear in a message: printable ASCII, others as '?', at most 48 bytes
 * (then "..."). buf must hold 52. */
static const char *shown(const char *s, size_t len, char buf[52])
{
    size_t n = len > 48 ? 45 : len, i;

    for (i = 0; i < n; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- the table ---- */

static void client_free(auth_client_t *c)
{
    for (int k = 0; k < PERM_COUNT; k++)
        free(c->perm[k].v);
    free(c->text);
    free(c);
}

void auth_table_free(auth_table_t **tp)
{
    auth_table_t *t = tp ? *tp : NULL;

    if (!t)
        return;
    HASH_CLEAR(hh_key, t->by_key);
    HASH_CLEAR(hh_name, t->by_name);
    for (size_t i = 0; i < t->n; i++)
        client_free(t->v[i]);
    free(t->v);
    free(t);
    *tp = NULL;
}

size_t auth_table_count(const auth_table_t *t)
{
    return t ? t->n : 0;
}

const auth_client_t *auth_table_at(const auth_table_t *t, size_t i)
{
    return t && i < t->n ? t->v[i] : NULL;
}

const auth_client_t *auth_by_key(const auth_table_t *t, const uint8_t key[32])
{
    auth_client_t *c = NULL;

    if (t && key)
        HASH_FIND(hh_key, t->by_key, key, 32, c);
    return c;
}

const auth_client_t *auth_by_name(const auth_table_t *t, const char *name)
{
    auth_client_t *c = NULL;

    if (t && name)
        HASH_FIND(hh_name, t->by_name, name, strlen(name), c);
    return c;
}

const auth_client_t *auth_local(void)
{
    return &local_client;
}

/* ---- parsing ---- */

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* Decode a key of len characters into out; false unless it is canonical Z85 of 32 bytes. */
static bool key_decode(const char *s, size_t len, uint8_t out[32])
{
    char z85[KEY_Z85_LEN + 1], back[KEY_Z85_LEN + 1];

    if (len != KEY_Z85_LEN || memchr(s, '\0', len))
        return false;
    memcpy(z85, s, len);
    z85[len] = '\0';
    return zmq_z85_decode(out, z85) && zmq_z85_encode(back, out, 32) &&
           memcmp(back, z85, KEY_Z85_LEN) == 0;
}

/* One field of a line: [s, s + len). */
typedef struct {
    const char *s;
    size_t len;
} field_t;

/* The next field of the line at *at (up to end), or len 0 at its end or at a comment. */
static field_t next_field(const char **at, const char *end)
{
    const char *p = *at, *q;

    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '#') {
        *at = end;
        return (field_t){p, 0};
    }
    for (q = p; q < end && !is_blank(*q); q++)
        ;
    *at = q;
    return (field_t){p, (size_t)(q - p)};
}

/* Parse "GLOB[,GLOB...]" (f, after the '=') of permission k into c. */
static int parse_globs(const pos_t *p, auth_client_t *c, perm_t k, field_t whole, field_t f,
                       char **store)
{
    char show[52];
    globs_t *g = &c->perm[k];
    size_t n = 1;

    if (g->v)
        return fail(p, "%s= is given twice; list all its globs in one %s=GLOB,GLOB...",
                    perm_names[k], perm_names[k]);
    for (size_t i = 0; i < f.len; i++)
        n += f.s[i] == ',';
    for (size_t i = 0, start = 0; i <= f.len; i++)
        if (i == f.len || f.s[i] == ',') {
            if (i == start)
                return fail(p,
                            "empty glob in '%s'; separate globs with single commas, without "
                            "spaces (%s=GLOB,GLOB)",
                            shown(whole.s, whole.len, show), perm_names[k]);
            start = i + 1;
        }
    g->v = xcalloc(n, sizeof(*g->v));
    memcpy(*store, f.s, f.len);
    (*store)[f.len] = '\0';
    g->v[g->n++] = *store;
    for (size_t i = 0; i < f.len; i++)
        if ((*store)[i] == ',') {
            (*store)[i] = '\0';
            g->v[g->n++] = *store + i + 1;
        }
    *store += f.len + 1;
    return 0;
}

/* Parse the permission fields after the name (from *at to end) into c. */
static int parse_perms(const pos_t *p, auth_client_t *c, const char *at, const char *end)
{
    char show[52];
    char *store = c->text;

    for (field_t f = next_field(&at, end); f.len; f = next_field(&at, end)) {
        const char *eq = memchr(f.s, '=', f.len);
        size_t klen = eq ? (size_t)(eq - f.s) : f.len;
        int k;

        if (klen == 5 && memcmp(f.s, "admin", 5) == 0) {
            if (eq)
                return fail(p, "'%s': admin takes no value; write just admin",
                            shown(f.s, f.len, show));
            if (c->admin)
                return fail(p, "admin is given twice; give it once");
            c->admin = true;
            continue;
        }
        if (klen == 4 && memcmp(f.s, "node", 4) == 0) {
            if (eq)
                return fail(p, "'%s': node takes no value; write just node",
                            shown(f.s, f.len, show));
            if (c->node)
                return fail(p, "node is given twice; give it once");
            c->node = true;
            continue;
        }
        for (k = 0; k < PERM_COUNT; k++)
            if (strlen(perm_names[k]) == klen && memcmp(f.s, perm_names[k], klen) == 0)
                break;
        if (k == PERM_COUNT) {
            if (f.len == 4 && memcmp(f.s, "exec", 4) == 0)
                return fail(p, "unknown permission 'exec'; exec is a task: name it in "
                               "tasks=...,exec");
            return fail(p,
                        "unknown permission '%s'; use tasks=GLOB,..., read=GLOB,..., "
                        "write=GLOB,..., admin or node",
                        shown(f.s, f.len, show));
        }
        if (!eq)
            return fail(p, "%s needs its globs: %s=GLOB[,GLOB...]", perm_names[k], perm_names[k]);
        if (parse_globs(p, c, (perm_t)k, f, (field_t){eq + 1, f.len - klen - 1}, &store) < 0)
            return -1;
    }
    return 0;
}

/* Check the line's bytes: plain text. */
static int check_text(const pos_t *p, const char *s, size_t len)
{
    if (len > AUTH_LINE_MAX)
        return fail(p, "line is %zu bytes, longer than %d; shorten it (fewer, broader globs)", len,
                    AUTH_LINE_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
            return fail(p,
                        "control character 0x%02x in column %zu; a clients file is plain "
                        "text (remove it)",
                        ch, i + 1);
    }
    return 0;
}

static void table_add(auth_table_t *t, auth_client_t *c)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n++] = c;
    HASH_ADD(hh_key, t->by_key, key, sizeof(c->key), c);
    HASH_ADD_KEYPTR(hh_name, t->by_name, c->name, strlen(c->name), c);
}

/* Parse one line (without its newline) into t. */
static int parse_line(const pos_t *p, auth_table_t *t, const char *s, size_t len)
{
    const char *at = s, *end = s + len;
    char show[52], bad[52];
    field_t key, name;
    auth_client_t *c, *other;
    uint8_t raw[32];

    if (check_text(p, s, len) < 0)
        return -1;
    key = next_field(&at, end);
    if (key.len == 0)
        return 0; /* blank, or a comment */
    if (key.len != KEY_Z85_LEN)
        return fail(p,
                    "'%s' is not a public key: it has %zu character%s, a CURVE public key "
                    "has 40 (Z85); copy the key forq keygen printed",
                    shown(key.s, key.len, show), key.len, key.len == 1 ? "" : "s");
    if (!key_decode(key.s, key.len, raw))
        return fail(p,
                    "'%s' is not a CURVE public key in Z85 (a character outside the Z85 "
                    "alphabet or a value too large); copy the key forq keygen printed",
                    shown(key.s, key.len, show));
    HASH_FIND(hh_key, t->by_key, raw, sizeof(raw), other);
    if (other)
        return fail(p, "this key is already client '%s' (line %u); give each key one line",
                    other->name, other->line);
    name = next_field(&at, end);
    if (name.len == 0)
        return fail(p, "no name after the key; a client line is PUBLIC-KEY NAME "
                       "[PERMISSION ...]");
    if (name.len > AUTH_NAME_MAX)
        return fail(p, "name '%s' is %zu characters; use at most %d of A-Z a-z 0-9 . _ -",
                    shown(name.s, name.len, show), name.len, AUTH_NAME_MAX);
    for (size_t i = 0; i < name.len; i++)
        if (!is_name_char(name.s[i]))
            return fail(p, "name '%s' has the character '%s'; use only A-Z a-z 0-9 . _ -",
                        shown(name.s, name.len, show), shown(name.s + i, 1, bad));
    if (name.len == 5 && memcmp(name.s, "local", 5) == 0)
        return fail(p, "the name local is reserved for ipc clients; choose another name");
    HASH_FIND(hh_name, t->by_name, name.s, name.len, other);
    if (other)
        return fail(p,
                    "the name '%s' is already taken (line %u); give each client its own "
                    "name",
                    other->name, other->line);

    c = xcalloc(1, sizeof(*c));
    memcpy(c->key, raw, sizeof(raw));
    memcpy(c->name, name.s, name.len);
    c->line = p->line;
    c->text = xmalloc((size_t)(end - at) + 1); /* the globs take less than the rest */
    if (parse_perms(p, c, at, end) < 0) {
        client_free(c);
        return -1;
    }
    table_add(t, c);
    return 0;
}

int auth_table_parse(const char *text, size_t len, const char *path, auth_table_t **ret, char *err,
                     size_t errlen)
{
    pos_t p = {path, 0, err, errlen};
    auth_table_t *t = xcalloc(1, sizeof(*t));

    if (err && errlen)
        err[0] = '\0';
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;

        p.line++;
        if (parse_line(&p, t, text + off, n) < 0) {
            auth_table_free(&t);
            return -1;
        }
        off += n + (nl != NULL);
    }
    *ret = t;
    return 0;
}

/* ---- the file ---- */

int auth_table_load(const char *path, auth_table_t **ret, char *err, size_t errlen)
{
    _cleanup_(closep) int fd = -1;
    _cleanup_(freep) char *text = NULL;
    size_t len = 0, cap;
    struct stat st;
    ssize_t k;

    if (!err)
        errlen = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        snprintf(err, errlen,
                 "%s: no such clients file; create it with one line per client, "
                 "`PUBLIC-KEY NAME [PERMISSION ...]` (forq keygen makes a client's key)",
                 path);
        return -1;
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen,
                 "%s: cannot read the clients file: %s; check the path and its "
                 "permissions",
                 path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen,
                 "%s: the clients file is not a regular file; give the path of "
                 "a file",
                 path);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "%s: the clients file is writable by %s (mode %04o), who could add a key; "
                 "chmod go-w %s",
                 path, st.st_mode & S_IWOTH ? "all users" : "its group",
                 (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    if (st.st_size > AUTH_FILE_MAX)
        goto too_large;
    cap = (size_t)st.st_size + 1;
    text = xmalloc(cap);
    for (;;) { /* to the end, even if it grew since fstat */
        if (len == cap) {
            if (cap > AUTH_FILE_MAX)
                goto too_large;
            cap *= 2;
            text = xrealloc(text, cap);
        }
        k = read(fd, text + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, errlen, "%s: cannot read the clients file: %s; check the file", path,
                     strerror(errno));
            return -1;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    if (len > AUTH_FILE_MAX)
        goto too_large;
    return auth_table_parse(text, len, path, ret, err, errlen);

too_large:
    snprintf(err, errlen, "%s: the clients file is larger than %d MiB; is it the right file?", path,
             AUTH_FILE_MAX >> 20);
    return -1;
}

/* ---- rights ---- */

const char *auth_name(const auth_client_t *c)
{
    return c ? c->name : NULL;
}

const uint8_t *auth_key(const auth_client_t *c)
{
    return c && !c->local ? c->key : NULL;
}

static bool globs_match(const globs_t *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (fnmatch(g->v[i], name, 0) == 0)
            return true;
    return false;
}

bool auth_may_submit(const auth_client_t *c, const char *task)
{
    const globs_t *g;

    if (!c || !task)
        return false;
    if (c->local)
        return true;
    g = &c->perm[PERM_TASKS];
    if (strcmp(task, "exec") == 0) { /* by name only: tasks=* does not let a client run programs */
        for (size_t i = 0; i < g->n; i++)
            if (strcmp(g->v[i], "exec") == 0)
                return true;
        return false;
    }
    return globs_match(g, task);
}

/* Does a glob of g match the dict name (len bytes)? */
static bool dict_match(const globs_t *g, const char *dict, size_t len)
{
    char small[256], *name = small;
    bool r;

    if (g->n == 0 || !dict || memchr(dict, '\0', len))
        return false;
    if (len >= sizeof(small))
        name = xmalloc(len + 1);
    memcpy(name, dict, len);
    name[len] = '\0';
    r = globs_match(g, name);
    if (name != small)
        free(name);
    return r;
}

bool auth_may_read(const auth_client_t *c, const char *dict, size_t len)
{
    if (!c)
        return false;
    return c->local || dict_match(&c->perm[PERM_READ], dict, len) ||
           dict_match(&c->perm[PERM_WRITE], dict, len);
}

bool auth_may_write(const auth_client_t *c, const char *dict, size_t len)
{
    if (!c)
        return false;
    return c->local || dict_match(&c->perm[PERM_WRITE], dict, len);
}

bool auth_is_admin(const auth_client_t *c)
{
    return c && c->admin;
}

bool auth_is_node(const auth_client_t *c)
{
    return c && c->node && !c->local;
}

const char *auth_missing(const auth_client_t *c, auth_action_t action, const char *name, size_t len,
                         char *buf, size_t size)
{
    static const char *const what[] = {"tasks=", "read=", "write="};
    bool may;
    size_t n;

    switch (action) {
    case AUTH_SUBMIT: {
        char small[256], *task = small;
        if (!name || memchr(name, '\0', len)) {
            may = false;
            break;
        }
        if (len >= sizeof(small))
            task = xmalloc(len + 1);
        memcpy(task, name, len);
        task[len] = '\0';
        may = auth_may_submit(c, task);
        if (task != small)
            free(task);
        break;
    }
    case AUTH_READ:
        may = auth_may_read(c, name, len);
        break;
    case AUTH_WRITE:
        may = auth_may_write(c, name, len);
        break;
    case AUTH_ADMIN:
        may = auth_is_admin(c);
        break;
    default:
        assert(!"an action auth_missing knows");
        may = false;
    }
    if (may)
        return NULL;
    if (!buf || size == 0)
        return "";
    if (action == AUTH_ADMIN || (unsigned)action > AUTH_WRITE) {
        snprintf(buf, size, "admin");
        return buf;
    }
    n = (size_t)snprintf(buf, size, "%s", what[action]);
    for (size_t i = 0; name && i < len && n + 1 < size; i++, n++)
        buf[n] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    if (n < size)
        buf[n] = '\0';
    return buf;
}
