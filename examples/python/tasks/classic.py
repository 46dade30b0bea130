"""The functions of the classic multiprocessing examples, served by forqd as Python tasks.

forqd imports this module once, in its forkserver, and serves the functions declared with
@forq.task (``./serve.sh`` starts it so). Every worker is forked with the module already
imported. A client names them ``classic.is_prime`` and so on, or passes the function itself
(``executor.map(classic.is_prime, range(1, 300000), chunksize=1000)``). Outside forqd the
module is plain Python: the decorator returns each function unchanged.
"""

import hashlib
import math
import time

import forq


@forq.task
def is_prime(n):
    """es_primo: trial division by 6k +- 1, the classic CPU-bound example."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    for i in range(5, math.isqrt(n) + 1, 6):
        if n % i == 0 or n % (i + 2) == 0:
            return False
    return True


@forq.task
def count_primes(numbers):
    """How many of `numbers` (a list slice) are prime."""
    return sum(1 for n in numbers if is_prime(n))


@forq.task
def sum_squares(n):
    """sum(i * i for i in range(n))."""
    return sum(i * i for i in range(n))


@forq.task
def slow_square(x, delay=0.5):
    """x * x, after sleeping `delay` seconds (the timeout and cancel examples)."""
    time.sleep(delay)
    return x * x


@forq.task
def multiply(a, b):
    return a * b


@forq.task
def hash_file(path):
    """[path, SHA-256 of the file's contents] (read by forqd's worker, with forqd's rights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return [path, h.hexdigest()]
