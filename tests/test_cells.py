"""check reads cells without importing nbgrader: its checksum and its handling of duplicated cells
must be nbgrader's own."""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbgrader.preprocessors import DeduplicateIds
from nbgrader.utils import compute_checksum

from autodiff_ref.grading.cells import nbgrader_checksum, nbgrader_metadata, unmark_duplicates

from notebook_tools import COURSE_DIR, SOLUTIONS_DIR, notebook_paths, read_notebook


def _graded_cells():
    for folder in (COURSE_DIR, SOLUTIONS_DIR):
        for path in notebook_paths(folder):
            for cell in read_notebook(path).cells:
                if "grade_id" in nbgrader_metadata(cell):
                    yield cell


def _variants(cell):
    """The cell, and copies changed in each part a checksum covers."""
    yield cell
    for change in (
        lambda c: setattr(c, "source", c.source + "\n# changed"),
        lambda c: c.metadata.nbgrader.update(points=float(c.metadata.nbgrader.get("points", 0)) + 1, grade=True),
        lambda c: c.metadata.nbgrader.update(grade=not c.metadata.nbgrader.get("grade", False)),
        lambda c: c.metadata.nbgrader.update(solution=not c.metadata.nbgrader.get("solution", False)),
        lambda c: c.metadata.nbgrader.update(locked=not c.metadata.nbgrader.get("locked", False)),
        lambda c: c.metadata.nbgrader.update(grade_id=c.metadata.nbgrader["grade_id"] + "_renamed"),
        lambda c: setattr(c, "source", "ü € 😀"),
    ):
        changed = copy.deepcopy(cell)
        change(changed)
        if not changed.metadata.nbgrader.get("grade") or "points" in changed.metadata.nbgrader:
            yield changed


def test_the_checksum_is_nbgraders_for_every_graded_cell_of_the_course_and_changes_to_it():
    cells = list(_graded_cells())
    assert len(cells) > 100
    for cell in cells:
        for variant in _variants(cell):
            assert nbgrader_checksum(variant) == compute_checksum(variant)


def test_the_checksum_of_a_cell_without_grade_id_or_points_fails_as_nbgraders_does():
    graded = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade": True, "grade_id": "t"}})
    plain = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"solution": True}})
    for cell in (graded, plain):
        with pytest.raises(KeyError):
            compute_checksum(cell)
        with pytest.raises(KeyError):
            nbgrader_checksum(cell)


def test_duplicated_cells_are_unmarked_as_nbgrader_and_the_grader_leave_them():
    notebook = read_notebook(notebook_paths(SOLUTIONS_DIR)[0])
    first_test = next(cell for cell in notebook.cells if nbgrader_metadata(cell).get("grade"))
    first_answer = next(cell for cell in notebook.cells if nbgrader_metadata(cell).get("solution"))
    notebook.cells += [copy.deepcopy(first_test), copy.deepcopy(first_answer), copy.deepcopy(first_test)]
    ours = copy.deepcopy(notebook)
    duplicated = unmark_duplicates(ours)
    theirs, _ = DeduplicateIds().preprocess(copy.deepcopy(notebook), {})
    for cell in theirs.cells:  # the grader then drops the entries nbgrader left empty
        if "nbgrader" in cell.metadata and not cell.metadata.nbgrader:
            del cell.metadata["nbgrader"]
    assert ours == theirs
    assert sorted(duplicated) == sorted({nbgrader_metadata(first_test)["grade_id"],
                                         nbgrader_metadata(first_answer)["grade_id"]})
    grade_id = nbgrader_metadata(first_test)["grade_id"]
    assert [cell for cell in ours.cells if nbgrader_metadata(cell).get("grade_id") == grade_id] == [ours.cells[-1]]
