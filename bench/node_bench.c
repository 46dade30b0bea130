/* node_bench.c - the cost of a worker-node hop (issue 18), with forqd processes it starts
 * itself on loopback (tcp, --insecure-tcp: the hop's own cost, without CURVE's):
 *     node_bench FORQD N_TINY N_RTT N_SLEEP
 * prints, one "name value" per line:
 *     local_tput, hop_tput        tiny jobs (echo) per second through a head's own worker, and
 *                                 through a head whose jobs all go to one node (tags), with
 *                                 WINDOW jobs in flight
 *     head_cpu_us_per_local_job,  the head's CPU time (all its threads) per tiny job, run by its
 *     head_cpu_us_per_hop_job,    own worker or passed to the node; the node forqd's per job
 *     node_cpu_us_per_hop_job     (workers not counted)
 *     local_rtt_p50_us, _p99_us,  one echo job's round trip, submit to result, one at a time
 *     hop_rtt_p50_us, _p99_us
 *     hop_rtt_ratio               hop p50 / local p50 (the target: <= 1.5)
 *     scale1_s, scale4_s          N_SLEEP jobs of 10 ms: a head with 2 workers alone, and the
 *                                 same head with 3 nodes of 2 workers each
 *     scale4_of_ideal             (N_SLEEP * 10 ms / 8 slots) / scale4_s (the target: >= 0.9)
 * Every result is checked; a wrong one fails the run (exit 1). */
#define _GNU_SOURCE
#include <forq/forq.h>

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 256

static const char *forqd;
static char dir[64];
static int port;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "node_bench: %s: %s\n", what, forq_errdetail());
    exit(1);
}

typedef struct {
    pid_t pid;
    char ep[128];
} proc_t;

/* Start forqd with args (NULL-terminated) listening on ipc in dir as `name`. */
static void spawn(proc_t *p, const char *name, const char *const *args)
{
    char *argv[32], logf[128];
    int n = 0;

    snprintf(p->ep, sizeof(p->ep), "ipc://%s/%s.sock", dir, name);
    snprintf(logf, sizeof(logf), "%s/%s.log", dir, name);
    argv[n++] = (char *)forqd;
    argv[n++] = "--listen";
    argv[n++] = p->ep;
    argv[n++] = "--log-level";
    argv[n++] = "warning";
    for (int i = 0; args[i] && n < 30; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    if ((p->pid = fork()) == 0) {
        int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execv(forqd, argv);
        _exit(127);
    }
}

static void stop(proc_t *p)
{
    int st;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, &st, 0);
    }
    p->pid = 0;
}

static forq_client_t *connect_to(const char *ep)
{
    forq_client_opts_t o;
    forq_client_t *c;

    for (int i = 0; i < 400 && access(ep + 6, F_OK) != 0; i++) /* ipc:// and its socket file */
        usleep(25000);
    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = 10000;
    if (forq_client_new(&o, &c) != FORQ_OK)
        die("connect");
    for (int i = 0; i < 200 && forq_client_ping(c, 100, NULL) != FORQ_OK; i++)
        usleep(50000);
    return c;
}

/* The head's node_slots counter. */
static long long node_slots(forq_client_t *c)
{
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    long long v = -1;

    if (forq_client_stats(c, 5000, &data, &len) != FORQ_OK)
        die("stats");
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o.via.map.size; i++)
            if (o.via.map.ptr[i].key.via.str.size == 10 &&
                memcmp(o.via.map.ptr[i].key.via.str.ptr, "node_slots", 10) == 0)
                v = (long long)o.via.map.ptr[i].val.via.u64;
    msgpack_zone_destroy(&zone);
    free(data);
    return v;
}

static void wait_slots(forq_client_t *c, long long want)
{
    for (int i = 0; i < 400; i++) {
        if (node_slots(c) == want)
            return;
        usleep(25000);
    }
    fprintf(stderr, "node_bench: the nodes never joined (see %s/*.log)\n", dir);
    exit(1);
}

/* N echo jobs, WINDOW in flight, each result checked; jobs per second. */
static double tput(forq_client_t *c, int n, const char *tags)
{
    forq_future_t *f[WINDOW];
    forq_submit_opts_t o;
    uint8_t args[2] = {0x91, 0x07}; /* [7] */
    uint64_t t0 = now_ns();

    forq_submit_opts_init(&o);
    o.tags = tags;
    for (int i = 0; i < n + WINDOW; i++) {
        if (i >= WINDOW) {
            forq_future_t *g = f[i % WINDOW];
            const void *r;
            size_t len;
            if (forq_future_wait(g, -1) != FORQ_OK || forq_future_result(g, &r, &len) != FORQ_OK ||
                len != 2 || memcmp(r, args, 2) != 0)
                die("a wrong result");
            forq_future_destroy(&g);
        }
        if (i < n && forq_submit(c, "echo", args, sizeof(args), &o, &f[i % WINDOW]) != FORQ_OK)
            die("submit");
    }
    return n / ((double)(now_ns() - t0) / 1e9);
}

/* CPU time (user + system) a process has used, microseconds (its threads included, not its
 * children: the workers' time is the task's, not the broker's). */
static double cpu_us(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(fp = fopen(path, "r")))
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')))
        return 0;
    /* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One job at a time: p50 and p99 of the round trip, microseconds. */
static void rtt(forq_client_t *c, int n, const char *tags, double *p50, double *p99)
{
    uint64_t *lat = calloc((size_t)n, sizeof(*lat));
    forq_submit_opts_t o;
    uint8_t args[2] = {0x91, 0x07};

    forq_submit_opts_init(&o);
    o.tags = tags;
    for (int i = 0; i < n; i++) {
        forq_future_t *f;
        const void *r;
        size_t len;
        uint64_t t0 = now_ns();
        if (forq_submit(c, "echo", args, sizeof(args), &o, &f) != FORQ_OK ||
            forq_future_wait(f, -1) != FORQ_OK || forq_future_result(f, &r, &len) != FORQ_OK ||
            len != 2)
            die("a round trip");
        lat[i] = now_ns() - t0;
        forq_future_destroy(&f);
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
    *p50 = (double)lat[n / 2] / 1e3;
    *p99 = (double)lat[(size_t)((double)n * 0.99)] / 1e3;
    free(lat);
}

/* N sleep jobs of 10 ms, all in flight; seconds. */
static double sleeps(forq_client_t *c, int n)
{
    forq_future_t **f = calloc((size_t)n, sizeof(*f));
    uint8_t args[10] = {0x91, 0xcb, 0x3f, 0x84, 0x7a, 0xe1, 0x47, 0xae, 0x14, 0x7b}; /* [0.01] */
    uint64_t t0 = now_ns();

    for (int i = 0; i < n; i++)
        if (forq_submit(c, "sleep", args, sizeof(args), NULL, &f[i]) != FORQ_OK)
            die("submit");
    for (int i = 0; i < n; i++) {
        if (forq_future_wait(f[i], -1) != FORQ_OK || forq_future_state(f[i]) != FORQ_STATE_OK)
            die("a sleep job");
        forq_future_destroy(&f[i]);
    }
    free(f);
    return (double)(now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    char ep[64];
    proc_t head, nodes[3];
    forq_client_t *c;
    double lt, ht, l50, l99, h50, h99, s1, s4;
    int n_tiny, n_rtt, n_sleep;

    if (argc != 5) {
        fprintf(stderr, "usage: node_bench FORQD N_TINY N_RTT N_SLEEP\n");
        return 2;
    }
    forqd = argv[1];
    n_tiny = atoi(argv[2]);
    n_rtt = atoi(argv[3]);
    n_sleep = atoi(argv[4]);
    /* mkdtemp's template: the prefix, then the six 'X' it replaces */
    size_t n = (size_t)snprintf(dir, sizeof(dir), "/tmp/node_bench.");
    memset(dir + n, 'X', 6);
    dir[n + 6] = '\0';
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    port = 30000 + (int)(getpid() % 20000);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);

    /* one head worker, one node with one worker that takes every job tagged "n" */
    spawn(&head, "head",
          (const char *const[]){"--workers", "1", "--node-listen", ep, "--insecure-tcp", NULL});
    c = connect_to(head.ep);
    spawn(&nodes[0], "n0",
          (const char *const[]){"--workers", "1", "--join", ep, "--node-name", "n0", "--tag", "n",
                                "--insecure-tcp", NULL});
    wait_slots(c, 1);
    tput(c, n_tiny / 10 + 1, NULL); /* warm both paths */
    tput(c, n_tiny / 10 + 1, "n");
    double h0 = cpu_us(head.pid);
    lt = tput(c, n_tiny, NULL);
    double h1 = cpu_us(head.pid), n1 = cpu_us(nodes[0].pid);
    ht = tput(c, n_tiny, "n");
    double h2 = cpu_us(head.pid), n2 = cpu_us(nodes[0].pid);
    rtt(c, n_rtt, NULL, &l50, &l99);
    rtt(c, n_rtt, "n", &h50, &h99);
    stop(&nodes[0]);
    forq_client_destroy(&c);
    stop(&head);
    printf("local_tput %.0f\nhop_tput %.0f\n", lt, ht);
    printf("head_cpu_us_per_local_job %.1f\nhead_cpu_us_per_hop_job %.1f\n"
           "node_cpu_us_per_hop_job %.1f\n",
           (h1 - h0) / n_tiny, (h2 - h1) / n_tiny, (n2 - n1) / n_tiny);
    printf("local_rtt_p50_us %.1f\nlocal_rtt_p99_us %.1f\n", l50, l99);
    printf("hop_rtt_p50_us %.1f\nhop_rtt_p99_us %.1f\nhop_rtt_ratio %.2f\n", h50, h99, h50 / l50);
    fflush(stdout);

    /* scaling: a head with 2 workers alone, then with 3 nodes of 2 */
    spawn(&head, "head2",
          (const char *const[]){"--workers", "2", "--node-listen", ep, "--insecure-tcp", NULL});
    c = connect_to(head.ep);
    s1 = sleeps(c, n_sleep);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", i);
        spawn(&nodes[i], name,
              (const char *const[]){"--workers", "2", "--join", ep, "--node-name", name,
                                    "--insecure-tcp", NULL});
    }
    wait_slots(c, 6);
    s4 = sleeps(c, n_sleep);
    for (int i = 0; i < 3; i++)
        stop(&nodes[i]);
    forq_client_destroy(&c);
    stop(&head);
    printf("scale1_s %.3f\nscale1_of_ideal %.3f\n", s1, n_sleep * 0.010 / 2 / s1);
    printf("scale4_s %.3f\nscale4_of_ideal %.3f\n", s4, n_sleep * 0.010 / 8 / s4);
    return 0;
}
