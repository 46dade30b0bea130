/* locked_counter.c - multiprocessing's shared counter under its lock: 4 workers add 1 a thousand
 * times each, reading the value and writing it back (not atomic on its own), under a forq lock.
 * As in Python:
 *
 *     counter = Value("i", 0)
 *     def work(counter):
 *         for _ in range(1000):
 *             with counter.get_lock():
 *                 counter.value += 1
 *
 * The value is a dict key; the lock's grant has a lease (a worker that dies frees it) and a
 * fencing token: the write is fenced with it, so a worker whose lease ended unnoticed cannot
 * overwrite the next holder's count. (For a plain counter forq_dict_incr() is atomic by
 * itself; this is the pattern for read-modify-write that is not.) */
#include "example.h"

#include <pthread.h>

#define WORKERS 4
#define ROUNDS  1000

static const char *endpoint;

static void *work(void *arg)
{
    char *argv[] = {"locked_counter", (char *)endpoint};
    forq_client_t *c = example_connect(endpoint ? 2 : 1, argv);
    msgpack_sbuffer sb;

    (void)arg;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t token;
        void *v = NULL;
        size_t len = 0;
        int64_t n = 0;
        if (forq_lock_acquire(c, "counter.lock", 10000, -1, &token) != FORQ_OK)
            break;
        if (forq_dict_get(c, "values", "counter", 5000, &v, &len, NULL) == FORQ_OK)
            n = read_int(v, len);
        free(v);
        pack_int(&sb, n + 1);
        if (forq_dict_set_fenced(c, "values", "counter", sb.data, sb.size, "counter.lock", token,
                                 5000, NULL) != FORQ_OK)
            fprintf(stderr, "set: %s\n", forq_errdetail());
        forq_lock_release(c, "counter.lock", token, 5000);
    }
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return NULL;
}

int main(int argc, char **argv)
{
    forq_client_t *c = example_connect(argc, argv);
    pthread_t th[WORKERS];
    void *v;
    size_t len;

    endpoint = argc > 1 ? argv[1] : NULL;
    forq_dict_set(c, "values", "counter", "\x00", 1, 5000, NULL); /* Value("i", 0) */
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, work, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    if (forq_dict_get(c, "values", "counter", 5000, &v, &len, NULL) == FORQ_OK) {
        printf("counter: %lld\n", (long long)read_int(v, len));
        free(v);
    }
    forq_client_destroy(&c);
    return 0;
}
