"""multiprocessing's shared counter under its lock, ported line for line:

    def work(counter):
        for _ in range(1000):
            with counter.get_lock():
                counter.value += 1

    counter = Value("i", 0)         # was: multiprocessing.Value("i", 0)
    ... 4 processes run work(counter) ...
    print("counter:", counter.value)                        # counter: 4000

The value lives in forqd and its lock is a forq lock, with a lease (a process that dies
holding it frees it) and a fencing token: under the lock, the write of counter.value is
refused once the lease has ended, so a process that was paused past its lease cannot undo
another's work. (counter.py does the same count with Dict.incr: one atomic request, no lock.)

    python3 value_counter.py [ENDPOINT]"""
import multiprocessing
import os
import sys

import forq


def work(counter):
    for _ in range(1000):
        with counter.get_lock():
            counter.value += 1


if __name__ == "__main__":
    endpoint = sys.argv[1] if len(sys.argv) > 1 else None
    counter = forq.Value("example-value-%d" % os.getpid(), "i", 0, endpoint)
    procs = [multiprocessing.Process(target=work, args=(counter,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("counter:", counter.value)
    forq.Dict(counter.name, endpoint).clear()
