"""Pool.map(square, range(10)) on forq:

    with Pool() as p:
        print(p.map(square, range(10)))

    python3 map_square.py [ENDPOINT]     (needs the example plugin: forqd --tasks classic.so)"""
import sys

import forq

with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as ex:
    print(list(ex.map("square", range(10))))
