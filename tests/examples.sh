#!/bin/sh
# examples.sh - run every example program against a real forqd (with the example plugin) and
# compare what it prints with what the README shows. Args: FORQD EXAMPLES_DIR PLUGIN
set -u
forqd=$1 dir=$2 plugin=$3
tmp=$(mktemp -d /tmp/forq-examples.XXXXXX)
ep="ipc://$tmp/forqd.sock"
XDG_RUNTIME_DIR=$tmp "$forqd" --listen "$ep" --workers 2 --tasks "$plugin" 2>"$tmp/log" &
pid=$!
passed=0 failed=0
check() { # name expected-output command...
    name=$1 want=$2
    shift 2
    got=$("$@" 2>&1)
    if [ "$got" = "$want" ]; then
        passed=$((passed + 1)); echo "ok - $name"
    else
        failed=$((failed + 1)); printf 'FAILED - %s\n  want: %s\n  got:  %s\n' "$name" "$want" "$got"
    fi
}
for _ in $(seq 100); do [ -S "$tmp/forqd.sock" ] && break; sleep 0.05; done
check map_square "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" "$dir/map_square" "$ep"
check starmap_multiply "[2, 12, 30]" "$dir/starmap_multiply" "$ep"
got=$("$dir/map_async_timeout" "$ep"); case "$got" in
    "item 0 done
item 1 done
TimeoutError: item 2 is not done after"*) passed=$((passed + 1)); echo "ok - map_async_timeout" ;;
    *) failed=$((failed + 1)); echo "FAILED - map_async_timeout: $got" ;;
esac
check imap_generator "primes below 200000: 17984" "$dir/imap_generator" "$ep" 200000
check as_completed "slept 0.1 s: ok
slept 0.25 s: ok
slept 0.5 s: ok" "$dir/as_completed" "$ep"
check timeout_cancel "sleep(10) with timeout 0.5 s: timeout (ran longer than its timeout of 500 ms; its worker was killed)
cancel while running: worker killed
its result: cancelled (cancelled while running; its worker was killed)" "$dir/timeout_cancel" "$ep"
# the demo's programs: the classic primes example and its big workload (scripts/demo)
got=$("$dir/primes" "$ep" | sed -n '1p;2p;6p;$p' | sed 's/ratio: [0-9.]*$/ratio: R/'); case "$got" in
    "primes in range(1, 300000): 25997  (8 count_primes jobs on 2 workers at $ep)
10000019 is prime: True
median of 5 runs:
  pool/single time ratio: R") passed=$((passed + 1)); echo "ok - primes" ;;
    *) failed=$((failed + 1)); echo "FAILED - primes: $got" ;;
esac
got=$("$dir/primes" --below 1000000 --runs 1 "$ep" | sed -n '1p;$p' | sed 's/ratio: [0-9.]*$/ratio: R/'); case "$got" in
    "primes below 1000000: 78498  (32 count_primes jobs on 2 workers at $ep)
  pool/single time ratio: R") passed=$((passed + 1)); echo "ok - primes --below" ;;
    *) failed=$((failed + 1)); echo "FAILED - primes --below: $got" ;;
esac
check producer_consumer "consumer: 20 results, 1 primes" "$dir/producer_consumer" "$ep"
check queue_fruit "consumed apple
consumed banana
consumed cherry" "$dir/queue_fruit" "$ep"
check locked_counter "counter: 4000" "$dir/locked_counter" "$ep"
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "ok - forqd stopped cleanly"; else
    failed=$((failed + 1)); echo "FAILED - forqd exited $rc"; cat "$tmp/log"; fi
rm -rf "$tmp"
echo "examples: $passed passed, $failed failed"
[ $failed -eq 0 ]
