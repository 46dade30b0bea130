#!/usr/bin/python3
"""An FJP/1 client written from proto/PROTOCOL.md alone, with pyzmq and msgpack: proof that
another language can talk to forqd, and a check of what the document says against a real forqd.
Starts $FORQD in a temporary directory, exercises every client command, the defaults of absent
fields, the header and frame rules, routing ids and reconnection, progress, the built-in tasks,
the dict service and its shared types, then stops forqd with SIGTERM. Each check names the section it holds to.
Prints one line per check and "interop: N passed, M failed"; exit 77 (skip) without pyzmq."""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import msgpack
    import zmq
    from zmq.utils.monitor import recv_monitor_message
except ImportError:
    print("interop: pyzmq or msgpack missing (apt-get install python3-zmq python3-msgpack)")
    sys.exit(77)

MAX_PAYLOAD = 65536  # forqd --max-payload: small, so that the frame limit is cheap to pass
FRAME_LIMIT = MAX_PAYLOAD + 4096  # §3.1
I64_MAX = 2**63 - 1
I64_MIN = -2**63

passed = failed = 0
ctx = zmq.Context()


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


def pack(value):
    return msgpack.packb(value)


class Client:
    """One DEALER connection with its own routing id."""

    def __init__(self, endpoint, ident):
        self.endpoint = endpoint
        self.ident = ident
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, ident)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.req = 1000

    def close(self):
        self.sock.close(0)

    def send(self, header, *frames):
        """header: a dict (packed here) or bytes (sent as they are)."""
        if isinstance(header, dict):
            header = msgpack.packb(dict({"v": 1}, **header))
        self.sock.send_multipart([header] + list(frames))

    def raw(self, timeout=20.0):
        """The next message's frames, or None after `timeout` seconds."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return self.sock.recv_multipart()

    def recv(self, timeout=20.0, skip=("pong", "progress")):
        """The next reply as (header, [payload values]); None on timeout. Late pongs of the
        start-up and progress reports are skipped unless asked for."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.raw(max(0.0, deadline - time.monotonic()))
            if frames is None:
                return None, None
            h = msgpack.unpackb(frames[0])
            if h.get("cmd") in skip:
                continue
            return h, [msgpack.unpackb(f, strict_map_key=False) for f in frames[1:]]

    def call(self, header, *frames, timeout=20.0):
        """Send a request with a fresh req and return the reply that echoes it."""
        self.req += 1
        header = dict(header, req=self.req)
        self.send(header, *frames)
        deadline = time.monotonic() + timeout
        while True:
            h, p = self.recv(max(0.0, deadline - time.monotonic()),
                             skip=("progress",) if header.get("cmd") == "ping" else
                             ("pong", "progress"))
            if h is None or h.get("req") == self.req:
                return h, p

    def dict(self, op, name, value=None, **fields):
        frames = [pack(value)] if value is not None else []
        return self.call(dict(cmd="dict", op=op, name=name, **fields), *frames)

    def submit(self, id, task, args, **fields):
        self.send(dict(cmd="submit", id=id, task=task, **fields), pack(args))

    def result(self, id, timeout=30.0):
        """The result of job `id` (other messages are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            h, p = self.recv(max(0.0, deadline - time.monotonic()))
            if h is None or (h["cmd"] == "result" and h["id"] == id):
                return h, p

    def quiet(self, seconds):
        """True if nothing but pongs arrives within `seconds`."""
        h, _ = self.recv(seconds)
        return h is None

    def wait_running(self, id):
        for _ in range(1000):
            h, _ = self.call(dict(cmd="status", id=id))
            if h["status"] == "running":
                return True
            time.sleep(0.01)
        return False


def primes_below(n):
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\0\0"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(range(i * i, n, i)))
    return sum(sieve)


# ---- jobs ----

def test_basics(c):
    # submit: count the primes below 300000, and a job for a task that does not exist
    c.submit("py-1", "count_primes", [1, 300000], priority=7)
    c.submit("py-2", "nope", [])
    c.send(dict(cmd="status", id="py-1", req=1))
    got = {}
    for _ in range(3):
        h, payload = c.recv()
        got[(h["cmd"], h.get("id"))] = (h, payload)
    h, payload = got[("result", "py-1")]
    check("count_primes(1, 300000) == 25997", h["status"] == "ok" and payload == [25997],
          (h, payload))
    check("§6.6: an ok result has attempts 1, the worker's pid and run_us, and no req",
          h.get("attempts") == 1 and h.get("pid", 0) > 0 and h.get("run_us", 0) > 0
          and "req" not in h, h)
    h, payload = got[("result", "py-2")]
    check("unknown task is rejected with a code",
          h["status"] == "rejected" and h["code"] == "unknown_task" and not payload, h)
    check("§4.1: a rejected result has no attempts (0) and no pid",
          "attempts" not in h and "pid" not in h and h.get("msg"), h)
    h, _ = got[("status_reply", "py-1")]
    check("status reply echoes req", h["req"] == 1 and h["status"] in ("queued", "running", "ok"),
          h)

    # a task error is a result, not a failure of the protocol
    c.submit("py-3", "is_prime", ["seven"])
    h, _ = c.result("py-3")
    check("bad argument gives status error with TypeError",
          h["status"] == "error" and h["etype"] == "TypeError", h)
    check("§6.6: an error result has etype, msg, attempts and pid",
          h.get("msg") and h.get("attempts") == 1 and h.get("pid", 0) > 0, h)

    # §6.3, §6.4.1: what forqd says of a job it does not know
    h, _ = c.call(dict(cmd="status", id="py-never"))
    check("§6.3: status of an unknown job is unknown, with id, status and req only",
          h["status"] == "unknown" and set(h) == {"v", "cmd", "id", "status", "req"}, h)
    c.send(dict(cmd="fetch", id="py-never"))
    h, p = c.result("py-never")
    check("§6.4.1: fetch of an unknown job answers result unknown, code unknown_job",
          h["status"] == "unknown" and h["code"] == "unknown_job" and h.get("msg") and not p, h)
    h, _ = c.call(dict(cmd="cancel", id="py-never"))
    check("§6.2: cancel of an unknown job says unknown",
          h["cmd"] == "cancel_reply" and h["outcome"] == "unknown", h)

    # a finished job: fetch replays its result; cancel says finished with its status
    c.send(dict(cmd="fetch", id="py-1"))
    h, p = c.result("py-1")
    first, _ = got[("result", "py-1")]
    check("§6.4.1: fetch of a finished job sends the same result header and frame again",
          h == first and p == [25997], (h, first))
    h, _ = c.call(dict(cmd="cancel", id="py-1"))
    check("§6.2: cancel of a finished job says finished with its status, no pid",
          h["outcome"] == "finished" and h.get("status") == "ok" and "pid" not in h, h)
    h, _ = c.call(dict(cmd="status", id="py-1"))
    check("§6.3: status of a finished job: its state, task and attempts",
          h["status"] == "ok" and h.get("task") == "count_primes" and h.get("attempts") == 1,
          h)

    # the id of a finished job may be reused
    c.submit("py-1", "echo", ["again"])
    h, p = c.result("py-1")
    check("§6.1: a finished job's id can be reused", h["status"] == "ok" and p == [["again"]],
          (h, p))


def test_queue(c):
    """Both workers busy: a queued job's status, its cancel, a queue deadline, duplicate ids."""
    c.submit("py-b1", "sleep", [30], timeout_ms=60000)
    c.submit("py-b2", "sleep", [30], timeout_ms=60000)
    busy = c.wait_running("py-b1") and c.wait_running("py-b2")
    check("two sleep jobs occupy both workers", busy)
    c.submit("py-q", "sleep", [0])
    h, _ = c.call(dict(cmd="status", id="py-q"))
    check("§6.3: a queued job's status carries priority 5 (the default) and no attempts",
          h["status"] == "queued" and h.get("priority") == 5 and "attempts" not in h, h)
    c.submit("py-q0", "sleep", [0], priority=0)
    h, _ = c.call(dict(cmd="status", id="py-q0"))
    check("§4.1: priority 0 is present in status_reply", h.get("priority") == 0, h)

    # a duplicate of a queued job's id is an error, and gets no result of its own
    c.send(dict(cmd="submit", id="py-q", task="echo", req=77), pack([1]))
    h, _ = c.recv()
    check("§6.1: a duplicate id gets error duplicate_id, with id and req",
          h["cmd"] == "error" and h["code"] == "duplicate_id" and h["id"] == "py-q"
          and h["req"] == 77, h)

    h, _ = c.call(dict(cmd="cancel", id="py-q"))
    check("§6.2: cancel of a queued job says dequeued", h.get("outcome") == "dequeued", h)
    h, _ = c.result("py-q")
    check("§6.6: its result is cancelled, with a msg, no attempts and no pid",
          h["status"] == "cancelled" and h.get("msg") and "attempts" not in h and "pid" not in h,
          h)

    c.submit("py-dl", "sleep", [0], deadline_ms=50)
    h, _ = c.result("py-dl")
    check("§6.6: a queue deadline gives timeout, code deadline, no attempts",
          h["status"] == "timeout" and h.get("code") == "deadline" and "attempts" not in h, h)

    c.send(dict(cmd="cancel", id="py-q0"))
    for id in ("py-b1", "py-b2"):
        h, _ = c.call(dict(cmd="cancel", id=id))
        check("§6.2: cancel of running job %s says killing, with the pid" % id,
              h.get("outcome") == "killing" and h.get("pid", 0) > 0, h)
        h, _ = c.result(id)
        check("and its result says cancelled, with attempts and pid",
              h["status"] == "cancelled" and h.get("attempts") == 1 and h.get("pid", 0) > 0, h)


def test_progress(c, watcher):
    """§6.4.2 with the built-in count_primes over 2^22 numbers; a second client fetches it."""
    n = 1 << 22
    expect = primes_below(n)
    c.submit("py-prog", "count_primes", [0, n])
    c.send(dict(cmd="ping", req=4242))  # its pong says the submit is in: then the fetch
    reports, result = [], None
    while result is None:
        h, p = c.recv(60, skip=())
        if h is None:
            break
        if h["cmd"] == "pong" and h.get("req") == 4242:
            watcher.send(dict(cmd="fetch", id="py-prog"))
        elif h["cmd"] == "progress" and h["id"] == "py-prog":
            reports.append(h)
        elif h["cmd"] == "result" and h["id"] == "py-prog":
            result = (h, p)
    check("§11: count_primes(0, 2^22) is right",
          result is not None and result[0]["status"] == "ok" and result[1] == [expect],
          (result, expect))
    dones = [r["done"] for r in reports]
    check("§6.4.2: progress reports came before the result, done rising",
          len(reports) >= 2 and dones == sorted(set(dones)), dones)
    check("§6.4.2: the first report is after 2^20 numbers, the last one done == total",
          reports and dones[0] == 1 << 20 and dones[-1] == n
          and all(r.get("total") == n for r in reports), reports)
    check("§6.4.2: each report has a text like '... primes so far'",
          reports and all(r.get("msg", "").endswith("primes so far") for r in reports), reports)
    seen, wresult = [], None
    while wresult is None:
        h, p = watcher.recv(30, skip=("pong",))
        if h is None:
            break
        if h["cmd"] == "progress":
            seen.append(h["done"])
        elif h["cmd"] == "result":
            wresult = (h, p)
    check("§6.4.1: a fetcher of a running job gets its progress and its result",
          wresult is not None and wresult[1] == [expect] and seen and seen[-1] == n,
          (seen, wresult))

    # a short range reports nothing; the submitter's own fetch of a running job adds nothing
    c.submit("py-short", "count_primes", [0, (1 << 20) - 1])
    c.send(dict(cmd="fetch", id="py-short"))
    h, _ = c.recv(30, skip=("pong",))
    check("§6.4.2: count_primes over fewer than 2^20 numbers sends no progress",
          h is not None and h["cmd"] == "result" and h["id"] == "py-short", h)
    check("§6.4.1: a fetch by the submitter of its running job gets no answer of its own",
          c.quiet(0.3))


def test_builtin_tasks(c):
    """§11: arguments, results and errors of the built-in tasks."""
    def run(task, args):
        id = "py-t%d" % run.n
        run.n += 1
        c.submit(id, task, args)
        h, p = c.result(id)
        return h["status"], (p[0] if p else (h.get("etype"), h.get("msg", "")))
    run.n = 0
    check("§11 echo returns the args as sent, a single value too",
          run("echo", [1, "a", None, {"k": [True]}]) == ("ok", [1, "a", None, {"k": [True]}])
          and run("echo", 7) == ("ok", 7))
    check("§11 sleep(0.01) is nil; a string is TypeError; -1 is ValueError",
          run("sleep", [0.01]) == ("ok", None) and run("sleep", ["x"])[1][0] == "TypeError"
          and run("sleep", [-1])[1][0] == "ValueError")
    st, r = run("is_prime", [1, 2])
    check("§11 a wrong number of arguments is TypeError",
          st == "error" and r[0] == "TypeError" and "takes 1 argument but 2 were given" in r[1],
          r)
    check("§11 is_prime: 7 true, 1 false, -3 false, 2^63 OverflowError",
          run("is_prime", [7]) == ("ok", True) and run("is_prime", [1]) == ("ok", False)
          and run("is_prime", [-3]) == ("ok", False)
          and run("is_prime", [2**63])[1][0] == "OverflowError")
    check("§11 count_primes: [10, 0] is 0, a negative bound ValueError",
          run("count_primes", [10, 0]) == ("ok", 0)
          and run("count_primes", [-1, 5])[1][0] == "ValueError")
    check("§11 sum_squares: [10] is 285, [-1] ValueError, [2^40] OverflowError",
          run("sum_squares", [10]) == ("ok", 285)
          and run("sum_squares", [-1])[1][0] == "ValueError"
          and run("sum_squares", [2**40])[1][0] == "OverflowError")
    path = os.path.join(os.environ["FORQ_INTEROP_TMP"], "sha.txt")
    with open(path, "wb") as f:
        f.write(b"forq\n")
    check("§11 sha256 of a string, of bytes and of a file",
          run("sha256", ["abc"]) == ("ok", hashlib.sha256(b"abc").hexdigest())
          and run("sha256", [b"\x00\xff"]) == ("ok", hashlib.sha256(b"\x00\xff").hexdigest())
          and run("sha256", [{"path": path}]) == ("ok", hashlib.sha256(b"forq\n").hexdigest()))
    check("§11 sha256 errors: a map without path TypeError, no such file FileNotFoundError, "
          "an integer TypeError",
          run("sha256", [{"file": path}])[1][0] == "TypeError"
          and run("sha256", [{"path": path + ".none"}])[1][0] == "FileNotFoundError"
          and run("sha256", [5])[1][0] == "TypeError")
    c.submit("py-exec", "exec", [{"argv": ["true"]}])
    h, _ = c.result("py-exec")
    check("§11 exec without --allow-exec is rejected task_disabled",
          h["status"] == "rejected" and h["code"] == "task_disabled", h)
    c.submit("py-chunk", "is_prime", [[7], ["x"], [8]], chunk=True)
    h, p = c.result("py-chunk")
    check("§6.1.1 a chunk's result has one entry per call, errors included",
          h["status"] == "ok" and p[0][0] == [0, True] and p[0][2] == [0, False]
          and p[0][1][0] == 1 and p[0][1][1] == "TypeError", p)


# ---- headers, frames and errors ----

def test_headers(c):
    ext = msgpack.ExtType(5, b"ab")
    h, _ = c.call(dict(cmd="ping", x_bin=b"\x00\x01", x_float=1.5, x_nil=None, x_ext=ext,
                       x_neg=-5, x_bool=True, x_str="s", x_big=2**64 - 1))
    check("§4: unknown keys are ignored whatever their scalar type",
          h is not None and h["cmd"] == "pong", h)
    c.send(dict(cmd="ping", x_list=[1], req=3))
    h, _ = c.recv()
    check("§4/§6.7: a non-empty array under an unknown key is too_deep (found before req is "
          "read: not echoed)", h["cmd"] == "error" and h["code"] == "too_deep" and "req" not in h,
          h)
    h, _ = c.call(dict(cmd="ping", priority="5"))
    h2, _ = c.call(dict(cmd="ping", priority=10))
    check("§4: a known key with a value of the wrong type or out of bounds is bad_field, even "
          "where the command does not use it",
          h and h.get("code") == "bad_field" and h2 and h2.get("code") == "bad_field", (h, h2))

    def code_of(header_bytes, *frames):
        c.send(header_bytes, *frames)
        h, _ = c.recv()
        return h.get("code") if h and h["cmd"] == "error" else h

    packb = msgpack.packb
    check("§4: v \"1\", v -1 and v 1.0 are bad_field; no v is missing_field; v 2 bad_version",
          code_of(packb({"v": "1", "cmd": "ping"})) == "bad_field"
          and code_of(packb({"v": -1, "cmd": "ping"})) == "bad_field"
          and code_of(packb({"v": 1.0, "cmd": "ping"})) == "bad_field"
          and code_of(packb({"cmd": "ping"})) == "missing_field"
          and code_of(packb({"v": 2, "cmd": "ping"})) == "bad_version")
    check("§4: cmd unknown is unknown_command, cmd 5 bad_field, no cmd missing_field",
          code_of(packb({"v": 1, "cmd": "frobnicate"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": 5})) == "bad_field"
          and code_of(packb({"v": 1})) == "missing_field")
    check("§6: worker and broker commands from a client are unknown_command, whatever their "
          "fields",
          code_of(packb({"v": 1, "cmd": "ready"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "pong"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "dict_reply"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "done", "id": "x", "status": "ok"}))
          == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "job", "id": "x", "task": "echo"}), pack([]))
          == "unknown_command")
    check("§6: ... missing fields or not",
          code_of(packb({"v": 1, "cmd": "done"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "result", "id": "x"})) == "unknown_command"
          and code_of(packb({"v": 1, "cmd": "progress"})) == "unknown_command")
    check("§4/§9: a header over 4096 bytes is too_large; not a map, 33 entries or a "
          "non-string key is bad_header",
          code_of(packb({"v": 1, "cmd": "ping", "x": "y" * 5000})) == "too_large"
          and code_of(packb([1, "ping"])) == "bad_header"
          and code_of(packb(dict({"v": 1, "cmd": "ping"},
                                 **{"k%d" % i: i for i in range(31)}))) == "bad_header"
          and code_of(packb({"v": 1, "cmd": "ping", 5: 1})) == "bad_header")
    check("§9: a frame that is not msgpack is bad_message",
          code_of(b"\xc1") == "bad_message" and code_of(b"\x81\xa1v") == "bad_message")

    # §6.7: req and id are echoed when readable
    c.send(dict(cmd="submit", id="bad id!", task="echo", req=5), pack([]))
    h, _ = c.recv()
    check("§6.7: an invalid id is bad_field and not echoed; req is",
          h["code"] == "bad_field" and "id" not in h and h.get("req") == 5, h)
    c.send(dict(cmd="submit", priority=10, id="bad id!", task="echo", req=6), pack([]))
    h, _ = c.recv()
    check("§6.7: ... whichever field failed first",
          h["code"] == "bad_field" and "id" not in h and h.get("req") == 6, h)
    c.send(dict(cmd="submit", id="py-e1", task="echo", req=-1), pack([]))
    h, _ = c.recv()
    check("§6.7: a negative req is bad_field and not echoed; a valid id is",
          h["code"] == "bad_field" and "req" not in h and h.get("id") == "py-e1", h)

    # §3: frame counts
    h, _ = c.call(dict(cmd="ping"), pack(1))
    check("§3: ping with a payload frame is bad_frames", h.get("code") == "bad_frames", h)
    c.send(dict(cmd="submit", id="py-f2", task="echo", req=6), pack(1), pack(2))
    h, _ = c.recv()
    check("§3: submit with two payload frames is bad_frames and gets no result",
          h.get("code") == "bad_frames" and h.get("id") == "py-f2" and c.quiet(0.2), h)
    c.sock.send(b"")
    frames = c.raw()
    check("§3: a DEALER's lone empty frame is taken as a REQ delimiter: bad_frames, and the "
          "reply starts with an empty frame",
          frames is not None and len(frames) == 2 and frames[0] == b""
          and msgpack.unpackb(frames[1]).get("code") == "bad_frames", frames)

    # §6.1: result storage names and keys
    def store_answer(**fields):
        id = "py-s%d" % store_answer.n
        store_answer.n += 1
        c.send(dict(cmd="submit", id=id, task="echo", **fields), pack([1]))
        h, _ = c.recv()
        return h["cmd"], h.get("status") or h.get("code"), h.get("code")
    store_answer.n = 0
    check("§6.1: only one of name/key, a bad dict name or an empty/NUL key: rejected bad_store",
          store_answer(name="py") == ("result", "rejected", "bad_store")
          and store_answer(key="k") == ("result", "rejected", "bad_store")
          and store_answer(name="bad name", key="k") == ("result", "rejected", "bad_store")
          and store_answer(name="", key="k") == ("result", "rejected", "bad_store")
          and store_answer(name="py", key="") == ("result", "rejected", "bad_store")
          and store_answer(name="py", key="a\0b") == ("result", "rejected", "bad_store"))
    check("§6.1: a name over 64 bytes, a key over 1024 bytes or a non-string: the same answer",
          store_answer(name="n" * 65, key="k") == ("result", "rejected", "bad_store")
          and store_answer(name="py", key="k" * 1025) == ("result", "rejected", "bad_store")
          and store_answer(name="py", key=5) == ("result", "rejected", "bad_store")
          and c.quiet(0.2))
    c.submit("py-store", "echo", ["kept"], name="py-results", key="k1")
    h, _ = c.result("py-store")
    h2, p = c.dict("get", "py-results", key="k1")
    check("§6.1: a stored result is in the dict", h["status"] == "ok" and "code" not in h
          and h2.get("found") is True and p == [["kept"]], (h, h2, p))


def test_sizes(c, endpoint):
    """§3.1: an args frame over --max-payload is rejected; a frame over the limit drops the
    connection without a reply."""
    c.submit("py-big", "echo", b"x" * (MAX_PAYLOAD + 100))
    h, _ = c.result("py-big")
    check("§3.1: an args frame over --max-payload (within the frame limit) is rejected "
          "too_large", h["status"] == "rejected" and h["code"] == "too_large", h)

    mon = c.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED)
    c.send(dict(cmd="submit", id="py-huge", task="echo", req=8), b"x" * (FRAME_LIMIT + 1))
    events = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            e["event"] == zmq.EVENT_CONNECTED for e in events[1:]):
        if mon.poll(100):
            events.append(recv_monitor_message(mon))
    c.sock.disable_monitor()
    mon.close(0)
    kinds = [e["event"] for e in events]
    check("§3.1: a frame over --max-payload + 4096 drops the connection (and ZeroMQ "
          "reconnects)",
          zmq.EVENT_DISCONNECTED in kinds and kinds[-1] == zmq.EVENT_CONNECTED, kinds)
    check("§3.1: ... and gets no reply", c.quiet(0.3))
    c.send(dict(cmd="status", id="py-huge", req=9))
    h, _ = c.recv()
    check("§3.1: the oversized job was never seen", h.get("status") == "unknown", h)


def test_routing(endpoint):
    """§2.1: a second socket with a routing id in use takes it over; results that finish while
    a client is away are not resent, fetch gets them; results after a reconnection arrive."""
    a = Client(endpoint, b"py-same")
    h, _ = a.call(dict(cmd="ping"))
    b = Client(endpoint, b"py-same")
    time.sleep(0.2)
    h, _ = b.call(dict(cmd="ping"))
    check("§2.1: a second socket with a routing id already connected takes it over",
          h is not None and h["cmd"] == "pong", h)
    a.send(dict(cmd="ping", req=777))
    h, _ = a.recv(1.0, skip=())
    check("§2.1: ... and the first one is answered no more", h is None, h)
    h, _ = b.call(dict(cmd="ping"))
    check("§2.1: ... while the new one still is", h is not None and h["cmd"] == "pong", h)
    a.close()
    b.close()

    away = Client(endpoint, b"py-away")
    away.submit("py-away-1", "sleep", [0.3])
    away.call(dict(cmd="ping"))  # the submit is in
    away.close()
    time.sleep(0.8)  # py-away-1 finishes while no connection has the id
    back = Client(endpoint, b"py-away")
    back.send(dict(cmd="ping", req=1))
    got = []
    while True:
        h, _ = back.recv(0.5, skip=())
        if h is None:
            break
        got.append(h["cmd"])
    check("§2.1: a result that finished while the client was away is not resent",
          got == ["pong"], got)
    back.send(dict(cmd="fetch", id="py-away-1"))
    h, p = back.result("py-away-1")
    check("§2.1: fetch after the reconnection gets it", h is not None and h["status"] == "ok"
          and p == [None], h)
    back.submit("py-away-2", "sleep", [0.8])
    back.call(dict(cmd="ping"))
    back.close()
    again = Client(endpoint, b"py-away")
    again.call(dict(cmd="ping"))
    h, _ = again.result("py-away-2", timeout=10)
    check("§2.1: a result that finishes after the reconnection arrives by itself",
          h is not None and h["status"] == "ok", h)
    h, p = again.call(dict(cmd="stats"))
    check("§2.1: the result nobody could take was counted undeliverable",
          p and p[0].get("undeliverable", 0) >= 1, p)
    again.close()


# ---- the dict service ----

def test_shared_types(c, other, endpoint):
    """§6.9: queues, locks and events, with the `dict` command."""
    h, p = c.dict("queue.get", "py-q")
    check("§6.9.1: get of an empty queue: found false, code empty, no value frame",
          h.get("found") is False and h.get("code") == "empty" and p == [], (h, p))
    for item in ("apple", "banana"):
        h, _ = c.dict("queue.put", "py-q", item)
    h2, _ = c.dict("queue.put", "py-q", "first", front=True)
    check("§6.9.1: put: found true and count the items now; front puts first",
          h.get("found") is True and h.get("count") == 2 and h2.get("count") == 3, (h, h2))
    h, p = c.dict("queue.range", "py-q", start=1, limit=1)
    check("§6.9.1: range: the items from start, count, more",
          p == [["apple"]] and h.get("count") == 1 and h.get("more") is True, (h, p))
    h, p = c.dict("queue.get", "py-q")
    check("§6.9.1: get takes the front: found, count left, the item",
          h.get("found") is True and p == ["first"] and h.get("count") == 2, (h, p))
    h, _ = c.dict("queue.len", "py-q")
    check("§6.9.1: len", h.get("count") == 2, h)
    h, _ = c.dict("queue.clear", "py-q")
    check("§6.9.1: clear: count removed", h.get("count") == 2, h)
    h, _ = c.dict("queue.pop", "py-q")
    check("§6.9: an unknown op of a kind lists that kind's ops",
          h.get("code") == "bad_op" and "queue.put" in h.get("msg", "") and "incr" not in h["msg"],
          h)
    h, _ = c.dict("queue.put", "py-q")
    check("§6.8/6.9: a put without its item is bad_frames", h.get("code") == "bad_frames", h)
    # a blocked get is answered by the next put, and reaches only its consumer
    other.send(dict(cmd="dict", op="queue.get", name="py-w", block=True, timeout_ms=10000, req=77))
    time.sleep(0.2)
    h, _ = c.dict("queue.put", "py-w", {"n": 1})
    h2, p2 = other.recv()
    check("§6.9.1: a put hands its item to the consumer that waits (count 0)",
          h.get("count") in (None, 0) and h2.get("req") == 77 and p2 == [{"n": 1}], (h, h2, p2))
    other.send(dict(cmd="dict", op="queue.get", name="py-w", block=True, timeout_ms=200, req=78))
    h2, _ = other.recv()
    check("§6.9: a blocked get answers code empty after timeout_ms",
          h2.get("code") == "empty" and h2.get("found") is False, h2)
    # a consumer that goes away while it waits takes nothing with it
    gone = Client(endpoint, b"py-gone")
    gone.send(dict(cmd="dict", op="queue.get", name="py-g", block=True, req=1))
    time.sleep(0.2)
    gone.close()
    time.sleep(0.2)
    c.dict("queue.put", "py-g", "kept")
    h, p = c.dict("queue.get", "py-g")
    check("§6.9.1: an item is not lost to a consumer that disconnected while it waited",
          p == ["kept"], (h, p))
    # maxsize
    c.dict("queue.put", "py-m", 1, maxsize=1)
    h, _ = c.dict("queue.put", "py-m", 2, maxsize=1)
    check("§6.9.1: a put over maxsize: code full, nothing put",
          h.get("code") == "full" and h.get("found") is False and h.get("count") == 1, h)
    # locks
    h, _ = c.dict("lock.acquire", "py-l", lease_ms=300)
    t1 = h.get("token", 0)
    check("§6.9.2: acquire: found, token, lease_ms, count",
          h.get("found") is True and t1 > 0 and h.get("lease_ms") == 300 and h.get("count") == 1,
          h)
    h, _ = other.dict("lock.acquire", "py-l")
    check("§6.9.2: a held lock: code held", h.get("code") == "held" and h["found"] is False, h)
    h, _ = c.dict("set", "py-data", 1, key="k", lock="py-l", token=t1)
    check("§6.9.2: a fenced set while the token holds: done", h.get("found") is True, h)
    h, _ = c.dict("get", "py-data", key="k", lock="py-l", token=t1)
    check("§6.9.2: a fence on a read is bad_field", h.get("code") == "bad_field", h)
    h, _ = c.dict("set", "py-data", 1, key="k", lock="py-l")
    check("§6.9.2: a fence without token is missing_field", h.get("code") == "missing_field", h)
    other.send(dict(cmd="dict", op="lock.acquire", name="py-l", block=True, timeout_ms=5000,
                    req=79))
    h2, _ = other.recv()
    t2 = h2.get("token", 0)
    check("§6.9.2: the lease ends by itself; the waiting acquirer gets a larger token",
          h2.get("found") is True and t2 > t1, h2)
    h, _ = c.dict("set", "py-data", 2, key="k", lock="py-l", token=t1)
    check("§6.9.2: the old token's fenced set: error stale_token",
          h.get("cmd") == "error" and h.get("code") == "stale_token", h)
    h, _ = c.dict("lock.release", "py-l", token=t1)
    h2, _ = other.dict("lock.renew", "py-l", token=t2, lease_ms=1000)
    h3, _ = other.dict("lock.release", "py-l", token=t2)
    check("§6.9.2: release with a token that holds nothing: found false; renew, release: true",
          h.get("found") is False and h2.get("found") is True and h2.get("token") == t2
          and h3.get("found") is True, (h, h2, h3))
    h, _ = c.dict("lock.release", "py-l")
    check("§6.9.2: release without token: missing_field", h.get("code") == "missing_field", h)
    # events
    h, _ = c.dict("event.wait", "py-e")
    check("§6.9.3: wait without block: whether it is set", h.get("found") is False, h)
    other.send(dict(cmd="dict", op="event.wait", name="py-e", block=True, req=80))
    time.sleep(0.2)
    h, _ = c.dict("event.set", "py-e")
    h2, _ = other.recv()
    check("§6.9.3: set answers the waits (count) with found true",
          h.get("count") == 1 and h2.get("req") == 80 and h2.get("found") is True, (h, h2))
    h, _ = c.dict("event.clear", "py-e")
    check("§6.9.3: clear: found, whether it was set", h.get("found") is True, h)
    h, p = c.call(dict(cmd="dict", op="dicts"))
    names = [n for n, _ in p[0]] if p else []
    check("§6.9: queues, locks and events are not dicts", "py-data" in names
          and not any(n.startswith("py-q") or n.startswith("\x01") for n in names), names)


def test_dict(c, other):
    d = "py-d"
    h, p = c.dict("get", d, key="a")
    check("§6.8: get of a missing key: found false (present), no ver, no value frame",
          h.get("found") is False and "ver" not in h and p == [] and "code" not in h, (h, p))
    h, p = c.dict("set", d, 1, key="a")
    ver_a = h.get("ver", 0)
    check("§6.8: set: found true and the new ver, no value frame",
          h.get("found") is True and ver_a > 0 and p == [], h)
    h, p = c.dict("get", d, key="a")
    check("§6.8: get: found, ver and the value", h.get("found") and h["ver"] == ver_a and p == [1],
          (h, p))
    h, p = c.dict("has", d, key="a")
    check("§6.8: has: found and ver, no value", h.get("found") and h["ver"] == ver_a and p == [],
          (h, p))
    h, _ = c.dict("len", "py-none")
    check("§4.1: len of an empty dict leaves count (0) out, found false",
          "count" not in h and h.get("found") is False, h)
    h, _ = c.dict("clear", "py-none")
    check("§4.1: clear of an empty dict leaves count (0) out", "count" not in h, h)
    h, _ = c.dict("del", d, key="nothing")
    check("§6.8: del of a missing key: found false", h.get("found") is False, h)
    h, p = c.dict("setdefault", d, 2, key="a")
    check("§6.8: setdefault of an existing key: found true, the old value and ver",
          h.get("found") is True and p == [1] and h["ver"] == ver_a, (h, p))
    h, p = c.dict("setdefault", d, 3, key="b")
    check("§6.8: setdefault of a new key: found false, the value stored",
          h.get("found") is False and p == [3] and h["ver"] > ver_a, (h, p))
    h, p = c.dict("pop", d, key="b")
    h2, p2 = c.dict("pop", d, key="b")
    check("§6.8: pop: found, ver and the value; again: found false",
          h.get("found") and p == [3] and h2.get("found") is False and p2 == [], (h, h2))

    # incr: signed 64 bits
    h, p = c.dict("incr", d, key="n")
    h2, p2 = c.dict("incr", d, key="n", delta=-5)
    check("§6.8: incr of a missing key counts from 0; delta defaults to 1, may be negative",
          p == [1] and p2 == [-4] and h.get("found") is True, (p, p2))
    c.dict("set", d, I64_MAX - 1, key="big")
    h, p = c.dict("incr", d, key="big")
    h2, _ = c.dict("incr", d, key="big")
    h3, p3 = c.dict("get", d, key="big")
    check("§6.8: incr reaches 2^63-1; past it: error overflow, nothing changes",
          p == [I64_MAX] and h2["cmd"] == "error" and h2["code"] == "overflow"
          and p3 == [I64_MAX] and h3["ver"] == h["ver"], (p, h2, p3))
    c.dict("set", d, I64_MIN + 1, key="small")
    h, p = c.dict("incr", d, key="small", delta=-1)
    h2, _ = c.dict("incr", d, key="small", delta=-1)
    check("§6.8: incr reaches -2^63; below it: overflow",
          p == [I64_MIN] and h2.get("code") == "overflow", (p, h2))
    c.dict("set", d, 2**64 - 1, key="huge")
    h, _ = c.dict("incr", d, key="huge", delta=0)
    check("§6.8: incr of a stored integer above 2^63-1 is overflow", h.get("code") == "overflow",
          h)
    c.dict("set", d, "text", key="s")
    c.dict("set", d, 1.5, key="f")
    check("§6.8: incr of a string or a float is not_integer",
          c.dict("incr", d, key="s")[0].get("code") == "not_integer"
          and c.dict("incr", d, key="f")[0].get("code") == "not_integer")
    h, _ = c.dict("incr", d, key="n", delta=2**63)
    check("§4: a delta of 2^63 is bad_field", h.get("code") == "bad_field", h)
    h, _ = c.call(dict(cmd="dict", op="incr", name=d, key="n"), pack(5))
    check("§6.8: incr with a value frame is bad_frames", h.get("code") == "bad_frames", h)

    # cas
    h, _ = c.dict("cas", d, 1, key="c")
    check("§6.8: cas without ver is missing_field", h.get("code") == "missing_field", h)
    h, _ = c.dict("cas", d, 1, key="c", ver=0)
    ver_c = h.get("ver", 0)
    check("§6.8: cas ver 0 on a missing key stores it", h["cmd"] == "dict_reply"
          and h.get("found") is True and ver_c > 0 and "code" not in h, h)
    h, _ = c.dict("cas", d, 2, key="c", ver=0)
    check("§6.8: cas ver 0 on an existing key: dict_reply code conflict, current ver, found",
          h["cmd"] == "dict_reply" and h.get("code") == "conflict" and h["ver"] == ver_c
          and h.get("found") is True, h)
    h, _ = c.dict("cas", d, 2, key="nokey", ver=5)
    check("§6.8: cas on a missing key with a ver: conflict, ver 0 present, found false",
          h.get("code") == "conflict" and h.get("ver") == 0 and h.get("found") is False, h)
    h, _ = c.dict("cas", d, 2, key="c", ver=ver_c)
    check("§6.8: cas with the current ver stores", "code" not in h and h["ver"] > ver_c, h)

    # keys, NUL and names
    h, _ = c.dict("get", d, key="")
    h2, _ = c.dict("get", d, key="a\0b")
    h3, _ = c.dict("set", d, 1)
    check("§6.8: an empty key, a key with NUL, or none, is missing_field",
          h.get("code") == "missing_field" and h2.get("code") == "missing_field"
          and h3.get("code") == "missing_field", (h, h2, h3))
    h0, _ = c.dict("get", "", key="a")
    check("§6.8: an empty dict name is bad_field", h0.get("code") == "bad_field", h0)
    h, _ = c.dict("get", "bad name", key="a")
    h2, _ = c.call(dict(cmd="dict", name=d, key="a"))
    h3, _ = c.dict("frob", d, key="a")
    check("§6.8: a bad dict name is bad_field, no op missing_field, an unknown op bad_op",
          h.get("code") == "bad_field" and h2.get("code") == "missing_field"
          and h3.get("code") == "bad_op", (h, h2, h3))
    h, _ = c.call(dict(cmd="dict", op="get", name=d, key="a"), pack(1))
    h2, _ = c.call(dict(cmd="dict", op="set", name=d, key="a"))
    h3, _ = c.call(dict(cmd="dict", op="set", name=d, key="a"), b"\xc1")
    check("§6.8: a value frame with get, none with set: bad_frames; a bad value: bad_value",
          h.get("code") == "bad_frames" and h2.get("code") == "bad_frames"
          and h3.get("code") == "bad_value", (h, h2, h3))

    # update
    h, _ = c.dict("update", "py-u", {"x": 1, "y": 2, "x ": 3})
    check("§6.8: update: found true, count, ver", h.get("found") is True and h.get("count") == 3
          and h.get("ver", 0) > 0, h)
    h, _ = c.dict("update", "py-u", [1, 2])
    h2, _ = c.call(dict(cmd="dict", op="update", name="py-u"), msgpack.packb({1: 2}))
    h3, _ = c.dict("update", "py-u", {"": 1})
    check("§6.8: update of a non-map is bad_value; a non-string or empty key bad_key",
          h.get("code") == "bad_value" and h2.get("code") == "bad_key"
          and h3.get("code") == "bad_key", (h, h2, h3))
    h, _ = c.dict("update", "py-u", {})
    check("§6.8: update of an empty map: no count, a ver", "count" not in h and "ver" in h, h)

    # pages
    p_d = "py-page"
    for k in ("k1", "k2", "k3", "k4", "k5"):
        c.dict("set", p_d, k, key=k)
    c.dict("set", p_d, "again", key="k1")  # an overwrite keeps the place
    c.dict("del", p_d, key="k2")
    c.dict("set", p_d, "back", key="k2")  # deleted and added: to the end
    pages, cursor = [], None
    while True:
        fields = {"limit": 2}
        if cursor is not None:
            fields["key"] = cursor
        h, p = c.dict("keys", p_d, **fields)
        pages.append((h.get("count"), h.get("more"), h.get("key"), p[0]))
        if not h.get("more"):
            break
        cursor = h["key"]
    check("§6.8: keys pages of limit 2: count, more and the cursor; the last page has neither "
          "more nor key", pages == [(2, True, "k3", ["k1", "k3"]), (2, True, "k5", ["k4", "k5"]),
                                    (1, None, None, ["k2"])], pages)
    h, p = c.dict("items", p_d, limit=1)
    check("§6.8: items are [key, ver, value]", h.get("count") == 1 and h.get("more") is True
          and p[0][0][0] == "k1" and p[0][0][2] == "again" and p[0][0][1] > 0, p)
    h, p = c.dict("keys", p_d, limit=0)
    check("§6.8: limit 0 means the default page (all 5 here), more left out",
          h.get("count") == 5 and "more" not in h and "key" not in h and len(p[0]) == 5, h)
    h, p = c.dict("keys", "py-none")
    check("§6.8: keys of an absent dict: an empty array, no count", p == [[]]
          and "count" not in h, (h, p))
    h, _ = c.dict("keys", p_d, key="k2x")
    h2, _ = c.dict("keys", p_d, key="")
    check("§6.8: a cursor that is not a key (or is empty) is cursor_expired",
          h.get("code") == "cursor_expired" and h2.get("code") == "cursor_expired", (h, h2))
    # two updates, each frame under this forqd's small limit
    ha, _ = c.dict("update", "py-big", {"b%05d" % i: 0 for i in range(5001)})
    hb, _ = c.dict("update", "py-big", {"b%05d" % i: 0 for i in range(5001, 10001)})
    h1, p1 = c.dict("keys", "py-big")
    h2, p2 = c.dict("keys", "py-big", limit=20000)
    check("§6.8: without limit a page holds 1000 keys; over 10,000 means 10,000",
          ha.get("count") == 5001 and hb.get("count") == 5000 and h1.get("count") == 1000
          and h1.get("more") is True and h2.get("count") == 10000 and len(p2[0]) == 10000
          and h2.get("more") is True, (ha, hb, h1.get("count"), h2.get("count")))
    c.dict("clear", "py-big")

    # the dicts themselves: op dicts, no name, [name, keys] pairs in byte order of the names
    listed, pages, cursor = [], 0, None
    while True:
        fields = {"limit": 2}
        if cursor is not None:
            fields["key"] = cursor
        h, p = c.call(dict(cmd="dict", op="dicts", **fields))
        if h.get("cmd") != "dict_reply" or len(p) != 1 or h.get("count", 0) != len(p[0]):
            listed = None
            break
        listed += p[0]
        pages += 1
        if not h.get("more"):
            break
        cursor = h["key"]
        if cursor != p[0][-1][0]:
            listed = None
            break
    names = [n for n, _ in listed or []]
    lens = {n: c.dict("len", n)[0].get("count") for n in names}
    check("§6.8: dicts pages through every dict as [name, keys] in byte order of the names, the "
          "cursor the page's last name; py-page holds 5 keys, the cleared py-big is gone",
          listed is not None and pages == (len(names) + 1) // 2
          and names == sorted(names, key=lambda n: n.encode())
          and all(lens[n] == k for n, k in listed) and ["py-page", 5] in listed
          and "py-big" not in names, (pages, listed))
    h, p = c.call(dict(cmd="dict", op="dicts", key="py-big"))
    h2, _ = c.call(dict(cmd="dict", op="keys"))
    check("§6.8: a dicts cursor need not be a dict (py-big is gone); every other op needs a name",
          h.get("cmd") == "dict_reply" and [n for n, _ in p[0]] == [n for n in names if n > "py-big"]
          and h2.get("code") == "missing_field", (h, p, h2))

    # wait
    h, p = c.dict("wait", d, key="w", timeout_ms=100)
    check("§6.8: wait times out with code timeout (missing key: found false)",
          h.get("code") == "timeout" and h.get("found") is False and p == [], (h, p))
    c.dict("set", d, "v1", key="w")
    h, p = c.dict("wait", d, key="w", timeout_ms=100)
    check("§6.8: a timed-out wait on an existing key carries its ver and value",
          h.get("code") == "timeout" and h.get("found") is True and p == ["v1"] and h.get("ver"),
          (h, p))
    h, p = c.dict("wait", d, key="w", ver=1)
    check("§6.8: wait with a ver that differs answers at once, without code",
          "code" not in h and h.get("found") and p == ["v1"], (h, p))
    c.req += 1
    wreq = c.req
    c.send(dict(cmd="dict", op="wait", name=d, key="w", timeout_ms=10000, req=wreq))
    time.sleep(0.1)
    other.dict("set", d, "v2", key="w")
    h, p = c.recv(5)
    check("§6.8: a set by another client wakes the wait: found, ver and the value",
          h is not None and h["req"] == wreq and h.get("found") and p == ["v2"]
          and "code" not in h, (h, p))
    c.req += 1
    wreq = c.req
    c.send(dict(cmd="dict", op="wait", name=d, key="w", req=wreq))
    time.sleep(0.1)
    other.dict("del", d, key="w")
    h, p = c.recv(5)
    check("§6.8: a del wakes the wait (no timeout given): found false, no ver, no value",
          h is not None and h["req"] == wreq and h.get("found") is False and "ver" not in h
          and p == [] and "code" not in h, (h, p))


def main():
    tmp = tempfile.mkdtemp(prefix="forq-interop.")
    os.environ["FORQ_INTEROP_TMP"] = tmp
    endpoint = "ipc://%s/forqd.sock" % tmp
    log = open(os.path.join(tmp, "forqd.log"), "w")
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    forqd = subprocess.Popen([os.environ["FORQD"], "--listen", endpoint, "--workers", "2",
                              "--max-payload", str(MAX_PAYLOAD)], stderr=log, env=env)
    c = Client(endpoint, b"py-interop")
    other = Client(endpoint, b"py-other")
    try:
        # ping until forqd answers
        h = None
        for attempt in range(200):
            c.send(dict(cmd="ping", req=attempt))
            h, _ = c.recv(0.1, skip=())
            if h is not None:
                break
        check("ping answers pong", h and h["cmd"] == "pong" and h["msg"].startswith("forqd"), h)

        for test in (test_basics, test_queue):
            try:
                test(c)
            except Exception:
                check("%s ran to its end" % test.__name__, False, traceback.format_exc())

        # malformed input gets an error naming the problem
        c.sock.send(b"\xdd\xff\xff\xff\xff")
        h, _ = c.recv()
        check("a lying container gets bad_message",
              h["cmd"] == "error" and h["code"] == "bad_message", h)
        c.send(dict(cmd="submit", id="py-4", task="echo", req=9))
        h, _ = c.recv()
        check("submit without args frame gets bad_frames with req and id",
              h["code"] == "bad_frames" and h["req"] == 9 and h["id"] == "py-4", h)
        c.sock.send(msgpack.packb({"v": 2, "cmd": "ping"}))
        h, _ = c.recv()
        check("version 2 gets bad_version", h["code"] == "bad_version", h)

        for test, args in ((test_headers, (c,)), (test_builtin_tasks, (c,)),
                           (test_progress, (c, other)), (test_dict, (c, other)),
                           (test_shared_types, (c, other, endpoint)),
                           (test_routing, (endpoint,)), (test_sizes, (c, endpoint))):
            try:
                test(*args)
            except Exception:
                check("%s ran to its end" % test.__name__, False, traceback.format_exc())

        # stats
        h, payload = c.call(dict(cmd="stats"))
        stats = payload[0]
        check("stats reply carries the counters",
              h["cmd"] == "stats_reply" and stats["ok"] >= 1 and "count_primes" in stats["tasks"],
              stats)
    finally:
        forqd.send_signal(signal.SIGTERM)
        rc = forqd.wait(timeout=30)
        check("forqd stops cleanly on SIGTERM", rc == 0, "exit %d" % rc)
        c.close()
        other.close()
    print("interop: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
