"""Pool.starmap(multiply, [(2, 3), (4, 5), (6, 7)]) on forq:

    with Pool() as p:
        print(p.starmap(multiply, [(2, 3), (4, 5), (6, 7)]))      # [6, 20, 42]

    python3 starmap_multiply.py [ENDPOINT]   (needs the example plugin: forqd --tasks classic.so)"""
import sys

import forq

with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as ex:
    print(list(ex.starmap("multiply", [(2, 3), (4, 5), (6, 7)])))
