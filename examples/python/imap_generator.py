"""imap over a large generator, in flat memory:

    def numbers():
        yield from range(2_000_000)
    print(sum(p.imap(is_prime, numbers(), chunksize=1000)))

Pool.imap reads its whole input first; forq's map pulls items only as its window of chunk jobs
has room (buffersize chunks of chunksize items), so the generator may be endless and memory
stays flat, as the peak RSS printed shows.

    python3 imap_generator.py [ENDPOINT] [N]"""
import sys

import forq


def numbers(n):
    yield from range(n)


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


endpoint = sys.argv[1] if len(sys.argv) > 1 else None
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
with forq.Executor(endpoint) as ex:
    print("primes below %d: %d" % (n, sum(ex.map("is_prime", numbers(n), chunksize=1000))))
print("peak memory: %.0f MiB" % peak_rss_mib(), file=sys.stderr)
