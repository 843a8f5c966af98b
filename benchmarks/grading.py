"""Workload 6: the time nbgrader takes to autograde one student's notebook, per notebook.

For each assignment, a temporary course directory gets this repository's ``nbgrader_config.py``,
``solutions/`` and ``course/`` (nbgrader's source and release directories);
``nbgrader generate_assignment NAME --force`` enters the assignment in the gradebook; the learner
notebook, with every solution cell written as in the instructor's version, goes in
``submitted/bench/NAME/``; and ``nbgrader autograde NAME --student bench --create --force`` is
timed. That run starts a kernel and executes the whole notebook, so it is timed once per
notebook, not in interleaved rounds. ``generate_assignment`` is not part of the time: it runs
once per course, not once per student.
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


def time_autograde(name: str) -> tuple[float, float, float]:
    """Seconds for ``nbgrader autograde`` of one solved notebook of ``name``, its score and maximum."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as folder:
        course = Path(folder)
        shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
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
    """Time each notebook's autograde, print a table with the total per student, return the rows."""
    names = names or assignments()
    print("\nnbgrader autograde of one student's solved notebook (one run each: it starts a kernel)")
    print(f"  {'notebook':<32}{'seconds':>10}{'score':>14}")
    rows = []
    for name in names:
        seconds, score, max_score = time_autograde(name)
        print(f"  {name:<32}{seconds:>10.2f}{f'{score:g} / {max_score:g}':>14}")
        rows.append({"workload": f"nbgrader autograde {name}", "engine": "nbgrader", "seconds": seconds,
                     "score": score, "max_score": max_score})
    total = sum(row["seconds"] for row in rows)
    print(f"  {'whole course, per student':<32}{total:>10.2f}")
    rows.append({"workload": "nbgrader autograde, whole course per student", "engine": "nbgrader", "seconds": total})
    return rows
