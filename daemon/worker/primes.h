/* primes.h - trial division, shared by the built-in is_prime and count_primes tasks and by
 * bench/ (which runs the very same code in one process, and from Python through ctypes, as the
 * baseline of the CPU-bound benchmark). */
#ifndef FORQ_PRIMES_H
#define FORQ_PRIMES_H

#include <stdbool.h>
#include <stdint.h>

static inline bool forq_prime(int64_t n)
{
    if (n < 2)
        return false;
    if (n < 4)
        return true;
    if (n % 2 == 0 || n % 3 == 0)
        return false;
    for (int64_t i = 5; i <= n / i; i += 6)
        if (n % i == 0 || n % (i + 2) == 0)
            return false;
    return true;
}

/* Primes p with lo <= p < hi. */
static inline int64_t forq_count_primes(int64_t lo, int64_t hi)
{
    int64_t count = 0;
    for (int64_t n = lo; n < hi; n++)
        count += forq_prime(n);
    return count;
}

#endif
