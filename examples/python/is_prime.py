"""The ProcessPoolExecutor example of Python's documentation, on forq:

    with ProcessPoolExecutor() as executor:
        for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
            print('%d is prime: %s' % (number, prime))

    python3 is_prime.py [ENDPOINT]

The function is forqd's built-in is_prime: the name is the task."""
import sys

import forq

PRIMES = [10_000_019, 10_000_033, 10_000_079, 10_000_081]


def is_prime(n):
    """Runs in forqd (its built-in task of this name), not here."""
    raise NotImplementedError


with forq.Executor(sys.argv[1] if len(sys.argv) > 1 else None) as executor:
    for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
        print('%d is prime: %s' % (number, prime))
