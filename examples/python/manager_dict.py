"""Manager().dict() filled by five processes, on forq:

    def f(d, i):
        d[i] = i * 2
    with Manager() as m:
        d = m.dict()
        ... Process(target=f, args=(d, i)) for i in range(5) ...
        print(d)        # {0: 0, 1: 2, 2: 4, 3: 6, 4: 8}

forq's dict lives in forqd, keys are strings: the program turns them back into numbers.

    python3 manager_dict.py [ENDPOINT]"""
import multiprocessing
import os
import sys

import forq

NAME = "example-manager-%d" % os.getpid()


def f(endpoint, i):
    forq.Dict(NAME, endpoint)[str(i)] = i * 2


if __name__ == "__main__":
    endpoint = sys.argv[1] if len(sys.argv) > 1 else None
    procs = [multiprocessing.Process(target=f, args=(endpoint, i)) for i in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    d = forq.Dict(NAME, endpoint)
    print({int(k): v for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))})
    d.clear()
