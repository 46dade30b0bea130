"""Fixtures of the forq Python suite: real forqd processes from the build, each on a private
ipc endpoint in a temporary directory (or on tcp 127.0.0.1 with CURVE), stopped with SIGTERM
at the end and required to exit 0.

Run with Debian's interpreter (python3-zmq, python3-msgpack, python3-pytest):

    /usr/bin/python3 -m pytest tests/python

Environment: FORQD, FORQ_CLI, FORQ_TEST_PLUGIN, FORQ_EXAMPLE_PLUGIN (default: the files in
build/), FORQ_TEST_QUICK=1 (smaller counts), FORQ_PY_INSTALLED=1 (test the installed forq
package rather than python/ of this tree).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterator, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("FORQ_BUILD", os.path.join(ROOT, "build"))
FORQD = os.environ.get("FORQD", os.path.join(BUILD, "daemon", "forqd"))
FORQ_CLI = os.environ.get("FORQ_CLI", os.path.join(BUILD, "client", "forq"))
TEST_PLUGIN = os.environ.get("FORQ_TEST_PLUGIN", os.path.join(BUILD, "tests", "test_tasks.so"))
EXAMPLE_PLUGIN = os.environ.get("FORQ_EXAMPLE_PLUGIN",
                                os.path.join(BUILD, "examples", "classic.so"))
QUICK = os.environ.get("FORQ_TEST_QUICK") == "1"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
READY = re.compile(r"notice: forqd \S+ ready: ")

if os.environ.get("FORQ_PY_INSTALLED") != "1":
    sys.path.insert(0, os.path.join(ROOT, "python"))

import forq  # noqa: E402


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Forqd:
    """One forqd process of the suite."""

    def __init__(self, *extra: str, workers: int = 2, listen: Optional[str] = None,
                 tmp: Optional[str] = None) -> None:
        self.own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="forq-py.")
        self.endpoint = listen or "ipc://%s/forqd.sock" % self.tmp
        self.args = [FORQD, "--listen", self.endpoint, "--workers", str(workers),
                     "--tasks", TEST_PLUGIN, "--tasks", EXAMPLE_PLUGIN, *extra]
        self.proc: Optional[subprocess.Popen] = None
        self.log = os.path.join(self.tmp, "forqd.log")
        self.start()

    def start(self) -> None:
        env = dict(os.environ, XDG_RUNTIME_DIR=self.tmp)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.args, stderr=log, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("forqd exited %d at start: %s" % (self.proc.returncode,
                                                                       self.logtext()))
            if READY.search(self.logtext()):   # the broker's line, not the forkserver's
                return
            time.sleep(0.02)
        raise RuntimeError("forqd did not start in 10 s: %s" % self.logtext())

    def logtext(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop forqd with ``sig``; its exit status (-N for a signal)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)

    def remove(self) -> None:
        """Stop forqd and remove its directory (if this made it)."""
        self.stop()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def forqd() -> Iterator[Forqd]:
    """The suite's shared forqd (2 workers, the test and example plugins)."""
    d = Forqd("--max-payload", str(1 << 20))
    yield d
    assert d.stop() == 0, d.logtext()
    d.remove()


@pytest.fixture
def own_forqd() -> Iterator[list]:
    """A list to put forqd processes of one test in (Forqd(...)); all stopped at its end."""
    started: list = []
    yield started
    for d in started:
        d.remove()


@pytest.fixture
def ex(forqd: Forqd) -> Iterator[forq.Executor]:
    """An Executor on the shared forqd, shut down after the test."""
    e = forq.Executor(forqd.endpoint)
    yield e
    e.shutdown(wait=False, cancel_futures=True)


def wait_until(cond, timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``cond()`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def wait_running(ex: forq.Executor, job_id: str, timeout: float = 10.0) -> bool:
    return wait_until(lambda: ex.status(job_id)["status"] == "running", timeout)


class executor:
    """``with executor(endpoint) as ex``: an Executor that, when the block fails, cancels what
    is pending rather than wait for it (a failed test must not hang the suite)."""

    def __init__(self, endpoint: str, **kwargs) -> None:
        self.ex = forq.Executor(endpoint, **kwargs)

    def __enter__(self) -> forq.Executor:
        return self.ex

    def __exit__(self, etype, *exc) -> None:
        if etype is None:
            self.ex.shutdown(wait=True)
        else:
            self.ex.shutdown(wait=False, cancel_futures=True)


class Proxy:
    """A TCP relay between the client and forqd that can cut every connection and refuse new
    ones for a while: the connection drops while forqd (the same instance) runs on."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.open = True
        self.conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            u = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.open = False
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns = []

    def close(self) -> None:
        self.cut()
        self.lsock.close()
