"""Hash the files of a directory in parallel:

    with ProcessPoolExecutor() as ex:
        for path, digest in zip(paths, ex.map(sha256_of_file, paths)):
            print(digest, path)

forqd's built-in sha256 task reads each file itself (with forqd's rights) when given
{"path": FILE}: only the names travel. Run forqd on the machine that has the files.

    python3 hash_files.py [ENDPOINT] [DIRECTORY]"""
import hashlib
import os
import sys

import forq

endpoint = sys.argv[1] if len(sys.argv) > 1 else None
top = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else ".")
paths = sorted(os.path.join(top, n) for n in os.listdir(top)
               if os.path.isfile(os.path.join(top, n)))
with forq.Executor(endpoint) as ex:
    for path, digest in zip(paths, ex.map("sha256", ({"path": p} for p in paths), chunksize=4)):
        with open(path, "rb") as f:
            assert digest == hashlib.sha256(f.read()).hexdigest()
        print(digest, os.path.basename(path))
