"""The grading sandbox (autodiff_ref/grading/sandbox.py): what a kernel run by the grader can
reach, what stops a runaway, and what happens where bubblewrap cannot start.

One notebook of probes runs in one sandboxed kernel, through GuardedExecute as nbgrader runs it,
in a folder laid out like a course being graded: each probe cell prints what it found, and the
tests read those lines. The whole class, attacks included, goes through real ``nbgrader
autograde`` in tests/test_grading.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

import autodiff_ref
from autodiff_ref.grading import sandbox
from autodiff_ref.grading.preprocessors import GRADING_METADATA, GuardedExecute

from notebook_tools import COURSE_DIR, REPO_ROOT, SOLUTIONS_DIR

MiB = 1024**2
PROCESS_LIMIT = 64
FILE_SIZE_LIMIT = 1 * MiB
SCRATCH_SIZE = 8 * MiB
CELL_TIMEOUT = 5
SECRET = "AUTODIFF_GRADER_SECRET"  # an environment variable of the grader the kernel must not see

# Each probe prints one JSON line: what the student's code found.
PROBES = {
    "folder": """
import json, os
print(json.dumps({"cwd": os.getcwd(), "files": sorted(os.listdir(".")), "data": open("data.txt").read()}))
""",
    "visible": """
import json, os
home = os.path.expanduser(HOME)
print(json.dumps({"exists": {path: os.path.exists(path) for path in PATHS},
                  "home": sorted(os.listdir(home)) if os.path.isdir(home) else []}))
""",
    "writes": """
import json, os
def attempt(path):
    try:
        with open(path, "w") as file:
            file.write("changed by the student")
        return "written"
    except OSError as error:
        return type(error).__name__
with open("data.txt", "w") as file:
    file.write("changed in the scratch copy")
print(json.dumps({path: attempt(path) for path in TARGETS}))
""",
    "environment": """
import json, os
print(json.dumps({"secret": SECRET in os.environ, "home": os.environ.get("HOME")}))
""",
    "network": """
import json, socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    result = "connected"
except OSError as error:
    result = type(error).__name__
print(json.dumps({"network": result}))
""",
    "memory": """
import json
import numpy as np
try:
    runaway = np.ones(3 * 1024**3 // 8)
    result = "allocated"
except MemoryError:
    result = "MemoryError"
print(json.dumps({"memory": result}))
""",
    "fork_bomb": """
import json, os, time
started = 0
try:
    for _ in range(10 * PROCESS_LIMIT):  # bounded, should the limit fail
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        started += 1
    result = "no limit"
except OSError as error:
    result = type(error).__name__
print(json.dumps({"fork_bomb": result, "started": started}))
""",
    "big_file": """
import json
try:
    with open("big.bin", "wb") as file:
        file.write(bytes(2 * FILE_SIZE_LIMIT))
    result = "written"
except OSError as error:
    result = error.strerror
print(json.dumps({"big_file": result}))
""",
    "many_files": """
import json
written = 0
try:
    for index in range(4 * SCRATCH_SIZE // FILE_SIZE_LIMIT):  # bounded, should the limit fail
        with open(f"part{index}.bin", "wb") as file:
            file.write(bytes(FILE_SIZE_LIMIT // 2))
        written += 1
    result = "all written"
except OSError as error:
    result = error.strerror
print(json.dumps({"many_files": result, "written": written}))
""",
    # The kernel's connection file (and so its folder on the grader's disk) is all it knows of
    # where the grader keeps its side of the sandbox.
    "runtime": """
import json, os, ipykernel.connect
folder = os.path.dirname(ipykernel.connect.get_connection_file())
def attempt(action):
    try:
        action()
        return "done"
    except OSError as error:
        return error.strerror
def plant():
    with open(os.path.join(folder, "planted"), "w") as file:
        file.write("written by the student")
print(json.dumps({"folder": folder, "write": attempt(plant), "chmod": attempt(lambda: os.chmod(folder, 0o777)),
                  "files": sorted(os.listdir(folder))}))
""",
    "endless_loop": "while True:\n    pass\n",
    "after_the_loop": 'import json\nprint(json.dumps({"after_the_loop": "ran"}))',
}


def printed(cell: nbformat.NotebookNode) -> dict:
    text = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed no result: {cell.outputs}"
    return json.loads(lines[-1])


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def sandboxed_executor(**settings) -> GuardedExecute:
    config = Config()
    config.GuardedExecute.sandbox = "bubblewrap"
    config.SandboxedKernelManager.process_limit = PROCESS_LIMIT
    config.SandboxedKernelManager.file_size_limit = FILE_SIZE_LIMIT
    config.SandboxedKernelManager.scratch_size = SCRATCH_SIZE
    return GuardedExecute(config=config, timeout=CELL_TIMEOUT, kernel_name="python3", **settings)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Run the probes as a student's notebook in a course being graded; what they printed."""
    course = tmp_path_factory.mktemp("course")
    (course / "solutions" / "a").mkdir(parents=True)
    (course / "solutions" / "a" / "a.ipynb").write_text("the instructor's solutions")
    (course / "gradebook.db").write_bytes(b"SQLite format 3\0 the class's grades")
    (course / "submitted" / "bob" / "a").mkdir(parents=True)
    (course / "submitted" / "bob" / "a" / "a.ipynb").write_text("bob's work")
    student = course / "autograded" / "alice" / "a"
    student.mkdir(parents=True)
    (student / "a.ipynb").write_text("alice's notebook, hidden tests restored")
    (student / "data.txt").write_text("alice's data")
    before = digests(course)

    paths = [str(course), str(course / "solutions"), str(course / "gradebook.db"), str(course / "submitted"),
             str(SOLUTIONS_DIR), str(COURSE_DIR)]
    package = Path(autodiff_ref.__file__).parent
    targets = [str(package / "ops.py"), str(package / "planted.py"), str(course / "submitted" / "bob" / "a" / "a.ipynb"),
               str(student / "data.txt"), "/usr/planted", "/tmp/planted"]
    prelude = (f"PATHS = {paths!r}\nHOME = {os.path.expanduser('~')!r}\nTARGETS = {targets!r}\nSECRET = {SECRET!r}\nPROCESS_LIMIT = {PROCESS_LIMIT}\n"
               f"FILE_SIZE_LIMIT = {FILE_SIZE_LIMIT}\nSCRATCH_SIZE = {SCRATCH_SIZE}\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(prelude)] + [
        nbformat.v4.new_code_cell(source, metadata={"probe": name}) for name, source in PROBES.items()
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    scratch_root = tmp_path_factory.mktemp("grader-tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET, "s3cret")
        patch.setattr(tempfile, "tempdir", str(scratch_root))  # where the sandbox's own folders go
        sandboxed_executor().preprocess(notebook, {"metadata": {"path": str(student)}})
    results = {cell.metadata["probe"]: cell for cell in notebook.cells if "probe" in cell.metadata}
    return {"course": course, "student": student, "before": before, "notebook": notebook, "cells": results,
            "paths": paths, "targets": targets, "scratch_root": scratch_root}


pytestmark = [pytest.mark.sandbox, pytest.mark.notebooks]


def test_the_kernel_works_in_a_throwaway_copy_of_the_students_folder(probed):
    found = printed(probed["cells"]["folder"])
    assert found == {"cwd": "/tmp/a", "files": ["data.txt"], "data": "alice's data"}
    assert probed["notebook"].metadata[GRADING_METADATA] == {"sandbox": "bubblewrap"}


def test_the_kernel_sees_nothing_of_the_course_or_the_graders_home(probed):
    found = printed(probed["cells"]["visible"])
    assert found["exists"] == {path: False for path in probed["paths"]}
    # Of the home folder, only the way to a Python installed there (pyenv, conda), if any.
    home = Path.home()
    on_the_way = {(home / entry) for entry in found["home"]}
    assert all(any(Path(folder).is_relative_to(path) for folder in sandbox._python_folders()) for path in on_the_way)


def test_nothing_the_kernel_writes_reaches_the_machine(probed):
    package, planted, classmate, own, usr, tmp = probed["targets"]
    assert printed(probed["cells"]["writes"]) == {
        package: "OSError", planted: "OSError", classmate: "FileNotFoundError", own: "FileNotFoundError",
        usr: "OSError", tmp: "written",  # its own /tmp, thrown away
    }
    assert digests(probed["course"]) == probed["before"]
    assert not (Path(autodiff_ref.__file__).parent / "planted.py").exists()
    assert not Path("/tmp/planted").exists() or Path("/tmp/planted").read_text() != "changed by the student"
    assert list(probed["scratch_root"].iterdir()) == []  # the sandbox's folders are removed


def test_the_kernel_gets_none_of_the_graders_environment(probed):
    assert printed(probed["cells"]["environment"]) == {"secret": False, "home": "/tmp"}


def test_the_kernel_has_no_network(probed):
    assert printed(probed["cells"]["network"]) == {"network": "OSError"}


def test_a_runaway_allocation_gets_a_memory_error(probed):
    assert printed(probed["cells"]["memory"]) == {"memory": "MemoryError"}


def test_a_fork_bomb_stops_at_the_process_limit(probed):
    found = printed(probed["cells"]["fork_bomb"])
    assert found["fork_bomb"] == "BlockingIOError" and found["started"] < PROCESS_LIMIT


def test_files_stop_at_the_file_size_limit_and_the_scratch_size(probed):
    assert printed(probed["cells"]["big_file"]) == {"big_file": "File too large"}
    found = printed(probed["cells"]["many_files"])
    assert found["many_files"] == "No space left on device" and found["written"] < 2 * SCRATCH_SIZE // FILE_SIZE_LIMIT


def test_the_kernels_runtime_folder_is_read_only_to_it(probed):
    found = printed(probed["cells"]["runtime"])
    assert found["write"] == found["chmod"] == "Read-only file system"
    assert found["files"] == ["kernel.json"]  # its sockets are in its own /tmp
    assert Path(found["folder"]).is_relative_to(probed["scratch_root"])  # the folder the grader made
    assert printed(probed["cells"]["after_the_loop"]) == {"after_the_loop": "ran"}  # grading went on


def test_an_endless_loop_is_interrupted_and_the_next_cell_runs(probed):
    looping = probed["cells"]["endless_loop"]
    assert {"KeyboardInterrupt", "CellTimeoutError"} & {o.get("ename") for o in looping.outputs}
    assert printed(probed["cells"]["after_the_loop"]) == {"after_the_loop": "ran"}


def test_without_the_sandbox_the_notebook_records_off(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    GuardedExecute(timeout=60, kernel_name="python3").preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    assert notebook.metadata[GRADING_METADATA] == {"sandbox": "off"}


# --- where the sandbox cannot start: fast, and run everywhere --------------------------------------


def test_without_bwrap_on_path_the_problem_and_the_way_out_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = sandbox.sandbox_problem()
    assert "bwrap is not on PATH" in problem
    assert "apt-get install bubblewrap" in problem and 'SANDBOX = "off"' in problem


def test_a_bwrap_that_cannot_make_namespaces_is_reported_with_its_reason(tmp_path, monkeypatch):
    refusal = "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces."
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\necho '{refusal}' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    problem = sandbox.sandbox_problem()
    assert refusal in problem and "user namespaces are switched off" in problem and 'SANDBOX = "off"' in problem


@pytest.mark.notebooks
def test_nbgrader_autograde_stops_before_the_first_student_when_bwrap_is_missing(tmp_path):
    assignment = "01_computational_graph"
    for folder in ("solutions", "course"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / assignment).symlink_to(REPO_ROOT / folder / assignment)
    (tmp_path / "nbgrader_config.py").write_text((REPO_ROOT / "nbgrader_config.py").read_text())

    submitted = tmp_path / "submitted" / "alice" / assignment
    submitted.mkdir(parents=True)
    (submitted / f"{assignment}.ipynb").write_bytes((REPO_ROOT / "course" / assignment / f"{assignment}.ipynb").read_bytes())
    # PATH is Python's own folder only: nbgrader runs, bwrap is not found.
    graded = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", assignment, "--create", "--force"], cwd=tmp_path,
        env=dict(os.environ, PATH=str(Path(sys.executable).parent)), capture_output=True, text=True, timeout=600,
    )
    assert graded.returncode != 0
    assert "Grading stopped before the first student: bwrap is not on PATH" in graded.stderr
    assert not (tmp_path / "autograded").exists()


def test_a_kernel_ends_with_the_sandbox_that_runs_it(tmp_path):
    """When the grader kills bwrap (a kernel that does not shut down in time), the kernel must
    not live on: it would hold the grader's output open, and go on using the machine."""
    async def start_then_kill_bwrap() -> int:
        manager = sandbox.SandboxedKernelManager(kernel_name="python3")
        await manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        kernel = manager.kernel_pid()
        manager.provisioner.process.kill()  # what jupyter_client does to a kernel that will not stop
        manager.provisioner.process.wait()
        client.stop_channels()
        await manager.cleanup_resources()
        return kernel

    kernel = asyncio.run(start_then_kill_bwrap())
    for _ in range(50):
        if not Path(f"/proc/{kernel}").exists() or "Z" in Path(f"/proc/{kernel}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(kernel, 9)
        pytest.fail("the kernel outlived its bwrap")


# --- grading as a user other than root -------------------------------------------------------------

NOBODY = 65534  # the unprivileged account every Linux system has
# Run by uid 65534 in a folder of its own: the sandbox's own check, then a notebook through
# GuardedExecute with the sandbox on, as `nbgrader autograde` would as that user.
GRADE_AS_ANOTHER_USER = """
import json, sys
import nbformat
from autodiff_ref.grading.preprocessors import GuardedExecute
from autodiff_ref.grading.sandbox import sandbox_problem
from traitlets.config import Config

folder = sys.argv[1]
notebook = nbformat.read(f"{folder}/student/a.ipynb", as_version=4)
config = Config()
config.GuardedExecute.sandbox = "bubblewrap"
GuardedExecute(config=config, timeout=60, kernel_name="python3").preprocess(notebook, {"metadata": {"path": f"{folder}/student"}})
nbformat.write(notebook, f"{folder}/graded.ipynb")
print(json.dumps({"problem": sandbox_problem()}))
"""


def _closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users may not pass through, if any."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def _opened(closed: dict[Path, Path], held: Path) -> str:
    """Shell commands that, in a private mount namespace, put a tmpfs that everyone may pass through
    over each closed folder, with the one entry under it on the way to its path bound back."""
    commands = []
    for number, (folder, path) in enumerate(closed.items()):
        entry = path.relative_to(folder).parts[0]
        original = held / str(number)
        folder_, original_, entry_inside, entry_original = (
            shlex.quote(str(p)) for p in (folder, original, folder / entry, original / entry))
        commands += [f"mkdir -p {original_}", f"mount --bind {folder_} {original_}",
                     f"mount -t tmpfs -o mode=755 tmpfs {folder_}", f"mkdir {entry_inside}",
                     f"mount --bind {entry_original} {entry_inside}"]
    return " && ".join(commands)


def test_grading_works_as_a_user_other_than_root():
    """Run as root, the other tests here grade as root (bwrap privileged, the kernel under
    setpriv); this one grades as uid 65534, where bwrap makes a user namespace of its own."""
    if os.geteuid() != 0:
        pytest.skip("not running as root: every other test here already grades as a user other than root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed, so the test cannot switch to another user")
    # Python itself and the course: a Python that cannot read its own installation falls back to
    # the system's standard library outside, and is not found at all inside the sandbox.
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    folder = Path(tempfile.mkdtemp(prefix="autodiff-nonroot-"))
    # A root-only folder on the way (Python under /root/.pyenv, say) is opened in a mount
    # namespace of the test's own, so that the machine's /root stays as it is.
    closed = {closed: path for path in (Path(sys.executable).resolve(), REPO_ROOT)
              if (closed := _closed_to_others(path))}
    if closed:
        if shutil.which("unshare") is None:
            pytest.skip(f"uid {NOBODY} may not pass through {', '.join(map(str, closed))}, and unshare "
                        "(util-linux), which would open them for this test alone, is not installed")
        as_nobody = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     _opened(closed, folder / "held") + ' && exec "$@"', "sh", *as_nobody]
    try:
        environment = dict(os.environ, HOME=str(folder), TMPDIR=str(folder), PYTHONPATH=str(REPO_ROOT))
        (folder / "student").mkdir()
        (folder / "student" / "data.txt").write_text("the student's data")
        notebook = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(PROBES["runtime"]),
            nbformat.v4.new_code_cell('import json, os\nprint(json.dumps({"uid": os.getuid(), "files": os.listdir()}))'),
        ])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, folder / "student" / "a.ipynb")
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        graded = subprocess.run([*as_nobody, sys.executable, "-c", GRADE_AS_ANOTHER_USER, str(folder)],
                                env=environment, capture_output=True, text=True, timeout=300)
        assert graded.returncode == 0, graded.stderr
        assert json.loads(graded.stdout.splitlines()[-1]) == {"problem": None}
        runtime, who = nbformat.read(folder / "graded.ipynb", as_version=4).cells
        assert printed(who) == {"uid": NOBODY, "files": ["data.txt"]}  # the user namespace maps it to itself
        found = printed(runtime)
        assert found["write"] == found["chmod"] == "Read-only file system" and found["files"] == ["kernel.json"]
    finally:
        shutil.rmtree(folder)
