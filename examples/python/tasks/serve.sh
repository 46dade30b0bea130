#!/bin/sh
# serve.sh - forqd serving classic.py's functions as Python tasks, with two workers:
#
#     examples/python/tasks/serve.sh                  (forqd's flags may follow)
#     forq submit classic.is_prime '[10000019]'       -> true
#
# forqd imports `classic` once, in its forkserver (the interpreter that matches forqd's
# libpython, not the python3 first in PATH), and forks workers that have it loaded.
# --python-path puts this directory on the module path. `import forq` needs forq's Python
# package, which `meson install` puts into the system Python's site directory; from a source
# tree, give its directory too: FORQ_PYTHON=/path/to/forq/python serve.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec "${FORQD:-forqd}" --workers 2 --python-path "$here" \
    ${FORQ_PYTHON:+--python-path "$FORQ_PYTHON"} --python-import classic "$@"
