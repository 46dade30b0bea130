"""map_async(...).get(timeout) on forq:

    res = p.map_async(time.sleep, [0.1, 0.2, 5])
    try:
        print(res.get(timeout=1))
    except TimeoutError:
        print("TimeoutError")

A forq map runs in forqd while this program does other things; its timeout counts from the
call, as Executor.map's does. On the timeout, closing the map cancels what is left: the 5 s
sleep is killed, not left running."""
import sys
import time

import forq

with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as ex:
    results = ex.map("sleep", [0.1, 0.2, 5], timeout=1)
    try:
        for i, _ in enumerate(results):
            print("item %d done" % i)
    except TimeoutError:
        print("TimeoutError: item %d is not done after 1 s" % (i + 1))
    finally:
        results.close()         # cancels the 5 s job: its worker is killed
    while ex.stats()["running"]:
        time.sleep(0.01)
    print("running now: 0")
