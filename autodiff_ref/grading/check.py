"""Instant feedback for self-paced learners: grade a course notebook on your own machine.

    autodiff-course check course/03_scalar_autodiff/03_scalar_autodiff.ipynb
    autodiff-course progress            # every notebook in course/
    autodiff-course audit               # instructors: after nbgrader autograde, what to look at
    python -m autodiff_ref.grading.check check PATH.ipynb

``check`` runs a copy of the learner's notebook headless (the notebook itself is never changed)
with the full tests of the instructor version in ``solutions/``, hidden tests included, the way
``nbgrader autograde`` would, but without a course database. The learner's solution cells run as
written; every read-only or test cell is taken from ``solutions/`` (matched by its ``grade_id``),
so an edited test counts for nothing. It prints one row per exercise: points earned of possible,
pass or fail, and the first line of what went wrong. The exit status is 0 only when every
exercise passes.

``audit`` is for instructors, after ``nbgrader autograde``: in the course folder it lists every
submitted notebook that was not graded (the autograde log says why) and every autograded one in
which the grader found cells changed, checks replaced, or the kernel dead. Exit status 0 means
there is nothing to look at.

The course root is found by walking up from the notebook to the folder holding both
``nbgrader_config.py`` and ``solutions/`` (a clone of the course repository).
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import DeduplicateIds

from autodiff_ref.grading.preprocessors import (
    GuardedExecute,
    audit,
    error_outputs,
    is_fixed_cell,
    is_test_cell,
    nbgrader_metadata,
    put_back_deleted,
    tampering,
)

DEFAULT_CELL_TIMEOUT = 120
HIDDEN_TEST_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END)\s+HIDDEN\s+TESTS\s*$", re.IGNORECASE)
IGNORED_FILES = (".ipynb_checkpoints", "__pycache__", "*.pyc")
_SILENT = logging.getLogger("autodiff_ref.grading.check.silent")
_SILENT.disabled = True


class CheckError(Exception):
    """A notebook that cannot be checked at all; the message says what to do about it."""


@dataclass
class ExerciseResult:
    grade_id: str
    points: float
    earned: float
    message: str  # empty when passed

    @property
    def passed(self) -> bool:
        return self.earned == self.points


# --- finding and reading notebooks --------------------------------------------------------------


def find_course_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds ``nbgrader_config.py`` and ``solutions/``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise CheckError(
        f"no course folder found above {start}: expected a folder holding both "
        "nbgrader_config.py and solutions/ (a clone of the course repository)"
    )


def read_notebook(path: Path) -> NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise CheckError(f"{path}: no such file") from None
    except Exception as error:  # nbformat raises several kinds for a damaged file
        raise CheckError(
            f"{path} is not a readable notebook ({type(error).__name__}: {error}). "
            "Restore it from a backup or from a fresh copy of the course notebook."
        ) from None


def released_source(source: str) -> str:
    """A test cell's source as learners got it: without the hidden tests and their markers."""
    kept, hidden = [], False
    for line in source.split("\n"):
        marker = HIDDEN_TEST_MARKER.match(line)
        if marker:
            hidden = marker.group(1).upper() == "BEGIN"
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def without_hidden_test_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if not HIDDEN_TEST_MARKER.match(line))


# --- building the notebook that is run ----------------------------------------------------------


def with_instructor_tests(
    learner: NotebookNode, instructor: NotebookNode, name: str
) -> tuple[NotebookNode, list[str]]:
    """A copy of ``learner`` whose fixed cells (tests included, hidden ones too) come from
    ``instructor``, and notes on the fixed cells the learner had edited or deleted.

    Deleted cells are put back, as the grader does. Raises :class:`CheckError` when cells are
    out of order or changed in kind.
    """
    handed_out = copy.deepcopy(instructor)
    for cell in handed_out.cells:
        if is_fixed_cell(cell):
            cell.source = released_source(cell.source)
    learner, duplicated = without_duplicate_ids(learner)
    edited, deleted, moved = tampering(learner, handed_out)
    fresh_copy = "take the cells back from a fresh copy of the course notebook"
    if moved:
        raise CheckError(
            f"{name}: cells are out of order (first one moved: {moved[0]}); put them back in the "
            f"course order or {fresh_copy}"
        )
    runnable = copy.deepcopy(learner)
    for grade_id in deleted:
        put_back_deleted(runnable, handed_out, grade_id)
    fixed = {nbgrader_metadata(cell)["grade_id"]: cell for cell in instructor.cells if is_fixed_cell(cell)}
    for cell in runnable.cells:
        original = fixed.get(nbgrader_metadata(cell).get("grade_id"))
        if original is None:
            continue
        if cell.cell_type != original.cell_type:
            raise CheckError(
                f"{name}: cell {nbgrader_metadata(cell)['grade_id']} was changed from {original.cell_type} "
                f"to {cell.cell_type}; {fresh_copy}"
            )
        cell.source = without_hidden_test_markers(original.source)
        cell.metadata["nbgrader"] = dict(nbgrader_metadata(original))
    notes = [
        f"cell {grade_id} appears more than once; as in grading, only its last copy counts and the "
        "others ran as your own code" for grade_id in duplicated
    ]
    notes += [f"you changed cell {grade_id}; the course's version ran instead" for grade_id in edited]
    notes += [f"cell {grade_id} was missing; the course's version was put back and ran" for grade_id in deleted]
    return runnable, notes


def without_duplicate_ids(notebook: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """A copy of ``notebook`` as the grader sees it when a grade_id appears more than once, and
    those grade_ids: nbgrader's ``DeduplicateIds`` keeps the last copy, and the earlier ones lose
    their nbgrader metadata and run as ordinary cells. (Its warning is not shown: the note is.)"""
    counts = Counter(nbgrader_metadata(cell).get("grade_id") for cell in notebook.cells)
    duplicated = [grade_id for grade_id, count in counts.items() if grade_id is not None and count > 1]
    deduplicated, _ = DeduplicateIds(log=_SILENT).preprocess(copy.deepcopy(notebook), {})
    return deduplicated, duplicated


def run_notebook(notebook: NotebookNode, folder: Path, timeout: int) -> NotebookNode:
    """Run ``notebook`` in place in a fresh kernel whose working directory is ``folder``."""
    # No figures are drawn (the table is all a check prints), and the kernel's warning that it
    # talks over local TCP would only alarm a learner.
    executor = GuardedExecute(
        timeout=timeout, kernel_name="python3",
        extra_arguments=["--InlineBackend.figure_formats=set()", "--IPKernelApp.log_level=ERROR"],
    )
    executor.preprocess(notebook, {"metadata": {"path": str(folder)}})
    return notebook


# --- reading the results ------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def what_to_fix(error: NotebookNode, broken_answer: str | None, timeout: int) -> str:
    """The first line that tells the learner what to do about a failed test cell."""
    name, value = error.get("ename", "Error"), _first_line(error.get("evalue", ""))
    if name == "NotImplementedError":
        return "not written yet: replace `raise NotImplementedError()` in the exercise above"
    if name in ("CellTimeoutError", "KeyboardInterrupt"):
        return f"stopped after {timeout} s: look for an endless loop"
    if broken_answer and name in ("NameError", "AttributeError", "ImportError"):
        return f"your exercise cell above failed first: {broken_answer}"
    if name == "KernelDied":
        return value
    if value and name in ("CheckFailure", "AssertionError"):
        return value
    return f"{name}: {value}" if value else f"{name} (the test's assertion failed)"


def exercise_results(notebook: NotebookNode, timeout: int) -> list[ExerciseResult]:
    """One result per autograded test cell of a notebook that has run."""
    results = []
    broken_answer = None  # the last error of an answer cell since the previous test
    for cell in notebook.cells:
        meta = nbgrader_metadata(cell)
        if cell.cell_type == "code" and meta.get("solution"):
            errors = [e for e in error_outputs(cell) if e.get("ename") != "NotImplementedError"]
            if errors:
                broken_answer = f"{errors[0].ename}: {_first_line(errors[0].get('evalue', ''))}"
        if not is_test_cell(cell):
            continue
        points = float(meta.get("points", 0))
        errors = error_outputs(cell)
        message = what_to_fix(errors[0], broken_answer, timeout) if errors else ""
        results.append(ExerciseResult(meta["grade_id"], points, 0.0 if errors else points, message))
        broken_answer = None
    return results


def format_table(title: str, results: list[ExerciseResult]) -> str:
    width = max([len("exercise"), *(len(r.grade_id) for r in results)])
    points = [f"{r.earned:g} / {r.points:g}" for r in results]
    points_width = max([len("points"), *(len(p) for p in points)])
    lines = [title, f"  {'exercise':<{width}}  {'points':>{points_width}}  result  what to fix"]
    for result, shown in zip(results, points):
        verdict = "pass" if result.passed else "FAIL"
        lines.append(f"  {result.grade_id:<{width}}  {shown:>{points_width}}  {verdict:<6}  {result.message}".rstrip())
    earned = sum(r.earned for r in results)
    possible = sum(r.points for r in results)
    lines.append(f"  {'total':<{width}}  {f'{earned:g} / {possible:g}':>{points_width}}")
    return "\n".join(lines)


# --- the commands -------------------------------------------------------------------------------


def check_notebook(path: Path, timeout: int = DEFAULT_CELL_TIMEOUT) -> tuple[list[ExerciseResult], list[str]]:
    """Grade the notebook at ``path`` against the instructor's tests; ``path`` is left untouched.

    Returns one result per test cell, and notes on the fixed cells the learner edited or deleted.
    """
    path = Path(path)
    if path.suffix != ".ipynb":
        raise CheckError(f"{path} is not a notebook (.ipynb)")
    root = find_course_root(path.parent)
    instructor_path = root / "solutions" / path.parent.name / path.name
    if not instructor_path.is_file():
        raise CheckError(
            f"no instructor version of {path.name} at {instructor_path}: check expects "
            "course/NN_name/NN_name.ipynb with its twin in solutions/"
        )
    runnable, notes = with_instructor_tests(read_notebook(path), read_notebook(instructor_path), path.name)
    with tempfile.TemporaryDirectory(prefix="autodiff-check-") as scratch:
        # Run beside a copy of the notebook's folder, so files it reads are there and files it
        # writes land in the scratch folder.
        folder = Path(scratch) / path.parent.name
        shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns(*IGNORED_FILES))
        run_notebook(runnable, folder, timeout)
    return exercise_results(runnable, timeout), notes


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def _check_and_print(path: Path, timeout: int) -> bool:
    try:
        results, notes = check_notebook(path, timeout)
    except CheckError as error:
        print(f"{_shown(path)}\n  error: {error}")
        return False
    print(format_table(_shown(path), results))
    for note in notes:
        print(f"  note: {note}")
    return all(result.passed for result in results)


def _audit_and_print(course: Path) -> int:
    if not (course / "submitted").is_dir():
        print(f"error: {course} has no submitted/ folder; run audit in the nbgrader course folder")
        return 1
    count, findings = audit(course)
    print(f"{count} submitted notebooks in {course / 'submitted'}; {len(findings)} finding(s)")
    for finding in findings:
        print(f"  {finding.student}  {finding.assignment}/{finding.notebook}.ipynb: {finding.what}")
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="autodiff-course",
        description="Check course notebooks against the full tests, hidden ones included.",
    )
    parser.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT,
                        help="seconds a cell may run before it is stopped (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check one notebook")
    check.add_argument("notebook", type=Path)
    progress = commands.add_parser("progress", help="check every notebook in course/")
    progress.add_argument("course_dir", type=Path, nargs="?", default=Path.cwd(),
                          help="the course folder or any folder inside it (default: here)")
    audit_command = commands.add_parser(
        "audit", help="for instructors, after nbgrader autograde: list the submissions to look at")
    audit_command.add_argument("course_dir", type=Path, nargs="?", default=Path.cwd(),
                               help="the nbgrader course folder, holding submitted/ and autograded/ (default: here)")
    arguments = parser.parse_args(argv)

    if arguments.command == "check":
        return 0 if _check_and_print(arguments.notebook, arguments.timeout) else 1
    if arguments.command == "audit":
        return _audit_and_print(arguments.course_dir)

    try:
        root = find_course_root(arguments.course_dir)
    except CheckError as error:
        print(f"error: {error}")
        return 1
    notebooks = sorted((root / "course").glob("*/*.ipynb"))
    if not notebooks:
        print(f"error: no notebooks in {root / 'course'}")
        return 1
    all_passed = True
    for index, notebook in enumerate(notebooks):
        if index:
            print()
        all_passed &= _check_and_print(notebook, arguments.timeout)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
