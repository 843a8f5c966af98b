"""Helpers for ``test_notebooks.py``: find the course notebooks, read their nbgrader metadata,
run them headless in a Jupyter kernel, and describe failures cell by cell.

Only the test harness uses this module; nothing here is course material.
"""

from __future__ import annotations

import difflib
import math
import re
import shutil
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

from autodiff_ref.grading.cells import error_outputs, is_solution_cell, is_test_cell, nbgrader_metadata  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = REPO_ROOT / "solutions"
COURSE_DIR = REPO_ROOT / "course"

# The phrase every notebook's first markdown cell states its total with, e.g. "**Total: 20 points**".
TOTAL_POINTS_PATTERN = re.compile(r"\*\*Total: (\d+) points\*\*")

# Wall-clock seconds a whole notebook may take, kernel start included.
DEFAULT_TIME_BUDGET = 60.0
TIME_BUDGETS = {"07_training_a_network": 120.0}

# Files nbgrader leaves out of a release; also ignored when comparing trees.
IGNORED_NAMES = (".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def notebook_paths(directory: Path) -> list[Path]:
    """Every ``directory/NN_name/*.ipynb``, sorted (the folder layout nbgrader expects)."""
    return sorted(directory.glob("*/*.ipynb"))


def time_budget(notebook_path: Path) -> float:
    return TIME_BUDGETS.get(notebook_path.parent.name, DEFAULT_TIME_BUDGET)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def is_graded_cell(cell: dict[str, Any]) -> bool:
    """Any cell that carries points: autograded tests and manually graded answers."""
    return bool(nbgrader_metadata(cell).get("grade"))


def expects_error(cell: dict[str, Any]) -> bool:
    """Jupyter's convention for a cell that demonstrates an exception on purpose."""
    return "raises-exception" in cell.get("metadata", {}).get("tags", [])


def cell_label(index: int, cell: dict[str, Any]) -> str:
    grade_id = nbgrader_metadata(cell).get("grade_id")
    return f"cell {index}" + (f" (grade_id {grade_id!r})" if grade_id else "")


def printed_text(cell: dict[str, Any]) -> str:
    return "".join(
        output.get("text", "") for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def describe_error(index: int, cell: dict[str, Any]) -> str:
    """The cell's label, source and traceback, as plain text for a test report."""
    tracebacks = [
        _ANSI_ESCAPE.sub("", "\n".join(error.get("traceback", [])))
        or f"{error.get('ename')}: {error.get('evalue')}"
        for error in error_outputs(cell)
    ]
    return (
        f"--- {cell_label(index, cell)} ---\n{cell.source}\n"
        f"--- its error ---\n" + "\n".join(tracebacks)
    )


@dataclass
class NotebookRun:
    notebook: nbformat.NotebookNode  # with outputs, in memory only
    seconds: float


def run_notebook(
    path: Path, work_dir: Path, *, stop_at_first_error: bool
) -> NotebookRun:
    """Run the notebook at ``path`` top to bottom in a fresh ``python3`` kernel.

    The kernel's working directory is a copy of the notebook's folder inside ``work_dir``, so
    files the notebook writes never land in the repository. Errors are recorded in the cells'
    outputs rather than raised. The whole run, kernel start included, must fit in the
    notebook's time budget: each cell may only use what is left of it, and running out raises
    an ``AssertionError`` naming the cell.
    """
    __tracebackhide__ = True  # pytest: report the failure, not this helper's frames
    budget = time_budget(path)
    folder_copy = work_dir / path.parent.name
    shutil.copytree(path.parent, folder_copy, ignore=shutil.ignore_patterns(*IGNORED_NAMES))
    notebook = read_notebook(folder_copy / path.name)

    start = time.monotonic()

    def seconds_left(cell: Any) -> int:
        return max(1, math.ceil(budget - (time.monotonic() - start)))

    client = NotebookClient(
        notebook,
        kernel_name="python3",
        allow_errors=True,
        timeout_func=seconds_left,
        resources={"metadata": {"path": str(folder_copy)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                raise AssertionError(
                    f"{path.name} ran out of its {budget:.0f} s budget in "
                    f"{cell_label(index, cell)}:\n{cell.source}"
                ) from None
            if stop_at_first_error and error_outputs(cell) and not expects_error(cell):
                break
    seconds = time.monotonic() - start
    if seconds > budget:
        raise AssertionError(f"{path.name} took {seconds:.1f} s; its budget is {budget:.0f} s")
    return NotebookRun(notebook, seconds)


def _show(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _field_differences(where: str, expected: dict, got: dict, skip: tuple[str, ...] = ()) -> list[str]:
    differences = []
    for key in sorted(set(expected) | set(got)):
        if key in skip or expected.get(key) == got.get(key):
            continue
        if key == "source":
            diff = difflib.unified_diff(
                str(expected.get(key, "")).splitlines(), str(got.get(key, "")).splitlines(),
                "generated", "committed", lineterm="",
            )
            differences.append(f"{where}: source differs\n" + "\n".join(diff))
        else:
            differences.append(
                f"{where}: {key} differs\n  generated: {_show(expected.get(key))}\n"
                f"  committed: {_show(got.get(key))}"
            )
    return differences


def notebook_differences(generated: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """Every field in which two notebooks differ, cell by cell; empty when they are equal."""
    differences = _field_differences("notebook", generated, committed, skip=("cells",))
    generated_cells, committed_cells = generated["cells"], committed["cells"]
    if len(generated_cells) != len(committed_cells):
        differences.append(
            f"generated has {len(generated_cells)} cells, committed has {len(committed_cells)}"
        )
    for index, (expected, got) in enumerate(zip(generated_cells, committed_cells)):
        differences += _field_differences(cell_label(index, expected), expected, got)
    return differences


def relative_files(folder: Path) -> set[Path]:
    """Files under ``folder`` relative to it, without the ones nbgrader ignores."""
    files = (path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    return {
        path for path in files
        if not any(fnmatch(part, pattern) for part in path.parts for pattern in IGNORED_NAMES)
    }
