"""The classic multiprocessing example on forq: count the primes in range(1, 300000) in chunks
across forqd's pool, then the same work in this one process, and compare the times.

    with Pool() as p:
        print(sum(p.starmap(count_primes, chunks)))          # 25997

    python3 primes.py [ENDPOINT]      (default: $FORQ_ENDPOINT, else forqd's default endpoint)

The pool runs forqd's built-in count_primes (C); this process runs the same trial division in
Python, as the classic program does. Both are repeated 5 times and the medians compared."""
import statistics
import sys
import time

import forq

LIMIT = 300000
RUNS = 5


def is_prime(n):
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    i = 5
    while i * i <= n:
        if n % i == 0 or n % (i + 2) == 0:
            return False
        i += 6
    return True


def main():
    endpoint = sys.argv[1] if len(sys.argv) > 1 else None
    with forq.Executor(endpoint) as ex:
        workers = ex.stats()["workers"]
        n = 4 * workers                 # 4 chunks per worker: the shares even out
        chunks = [(1 + (LIMIT - 1) * i // n, 1 + (LIMIT - 1) * (i + 1) // n) for i in range(n)]
        pool, single = [], []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            total = sum(ex.starmap("count_primes", chunks))
            pool.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            here = sum(1 for k in range(1, LIMIT) if is_prime(k))
            single.append(time.perf_counter() - t0)
            assert here == total
        print("primes in range(1, %d): %d  (%d count_primes jobs on %d workers at %s)"
              % (LIMIT, total, n, workers, ex.endpoint))
        print("median of %d runs:" % RUNS)
        p, s = statistics.median(pool), statistics.median(single)
        print("  pool (%d workers, C):    %6.1f ms" % (workers, p * 1e3))
        print("  this process (Python): %6.1f ms" % (s * 1e3))
        print("  pool/single time ratio: %.3f" % (p / s))


if __name__ == "__main__":
    main()
