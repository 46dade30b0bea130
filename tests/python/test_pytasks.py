"""The Python client against forqd's Python task runtime (issue 15): a decorated function in
place of a task name, keyword arguments (``kwargs=``, sent as ``{"$kw": ...}``), a task's
exception with its traceback text, and map over a Python function. Skipped when forq was built
without the runtime (FORQ_PYTHON_RUNTIME names the plugin; default build/daemon/python)."""
import os
import sys

import pytest

import forq
from conftest import BUILD, ROOT, Forqd

RUNTIME = os.environ.get("FORQ_PYTHON_RUNTIME", os.path.join(BUILD, "daemon", "python",
                                                             "python.so"))
TASKS = os.path.join(ROOT, "tests", "python_tasks")

pytestmark = pytest.mark.skipif(not os.path.exists(RUNTIME),
                                reason="forq was built without the Python task runtime")


@pytest.fixture(scope="module")
def pyforqd():
    d = Forqd("--python-runtime", RUNTIME, "--python-path", os.path.join(ROOT, "python"),
              "--python-path", TASKS, "--python-import", "ptasks")
    yield d
    d.remove()


@pytest.fixture(scope="module")
def ptasks():
    sys.path.insert(0, TASKS)
    try:
        import ptasks as mod
        yield mod
    finally:
        sys.path.remove(TASKS)


def test_a_decorated_function_and_kwargs(pyforqd, ptasks):
    with forq.Executor(pyforqd.endpoint) as ex:
        assert ex.submit(ptasks.add, 2, 3).result(10) == 5
        assert ex.submit(ptasks.add, 2, 3, kwargs={"scale": 10}).result(10) == 50
        assert ex.submit("ptasks.add", 2, kwargs={"b": 4}).result(10) == 6
        # a last positional dict that looks like keyword arguments stays an argument
        assert ex.submit(ptasks.echo, {"$kw": {"x": 1}}).result(10) == [[{"$kw": {"x": 1}}], {}]
        assert ex.submit(ptasks.echo, 1, kwargs={"k": "v"}).result(10) == [[1], {"k": "v"}]
        with pytest.raises(TypeError):
            ex.submit(ptasks.echo, kwargs={1: 2})


def test_map_of_a_python_function(pyforqd, ptasks):
    with forq.Executor(pyforqd.endpoint) as ex:
        assert list(ex.map(ptasks.add, range(10), range(10), chunksize=3)) == \
            [2 * i for i in range(10)]


def test_an_exception_carries_its_traceback(pyforqd, ptasks):
    with forq.Executor(pyforqd.endpoint) as ex:
        f = ex.submit(ptasks.add, "a", 1)
        with pytest.raises(forq.TaskError) as e:
            f.result(10)
        assert e.value.etype == "TypeError"
        assert "Traceback (most recent call last)" in str(e.value)
