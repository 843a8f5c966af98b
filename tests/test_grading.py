"""A simulated class graded by the real nbgrader commands in a temporary course directory.

The course directory is made the way an instructor makes theirs: `solutions/`, `course/` and
`nbgrader_config.py` from this repository, `nbgrader generate_assignment`, then each student's
notebook in `submitted/<student>/<assignment>/` and `nbgrader autograde <assignment> --create
--force`. Scores are read back from the gradebook. The class holds one honest solution, one
untouched learner notebook, and one of each kind of broken or dishonest submission; every one of
them must be graded, and only the damaged cells may lose points.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from notebook_tools import (
    COURSE_DIR,
    REPO_ROOT,
    SOLUTIONS_DIR,
    error_outputs,
    is_solution_cell,
    is_test_cell,
    nbgrader_metadata,
    read_notebook,
)

ASSIGNMENT = "01_computational_graph"
# Short, so the endless loop is stopped quickly; the course's own setting is in nbgrader_config.py.
CELL_TIMEOUT = 5


def solved_notebook(learner: nbformat.NotebookNode, instructor: nbformat.NotebookNode):
    """The learner notebook with every solution cell written as in the instructor's version."""
    answers = {
        nbgrader_metadata(cell)["grade_id"]: cell.source
        for cell in instructor.cells if is_solution_cell(cell)
    }
    solved = nbformat.from_dict(json.loads(json.dumps(learner)))
    for cell in solved.cells:
        if is_solution_cell(cell):
            cell.source = answers[nbgrader_metadata(cell)["grade_id"]]
    return solved


def cell_with_id(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if nbgrader_metadata(cell).get("grade_id") == grade_id)


def points_of(notebook: nbformat.NotebookNode) -> dict[str, float]:
    return {
        nbgrader_metadata(cell)["grade_id"]: nbgrader_metadata(cell)["points"]
        for cell in notebook.cells if is_test_cell(cell)
    }


def learner_notebook() -> nbformat.NotebookNode:
    return read_notebook(COURSE_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")


def instructor_notebook() -> nbformat.NotebookNode:
    return read_notebook(SOLUTIONS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")


def with_solution_cell_changed(grade_id: str, change) -> nbformat.NotebookNode:
    notebook = solved_notebook(learner_notebook(), instructor_notebook())
    cell = cell_with_id(notebook, grade_id)
    cell.source = change(cell.source)
    return notebook


def build_class() -> dict[str, nbformat.NotebookNode | str]:
    """Each student's submission: a notebook, or raw text for a file that is not a notebook."""
    tampered = learner_notebook()
    cell_with_id(tampered, "test_build_z").source = "pass"
    return {
        "honest": solved_notebook(learner_notebook(), instructor_notebook()),
        "untouched": learner_notebook(),
        "test_edited_to_pass": tampered,
        "endless_loop": with_solution_cell_changed(
            "evaluate", lambda source: "while True:\n    pass\n" + source
        ),
        "kills_kernel": with_solution_cell_changed(
            "evaluate", lambda source: "import os\nos._exit(1)\n" + source
        ),
        "raises_system_exit": with_solution_cell_changed(
            "evaluate", lambda source: "raise SystemExit\n" + source
        ),
        "not_json": '{"cells": [ this is not JSON',
    }


def nbgrader(course: Path, *arguments: str) -> subprocess.CompletedProcess:
    # nbgrader shells out to alembic, which lives next to this Python.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *arguments],
        cwd=course, env=env, capture_output=True, text=True, timeout=600,
    )


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


@dataclass
class GradedClass:
    course: Path
    scores: dict[str, float]  # student -> notebook score
    cell_scores: dict[str, dict[str, float]]  # student -> grade_id -> score
    autograde: subprocess.CompletedProcess
    submitted_before: dict[str, str]
    submitted_after: dict[str, str]

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return read_notebook(self.course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> GradedClass:
    course = tmp_path_factory.mktemp("course")
    for folder in ("solutions", "course"):
        shutil.copytree(REPO_ROOT / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)

    generated = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    assert generated.returncode == 0, generated.stderr

    for student, submission in build_class().items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        target = folder / f"{ASSIGNMENT}.ipynb"
        if isinstance(submission, str):
            target.write_text(submission)
        else:
            nbformat.write(submission, target)
    before = file_digests(course / "submitted")

    autograde = nbgrader(
        course, "autograde", ASSIGNMENT, "--create", "--force",
        f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
    )

    scores, cell_scores = {}, {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            student = submission.student.id
            notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            scores[student] = notebook.score
            cell_scores[student] = {grade.name: grade.score for grade in notebook.grades}
    return GradedClass(course, scores, cell_scores, autograde, before, file_digests(course / "submitted"))


def total_points() -> float:
    return sum(points_of(instructor_notebook()).values())


def test_the_honest_solution_gets_full_marks(graded_class):
    assert graded_class.scores["honest"] == total_points() > 0


def test_the_untouched_learner_notebook_gets_zero(graded_class):
    assert graded_class.scores["untouched"] == 0


def test_a_test_cell_edited_to_pass_is_restored_and_fails(graded_class):
    assert graded_class.cell_scores["test_edited_to_pass"]["test_build_z"] == 0
    assert graded_class.scores["test_edited_to_pass"] == 0
    restored = cell_with_id(graded_class.autograded("test_edited_to_pass"), "test_build_z")
    assert restored.source != "pass" and error_outputs(restored)


@pytest.mark.parametrize("student", ["endless_loop", "kills_kernel", "raises_system_exit"])
def test_a_broken_cell_costs_only_the_points_that_depend_on_it(graded_class, student):
    lost = points_of(instructor_notebook())["test_evaluate"]
    assert graded_class.cell_scores[student]["test_evaluate"] == 0
    assert graded_class.scores[student] == total_points() - lost


def test_the_endless_loop_is_stopped_by_the_cell_timeout(graded_class):
    looping = cell_with_id(graded_class.autograded("endless_loop"), "evaluate")
    assert {"KeyboardInterrupt", "CellTimeoutError"} & {e.ename for e in error_outputs(looping)}


def test_a_kernel_death_is_explained_in_the_cell_where_it_happened(graded_class):
    notebook = graded_class.autograded("kills_kernel")
    dying = cell_with_id(notebook, "evaluate")
    assert [e.ename for e in error_outputs(dying)] == ["KernelDied"]
    assert "kernel died while running" in error_outputs(dying)[0].evalue
    assert error_outputs(cell_with_id(notebook, "test_evaluate"))[0].ename == "KernelDied"


def test_a_file_that_is_not_json_fails_alone(graded_class):
    # nbgrader exits 1 when any student failed, names them, and still grades the others.
    assert graded_class.autograde.returncode == 1
    assert "not_json" in graded_class.autograde.stderr
    assert graded_class.scores.get("not_json", 0) == 0
    assert set(graded_class.scores) >= set(build_class()) - {"not_json"}


def test_no_submitted_file_is_modified(graded_class):
    assert graded_class.submitted_after == graded_class.submitted_before
