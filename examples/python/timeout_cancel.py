"""A job that runs too long, and cancelling a running job: two things ProcessPoolExecutor
cannot do (future.cancel() fails once the call runs; result(timeout) only stops waiting). In
forq the worker is killed and a fresh one takes its place.

    python3 timeout_cancel.py [ENDPOINT]"""
import concurrent.futures
import sys
import time

import forq

with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as ex:
    try:
        ex.submit("sleep", 10, run_timeout=0.5).result()
    except forq.JobTimeout as e:
        print("sleep(10) with run_timeout 0.5 s: JobTimeout (%s)" % e)
    f = ex.submit("sleep", 10)
    while f.status()["status"] != "running":
        time.sleep(0.01)
    print("cancel while running:", f.cancel())
    try:
        f.result()
    except concurrent.futures.CancelledError:
        print("its result: CancelledError")
    while ex.status(f.job_id)["status"] == "running":
        time.sleep(0.01)
    print("in forqd:", ex.status(f.job_id)["status"])
