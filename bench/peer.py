"""The Python peers of scripts/bench, one workload per subcommand, each printing the same
"name value" pairs as its forq counterpart (bench/forq_bench.c, map_bench.c, dict_bench.c):

    peer.py jobs ppe|pool N INFLIGHT    echo(i) pipelined, a window of INFLIGHT:  jobs_per_s X
    peer.py latency N                   ProcessPoolExecutor submit().result():    p50_us X p99_us Y
    peer.py map ppe|pool N              PPE.map(chunksize=1000) / Pool.map:       items_per_s X
    peer.py cpu LIB LIMIT CHUNKS        the C count_primes in LIB through ctypes, CHUNKS jobs on
                                        ProcessPoolExecutor(2):                   seconds X primes P
    peer.py spawn N                     forkserver Process start+join, 2 at once: spawns_per_s X
    peer.py dict OPS CLIENTS            Manager().dict() set/get/"incr":          set X get Y incr Z

Every pool has 2 workers and is started before the clock starts; every result is checked."""
import collections
import ctypes
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor

WORKERS = 2
WARMUP = 200


def echo(x):
    return x


def square(x):
    return x * x


def noop():
    pass


_lib = None


def count_primes(lib, lo, hi):
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(lib)
        _lib.bench_count_primes.restype = ctypes.c_int64
        _lib.bench_count_primes.argtypes = [ctypes.c_int64, ctypes.c_int64]
    return _lib.bench_count_primes(lo, hi)


def pool_of(kind):
    if kind == "ppe":
        return ProcessPoolExecutor(WORKERS)
    return mp.Pool(WORKERS)


def jobs(kind, n, inflight):
    with pool_of(kind) as pool:
        submit = pool.submit if kind == "ppe" else (lambda fn, x: pool.apply_async(fn, (x,)))
        get = (lambda f: f.result()) if kind == "ppe" else (lambda f: f.get())
        for f in [submit(echo, i) for i in range(100)]:
            get(f)
        window = collections.deque()
        t0 = time.monotonic()
        done = 0
        for i in range(n):
            if len(window) == inflight:
                assert get(window.popleft()) == done
                done += 1
            window.append(submit(echo, i))
        while window:
            assert get(window.popleft()) == done
            done += 1
        dt = time.monotonic() - t0
    print("jobs_per_s %.0f" % (n / dt))


def latency(n):
    with ProcessPoolExecutor(WORKERS) as ex:
        us = []
        for i in range(n + WARMUP):
            t0 = time.perf_counter()
            r = ex.submit(echo, i).result()
            dt = time.perf_counter() - t0
            assert r == i
            if i >= WARMUP:
                us.append(dt * 1e6)
    us.sort()
    print("p50_us %.1f p99_us %.1f" % (us[n // 2], us[n * 99 // 100]))


def map_items(kind, n):
    with pool_of(kind) as pool:
        if kind == "ppe":
            list(pool.map(square, range(1000), chunksize=100))
            t0 = time.monotonic()
            total = sum(pool.map(square, range(n), chunksize=1000))
        else:
            pool.map(square, range(1000))
            t0 = time.monotonic()
            total = sum(pool.map(square, range(n)))
        dt = time.monotonic() - t0
    assert total == sum(i * i for i in range(n))
    print("items_per_s %.0f" % (n / dt))


def cpu(lib, limit, chunks):
    with ProcessPoolExecutor(WORKERS) as ex:
        list(ex.map(count_primes, [lib] * WORKERS, [0] * WORKERS, [10] * WORKERS))
        t0 = time.monotonic()
        fs = [ex.submit(count_primes, lib, limit * i // chunks, limit * (i + 1) // chunks)
              for i in range(chunks)]
        primes = sum(f.result() for f in fs)
        dt = time.monotonic() - t0
    print("seconds %.4f primes %d" % (dt, primes))


def spawn(n):
    ctx = mp.get_context("forkserver")
    ctx.Process(target=noop).start()  # the forkserver itself starts outside the clock
    t0 = time.monotonic()
    for _ in range(n // 2):
        ps = [ctx.Process(target=noop) for _ in range(2)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
            assert p.exitcode == 0
    dt = time.monotonic() - t0
    print("spawns_per_s %.0f" % (2 * (n // 2) / dt))


def dict_work(d, op, ident, ops, start, done):
    start.wait()
    for i in range(ops):
        k = "k%d-%d" % (ident, i % 100)
        if op == "set":
            d[k] = 12345
        elif op == "get":
            d.get(k)
        else:
            # a Manager dict has no atomic increment: this is what its users write
            d["counter"] = d.get("counter", 0) + 1
    done.put(1)


def dict_ops(ops, clients):
    with mp.Manager() as m:
        d = m.dict()
        out = []
        for op in ("set", "get", "incr"):
            per = ops // clients
            if clients == 1:
                ev, q = mp.Event(), mp.Queue()
                ev.set()
                t0 = time.monotonic()
                dict_work(d, op, 0, per, ev, q)
                dt = time.monotonic() - t0
            else:
                start, done = mp.Event(), mp.Queue()
                ps = [mp.Process(target=dict_work, args=(d, op, i, per, start, done))
                      for i in range(clients)]
                for p in ps:
                    p.start()
                time.sleep(0.5)  # every process is up and waiting
                t0 = time.monotonic()
                start.set()
                for _ in ps:
                    done.get()
                dt = time.monotonic() - t0
                for p in ps:
                    p.join()
            out.append("%s %.0f" % (op, per * clients / dt))
        print(" ".join(out))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "jobs":
        jobs(args[0], int(args[1]), int(args[2]))
    elif cmd == "latency":
        latency(int(args[0]))
    elif cmd == "map":
        map_items(args[0], int(args[1]))
    elif cmd == "cpu":
        cpu(args[0], int(args[1]), int(args[2]))
    elif cmd == "spawn":
        spawn(int(args[0]))
    elif cmd == "dict":
        dict_ops(int(args[0]), int(args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
