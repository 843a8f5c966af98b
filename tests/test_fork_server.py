"""Kernels forked from check's fork server behave as kernels started the usual way."""

from __future__ import annotations

import json
import os
import time

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from autodiff_ref.grading.check import shut_down, start_fork_server, start_kernel
from autodiff_ref.grading.fork_server import forking_works

pytestmark = pytest.mark.skipif(not forking_works(), reason="kernels are forked on Linux only")

# What a notebook could notice of how its kernel started.
FACTS = """
import json, os, sys
import matplotlib
import matplotlib.pyplot as plt
print(json.dumps({
    "launcher": os.path.basename(sys.argv[0]),
    "argv": [argument for argument in sys.argv[1:] if not argument.endswith(".json")],
    "path": sys.path,
    "cwd": os.getcwd(),
    "env": {name: os.environ.get(name) for name in
            ("OPENBLAS_NUM_THREADS", "MPLBACKEND", "JPY_PARENT_PID", "HOME", "PATH")},
    "backend": matplotlib.get_backend(),
    "main": type(sys.modules["__main__"]).__name__,
    "signals": [getattr(handler, "__name__", str(handler))
                for handler in map(__import__("signal").getsignal, (2, 17))],
    "session_leader": os.getsid(0) == os.getpid(),
}))
"""


@pytest.fixture
def fork_server():
    server = start_fork_server()
    yield server
    server.close()


def _run(cells: list[str], folder, fork_server, timeout: int = 60) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    kernel = start_kernel(folder, fork_server)
    client = NotebookClient(notebook, km=kernel, timeout=timeout, allow_errors=True, interrupt_on_timeout=True)
    try:
        client.execute()
    finally:
        shut_down(kernel)
    return notebook


def _printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def test_a_forked_kernel_looks_like_a_launched_one(fork_server, tmp_path):
    show = "plt.plot([1, 2]); plt.show()"
    forked = _run([FACTS, show], tmp_path, fork_server)
    launched = _run([FACTS, show], tmp_path, None)
    assert json.loads(_printed(forked.cells[0])) == json.loads(_printed(launched.cells[0]))
    # A figure goes to the notebook (the inline backend), with no warning on stderr.
    for notebook in (forked, launched):
        assert [output.output_type for output in notebook.cells[1].outputs] == ["display_data"]


def test_forked_kernels_do_not_share_numpys_random_state(fork_server, tmp_path):
    draw = "import numpy as np; print(np.random.rand())"
    assert _printed(_run([draw], tmp_path, fork_server).cells[0]) != _printed(_run([draw], tmp_path, fork_server).cells[0])


def test_an_endless_cell_is_interrupted_and_the_kernel_goes_on(fork_server, tmp_path):
    notebook = _run(["while True: pass", "print('after')"], tmp_path, fork_server, timeout=3)
    assert [output.output_type for output in notebook.cells[0].outputs] == ["error"]
    assert _printed(notebook.cells[1]) == "after\n"


def test_a_subprocess_of_the_notebook_ends_with_its_kernel(fork_server, tmp_path):
    start = "import subprocess; print(subprocess.Popen(['sleep', '60']).pid)"
    notebook = _run([start], tmp_path, fork_server)
    sleeper = int(_printed(notebook.cells[0]))
    deadline = time.monotonic() + 10
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)


def test_a_kernel_that_dies_is_seen_dead(fork_server, tmp_path):
    with pytest.raises(DeadKernelError):
        _run(["import os; os._exit(3)", "print('never')"], tmp_path, fork_server)


@pytest.mark.parametrize("ending", ["the server is killed", "the check is killed"])
def test_kernels_end_with_their_server_and_with_their_check(ending, fork_server, tmp_path):
    kernel = start_kernel(tmp_path, fork_server)
    client = kernel.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=60)
        pid = kernel.provisioner.process.pid
        if ending == "the server is killed":
            fork_server._process.kill()  # the kernel's parent poller sees its parent go
        else:
            fork_server._process.stdin.close()  # the server stops the kernels left, then ends
            assert fork_server._process.wait(timeout=10) == 0
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        client.stop_channels()
        shut_down(kernel)


@pytest.mark.parametrize("wait_until_ready", [False, True])
def test_the_server_ends_when_its_check_closes_it_and_says_nothing(wait_until_ready, capfd):
    server = start_fork_server()
    process = server._process
    if wait_until_ready:
        assert process.stdout.readline() == "ready\n"
    server.close()
    assert process.poll() is not None
    assert capfd.readouterr().err == ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not collected it yet.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_files_in_the_checks_folder_do_not_shadow_what_the_server_imports(tmp_path, monkeypatch):
    (tmp_path / "numpy.py").write_text("raise SystemExit('the numpy.py of the folder was imported')\n")
    monkeypatch.chdir(tmp_path)
    server = start_fork_server()
    try:
        notebook = _run(["import numpy; print(numpy.__name__, hasattr(numpy, 'ndarray'))"], tmp_path / "..", server)
    finally:
        server.close()
    assert _printed(notebook.cells[0]) == "numpy True\n"
