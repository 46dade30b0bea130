#!/usr/bin/python3
"""An FJP/1 client written from proto/PROTOCOL.md alone, with pyzmq and msgpack: proof that
another language can talk to forqd. Starts $FORQD in a temporary directory, exercises every
client command, a rejection, malformed input and a cancel, then stops forqd with SIGTERM.
Prints one line per check and "interop: N passed, M failed"; exit 77 (skip) without pyzmq."""
import os
import signal
import subprocess
import sys
import tempfile
import time

try:
    import msgpack
    import zmq
except ImportError:
    print("interop: pyzmq or msgpack missing (apt-get install python3-zmq python3-msgpack)")
    sys.exit(77)

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok -", name)
    else:
        failed += 1
        print("FAILED -", name, detail)


def hdr(**fields):
    return msgpack.packb(dict(v=1, **fields))


def recv(sock, want_pong=False):
    """The next reply; late answers to the start-up pings are skipped."""
    while True:
        frames = sock.recv_multipart()
        h = msgpack.unpackb(frames[0])
        if h["cmd"] != "pong" or want_pong:
            return h, [msgpack.unpackb(f) for f in frames[1:]]


def main():
    tmp = tempfile.mkdtemp(prefix="forq-interop.")
    endpoint = "ipc://%s/forqd.sock" % tmp
    log = open(os.path.join(tmp, "forqd.log"), "w")
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    forqd = subprocess.Popen([os.environ["FORQD"], "--listen", endpoint, "--workers", "2"],
                             stderr=log, env=env)
    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, b"py-interop")
    sock.setsockopt(zmq.RCVTIMEO, 20000)
    sock.connect(endpoint)
    try:
        # ping until forqd answers
        for attempt in range(200):
            sock.send(hdr(cmd="ping", req=attempt))
            try:
                sock.setsockopt(zmq.RCVTIMEO, 100)
                h, _ = recv(sock, want_pong=True)
                break
            except zmq.Again:
                continue
        sock.setsockopt(zmq.RCVTIMEO, 20000)
        check("ping answers pong", h["cmd"] == "pong" and h["msg"].startswith("forqd"), h)

        # submit: count the primes below 300000, and a job for a task that does not exist
        sock.send_multipart([hdr(cmd="submit", id="py-1", task="count_primes", priority=7),
                             msgpack.packb([1, 300000])])
        sock.send_multipart([hdr(cmd="submit", id="py-2", task="nope"), msgpack.packb([])])
        sock.send(hdr(cmd="status", id="py-1", req=1))
        got = {}
        for _ in range(3):
            h, payload = recv(sock)
            got[(h["cmd"], h.get("id"))] = (h, payload)
        h, payload = got[("result", "py-1")]
        check("count_primes(1, 300000) == 25997", h["status"] == "ok" and payload == [25997],
              (h, payload))
        h, payload = got[("result", "py-2")]
        check("unknown task is rejected with a code",
              h["status"] == "rejected" and h["code"] == "unknown_task" and not payload, h)
        h, _ = got[("status_reply", "py-1")]
        check("status reply echoes req", h["req"] == 1 and h["status"] in ("queued", "running", "ok"), h)

        # a task error is a result, not a failure of the protocol
        sock.send_multipart([hdr(cmd="submit", id="py-3", task="is_prime"),
                             msgpack.packb(["seven"])])
        h, _ = recv(sock)
        check("bad argument gives status error with TypeError",
              h["status"] == "error" and h["etype"] == "TypeError", h)

        # malformed input gets an error naming the problem
        sock.send(b"\xdd\xff\xff\xff\xff")
        h, _ = recv(sock)
        check("a lying container gets bad_message", h["cmd"] == "error" and h["code"] == "bad_message", h)
        sock.send(hdr(cmd="submit", id="py-4", task="echo", req=9))
        h, _ = recv(sock)
        check("submit without args frame gets bad_frames with req and id",
              h["code"] == "bad_frames" and h["req"] == 9 and h["id"] == "py-4", h)
        sock.send(msgpack.packb({"v": 2, "cmd": "ping"}))
        h, _ = recv(sock)
        check("version 2 gets bad_version", h["code"] == "bad_version", h)

        # cancel a running job
        sock.send_multipart([hdr(cmd="submit", id="py-5", task="sleep", timeout_ms=30000),
                             msgpack.packb([30])])
        for _ in range(500):
            sock.send(hdr(cmd="status", id="py-5", req=2))
            h, _ = recv(sock)
            if h["status"] == "running":
                break
            time.sleep(0.01)
        sock.send(hdr(cmd="cancel", id="py-5", req=3))
        replies = [recv(sock)[0] for _ in range(2)]
        kinds = {r["cmd"]: r for r in replies}
        check("cancel of a running job says killing",
              kinds.get("cancel_reply", {}).get("outcome") == "killing", replies)
        check("and its result says cancelled",
              kinds.get("result", {}).get("status") == "cancelled", replies)

        # stats
        sock.send(hdr(cmd="stats", req=4))
        h, payload = recv(sock)
        stats = payload[0]
        check("stats reply carries the counters",
              h["cmd"] == "stats_reply" and stats["ok"] >= 1 and "count_primes" in stats["tasks"],
              stats)
    finally:
        forqd.send_signal(signal.SIGTERM)
        rc = forqd.wait(timeout=30)
        check("forqd stops cleanly on SIGTERM", rc == 0, "exit %d" % rc)
        sock.close(0)
    print("interop: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
