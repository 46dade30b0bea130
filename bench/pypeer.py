"""The Python peers of scripts/bench's Python task workloads (issue 15), with the same module
forqd serves (examples/python/tasks/classic.py), printing the same "name value" pairs as
bench/pytask_bench.c and forq_bench's replace:

    pypeer.py start N                      multiprocessing's forkserver with classic preloaded
                                           (set_forkserver_preload): Process.start() to the
                                           child running its target, one at a time; the median:
                                           start_us X
    pypeer.py cpu local|ppe|pool RANGE LIMIT CHUNKS
                                           classic.is_prime over range(1, RANGE) in CHUNKS
                                           chunks (map's chunksize), then classic.count_primes
                                           over CHUNKS list slices of range(LIMIT): in this one
                                           process, on ProcessPoolExecutor(2), on Pool(2):
                                           isprime_s X count_s Y primes P below Q

The pools are started (and their workers have imported classic) before the clock starts."""
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[0:0] = [os.path.join(HERE, "..", "python"),
                 os.path.join(HERE, "..", "examples", "python", "tasks")]

import classic  # noqa: E402  (after the path)

WORKERS = 2


def ready(conn):
    conn.send_bytes(b"r")


def start(n):
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["classic"])
    p = ctx.Process(target=classic.multiply, args=(1, 2))  # the forkserver starts, unclocked
    p.start()
    p.join()
    times = []
    for _ in range(n):
        r, w = ctx.Pipe(duplex=False)
        t0 = time.monotonic()
        p = ctx.Process(target=ready, args=(w,))
        p.start()
        r.recv_bytes()
        times.append((time.monotonic() - t0) * 1e6)
        p.join()
        assert p.exitcode == 0
    print("start_us %.0f" % statistics.median(times))


def slices(limit, chunks):
    return [list(range(limit * i // chunks, limit * (i + 1) // chunks)) for i in range(chunks)]


def cpu(kind, rng, limit, chunks):
    size = (rng - 1 + chunks - 1) // chunks
    parts = slices(limit, chunks)
    if kind == "local":
        t0 = time.monotonic()
        primes = sum(map(classic.is_prime, range(1, rng)))
        t1 = time.monotonic()
        below = sum(map(classic.count_primes, parts))
        t2 = time.monotonic()
    else:
        pool = ProcessPoolExecutor(WORKERS) if kind == "ppe" else mp.Pool(WORKERS)
        with pool:
            # both workers up before the clock starts
            assert list(pool.map(classic.sum_squares, [3] * WORKERS)) == [5] * WORKERS
            t0 = time.monotonic()
            primes = sum(pool.map(classic.is_prime, range(1, rng), chunksize=size))
            t1 = time.monotonic()
            below = sum(pool.map(classic.count_primes, parts, chunksize=1))
            t2 = time.monotonic()
    if rng == 300000:
        assert primes == 25997, primes
    print("isprime_s %.4f count_s %.4f primes %d below %d" % (t1 - t0, t2 - t1, primes, below))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "start":
        start(int(args[0]))
    elif cmd == "cpu":
        cpu(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
