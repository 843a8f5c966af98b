"""Workload 6: the time nbgrader takes to autograde the course, per notebook and per student.

A temporary course directory gets this repository's ``nbgrader_config.py``, ``solutions/`` and
``course/`` (nbgrader's source and release directories); ``nbgrader generate_assignment NAME
--force`` enters each assignment in the gradebook (not timed: it runs once per course, not once
per student); each student's ``submitted/`` folder gets the learner notebooks with every solution
cell written as in the instructor's version. Then two timings, each with the grading sandbox
(``nbgrader_config.py`` as it is) and with the instructor guide's opt-out (``SANDBOX = "off"``),
one right after the other so that both see the same machine; where the sandbox cannot start, only
the second runs:

- **one student alone**, ``nbgrader autograde NAME --student bench`` per notebook: what one late
  submission costs, nbgrader's own start included;
- **a class**, graded as the instructor guide says, two ``nbgrader autograde NAME`` commands at
  once on two halves of the class, one assignment after another: the whole course's time divided
  by the class size is the cost per student that #16's target (30 s on 2 cores) is about.

Every run starts a kernel per notebook and student, so each is timed once, not in rounds.
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
    """The notebooks of the course, in order: 01_computational_graph, 02_..., and so on."""
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


def _course(folder: Path, names: list[str], students: list[str], sandbox: bool) -> Path:
    """A course directory in ``folder`` with ``names`` released and each of ``students`` having
    handed in every one of them, solved."""
    course = Path(folder)
    config = (REPO_ROOT / "nbgrader_config.py").read_text()
    if not sandbox:
        config = config.replace('SANDBOX = "bubblewrap"', 'SANDBOX = "off"')
    (course / "nbgrader_config.py").write_text(config)
    for name in names:
        for directory in ("solutions", "course"):
            shutil.copytree(REPO_ROOT / directory / name, course / directory / name)
        generated = _nbgrader(course, "generate_assignment", name, "--force")
        if generated.returncode != 0:
            raise _fail(name, "generate_assignment", generated)
        notebook = f"{name}.ipynb"
        learner = json.loads((course / "course" / name / notebook).read_text())
        instructor = json.loads((course / "solutions" / name / notebook).read_text())
        solved = json.dumps(_solved(learner, instructor), indent=1)
        for student in students:
            submitted = course / "submitted" / student / name
            submitted.mkdir(parents=True)
            (submitted / notebook).write_text(solved)
    return course


def _scores(course: Path, name: str, students: list[str]) -> list[tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return [(submission.score, submission.max_score)
                for submission in (gradebook.find_submission_notebook(name, name, student) for student in students)]


def time_autograde(name: str, sandbox: bool = True) -> tuple[float, float, float]:
    """Seconds for ``nbgrader autograde`` of one solved notebook of ``name``, its score and maximum,
    with the grading sandbox or without."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as folder:
        course = _course(Path(folder), [name], [STUDENT], sandbox)
        start = time.perf_counter()
        graded = _nbgrader(course, "autograde", name, "--student", STUDENT, "--create", "--force")
        seconds = time.perf_counter() - start
        if graded.returncode != 0 or not (course / "autograded" / STUDENT / name / f"{name}.ipynb").exists():
            raise _fail(name, "autograde", graded)
        [(score, max_score)] = _scores(course, name, [STUDENT])
        return seconds, score, max_score


# A class of four, graded in two halves as the instructor guide splits one: by the id's first letter.
CLASS = ["a1", "a2", "n1", "n2"]
HALVES = ("[a-m]*", "[n-z]*")


def time_class(names: list[str], sandbox: bool = True) -> float:
    """Seconds per student to grade the whole course for ``CLASS``, two processes at once."""
    with tempfile.TemporaryDirectory(prefix="bench-class-") as folder:
        course = _course(Path(folder), names, CLASS, sandbox)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        start = time.perf_counter()
        for name in names:
            halves = [subprocess.Popen(
                [sys.executable, "-m", "nbgrader", "autograde", name, "--create", "--force", f"--student={half}"],
                cwd=course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            ) for half in HALVES]
            errors = [process.communicate(timeout=1800)[1] for process in halves]
            if any(process.returncode for process in halves):
                raise RuntimeError(f"grading the class on {name} failed:\n" + "\n".join(errors)[-3000:])
            if any(score != max_score for score, max_score in _scores(course, name, CLASS)):
                raise RuntimeError(f"grading the class on {name}: a solved notebook lost points")
        return (time.perf_counter() - start) / len(CLASS)


def run_grading(names: list[str] | None = None) -> list[dict]:
    """Time each notebook's autograde for one student, then the whole course for a class, with and
    without the sandbox; print a table, return the rows."""
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
    print(f"  {'whole course, one student alone':<32}" + "".join(f"{total:>16.2f}" for total in totals.values()))
    rows += [{"workload": "nbgrader autograde, whole course, one student alone", "engine": f"nbgrader, {mode}",
              "seconds": total} for mode, total in totals.items()]
    per_student = {mode: time_class(names, sandbox) for mode, sandbox in modes.items()}
    print(f"  {f'whole course, class of {len(CLASS)}, 2 processes':<32}"
          + "".join(f"{seconds:>16.2f}" for seconds in per_student.values()) + "  s per student")
    rows += [{"workload": f"nbgrader autograde, whole course per student, class of {len(CLASS)} in 2 processes",
              "engine": f"nbgrader, {mode}", "seconds": seconds} for mode, seconds in per_student.items()]
    return rows
