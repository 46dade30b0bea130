#!/usr/bin/env bash
# tests/install.sh - install forq as a user does from the README, and check what they meet:
#   - `meson install` into a prefix of a user's own (run as an unprivileged user: nobody when
#     this runs as root) succeeds without a traceback and writes nothing outside the prefix
#     (meson's install log lists every file), nor does a DESTDIR install
#   - the installed forq finds libforq without LD_LIBRARY_PATH (its rpath)
#   - the plugin directory pkg-config announces exists, and forqd loads a plugin copied there
#     with no setting; forqd(8), forqd --help and forqd.conf name the paths the binary uses, and
#     the binary really reads the config file forqd(8) names
#   - the README's C snippet, built against the installed libforq with pkg-config, prints
#     25997, and with forqd down a detail that says so, at once
#   - the README's first tcp example works as written (on a free port instead of 5555 when
#     another process has that one)
# Usage: tests/install.sh [BUILD_DIR]   (default build-install/, made afresh). Prints one line
# per check, "ok: ..." or "FAILED: ...", and exits 1 if any failed.
# shellcheck disable=SC2046,SC2317 # pkg-config's flags are words; cleanup runs from the trap
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
dir=${1:-build-install}
top=$(mktemp -d /tmp/forq-install.XXXXXX)
chmod 755 "$top"
prefix=$top/prefix
failed=0
forqd_pid=

ok() { echo "ok: $*"; }
bad() {
    echo "FAILED: $*"
    failed=1
}
cleanup() {
    [ -n "$forqd_pid" ] && kill -TERM "$forqd_pid" 2>/dev/null && wait "$forqd_pid" 2>/dev/null
    rm -rf "$top"
}
trap cleanup EXIT

# the unprivileged user: ourselves, or nobody when we are root
as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$top" "$@"
    else
        "$@"
    fi
}

rm -rf "$dir"
if ! meson setup "$dir" --prefix="$prefix" -Dtests=disabled >"$top/setup.log" 2>&1 ||
    ! ninja -C "$dir" >"$top/build.log" 2>&1; then
    cat "$top/setup.log" "$top/build.log" | tail -n 30
    bad "build with --prefix=$prefix"
    exit 1
fi
[ "$(id -u)" -eq 0 ] && chown -R 65534:65534 "$dir" "$top"

# ---- meson install, as a user, into the user's prefix ----
if as_user meson install -C "$dir" --no-rebuild >"$top/install.log" 2>&1 &&
    ! grep -q Traceback "$top/install.log"; then
    ok "meson install into a user's prefix, as $(as_user id -un)"
else
    tail -n 20 "$top/install.log"
    bad "meson install into a user's prefix as $(as_user id -un)"
    exit 1
fi
# meson's log lists every file and directory it made; the prefix and its parents may be made
cp "$dir/meson-logs/install-log.txt" "$top/installed"
outside=$(grep -v '^#' "$top/installed" | while read -r f; do
    [ "${prefix#"$f"}" = "$prefix" ] && [ "${f#"$prefix"/}" = "$f" ] && echo "$f"
done)
if [ -z "$outside" ] && grep -q "^$prefix/sbin/forqd$" "$top/installed"; then
    ok "meson install wrote $(grep -vc '^#' "$top/installed") files and directories, all under the prefix"
else
    bad "meson install wrote outside $prefix: $outside"
fi
stage=$top/stage
mkdir "$stage" && chown 65534:65534 "$stage" 2>/dev/null
if as_user meson install -C "$dir" --no-rebuild --destdir "$stage" >"$top/destdir.log" 2>&1; then
    outside=$(cd "$stage" && find . ! -type d | sed 's|^\.||' | grep -v "^$prefix/")
    if [ -z "$outside" ]; then
        ok "a DESTDIR install stays under DESTDIR/prefix"
    else
        bad "a DESTDIR install wrote outside DESTDIR$prefix: $outside"
    fi
else
    tail -n 20 "$top/destdir.log"
    bad "meson install --destdir"
fi

# ---- the installed programs ----
libdir=$(dirname "$(find "$prefix" -name 'libforq.so.0' | head -n 1)")
export PKG_CONFIG_PATH=$libdir/pkgconfig
forq=$prefix/bin/forq
forqd=$prefix/sbin/forqd
if out=$(env -u LD_LIBRARY_PATH "$forq" --version 2>&1) && [ "$(realpath "$(env -u \
    LD_LIBRARY_PATH ldd "$forq" | awk '/libforq/ {print $3}')")" = "$libdir/libforq.so.0.1.0" ]; then
    ok "installed forq runs without LD_LIBRARY_PATH and loads $libdir/libforq.so.0 ($out)"
else
    bad "installed forq without LD_LIBRARY_PATH: $out; $(ldd "$forq" | grep libforq)"
fi
unset LD_LIBRARY_PATH

plugindir=$(pkg-config --variable=plugindir forq-task)
conf=$prefix/etc/forq/forqd.conf
man=$(man -l "$prefix/share/man/man8/forqd.8" 2>/dev/null | col -b)
if [ -d "$plugindir" ] && [ "${plugindir#"$prefix"/}" != "$plugindir" ]; then
    ok "the plugin directory pkg-config names exists: $plugindir"
else
    bad "pkg-config's plugindir '$plugindir' does not exist under $prefix"
fi
if grep -qF "$plugindir" <<<"$man" && grep -qF "$conf" <<<"$man" &&
    "$forqd" --help | tr -s ' \n' ' ' | grep -qF "$plugindir" &&
    "$forqd" --help | grep -qF "$conf" && grep -qF "#tasks = $plugindir" "$conf"; then
    ok "forqd(8), forqd --help and forqd.conf name $conf and $plugindir"
else
    bad "forqd(8), forqd --help or forqd.conf do not name $conf and $plugindir"
fi
# the file forqd(8) names is the one the binary reads
cp "$conf" "$top/conf.orig"
echo "workers = 3" >>"$conf"
if "$forqd" --check-config 2>&1 | grep -q '^workers = 3$'; then
    ok "forqd reads the config file its man page names"
else
    bad "forqd does not read $conf"
fi
cp "$top/conf.orig" "$conf"

# a plugin built against the installed header, copied into the plugin directory
if cc -shared -fPIC -O2 -Wall -Werror -o "$plugindir/classic.so" examples/plugin/classic.c \
    $(pkg-config --cflags --libs forq-task) 2>"$top/cc.log"; then
    ok "a plugin builds with pkg-config forq-task"
else
    cat "$top/cc.log"
    bad "a plugin against the installed <forq/task.h>"
fi
if "$forqd" --check-config | grep -qxF "tasks = $plugindir"; then
    ok "forqd loads the plugin directory by default"
else
    bad "forqd --check-config has no 'tasks = $plugindir'"
fi

# ---- the README's C snippet, from the README ----
awk '/^### From C: libforq/ {s = 1} s && /^```c$/ {c = 1; next} c && /^```$/ {exit} c' \
    README.md >"$top/app.c"
if cc -o "$top/app" "$top/app.c" $(pkg-config --cflags --libs forq) \
    -Wl,-rpath,"$(pkg-config --variable=libdir forq)" 2>"$top/cc.log"; then
    ok "the README's C snippet builds with pkg-config forq"
else
    cat "$top/cc.log"
    bad "the README's C snippet does not build"
fi
export XDG_RUNTIME_DIR=$top/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
t0=$(date +%s%N)
out=$("$top/app" 2>&1)
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
if [ $rc -ne 0 ] && grep -q "no forqd at ipc://$XDG_RUNTIME_DIR/forq/forqd.sock" <<<"$out" &&
    [ $ms -lt 3000 ]; then
    ok "with forqd down the snippet says so in $ms ms: $out"
else
    bad "with forqd down the snippet printed '$out' (exit $rc) after $ms ms"
fi

"$forqd" 2>"$top/forqd.log" &
forqd_pid=$!
for _ in $(seq 100); do
    "$forq" --connect-timeout 0.1 ping >/dev/null 2>&1 && break
    sleep 0.05
done
out=$("$top/app" 2>&1)
if [ "$out" = 25997 ]; then ok "the snippet prints 25997"; else bad "the snippet printed '$out'"; fi
wc=$("$forq" submit word_count '["to be or not to be"]' 2>&1)
if [ "$wc" = '{"words":6,"lines":1,"chars":18}' ]; then
    ok "forqd ran word_count from the plugin directory, no --tasks"
else
    bad "word_count from the plugin directory: $wc"
    cat "$top/forqd.log"
fi
kill -TERM "$forqd_pid"
wait "$forqd_pid" || bad "forqd exited $?"
forqd_pid=

# ---- bash completion, where bash-completion looks for it ----
comp="$prefix/share/bash-completion/completions/forq"
if [ -f "$comp" ] && bash -c "source '$comp'; declare -F _forq" >/dev/null 2>&1; then
    ok "bash completion installed: $comp"
else
    bad "no bash completion at $comp"
fi

# ---- the README's first tcp example, as written ----
server=$(grep -m 1 -E '^forqd .*tcp://' README.md | sed 's/ *#.*//')
client=$(grep -m 1 -E '^forq -e tcp://' README.md | sed 's/ *#.*//')
port=5555
if (exec 3<>/dev/tcp/127.0.0.1/5555) 2>/dev/null; then
    port=$((20000 + RANDOM % 20000)) # taken here: the same line on another port
fi
server=${server//5555/$port}
client=${client//5555/$port}
(cd "$top" && eval "exec $prefix/sbin/$server") 2>"$top/forqd-tcp.log" &
forqd_pid=$!
out=
for _ in $(seq 100); do
    out=$(cd "$top" && eval "$prefix/bin/$client" 2>&1) && break
    sleep 0.05
done
if grep -q "^forqd .* at tcp://127.0.0.1:$port" <<<"$out"; then
    ok "the README's tcp example: '$server', then '$client': $out"
else
    bad "the README's tcp example '$server' / '$client': $out"
    cat "$top/forqd-tcp.log"
fi
kill -TERM "$forqd_pid"
wait "$forqd_pid"
forqd_pid=

exit $failed
