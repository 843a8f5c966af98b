"""The cells of a course notebook: what kind each is, and what a submission changed of those
handed out.

Grading (:mod:`autodiff_ref.grading.preprocessors`) and ``autodiff-course check`` both read cells
with these functions, so that they score a notebook alike. Nothing here imports nbgrader: the
functions read the metadata nbgrader writes (``cell.metadata.nbgrader``), and ``check`` does not
pay a second of CPU for nbgrader's import at every run.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

# Cell metadata key under which the grader records what it found, for `autodiff-course audit`:
# on the note cell FlagTampering adds, on a test cell whose checks were put back, and on the cell
# where the kernel died.
NOTE_TAG = "autodiff-grading-note"


def nbgrader_metadata(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution_cell(cell: dict[str, Any]) -> bool:
    return bool(nbgrader_metadata(cell).get("solution"))


def is_test_cell(cell: dict[str, Any]) -> bool:
    """An autograded test cell: graded, and not itself an answer."""
    return bool(nbgrader_metadata(cell).get("grade")) and not is_solution_cell(cell)


def is_fixed_cell(cell: dict[str, Any]) -> bool:
    """A cell students may not change: locked (tests and read-only cells), not an answer."""
    metadata = nbgrader_metadata(cell)
    return bool(metadata.get("locked")) and not metadata.get("solution") and "grade_id" in metadata


def error_outputs(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def bound_names(source: str) -> list[str]:
    """The names a cell's top-level imports and assignments bind (none if it does not parse)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))  # %magics become calls
    except SyntaxError:
        return []
    names = []
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            names += [alias.asname or alias.name.split(".")[0] for alias in statement.names if alias.name != "*"]
        elif isinstance(statement, ast.Assign):
            names += [target.id for target in statement.targets if isinstance(target, ast.Name)]
    return names


def nbgrader_checksum(cell: dict[str, Any]) -> str:
    """The checksum nbgrader stores in a graded or read-only cell when it releases a notebook, as
    nbgrader computes it: an MD5 over the source, the kind of cell, whether it is graded, an answer
    and locked (a graded cell is locked, an answer never), its grade_id and, when graded, its
    points. Raises KeyError or ValueError when the grade_id or the points are missing or not a
    number, as nbgrader does."""
    metadata = nbgrader_metadata(cell)
    grade, solution = metadata.get("grade", False), metadata.get("solution", False)
    locked = False if solution else True if grade else metadata.get("locked", False)
    parts = [cell["source"], cell["cell_type"], str(grade), str(solution), str(locked), metadata["grade_id"]]
    if grade:
        parts.append(str(float(metadata["points"])))
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest()


def unmark_duplicates(notebook: NotebookNode) -> list[str]:
    """The grade_ids that appear on more than one graded, answer or read-only cell of
    ``notebook``; every copy but the last becomes an ordinary cell (no nbgrader metadata), as
    nbgrader's ``DeduplicateIds`` and the grader leave them: they run as the student's own code."""
    def graded(cell) -> bool:
        metadata = nbgrader_metadata(cell)
        return bool(metadata.get("grade") or metadata.get("solution") or metadata.get("locked"))

    counts = Counter(nbgrader_metadata(cell).get("grade_id") for cell in notebook.cells if graded(cell))
    duplicated = [grade_id for grade_id, count in counts.items() if count > 1]
    seen: set[str] = set()
    for cell in reversed(notebook.cells):
        if graded(cell):
            grade_id = nbgrader_metadata(cell)["grade_id"]
            if grade_id in seen:
                del cell.metadata["nbgrader"]
            seen.add(grade_id)
    return duplicated


def _normalized(source: str) -> str:
    return re.sub(r"\s+$", "", source.replace("\r\n", "\n"), flags=re.MULTILINE).strip()


def _fixed_cells(notebook: NotebookNode) -> dict[str, NotebookNode]:
    """The cells a student may not change, by grade_id, in order."""
    return {nbgrader_metadata(cell)["grade_id"]: cell for cell in notebook.cells if is_fixed_cell(cell)}


def tampering(submitted: NotebookNode, handed_out: NotebookNode) -> tuple[list[str], list[str], list[str]]:
    """The cells of ``handed_out`` that ``submitted`` edited or deleted (of those a student may not
    change), and the cells it moved out of order (of all cells with a grade_id)."""
    fixed = _fixed_cells(handed_out)
    submitted_ids = [nbgrader_metadata(cell).get("grade_id") for cell in submitted.cells]
    edited = sorted({
        nbgrader_metadata(cell)["grade_id"] for cell in submitted.cells
        if nbgrader_metadata(cell).get("grade_id") in fixed
        and _normalized(cell.source) != _normalized(fixed[nbgrader_metadata(cell)["grade_id"]].source)
    })
    deleted = [grade_id for grade_id in fixed if grade_id not in submitted_ids]
    handed_out_ids = [nbgrader_metadata(cell).get("grade_id") for cell in handed_out.cells]
    handed_out_ids = [grade_id for grade_id in handed_out_ids if grade_id is not None]
    kept = [grade_id for grade_id in dict.fromkeys(submitted_ids) if grade_id in handed_out_ids]
    expected = [grade_id for grade_id in handed_out_ids if grade_id in kept]
    moved = [got for want, got in zip(expected, kept) if want != got]
    return edited, deleted, moved


# What nbgrader reads from a cell's metadata to grade it: only the handed-out values count.
_GRADING_KEYS = ("grade", "points", "solution", "locked")


def keep_only_handed_out_grading(nb: NotebookNode, handed_out: NotebookNode) -> list[str]:
    """Give every cell of ``nb`` the grading metadata of its cell in ``handed_out``; a description
    of each change.

    A cell whose grade_id the course never handed out (a "bonus" cell, or a cell pasted under a
    new grade_id) becomes an ordinary cell, and changed points or kinds of cell go back to the
    course's, so they count for nothing. (Left alone, nbgrader stops at them with a raw
    ``NoResultFound`` traceback.)
    """
    original = {
        nbgrader_metadata(cell)["grade_id"]: nbgrader_metadata(cell)
        for cell in handed_out.cells if "grade_id" in nbgrader_metadata(cell)
    }
    changes = []
    for cell in nb.cells:
        metadata = nbgrader_metadata(cell)
        if not metadata:
            continue
        grade_id = metadata.get("grade_id")
        if grade_id not in original:
            points = f" worth {metadata.get('points')} points" if metadata.get("grade") else ""
            name = f"cell {grade_id}" if grade_id else "a cell without a grade_id"
            changes.append(f"{name}{points} is not in the course's notebook; it was graded as an ordinary cell")
            del cell.metadata["nbgrader"]
            continue
        for key in _GRADING_KEYS:
            if metadata.get(key) != original[grade_id].get(key):
                changes.append(
                    f"cell {grade_id}'s {key} was changed from {original[grade_id].get(key)} to "
                    f"{metadata.get(key)}; the course's value counts"
                )
                if key in original[grade_id]:
                    metadata[key] = original[grade_id][key]
                else:
                    del metadata[key]
    return changes


def put_back_deleted(nb: NotebookNode, handed_out: NotebookNode, grade_id: str) -> None:
    """Put the handed-out cell ``grade_id`` back into ``nb``, after the nearest cell that precedes it in both."""
    order = [nbgrader_metadata(cell).get("grade_id") for cell in handed_out.cells]
    original = handed_out.cells[order.index(grade_id)]
    present = {nbgrader_metadata(cell).get("grade_id"): i for i, cell in enumerate(nb.cells)}
    earlier = [present[g] for g in order[: order.index(grade_id)] if g is not None and g in present]
    nb.cells.insert(earlier[-1] + 1 if earlier else 0, copy.deepcopy(original))
