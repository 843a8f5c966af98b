"""`autodiff-course check`: a learner's notebook graded with the full tests, nothing modified.

Each test works in a temporary course folder (nbgrader_config.py, solutions/ and a learner
notebook under course/), the layout `check` finds by walking up from the notebook.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import nbformat
import pytest

from autodiff_ref.grading.check import main
from notebook_tools import REPO_ROOT, is_test_cell, nbgrader_metadata
from test_grading import BROKEN as ASSIGNMENT
from test_grading import COURSE_DIR, cell_with_id, notebook_file, points_of, read_notebook, solved_notebook


def learner_notebook() -> nbformat.NotebookNode:
    return read_notebook(notebook_file(COURSE_DIR, ASSIGNMENT))


@pytest.fixture
def course(tmp_path) -> Path:
    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, tmp_path / "solutions" / ASSIGNMENT)
    (tmp_path / "course" / ASSIGNMENT).mkdir(parents=True)
    return tmp_path


def place(course: Path, notebook) -> Path:
    path = course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(notebook, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_rows(output: str) -> dict[str, list[str]]:
    """grade_id -> the words of its row in the printed table."""
    rows = {}
    for line in output.splitlines():
        words = line.split()
        if words and words[0].startswith("test_"):
            rows[words[0]] = words
    return rows


def test_a_finished_notebook_passes_with_exit_status_0(course, capsys):
    path = place(course, solved_notebook(ASSIGNMENT))
    before = digest(path)
    assert main(["check", str(path)]) == 0
    output = capsys.readouterr().out
    total = sum(points_of(ASSIGNMENT).values())
    assert f"{total:g} / {total:g}" in output
    assert all(row[4] == "pass" for row in table_rows(output).values())
    assert digest(path) == before


def test_an_untouched_notebook_fails_each_exercise_with_its_reason(course, capsys):
    path = place(course, learner_notebook())
    before = digest(path)
    assert main(["check", str(path)]) == 1
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(points_of(ASSIGNMENT))
    for grade_id, points in points_of(ASSIGNMENT).items():
        assert rows[grade_id][1:5] == ["0", "/", f"{points:g}", "FAIL"]
        assert "NotImplementedError" in " ".join(rows[grade_id][5:]) or "not written" in " ".join(rows[grade_id][5:])
    assert digest(path) == before


def test_an_edited_test_cell_is_replaced_by_the_instructors(course, capsys):
    notebook = learner_notebook()
    for cell in notebook.cells:
        if is_test_cell(cell):
            cell.source = "pass"
    path = place(course, notebook)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    assert all(row[4] == "FAIL" for row in table_rows(output).values())
    assert "note: you changed cell test_evaluate; the course's version ran instead" in output


def test_a_deleted_test_cell_is_put_back_and_named(course, capsys):
    notebook = solved_notebook(ASSIGNMENT)
    notebook.cells.remove(cell_with_id(notebook, "test_evaluate"))
    assert main(["check", str(place(course, notebook))]) == 0
    output = capsys.readouterr().out
    assert table_rows(output)["test_evaluate"][4] == "pass"
    assert "note: cell test_evaluate was missing; the course's version was put back and ran" in output


def test_a_test_cell_pasted_twice_counts_once_and_is_named(course, capsys):
    # As nbgrader grades it: the last copy is the test, the earlier one runs as the learner's code.
    notebook = solved_notebook(ASSIGNMENT)
    test = cell_with_id(notebook, "test_evaluate")
    pasted = nbformat.from_dict(test)
    pasted.id = "pasted-copy"  # Jupyter gives a pasted cell an id of its own
    notebook.cells.insert(notebook.cells.index(test) + 1, pasted)
    assert main(["check", str(place(course, notebook))]) == 0
    output = capsys.readouterr().out
    assert table_rows(output)["test_evaluate"][4] == "pass"
    assert sum(line.split()[:1] == ["test_evaluate"] for line in output.splitlines()) == 1
    total = sum(points_of(ASSIGNMENT).values())
    assert f"{total:g} / {total:g}" in output
    assert "note: cell test_evaluate appears more than once; as in grading, only its last copy counts" in output


def test_monkeypatched_checks_do_not_earn_points(course, capsys):
    from test_grading import monkeypatching_notebook

    assert main(["check", str(place(course, monkeypatching_notebook()))]) == 1
    rows = table_rows(capsys.readouterr().out)
    assert rows["test_evaluate"][4] == "FAIL"
    assert all(row[4] == "pass" for grade_id, row in rows.items() if grade_id != "test_evaluate")


def test_reordered_cells_are_named(course, capsys):
    notebook = learner_notebook()
    first, second = (
        index for index, cell in enumerate(notebook.cells)
        if nbgrader_metadata(cell).get("grade_id") in ("test_build_z", "test_evaluate")
    )
    notebook.cells[first], notebook.cells[second] = notebook.cells[second], notebook.cells[first]
    assert main(["check", str(place(course, notebook))]) == 1
    assert "out of order" in capsys.readouterr().out


def test_a_file_that_is_not_json_gets_a_clear_error(course, capsys):
    path = course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.write_text('{"cells": [ not JSON')
    assert main(["check", str(path)]) == 1
    assert "is not a readable notebook" in capsys.readouterr().out
    assert path.read_text() == '{"cells": [ not JSON'


def test_a_notebook_outside_a_course_folder_gets_a_clear_error(tmp_path, capsys):
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(learner_notebook(), path)
    assert main(["check", str(path)]) == 1
    assert "no course folder found" in capsys.readouterr().out


def test_the_reference_implementation_handed_in_fails_with_the_reason(tmp_path, capsys):
    from test_grading import REFERENCE_MUL_CATCHES, TENSOR_OPS, reference_mul_notebook

    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO_ROOT / "solutions" / TENSOR_OPS, tmp_path / "solutions" / TENSOR_OPS)
    path = tmp_path / "course" / TENSOR_OPS / f"{TENSOR_OPS}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(reference_mul_notebook(), path)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    failed = {grade_id for grade_id, row in table_rows(output).items() if row[4] == "FAIL"}
    assert failed == REFERENCE_MUL_CATCHES
    assert "Your Mul is autodiff_ref.ops.Mul, the reference implementation" in output
