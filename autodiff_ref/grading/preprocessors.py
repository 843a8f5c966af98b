"""nbgrader preprocessors that make grading hold against broken and dishonest submissions.

``nbgrader_config.py`` puts both in place; ``autodiff_ref.grading.check`` runs learners' notebooks with
:class:`GuardedExecute` too, so self-checks and the gradebook agree.

:class:`FlagTampering` (before nbgrader's ``OverwriteCells``) compares each submission with the
notebook that was handed out (``course/``): a test or read-only cell that was edited or deleted is
restored -- so it runs as written, hidden tests included -- and named in a *grading note* at the
top of the autograded notebook and in nbgrader's log; a notebook whose cells were reordered is
refused with an error that says so, and the rest of the class is graded. Graded cells, grade ids
and points count only as handed out, and the learner's cells are scanned before anything runs
(:mod:`autodiff_ref.grading.static`): a cell using what no honest answer needs does not run.

:class:`GuardedExecute` is nbgrader's ``Execute`` with three changes:

- When student code kills the kernel (``os._exit``, a crash in native code, running out of
  memory), stock nbgrader drops the whole notebook. Here the cells that ran keep their outputs, so
  their points, and the cell where the kernel died and every code cell after it get an error
  output saying so; nbgrader scores those 0. ``raise SystemExit`` needs nothing special: IPython
  records it as that cell's error and the kernel keeps running.
- Before each test cell it puts back whatever the notebook's own code replaced in the checking
  machinery -- NumPy's comparisons, ``autodiff_ref`` and its checks, IPython's hooks -- using
  :mod:`autodiff_ref.grading.integrity` in the kernel, and adds a note to that test's output naming what
  was put back.
- With ``sandbox = "bubblewrap"`` (``nbgrader_config.py``), the kernel starts inside a sandbox:
  see :mod:`autodiff_ref.grading.sandbox`. Each notebook records which way it ran, in its metadata.
"""

from __future__ import annotations

import ast
import copy
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Enum, List, Unicode

from autodiff_ref.grading import static
from autodiff_ref.grading.sandbox import SandboxedKernelManager
from autodiff_ref.grading.submissions import unsafe_in_submission

KERNEL_DIED = "KernelDied"
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


def _as_list(text: str | None) -> list[str] | None:
    """The list of names ``restore()`` returned, from its printed form; None if it is not one."""
    try:
        names = ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        return None
    return names if isinstance(names, list) else None


def _error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


# Notebook metadata key under which the grader records how the notebook ran ("sandbox":
# "bubblewrap" or "off"), for `autodiff-course audit`.
GRADING_METADATA = "autodiff_grading"


class GuardedExecute(Execute):
    """nbgrader's ``Execute``, surviving a kernel death and undoing tampering before each test."""

    sandbox = Enum(
        ["bubblewrap", "off"], default_value="off", config=True,
        help="Start the kernel inside bubblewrap (autodiff_ref.grading.sandbox), or not. Recorded in "
             "each notebook's metadata (autodiff_grading.sandbox) for `autodiff-course audit`.",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.sandbox == "bubblewrap":
            self.kernel_manager_class = SandboxedKernelManager

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        # The caller's ``nb`` is run in place, as in the parent class.
        nb.metadata.setdefault(GRADING_METADATA, {})["sandbox"] = self.sandbox
        self._running_cell: int | None = None
        self._guarded: bool | None = None  # None until the snapshot before the first code cell
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError:
            if self._running_cell is None:  # died before the first cell, e.g. while starting
                raise
            self._mark_cells_after_death(nb)
            return nb, resources if resources is not None else {}

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        self._running_cell = index
        if self._guarded is None:
            # The guard is reached under a name made up for this run, never through a module
            # attribute that a cell could replace (see integrity's docstring).
            self._guard = f"_autodiff_grading_guard_{secrets.token_hex(8)}"
            install = f"__import__('autodiff_ref.grading.integrity', fromlist=['install']).install({self._guard!r})"
            self._guarded = self._run_hidden(install) is not None
            if not self._guarded:
                self.log.warning("Grading guard unavailable: is autodiff_ref installed in the grading kernel?")
        put_back = None
        if self._guarded and is_test_cell(cell):
            put_back = self._run_hidden(f"{self._guard}.restore()")
        cell, resources = super().preprocess_cell(cell, resources, index)
        if self._guarded and is_test_cell(cell):
            self._note_put_back(cell, _as_list(put_back))
        if self._guarded and is_fixed_cell(cell):
            names = bound_names(cell.source)
            if names:
                self._run_hidden(f"{self._guard}.record({names!r})")
        return cell, resources

    def _run_hidden(self, expression: str) -> str | None:
        """Evaluate ``expression`` in the kernel, outside the notebook: the text of its result, or
        None if it failed.

        It goes in as a "user expression" of an empty, silent request, so neither the notebook's
        history nor any input transformer the notebook installed ever sees it.
        """
        request = self.kc.execute("", silent=True, store_history=False, user_expressions={"result": expression})
        result = self.wait_for_reply(request)["content"].get("user_expressions", {}).get("result", {})
        return result.get("data", {}).get("text/plain") if result.get("status") == "ok" else None

    def _note_put_back(self, cell: NotebookNode, names: list[str] | None) -> None:
        """Tell the instructor (log) and the student (the cell's output) what was put back."""
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if names is None:
            message = (
                f"Grading note: the grader could not check test {grade_id}'s surroundings: code "
                "in this notebook interfered with autodiff_ref.grading.integrity."
            )
        elif names:
            message = (
                f"Grading note: before test {grade_id} ran, the grader put back what code in this "
                f"notebook had replaced: {', '.join(names)}. The test ran against the real checks."
            )
        else:
            return
        cell.metadata[NOTE_TAG] = {"put_back": names} if names is not None else {"interfered": True}
        self.log.warning(message)
        # On stdout: nbgrader scores a test cell that printed to stderr as failed.
        cell.outputs.insert(0, NotebookNode(output_type="stream", name="stdout", text=message + "\n"))

    def _mark_cells_after_death(self, nb: NotebookNode) -> None:
        died_at = self._running_cell
        cause = (
            f"the kernel died while running cell {died_at} (os._exit, a crash in native code, "
            "or running out of memory); this cell and every cell after it could not run"
        )
        self.log.error("Kernel died in cell %d: %s", died_at, cause)
        nb.cells[died_at].metadata[NOTE_TAG] = {"kernel_died": True}
        for index, cell in enumerate(nb.cells):
            if index < died_at or cell.cell_type != "code":
                continue
            if index > died_at:
                cell.outputs = []
                cell.execution_count = None
            message = cause if index == died_at else f"not run: the kernel ended in cell {died_at}"
            cell.outputs.append(_error_output(KERNEL_DIED, message))


# --- tampering ------------------------------------------------------------------------------------


class TamperedNotebookError(ValueError):
    """A submission that cannot be graded as it is; the message says why and what to do."""


def _handed_out(resources: dict[str, Any], config: Any) -> NotebookNode | None:
    """The notebook as it was released to students, or None when the release folder lacks it."""
    coursedir = CourseDirectory(config=config)
    info = resources["nbgrader"]
    path = Path(coursedir.format_path(coursedir.release_directory, ".", info["assignment"]))
    path = path / f"{info['notebook']}.ipynb"
    return nbformat.read(path, as_version=4) if path.is_file() else None


def _fixed_cells(notebook: NotebookNode) -> dict[str, NotebookNode]:
    """The cells a student may not change, by grade_id, in order."""
    return {nbgrader_metadata(cell)["grade_id"]: cell for cell in notebook.cells if is_fixed_cell(cell)}


def _normalized(source: str) -> str:
    return re.sub(r"\s+$", "", source.replace("\r\n", "\n"), flags=re.MULTILINE).strip()


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


class FlagTampering(NbGraderPreprocessor):
    """Name edited and deleted test or read-only cells (restoring deleted ones), pasted copies of
    cells (running them as ordinary cells), graded cells and points the course did not hand out
    (counting them for nothing), and code no honest answer needs (:mod:`static`; that cell does
    not run); refuse reordered notebooks."""

    refuse_flagged_code = Bool(
        True, help="Replace an answer cell that uses what no honest answer needs (exec, inspect, threads, ...) "
        "by an error naming it, so that its exercise scores 0. False: run it and only name it in the grading note.",
    ).tag(config=True)
    allowed_constructs = List(
        Unicode(), help="Constructs the source scan allows in every notebook, e.g. ['inspect']; a notebook "
        "allows more in its metadata: autodiff_grading.allow.",
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        handed_out = _handed_out(resources, self.config)
        student, notebook = resources["nbgrader"].get("student", "?"), resources["nbgrader"]["notebook"]
        copies = _unmark_earlier_copies(nb)
        if handed_out is None:
            self.log.warning("No released copy of %s to compare with: tampering not checked", notebook)
            return nb, resources
        grading_changed = keep_only_handed_out_grading(nb, handed_out)
        flagged = static.findings(nb, handed_out, frozenset(self.allowed_constructs))
        if flagged and self.refuse_flagged_code:
            static.refuse(nb, handed_out, flagged)
        edited, deleted, moved = tampering(nb, handed_out)
        if moved:
            raise TamperedNotebookError(
                f"{student}'s {notebook}.ipynb has its cells out of order "
                f"(first cell out of place: {moved[0]}), so its tests would not test what they say. "
                "Ask the student to move the cells back (or to copy their answers into a fresh copy "
                "of the notebook) and collect it again."
            )
        for grade_id in deleted:
            put_back_deleted(nb, handed_out, grade_id)
        findings = [f"cell {grade_id} was edited; the original ran instead" for grade_id in edited]
        findings += [f"cell {grade_id} was deleted; the original was put back and ran" for grade_id in deleted]
        if copies:
            findings.append(
                f"{copies} cell(s) appeared twice (pasted copies); the last copy of each was graded, "
                "the earlier ones ran as the student's own code"
            )
        findings += grading_changed
        outcome = "that cell did not run, so its exercise scores 0" if self.refuse_flagged_code else "it ran"
        findings += [f"{finding} ({outcome})" for finding in flagged]
        if findings:
            self.log.warning("Tampering in %s's %s: %s", student, notebook, "; ".join(findings))
            note = nbformat.v4.new_markdown_cell(
                "**Grading note.** The grader changed or refused parts of this submission:\n\n"
                + "\n".join(f"- {finding}" for finding in findings)
            )
            note.metadata[NOTE_TAG] = {
                "edited": edited, "deleted": deleted, "copies": copies, "grading_changed": grading_changed,
                "flagged": [str(finding) for finding in flagged], "refused": self.refuse_flagged_code,
            }
            nb.cells.insert(0, note)
        return nb, resources


def _unmark_earlier_copies(nb: NotebookNode) -> int:
    """Make the earlier copies of a pasted cell ordinary cells; how many there were.

    nbgrader's DeduplicateIds keeps the last cell of a repeated grade_id and empties the nbgrader
    metadata of the others, and then nbgrader's own check takes that empty entry for an old
    metadata format and stops grading the whole class (jupyter/nbgrader#1083). Without the entry,
    the copies run as the student's code, as DeduplicateIds means them to.
    """
    copies = [cell for cell in nb.cells if "nbgrader" in cell.metadata and not cell.metadata["nbgrader"]]
    for cell in copies:
        del cell.metadata["nbgrader"]
    return len(copies)


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


# --- after grading ----------------------------------------------------------------------------------


@dataclass
class AuditFinding:
    student: str
    assignment: str
    notebook: str
    what: str


def audit(course: Path) -> tuple[int, list[AuditFinding]]:
    """What an instructor should look at after ``nbgrader autograde``: the number of submitted
    notebooks, and for each of them that was not graded at all, sits among links (see
    :mod:`~autodiff_ref.grading.submissions`), or whose autograded copy records
    changed cells or grading metadata, code the source scan flagged, checks the grader put back, a
    kernel death or grading without the sandbox, or whose answers copy long functions of the
    reference implementation, a finding saying so; and every score in the gradebook above its
    cell's maximum or with extra credit."""
    findings: list[AuditFinding] = []
    submitted = sorted((course / "submitted").glob("*/*/*.ipynb"))
    for path in submitted:
        student, assignment = path.parts[-3], path.parts[-2]

        def found(what: str) -> None:
            findings.append(AuditFinding(student, assignment, path.stem, what))

        for entry in unsafe_in_submission(path.parent):
            found(f"holds {entry}: autograde stops at it; delete it")
        autograded = course / "autograded" / student / assignment / path.name
        if not autograded.exists():
            found("not graded: the autograde log says why")
            continue
        try:
            notebook = nbformat.read(autograded, as_version=4)
        except Exception as error:  # noqa: BLE001 -- whatever is wrong, say so and go on
            found(f"its autograded copy cannot be read ({error})")
            continue
        if notebook.metadata.get("autodiff_grading", {}).get("sandbox") == "off":
            found("graded without the sandbox (the instructor switched it off)")
        for index, cell in enumerate(notebook.cells):
            note = cell.metadata.get(NOTE_TAG)
            if note:
                for what in _noted(note, nbgrader_metadata(cell).get("grade_id") or f"cell {index}"):
                    found(what)
        for copied in _reference_copies(course, path):
            found(f"copies the reference implementation: {copied}")
    findings += _gradebook_findings(course)
    return len(submitted), findings


def _noted(note: dict[str, Any], name: str) -> list[str]:
    """What one grading note (the metadata the grader left on a cell) tells the instructor."""
    noted = [f"test or read-only cell {grade_id} was edited; the original ran" for grade_id in note.get("edited", [])]
    noted += [
        f"test or read-only cell {grade_id} was deleted; the original was put back and ran"
        for grade_id in note.get("deleted", [])
    ]
    if note.get("copies"):
        noted.append(f"{note['copies']} cell(s) appeared twice; the last copy of each was graded")
    noted += note.get("grading_changed", [])
    outcome = "refused: the cell did not run" if note.get("refused") else "flagged only: the cell ran"
    noted += [f"{flagged} ({outcome})" for flagged in note.get("flagged", [])]
    if note.get("put_back"):
        noted.append(f"before test {name}, the grader put back what the notebook replaced: {', '.join(note['put_back'])}")
    if note.get("interfered"):
        noted.append(f"before test {name}, code in the notebook interfered with the grader's check")
    if note.get("kernel_died"):
        noted.append(f"the kernel died in {name}; nothing after it ran")
    return noted


def _reference_copies(course: Path, submitted: Path) -> list[str]:
    released = course / "course" / submitted.parent.name / submitted.name
    try:
        return static.reference_copies(nbformat.read(submitted, as_version=4), nbformat.read(released, as_version=4))
    except Exception:  # noqa: BLE001 -- an unreadable notebook has its own finding already
        return []


def _gradebook_findings(course: Path) -> list[AuditFinding]:
    """Scores above their cell's maximum, and extra credit, in the course's gradebook."""
    database = course / "gradebook.db"
    if not database.is_file():
        return []
    findings = []
    with Gradebook(f"sqlite:///{database}") as gradebook:
        for assignment in gradebook.assignments:
            for submission in gradebook.assignment_submissions(assignment.name):
                for notebook in submission.notebooks:
                    where = (submission.student.id, assignment.name, notebook.name)
                    for grade in notebook.grades:
                        score = (grade.score or 0) - (grade.extra_credit or 0)  # nbgrader's score includes it
                        if score > grade.max_score:
                            findings.append(AuditFinding(
                                *where, f"{grade.name} scored {score:g}, above its maximum of {grade.max_score:g}"))
                        if grade.extra_credit:
                            findings.append(AuditFinding(*where, f"{grade.name} has {grade.extra_credit:g} points of extra credit"))
    return findings
