"""concurrent.futures.as_completed over forq futures:

    futures = {ex.submit(sum_of_squares, n): n
               for n in (1_000_000, 2_000_000, 3_000_000, 4_000_000)}
    for f in as_completed(futures):
        print(futures[f], f.result())

    python3 as_completed.py [ENDPOINT]

forq futures are concurrent.futures.Future objects: the standard as_completed() and wait()
take them unchanged. forqd's sum_squares computes in unsigned 64 bits, and the sum for
4,000,000 passes 2^64: that future raises the task's OverflowError as a forq.TaskError - the
others are unaffected."""
import sys
from concurrent.futures import as_completed

import forq

with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as ex:
    futures = {ex.submit("sum_squares", n): n
               for n in (1_000_000, 2_000_000, 3_000_000, 4_000_000)}
    for f in as_completed(futures):
        n = futures[f]
        try:
            print("sum(i*i for i in range(%d)) = %d" % (n, f.result()))
        except forq.TaskError as e:
            print("sum(i*i for i in range(%d)): %s" % (n, e.etype))
