"""The peers of bench/queue_bench.c (issue 16): the same two workloads on multiprocessing.Queue,
Manager().Queue() and a Redis list (LPUSH/BRPOP over redis-server's Unix socket, with a small
RESP client here: Debian's python3 has no redis module), one producer process and one consumer
(this process), as forq's producer and consumer are two connections:

    queue_peer.py tput mp|manager|redis N [SOCK]   N items put, got in order:   items_per_s X
    queue_peer.py wake mp|manager|redis N [SOCK]   a consumer blocked in get, then a put: the
                                                   put's call to the consumer holding the item,
                                                   N times (ping-pong on a second queue, the
                                                   producer waits 1 ms first):  p50_us X p99_us Y

multiprocessing.Queue's put returns at once (a feeder thread sends the item later); a
Manager().Queue() call and each Redis command is one round trip, as a forq put is. Every item
is checked; a wrong one exits 1."""
import multiprocessing as mp
import socket
import sys
import time


class Redis:
    """The three commands used, RESP over a Unix socket."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.reply()

    def reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)


class RedisQueue:
    def __init__(self, path, key):
        self.r, self.key = Redis(path), key

    def put(self, x):
        self.r.cmd("LPUSH", self.key, x)

    def get(self):
        return int(self.r.cmd("BRPOP", self.key, 0)[1])


def queues(kind, sock, manager):
    if kind == "mp":
        return mp.Queue(), mp.Queue()
    if kind == "manager":
        return manager.Queue(), manager.Queue()
    Redis(sock).cmd("DEL", "bench.q", "bench.ack")
    return ("redis", sock, "bench.q"), ("redis", sock, "bench.ack")


def opened(q):
    """A queue as the process that uses it holds it (a Redis queue is a connection of its own)."""
    if isinstance(q, tuple) and q[0] == "redis":
        return RedisQueue(q[1], q[2])
    return q


def tput_producer(q, n):
    q = opened(q)
    for i in range(n):
        q.put(i)


def wake_producer(q, ack, n):
    q, ack = opened(q), opened(ack)
    for i in range(n):
        time.sleep(0.001)  # the consumer is blocked in get again
        q.put(time.monotonic_ns())
        if int(ack.get()) != i:
            sys.exit(1)


def main(argv):
    what, kind, n = argv[1], argv[2], int(argv[3])
    sock = argv[4] if len(argv) > 4 else None
    manager = mp.Manager() if kind == "manager" else None
    q, ack = queues(kind, sock, manager)
    mine, mine_ack = opened(q), opened(ack)
    if what == "tput":
        t0 = time.monotonic()
        p = mp.Process(target=tput_producer, args=(q, n))
        p.start()
        for i in range(n):
            if int(mine.get()) != i:
                print("item out of order", file=sys.stderr)
                return 1
        p.join()
        print("items_per_s %.0f" % (n / (time.monotonic() - t0)))
    else:
        lat = []
        p = mp.Process(target=wake_producer, args=(q, ack, n))
        p.start()
        for i in range(n):
            t0 = int(mine.get())
            lat.append((time.monotonic_ns() - t0) / 1000.0)
            mine_ack.put(i)
        p.join()
        if p.exitcode != 0:
            return 1
        lat.sort()
        print("p50_us %.1f p99_us %.1f" % (lat[n // 2], lat[n * 99 // 100]))
    if manager:
        manager.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
