#!/usr/bin/env bash
# bench/map.sh - items/s of forq's map and imap of a tiny task (square) beside Python's
# ProcessPoolExecutor.map(chunksize=1000) of the same function, 2 workers each, run alternately
# in the same run, RUNS times (default 5), with default placement and with every process pinned
# to one core (taskset -c 0). Prints median, min-max and the ratio forq/peer, and writes the
# same as JSON under bench/results/. N items (default 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
n=${N:-1000000}
py=${PYTHON:-python3}

[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release >/dev/null
tmp=$(mktemp -d /tmp/forq-bench.XXXXXX)
forqd_pid=
cleanup() {
    [ -n "$forqd_pid" ] && kill -TERM "$forqd_pid" 2>/dev/null && wait "$forqd_pid" || true
    rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, a[1], a[NR]}'; }

json="{\"bench\":\"map\",\"items\":$n,\"runs\":$runs,\"date\":\"$(date -u +%FT%TZ)\",\"results\":{"
for placement in default pinned; do
    pin=()
    [ "$placement" = pinned ] && pin=(taskset -c 0)
    ep="ipc://$tmp/$placement.sock"
    XDG_RUNTIME_DIR=$tmp "${pin[@]}" build-release/daemon/forqd --listen "$ep" --workers 2 \
        --tasks build-release/examples/classic.so 2>"$tmp/forqd.log" &
    forqd_pid=$!
    for _ in $(seq 100); do [ -S "$tmp/$placement.sock" ] && break; sleep 0.05; done
    : >"$tmp/map" ; : >"$tmp/imap"; : >"$tmp/ppe"
    for _ in $(seq "$runs"); do
        out=$("${pin[@]}" build-release/bench/map_bench "$ep" "$n")
        echo "$out" | awk '$1=="map"{print $2}' >>"$tmp/map"
        echo "$out" | awk '$1=="imap"{print $2}' >>"$tmp/imap"
        "${pin[@]}" "$py" bench/peer_map.py "$n" 2 | awk '{print $2}' >>"$tmp/ppe"
    done
    kill -TERM "$forqd_pid"; wait "$forqd_pid" || true; forqd_pid=
    read -r map_m map_lo map_hi < <(median <"$tmp/map")
    read -r imap_m imap_lo imap_hi < <(median <"$tmp/imap")
    read -r ppe_m ppe_lo ppe_hi < <(median <"$tmp/ppe")
    printf '\n%s placement, %s items, median of %s runs (min-max), items/s:\n' "$placement" "$n" "$runs"
    printf '  %-38s %10s  (%s-%s)\n' "forq map (chunksize 1000)" "$map_m" "$map_lo" "$map_hi"
    printf '  %-38s %10s  (%s-%s)\n' "forq imap (chunksize 1000, window 8)" "$imap_m" "$imap_lo" "$imap_hi"
    printf '  %-38s %10s  (%s-%s)\n' "ProcessPoolExecutor.map(chunksize=1000)" "$ppe_m" "$ppe_lo" "$ppe_hi"
    printf '  ratio forq map / PPE.map: %.2f   forq imap / PPE.map: %.2f\n' \
        "$(echo "$map_m / $ppe_m" | bc -l)" "$(echo "$imap_m / $ppe_m" | bc -l)"
    [ "$placement" = pinned ] && json+=","
    json+="\"$placement\":{\"forq_map\":[$map_m,$map_lo,$map_hi],\"forq_imap\":[$imap_m,$imap_lo,$imap_hi],\"ppe_map\":[$ppe_m,$ppe_lo,$ppe_hi]}"
done
json+="}}"
mkdir -p bench/results
out=bench/results/map-$(date -u +%Y%m%dT%H%M%SZ).json
echo "$json" >"$out"
echo
echo "written: $out"
