"""The Python side of Python tasks, outside forqd: @forq.task names and refusals, task_name(),
and forq.worker refusing to work outside a task. Runs under pytest or alone
(/usr/bin/python3 tests/python_tasks/test_decorator.py, with python/ on PYTHONPATH)."""
import os
import subprocess
import sys

import forq
import forq.tasks
import forq.worker


def test_names():
    def g(x):
        return x
    g.__qualname__ = "g"
    g.__module__ = "pkg.mod"
    assert forq.task(g) is g
    assert g.__forq_task__ == "pkg.mod.g"
    assert forq.tasks.task_name(g) == "pkg.mod.g"
    assert forq.tasks.declared()["pkg.mod.g"] is g
    # declaring it again is fine; another function under its name is not
    forq.task(g)

    def h():
        pass
    try:
        forq.task(name="pkg.mod.g")(h)
        raise AssertionError("a second function took the name")
    except ValueError as e:
        assert "already declared, by pkg.mod.g" in str(e)
    assert forq.task(name="custom:name-1")(h) is h
    assert forq.tasks.task_name(h) == "custom:name-1"
    assert forq.tasks.task_name("plain") == "plain"


def test_bad_names_and_objects():
    def nested():
        pass  # qualname test_bad_names_and_objects.<locals>.nested
    for bad in (lambda: forq.task(nested), lambda: forq.task(name="")(print),
                lambda: forq.task(name="x" * 65)(print), lambda: forq.task(name="a b")(print)):
        try:
            bad()
            raise AssertionError("accepted")
        except ValueError as e:
            assert "1-64 characters" in str(e)
    try:
        forq.task(42)
        raise AssertionError("accepted")
    except TypeError:
        pass
    try:
        forq.tasks.task_name(len)
        raise AssertionError("accepted")
    except TypeError as e:
        assert "declare it with @forq.task" in str(e)


def test_main_module_counts_under_its_import_name(tmp_path=None):
    """`python3 mod.py` names tasks mod.f, as forqd importing `mod` does."""
    d = tmp_path or __import__("tempfile").mkdtemp()
    path = os.path.join(str(d), "scriptmod.py")
    with open(path, "w") as f:
        f.write("import forq\n@forq.task\ndef f():\n    pass\nprint(f.__forq_task__)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "scriptmod.f"
    out = subprocess.run([sys.executable, "-m", "scriptmod"], capture_output=True, text=True,
                         env=env, cwd=str(d), check=True).stdout
    assert out.strip() == "scriptmod.f"


def test_worker_outside_forqd():
    for call in (forq.worker.job_id, forq.worker.cancelled, lambda: forq.worker.progress(1),
                 lambda: forq.worker.dict("d")["k"]):
        try:
            call()
            raise AssertionError("worked outside forqd")
        except RuntimeError as e:
            assert "inside a task that forqd runs" in str(e)


if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
