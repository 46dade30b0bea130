"""multiprocessing's producer/consumer, with the queue in forqd:

    def producer(q):                        def consumer(q):
        for item in ["apple", "banana",         while (item := q.get()) is not None:
                     "cherry"]:                     print("consumed", item)
            q.put(item)
        q.put(None)

    q = Queue()         # was: multiprocessing.Queue()

The only change is the queue's line: forq.Queue has a name, and lives in forqd, so the two
processes could as well run on two machines (or one could start after the other exits).

    python3 queue_fruit.py [ENDPOINT]"""
import multiprocessing
import os
import sys

import forq


def producer(q):
    for item in ["apple", "banana", "cherry"]:
        q.put(item)
    q.put(None)


def consumer(q):
    while (item := q.get()) is not None:
        print("consumed", item, flush=True)


if __name__ == "__main__":
    endpoint = sys.argv[1] if len(sys.argv) > 1 else None
    q = forq.Queue("example-fruit-%d" % os.getpid(), endpoint=endpoint)
    c = multiprocessing.Process(target=consumer, args=(q,))
    p = multiprocessing.Process(target=producer, args=(q,))
    c.start()
    p.start()
    p.join()
    c.join()
