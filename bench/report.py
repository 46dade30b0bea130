"""scripts/bench's report: reads the values it recorded (DIR/<placement>/<metric>, one number a
line, one line a run), prints the table - median, min-max, ratio forq/peer and each target of
issue 5 met or missed - and writes the same as JSON.

    report.py VALUES_DIR OUT.json RUNS SMOKE
    report.py --markdown RESULTS.json       the README's table, from a written result

With SMOKE=1 it also checks that every workload yielded positive numbers (exit 1 if not): the
smoke run asserts nothing about speed, only that the suite runs and its output is well-formed."""
import json
import os
import platform
import statistics
import sys
import time


def load(root):
    data = {}
    for placement in sorted(os.listdir(root)):
        d = os.path.join(root, placement)
        data[placement] = {}
        for metric in sorted(os.listdir(d)):
            with open(os.path.join(d, metric)) as f:
                data[placement][metric] = [float(x) for x in f.read().split()]
    return data


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def fmt(x):
    if x >= 100:
        return "{:,.0f}".format(x)
    return "{:.3g}".format(x)


def cell(s):
    if s is None:
        return "-"
    if s["min"] == s["max"]:
        return fmt(s["median"])
    return "%s (%s-%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))


MARKDOWN_ROWS = [
    # (label, unit, forq metric, [(peer label, metric)], higher is better)
    ("1 tiny jobs, 1,000 in flight", "jobs/s", "forq.jobs",
     [("ProcessPoolExecutor", "ppe.jobs"), ("Pool.apply_async", "pool.jobs")], True),
    ("2 submit+wait, p50", "µs", "forq.p50",
     [("ProcessPoolExecutor", "ppe.p50"), ("raw ZeroMQ echo", "zmq.p50")], False),
    ("2 submit+wait, p99", "µs", "forq.p99",
     [("ProcessPoolExecutor", "ppe.p99"), ("raw ZeroMQ echo", "zmq.p99")], False),
    ("3 map, 1M tiny items", "items/s", "forq.map",
     [("PPE.map(chunksize=1000)", "ppe.map"), ("Pool.map", "pool.map")], True),
    ("4 primes, 64 chunks: efficiency", "", "forq.efficiency",
     [("ProcessPoolExecutor", "ppe.efficiency")], True),
    ("5 dict get, 1 client", "ops/s", "forq.dict1.get",
     [("Manager().dict()", "manager.dict1.get"), ("redis-benchmark", "redis.dict1.get")], True),
    ("5 dict set, 1 client", "ops/s", "forq.dict1.set",
     [("Manager().dict()", "manager.dict1.set"), ("redis-benchmark", "redis.dict1.set")], True),
    ("5 dict incr, 1 client", "ops/s", "forq.dict1.incr",
     [("Manager().dict()", "manager.dict1.incr"), ("redis-benchmark", "redis.dict1.incr")], True),
    ("5 dict get, 50 clients", "ops/s", "forq.dict50.get",
     [("Manager().dict()", "manager.dict50.get"), ("redis-benchmark", "redis.dict50.get")], True),
    ("5 dict set, 50 clients", "ops/s", "forq.dict50.set",
     [("Manager().dict()", "manager.dict50.set"), ("redis-benchmark", "redis.dict50.set")], True),
    ("5 dict incr, 50 clients", "ops/s", "forq.dict50.incr",
     [("Manager().dict()", "manager.dict50.incr"), ("redis-benchmark", "redis.dict50.incr")],
     True),
    # ---- 5b. the broker's capacity (issue 17) ----
    ("5b dict get, 1 thread, 50 in flight", "ops/s", "forq.dict50i.get",
     [("redis-benchmark -c 50", "redis.dict50.get")], True),
    ("5b dict set, 1 thread, 50 in flight", "ops/s", "forq.dict50i.set",
     [("redis-benchmark -c 50", "redis.dict50.set")], True),
    ("5b dict incr, 1 thread, 50 in flight", "ops/s", "forq.dict50i.incr",
     [("redis-benchmark -c 50", "redis.dict50.incr")], True),
    ("5b dict get, 50 connections, 1 event loop", "ops/s", "forq.dict50l.get",
     [("redis-benchmark -c 50", "redis.dict50.get")], True),
    ("5b dict set, 50 connections, 1 event loop", "ops/s", "forq.dict50l.set",
     [("redis-benchmark -c 50", "redis.dict50.set")], True),
    ("5b dict incr, 50 connections, 1 event loop", "ops/s", "forq.dict50l.incr",
     [("redis-benchmark -c 50", "redis.dict50.incr")], True),
    ("5b dict get, pipelined, 800 in flight", "ops/s", "forq.pipe.get",
     [("redis-benchmark -c 50 -P 16", "redis.pipe16.get")], True),
    ("5b dict set, pipelined, 800 in flight", "ops/s", "forq.pipe.set",
     [("redis-benchmark -c 50 -P 16", "redis.pipe16.set")], True),
    ("5b dict incr, pipelined, 800 in flight", "ops/s", "forq.pipe.incr",
     [("redis-benchmark -c 50 -P 16", "redis.pipe16.incr")], True),
    ("5b dict mget, 16 keys a request, 50 in flight", "keys/s", "forq.multi16.mget",
     [("redis-benchmark -c 50 -P 16 GET", "redis.pipe16.get")], True),
    ("5b dict mset, 16 keys a request, 50 in flight", "keys/s", "forq.multi16.mset",
     [("redis-benchmark -c 50 -P 16 SET", "redis.pipe16.set")], True),
    ("5c dict get from the client-side cache", "ops/s", "forq.cache.get",
     [("Manager().dict() get", "manager.dict1.get")], True),
    ("5c a set to the copy gone at another client, p50", "µs", "forq.inval_p50", [], False),
    ("5c the same, p99", "µs", "forq.inval_p99", [], False),
    ("5d one synchronous dict get, p50", "µs", "forq.get_p50",
     [("raw ZeroMQ DEALER/ROUTER echo", "zmq2.p50")], False),
    ("5d one synchronous dict get, p99", "µs", "forq.get_p99",
     [("raw ZeroMQ DEALER/ROUTER echo", "zmq2.p99")], False),
    ("6 crash to replacement READY", "µs", "forq.replace_us", [], False),
    ("8 tiny jobs over tcp with CURVE", "jobs/s", "curve.jobs",
     [("the same, plaintext tcp", "tcp.jobs")], True),
    ("8 submit+wait over tcp with CURVE, p50", "µs", "curve.p50",
     [("the same, plaintext tcp", "tcp.p50")], False),
    # ---- 9. the Python package (issue 14) ----
    ("9 Python: tiny jobs, 1,000 in flight", "jobs/s", "py.jobs",
     [("ProcessPoolExecutor", "ppe.jobs"), ("Pool.apply_async", "pool.jobs")], True),
    ("9 Python: submit+result, p50", "µs", "py.p50", [("ProcessPoolExecutor", "ppe.p50")], False),
    ("9 Python: submit+result, p99", "µs", "py.p99", [("ProcessPoolExecutor", "ppe.p99")], False),
    ("9 Python: map, 1M tiny items", "items/s", "py.map",
     [("PPE.map(chunksize=1000)", "ppe.map"), ("Pool.map", "pool.map")], True),
    ("9 Python: Dict get, 1 thread", "ops/s", "py.dict1.get",
     [("Manager().dict()", "manager.dict1.get")], True),
    ("9 Python: Dict set, 1 thread", "ops/s", "py.dict1.set",
     [("Manager().dict()", "manager.dict1.set")], True),
    ("9 Python: Dict incr, 1 thread", "ops/s", "py.dict1.incr",
     [("Manager().dict()", "manager.dict1.incr")], True),
    ("9 Python: Dict get, 50 threads", "ops/s", "py.dict50.get",
     [("Manager().dict(), 50 processes", "manager.dict50.get")], True),
    ("9 Python: Dict set, 50 threads", "ops/s", "py.dict50.set",
     [("Manager().dict(), 50 processes", "manager.dict50.set")], True),
    ("9 Python: Dict incr, 50 threads", "ops/s", "py.dict50.incr",
     [("Manager().dict(), 50 processes", "manager.dict50.incr")], True),
    # ---- end of the Python package ----
    ("6 fresh workers", "/s", "forq.spawn", [("Python forkserver", "py.spawn")], True),
]
# ---- 9. Python tasks (issue 15) ----
MARKDOWN_ROWS += [
    ("9 Python worker death to replacement READY", "µs", "pyt.replace_us",
     [("mp forkserver Process start, module preloaded", "mpfs.start_us")], False),
    ("9 is_prime over range(1, 300000), 2 workers", "s", "pyt.isprime_s",
     [("PPE(2).map", "pyppe.isprime_s"), ("Pool(2).map", "pypool.isprime_s")], False),
    ("9 count_primes below 3M, 64 slices, 2 workers", "s", "pyt.count_s",
     [("PPE(2).map", "pyppe.count_s"), ("Pool(2).map", "pypool.count_s")], False),
    ("9 tiny Python jobs (libforq), 1,000 in flight", "jobs/s", "pyt.jobs",
     [("ProcessPoolExecutor", "ppe.jobs")], True),
]
PYTASK_METRICS = ["pyt.replace_us", "mpfs.start_us", "pyt.isprime_s", "pyt.count_s",
                  "pylocal.isprime_s", "pylocal.count_s", "pyppe.isprime_s", "pyppe.count_s",
                  "pypool.isprime_s", "pypool.count_s", "pyt.jobs"]


def pytask_rows(p, res, raw, rows, target, get, ratio):
    """Issue 15's rows and targets for placement p, when scripts/bench measured them."""
    if not get(p, "pyt.replace_us"):
        return
    rep, mp_start = get(p, "pyt.replace_us"), get(p, "mpfs.start_us")
    rows.append((p, "9 Python worker death to READY", "us", rep,
                 [("mp forkserver Process start (preloaded)", mp_start)],
                 "%.1fx faster" % ratio(mp_start, rep)))
    target(p, "9: Python replacement <= 3 ms", rep["median"], 3000, rep["median"] <= 3000)
    target(p, "9: >= 3x faster than mp forkserver start", ratio(mp_start, rep), 3,
           ratio(mp_start, rep) >= 3)
    for what, label in (("isprime", "9 is_prime over a range, 2 workers"),
                        ("count", "9 count_primes of list slices, 2 workers")):
        f, ppe, pool = (get(p, "pyt.%s_s" % what), get(p, "pyppe.%s_s" % what),
                        get(p, "pypool.%s_s" % what))
        local = raw[p].get("pylocal.%s_s" % what, [])
        eff = [l / (2 * x) for l, x in zip(local, raw[p].get("pyt.%s_s" % what, []))]
        res[p]["pyt.%s.efficiency" % what] = summary(eff)
        rows.append((p, label, "s", f, [("PPE(2).map", ppe), ("Pool(2).map", pool),
                                        ("one process", get(p, "pylocal.%s_s" % what))],
                     "efficiency %.2f; time %.2fx PPE, %.2fx Pool"
                     % (statistics.median(eff), ratio(f, ppe), ratio(f, pool))))
        if p == "default":
            target(p, "9: %s parallel efficiency >= 0.9" % what, statistics.median(eff), 0.9,
                   statistics.median(eff) >= 0.9)
        target(p, "9: %s at least as fast as PPE and Pool" % what,
               max(ratio(f, ppe), ratio(f, pool)), 1, max(ratio(f, ppe), ratio(f, pool)) <= 1)
    jobs, ppe_jobs = get(p, "pyt.jobs"), get(p, "ppe.jobs")
    rows.append((p, "9 tiny Python jobs (libforq)", "jobs/s", jobs,
                 [("ProcessPoolExecutor.submit", ppe_jobs)], "%.1fx PPE" % ratio(jobs, ppe_jobs)))
# ---- end of 9 ----
# ---- 10. shared queues (issue 16) ----
MARKDOWN_ROWS += [
    ("10 queue put+get, 1 producer, 1 consumer", "items/s", "forq.queue_tput",
     [("mp.Queue", "mpq.queue_tput"), ("Manager().Queue()", "managerq.queue_tput"),
      ("Redis LPUSH/BRPOP", "redisq.queue_tput")], True),
    ("10 the same, pipelined (64 in flight)", "items/s", "forq.queue_pipe",
     [("Manager().Queue()", "managerq.queue_tput"), ("Redis LPUSH/BRPOP", "redisq.queue_tput")],
     True),
    ("10 blocked get's wake-up, p50", "µs", "forq.wake_p50",
     [("mp.Queue", "mpq.wake_p50"), ("Manager().Queue()", "managerq.wake_p50"),
      ("Redis BRPOP", "redisq.wake_p50")], False),
]
QUEUE_METRICS = ["forq.queue_tput", "forq.queue_pipe", "forq.wake_p50", "forq.wake_p99",
                 "mpq.queue_tput", "mpq.wake_p50", "mpq.wake_p99", "managerq.queue_tput",
                 "managerq.wake_p50", "managerq.wake_p99", "redisq.queue_tput", "redisq.wake_p50",
                 "redisq.wake_p99"]


def queue_rows(p, rows, target, get, ratio):
    """Issue 16's rows and targets for placement p, when scripts/bench measured them."""
    if not get(p, "forq.queue_tput"):
        return
    f, fp = get(p, "forq.queue_tput"), get(p, "forq.queue_pipe")
    mq, mg, rd = get(p, "mpq.queue_tput"), get(p, "managerq.queue_tput"), get(p, "redisq.queue_tput")
    peers = [("mp.Queue", mq), ("Manager().Queue()", mg), ("Redis LPUSH/BRPOP", rd)]
    rows.append((p, "10 queue put+get, synchronous", "items/s", f, peers,
                 "%.2fx Manager, %.2fx Redis" % (ratio(f, mg), ratio(f, rd))))
    rows.append((p, "10 queue put+get, pipelined", "items/s", fp, peers,
                 "%.2fx Manager, %.2fx Redis, %.2fx mp.Queue"
                 % (ratio(fp, mg), ratio(fp, rd), ratio(fp, mq))))
    target(p, "10: queue >= 5x Manager().Queue()", ratio(fp, mg), 5, ratio(fp, mg) >= 5)
    target(p, "10: queue within 2x Redis", ratio(fp, rd), 0.5, ratio(fp, rd) >= 0.5)
    for q in ("p50", "p99"):
        w = get(p, "forq.wake_%s" % q)
        rows.append((p, "10 blocked get's wake-up: %s" % q, "us", w,
                     [("mp.Queue", get(p, "mpq.wake_%s" % q)),
                      ("Manager().Queue()", get(p, "managerq.wake_%s" % q)),
                      ("Redis BRPOP", get(p, "redisq.wake_%s" % q))],
                     "%.2fx Manager, %.2fx Redis" % (ratio(w, get(p, "managerq.wake_%s" % q)),
                                                     ratio(w, get(p, "redisq.wake_%s" % q)))))
# ---- end of 10 ----


# ---- 11. worker nodes (issue 18) ----
MARKDOWN_ROWS += [
    ("11 tiny jobs through one node hop (1 worker)", "jobs/s", "node.hop_tput",
     [("the head's own worker", "node.local_tput")], True),
    ("11 submit+wait through one node hop, p50", "µs", "node.hop_rtt_p50_us",
     [("the head's own worker", "node.local_rtt_p50_us")], False),
    ("11 10 ms jobs, head + 3 nodes (8 slots): of ideal", "", "node.scale4_of_ideal",
     [("head alone (2 slots)", "node.scale1_of_ideal")], True),
]
NODE_METRICS = ["node.local_tput", "node.hop_tput", "node.head_cpu_us_per_local_job",
                "node.head_cpu_us_per_hop_job", "node.node_cpu_us_per_hop_job",
                "node.local_rtt_p50_us", "node.local_rtt_p99_us", "node.hop_rtt_p50_us",
                "node.hop_rtt_p99_us", "node.hop_rtt_ratio", "node.scale1_of_ideal",
                "node.scale4_of_ideal"]


def node_rows(p, rows, target, get, ratio):
    """Issue 18's rows and targets for placement p, when scripts/bench measured them."""
    if not get(p, "node.hop_tput"):
        return
    ht, lt = get(p, "node.hop_tput"), get(p, "node.local_tput")
    rows.append((p, "11 tiny jobs through one node hop", "jobs/s", ht,
                 [("the head's own worker", lt)], "%.2fx local" % ratio(ht, lt)))
    for q in ("p50", "p99"):
        h, l = get(p, "node.hop_rtt_%s_us" % q), get(p, "node.local_rtt_%s_us" % q)
        rows.append((p, "11 round trip through one node hop: %s" % q, "us", h,
                     [("the head's own worker", l)], "%.2fx local" % ratio(h, l)))
    hc, lc, nc = (get(p, "node.head_cpu_us_per_hop_job"), get(p, "node.head_cpu_us_per_local_job"),
                  get(p, "node.node_cpu_us_per_hop_job"))
    rows.append((p, "11 head CPU per job through a node", "us", hc,
                 [("a local job", lc), ("the node's forqd", nc)], ""))
    rr = get(p, "node.hop_rtt_ratio")
    target(p, "11: a hop adds <= 1.5x to the round trip", rr["median"], 1.5, rr["median"] <= 1.5)
    s4, s1 = get(p, "node.scale4_of_ideal"), get(p, "node.scale1_of_ideal")
    rows.append((p, "11 10 ms jobs, head + 3 nodes: of ideal", "", s4,
                 [("head alone", s1)], ""))
    target(p, "11: scaling to 3 nodes >= 90% of ideal", s4["median"], 0.9, s4["median"] >= 0.9)
# ---- end of 11 ----


def markdown(path):
    with open(path) as f:
        doc = json.load(f)
    res = doc["results"]
    places = [p for p in ("default", "pinned") if p in res]
    print("| workload | unit | " + " | ".join("forq (%s)" % p for p in places) +
          " | peers (%s) |" % ", ".join(places))
    print("|---|---|" + "---|" * len(places) + "---|")
    for label, unit, fm, peers, _ in MARKDOWN_ROWS:
        cells = []
        for p in places:
            s = res[p].get(fm)
            cells.append("**%s**" % fmt(s["median"]) if s else "-")
        ptext = []
        for pl, pm in peers:
            vals = []
            for p in places:
                s, f = res[p].get(pm), res[p].get(fm)
                if s and f:
                    vals.append("%s (%.2f×)" % (fmt(s["median"]), f["median"] / s["median"]))
            ptext.append("%s %s" % (pl, " / ".join(vals)))
        print("| %s | %s | %s | %s |" % (label, unit, " | ".join(cells), "; ".join(ptext)))
    mem = res.get("memory", {})
    if mem:
        print("| 7 broker memory per queued job | bytes | **%s** | | beyond its payload |"
              % fmt(mem["forq.bytes_per_job"]["median"]))
        print("| 7 idle worker | KiB | RSS **%s**, PSS **%s** | | |"
              % (fmt(mem["forq.worker_rss_kib"]["median"]),
                 fmt(mem["forq.worker_pss_kib"]["median"])))
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--markdown":
        return markdown(argv[2])
    root, out, runs, smoke = argv[1], argv[2], int(argv[3]), argv[4] == "1"
    raw = load(root)
    res = {p: {m: summary(v) for m, v in ms.items()} for p, ms in raw.items()}
    targets = []
    rows = []  # (placement, workload, unit, forq, [(peer name, summary)], ratios text)

    def get(p, m):
        return res.get(p, {}).get(m)

    def ratio(a, b):
        return a["median"] / b["median"] if a and b and b["median"] else float("nan")

    def target(p, name, value, goal, met):
        targets.append({"placement": p, "target": name, "value": value, "goal": goal,
                        "met": bool(met)})

    for p in [x for x in ("default", "pinned") if x in res]:
        jobs, ppe, pool = get(p, "forq.jobs"), get(p, "ppe.jobs"), get(p, "pool.jobs")
        rows.append((p, "1 tiny jobs, 1,000 in flight", "jobs/s", jobs,
                     [("ProcessPoolExecutor.submit", ppe), ("Pool.apply_async", pool)],
                     "%.1fx PPE, %.1fx Pool" % (ratio(jobs, ppe), ratio(jobs, pool))))
        # throughput and parallel efficiency are judged with default placement: pinned to one
        # core, two workers cannot run in parallel (that run is for latency)
        if p == "default":
            target(p, "1: >= 100,000 jobs/s", jobs["median"], 100000, jobs["median"] >= 100000)
        target(p, "1: >= 5x ProcessPoolExecutor.submit", ratio(jobs, ppe), 5, ratio(jobs, ppe) >= 5)

        f50, p50, z50 = get(p, "forq.p50"), get(p, "ppe.p50"), get(p, "zmq.p50")
        f99, p99, z99 = get(p, "forq.p99"), get(p, "ppe.p99"), get(p, "zmq.p99")
        rows.append((p, "2 submit, wait; one at a time: p50", "us", f50,
                     [("PPE submit().result()", p50), ("raw ZeroMQ echo (floor)", z50)],
                     "%.2fx PPE, %.2fx ZeroMQ" % (ratio(f50, p50), ratio(f50, z50))))
        rows.append((p, "2 the same: p99", "us", f99,
                     [("PPE submit().result()", p99), ("raw ZeroMQ echo (floor)", z99)],
                     "%.2fx PPE, %.2fx ZeroMQ" % (ratio(f99, p99), ratio(f99, z99))))
        target(p, "2: p50 <= ProcessPoolExecutor's", ratio(f50, p50), 1, ratio(f50, p50) <= 1)
        target(p, "2: p50 <= 2x raw ZeroMQ round trip", ratio(f50, z50), 2, ratio(f50, z50) <= 2)

        fm, fi, pm, plm = (get(p, "forq.map"), get(p, "forq.imap"), get(p, "ppe.map"),
                           get(p, "pool.map"))
        rows.append((p, "3 map of tiny items (chunks of 1000)", "items/s", fm,
                     [("PPE.map(chunksize=1000)", pm), ("Pool.map", plm)],
                     "%.2fx PPE, %.2fx Pool; imap %s" % (ratio(fm, pm), ratio(fm, plm), cell(fi))))
        target(p, "3: map >= Pool.map", ratio(fm, plm), 1, ratio(fm, plm) >= 1)

        local = raw[p].get("local.cpu_s", [])
        eff = [l / (2 * f) for l, f in zip(local, raw[p].get("forq.cpu_s", []))]
        peff = [l / (2 * f) for l, f in zip(local, raw[p].get("ppe.cpu_s", []))]
        if eff:
            res[p]["forq.efficiency"] = summary(eff)
            res[p]["ppe.efficiency"] = summary(peff)
            rows.append((p, "4 primes < 3M, 64 chunks, 2 workers", "efficiency",
                         res[p]["forq.efficiency"],
                         [("PPE, same split, same C code", res[p]["ppe.efficiency"]),
                          ("one process (s)", get(p, "local.cpu_s"))],
                         "time %.2fx PPE's" % ratio(get(p, "forq.cpu_s"), get(p, "ppe.cpu_s"))))
            e = res[p]["forq.efficiency"]["median"]
            if p == "default":
                target(p, "4: parallel efficiency >= 0.95", e, 0.95, e >= 0.95)

        for clients in (1, 50):
            for op in ("get", "set", "incr"):
                f = get(p, "forq.dict%d.%s" % (clients, op))
                m = get(p, "manager.dict%d.%s" % (clients, op))
                r = get(p, "redis.dict%d.%s" % (clients, op))
                rows.append((p, "5 dict %s, %d client%s" % (op, clients, "s" if clients > 1 else ""),
                             "ops/s", f, [("Manager().dict()", m), ("redis-benchmark", r)],
                             "%.1fx Manager, %.2fx Redis" % (ratio(f, m), ratio(f, r))))
                target(p, "5: dict %s %d: >= 10x Manager" % (op, clients), ratio(f, m), 10,
                       ratio(f, m) >= 10)
                target(p, "5: dict %s %d: >= redis-benchmark" % (op, clients), ratio(f, r), 1,
                       ratio(f, r) >= 1)

        # ---- 5b. the broker's capacity, measured as redis-benchmark measures Redis (issue 17)
        for op in ("get", "set", "incr"):
            r, rp = get(p, "redis.dict50.%s" % op), get(p, "redis.pipe16.%s" % op)
            for m, label in (("dict50i", "1 thread, 50 in flight"),
                             ("dict50l", "50 conns, 1 event loop")):
                f = get(p, "forq.%s.%s" % (m, op))
                rows.append((p, "5b dict %s, %s" % (op, label), "ops/s", f,
                             [("redis-benchmark -c 50", r)], "%.2fx Redis" % ratio(f, r)))
                target(p, "5b: dict %s %s >= redis -c 50" % (op, label), ratio(f, r), 1,
                       ratio(f, r) >= 1)
            f = get(p, "forq.pipe.%s" % op)
            rows.append((p, "5b dict %s, pipelined 800 in flight" % op, "ops/s", f,
                         [("redis-benchmark -c 50 -P 16", rp)], "%.2fx Redis" % ratio(f, rp)))
            target(p, "5b: dict %s pipelined >= redis -P 16" % op, ratio(f, rp), 1,
                   ratio(f, rp) >= 1)
        for op, peer in (("mget", "get"), ("mset", "set")):
            f, rp = get(p, "forq.multi16.%s" % op), get(p, "redis.pipe16.%s" % peer)
            rows.append((p, "5b dict %s, 16 keys x 50 in flight" % op, "keys/s", f,
                         [("redis-benchmark -c 50 -P 16", rp)], "%.2fx Redis" % ratio(f, rp)))
            target(p, "5b: dict %s per key >= redis -P 16" % op, ratio(f, rp), 1,
                   ratio(f, rp) >= 1)
        cg, mg = get(p, "forq.cache.get"), get(p, "manager.dict1.get")
        rows.append((p, "5c dict get, client-side cache", "ops/s", cg,
                     [("Manager().dict() get", mg)], "%.0fx Manager" % ratio(cg, mg)))
        target(p, "5c: cached get >= 100x Manager get", ratio(cg, mg), 100, ratio(cg, mg) >= 100)
        for q in ("p50", "p99"):
            rows.append((p, "5c invalidation: set to copy gone, %s" % q, "us",
                         get(p, "forq.inval_%s" % q), [], ""))
        for q in ("p50", "p99"):
            fg, zg = get(p, "forq.get_%s" % q), get(p, "zmq2.%s" % q)
            rows.append((p, "5d sync dict get vs ZeroMQ echo: %s" % q, "us", fg,
                         [("raw ZeroMQ echo (floor)", zg)], "%.2fx ZeroMQ" % ratio(fg, zg)))
        # ---- end of 5b ----

        tj, cj, t50, c50 = (get(p, "tcp.jobs"), get(p, "curve.jobs"), get(p, "tcp.p50"),
                            get(p, "curve.p50"))
        if tj and cj:
            rows.append((p, "8 tiny jobs over tcp with CURVE", "jobs/s", cj,
                         [("the same, plaintext tcp", tj)],
                         "%.0f%% of plaintext" % (100 * ratio(cj, tj))))
            rows.append((p, "8 submit, wait over tcp with CURVE: p50", "us", c50,
                         [("the same, plaintext tcp", t50)], "%.2fx plaintext" % ratio(c50, t50)))
            target(p, "8: CURVE keeps >= 80% of plaintext tcp throughput", ratio(cj, tj), 0.8,
                   ratio(cj, tj) >= 0.8)
            target(p, "8: CURVE round trip <= 1.3x plaintext tcp", ratio(c50, t50), 1.3,
                   ratio(c50, t50) <= 1.3)

        # ---- 9. the Python package (issue 14): forq.Executor / forq.Dict beside the same
        # peers of this run ----
        pj, pp50, pp99, pymap = (get(p, "py.jobs"), get(p, "py.p50"), get(p, "py.p99"),
                                 get(p, "py.map"))
        if pj:
            rows.append((p, "9 Python: tiny jobs, 1,000 in flight", "jobs/s", pj,
                         [("ProcessPoolExecutor.submit", ppe), ("Pool.apply_async", pool)],
                         "%.1fx PPE, %.1fx Pool; %.2fx libforq" % (ratio(pj, ppe), ratio(pj, pool),
                                                                   ratio(pj, jobs))))
            rows.append((p, "9 Python: submit, result(): p50", "us", pp50,
                         [("PPE submit().result()", p50)],
                         "%.2fx PPE, %.2fx libforq" % (ratio(pp50, p50), ratio(pp50, f50))))
            rows.append((p, "9 Python: the same: p99", "us", pp99,
                         [("PPE submit().result()", p99)], "%.2fx PPE" % ratio(pp99, p99)))
            rows.append((p, "9 Python: map of 1M tiny items", "items/s", pymap,
                         [("PPE.map(chunksize=1000)", pm), ("Pool.map", plm)],
                         "%.2fx PPE, %.2fx Pool" % (ratio(pymap, pm), ratio(pymap, plm))))
            target(p, "py 1: Executor.submit >= 3x ProcessPoolExecutor's", ratio(pj, ppe), 3,
                   ratio(pj, ppe) >= 3)
            target(p, "py 2: p50 <= ProcessPoolExecutor's", ratio(pp50, p50), 1,
                   ratio(pp50, p50) <= 1)
            target(p, "py 3: map >= Pool.map", ratio(pymap, plm), 1, ratio(pymap, plm) >= 1)
            for clients in (1, 50):
                for op in ("get", "set", "incr"):
                    f = get(p, "py.dict%d.%s" % (clients, op))
                    m = get(p, "manager.dict%d.%s" % (clients, op))
                    rows.append((p, "9 Python: Dict %s, %d thread%s" % (
                        op, clients, "s" if clients > 1 else ""), "ops/s", f,
                        [("Manager().dict()", m)],
                        "%.1fx Manager; %.2fx libforq" % (
                            ratio(f, m), ratio(f, get(p, "forq.dict%d.%s" % (clients, op))))))
                    if clients == 50:
                        target(p, "py 5: Dict %s 50 threads >= 3x Manager" % op, ratio(f, m),
                               3, ratio(f, m) >= 3)
        # ---- end of the Python package ----

        rep, fs, ps = get(p, "forq.replace_us"), get(p, "forq.spawn"), get(p, "py.spawn")
        rows.append((p, "6 worker death to replacement READY", "us", rep, [], ""))
        rows.append((p, "6 fresh workers (one job each)", "/s", fs,
                     [("forkserver Process start+join", ps)], "%.1fx Python" % ratio(fs, ps)))
        target(p, "6: replacement <= 2 ms", rep["median"], 2000, rep["median"] <= 2000)
        pytask_rows(p, res, raw, rows, target, get, ratio)  # 9. Python tasks (issue 15)
        queue_rows(p, rows, target, get, ratio)  # 10. shared queues (issue 16)
        node_rows(p, rows, target, get, ratio)  # 11. worker nodes (issue 18)

    if "memory" in res:
        bpj = get("memory", "forq.bytes_per_job")
        rows.append(("any", "7 broker memory per queued tiny job", "bytes", bpj, [],
                     "beyond its 2-byte payload"))
        rows.append(("any", "7 an idle worker: RSS", "KiB", get("memory", "forq.worker_rss_kib"),
                     [("PSS (its share)", get("memory", "forq.worker_pss_kib"))], ""))
        target("any", "7: <= 300 bytes per queued job", bpj["median"], 300, bpj["median"] <= 300)

    print()
    print("forq against its peers: median of %d run(s) (min-max); ratios are forq/peer" % runs)
    for p, name, unit, f, peers, note in rows:
        line = "%-8s %-40s %-10s forq %-28s" % (p, name, unit, cell(f))
        for pn, s in peers:
            line += "  %s %s" % (pn, cell(s))
        if note:
            line += "  [%s]" % note
        print(line)
    print()
    print("targets (issue 5; py: issue 14):")
    for t in targets:
        print("  %-5s %-8s %-42s %s" % ("met" if t["met"] else "MISS", t["placement"], t["target"],
                                        fmt(t["value"])))
    doc = {"bench": "forq", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "runs": runs, "smoke": smoke,
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                       "python": platform.python_version()},
           "results": res, "targets": targets}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print()
    print("written: %s" % out)
    if smoke:
        bad = [(p, m) for p, ms in raw.items() for m, v in ms.items()
               if not v or any(not (x > 0) for x in v)]
        # what scripts/bench records: 72 metrics per placement (37, the CURVE rows' 4, the
        # Python package's 10 and issue 17's 21: capacity, many keys, the cache, the round
        # trip beside ZeroMQ's), and 3 of memory
        expected = 72 * len([p for p in raw if p != "memory"]) + 3
        # 9. Python tasks (issue 15), when the runtime was built
        expected += len(PYTASK_METRICS) * len([p for p in raw if "pyt.jobs" in raw[p]])
        # 10. shared queues (issue 16)
        expected += len(QUEUE_METRICS) * len([p for p in raw if "forq.queue_tput" in raw[p]])
        expected += len(NODE_METRICS) * len([p for p in raw if "node.hop_tput" in raw[p]])
        count = sum(len(ms) for ms in raw.values())
        if bad or count != expected:
            print("smoke: missing or non-positive figures: %s (%d metrics of %d)"
                  % (bad, count, expected))
            return 1
        print("smoke: %d metrics, all positive" % count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
