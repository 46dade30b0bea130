"""Starts a thread at import: a forkserver with threads cannot fork safely, forqd refuses."""
import threading
import time

import forq

_stop = threading.Event()
threading.Thread(target=_stop.wait, daemon=True).start()
time.sleep(0.05)


@forq.task
def alive():
    return True
