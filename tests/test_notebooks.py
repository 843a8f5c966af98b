"""Checks every course notebook, in both its instructor and its learner form.

- Layout: each `solutions/NN_name/NN_name.ipynb` has its learner twin `course/NN_name/NN_name.ipynb`
  and the other way round.
- Form (both forms): valid nbformat, stored without outputs or execution counts, kernel
  `python3` with the metadata JupyterLab writes for it (else opening a notebook marks it as
  changed), unique grade_ids, every graded cell worth points > 0, and the first markdown cell
  stating the total as `**Total: N points**` with N the sum of the graded cells' points.
- Code lines are at most 90 columns wide, and in a test cell with hidden tests the visible part
  passes `hidden=True` (to `passed` or to a check), so its ✓ says hidden checks run at grading.
- Solutions: every code solution cell holds `### BEGIN SOLUTION` / `### END SOLUTION`; solution
  and hidden-test markers appear only in the cells nbgrader expects them in.
- Solutions run top to bottom in a fresh kernel without an error, within 60 s (120 s for
  `07_training_a_network`), and every autograded test cell prints a ✓ line.
- Learner notebooks run top to bottom; the only errors come from solution cells raising
  `NotImplementedError` and from autograded test cells, and every autograded test cell fails
  (a test that passes before the learner writes anything checks nothing).
- `course/` is exactly what `nbgrader generate_assignment` makes from `solutions/`.

A cell tagged `raises-exception` may raise on purpose (Jupyter's convention for a demonstration);
in the solution it must raise. The slow checks carry the `notebooks` marker:
`pytest -m "not notebooks"` skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autodiff_ref.grading.check import released_source

from notebook_tools import (
    COURSE_DIR,
    IGNORED_NAMES,
    REPO_ROOT,
    SOLUTIONS_DIR,
    TOTAL_POINTS_PATTERN,
    cell_label,
    describe_error,
    error_outputs,
    expects_error,
    is_graded_cell,
    is_solution_cell,
    is_test_cell,
    nbgrader_metadata,
    notebook_differences,
    notebook_paths,
    printed_text,
    read_notebook,
    relative_files,
    run_notebook,
)

SOLUTION_NOTEBOOKS = notebook_paths(SOLUTIONS_DIR)
COURSE_NOTEBOOKS = notebook_paths(COURSE_DIR)
ALL_NOTEBOOKS = SOLUTION_NOTEBOOKS + COURSE_NOTEBOOKS

REGENERATE_HINT = (
    "regenerate it from the repository root with the environment active: "
    "nbgrader generate_assignment {name} --force"
)


def notebook_id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def each(paths: list[Path]):
    return pytest.mark.parametrize("path", paths, ids=[notebook_id(p) for p in paths])


def report(problems: list[str]) -> None:
    """Fail with every problem found, each in its own paragraph."""
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --- layout and form ---------------------------------------------------------------------------


def test_every_solution_has_a_learner_version_and_back():
    solutions = {str(p.relative_to(SOLUTIONS_DIR)) for p in SOLUTION_NOTEBOOKS}
    learner = {str(p.relative_to(COURSE_DIR)) for p in COURSE_NOTEBOOKS}
    problems = []
    if solutions - learner:
        problems.append(f"solutions without a course/ version (generate them): {sorted(solutions - learner)}")
    if learner - solutions:
        problems.append(
            "course/ notebooks without a solution (course/ is generated, never written by hand): "
            f"{sorted(learner - solutions)}"
        )
    report(problems)


def test_notebooks_are_named_after_their_folder():
    misnamed = [notebook_id(p) for p in ALL_NOTEBOOKS if p.stem != p.parent.name]
    report([f"expected NN_name/NN_name.ipynb, found: {misnamed}"] if misnamed else [])


@each(ALL_NOTEBOOKS)
def test_stored_clean(path):
    notebook = read_notebook(path)
    nbformat.validate(notebook)
    problems = []
    kernel = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}; the course runs on 'python3'")
    with_outputs = [
        cell_label(index, cell) for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    if with_outputs:
        problems.append(f"clear outputs and execution counts before committing: {with_outputs}")
    report(problems)


# What JupyterLab 4 writes into a notebook when an ipykernel Python 3 kernel starts: the kernelspec
# from the kernel's spec, language_info from the kernel's info reply. JupyterLab compares each
# with what the file holds (a deep comparison) and marks the notebook as changed when they
# differ, so a notebook that ships anything else asks "Save changes?" the moment it is opened.
# Only language_info's `version` depends on the learner's Python; it can match only one.
JUPYTERLAB_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
JUPYTERLAB_LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


@each(ALL_NOTEBOOKS)
def test_ships_the_metadata_jupyterlab_writes(path):
    metadata = read_notebook(path).metadata
    problems = []
    if metadata.get("kernelspec") != JUPYTERLAB_KERNELSPEC:
        problems.append(f"kernelspec is {metadata.get('kernelspec')!r}; ship {JUPYTERLAB_KERNELSPEC!r}")
    language_info = dict(metadata.get("language_info", {}))
    version = language_info.pop("version", None)
    if language_info != JUPYTERLAB_LANGUAGE_INFO:
        problems.append(
            f"language_info is {metadata.get('language_info')!r}; ship {JUPYTERLAB_LANGUAGE_INFO!r} "
            "with a version"
        )
    if not (isinstance(version, str) and version.startswith("3.")):
        problems.append(f"language_info has version {version!r}; ship a Python version such as '3.11.7'")
    report(problems)


@each(ALL_NOTEBOOKS)
def test_grade_ids_are_unique(path):
    grade_ids = [nbgrader_metadata(cell).get("grade_id") for cell in read_notebook(path).cells]
    repeated = sorted({g for g in grade_ids if g is not None and grade_ids.count(g) > 1})
    report([f"grade_ids used more than once: {repeated}"] if repeated else [])


@each(ALL_NOTEBOOKS)
def test_points_add_up_to_the_stated_total(path):
    cells = read_notebook(path).cells
    graded = [(index, cell) for index, cell in enumerate(cells) if is_graded_cell(cell)]
    problems = [
        f"{cell_label(index, cell)} is graded but not worth points > 0"
        for index, cell in graded if not nbgrader_metadata(cell).get("points", 0) > 0
    ]
    total = sum(nbgrader_metadata(cell).get("points", 0) for _, cell in graded)
    markdown = [cell.source for cell in cells if cell.cell_type == "markdown"]
    stated = TOTAL_POINTS_PATTERN.search(markdown[0]) if markdown else None
    if stated is None:
        problems.append(f"the first markdown cell must state the total as **Total: {total:g} points**")
    elif int(stated.group(1)) != total:
        problems.append(f"the first markdown cell says {stated.group(0)}, but the graded cells add up to {total:g}")
    report(problems)


@each(SOLUTION_NOTEBOOKS)
def test_solution_and_hidden_test_markers(path):
    problems = []
    for index, cell in enumerate(read_notebook(path).cells):
        label, source = cell_label(index, cell), cell.source
        has_solution_markers = "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
        if cell.cell_type == "code" and is_solution_cell(cell) and not has_solution_markers:
            problems.append(f"{label} is a solution cell without ### BEGIN SOLUTION / ### END SOLUTION")
        if "BEGIN SOLUTION" in source and not is_solution_cell(cell):
            problems.append(f"{label} has solution markers but is not a solution cell")
        if "BEGIN HIDDEN TESTS" in source and not is_test_cell(cell):
            problems.append(f"{label} has hidden tests but is not an autograded test cell")
    report(problems)


# Wider lines need a horizontal scroll bar in JupyterLab at a laptop's width.
MAX_CODE_COLUMNS = 90


@each(ALL_NOTEBOOKS)
def test_code_fits_a_notebooks_width(path):
    problems = [
        f"{cell_label(index, cell)} line {number} is {len(line)} columns wide (at most "
        f"{MAX_CODE_COLUMNS}): {line.strip()[:60]}..."
        for index, cell in enumerate(read_notebook(path).cells) if cell.cell_type == "code"
        for number, line in enumerate(cell.source.split("\n"), start=1) if len(line) > MAX_CODE_COLUMNS
    ]
    report(problems)


@each(SOLUTION_NOTEBOOKS)
def test_a_visible_pass_with_hidden_siblings_says_so(path):
    # The learner's copy has the cell without its hidden tests: a ✓ printed there must say that
    # hidden checks run at grading (passed(..., hidden=True), or a check given hidden=True).
    problems = [
        f"{cell_label(index, cell)} has hidden tests, but nothing outside them passes hidden=True"
        for index, cell in enumerate(read_notebook(path).cells)
        if "BEGIN HIDDEN TESTS" in cell.source and "hidden=True" not in released_source(cell.source)
    ]
    report(problems)


# --- running -----------------------------------------------------------------------------------


@pytest.mark.notebooks
@each(SOLUTION_NOTEBOOKS)
def test_solution_runs_clean(path, tmp_path):
    notebook = run_notebook(path, tmp_path, stop_at_first_error=True).notebook
    problems = []
    for index, cell in enumerate(notebook.cells):
        label = cell_label(index, cell)
        if error_outputs(cell) and not expects_error(cell):
            problems.append(f"{path.name} failed in {label}:\n{describe_error(index, cell)}")
            break  # the rest of the notebook did not run
        if expects_error(cell) and not error_outputs(cell):
            problems.append(f"{label} is tagged raises-exception but raised nothing")
        if is_test_cell(cell) and "✓" not in printed_text(cell):
            problems.append(f"{label} passed without printing a ✓ line (use autodiff_ref.testing.passed)")
    report(problems)


@pytest.mark.notebooks
@each(COURSE_NOTEBOOKS)
def test_learner_version_fails_only_where_the_learner_works(path, tmp_path):
    notebook = run_notebook(path, tmp_path, stop_at_first_error=False).notebook
    problems = []
    for index, cell in enumerate(notebook.cells):
        errors = error_outputs(cell)
        if is_test_cell(cell):
            if not errors:
                problems.append(
                    f"{cell_label(index, cell)} passes before the learner has written anything, "
                    "so it checks nothing the exercise asks for"
                )
        elif errors and not expects_error(cell) and not (
            is_solution_cell(cell) and all(e.ename == "NotImplementedError" for e in errors)
        ):
            problems.append(
                "only solution cells (raising NotImplementedError) and autograded test cells may "
                f"fail in the learner version, but this one failed too:\n{describe_error(index, cell)}"
            )
    report(problems)


# --- course/ is generated from solutions/ ------------------------------------------------------


@dataclass
class GeneratedCourse:
    release_dir: Path
    log: str


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory) -> GeneratedCourse:
    """Run nbgrader once over a copy of `solutions/` and hand back its release tree."""
    work_dir = tmp_path_factory.mktemp("nbgrader")
    shutil.copytree(SOLUTIONS_DIR, work_dir / "solutions", ignore=shutil.ignore_patterns(*IGNORED_NAMES))
    shutil.copy2(REPO_ROOT / "nbgrader_config.py", work_dir)
    # nbgrader shells out to alembic, which lives next to this interpreter.
    search_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    nbgrader = shutil.which("nbgrader", path=search_path)
    assert nbgrader, f"nbgrader is not installed on {search_path}"
    # The assignment id is a glob: one call generates every assignment.
    result = subprocess.run(
        [nbgrader, "generate_assignment", "*", "--force"],
        cwd=work_dir, env={**os.environ, "PATH": search_path},
        capture_output=True, text=True, timeout=600,
    )
    return GeneratedCourse(work_dir / "course", f"exit code {result.returncode}\n{result.stderr}{result.stdout}")


@pytest.mark.notebooks
@each(SOLUTION_NOTEBOOKS)
def test_course_matches_nbgrader_output(path, generated_course):
    name = path.parent.name
    hint = REGENERATE_HINT.format(name=name)
    generated_folder = generated_course.release_dir / name
    committed_folder = COURSE_DIR / name
    if not (generated_folder / path.name).exists():
        report([f"nbgrader did not generate {name}; its log:\n{generated_course.log}"])
    generated_files, committed_files = relative_files(generated_folder), relative_files(committed_folder)
    problems = []
    if generated_files != committed_files:
        problems.append(
            f"course/{name} should hold exactly {sorted(map(str, generated_files))}, "
            f"but holds {sorted(map(str, committed_files))}"
        )
    for relative in sorted(generated_files & committed_files):
        generated, committed = generated_folder / relative, committed_folder / relative
        if relative.suffix == ".ipynb":
            differences = notebook_differences(read_notebook(generated), read_notebook(committed))
            if differences:
                problems.append(
                    f"course/{name}/{relative} is not what nbgrader generates:\n"
                    + "\n".join(differences[:10])
                )
        elif generated.read_bytes() != committed.read_bytes():
            problems.append(f"course/{name}/{relative} differs from solutions/{name}/{relative}")
    report(problems + [hint] if problems else [])
