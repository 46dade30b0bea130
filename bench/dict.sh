#!/usr/bin/env bash
# bench/dict.sh - ops/s of the dict service's set, get and incr from 1 client and from 50
# concurrent clients, beside Python's Manager().dict() and redis-server (redis-benchmark at the
# same concurrency, on a Unix socket, no persistence; forqd's dicts in memory), run alternately
# in the same run, RUNS times (default 5), with default placement and with every process pinned
# to one core. Prints median, min-max and the ratios, and writes JSON under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
ops1=${OPS1:-10000}    # operations of each kind with one client
ops50=${OPS50:-50000}  # in all, with 50 clients
py=${PYTHON:-python3}

[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release >/dev/null
command -v redis-server >/dev/null || { echo "bench/dict.sh needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/forq-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, a[1], a[NR]}'; }

json="{\"bench\":\"dict\",\"runs\":$runs,\"date\":\"$(date -u +%FT%TZ)\",\"results\":{"
first=1
for placement in default pinned; do
    pin=()
    [ "$placement" = pinned ] && pin=(taskset -c 0)
    ep="ipc://$tmp/$placement.sock"
    XDG_RUNTIME_DIR=$tmp "${pin[@]}" build-release/daemon/forqd --listen "$ep" --workers 1 \
        2>"$tmp/forqd.log" &
    pids+=($!)
    "${pin[@]}" redis-server --port 0 --unixsocket "$tmp/redis-$placement.sock" --save "" \
        --appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$tmp/$placement.sock" ] && [ -S "$tmp/redis-$placement.sock" ] && break; sleep 0.05; done
    for clients in 1 50; do
        ops=$ops1
        [ "$clients" = 50 ] && ops=$ops50
        for f in forq manager redis; do for op in set get incr; do : >"$tmp/$f.$op"; done; done
        for _ in $(seq "$runs"); do
            "${pin[@]}" build-release/bench/dict_bench "$ep" "$ops" "$clients" |
                while read -r op v; do echo "$v" >>"$tmp/forq.$op"; done
            "${pin[@]}" "$py" bench/peer_dict.py "$((ops / (clients == 50 ? 5 : 1)))" "$clients" |
                while read -r op v; do echo "$v" >>"$tmp/manager.$op"; done
            "${pin[@]}" redis-benchmark -s "$tmp/redis-$placement.sock" -t set,get,incr -n "$ops" \
                -c "$clients" -P 1 --csv 2>/dev/null | tr -d '"' |
                awk -F, -v d="$tmp" 'tolower($1)~/^(set|get|incr)$/ {print $2 >> (d "/redis." tolower($1))}'
        done
        printf '\n%s placement, %s client(s), median of %s runs (min-max), ops/s:\n' "$placement" "$clients" "$runs"
        printf '  %-6s %22s %22s %22s %10s %10s\n' op forq "Manager().dict()" redis-server forq/Mgr forq/redis
        [ $first = 1 ] || json+=","
        first=0
        json+="\"$placement-$clients\":{"
        sep=""
        for op in set get incr; do
            read -r fm flo fhi < <(median <"$tmp/forq.$op")
            read -r mm mlo mhi < <(median <"$tmp/manager.$op")
            read -r rm rlo rhi < <(median <"$tmp/redis.$op")
            printf '  %-6s %10s (%s-%s) %10s (%s-%s) %10s (%s-%s) %10.1f %10.2f\n' "$op" \
                "$fm" "$flo" "$fhi" "$mm" "$mlo" "$mhi" "$rm" "$rlo" "$rhi" \
                "$(echo "$fm / $mm" | bc -l)" "$(echo "$fm / $rm" | bc -l)"
            json+="$sep\"$op\":{\"forq\":[$fm,$flo,$fhi],\"manager\":[$mm,$mlo,$mhi],\"redis\":[$rm,$rlo,$rhi]}"
            sep=","
        done
        json+="}"
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
    pids=()
done
json+="}}"
mkdir -p bench/results
out=bench/results/dict-$(date -u +%Y%m%dT%H%M%SZ).json
echo "$json" >"$out"
echo
echo "Manager().dict() incr is d[k] = d[k] + 1 (two round trips, not atomic); its 50-client runs"
echo "do a fifth of the operations (50 Python processes are slow to drive). written: $out"
