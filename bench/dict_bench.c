/* dict_bench.c - ops/s of the dict service's set, get and incr, each client a thread with its own
 * connection doing synchronous calls (one round trip each), as the peers are measured.
 *     dict_bench ENDPOINT OPS CLIENTS      prints "set N", "get N", "incr N" (ops/s) */
#include <forq/forq.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *ep;
    int id, ops, op, failed;
    pthread_barrier_t *start;
    forq_client_t *c;
} th_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    th_t *t = arg;
    char key[32];
    pthread_barrier_wait(t->start);
    for (int i = 0; i < t->ops; i++) {
        snprintf(key, sizeof(key), "k%d-%d", t->id, i % 100);
        void *v = NULL;
        size_t len;
        int64_t n;
        forq_err_t e = t->op == 0   ? forq_dict_set(t->c, "bench", key, "\xcd\x30\x39", 3, -1, NULL)
                       : t->op == 1 ? forq_dict_get(t->c, "bench", key, -1, &v, &len, NULL)
                                    : forq_dict_incr(t->c, "bench", "counter", 1, -1, &n);
        free(v);
        t->failed += e != FORQ_OK;
    }
    pthread_barrier_wait(t->start);
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"set", "get", "incr"};
    if (argc != 4)
        return fprintf(stderr, "usage: dict_bench ENDPOINT OPS CLIENTS\n"), 2;
    int ops = atoi(argv[2]), clients = atoi(argv[3]);
    th_t *t = calloc((size_t)clients, sizeof(*t));
    pthread_t *th = calloc((size_t)clients, sizeof(*th));
    pthread_barrier_t start;

    for (int i = 0; i < clients; i++) {
        forq_client_opts_t o;
        forq_client_opts_init(&o);
        o.endpoint = argv[1];
        o.connect_timeout_ms = 5000;
        if (forq_client_new(&o, &t[i].c) != FORQ_OK)
            return fprintf(stderr, "%s\n", forq_errdetail()), 1;
    }
    for (int op = 0; op < 3; op++) {
        pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
        for (int i = 0; i < clients; i++) {
            t[i] = (th_t){argv[1], i, ops / clients, op, 0, &start, t[i].c};
            pthread_create(&th[i], NULL, run, &t[i]);
        }
        pthread_barrier_wait(&start);
        double t0 = now_s();
        pthread_barrier_wait(&start);
        double dt = now_s() - t0;
        int failed = 0;
        for (int i = 0; i < clients; i++) {
            pthread_join(th[i], NULL);
            failed += t[i].failed;
        }
        pthread_barrier_destroy(&start);
        if (failed)
            return fprintf(stderr, "%d %s calls failed\n", failed, names[op]), 1;
        printf("%s %.0f\n", names[op], (double)(ops / clients * clients) / dt);
    }
    for (int i = 0; i < clients; i++)
        forq_client_destroy(&t[i].c);
    free(t);
    free(th);
    return 0;
}
