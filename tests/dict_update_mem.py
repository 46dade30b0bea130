#!/usr/bin/python3
"""What one dict `update` costs forqd in memory (issue 11 item 3): starts $FORQD (or
build/daemon/forqd) on a private ipc endpoint, sends one update of N keys, and prints the frame's
size, forqd's peak resident growth while it ran (VmHWM, reset to the current RSS just before by
writing 5 to /proc/PID/clear_refs), its resident growth after it, and its resident size after the
dict is cleared again and forqd has been idle for a while (the broker's idle malloc_trim).

    /usr/bin/python3 tests/dict_update_mem.py [--keys N] [--value BYTES] [--log always|no|none]

A measurement, not a test: the regression test is check_dictsvc's test_update_memory_bound."""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--value", type=int, default=8, help="bytes of each packed value")
    ap.add_argument("--log", default="none", help="fsync policy of a state dir, or none")
    ap.add_argument("--forqd", default=os.environ.get("FORQD", "build/daemon/forqd"))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="forq-mem.")
    ep = "ipc://%s/forqd.sock" % tmp
    args = [a.forqd, "--listen", ep, "--workers", "1"]
    if a.log != "none":
        args += ["--state-dir", tmp + "/state", "--fsync", a.log]
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    d = subprocess.Popen(args, env=env, stderr=open(tmp + "/forqd.log", "w"))
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    req = [0]

    def call(op, value=None, timeout=60.0):
        req[0] += 1
        h = dict(v=1, cmd="dict", op=op, name="m", req=req[0])
        frames = [msgpack.packb(h)] + ([value] if value is not None else [])
        s.send_multipart(frames)
        while True:  # skip the pongs of the start-up pings
            if not s.poll(int(timeout * 1000)):
                sys.exit("no reply to %s" % op)
            h = msgpack.unpackb(s.recv_multipart()[0])
            if h.get("req") == req[0]:
                return h

    for _ in range(100):  # until it answers
        s.send_multipart([msgpack.packb(dict(v=1, cmd="ping"))])
        if s.poll(100):
            s.recv_multipart()
            break
    # the map: keys k0000000.. (8 bytes), values bin of `value - 2` bytes (packed: `value` bytes)
    body = b"x" * max(0, a.value - 2)
    m = {("k%07d" % i): body for i in range(a.keys)}
    frame = msgpack.packb(m, use_bin_type=True)
    time.sleep(0.3)
    base = status(d.pid)
    with open("/proc/%d/clear_refs" % d.pid, "w") as f:
        f.write("5")  # VmHWM := VmRSS now
    t0 = time.monotonic()
    r = call("update", frame)
    dt = time.monotonic() - t0
    after = status(d.pid)
    assert r.get("cmd") == "dict_reply", r
    r = call("clear")
    time.sleep(2.5)  # idle: the broker's trim runs within a second or two
    cleared = status(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    subprocess.call(["rm", "-rf", tmp])
    f = len(frame)
    peak = after["VmHWM"] - base["VmRSS"]
    grow = after["VmRSS"] - base["VmRSS"]
    print("update of %d keys, values %d B packed, log %s: frame %d B (%.2f MiB), %.0f ms" %
          (a.keys, a.value, a.log, f, f / 2**20, dt * 1e3))
    print("  RSS before %d KiB; peak +%d KiB (%.1fx frame); after +%d KiB (%.1fx); "
          "after clear and idle +%d KiB" %
          (base["VmRSS"], peak, peak * 1024 / f, grow, grow * 1024 / f,
           cleared["VmRSS"] - base["VmRSS"]))


main()
