"""The peer of map_bench: ProcessPoolExecutor.map of the same tiny task over N integers,
chunksize=1000, 2 workers. Prints "ppe_map ITEMS_PER_S"."""
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def square(x):
    return x * x


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with ProcessPoolExecutor(max_workers=workers) as ex:
        list(ex.map(square, range(1000), chunksize=100))  # start the pool outside the timing
        t0 = time.monotonic()
        total = sum(ex.map(square, range(n), chunksize=1000))
        dt = time.monotonic() - t0
    assert total == sum(i * i for i in range(n))
    print("ppe_map %.0f" % (n / dt))


if __name__ == "__main__":
    main()
