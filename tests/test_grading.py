"""A simulated class graded by the real nbgrader commands in a temporary course directory.

The course directory is made the way an instructor makes theirs: `solutions/`, `course/` and
`nbgrader_config.py` from this repository, `nbgrader generate_assignment` for every notebook, then
each student's notebooks in `submitted/<student>/<assignment>/` and `nbgrader autograde
<assignment> --create --force`. Scores are read back from the gradebook.

For every notebook, three students: one submits the solution (full marks), one the untouched
learner notebook (zero), and one makes a single mistake in one exercise (say, a product's
gradient with its operands swapped) and must lose exactly the points of the cells that test it.
On top of that, notebook 01 gets one student of each kind of broken or dishonest submission;
every one of them must be graded, only the damaged cells may lose points, and grading the class a
second time must give the same gradebook. Notebooks 03, 05 and 06 get the attacks of issue #16
(switching the grader's guard off, the reference's source run with exec, the reference called
from a thread, graded cells and points of one's own): each gets nothing for what it attacks, and
the audit names it; and the feedback of 03 must not show its hidden tests.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autodiff_ref.grading.check import main as check_main
from autodiff_ref.grading.preprocessors import audit

from conftest import sandbox_problem
from notebook_tools import (
    COURSE_DIR,
    REPO_ROOT,
    SOLUTIONS_DIR,
    error_outputs,
    is_solution_cell,
    is_test_cell,
    nbgrader_metadata,
    notebook_paths,
    printed_text,
    read_notebook,
)

pytestmark = pytest.mark.notebooks

NOTEBOOKS = [path.parent.name for path in notebook_paths(SOLUTIONS_DIR)]
BROKEN = "01_computational_graph"  # the notebook every kind of broken submission is tried on
TENSOR_OPS = "05_tensor_ops"  # where a student hands in the reference Mul instead of writing it
REFERENCE_MUL_CATCHES = {"test_mul", "test_binary_ops_broadcast"}  # what the checks' own_work catches
# The grader's source scan refuses the whole answer cell that imports the reference, so Sub,
# written in the same cell, scores nothing either.
REFERENCE_MUL_REFUSED = REFERENCE_MUL_CATCHES | {"test_sub"}
# Short, so the endless loop is stopped quickly; the course's own setting is in nbgrader_config.py.
CELL_TIMEOUT = 10
SHOW_HIDDEN_TESTS = "HideHiddenTests.show_hidden_tests"  # the instructor's switch, in nbgrader_config.py

# One mistake per notebook, the kind a learner makes: (solution cell, text in it, replacement,
# the test cells that must catch it). Every other test cell of the notebook must still pass.
MISTAKES = {
    "01_computational_graph": (
        "build_sigmoid", 'op_node("exp", u1', 'op_node("exp", x', {"test_build_sigmoid"},
    ),
    "02_derivatives_and_chain_rule": ("mul_local", "return (b, a)", "return (a, b)", {"test_mul_local"}),
    "03_scalar_autodiff": (
        "mul", "local_grads = (other.data, self.data)", "local_grads = (self.data, other.data)",
        {"test_mul", "test_backward_with_your_ops"},
    ),
    "04_forward_mode": ("sin", "np.cos(x.value) * x.tangent", "-np.cos(x.value) * x.tangent", {"test_sin"}),
    "05_tensor_ops": (
        "sub_mul",
        "unbroadcast(out_grad * b, a.shape), unbroadcast(out_grad * a, b.shape)",
        "unbroadcast(out_grad * a, a.shape), unbroadcast(out_grad * b, b.shape)",
        {"test_mul", "test_binary_ops_broadcast"},
    ),
    "06_backward_pass": (
        "accumulate_grad", "tensor.grad += grad", "tensor.grad = grad", {"test_accumulate_grad", "test_backward"},
    ),
    "07_training_a_network": ("sgd", "velocity += g", "velocity[...] = g", {"test_sgd"}),
    "08_convolutions": (
        "conv2d_backward_input", "return dx_padded[:, :, p:p + height, p:p + width]", "return dx_padded",
        {"test_conv2d_backward_input"},
    ),
    "09_time_and_memory": ("bptt", "grad_h = grad_a @ W.T", "grad_h = grad_a @ W", {"test_bptt"}),
}

# Code a dishonest learner puts in an answer cell: every way of faking a pass this course knows.
MONKEYPATCHES = """
import numpy, numpy.testing, autodiff_ref.testing
numpy.allclose = lambda *args, **kwargs: True
numpy.testing.assert_allclose = lambda *args, **kwargs: None
autodiff_ref.testing.check_evaluate = lambda *args, **kwargs: None
autodiff_ref.testing.core.assert_close.__code__ = (lambda *args, **kwargs: None).__code__
check_evaluate = lambda *args, **kwargs: None
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
"""


def notebook_file(folder: Path, assignment: str) -> Path:
    return folder / assignment / f"{assignment}.ipynb"


def solved_notebook(assignment: str) -> nbformat.NotebookNode:
    """The learner notebook with every solution cell written as in the instructor's version."""
    answers = {
        nbgrader_metadata(cell)["grade_id"]: cell.source
        for cell in read_notebook(notebook_file(SOLUTIONS_DIR, assignment)).cells if is_solution_cell(cell)
    }
    solved = read_notebook(notebook_file(COURSE_DIR, assignment))
    for cell in solved.cells:
        if is_solution_cell(cell):
            cell.source = answers[nbgrader_metadata(cell)["grade_id"]]
    return solved


def cell_with_id(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if nbgrader_metadata(cell).get("grade_id") == grade_id)


def points_of(assignment: str) -> dict[str, float]:
    notebook = read_notebook(notebook_file(SOLUTIONS_DIR, assignment))
    tests = [nbgrader_metadata(cell) for cell in notebook.cells if is_test_cell(cell)]
    return {test["grade_id"]: test["points"] for test in tests}


def with_answer_changed(assignment: str, grade_id: str, change) -> nbformat.NotebookNode:
    notebook = solved_notebook(assignment)
    cell = cell_with_id(notebook, grade_id)
    changed = change(cell.source)
    assert changed != cell.source, f"the change to {assignment}'s {grade_id} did not apply"
    cell.source = changed
    return notebook


def with_mistake(assignment: str) -> nbformat.NotebookNode:
    grade_id, right, wrong, _ = MISTAKES[assignment]
    return with_answer_changed(assignment, grade_id, lambda source: source.replace(right, wrong))


def broken_submissions() -> dict[str, nbformat.NotebookNode | str]:
    """Students whose notebook 01 is broken or dishonest; raw text for a file that is not a notebook."""
    edited = read_notebook(notebook_file(COURSE_DIR, BROKEN))
    cell_with_id(edited, "test_build_z").source = "pass"
    deleted = read_notebook(notebook_file(COURSE_DIR, BROKEN))
    deleted.cells.remove(cell_with_id(deleted, "test_build_z"))
    reordered = solved_notebook(BROKEN)
    test = cell_with_id(reordered, "test_evaluate")
    reordered.cells.remove(test)
    reordered.cells.insert(reordered.cells.index(cell_with_id(reordered, "evaluate")), test)
    evaluate = "evaluate"
    pasted = solved_notebook(BROKEN)
    for grade_id in ("evaluate", "test_build_z"):  # an answer and a test cell, copied and pasted above
        original = cell_with_id(pasted, grade_id)
        pasted_copy = copy.deepcopy(original)
        pasted_copy.id = f"{original.id}-copy"  # Jupyter gives a pasted cell an id of its own
        pasted.cells.insert(pasted.cells.index(original), pasted_copy)
    return {
        "pasted_twice": pasted,
        "test_edited_to_pass": edited,
        "test_deleted": deleted,
        "endless_loop": with_answer_changed(BROKEN, evaluate, lambda source: "while True:\n    pass\n" + source),
        "kills_kernel": with_answer_changed(BROKEN, evaluate, lambda source: "import os\nos._exit(1)\n" + source),
        "raises_system_exit": with_answer_changed(BROKEN, evaluate, lambda source: "raise SystemExit\n" + source),
        "monkeypatches": monkeypatching_notebook(),
        "reordered": reordered,
        "not_json": '{"cells": [ this is not JSON',
    }


def reference_mul_notebook() -> nbformat.NotebookNode:
    """Right answers, except that Mul is the reference implementation, imported."""
    def import_instead(source: str) -> str:
        return source[: source.index("class Mul(Function):")] + "from autodiff_ref.ops import Mul as Mul\n"

    return with_answer_changed(TENSOR_OPS, "sub_mul", import_instead)


def monkeypatching_notebook() -> nbformat.NotebookNode:
    """Right answers except evaluate, which is wrong; the first answer cell fakes every check."""
    notebook = with_answer_changed(BROKEN, "evaluate", lambda source: source.replace("return root.value", "return 0.0"))
    first = cell_with_id(notebook, "build_z")
    first.source = MONKEYPATCHES + first.source
    return notebook


# --- attacks on the grading machine (issue #16): what the sandbox must keep from an answer cell ---
#
# Each is an answer cell a dishonest student could hand in, run through the real `nbgrader
# autograde` with the sandbox on. Without the sandbox each of them works: copying the solutions
# gets full marks on 03, 05 and 06, the gradebook gets extra credit, the classmate graded later
# loses his submission and scores 0. The students exist only where the sandbox can start.

COPIES_SOLUTIONS = ("03_scalar_autodiff", "05_tensor_ops", "06_backward_pass")
CLASSMATE = "solution"  # graded after "overwrites_classmate" (students are graded in order of id)

# Where a student's code would look for the course folder: up from its working folder (nbgrader
# runs it in autograded/<student>/<assignment>/), and the usual places, one level down.
FIND_COURSE_FILES = """
import glob, json, os

def course_files(*pattern):
    places, here = [], os.path.abspath(os.getcwd())
    while here not in places:
        places.append(here)
        here = os.path.dirname(here)
    for common in (os.path.expanduser("~"), "/home", "/srv", "/root", "/work", "/opt", "/tmp", "/var/tmp"):
        places += [common, *glob.glob(os.path.join(common, "*"))]
    found = []
    for place in places:
        found += [path for path in glob.glob(os.path.join(place, *pattern)) if path not in found]
    print("found:", found)
    return found
"""


def copying_solutions_notebook(assignment: str) -> nbformat.NotebookNode:
    """The learner notebook whose every answer cell runs the instructor's answer, read from disk."""
    notebook = read_notebook(notebook_file(COURSE_DIR, assignment))
    first, *others = [cell for cell in notebook.cells if is_solution_cell(cell)]
    first.source = FIND_COURSE_FILES + f"""
def steal(grade_id):
    for path in course_files("solutions", {assignment!r}, "*.ipynb"):
        for cell in json.load(open(path))["cells"]:
            if cell["metadata"].get("nbgrader", {{}}).get("grade_id") == grade_id:
                exec("".join(cell["source"]), globals())
"""
    for cell in (first, *others):
        cell.source += f"\nsteal({nbgrader_metadata(cell)['grade_id']!r})\n"
    return notebook


def editing_gradebook_notebook() -> nbformat.NotebookNode:
    """Right answers; the first answer cell also gives every grade in reach extra credit."""
    def add_attack(source: str) -> str:
        return FIND_COURSE_FILES + """
import sqlite3
for path in course_files("gradebook.db"):
    with sqlite3.connect(path) as gradebook:
        gradebook.execute("UPDATE grade SET extra_credit = 100, manual_score = 1000")
""" + source

    return with_answer_changed(BROKEN, "build_z", add_attack)


def overwriting_classmate_notebook() -> nbformat.NotebookNode:
    """Right answers; the first answer cell also overwrites every other student's notebook 01 in
    reach, submitted and autograded."""
    def add_attack(source: str) -> str:
        return FIND_COURSE_FILES + f"""
for folder in ("submitted", "autograded"):
    for path in course_files(folder, "*", {BROKEN!r}, "*.ipynb"):
        if "overwrites_classmate" not in path:
            try:
                with open(path, "w") as file:
                    file.write("{{}}")
            except OSError as error:
                print(path, error)
""" + source

    return with_answer_changed(BROKEN, "build_z", add_attack)


def attack_submissions() -> list[tuple[str, str, nbformat.NotebookNode]]:
    """(student, assignment, notebook) for every attack on the grading machine."""
    return [
        *[("copies_solutions", assignment, copying_solutions_notebook(assignment)) for assignment in COPIES_SOLUTIONS],
        ("edits_gradebook", BROKEN, editing_gradebook_notebook()),
        ("overwrites_classmate", BROKEN, overwriting_classmate_notebook()),
    ]


# --- end of the attacks on the grading machine ----------------------------------------------------


def nbgrader_process(course: Path, *arguments: str) -> subprocess.Popen:
    # nbgrader shells out to alembic, which lives next to this Python.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.Popen(
        [sys.executable, "-m", "nbgrader", *arguments],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def nbgrader(course: Path, *arguments: str) -> subprocess.CompletedProcess:
    return finished(nbgrader_process(course, *arguments))


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def submit(course: Path, student: str, assignment: str, submission: nbformat.NotebookNode | str) -> None:
    target = notebook_file(course / "submitted" / student, assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(submission, str):
        target.write_text(submission)
    else:
        nbformat.write(submission, target)


def read_gradebook(course: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(student, assignment) -> {grade_id: score, plus "total"} for every graded notebook."""
    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in NOTEBOOKS:
            for submission in gradebook.assignment_submissions(assignment):
                student = submission.student.id
                notebook = gradebook.find_submission_notebook(assignment, assignment, student)
                scores = {grade.name: grade.score for grade in notebook.grades}
                grades[student, assignment] = {**scores, "total": notebook.score}
    return grades


def exported_grades(course: Path) -> list[dict[str, str]]:
    exported = nbgrader(course, "export", "--to", "grades.csv")
    assert exported.returncode == 0, exported.stderr
    with open(course / "grades.csv", newline="") as file:
        return sorted(csv.DictReader(file), key=lambda row: (row["assignment"], row["student_id"]))


@dataclass
class GradedClass:
    course: Path
    grades: dict[tuple[str, str], dict[str, float]]
    logs: dict[str, subprocess.CompletedProcess]  # assignment -> its autograde run
    submitted_before: dict[str, str]
    exported: list[dict[str, str]]
    regraded: dict[tuple[str, str], dict[str, float]]  # notebook 01 graded again, in two processes
    exported_again: list[dict[str, str]]

    def autograded(self, student: str, assignment: str = BROKEN) -> nbformat.NotebookNode:
        return read_notebook(notebook_file(self.course / "autograded" / student, assignment))


def autograde(course: Path, assignment: str, *students: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``nbgrader autograde``, for every student, or one process per pattern of ``students`` at once."""
    command = ("autograde", assignment, "--create", "--force", f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}", *options)
    if assignment == BROKEN:
        # Notebook 01's broken students try the defences inside the kernel (putting back replaced
        # checks, surviving a kernel death); the source scan would refuse most of them before
        # they ran, so 01 is graded with the scan set to flag only (the instructor's switch).
        command += ("--FlagTampering.refuse_flagged_code=False",)
    if not students:
        return nbgrader(course, *command)
    processes = [nbgrader_process(course, *command, f"--student={pattern}") for pattern in students]
    runs = [finished(process) for process in processes]
    return subprocess.CompletedProcess(
        command, max(run.returncode for run in runs),
        "".join(run.stdout for run in runs), "".join(run.stderr for run in runs),
    )


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> GradedClass:
    course = tmp_path_factory.mktemp("course")
    for folder in ("solutions", "course"):
        shutil.copytree(REPO_ROOT / folder, course / folder)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)

    for assignment in NOTEBOOKS:
        generated = nbgrader(course, "generate_assignment", assignment, "--force")
        assert generated.returncode == 0, generated.stderr
        submit(course, "solution", assignment, solved_notebook(assignment))
        submit(course, "untouched", assignment, read_notebook(notebook_file(COURSE_DIR, assignment)))
        submit(course, "one_mistake", assignment, with_mistake(assignment))
    for student, submission in broken_submissions().items():
        submit(course, student, BROKEN, submission)
    submit(course, "uses_reference", TENSOR_OPS, reference_mul_notebook())
    for (student, assignment), attack in ATTACKS.items():
        submit(course, student, assignment, attack.notebook())
    if sandbox_problem() is None:
        for student, assignment, submission in attack_submissions():
            submit(course, student, assignment, submission)
    else:  # the instructor guide's opt-out, so that every other case still runs here
        config = course / "nbgrader_config.py"
        assert 'SANDBOX = "bubblewrap"' in config.read_text()
        config.write_text(config.read_text().replace('SANDBOX = "bubblewrap"', 'SANDBOX = "off"'))
    before = file_digests(course / "submitted")

    logs = {assignment: autograde(course, assignment) for assignment in NOTEBOOKS}
    grades = read_gradebook(course)
    exported = exported_grades(course)
    feedback = nbgrader(course, "generate_feedback", FEEDBACK_ASSIGNMENT, "--force")
    assert feedback.returncode == 0, feedback.stderr
    # Grade notebook 01 again, as two processes at once on the two halves of the class (how the
    # instructor guide has a 2-core machine grade a large class): the gradebook must not change.
    # This time the autograded notebooks keep their hidden tests (the instructor's switch), which
    # must not change a score either.
    autograde(course, BROKEN, "[a-m]*", "[n-z]*", options=(f"--{SHOW_HIDDEN_TESTS}=True",))
    return GradedClass(
        course, grades, logs, before, exported,
        regraded=read_gradebook(course), exported_again=exported_grades(course),
    )


def total_points(assignment: str) -> float:
    return sum(points_of(assignment).values())


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_the_solution_gets_full_marks(graded_class, assignment):
    assert graded_class.grades["solution", assignment]["total"] == total_points(assignment) > 0


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_the_untouched_learner_notebook_gets_zero(graded_class, assignment):
    assert graded_class.grades["untouched", assignment]["total"] == 0


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_one_mistake_loses_exactly_the_points_of_the_cells_that_test_it(graded_class, assignment):
    caught = MISTAKES[assignment][3]
    expected = {grade_id: 0 if grade_id in caught else points for grade_id, points in points_of(assignment).items()}
    got = graded_class.grades["one_mistake", assignment]
    assert {grade_id: got[grade_id] for grade_id in expected} == expected
    assert got["total"] == total_points(assignment) - sum(points_of(assignment)[g] for g in caught)


def test_honest_work_gets_no_grading_note(graded_class):
    for assignment in NOTEBOOKS:
        notebook = graded_class.autograded("solution", assignment)
        assert "Grading note" not in json.dumps(notebook), assignment


def test_a_test_cell_edited_to_pass_is_restored_fails_and_is_reported(graded_class):
    assert graded_class.grades["test_edited_to_pass", BROKEN]["test_build_z"] == 0
    assert graded_class.grades["test_edited_to_pass", BROKEN]["total"] == 0
    notebook = graded_class.autograded("test_edited_to_pass")
    restored = cell_with_id(notebook, "test_build_z")
    assert restored.source != "pass" and error_outputs(restored)
    assert "cell test_build_z was edited" in notebook.cells[0].source
    assert "test_build_z was edited" in graded_class.logs[BROKEN].stderr


def test_a_deleted_test_cell_is_put_back_fails_and_is_reported(graded_class):
    grades = graded_class.grades["test_deleted", BROKEN]
    assert grades["test_build_z"] == 0 and grades["total"] == 0
    notebook = graded_class.autograded("test_deleted")
    assert error_outputs(cell_with_id(notebook, "test_build_z"))
    assert "cell test_build_z was deleted" in notebook.cells[0].source
    assert "test_build_z was deleted" in graded_class.logs[BROKEN].stderr


def test_cells_pasted_twice_are_graded_once_and_reported(graded_class):
    """nbgrader alone stops grading the whole class at such a notebook (jupyter/nbgrader#1083)."""
    assert graded_class.grades["pasted_twice", BROKEN]["total"] == total_points(BROKEN)
    notebook = graded_class.autograded("pasted_twice")
    assert "2 cell(s) appeared twice (pasted copies); the last copy of each was graded" in notebook.cells[0].source
    assert "Cell with id 'test_build_z' exists multiple times!" in graded_class.logs[BROKEN].stderr


@pytest.mark.parametrize("student", ["endless_loop", "kills_kernel", "raises_system_exit"])
def test_a_broken_cell_costs_only_the_points_that_depend_on_it(graded_class, student):
    lost = points_of(BROKEN)["test_evaluate"]
    assert graded_class.grades[student, BROKEN]["test_evaluate"] == 0
    assert graded_class.grades[student, BROKEN]["total"] == total_points(BROKEN) - lost


def test_the_endless_loop_is_stopped_by_the_cell_timeout(graded_class):
    looping = cell_with_id(graded_class.autograded("endless_loop"), "evaluate")
    assert {"KeyboardInterrupt", "CellTimeoutError"} & {e.ename for e in error_outputs(looping)}


def test_a_cell_that_swallows_the_interrupt_has_its_kernel_stopped_and_says_why(tmp_path):
    # A loop that catches KeyboardInterrupt goes on after the time limit's interrupt: the grader
    # stops the kernel rather than let every later cell wait out the limit behind it.
    from autodiff_ref.grading.cells import NOTE_TAG
    from autodiff_ref.grading.preprocessors import GuardedExecute

    stubborn = "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(stubborn), nbformat.v4.new_code_cell("print(x)"),
    ])
    GuardedExecute(timeout=3, kernel_name="python3").preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    first, stuck, after = notebook.cells
    assert not error_outputs(first)
    assert error_outputs(stuck)[-1].ename == "KernelDied"
    assert "went on when it was interrupted (does it catch KeyboardInterrupt" in error_outputs(stuck)[-1].evalue
    assert stuck.metadata[NOTE_TAG] == {"kernel_stopped": True}
    assert [(e.ename, e.evalue) for e in error_outputs(after)] == [
        ("KernelDied", "not run: cell 1 would not stop, so the kernel was stopped")
    ]


def test_a_kernel_death_is_explained_in_the_cell_where_it_happened(graded_class):
    notebook = graded_class.autograded("kills_kernel")
    dying = cell_with_id(notebook, "evaluate")
    assert [e.ename for e in error_outputs(dying)] == ["KernelDied"]
    assert "kernel died while running" in error_outputs(dying)[0].evalue
    assert error_outputs(cell_with_id(notebook, "test_evaluate"))[0].ename == "KernelDied"


def test_monkeypatched_checks_are_put_back_and_earn_nothing(graded_class):
    lost = points_of(BROKEN)["test_evaluate"]
    assert graded_class.grades["monkeypatches", BROKEN]["test_evaluate"] == 0
    assert graded_class.grades["monkeypatches", BROKEN]["total"] == total_points(BROKEN) - lost
    # The first test after the cell that replaced them says what was put back.
    note = printed_text(cell_with_id(graded_class.autograded("monkeypatches"), "test_build_z"))
    for replaced in ("numpy.allclose", "check_evaluate", "assert_close.__code__", "input_transformers_post"):
        assert replaced in note
    assert "Grading note" in graded_class.logs[BROKEN].stderr


def test_the_reference_implementation_handed_in_earns_nothing_and_says_why(graded_class):
    expected = {g: 0 if g in REFERENCE_MUL_REFUSED else p for g, p in points_of(TENSOR_OPS).items()}
    got = graded_class.grades["uses_reference", TENSOR_OPS]
    assert {grade_id: got[grade_id] for grade_id in expected} == expected
    answer = cell_with_id(graded_class.autograded("uses_reference", TENSOR_OPS), "sub_mul")
    assert "imports autodiff_ref.ops, which no answer here needs" in error_outputs(answer)[0].evalue


@pytest.mark.parametrize("student", ["reordered", "not_json"])
def test_a_notebook_that_cannot_be_graded_fails_alone_with_a_clear_error(graded_class, student):
    # nbgrader exits 1 when any student failed, names them, and still grades the others.
    log = graded_class.logs[BROKEN]
    assert log.returncode == 1 and student in log.stderr
    assert (student, BROKEN) not in graded_class.grades or graded_class.grades[student, BROKEN]["total"] == 0
    if student == "reordered":
        assert "cells out of order (first cell out of place: test_evaluate)" in log.stderr


def test_every_other_student_is_graded(graded_class):
    graded = {student for student, assignment in graded_class.grades if assignment == BROKEN}
    assert graded >= set(broken_submissions()) - {"reordered", "not_json"} | {"solution", "untouched", "one_mistake"}
    for assignment in NOTEBOOKS[1:]:
        assert graded_class.logs[assignment].returncode == 0, graded_class.logs[assignment].stderr


def test_no_submitted_file_is_modified(graded_class):
    assert file_digests(graded_class.course / "submitted") == graded_class.submitted_before


def test_audit_lists_exactly_the_submissions_to_look_at(graded_class, capsys):
    count, findings = audit(graded_class.course)
    # The attacks on the grading machine, submitted where the sandbox runs: the source scan names
    # what each answer reached for.
    sandbox_attackers = {(student, assignment) for student, assignment, _ in attack_submissions()} \
        if sandbox_problem() is None else set()
    assert count == len(list((graded_class.course / "submitted").glob("*/*/*.ipynb")))
    found: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        found.setdefault((finding.student, finding.assignment), []).append(finding.what)
    assert set(found) == {(student, BROKEN) for student in ("test_edited_to_pass", "test_deleted", "pasted_twice",
                                                            "monkeypatches", "kills_kernel", "reordered", "not_json")
                          } | {("uses_reference", TENSOR_OPS)} | set(ATTACKS) | sandbox_attackers
    assert found["pasted_twice", BROKEN] == ["2 cell(s) appeared twice; the last copy of each was graded"]
    assert found["test_edited_to_pass", BROKEN] == ["test or read-only cell test_build_z was edited; the original ran"]
    assert found["test_deleted", BROKEN] == [
        "test or read-only cell test_build_z was deleted; the original was put back and ran"]
    # Notebook 01 is graded with the source scan on flag only: what it found is listed, and what
    # the code then did in the kernel too.
    assert any(what.startswith("before test test_build_z, the grader put back what") for what in found["monkeypatches", BROKEN])
    assert "build_z, line 2: imports autodiff_ref.testing, which no answer here needs (flagged only: the cell ran)" in found["monkeypatches", BROKEN]
    assert found["kills_kernel", BROKEN] == [
        "evaluate, line 1: imports os, which no answer here needs (flagged only: the cell ran)",
        "evaluate, line 2: uses the module os, which no answer here needs (flagged only: the cell ran)",
        "the kernel died in evaluate; nothing after it ran",
    ]
    assert found["uses_reference", TENSOR_OPS] == [
        "sub_mul, line 14: imports autodiff_ref.ops, which no answer here needs (refused: the cell did not run)"]
    assert found["reordered", BROKEN] == found["not_json", BROKEN] == ["not graded: the autograde log says why"]

    assert check_main(["audit", str(graded_class.course)]) == 1
    printed = capsys.readouterr().out
    assert f"{count} submitted notebooks in {graded_class.course / 'submitted'}; {len(findings)} finding(s)" in printed
    assert f"  monkeypatches  {BROKEN}/{BROKEN}.ipynb: before test test_build_z" in printed


def test_audit_of_a_folder_that_is_not_a_course_says_so(tmp_path, capsys):
    assert check_main(["audit", str(tmp_path)]) == 1
    assert "has no submitted/ folder" in capsys.readouterr().out


def test_grading_twice_in_parallel_gives_the_same_gradebook(graded_class):
    assert graded_class.regraded == graded_class.grades
    assert graded_class.exported_again == graded_class.exported
    assert {row["student_id"] for row in graded_class.exported} >= {"solution", "untouched", "one_mistake"}


# --- issue #16: attacks on the grader, as real submissions -----------------------------------------
#
# Each attack is a submission of 03, 05 or 06 built on the solution (so that only the attacked
# cells may lose points) or on the untouched notebook (so that every point it gets is the
# attack's). Each gets nothing for the cells it attacks, and the audit names the student and why.

FEEDBACK_ASSIGNMENT = "03_scalar_autodiff"  # graded class whose feedback must not show hidden tests

# Attack 4: switch off the grader's guard, then fake every check.
REPLACES_RESTORE = """
import autodiff_ref.grading.integrity as integrity
import autodiff_ref.testing as checks
integrity.restore = integrity.snapshot = lambda *args, **kwargs: []
for name in dir(checks):
    if name.startswith("check") or name == "passed":
        setattr(checks, name, lambda *args, **kwargs: None)
check_value_op = check_backward = check_expression = passed = lambda *args, **kwargs: None
"""
# Attack 5: the reference's own source, run in the answer cell.
EXEC_SUB_MUL = """
import inspect
from autodiff_ref import ops
exec(inspect.getsource(ops.Sub))
exec(inspect.getsource(ops.Mul))
"""
EXEC_UNBROADCAST = """
import inspect
from autodiff_ref.ops import unbroadcast as reference_unbroadcast
exec(inspect.getsource(reference_unbroadcast))
"""
EXEC_TOPOLOGICAL_ORDER = "import inspect\nexec(inspect.getsource(reference_topological_order))\n"
EXEC_GRADCHECK = "src = __import__('inspect').getsource(reference_gradcheck)\nexec(src)\n"
# Attack 6: the reference, called from another thread, where the check's watch does not look.
THREAD_BACKWARD = """
import threading
from autodiff_ref.scalar import Value as ReferenceValue

def backward(self):
    worker = threading.Thread(target=ReferenceValue.backward, args=(self,))
    worker.start()
    worker.join()

Value.backward = backward
"""
THREAD_DIV_POW = """
from concurrent.futures import ThreadPoolExecutor
from autodiff_ref import ops

class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, out_grad, node):
        with ThreadPoolExecutor() as pool:
            return pool.submit(ops.Div.backward, self, out_grad, node).result()

class Pow(ops.Pow):
    pass
"""
THREAD_TOPOLOGICAL_ORDER = """
import _thread, time

def topological_order(root):
    result = []
    _thread.start_new_thread(lambda: result.append(reference_topological_order(root)), ())
    while not result:
        time.sleep(0.001)
    return result[0]
"""


def hand_copied_topological_order() -> str:
    """The reference topological_order typed over with other names: it earns its points (it is
    correct), and the audit lists it for the instructor."""
    from autodiff_ref import graph
    import inspect

    source = inspect.getsource(graph.topological_order)
    source = re.sub(r": (Any|list\[Any\]|set\[int\])", "", source).replace(" -> list[Any]", "")  # no Any here
    return source.replace("stack", "todo").replace("node", "item").replace("placed", "done")


def with_bonus_cells(assignment: str) -> nbformat.NotebookNode:
    """Attack 7, on the untouched notebook: a graded cell of its own, more points for a test and
    an answer cell made graded."""
    notebook = read_notebook(notebook_file(COURSE_DIR, assignment))
    bonus = nbformat.v4.new_code_cell("print('bonus')")
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": False, "points": 50,
                                  "schema_version": 3, "solution": False, "task": False}
    notebook.cells.append(bonus)
    nbgrader_metadata(cell_with_id(notebook, "test_hvp"))["points"] = 100
    nbgrader_metadata(cell_with_id(notebook, "hvp")).update(grade=True, points=10)
    return notebook


@dataclass
class Attack:
    build: object  # () -> the submitted notebook
    attacked: set[str] | None  # test cells that must score 0 (None: every one); the others keep their points
    reasons: list[str]  # what the audit must say, each in one of its findings for this student

    def notebook(self) -> nbformat.NotebookNode:
        return self.build()


def _answers(assignment: str, **sources: str):
    def build() -> nbformat.NotebookNode:
        notebook = solved_notebook(assignment)
        for grade_id, source in sources.items():
            cell_with_id(notebook, grade_id).source = source
        return notebook
    return build


def _untouched_with(assignment: str, grade_id: str, source: str):
    def build() -> nbformat.NotebookNode:
        notebook = read_notebook(notebook_file(COURSE_DIR, assignment))
        cell_with_id(notebook, grade_id).source = source + "\n" + cell_with_id(notebook, grade_id).source
        return notebook
    return build


SCALAR, BACKWARD_PASS = "03_scalar_autodiff", "06_backward_pass"
ATTACKS = {
    ("replaces_restore", SCALAR): Attack(
        _untouched_with(SCALAR, "add", REPLACES_RESTORE), None,
        ["add, line 2: imports autodiff_ref.grading.integrity", "uses setattr with a computed name"]),
    ("threads", SCALAR): Attack(
        _answers(SCALAR, backward=THREAD_BACKWARD), {"test_backward", "test_backward_with_your_ops"},
        ["backward, line 2: imports threading, which no answer here needs (refused: the cell did not run)"]),
    ("copies_reference", TENSOR_OPS): Attack(
        _answers(TENSOR_OPS, sub_mul=EXEC_SUB_MUL, unbroadcast=EXEC_UNBROADCAST),
        # and the later tests whose ops use Sub, Mul and unbroadcast
        {"test_sub", "test_mul", "test_unbroadcast", "test_binary_ops_broadcast", "test_broadcast_to", "test_matmul"},
        ["sub_mul, line 2: imports inspect", "sub_mul, line 4: uses exec", "unbroadcast, line 4: uses exec"]),
    ("threads", TENSOR_OPS): Attack(
        _answers(TENSOR_OPS, div_pow=THREAD_DIV_POW), {"test_div", "test_pow", "test_binary_ops_broadcast"},
        ["div_pow, line 2: imports concurrent.futures"]),
    ("copies_reference", BACKWARD_PASS): Attack(
        _answers(BACKWARD_PASS, topological_order=EXEC_TOPOLOGICAL_ORDER, gradcheck=EXEC_GRADCHECK),
        {"test_topological_order", "test_backward", "test_gradcheck"},  # backward uses topological_order
        ["topological_order, line 1: imports inspect", "gradcheck, line 1: uses __import__"]),
    ("threads", BACKWARD_PASS): Attack(
        _answers(BACKWARD_PASS, topological_order=THREAD_TOPOLOGICAL_ORDER), {"test_topological_order", "test_backward"},
        ["topological_order, line 2: imports _thread", "uses reference_topological_order, the reference"]),
    ("hand_copied", BACKWARD_PASS): Attack(
        _answers(BACKWARD_PASS, topological_order=hand_copied_topological_order()), set(),
        ["copies the reference implementation: topological_order: topological_order (line 1) is "
         "autodiff_ref.graph's topological_order with names changed"]),
    ("bonus_cell", BACKWARD_PASS): Attack(
        lambda: with_bonus_cells(BACKWARD_PASS), None,
        ["cell bonus worth 50 points is not in the course's notebook",
         "cell test_hvp's points was changed from 3 to 100", "cell hvp's grade was changed from False to True"]),
}


@pytest.mark.parametrize(("student", "assignment"), ATTACKS)
def test_an_attack_gets_nothing_for_the_cells_it_attacks(graded_class, student, assignment):
    attack = ATTACKS[student, assignment]
    points = points_of(assignment)
    attacked = set(points) if attack.attacked is None else attack.attacked
    expected = {grade_id: 0 if grade_id in attacked else earned for grade_id, earned in points.items()}
    got = graded_class.grades[student, assignment]
    assert {grade_id: got[grade_id] for grade_id in got if grade_id != "total"} == expected
    assert got["total"] == sum(expected.values())


@pytest.mark.parametrize(("student", "assignment"), ATTACKS)
def test_the_audit_names_each_attacker_and_why(graded_class, student, assignment):
    _, findings = audit(graded_class.course)
    said = " | ".join(f.what for f in findings if (f.student, f.assignment) == (student, assignment))
    for reason in ATTACKS[student, assignment].reasons:
        assert reason in said


def test_the_grading_note_names_the_construct_and_the_cell(graded_class):
    note = graded_class.autograded("copies_reference", TENSOR_OPS).cells[0].source
    assert note.startswith("**Grading note.**")
    assert "sub_mul, line 4: uses exec, which runs code from text (that cell did not run" in note
    refused = cell_with_id(graded_class.autograded("copies_reference", TENSOR_OPS), "sub_mul")
    assert error_outputs(refused)[0].ename == "PermissionError"


def test_bonus_cells_are_named_without_a_raw_traceback(graded_class):
    log = graded_class.logs[BACKWARD_PASS]
    assert log.returncode == 0 and "NoResultFound" not in log.stderr
    assert "cell bonus worth 50 points is not in the course's notebook" in log.stderr
    assert "bonus" not in graded_class.grades["bonus_cell", BACKWARD_PASS]


def test_no_score_exceeds_its_maximum_and_there_is_no_extra_credit(graded_class):
    with Gradebook(f"sqlite:///{graded_class.course / 'gradebook.db'}") as gradebook:
        for assignment in NOTEBOOKS:
            for submission in gradebook.assignment_submissions(assignment):
                for grade in submission.notebooks[0].grades:
                    assert grade.score <= grade.max_score == points_of(assignment)[grade.name]
                    assert not grade.extra_credit


def _shown_text(html_file: Path) -> str:
    """The text a student reads in a feedback page: tags and syntax highlighting removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_file.read_text(encoding="utf-8")))


def test_feedback_shows_results_but_not_the_hidden_tests(graded_class):
    hidden = _hidden_test_lines(FEEDBACK_ASSIGNMENT)
    assert hidden
    pages = sorted((graded_class.course / "feedback").glob(f"*/{FEEDBACK_ASSIGNMENT}/*.html"))
    assert {page.parts[-3] for page in pages} >= {"solution", "untouched", "one_mistake"}
    for page in pages:
        shown = _shown_text(page)
        assert "HIDDEN TESTS" not in shown
        assert not [line for line in hidden if line in shown], page
        assert 'check_value_op(Value, "add")' in shown  # the visible tests are still there
    mistake = _shown_text(graded_class.course / "feedback" / "one_mistake" / FEEDBACK_ASSIGNMENT / f"{FEEDBACK_ASSIGNMENT}.html")
    assert "hidden tests, not shown" in mistake and "CheckFailure: " in mistake


def _hidden_test_lines(assignment: str) -> list[str]:
    """The lines of the instructor's hidden tests that the handed-out notebook does not have."""
    instructor = read_notebook(notebook_file(SOLUTIONS_DIR, assignment))
    released = json.dumps(read_notebook(notebook_file(COURSE_DIR, assignment)).cells)
    return [
        line.strip() for cell in instructor.cells if is_test_cell(cell)
        for block in cell.source.split("### BEGIN HIDDEN TESTS")[1:] for line in block.split("### END HIDDEN TESTS")[0].splitlines()
        if line.strip() and line.strip() not in released
    ]


def test_autograded_notebooks_keep_results_but_not_the_hidden_tests(graded_class):
    hidden = _hidden_test_lines(FEEDBACK_ASSIGNMENT)
    assert hidden
    for student in ("solution", "untouched", "one_mistake"):
        notebook = graded_class.autograded(student, FEEDBACK_ASSIGNMENT)
        text = json.dumps(notebook)
        assert "HIDDEN TESTS" not in text and not [line for line in hidden if line in text], student
    mistake = graded_class.autograded("one_mistake", FEEDBACK_ASSIGNMENT)
    caught = [cell_with_id(mistake, grade_id) for grade_id in sorted(MISTAKES[FEEDBACK_ASSIGNMENT][3])]
    for cell in caught:  # the failure and its message are there, the hidden source is not
        assert "hidden tests, not shown" in cell.source
        assert [output.ename for output in error_outputs(cell)] == ["CheckFailure"]
        assert error_outputs(cell)[0].traceback == [f"CheckFailure: {error_outputs(cell)[0].evalue}"]


def test_the_instructors_switch_keeps_the_hidden_tests_in_autograded_notebooks(graded_class):
    """Notebook 01 was graded a second time with show_hidden_tests on, and its scores did not change."""
    solution = graded_class.autograded("solution", BROKEN)
    assert "### BEGIN HIDDEN TESTS" in json.dumps(solution)
    assert graded_class.regraded["solution", BROKEN] == graded_class.grades["solution", BROKEN]


# --- attacks on the grading machine (issue #16) ---------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.parametrize("assignment", COPIES_SOLUTIONS)
def test_the_solutions_on_disk_are_out_of_reach(graded_class, assignment):
    assert graded_class.grades["copies_solutions", assignment]["total"] == 0
    first_answer = next(cell for cell in graded_class.autograded("copies_solutions", assignment).cells
                        if is_solution_cell(cell))
    # Where the answer ran (a scan of the source may refuse to run it), it found nothing.
    assert "found:" not in printed_text(first_answer) or "found: []" in printed_text(first_answer)


@pytest.mark.sandbox
def test_the_gradebook_is_out_of_reach(graded_class):
    assert graded_class.grades["edits_gradebook", BROKEN]["total"] <= total_points(BROKEN)
    with Gradebook(f"sqlite:///{graded_class.course / 'gradebook.db'}") as gradebook:
        for assignment in NOTEBOOKS:
            for submission in gradebook.notebook_submissions(assignment, assignment):
                assert submission.score <= submission.max_score, (submission.student.id, assignment)
                assert all(not grade.extra_credit and grade.manual_score is None for grade in submission.grades)


@pytest.mark.sandbox
def test_a_classmates_submission_is_out_of_reach(graded_class):
    assert graded_class.grades["overwrites_classmate", BROKEN]["total"] <= total_points(BROKEN)
    classmate = notebook_file(graded_class.course / "submitted" / CLASSMATE, BROKEN)
    assert file_digests(classmate.parent) == {
        classmate.name: graded_class.submitted_before[str(classmate.relative_to(graded_class.course / "submitted"))]
    }
    assert graded_class.grades[CLASSMATE, BROKEN]["total"] == graded_class.regraded[CLASSMATE, BROKEN]["total"] \
        == total_points(BROKEN)


@pytest.mark.sandbox
def test_every_notebook_records_that_it_ran_in_the_sandbox(graded_class):
    for autograded in (graded_class.course / "autograded").glob("*/*/*.ipynb"):
        assert read_notebook(autograded).metadata["autodiff_grading"] == {"sandbox": "bubblewrap"}, autograded


# --- links in a submission: nbgrader copies submissions following them, with the grader's rights ---
#
# A small course of its own (notebook 01): "alice" hands in the solution; "mallory" submits through
# the exchange a folder with links to the instructor's solutions/ and gradebook.db and an answer
# cell that looks for them; "victor" submits through the exchange a notebook that is a link to the
# instructor's (which nbgrader alone would collect as his work: full marks); "trudy"'s folder with
# the same links as mallory's is put in submitted/ by hand (an LMS download).

LINKED_COURSE_ID = "autodiff-links"
LOOKS_FOR_LINKS = """
import os
for path in ("data", f"data/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", "notes.db"):
    print("linked file", path, "exists" if os.path.lexists(path) else "absent")
"""


@dataclass
class LinkedClass:
    course: Path
    collected: subprocess.CompletedProcess
    graded: subprocess.CompletedProcess


def _inbound_submission(exchange: Path, student: str, files: dict[str, object]) -> None:
    """A folder in the exchange's inbound as `nbgrader submit` makes it; each file is a
    notebook, or a Path the entry is a symbolic link to."""
    timestamp = "2026-01-05 10:00:00.000000 UTC"
    folder = exchange / LINKED_COURSE_ID / "inbound" / f"{student}+{BROKEN}+{timestamp}+0123"
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(timestamp)
    for name, content in files.items():
        if isinstance(content, Path):
            (folder / name).symlink_to(content)
        else:
            nbformat.write(content, folder / name)


@pytest.fixture(scope="module")
def linked_class(tmp_path_factory) -> LinkedClass:
    course, exchange = tmp_path_factory.mktemp("linked-course"), tmp_path_factory.mktemp("exchange")
    for folder in ("solutions", "course"):
        (course / folder).mkdir()
        shutil.copytree(REPO_ROOT / folder / BROKEN, course / folder / BROKEN)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    generated = nbgrader(course, "generate_assignment", BROKEN, "--force")
    assert generated.returncode == 0, generated.stderr
    submit(course, "alice", BROKEN, solved_notebook(BROKEN))

    looking = solved_notebook(BROKEN)
    cell_with_id(looking, "build_z").source = f"ASSIGNMENT = {BROKEN!r}\n" + LOOKS_FOR_LINKS + cell_with_id(looking, "build_z").source
    links = {"data": course / "solutions", "notes.db": course / "gradebook.db"}
    _inbound_submission(exchange, "mallory", {f"{BROKEN}.ipynb": looking, **links})
    _inbound_submission(exchange, "victor", {f"{BROKEN}.ipynb": notebook_file(course / "solutions", BROKEN)})
    exchange_options = (f"--course={LINKED_COURSE_ID}", f"--Exchange.root={exchange}", "--CollectApp.check_owner=False")
    collected = nbgrader(course, "collect", BROKEN, *exchange_options)

    trudy = course / "submitted" / "trudy" / BROKEN
    trudy.mkdir(parents=True)
    nbformat.write(looking, trudy / f"{BROKEN}.ipynb")
    for name, target in links.items():
        (trudy / name).symlink_to(target)
    # The scan on flag only, so that mallory's cell runs and shows what the kernel finds.
    graded = nbgrader(course, "autograde", BROKEN, "--create", "--force", "--FlagTampering.refuse_flagged_code=False")
    return LinkedClass(course, collected, graded)


def test_collect_leaves_links_behind_and_names_them(linked_class):
    assert linked_class.collected.returncode == 0, linked_class.collected.stderr
    log = linked_class.collected.stderr
    for name in ("data", "notes.db"):
        assert re.search(rf"Left out of the collected submission: mallory\+{BROKEN}\+[^/]+/{re.escape(name)} -> .* \(a symbolic link\)", log)
        assert not os.path.lexists(linked_class.course / "submitted" / "mallory" / BROKEN / name)
    assert re.search(rf"victor\+{BROKEN}\+[^/]+/{BROKEN}.ipynb -> .*solutions", log)
    # victor handed in a link to the instructor's notebook: nothing of it is collected.
    assert not (linked_class.course / "submitted" / "victor" / BROKEN / f"{BROKEN}.ipynb").exists()


def test_a_collected_submission_gets_nothing_from_its_links(linked_class):
    with Gradebook(f"sqlite:///{linked_class.course / 'gradebook.db'}") as gradebook:
        scores = {s.student.id: s.score for s in gradebook.notebook_submissions(BROKEN, BROKEN)}
    assert scores["alice"] == scores["mallory"] == total_points(BROKEN)  # his own answers are right
    assert not scores.get("victor")
    graded = read_notebook(notebook_file(linked_class.course / "autograded" / "mallory", BROKEN))
    shown = printed_text(cell_with_id(graded, "build_z"))
    assert shown.count("linked file") == 3 and "exists" not in shown  # nothing of it in the kernel
    assert sorted(p.name for p in (linked_class.course / "autograded" / "mallory" / BROKEN).iterdir()) == [
        f"{BROKEN}.ipynb", "timestamp.txt"]


def test_autograde_stops_before_copying_a_submitted_folder_with_links(linked_class):
    log = linked_class.graded.stderr
    assert linked_class.graded.returncode != 0
    assert f"Grading stopped before trudy's {BROKEN}: nbgrader would copy" in log
    assert f"{BROKEN}/data -> {linked_class.course / 'solutions'} (a symbolic link)" in log
    assert f"{BROKEN}/notes.db -> {linked_class.course / 'gradebook.db'} (a symbolic link)" in log
    assert not (linked_class.course / "autograded" / "trudy").exists()
    _, findings = audit(linked_class.course)
    assert {f.what for f in findings if f.student == "trudy"} >= {
        f"holds {BROKEN}/data -> {linked_class.course / 'solutions'} (a symbolic link): autograde stops at it; delete it",
        "not graded: the autograde log says why",
    }


def test_no_file_of_the_instructor_reaches_autograded(linked_class):
    instructors = {hashlib.sha256(path.read_bytes()).hexdigest()
                   for path in (linked_class.course / "solutions").rglob("*") if path.is_file()}
    assert instructors
    for path in (linked_class.course / "autograded").rglob("*"):
        assert not path.is_symlink(), path
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() not in instructors, path
            assert not path.read_bytes().startswith(b"SQLite format 3"), path  # a copy of gradebook.db
