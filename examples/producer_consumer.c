/* producer_consumer.c - the producer/consumer pattern: a producer thread submits jobs as it
 * makes work, a consumer thread takes results as they come (done callbacks feed a queue), on
 * one shared client — as with multiprocessing's Queue and worker processes. */
#include "example.h"

#include <pthread.h>

#define JOBS 20

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    forq_future_t *done[JOBS]; /* finished futures, in completion order */
    int n_done;
    forq_client_t *c;
} shared_t;

/* Runs on the client's I/O thread when a job finishes: hand the future to the consumer. */
static void on_done(forq_future_t *f, void *ud)
{
    shared_t *s = ud;
    pthread_mutex_lock(&s->mu);
    s->done[s->n_done++] = f;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void *producer(void *arg)
{
    shared_t *s = arg;
    for (int64_t i = 0; i < JOBS; i++) {
        int64_t n = 1000000 + i * 7919;
        forq_future_t *f = submit_ints(s->c, "is_prime", &n, 1, NULL);
        forq_future_add_done_callback(f, on_done, s); /* the consumer will destroy f */
    }
    return NULL;
}

static void *consumer(void *arg)
{
    shared_t *s = arg;
    int primes = 0;
    for (int i = 0; i < JOBS; i++) {
        const void *data;
        size_t len;
        pthread_mutex_lock(&s->mu);
        while (s->n_done <= i)
            pthread_cond_wait(&s->cond, &s->mu);
        forq_future_t *f = s->done[i];
        pthread_mutex_unlock(&s->mu);
        if (forq_future_result(f, &data, &len) == FORQ_OK)
            primes += (int)read_int(data, len);
        forq_future_destroy(&f);
    }
    printf("consumer: %d results, %d primes\n", JOBS, primes);
    return NULL;
}

int main(int argc, char **argv)
{
    shared_t s = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, example_connect(argc, argv)};
    pthread_t p, q;

    pthread_create(&q, NULL, consumer, &s);
    pthread_create(&p, NULL, producer, &s);
    pthread_join(p, NULL);
    pthread_join(q, NULL);
    forq_client_destroy(&s.c);
    return 0;
}
