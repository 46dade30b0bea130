/* queue_fruit.c - multiprocessing's producer/consumer over a forq queue: the consumer waits in
 * get, the producer puts apple, banana, cherry and then a sentinel (nil), and the consumer prints
 * them in order. As in Python:
 *
 *     def producer(q):                     def consumer(q):
 *         for item in ["apple", "banana",      while (item := q.get()) is not None:
 *                      "cherry"]:                  print("consumed", item)
 *             q.put(item)
 *         q.put(None)
 *
 * Each side has its own client, as two processes would (on two machines, two forq_client_new
 * at the same endpoint). The queue lives in forqd: it outlives both, and with --state-dir a
 * restart. */
#include "example.h"

#include <pthread.h>

static const char *endpoint;

static forq_client_t *connect_to(void)
{
    char *argv[] = {"queue_fruit", (char *)endpoint};
    return example_connect(endpoint ? 2 : 1, argv);
}

static void *producer(void *arg)
{
    static const char *const fruit[] = {"apple", "banana", "cherry"};
    forq_client_t *c = connect_to();
    msgpack_sbuffer sb;
    msgpack_packer pk;

    (void)arg;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < 3; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_str_with_body(&pk, fruit[i], strlen(fruit[i]));
        if (forq_queue_put(c, "fruit", sb.data, sb.size, false, 0, -1, NULL) != FORQ_OK)
            fprintf(stderr, "put: %s\n", forq_errdetail());
    }
    forq_queue_put(c, "fruit", "\xc0", 1, false, 0, -1, NULL); /* the sentinel: None */
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return NULL;
}

static void *consumer(void *arg)
{
    forq_client_t *c = connect_to();

    (void)arg;
    for (;;) {
        void *item;
        size_t len, off = 0;
        msgpack_zone zone;
        msgpack_object o;
        if (forq_queue_get(c, "fruit", -1, &item, &len) != FORQ_OK) {
            fprintf(stderr, "get: %s\n", forq_errdetail());
            break;
        }
        msgpack_zone_init(&zone, 256);
        bool more = msgpack_unpack(item, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
                    o.type == MSGPACK_OBJECT_STR;
        if (more)
            printf("consumed %.*s\n", (int)o.via.str.size, o.via.str.ptr);
        msgpack_zone_destroy(&zone);
        free(item);
        if (!more)
            break;
    }
    forq_client_destroy(&c);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t p, q;

    endpoint = argc > 1 ? argv[1] : NULL;
    pthread_create(&q, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    pthread_join(p, NULL);
    pthread_join(q, NULL);
    return 0;
}
