"""The Manager().dict() peer of dict_bench: set, get and "incr" ops/s from CLIENTS processes
sharing one manager dict through its proxy (CLIENTS=1: the calling process). A Manager dict has
no atomic increment: incr here is d[k] = d[k] + 1, two round trips and not atomic, which is
what Manager users write. Prints "set N", "get N", "incr N"."""
import multiprocessing as mp
import sys
import time


def work(d, op, ident, ops, start, done):
    start.wait()
    for i in range(ops):
        k = "k%d-%d" % (ident, i % 100)
        if op == "set":
            d[k] = 12345
        elif op == "get":
            d.get(k)
        else:
            d["counter"] = d.get("counter", 0) + 1
    done.put(1)


def main():
    ops, clients = int(sys.argv[1]), int(sys.argv[2])
    with mp.Manager() as m:
        d = m.dict()
        for op in ("set", "get", "incr"):
            per = ops // clients
            if clients == 1:
                t0 = time.monotonic()
                ev = mp.Event()
                ev.set()
                q = mp.Queue()
                work(d, op, 0, per, ev, q)
                dt = time.monotonic() - t0
            else:
                start, done = mp.Event(), mp.Queue()
                ps = [mp.Process(target=work, args=(d, op, i, per, start, done))
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
            print("%s %.0f" % (op, per * clients / dt))


if __name__ == "__main__":
    main()
