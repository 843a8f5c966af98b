"""Workload 6: the time nbgrader takes to autograde one student's notebook, per notebook.

For each assignment, a temporary course directory gets this repository's ``nbgrader_config.py``,
``solutions/`` and ``course/`` (nbgrader's source and release directories);
``nbgrader generate_assignment NAME --force`` enters the assignment in the gradebook; the learner
notebook, with every solution cell written as in the instructor's version, goes in
``submitted/bench/NAME/``; and ``nbgrader autograde NAME --student bench --create --force`` is
timed. That run starts a kernel and executes the whole notebook, so it is timed once per
notebook, not in interleaved rounds. ``generate_assignment`` is not part of the time: it runs
once per course, not once per student.

Each notebook is graded twice, with the grading sandbox (``nbgrader_config.py`` as it is) and
with the instructor guide's opt-out (``SANDBOX = "off"``), one right after the other, so that
both see the same machine; where the sandbox cannot start, only the second runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDENT = "bench"


def assignments() -> list[str]:
    """The notebooks of the course, in order: 01_computational_graph ... 07_training_a_network."""
    return sorted(path.name for path in (REPO_ROOT / "solutions").iterdir() if path.is_dir())


def _nbgrader(course: Path, *arguments: str) -> subprocess.CompletedProcess:
    # nbgrader shells out to alembic and starts kernels: both live next to this Python.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *arguments],
        cwd=course, env=env, capture_output=True, text=True, timeout=1800,
    )


def _solved(learner: dict, instructor: dict) -> dict:
    """The learner notebook with every solution cell as in the instructor's version."""
    def grade_id(cell: dict) -> str | None:
        metadata = cell.get("metadata", {}).get("nbgrader", {})
        return metadata.get("grade_id") if metadata.get("solution") else None

    answers = {grade_id(cell): cell["source"] for cell in instructor["cells"] if grade_id(cell)}
    for cell in learner["cells"]:
        if grade_id(cell):
            cell["source"] = answers[grade_id(cell)]
    return learner


def _fail(name: str, step: str, result: subprocess.CompletedProcess) -> RuntimeError:
    tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
    return RuntimeError(f"grading {name}: nbgrader {step} exited {result.returncode}:\n  " + "\n  ".join(tail))


def time_autograde(name: str, sandbox: bool = True) -> tuple[float, float, float]:
    """Seconds for ``nbgrader autograde`` of one solved notebook of ``name``, its score and maximum,
    with the grading sandbox or without."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as folder:
        course = Path(folder)
        config = (REPO_ROOT / "nbgrader_config.py").read_text()
        if not sandbox:
            config = config.replace('SANDBOX = "bubblewrap"', 'SANDBOX = "off"')
        (course / "nbgrader_config.py").write_text(config)
        for directory in ("solutions", "course"):
            shutil.copytree(REPO_ROOT / directory / name, course / directory / name)
        generated = _nbgrader(course, "generate_assignment", name, "--force")
        if generated.returncode != 0:
            raise _fail(name, "generate_assignment", generated)
        notebook = f"{name}.ipynb"
        learner = json.loads((course / "course" / name / notebook).read_text())
        instructor = json.loads((course / "solutions" / name / notebook).read_text())
        submitted = course / "submitted" / STUDENT / name
        submitted.mkdir(parents=True)
        (submitted / notebook).write_text(json.dumps(_solved(learner, instructor), indent=1))

        start = time.perf_counter()
        graded = _nbgrader(course, "autograde", name, "--student", STUDENT, "--create", "--force")
        seconds = time.perf_counter() - start
        if graded.returncode != 0 or not (course / "autograded" / STUDENT / name / notebook).exists():
            raise _fail(name, "autograde", graded)
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
            submission = gradebook.find_submission_notebook(name, name, STUDENT)
            return seconds, submission.score, submission.max_score


def run_grading(names: list[str] | None = None) -> list[dict]:
    """Time each notebook's autograde with and without the sandbox, print a table with the total
    per student, return the rows."""
    from autodiff_ref.grading.sandbox import sandbox_problem

    names = names or assignments()
    problem = sandbox_problem()
    modes = {"sandboxed": True, "unsandboxed": False} if problem is None else {"unsandboxed": False}
    print("\nnbgrader autograde of one student's solved notebook (one run each: it starts a kernel)")
    if problem:
        print(f"  (sandboxed runs skipped: {problem.splitlines()[0]})")
    print(f"  {'notebook':<32}" + "".join(f"{mode + ' s':>16}" for mode in modes) + f"{'score':>14}")
    rows = []
    for name in names:
        line = f"  {name:<32}"
        for mode, sandbox in modes.items():
            seconds, score, max_score = time_autograde(name, sandbox)
            line += f"{seconds:>16.2f}"
            rows.append({"workload": f"nbgrader autograde {name}", "engine": f"nbgrader, {mode}", "seconds": seconds,
                         "score": score, "max_score": max_score})
        print(line + f"{f'{score:g} / {max_score:g}':>14}")
    totals = {mode: sum(row["seconds"] for row in rows if row["engine"] == f"nbgrader, {mode}") for mode in modes}
    print(f"  {'whole course, per student':<32}" + "".join(f"{total:>16.2f}" for total in totals.values()))
    rows += [{"workload": "nbgrader autograde, whole course per student", "engine": f"nbgrader, {mode}",
              "seconds": total} for mode, total in totals.items()]
    return rows
