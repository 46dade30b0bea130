/* check_auth.c - end to end, forqd's tcp endpoints with CURVE: keys, the clients file, the
 * handshakes it refuses and what their clients hear, per-client rights (tasks, dicts read and
 * write, from a client and from inside its task), job ownership, a reused routing id, SIGHUP
 * removing a key, a bad clients file, and the ipc socket's permissions. A real forqd on
 * 127.0.0.1 and on its private ipc endpoint (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static forqd_t d;
static forq_client_t *local; /* over ipc: every right */
static char tcp_ep[64], clients_path[400], key_path[400];
static char srv_pub[41], srv_sec[41];

typedef struct {
    char pub[41], sec[41];
} keypair_t;

static keypair_t alice, bob, carol, mallory; /* mallory's key is in no clients file */

static int free_port(void)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int s = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_eq(bind(s, (struct sockaddr *)&in, sizeof(in)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&in, &len), 0);
    close(s);
    return ntohs(in.sin_port);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* The clients file: alice may run everything and write "shared"; bob may run echo, sleep and
 * dict_count and only read "shared"; carol is an admin who runs nothing. */
static void write_clients(bool with_alice)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "# test clients\n"
             "%s%s%s"
             "%s bob tasks=echo,sleep,dict_count read=shared\n"
             "%s carol admin\n",
             with_alice ? alice.pub : "", with_alice ? " alice tasks=* write=shared,own-*" : "",
             with_alice ? "\n" : "", bob.pub, carol.pub);
    write_file(clients_path, text, 0644);
}

/* Start forqd with a tcp endpoint served with CURVE (the test made its key pair). */
static void up_curve(void)
{
    char keytext[200];
    static char listen[80];

    temp_dir(d.dir, sizeof(d.dir), "forq-auth");
    snprintf(clients_path, sizeof(clients_path), "%s/clients", d.dir);
    snprintf(key_path, sizeof(key_path), "%s/server.key", d.dir);
    ck_assert_int_eq(zmq_curve_keypair(srv_pub, srv_sec), 0);
    snprintf(keytext, sizeof(keytext), "public-key = %s\nsecret-key = %s\n", srv_pub, srv_sec);
    write_file(key_path, keytext, 0600);
    keypair_t *all[] = {&alice, &bob, &carol, &mallory};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(zmq_curve_keypair(all[i]->pub, all[i]->sec), 0);
    write_clients(true);
    snprintf(tcp_ep, sizeof(tcp_ep), "tcp://127.0.0.1:%d", free_port());
    snprintf(listen, sizeof(listen), "%s", tcp_ep);
    const char *extra[] = {"--listen",     listen,   "--clients", clients_path,
                           "--server-key", key_path, NULL};
    e2e_up(&d, &local, 2, extra);
}

static void down(void)
{
    e2e_down(&d, &local);
}

/* A client on the tcp endpoint with key pair k (NULL: plaintext), pinning server key srv. */
static forq_err_t curve_client(const keypair_t *k, const char *srv, forq_client_t **ret)
{
    forq_client_opts_t o;

    forq_client_opts_init(&o);
    o.endpoint = tcp_ep;
    /* a refusal ends the wait as soon as a handshake shows it; under load the first
     * attempts can be reset before forqd's greeting is read, so allow a few */
    o.connect_timeout_ms = test_ms(10000);
    o.server_key = srv;
    o.public_key = k ? k->pub : NULL;
    o.secret_key = k ? k->sec : NULL;
    return forq_client_new(&o, ret);
}

static forq_client_t *client_of(const keypair_t *k)
{
    forq_client_t *c = NULL;
    forq_err_t e = curve_client(k, srv_pub, &c);

    ck_assert_msg(e == FORQ_OK, "connect: %s: %s", forq_strerror(e), forq_errdetail());
    return c;
}

START_TEST(test_a_listed_key_works)
{
    up_curve();
    forq_client_t *a = client_of(&alice);
    forq_future_t *f = submit_json(a, "echo", "[1,\"x\"]", NULL);
    ASSERT_RESULT(f, "[1,\"x\"]");
    forq_future_destroy(&f);
    uint64_t ver = 0;
    ck_assert_int_eq(forq_dict_set(a, "shared", "k", "\x2a", 1, 5000, &ver), FORQ_OK);
    void *v = NULL;
    size_t len = 0;
    ck_assert_int_eq(forq_dict_get(a, "shared", "k", 5000, &v, &len, NULL), FORQ_OK);
    ck_assert_int_eq(len, 1);
    ck_assert_int_eq(((unsigned char *)v)[0], 0x2a);
    free(v);
    /* forqd names the connection after the clients file */
    ck_assert_int_gt(stat_of(a, "uptime_ms"), 0);
    forq_client_destroy(&a);
    down();
}
END_TEST

START_TEST(test_refused_handshakes_say_why)
{
    forq_client_t *c = NULL;
    char wrong_pub[41], wrong_sec[41];

    up_curve();
    /* plaintext */
    ck_assert_int_eq(curve_client(NULL, NULL, &c), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "requires CURVE"), "%s", forq_errdetail());
    /* a key forqd does not list */
    ck_assert_int_eq(curve_client(&mallory, srv_pub, &c), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "authentication refused by forqd"), "%s",
                  forq_errdetail());
    ck_assert_msg(strstr(forq_errdetail(), "clients file"), "%s", forq_errdetail());
    /* the wrong server key pinned */
    ck_assert_int_eq(zmq_curve_keypair(wrong_pub, wrong_sec), 0);
    ck_assert_int_eq(curve_client(&alice, wrong_pub, &c), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "server key"), "%s", forq_errdetail());
    /* a server key that is no key */
    ck_assert_int_eq(curve_client(&alice, "not-a-key", &c), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "40 Z85"), "%s", forq_errdetail());
    /* forqd logged the refusals with the peer's address and goes on */
    ck_assert(forqd_log_has(&d, "refused a tcp peer at 127.0.0.1"));
    ck_assert(forqd_log_has(&d, "is not in the clients file"));
    forq_client_t *a = client_of(&alice);
    forq_client_destroy(&a);
    down();
}
END_TEST

START_TEST(test_tcp_needs_keys_or_insecure)
{
    forqd_t x = {0};
    char ep[64], missing[64];

    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", free_port());
    snprintf(missing, sizeof(missing), "/nonexistent/forq-clients");
    const char *no_clients[] = {"--listen", ep, "--clients", missing, NULL};
    ck_assert_int_eq(forqd_start_fail(&x, no_clients), 1);
    ck_assert(forqd_log_has(&x, missing));
    ck_assert(forqd_log_has(&x, "--insecure-tcp"));
    forqd_stop(&x);
    /* --insecure-tcp serves plaintext, with a warning */
    const char *insecure[] = {
        "--listen", ep, "--insecure-tcp", "--tasks", getenv("FORQ_TEST_PLUGIN"), NULL};
    forqd_start(&x, insecure);
    ck_assert(forqd_log_has(&x, "plaintext"));
    snprintf(tcp_ep, sizeof(tcp_ep), "%s", ep);
    forq_client_t *c = NULL;
    ck_assert_int_eq(curve_client(NULL, NULL, &c), FORQ_OK);
    forq_future_t *f = submit_json(c, "echo", "[3]", NULL);
    ASSERT_RESULT(f, "[3]");
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    ck_assert_int_eq(forqd_stop(&x), 0);
}
END_TEST

START_TEST(test_task_rights)
{
    up_curve();
    forq_client_t *b = client_of(&bob);
    long long before = stat_of(local, "submitted");
    forq_future_t *f = submit_json(b, "count_primes", "[1, 100]", NULL);
    ck_assert_int_eq(wait_state(f, test_ms(5000)), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "forbidden");
    ck_assert_msg(strstr(forq_future_detail(f), "tasks=count_primes"), "%s", forq_future_detail(f));
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(local, "submitted"), before); /* nothing ran */
    f = submit_json(b, "echo", "[5]", NULL);
    ASSERT_RESULT(f, "[5]");
    forq_future_destroy(&f);
    forq_client_destroy(&b);
    down();
}
END_TEST

START_TEST(test_dict_read_only_really_is)
{
    uint64_t ver = 0;
    void *v = NULL;
    size_t len = 0;

    up_curve();
    ck_assert_int_eq(forq_dict_set(local, "shared", "k", "\x01", 1, 5000, &ver), FORQ_OK);
    forq_client_t *b = client_of(&bob);
    ck_assert_int_eq(forq_dict_get(b, "shared", "k", 5000, &v, &len, NULL), FORQ_OK);
    free(v);
    ck_assert_int_eq(forq_dict_set(b, "shared", "k", "\x02", 1, 5000, &ver), FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "write=shared"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_dict_get(b, "other", "k", 5000, &v, &len, NULL), FORQ_ERR_FORBIDDEN);
    /* from inside a task bob submits: the task acts with bob's rights */
    forq_future_t *f = submit_json(b, "dict_count", "[\"shared\", \"n\", 1]", NULL);
    ck_assert_int_eq(wait_state(f, test_ms(5000)), FORQ_STATE_ERROR);
    ck_assert_msg(strstr(forq_future_detail(f), "forbidden"), "%s", forq_future_detail(f));
    forq_future_destroy(&f);
    /* not written */
    ck_assert_int_eq(forq_dict_get(local, "shared", "n", 5000, &v, &len, NULL), FORQ_ERR_NOT_FOUND);
    ck_assert_int_eq(forq_dict_get(local, "shared", "k", 5000, &v, &len, NULL), FORQ_OK);
    ck_assert_int_eq(((unsigned char *)v)[0], 1);
    free(v);
    forq_client_destroy(&b);
    down();
}
END_TEST

/* Queues, locks and events are names under the same read=/write= globs as dicts (PROTOCOL.md
 * 2.2): bob (read=shared) may look at queue "shared" but not put or take, nor acquire its lock;
 * alice (write=shared) may; a fence reads a lock, and needs the right to read its name. */
START_TEST(test_shared_types_rights_by_name)
{
    uint64_t token = 0;
    void *v = NULL;
    size_t n = 0, len = 0;
    bool set;

    up_curve();
    forq_client_t *a = client_of(&alice), *b = client_of(&bob), *cr = client_of(&carol);
    ck_assert_int_eq(forq_queue_put(a, "shared", "\x01", 1, false, 0, 5000, &n), FORQ_OK);
    ck_assert_int_eq(forq_queue_len(b, "shared", 5000, &n), FORQ_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(forq_queue_range(b, "shared", 0, 0, 5000, &v, &len, NULL), FORQ_OK);
    free(v);
    ck_assert_int_eq(forq_event_wait(b, "shared", 0, &set), FORQ_OK);
    ck_assert_int_eq(forq_queue_get(b, "shared", 0, &v, &len), FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "may not change queue 'shared' (queue.get)") &&
                      strstr(forq_errdetail(), "write=shared"),
                  "%s", forq_errdetail());
    ck_assert_int_eq(forq_queue_put(b, "shared", "\x02", 1, false, 0, 5000, NULL),
                     FORQ_ERR_FORBIDDEN);
    ck_assert_int_eq(forq_lock_acquire(b, "shared", 0, 0, &token), FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "may not change lock 'shared'"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_event_set(b, "shared", 5000), FORQ_ERR_FORBIDDEN);
    ck_assert_int_eq(forq_queue_len(b, "other", 5000, &n), FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "may not read queue 'other'"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_queue_get(cr, "shared", 0, &v, &len), FORQ_ERR_FORBIDDEN);
    /* alice takes the item, holds the lock, and writes under it */
    ck_assert_int_eq(forq_queue_get(a, "shared", 0, &v, &len), FORQ_OK);
    free(v);
    ck_assert_int_eq(forq_lock_acquire(a, "shared", 0, 0, &token), FORQ_OK);
    ck_assert_int_eq(forq_dict_set_fenced(a, "shared", "k", "\x03", 1, "shared", token, 5000, NULL),
                     FORQ_OK);
    ck_assert_int_eq(forq_dict_set_fenced(a, "shared", "k", "\x03", 1, "secret", token, 5000, NULL),
                     FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "may not read lock 'secret'"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_lock_release(a, "shared", token, 5000), FORQ_OK);
    forq_client_destroy(&a);
    forq_client_destroy(&b);
    forq_client_destroy(&cr);
    down();
}
END_TEST

/* The dicts and their key counts (forq_dict_list), as each identity may read them: dave's
 * read=a* shows the a* dicts only, alice's write=shared,own-* and bob's read=shared theirs,
 * carol (no dict right) none, local all; `more` and the cursor never reveal another. */
static char *list_of(forq_client_t *cl, const char *after, size_t limit, char **ret_next)
{
    void *data = NULL;
    size_t len = 0, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    char *out = calloc(1, 4096);
    forq_err_t e = forq_dict_list(cl, after, limit, 5000, &data, &len, ret_next);

    ck_assert_msg(e == FORQ_OK, "forq_dict_list: %s", forq_errdetail());
    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(msgpack_unpack(data, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    for (uint32_t i = 0; i < o.via.array.size; i++) {
        const msgpack_object *p = o.via.array.ptr[i].via.array.ptr;
        size_t at = strlen(out);
        snprintf(out + at, 4096 - at, "%.*s:%llu,", (int)p[0].via.str.size, p[0].via.str.ptr,
                 (unsigned long long)p[1].via.u64);
    }
    msgpack_zone_destroy(&zone);
    free(data);
    return out;
}

#define ASSERT_LIST(cl, after, limit, next, want)                                                  \
    do {                                                                                           \
        char *got_ = list_of(cl, after, limit, next);                                              \
        ck_assert_str_eq(got_, want);                                                              \
        free(got_);                                                                                \
    } while (0)

START_TEST(test_dict_list_shows_what_may_be_read)
{
    static const char *const names[] = {"a1", "b1", "shared", "a2", "own-x", "ab", "z"};
    keypair_t dave;
    char text[200], *next = NULL;

    up_curve();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_int_eq(forq_dict_set(local, names[i], "k", "\x01", 1, 5000, NULL), FORQ_OK);
    ck_assert_int_eq(forq_dict_set(local, "a1", "k2", "\x01", 1, 5000, NULL), FORQ_OK);
    /* dave may read the a* dicts (listed with a reload) */
    ck_assert_int_eq(zmq_curve_keypair(dave.pub, dave.sec), 0);
    snprintf(text, sizeof(text), "%s dave read=a*\n", dave.pub);
    int fd = open(clients_path, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
    for (int i = 0; i < test_ms(500) && !forqd_log_has(&d, "reload: 4 client key(s)"); i++)
        usleep(10000);
    forq_client_t *dv = client_of(&dave), *a = client_of(&alice), *b = client_of(&bob),
                  *cr = client_of(&carol);
    ASSERT_LIST(dv, NULL, 0, &next, "a1:2,a2:1,ab:1,");
    ck_assert_ptr_null(next);
    /* pages: the last readable dict ends the list, though others follow it */
    ASSERT_LIST(dv, NULL, 2, &next, "a1:2,a2:1,");
    ck_assert_str_eq(next, "a2");
    free(next);
    ASSERT_LIST(dv, "a2", 2, &next, "ab:1,");
    ck_assert_ptr_null(next);
    ASSERT_LIST(a, NULL, 0, &next, "own-x:1,shared:1,");
    ASSERT_LIST(a, NULL, 1, &next, "own-x:1,");
    ck_assert_str_eq(next, "own-x");
    free(next);
    ASSERT_LIST(b, NULL, 0, &next, "shared:1,");
    ASSERT_LIST(cr, NULL, 0, &next, "");
    ck_assert_ptr_null(next);
    ASSERT_LIST(local, NULL, 0, &next, "a1:2,a2:1,ab:1,b1:1,own-x:1,shared:1,z:1,");
    /* asking is open to all; reading a dict still needs its right */
    void *v;
    size_t len;
    ck_assert_int_eq(forq_dict_get(dv, "b1", "k", 5000, &v, &len, NULL), FORQ_ERR_FORBIDDEN);
    forq_client_destroy(&dv);
    forq_client_destroy(&a);
    forq_client_destroy(&b);
    forq_client_destroy(&cr);
    down();
}
END_TEST

START_TEST(test_jobs_belong_to_their_submitter)
{
    forq_job_info_t info;
    forq_cancel_t out;

    up_curve();
    forq_client_t *a = client_of(&alice), *b = client_of(&bob), *admin = client_of(&carol);
    forq_submit_opts_t o = submit_opts();
    o.id = "alices-job";
    forq_future_t *f = submit_json(a, "sleep", "[30]", &o);
    wait_running(a, "alices-job");
    ck_assert_int_eq(forq_client_status(b, "alices-job", 5000, &info), FORQ_ERR_FORBIDDEN);
    ck_assert_int_eq(forq_client_cancel(b, "alices-job", 5000, &out), FORQ_ERR_FORBIDDEN);
    forq_future_t *g = NULL;
    ck_assert_int_eq(forq_client_fetch(b, "alices-job", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, test_ms(5000)), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(g), "forbidden");
    forq_future_destroy(&g);
    /* bob cannot take the id over either */
    forq_submit_opts_t ob = submit_opts();
    ob.id = "alices-job";
    g = submit_json(b, "echo", "[1]", &ob);
    ck_assert_int_eq(wait_state(g, test_ms(5000)), FORQ_STATE_REJECTED);
    forq_future_destroy(&g);
    /* bob's list of jobs holds only his own; he may not purge */
    void *data = NULL;
    size_t len = 0, n = 0;
    char *text = NULL;
    ck_assert_int_eq(forq_client_jobs(b, NULL, NULL, 0, 5000, &data, &len, NULL), FORQ_OK);
    ck_assert_int_eq(forq_msgpack_to_json(data, len, &text), FORQ_OK);
    ck_assert_str_eq(text, "[]");
    free(text);
    free(data);
    ck_assert_int_eq(forq_client_purge(b, NULL, 5000, &n), FORQ_ERR_FORBIDDEN);
    ck_assert_msg(strstr(forq_errdetail(), "admin"), "%s", forq_errdetail());
    /* an admin's holds everyone's, with the owner */
    ck_assert_int_eq(forq_client_jobs(admin, NULL, NULL, 0, 5000, &data, &len, NULL), FORQ_OK);
    ck_assert_int_eq(forq_msgpack_to_json(data, len, &text), FORQ_OK);
    ck_assert_msg(strstr(text, "\"id\":\"alices-job\"") && strstr(text, "\"owner\":\"alice\""),
                  "%s", text);
    free(text);
    free(data);
    /* the owner and an admin may */
    ck_assert_int_eq(forq_client_status(a, "alices-job", 5000, &info), FORQ_OK);
    ck_assert_str_eq(info.owner, "alice");
    ck_assert_int_eq(info.state, FORQ_STATE_RUNNING);
    ck_assert_int_eq(forq_client_status(admin, "alices-job", 5000, &info), FORQ_OK);
    ck_assert_int_eq(forq_client_cancel(admin, "alices-job", 5000, &out), FORQ_OK);
    ck_assert_int_eq(wait_state(f, test_ms(10000)), FORQ_STATE_CANCELLED);
    forq_future_destroy(&f);
    forq_client_destroy(&a);
    forq_client_destroy(&b);
    forq_client_destroy(&admin);
    down();
}
END_TEST

/* A raw DEALER with key pair k and routing id rid, connected over CURVE. */
static void *raw_dealer(void *zctx, const keypair_t *k, const char *rid)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int tmo = test_ms(3000), zero = 0;

    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv_pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->sec, 40);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_connect(s, tcp_ep), 0);
    return s;
}

/* Send a header (and an args frame for a submit) and return the reply header decoded. */
static void raw_request(void *s, const wire_hdr_t *h, const char *args, wire_hdr_t *reply,
                        msgpack_zone *zone)
{
    msgpack_sbuffer sb;
    static char buf[4096];
    wire_err_t err;
    int n;

    msgpack_sbuffer_init(&sb);
    wire_hdr_encode(&sb, h);
    ck_assert_int_ge(zmq_send(s, sb.data, sb.size, args ? ZMQ_SNDMORE : 0), 0);
    if (args)
        ck_assert_int_ge(zmq_send(s, args, strlen(args), 0), 0);
    msgpack_sbuffer_destroy(&sb);
    n = zmq_recv(s, buf, sizeof(buf), 0);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)n, zone, reply, &err), 0);
    int more = 0;
    size_t ml = sizeof(more);
    while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more)
        zmq_recv(s, buf, sizeof(buf), 0);
}

START_TEST(test_a_reused_routing_id_gets_nothing)
{
    msgpack_zone zone;
    wire_hdr_t r;

    up_curve();
    msgpack_zone_init(&zone, 4096);
    void *zctx = zmq_ctx_new();
    void *sa = raw_dealer(zctx, &alice, "same-routing-id");
    /* alice: a job that runs a while */
    wire_hdr_t sub = {.cmd = WIRE_SUBMIT, .id = wire_str("raw-1"), .task = wire_str("sleep")};
    {
        msgpack_sbuffer hs, as;
        msgpack_sbuffer_init(&hs);
        msgpack_sbuffer_init(&as);
        wire_hdr_encode(&hs, &sub);
        msgpack_packer ap;
        msgpack_packer_init(&ap, &as, msgpack_sbuffer_write);
        msgpack_pack_array(&ap, 1);
        msgpack_pack_double(&ap, 1.5);
        ck_assert_int_ge(zmq_send(sa, hs.data, hs.size, ZMQ_SNDMORE), 0);
        ck_assert_int_ge(zmq_send(sa, as.data, as.size, 0), 0);
        msgpack_sbuffer_destroy(&hs);
        msgpack_sbuffer_destroy(&as);
    }
    wait_running(local, "raw-1");
    /* bob, with alice's routing id: every request is refused */
    void *sb2 = raw_dealer(zctx, &bob, "same-routing-id");
    wire_hdr_t st = {.cmd = WIRE_STATUS, .id = wire_str("raw-1")};
    raw_request(sb2, &st, NULL, &r, &zone);
    ck_assert_int_eq(r.cmd, WIRE_ERROR);
    ck_assert_int_eq(r.code.len, 9);
    ck_assert_int_eq(memcmp(r.code.ptr, "forbidden", 9), 0);
    wire_hdr_t sub2 = {.cmd = WIRE_SUBMIT, .id = wire_str("raw-2"), .task = wire_str("echo")};
    raw_request(sb2, &sub2, "\x91\x01", &r, &zone);
    ck_assert_int_eq(r.cmd, WIRE_RESULT);
    ck_assert_int_eq(r.state, WIRE_ST_REJECTED);
    ck_assert_int_eq(memcmp(r.code.ptr, "forbidden", 9), 0);
    wire_hdr_t fe = {.cmd = WIRE_FETCH, .id = wire_str("raw-1")};
    raw_request(sb2, &fe, NULL, &r, &zone);
    ck_assert_int_eq(memcmp(r.code.ptr, "forbidden", 9), 0);
    zmq_close(sb2);
    zmq_close(sa);
    zmq_ctx_term(zctx);
    msgpack_zone_destroy(&zone);
    down();
}
END_TEST

START_TEST(test_sighup_removes_a_key)
{
    up_curve();
    forq_client_t *a = client_of(&alice);
    forq_submit_opts_t o = submit_opts();
    /* two workers busy with alice's jobs, a third queued */
    forq_future_t *run1 = submit_json(a, "sleep", "[1.5]", &o);
    forq_future_t *run2 = submit_json(a, "sleep", "[1.5]", &o);
    for (int i = 0; i < test_ms(500) && stat_of(local, "running") < 2; i++)
        usleep(10000);
    forq_future_t *queued = submit_json(a, "echo", "[9]", &o);
    write_clients(false);
    ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
    /* the queued job is cancelled, the running ones finish */
    ck_assert_int_eq(wait_state(queued, test_ms(10000)), FORQ_STATE_CANCELLED);
    ck_assert_msg(strstr(forq_future_detail(queued), "key was removed"), "%s",
                  forq_future_detail(queued));
    ck_assert_int_eq(wait_state(run1, test_ms(10000)), FORQ_STATE_OK);
    ck_assert_int_eq(wait_state(run2, test_ms(10000)), FORQ_STATE_OK);
    ck_assert(forqd_log_has(&d, "alice is no longer in the clients file"));
    /* and alice is served no more */
    forq_future_t *f = submit_json(a, "echo", "[1]", NULL);
    ck_assert_int_eq(wait_state(f, test_ms(5000)), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "forbidden");
    forq_future_destroy(&f);
    forq_future_destroy(&run1);
    forq_future_destroy(&run2);
    forq_future_destroy(&queued);
    forq_client_destroy(&a);
    /* bob still is */
    forq_client_t *b = client_of(&bob);
    f = submit_json(b, "echo", "[2]", NULL);
    ASSERT_RESULT(f, "[2]");
    forq_future_destroy(&f);
    forq_client_destroy(&b);
    down();
}
END_TEST

START_TEST(test_a_bad_clients_file_is_refused)
{
    forqd_t x = {0};
    char bad[500], ep[64];

    up_curve();
    /* at a reload: the old file stays in force */
    write_file(clients_path, "not-a-key alice\n", 0644);
    ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
    for (int i = 0; i < test_ms(500) && !forqd_log_has(&d, "reload refused"); i++)
        usleep(10000);
    ck_assert(forqd_log_has(&d, "reload refused"));
    ck_assert(forqd_log_has(&d, "clients:1:"));
    forq_client_t *a = client_of(&alice);
    forq_future_t *f = submit_json(a, "echo", "[4]", NULL);
    ASSERT_RESULT(f, "[4]");
    forq_future_destroy(&f);
    forq_client_destroy(&a);
    /* at start: forqd does not start */
    snprintf(bad, sizeof(bad), "%s/bad-clients", d.dir);
    write_file(bad, "# ok\n\nnot-a-key alice\n", 0644);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", free_port());
    const char *args[] = {"--listen", ep, "--clients", bad, "--server-key", key_path, NULL};
    ck_assert_int_eq(forqd_start_fail(&x, args), 1);
    ck_assert(forqd_log_has(&x, "bad-clients:3:"));
    forqd_stop(&x);
    down();
}
END_TEST

START_TEST(test_ipc_socket_permissions)
{
    struct stat st;
    forqd_t x = {0};
    char group[64];

    /* default: this user only */
    e2e_up(&x, &local, 1, NULL);
    ck_assert_int_eq(stat(x.endpoint + 6, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    e2e_down(&x, &local);
    /* --ipc-group: the group too */
    struct group *g = getgrgid(getgid());
    ck_assert_ptr_nonnull(g);
    snprintf(group, sizeof(group), "%s", g->gr_name);
    const char *extra[] = {"--ipc-group", group, NULL};
    e2e_up(&x, &local, 1, extra);
    ck_assert_int_eq(stat(x.endpoint + 6, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0770);
    ck_assert_int_eq(st.st_gid, getgid());
    e2e_down(&x, &local);
    /* a group that does not exist */
    const char *nogroup[] = {"--ipc-group", "no-such-group-forq", NULL};
    ck_assert_int_eq(forqd_start_fail(&x, nogroup), 1);
    ck_assert(forqd_log_has(&x, "no group 'no-such-group-forq'"));
    forqd_stop(&x);
}
END_TEST

/* The forq command with keys: forq keygen, --key, --server-key ($FORQ_SERVER_KEY), what it says
 * when the handshake is refused; and forqd --show-key. */
START_TEST(test_the_cli_with_keys)
{
    char cmd[2048], out[4096], keyfile[400], pub[64], bad[400], shown[400];
    const char *cli = getenv("FORQ_CLI"), *forqd = getenv("FORQD");
    struct stat st;

    up_curve();
    /* forqd --show-key prints the public key of its key file (and makes one if absent) */
    snprintf(cmd, sizeof(cmd), "%s --show-key --server-key %s", forqd, key_path);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_int_eq(strncmp(out, srv_pub, 40), 0);
    snprintf(shown, sizeof(shown), "%s/made.key", d.dir);
    snprintf(cmd, sizeof(cmd), "%s --show-key --server-key %s 2>/dev/null", forqd, shown);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_int_eq(strlen(out), 41);
    ck_assert_int_eq(stat(shown, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* forq keygen: a 0600 file, the public key printed; an existing file is kept */
    snprintf(keyfile, sizeof(keyfile), "%s/me.key", d.dir);
    snprintf(cmd, sizeof(cmd), "%s keygen --out %s 2>/dev/null", cli, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_int_eq(strlen(out), 41);
    snprintf(pub, sizeof(pub), "%.40s", out);
    ck_assert_int_eq(stat(keyfile, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof(cmd), "%s keygen --out %s 2>&1", cli, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, keyfile), "%s", out);
    /* not yet in the clients file: refused, and told so */
    snprintf(cmd, sizeof(cmd), "%s -e %s --server-key '%s' --key %s submit echo '[1]' 2>&1", cli,
             tcp_ep, srv_pub, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 8);
    ck_assert_msg(strstr(out, "authentication refused by forqd"), "%s", out);
    /* listed (SIGHUP): works, the server key from the environment */
    char text[512];
    snprintf(text, sizeof(text), "%s cli tasks=echo\n", pub);
    int fd = open(clients_path, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
    for (int i = 0; i < test_ms(500) && !forqd_log_has(&d, "reload: 4 client key(s)"); i++)
        usleep(10000);
    snprintf(cmd, sizeof(cmd), "FORQ_SERVER_KEY='%s' %s -e %s --key %s submit echo '[1]' 2>&1",
             srv_pub, cli, tcp_ep, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "[1]\n");
    /* a task it has no right to: rejected, exit 6; a dict: forbidden, exit 15 */
    snprintf(cmd, sizeof(cmd), "%s -e %s --server-key '%s' --key %s submit sleep '[0]' 2>&1", cli,
             tcp_ep, srv_pub, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 6);
    ck_assert_msg(strstr(out, "tasks=sleep"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s -e %s --server-key '%s' --key %s dict get shared k 2>&1", cli,
             tcp_ep, srv_pub, keyfile);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 15);
    ck_assert_msg(strstr(out, "read=shared"), "%s", out);
    /* plaintext against a CURVE endpoint: said as soon as a handshake shows it, not when the
     * connect timeout is up (before: always after the whole 30 s) */
    struct timespec t0, t1;
    snprintf(cmd, sizeof(cmd), "%s -e %s --connect-timeout 30 ping 2>&1", cli, tcp_ep);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 8);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_msg(strstr(out, "requires CURVE") && strstr(out, "--server-key"), "%s", out);
    ck_assert_msg(t1.tv_sec - t0.tv_sec < 25, "the refusal took %ld s: it waited for the timeout",
                  (long)(t1.tv_sec - t0.tv_sec));
    /* a key file with loose permissions */
    snprintf(bad, sizeof(bad), "%s/loose.key", d.dir);
    snprintf(cmd, sizeof(cmd),
             "cp %s %s && chmod 644 %s && %s -e %s --server-key '%s' --key %s ping 2>&1", keyfile,
             bad, bad, cli, tcp_ep, srv_pub, bad);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, "chmod"), "%s", out);
    down();
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *t = tcase_create("core"), *full;

    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_a_listed_key_works);
    tcase_add_test(t, test_task_rights);
    suite_add_tcase(s, t);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only: CURVE under memcheck is slow */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, 120);
    tcase_add_test(full, test_refused_handshakes_say_why);
    tcase_add_test(full, test_tcp_needs_keys_or_insecure);
    tcase_add_test(full, test_dict_read_only_really_is);
    tcase_add_test(full, test_dict_list_shows_what_may_be_read);
    tcase_add_test(full, test_shared_types_rights_by_name);
    tcase_add_test(full, test_jobs_belong_to_their_submitter);
    tcase_add_test(full, test_a_reused_routing_id_gets_nothing);
    tcase_add_test(full, test_sighup_removes_a_key);
    tcase_add_test(full, test_a_bad_clients_file_is_refused);
    tcase_add_test(full, test_ipc_socket_permissions);
    tcase_add_test(full, test_the_cli_with_keys);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(auth_suite());
}
