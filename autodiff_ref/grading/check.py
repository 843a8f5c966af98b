"""Instant feedback for self-paced learners: grade a course notebook on your own machine.

    autodiff-course check 03_scalar_autodiff.ipynb      # from any folder, any copy of it
    autodiff-course check NOTEBOOK --timeout 10 --course ~/autodiff-course
    autodiff-course progress            # every notebook of the course
    autodiff-course audit               # instructors: after nbgrader autograde, what to look at
    python -m autodiff_ref.grading.check check PATH.ipynb

``check`` runs a copy of the learner's notebook headless (the notebook itself is never changed),
the way ``nbgrader autograde`` would, but without a course database. The learner's solution cells
run as written; every read-only or test cell, and every grade id and its points, is taken from
the course's version of the notebook (matched by ``grade_id``), so an edited test, changed
points or a graded cell the learner added count for nothing and are named. The course's version
is the instructor's in ``solutions/`` when there is one (hidden tests included), else the one
handed out in ``course/`` (visible tests only, and the output says so), else, for a notebook
found outside any course, the notebook itself; in the last two, which are on the learner's disk,
only the cells that still match the checksums nbgrader gave them at release count.
It prints one row per exercise: points earned of possible, pass or fail, and what to fix. The
exit status is 0 only when every exercise passes.

Which assignment a notebook is comes from its cells (their grade ids), not its file name, so a
renamed copy is checked too. The course is found by walking up from the notebook, then from the
working directory, to a folder holding ``solutions/`` or ``course/`` (a clone of the course),
or a folder of assignment folders (``NN_name/NN_name.ipynb``, the ``course/`` a class hands
out); ``--course`` names it instead.

``audit`` is for instructors, after ``nbgrader autograde``: in the course folder it lists every
submitted notebook that was not graded (the autograde log says why) and every autograded one in
which the grader found cells changed, checks replaced, or the kernel dead. Exit status 0 means
there is nothing to look at.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autodiff_ref.grading import ONE_THREAD
from autodiff_ref.grading.fork_server import PREIMPORTS

if TYPE_CHECKING:
    from nbformat import NotebookNode

# jsonschema builds a grammar for the "iri" string format at import when rfc3987_syntax is
# installed: over a second of CPU at every check's start. The notebook schema has no such
# format, so without it nothing changes but the wait. (Only when jsonschema is not loaded yet;
# nbformat, which loads it, is imported where it is used.)
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

# nbformat, jupyter_client and nbclient cost a few tenths of a second of CPU at every start. The
# functions below import them where they use them, so that main() starts the kernels' fork server
# first, and it imports on another core meanwhile. Nothing check runs imports nbgrader (another
# second): grading's rules come from autodiff_ref.grading.cells and .execution, which it shares.

DEFAULT_CELL_TIMEOUT = 120
HIDDEN_TEST_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END)\s+HIDDEN\s+TESTS\s*$", re.IGNORECASE)
IGNORED_FILES = (".ipynb_checkpoints", "__pycache__", "*.pyc")
NO_HIDDEN_TESTS_NOTE = (
    "the hidden tests are not in this copy of the course (it has no solutions/ folder), so only "
    "the visible tests ran and your graded score can be lower"
)


class CheckError(Exception):
    """A notebook that cannot be checked at all; the message says what to do about it."""


@dataclass
class ExerciseResult:
    grade_id: str
    points: float
    earned: float
    message: str  # the line that says what went wrong; empty when passed
    details: list[str] = field(default_factory=list)  # the lines after it: where, values, hint

    @property
    def passed(self) -> bool:
        return self.earned == self.points


# --- finding the course and the assignment ------------------------------------------------------


@dataclass
class Course:
    """Where a course's notebooks are: ``solutions`` (the instructor's, with hidden tests) and
    ``released`` (as handed out); either may be missing. Each holds ``NN_name/NN_name.ipynb``."""

    root: Path
    solutions: Path | None
    released: Path | None

    def assignments(self) -> list[str]:
        names = set()
        for folder in (self.solutions, self.released):
            names |= set(assignment_notebooks(folder)) if folder else set()
        return sorted(names)

    def reference_path(self, assignment: str) -> Path | None:
        """The notebook whose fixed cells and points count: the instructor's, else the released one."""
        for folder in (self.solutions, self.released):
            if folder and (folder / assignment / f"{assignment}.ipynb").is_file():
                return folder / assignment / f"{assignment}.ipynb"
        return None


def assignment_notebooks(folder: Path) -> dict[str, Path]:
    """``NN_name -> folder/NN_name/NN_name.ipynb`` for every assignment folder in ``folder``."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return {}
    return {
        child.name: child / f"{child.name}.ipynb"
        for child in children if child.is_dir() and (child / f"{child.name}.ipynb").is_file()
    }


def _course_at(folder: Path) -> Course | None:
    """The course whose root is ``folder``, if it is one: a clone (``solutions/`` or ``course/``
    holding assignment folders) or a folder of assignment folders as handed out."""
    solutions, released = folder / "solutions", folder / "course"
    has_solutions = bool(assignment_notebooks(solutions))
    has_released = bool(assignment_notebooks(released))
    if has_solutions or has_released:
        return Course(folder, solutions if has_solutions else None, released if has_released else None)
    if assignment_notebooks(folder):
        parent = _course_at(folder.parent) if folder.parent != folder else None
        if parent is not None and parent.released == folder:
            return parent  # course/ of a clone: the clone has the instructor's notebooks too
        return Course(folder, None, folder)
    return None


def find_course(starts: list[Path]) -> Course | None:
    """The nearest course at or above each of ``starts``, in order; None if there is none."""
    for start in starts:
        start = start.resolve()
        for folder in (start, *start.parents):
            course = _course_at(folder)
            if course is not None:
                return course
    return None


def _grade_ids(notebook: dict) -> set[str]:
    return {
        grade_id for cell in notebook.get("cells", [])
        if (grade_id := cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
    }


def which_assignment(learner: NotebookNode, path: Path, course: Course) -> str:
    """The assignment of ``course`` whose cells ``learner`` shares most (its file name only
    breaks a tie), so that a renamed or moved copy is still recognised."""
    ours = _grade_ids(learner)
    best, best_share = None, 0.0
    names = course.assignments()
    named = [name for name in names if name in (path.stem, path.parent.name)]
    for name in named + [name for name in names if name not in named]:
        reference = course.reference_path(name)
        theirs = _grade_ids(json.loads(reference.read_text(encoding="utf-8")))
        share = len(ours & theirs) / max(len(theirs), 1)
        if share > best_share or (share == best_share and share > 0 and name in named):
            best, best_share = name, share
        if best_share == 1 and best in named:
            break  # nothing can share more, and a tie goes to the name: no need to read the rest
    if best is None:
        places = ", ".join(str(folder) for folder in (course.solutions, course.released) if folder)
        raise CheckError(
            f"{path.name} shares no cell (no grade_id) with any notebook of the course in {places}: "
            "is it a notebook of this course? If it is, take a fresh copy of it from the course "
            "and copy your answers into it."
        )
    return best


# --- reading notebooks --------------------------------------------------------------------------


def read_notebook(path: Path) -> NotebookNode:
    import nbformat

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


def checksummed_cells(notebook: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """A copy of ``notebook`` to take tests and points from when there is no instructor's
    version, and the grade_ids of its graded or fixed cells whose nbgrader checksum no longer
    matches, which the copy keeps as plain cells: they count for nothing.

    Without ``solutions/`` the course's copy is on the learner's disk, often the very file they
    work in, so only cells that still match the checksum nbgrader gave them at release count. A
    checksum can be recomputed by whoever sets out to, so this stops honest mistakes (an edited
    test, a pasted or added graded cell, changed points), and the note printed with the table
    says that the hidden tests, and the grader's own copy, were not there.
    """
    from autodiff_ref.grading.cells import is_fixed_cell, nbgrader_checksum, nbgrader_metadata

    changed = []
    for cell in notebook.cells:
        meta = nbgrader_metadata(cell)
        if not (meta.get("grade") or is_fixed_cell(cell)) or meta.get("solution"):
            continue
        try:
            intact = meta.get("checksum") == nbgrader_checksum(cell)
        except (KeyError, ValueError, TypeError):  # grade_id or points missing or not a number
            intact = False
        if not intact:
            changed.append(meta.get("grade_id", "(a cell without grade_id)"))
    return without_grading(notebook, changed), changed


def without_grading(notebook: NotebookNode, grade_ids: list[str]) -> NotebookNode:
    """A copy of ``notebook`` in which the cells ``grade_ids`` are plain cells (no nbgrader metadata)."""
    plain = copy.deepcopy(notebook)
    for cell in plain.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in grade_ids:
            del cell.metadata["nbgrader"]
    return plain


# --- building the notebook that is run ----------------------------------------------------------


def graded_points(reference: NotebookNode) -> dict[str, float]:
    """grade_id -> points of every test cell of the course's version: all that can score."""
    from autodiff_ref.grading.cells import is_test_cell, nbgrader_metadata

    return {nbgrader_metadata(c)["grade_id"]: float(nbgrader_metadata(c).get("points", 0))
            for c in reference.cells if is_test_cell(c)}


def with_instructor_tests(
    learner: NotebookNode, instructor: NotebookNode, name: str
) -> tuple[NotebookNode, list[str]]:
    """A copy of ``learner`` whose fixed cells (tests included, hidden ones too) come from
    ``instructor`` (the course's version), and notes on what the learner changed that does not
    count: fixed cells edited or deleted, graded cells the course's version does not have.

    Deleted cells are put back, as the grader does. Raises :class:`CheckError` when cells are
    out of order or changed in kind.
    """
    from autodiff_ref.grading import static
    from autodiff_ref.grading.cells import (
        is_fixed_cell,
        keep_only_handed_out_grading,
        nbgrader_metadata,
        put_back_deleted,
        tampering,
        unmark_duplicates,
    )

    handed_out = copy.deepcopy(instructor)
    for cell in handed_out.cells:
        if is_fixed_cell(cell):
            cell.source = released_source(cell.source)
    learner = copy.deepcopy(learner)
    duplicated = unmark_duplicates(learner)  # as in grading: the last copy counts
    edited, deleted, moved = tampering(learner, handed_out)
    fresh_copy = "take the cells back from a fresh copy of the course notebook"
    if moved:
        raise CheckError(
            f"{name}: cells are out of order (first one moved: {moved[0]}); put them back in the "
            f"course order or {fresh_copy}"
        )
    runnable = copy.deepcopy(learner)
    # Graded cells, points and kinds of cell count only as the course handed them out, by the
    # grader's own rule, so the two give the same points.
    grading_changed = keep_only_handed_out_grading(runnable, instructor)
    for grade_id in deleted:
        put_back_deleted(runnable, handed_out, grade_id)
    # What grading refuses to run, check refuses too.
    flagged = static.findings(learner, instructor)
    static.refuse(runnable, instructor, flagged)
    fixed = {nbgrader_metadata(cell)["grade_id"]: cell for cell in instructor.cells if is_fixed_cell(cell)}
    for cell in runnable.cells:
        meta = nbgrader_metadata(cell)
        original = fixed.get(meta.get("grade_id"))
        if original is None:
            continue
        if cell.cell_type != original.cell_type:
            raise CheckError(
                f"{name}: cell {meta['grade_id']} was changed from {original.cell_type} "
                f"to {cell.cell_type}; {fresh_copy}"
            )
        # The hidden-test markers stay, as in nbgrader autograde: passed(..., hidden=True)
        # reads them to know the hidden tests ran.
        cell.source = original.source
        cell.metadata["nbgrader"] = dict(nbgrader_metadata(original))
    notes = [
        f"cell {grade_id} appears more than once; as in grading, only its last copy counts and the "
        "others ran as your own code" for grade_id in duplicated
    ]
    notes += [f"you changed cell {grade_id}; the course's version ran instead" for grade_id in edited]
    notes += [f"cell {grade_id} was missing; the course's version was put back and ran" for grade_id in deleted]
    notes += grading_changed
    notes += [f"{finding} (not run, as in grading: its exercise scores 0)" for finding in flagged]
    return runnable, notes


KERNEL_ARGUMENTS = [
    # No figures are drawn (the table is all a check prints): only the text form of a cell's
    # value is made, not the picture of a matplotlib figure or of draw_graph's (a fifth of a
    # second of CPU each). The kernel's warning that it talks over local TCP would only alarm a
    # learner.
    "--DisplayFormatter.active_types=['text/plain']", "--IPKernelApp.log_level=ERROR",
    "--HistoryManager.hist_file=:memory:",  # as nbclient starts a kernel: no history file written
    # What the fork server imports before it forks (fork_server.PREIMPORTS), imported here too
    # where kernels start the usual way: while the kernel boots, on another core than the one
    # preparing the notebook. (The grader's guard imports them before the first cell anyway, so
    # it guards the same modules as in grading.) No name is left bound, so a notebook that forgot
    # an import fails here as it does in grading.
    f"--IPKernelApp.exec_lines=import {', '.join(PREIMPORTS)}; "
    f"del {', '.join(sorted({name.split('.')[0] for name in PREIMPORTS}))}",
]


def kernel_environment() -> dict[str, str]:
    """This environment with one BLAS thread unless it names a number (see ONE_THREAD)."""
    return {**os.environ, **{name: os.environ.get(name, value) for name, value in ONE_THREAD.items()}}


def start_fork_server():
    """The fork server that :func:`start_kernel` takes kernels from (see
    :mod:`autodiff_ref.grading.fork_server`), started now so that it imports while the caller
    goes on; None where kernels are not forked."""
    from autodiff_ref.grading.fork_server import ForkServer, forking_works

    return ForkServer(kernel_environment()).start() if forking_works() else None


def start_kernel(folder: Path, fork_server=None):
    """A kernel started in ``folder`` (forked from ``fork_server`` when there is one), to hand
    to :func:`run_notebook`; it boots while the caller goes on."""
    from jupyter_core.utils import run_sync

    from autodiff_ref.grading.forked_kernels import ForkedKernelManager

    kernel = ForkedKernelManager(fork_server, kernel_name="python3")
    run_sync(kernel.start_kernel)(extra_arguments=KERNEL_ARGUMENTS, cwd=str(folder), env=kernel_environment())
    return kernel


async def _shut_down(kernel) -> None:
    # Once the notebook has run, nothing in the kernel is left to keep (its outputs are in, its
    # files are in the scratch folder), so it is stopped at once: a shutdown request would wait
    # for the interpreter's own teardown, a few tenths of a second of every check. No interrupt
    # before it, as jupyter_client's shutdown_kernel() sends: one that lands while the kernel is
    # still finishing its last message makes it log "KeyboardInterrupt caught in kernel" into
    # the learner's terminal; a kill logs nothing.
    if kernel.has_kernel:
        await kernel.provisioner.kill()
        await kernel.provisioner.wait()
    await kernel.cleanup_resources()


def shut_down(kernel) -> None:
    """Stop ``kernel`` at once and free what it held (see _shut_down)."""
    from jupyter_core.utils import run_sync

    run_sync(_shut_down)(kernel)


def run_notebook(notebook: NotebookNode, kernel, timeout: int) -> NotebookNode:
    """Run ``notebook`` in place in ``kernel`` (from :func:`start_kernel`) as grading runs it,
    then shut the kernel down."""
    from autodiff_ref.grading.execution import CheckRun

    run = CheckRun(notebook, kernel, timeout)
    try:
        run.run()
    finally:
        if run.kc is not None:
            run.kc.stop_channels()
        shut_down(kernel)
    return notebook


# --- reading the results ------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def what_to_fix(error: NotebookNode, broken_answer: str | None, timeout: int) -> tuple[str, list[str]]:
    """The line that tells the learner what to do about a failed test cell, and the lines after
    it in the test's message (where, the values, the hint)."""
    name, lines = error.get("ename", "Error"), _lines(error.get("evalue", ""))
    value = lines[0].strip() if lines else ""
    if name == "NotImplementedError":
        return "not written yet: replace `raise NotImplementedError()` in the exercise above", []
    if name == "CellTimeoutError" or "Interrupt" in name:
        return f"stopped after {timeout} s: look for an endless loop", []
    if broken_answer and name in ("NameError", "AttributeError", "ImportError"):
        return f"your exercise cell above failed first: {broken_answer}", []
    if name == "KernelDied":
        return value, []
    if value and name in ("CheckFailure", "AssertionError"):
        return value, lines[1:]
    if value:
        return f"{name}: {value}", lines[1:]
    return f"{name} (the test's assertion failed)", []


def exercise_results(notebook: NotebookNode, timeout: int, points: dict[str, float]) -> list[ExerciseResult]:
    """One result per test cell of ``points`` (grade_id -> points, from the course's version)
    in a notebook that has run."""
    from autodiff_ref.grading.cells import error_outputs, is_test_cell, nbgrader_metadata

    results = []
    broken_answer = None  # the last error of an answer cell since the previous test
    for cell in notebook.cells:
        meta = nbgrader_metadata(cell)
        if cell.cell_type == "code" and meta.get("solution"):
            errors = [e for e in error_outputs(cell) if e.get("ename") != "NotImplementedError"]
            if errors:
                broken_answer = f"{errors[0].ename}: {(_lines(errors[0].get('evalue', '')) or [''])[0].strip()}"
        if not is_test_cell(cell) or meta.get("grade_id") not in points:
            continue
        possible = points[meta["grade_id"]]
        errors = error_outputs(cell)
        message, details = what_to_fix(errors[0], broken_answer, timeout) if errors else ("", [])
        results.append(ExerciseResult(meta["grade_id"], possible, 0.0 if errors else possible, message, details))
        broken_answer = None
    return results


def format_table(title: str, results: list[ExerciseResult], width: int | None = None) -> str:
    """The table of results, each failure followed by the rest of its message, wrapped to
    ``width`` (the terminal's by default)."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    id_width = max([len("exercise"), *(len(r.grade_id) for r in results)])
    points = [f"{r.earned:g} / {r.points:g}" for r in results]
    points_width = max([len("points"), *(len(p) for p in points)])
    lines = [title, f"  {'exercise':<{id_width}}  {'points':>{points_width}}  result  what to fix"]
    for result, shown in zip(results, points):
        verdict = "pass" if result.passed else "FAIL"
        row = f"  {result.grade_id:<{id_width}}  {shown:>{points_width}}  {verdict:<6}  {result.message}".rstrip()
        lines += textwrap.wrap(row, width, subsequent_indent=" " * 6, break_on_hyphens=False) or [row]
        for detail in result.details:
            indent = " " * 6 + " " * (len(detail) - len(detail.lstrip()))
            lines += textwrap.wrap(detail.strip(), width, initial_indent=indent, subsequent_indent=indent + "  ",
                                   break_on_hyphens=False)
    earned = sum(r.earned for r in results)
    possible = sum(r.points for r in results)
    lines.append(f"  {'total':<{id_width}}  {f'{earned:g} / {possible:g}':>{points_width}}")
    return "\n".join(lines)


# --- the commands -------------------------------------------------------------------------------


@dataclass
class Checked:
    """What ``check`` found for one notebook."""

    results: list[ExerciseResult]
    notes: list[str]
    hidden_tests_ran: bool
    unverified: list[str] = field(default_factory=list)  # tests whose checksum no longer matches

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results) and not self.unverified


def check_notebook(
    path: Path, timeout: int = DEFAULT_CELL_TIMEOUT, course: Path | None = None, fork_server=None
) -> Checked:
    """Grade the notebook at ``path`` against the course's tests; ``path`` is left untouched.

    ``course``: the course folder, when it is not to be found from ``path`` or the working
    directory. ``fork_server``: where to take the kernel from (:func:`start_fork_server`); by
    default it starts as usual.
    """
    path = Path(path)
    if path.suffix != ".ipynb":
        raise CheckError(f"{path} is not a notebook (.ipynb)")
    learner = read_notebook(path)
    starts = [course] if course else [path.parent, Path.cwd()]
    found = find_course(starts)
    notes = []
    if found is None and course is not None:
        raise CheckError(
            f"{course} is not a course folder: expected solutions/ or course/ holding "
            "NN_name/NN_name.ipynb, or NN_name/NN_name.ipynb folders themselves"
        )
    if found is None:
        assignment, reference_folder, hidden_tests_ran = None, None, False
        looked = " and ".join(dict.fromkeys(str(start.resolve()) for start in starts))
        notes.append(
            f"no course folder found at or above {looked} (one holding solutions/ or course/, or "
            "NN_name/NN_name.ipynb folders), so this notebook's own test cells ran; "
            "`--course FOLDER` names the course"
        )
    else:
        assignment = which_assignment(learner, path, found)
        reference_folder = (found.released or found.solutions) / assignment
        hidden_tests_ran = found.solutions is not None and (found.solutions / assignment).is_dir()
    with tempfile.TemporaryDirectory(prefix="autodiff-check-") as scratch:
        # Run beside a copy of the assignment's folder as handed out, so files it reads are
        # there and files it writes land in the scratch folder.
        folder = Path(scratch) / (assignment or path.stem)
        if reference_folder is not None and reference_folder.is_dir():
            shutil.copytree(reference_folder, folder, ignore=shutil.ignore_patterns(*IGNORED_FILES, "*.ipynb"))
        else:
            folder.mkdir()
        kernel = start_kernel(folder, fork_server)
        try:
            reference = read_notebook(found.reference_path(assignment)) if found else learner
            changed: list[str] = []
            if not hidden_tests_ran:  # the course's copy is the learner's to edit: trust its checksums only
                reference, changed = checksummed_cells(reference)
            runnable, tampering_notes = with_instructor_tests(without_grading(learner, changed), reference, path.name)
        except BaseException:
            shut_down(kernel)
            raise
        run_notebook(runnable, kernel, timeout)
    notes += [f"cell {grade_id} does not match the nbgrader checksum the course gave it: it counts for nothing"
              for grade_id in changed]
    notes += tampering_notes
    return Checked(exercise_results(runnable, timeout, graded_points(reference)), notes, hidden_tests_ran, changed)


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def _check_report(path: Path, timeout: int, course: Path | None, fork_server=None) -> tuple[str, Checked | None]:
    """The text ``check`` prints for ``path``, and what it found (None if it could not check)."""
    try:
        checked = check_notebook(path, timeout, course, fork_server)
    except CheckError as error:
        return f"{_shown(path)}\n  error: {error}", None
    lines = [format_table(_shown(path), checked.results)]
    lines += [f"  note: {note}" for note in checked.notes]
    if not checked.hidden_tests_ran:
        lines.append(f"  note: {NO_HIDDEN_TESTS_NOTE}")
    return "\n".join(lines), checked


def _progress(folder: Path, timeout: int, fork_server=None) -> int:
    """Check every notebook of the course at or above ``folder``, side by side on the cores
    there are, and print each table in course order and then the course total."""
    course = find_course([folder])
    if course is None:
        print(f"error: no course folder found at or above {folder.resolve()}: expected one holding "
              "solutions/ or course/, or NN_name/NN_name.ipynb folders")
        return 1
    if course.released is None:
        print(f"error: {course.root} has no course/ folder of learner notebooks to check")
        return 1
    notebooks = list(assignment_notebooks(course.released).values())
    workers = max(1, min(len(notebooks), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        reports = pool.map(lambda path: _check_report(path, timeout, course.root, fork_server), notebooks)
        found = []
        for index, (text, checked) in enumerate(reports):
            print(("\n" if index else "") + text, flush=True)
            found.append(checked)
    checked = [c for c in found if c is not None]
    earned = sum(r.earned for c in checked for r in c.results)
    possible = sum(r.points for c in checked for r in c.results)
    complete = sum(c.passed for c in checked)
    print(f"\ncourse total: {earned:g} / {possible:g} points; {complete} of {len(notebooks)} notebooks complete")
    return 0 if complete == len(notebooks) else 1


def _audit_and_print(course: Path) -> int:
    from autodiff_ref.grading.preprocessors import audit

    if not (course / "submitted").is_dir():
        print(f"error: {course} has no submitted/ folder; run audit in the nbgrader course folder")
        return 1
    count, findings = audit(course)
    print(f"{count} submitted notebooks in {course / 'submitted'}; {len(findings)} finding(s)")
    for finding in findings:
        print(f"  {finding.student}  {finding.assignment}/{finding.notebook}.ipynb: {finding.what}")
    return 1 if findings else 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} s: a cell needs at least 1 s")
    return value


def main(argv: list[str] | None = None) -> int:
    # The options are accepted before and after the command (`check NOTEBOOK --timeout 10`), as
    # a user types them; given after it, they win.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--timeout", type=_positive_int, default=argparse.SUPPRESS,
                         help=f"seconds a cell may run before it is stopped (default {DEFAULT_CELL_TIMEOUT})")
    options.add_argument("--course", type=Path, default=argparse.SUPPRESS,
                         help="the course folder, when it is not found from the notebook or here")
    parser = argparse.ArgumentParser(
        prog="autodiff-course", parents=[options],
        description="Check course notebooks against the full tests, hidden ones included.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", parents=[options], help="check one notebook")
    check.add_argument("notebook", type=Path)
    progress = commands.add_parser("progress", parents=[options], help="check every notebook of the course")
    progress.add_argument("course_dir", type=Path, nargs="?", default=None,
                          help="the course folder or any folder inside it (default: here)")
    audit_command = commands.add_parser(
        "audit", help="for instructors, after nbgrader autograde: list the submissions to look at")
    audit_command.add_argument("course_dir", type=Path, nargs="?", default=Path.cwd(),
                               help="the nbgrader course folder, holding submitted/ and autograded/ (default: here)")
    arguments = parser.parse_args(argv)
    timeout = getattr(arguments, "timeout", DEFAULT_CELL_TIMEOUT)
    course = getattr(arguments, "course", None)

    if arguments.command == "audit":
        return _audit_and_print(arguments.course_dir)
    fork_server = start_fork_server()
    try:
        if arguments.command == "check":
            text, checked = _check_report(arguments.notebook, timeout, course, fork_server)
            print(text)
            return 0 if checked is not None and checked.passed else 1
        return _progress(arguments.course_dir or course or Path.cwd(), timeout, fork_server)
    finally:
        if fork_server is not None:
            fork_server.close()


if __name__ == "__main__":
    sys.exit(main())
