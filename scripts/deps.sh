# shellcheck shell=bash disable=SC2034
# deps.sh - sourced by scripts/demo and scripts/test: make sure the Debian packages a step
# needs are installed. As root it runs apt-get; otherwise it prints the one command to run.
#   need_packages PKG...

need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "==> installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            apt-get install -y -qq "${missing[@]}" >/dev/null || {
                echo "error: apt-get could not install: ${missing[*]}" >&2
                exit 1
            }
        fi
    else
        echo "forq needs these Debian packages; run this, then try again:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# What forq builds with, and what its tests and sanitizer/valgrind/fuzz runs use.
BUILD_PACKAGES=(gcc meson ninja-build pkg-config libzmq3-dev libmsgpack-dev libjansson-dev
                nettle-dev uthash-dev zlib1g-dev libinih-dev libsystemd-dev scdoc check
                libpython3-dev)
TEST_PACKAGES=(valgrind clang clang-format libclang-rt-14-dev make python3-zmq python3-msgpack
               redis-server redis-tools systemd)
# ---- the Python package (python/forq): its suite runs on Debian's /usr/bin/python3 with
# python3-zmq and python3-msgpack (above); pytest runs it, pip installs ./python in a venv ----
TEST_PACKAGES+=(python3-pytest python3-pip)
# ---- end of the Python package ----
