/* access.c - CURVE on tcp endpoints, the ZAP handler, identities. See access.h. */
#define _GNU_SOURCE
#include "access.h"

#include "endpoint.h"
#include "jobs.h"
#include "keyfile.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

#define ZAP_ENDPOINT   "inproc://zeromq.zap.01" /* where libzmq asks (RFC 27) */
#define ZAP_FRAMES_MAX 8                        /* the request's frames we look at */
#define IDENTS_MAX     65000                    /* names over the life of the process */
#define LOG_WINDOW_MS  60000                    /* refusals logged: at most LOG_PER_WINDOW */
#define LOG_PER_WINDOW 10                       /*   lines in a window, then one count */

typedef enum { REFUSED_PLAINTEXT, REFUSED_KEY, REFUSED_INVALID, REFUSAL_KINDS } refusal_t;
static const char *const refusal_names[] = {"no CURVE", "unknown key", "invalid handshake"};

typedef struct ident {
    UT_hash_handle hh;
    const auth_client_t *rights; /* in the current table; NULL: its key was removed */
    size_t live;                 /* its unfinished jobs */
    uint16_t who;
    char name[72];
} ident_t;

struct access {
    broker_t *b;
    auth_table_t *table; /* the clients file in effect (NULL: no CURVE endpoint) */
    auth_table_t *next;  /* read by access_prepare, waiting for the commit */
    ident_t *by_name;    /* every identity by name */
    ident_t **all;       /* and by number */
    size_t n, cap;
    gid_t ipc_gid;
    bool ipc_group;
    char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85];
    void *zctx;      /* the client socket's context */
    void *zap, *mon; /* the ZAP handler's REP socket; the client socket's monitor */
    struct {
        uint64_t start;      /* of this minute's window */
        unsigned lines;      /* logged in it */
        uint64_t suppressed; /* not logged in it */
    } win[REFUSAL_KINDS];
};

static ident_t *ident_add(access_t *a, const char *name, const auth_client_t *rights)
{
    ident_t *id;

    HASH_FIND_STR(a->by_name, name, id);
    if (id) {
        id->rights = rights;
        return id;
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->all = xrealloc(a->all, a->cap * sizeof(*a->all));
    }
    id = xcalloc(1, sizeof(*id));
    snprintf(id->name, sizeof(id->name), "%s", name);
    id->rights = rights;
    id->who = (uint16_t)a->n;
    a->all[a->n++] = id;
    HASH_ADD_STR(a->by_name, name, id);
    return id;
}

access_t *access_new(broker_t *b)
{
    access_t *a = xcalloc(1, sizeof(*a));

    a->b = b;
    ident_add(a, "local", auth_local()); /* ACCESS_LOCAL */
    ident_add(a, "(unknown)", NULL);     /* ACCESS_NOBODY */
    return a;
}

void access_destroy(access_t **ap)
{
    access_t *a = *ap;

    if (!a)
        return;
    if (a->zap)
        zmq_close(a->zap);
    if (a->mon)
        zmq_close(a->mon);
    HASH_CLEAR(hh, a->by_name);
    for (size_t i = 0; i < a->n; i++)
        free(a->all[i]);
    free(a->all);
    auth_table_free(&a->table);
    auth_table_free(&a->next);
    explicit_bzero(a->sec, sizeof(a->sec));
    free(a);
    *ap = NULL;
}

/* ---- refusals in the log, a few a minute of each kind ---- */

/* Each kind has its own budget, so that a client retrying in plaintext does not hide an
 * unknown key from the log. */
static bool may_log(access_t *a, refusal_t kind)
{
    uint64_t now = now_ms();

    if (now - a->win[kind].start >= LOG_WINDOW_MS) {
        if (a->win[kind].suppressed)
            log_warn("%" PRIu64 " more refused handshakes (%s) in the last minute were not "
                     "logged",
                     a->win[kind].suppressed, refusal_names[kind]);
        a->win[kind].start = now;
        a->win[kind].lines = 0;
        a->win[kind].suppressed = 0;
    }
    if (a->win[kind].lines < LOG_PER_WINDOW) {
        a->win[kind].lines++;
        return true;
    }
    a->win[kind].suppressed++;
    return false;
}

/* ---- the ZAP handler ---- */

static bool frame_is(zmq_msg_t *f, const char *s)
{
    return zmq_msg_size(f) == strlen(s) && memcmp(zmq_msg_data(f), s, strlen(s)) == 0;
}

static void zap_reply(void *sock, zmq_msg_t *reqid, const char *code, const char *text,
                      const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0); /* no metadata */
}

/* One ZAP request: admit a CURVE peer whose key is listed, under its name. False if none. */
static bool zap_one(access_t *a)
{
    zmq_msg_t f[ZAP_FRAMES_MAX];
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    const auth_client_t *c = NULL;
    char key[FORQ_KEY_Z85] = "?", addr[64] = "?";

    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], a->zap, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        return false;
    }
    n = 1;
    while (zmq_getsockopt(a->zap, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        zmq_msg_t junk, *m = n < ZAP_FRAMES_MAX ? &f[n] : &junk;
        zmq_msg_init(m);
        zmq_msg_recv(m, a->zap, 0);
        if (m == &junk)
            zmq_msg_close(&junk);
        else
            n++;
    }
    if (n >= 4)
        snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]),
                 (const char *)zmq_msg_data(&f[3]));
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        if (n >= 2)
            zap_reply(a->zap, &f[1], "500", "bad ZAP request", "");
        else
            zap_reply(a->zap, &f[0], "500", "bad ZAP request", "");
    } else if (!frame_is(&f[5], "CURVE") || n < 7 || zmq_msg_size(&f[6]) != 32) {
        if (may_log(a, REFUSED_PLAINTEXT))
            log_warn("refused a tcp peer at %s: it did not use CURVE; clients need forqd's "
                     "public key (forqd --show-key)",
                     addr);
        zap_reply(a->zap, &f[1], "400", "CURVE required", "");
    } else if (!(c = a->table ? auth_by_key(a->table, zmq_msg_data(&f[6])) : NULL)) {
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        if (may_log(a, REFUSED_KEY))
            log_warn("refused a tcp peer at %s: its public key %s is not in the clients file; "
                     "add a line for it to let it in",
                     addr, key);
        zap_reply(a->zap, &f[1], "400", "unknown key", "");
    } else if (frame_is(&f[2], ACCESS_NODE_DOMAIN) && !auth_is_node(c)) {
        /* the node endpoint: only keys with the node role (PROTOCOL.md section 14.1) */
        if (may_log(a, REFUSED_KEY))
            log_warn("refused a node at %s: its key (%s) has no node role in the clients file; "
                     "add `node` to its line",
                     addr, auth_name(c));
        zap_reply(a->zap, &f[1], "400", "not a node", "");
    } else {
        log_debug("tcp peer at %s admitted as %s", addr, auth_name(c));
        zap_reply(a->zap, &f[1], "200", "OK", auth_name(c));
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return true;
}

static void on_zap(void *ud, short revents)
{
    access_t *a = ud;

    (void)revents;
    for (int i = 0; i < BROKER_BATCH && zap_one(a); i++)
        ;
}

/* The client socket's failed handshakes (the ZAP handler logged its own refusals). */
static void on_monitor(void *ud, short revents)
{
    access_t *a = ud;

    (void)revents;
    for (int i = 0; i < BROKER_BATCH; i++) {
        zmq_msg_t ev, ep;
        uint16_t event = 0;
        uint32_t value = 0;

        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, a->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&ep);
        zmq_msg_recv(&ep, a->mon, 0);
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        refusal_t kind = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? REFUSED_PLAINTEXT
                                                                             : REFUSED_INVALID;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && may_log(a, kind))
            log_warn("refused a peer on %.*s: %s", (int)zmq_msg_size(&ep),
                     (const char *)zmq_msg_data(&ep),
                     value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                         ? "it did not use CURVE; clients need forqd's public key (forqd "
                           "--show-key) and a key pair in the clients file"
                         : "its handshake was not valid (a wrong server key, or not a forq "
                           "client)");
        zmq_msg_close(&ev);
        zmq_msg_close(&ep);
    }
}

void access_watch(access_t *a, void *sock)
{
    char ep[64];

    if (!a->zap)
        return;
    snprintf(ep, sizeof(ep), "inproc://forqd-monitor-%p", (void *)a);
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) < 0)
        return;
    a->mon = zmq_socket(a->zctx, ZMQ_PAIR);
    if (!a->mon || zmq_connect(a->mon, ep) < 0) {
        log_warn("cannot watch handshakes: %s; refused peers will not be logged",
                 zmq_strerror(errno));
        return;
    }
    loop_io_add(a->b->loop, a->mon, -1, ZMQ_POLLIN, ORDER_CLIENTS, on_monitor, a);
}

/* ---- start, endpoints ---- */

int access_server_key(const config_t *cfg, char pub[FORQ_KEY_Z85], char sec[FORQ_KEY_Z85],
                      bool *made)
{
    char path[4096], err[512];

    config_server_key_path(cfg, path, sizeof(path));
    *made = false;
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        if (keyfile_generate(path, false, pub, err, sizeof(err)) < 0) {
            fprintf(stderr, "forqd: cannot make forqd's key pair: %s\n", err);
            return -1;
        }
        *made = true;
    }
    if (keyfile_read(path, pub, sec, err, sizeof(err)) < 0) {
        fprintf(stderr, "forqd: %s\n", err);
        return -1;
    }
    if (!sec[0]) {
        fprintf(stderr,
                "forqd: %s holds no secret-key: forqd's key file needs both keys; remove it "
                "to have a new pair made, or give --server-key\n",
                path);
        return -1;
    }
    return 0;
}

int access_start(access_t *a, void *zctx)
{
    const config_t *cfg = a->b->cfg;
    char path[4096], err[600];
    bool made;

    a->zctx = zctx;
    if (cfg->ipc_group) {
        struct group *g = getgrnam(cfg->ipc_group);
        if (!g) {
            fprintf(stderr, "forqd: --ipc-group: there is no group '%s'; name an existing group\n",
                    cfg->ipc_group);
            return -EINVAL;
        }
        a->ipc_gid = g->gr_gid;
        a->ipc_group = true;
    }
    if (cfg->insecure_tcp) {
        for (size_t i = 0; i < cfg->listen.n; i++)
            if (strncmp(cfg->listen.items[i], "tcp://", 6) == 0)
                log_warn("%s is served in plaintext without keys (--insecure-tcp): anyone who "
                         "reaches it can run tasks and read and change every dict",
                         cfg->listen.items[i]);
        return 0;
    }
    if (!config_needs_curve(cfg))
        return 0;
    config_clients_path(cfg, path, sizeof(path));
    if (auth_table_load(path, &a->table, err, sizeof(err)) < 0) {
        fprintf(stderr,
                "forqd: tcp endpoints need the clients file (or --insecure-tcp for plaintext): "
                "%s\n",
                err);
        return -EINVAL;
    }
    if (access_server_key(cfg, a->pub, a->sec, &made) < 0)
        return -EINVAL;
    if (made) {
        config_server_key_path(cfg, path, sizeof(path));
        log_notice("made forqd's CURVE key pair in %s", path);
    }
    log_notice("tcp endpoints use CURVE; forqd's public key (clients' --server-key): %s; %zu "
               "client key(s) allowed",
               a->pub, auth_table_count(a->table));
    for (size_t i = 0; i < auth_table_count(a->table); i++)
        ident_add(a, auth_name(auth_table_at(a->table, i)), auth_table_at(a->table, i));
    a->zap = zmq_socket(zctx, ZMQ_REP);
    if (!a->zap || zmq_bind(a->zap, ZAP_ENDPOINT) < 0) {
        fprintf(stderr, "forqd: cannot start the ZAP handler: %s\n", zmq_strerror(errno));
        return -EIO;
    }
    loop_io_add(a->b->loop, a->zap, -1, ZMQ_POLLIN, ORDER_SIGNALS, on_zap, a);
    return 0;
}

void access_bind_options(access_t *a, void *sock, const char *ep)
{
    int curve = a->zap && strncmp(ep, "tcp://", 6) == 0;

    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &curve, sizeof(curve));
    if (curve) {
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, a->sec, 40);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "forq", 4);
    } else {
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "", 0);
    }
}

int access_secure_ipc(access_t *a, const char *ep)
{
    mode_t mode = a->ipc_group ? 0770 : 0700;
    char dir[4096];
    const char *path = ep + 6, *slash;
    int r = 0;

    if (strncmp(ep, "ipc://", 6) != 0 || path[0] == '@') /* abstract: no file */
        return 0;
    if (chmod(path, mode) < 0 || (a->ipc_group && chown(path, (uid_t)-1, a->ipc_gid) < 0))
        r = -errno;
    /* the directory too, when it is forqd's own runtime directory */
    if (r == 0 && (slash = strrchr(path, '/')) && endpoint_default_dir(dir, sizeof(dir)) == 0 &&
        strlen(dir) == (size_t)(slash - path) && strncmp(dir, path, strlen(dir)) == 0 &&
        (chmod(dir, mode) < 0 || (a->ipc_group && chown(dir, (uid_t)-1, a->ipc_gid) < 0)))
        r = -errno;
    if (r < 0)
        fprintf(stderr, "forqd: cannot set the permissions of %s for --ipc-group: %s\n", path,
                strerror(-r));
    return r;
}

/* ---- reload ---- */

int access_prepare(access_t *a, const config_t *next)
{
    char path[4096], err[600];

    auth_table_free(&a->next);
    if (!a->zap && config_needs_curve(next)) {
        log_error("reload: a tcp endpoint with CURVE needs a restart when forqd started "
                  "without one (or give --insecure-tcp)");
        return -1;
    }
    if (!a->zap)
        return 0; /* no CURVE endpoint: nothing to read */
    config_clients_path(next, path, sizeof(path));
    if (auth_table_load(path, &a->next, err, sizeof(err)) < 0) {
        log_error("reload: %s", err);
        return -1;
    }
    if (a->n + auth_table_count(a->next) > IDENTS_MAX) {
        log_error("reload: forqd has seen %zu client names since its start, the most it keeps "
                  "is %d; restart it",
                  a->n, IDENTS_MAX);
        auth_table_free(&a->next);
        return -1;
    }
    return 0;
}

void access_commit(access_t *a)
{
    size_t lost = 0, cancelled = 0;

    if (!a->next)
        return;
    for (size_t i = 0; i < a->n; i++) {
        ident_t *id = a->all[i];
        if (id->who == ACCESS_LOCAL || id->who == ACCESS_NOBODY)
            continue;
        const auth_client_t *now = auth_by_name(a->next, id->name);
        if (!now && id->rights) {
            wire_hdr_t why = {.msg = wire_str("cancelled: its client's key was removed from "
                                              "forqd's clients file")};
            cancelled += jobs_cancel_owner(a->b->jobs, id->who, &why);
            lost++;
            log_notice("reload: %s is no longer in the clients file: its connections are "
                       "refused, its queued jobs cancelled, its running jobs finish",
                       id->name);
        }
        id->rights = now;
    }
    for (size_t i = 0; i < auth_table_count(a->next); i++)
        ident_add(a, auth_name(auth_table_at(a->next, i)), auth_table_at(a->next, i));
    auth_table_free(&a->table);
    a->table = a->next;
    a->next = NULL;
    log_notice("reload: %zu client key(s) allowed%s", auth_table_count(a->table),
               lost ? "; see above for the removed ones" : "");
    (void)cancelled;
}

void access_abort(access_t *a)
{
    auth_table_free(&a->next);
}

/* ---- identities ---- */

uint16_t access_who(access_t *a, zmq_msg_t *frame)
{
    const char *user = zmq_msg_gets(frame, "User-Id");
    ident_t *id;

    if (!user || !*user)
        return ACCESS_LOCAL;
    HASH_FIND_STR(a->by_name, user, id);
    return id ? id->who : ACCESS_NOBODY;
}

const auth_client_t *access_rights(const access_t *a, uint16_t who)
{
    return who < a->n ? a->all[who]->rights : NULL;
}

const char *access_name(const access_t *a, uint16_t who)
{
    return who < a->n ? a->all[who]->name : "(unknown)";
}

bool access_admin(const access_t *a, uint16_t who)
{
    const auth_client_t *r = access_rights(a, who);
    return r && auth_is_admin(r);
}

size_t access_live(const access_t *a, uint16_t who)
{
    return who < a->n ? a->all[who]->live : 0;
}

void access_live_add(access_t *a, uint16_t who, int delta)
{
    if (who < a->n)
        a->all[who]->live += (size_t)(ssize_t)delta;
}
