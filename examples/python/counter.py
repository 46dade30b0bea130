"""Four processes increment one shared counter 1,000 times each:

    with Manager() as m:
        d = m.dict(counter=0)
        ... d["counter"] += 1 in 4 processes ...      # not atomic: updates get lost

forq's Dict.incr is one atomic operation in forqd: the count is exactly 4000, and the
processes could as well run on four machines.

    python3 counter.py [ENDPOINT]"""
import multiprocessing
import os
import sys

import forq

NAME = "example-counter-%d" % os.getpid()


def work(endpoint):
    d = forq.Dict(NAME, endpoint)
    for _ in range(1000):
        d.incr("counter")


if __name__ == "__main__":
    endpoint = sys.argv[1] if len(sys.argv) > 1 else None
    d = forq.Dict(NAME, endpoint)
    d["counter"] = 0
    procs = [multiprocessing.Process(target=work, args=(endpoint,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("counter:", d["counter"])
    d.clear()
