"""The forq Python package's side of scripts/bench: the same workloads as bench/peer.py (its
ProcessPoolExecutor, Pool and Manager peers) through forq.Executor and forq.Dict, printing the
same "name value" pairs, so that scripts/bench records them side by side in one run.

    py_bench.py jobs EP N INFLIGHT    Executor.submit("echo", i) pipelined, a window of
                                      INFLIGHT futures:                    jobs_per_s X
    py_bench.py latency EP N          submit("echo", i).result(), one at a time (200 more
                                      first, to warm up):                  p50_us X p99_us Y
    py_bench.py map EP N              sum(Executor.map("square", range(N), chunksize=1000)):
                                                                           items_per_s X
    py_bench.py dict EP OPS THREADS   forq.Dict set/get/incr from THREADS threads sharing one
                                      Executor, OPS operations in all:     set X get Y incr Z

Run with Debian's /usr/bin/python3 (python3-zmq, python3-msgpack) and python/ on sys.path
(scripts/bench sets PYTHONPATH). forqd must have the example plugin (square). Every answer is
checked; a wrong one exits non-zero rather than print a figure."""
import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.environ.get("FORQ_BENCH_PYTHON") or
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import forq  # noqa: E402

WARMUP = 200


def jobs(ep, n, inflight):
    with forq.Executor(ep, max_in_flight=None) as ex:
        for f in [ex.submit("echo", i) for i in range(100)]:
            f.result()
        window = collections.deque()
        t0 = time.monotonic()
        done = 0
        submit = ex.submit
        for i in range(n):
            if len(window) == inflight:
                assert window.popleft().result() == [done]
                done += 1
            window.append(submit("echo", i))
        while window:
            assert window.popleft().result() == [done]
            done += 1
        dt = time.monotonic() - t0
    print("jobs_per_s %.0f" % (n / dt))


def latency(ep, n):
    with forq.Executor(ep) as ex:
        us = []
        for i in range(n + WARMUP):
            t0 = time.perf_counter()
            r = ex.submit("echo", i).result()
            dt = time.perf_counter() - t0
            assert r == [i]
            if i >= WARMUP:
                us.append(dt * 1e6)
    us.sort()
    print("p50_us %.1f p99_us %.1f" % (us[n // 2], us[n * 99 // 100]))


def map_items(ep, n):
    with forq.Executor(ep) as ex:
        assert sum(ex.map("square", range(1000), chunksize=100)) == sum(i * i for i in range(1000))
        t0 = time.monotonic()
        total = sum(ex.map("square", range(n), chunksize=1000))
        dt = time.monotonic() - t0
    assert total == sum(i * i for i in range(n))
    print("items_per_s %.0f" % (n / dt))


def dict_ops(ep, ops, threads):
    with forq.Executor(ep) as ex:
        d = forq.Dict("py-bench-%d" % os.getpid(), executor=ex)
        d.clear()
        out = []
        for op in ("set", "get", "incr"):
            per = ops // threads
            start = threading.Barrier(threads + 1)
            errors = []

            def work(ident, op=op, per=per, start=start, errors=errors):
                try:
                    start.wait()
                    for i in range(per):
                        k = "k%d-%d" % (ident, i % 100)
                        if op == "set":
                            d[k] = 12345
                        elif op == "get":
                            assert d.get(k) == 12345
                        else:
                            d.incr("counter")
                except Exception as e:          # reported, then the run fails
                    errors.append(e)

            ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for t in ts:
                t.start()
            time.sleep(0.1)
            t0 = time.monotonic()
            start.wait()
            for t in ts:
                t.join()
            dt = time.monotonic() - t0
            if errors:
                raise errors[0]
            out.append("%s %.0f" % (op, per * threads / dt))
        assert d["counter"] == (ops // threads) * threads
        d.clear()
    print(" ".join(out))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "jobs":
        jobs(args[0], int(args[1]), int(args[2]))
    elif cmd == "latency":
        latency(args[0], int(args[1]))
    elif cmd == "map":
        map_items(args[0], int(args[1]))
    elif cmd == "dict":
        dict_ops(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
