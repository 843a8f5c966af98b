"""nbgrader preprocessors that make grading hold against broken and dishonest submissions.

``nbgrader_config.py`` puts both in place; ``autodiff_ref.grading.check`` reads cells with the same
functions (:mod:`autodiff_ref.grading.cells`) and runs notebooks with the same guard
(:mod:`autodiff_ref.grading.execution`), so self-checks and the gradebook agree.

:class:`FlagTampering` (before nbgrader's ``OverwriteCells``) compares each submission with the
notebook that was handed out (``course/``): a test or read-only cell that was edited or deleted is
restored -- so it runs as written, hidden tests included -- and named in a *grading note* at the
top of the autograded notebook and in nbgrader's log; a notebook whose cells were reordered is
refused with an error that says so, and the rest of the class is graded. Graded cells, grade ids
and points count only as handed out, and the learner's cells are scanned before anything runs
(:mod:`autodiff_ref.grading.static`): a cell using what no honest answer needs does not run.

:class:`GuardedExecute` is nbgrader's ``Execute`` with three changes:

- When student code kills the kernel, stock nbgrader drops the whole notebook. Here the cells
  that ran keep their outputs, so their points, and the cell where the kernel died and every code
  cell after it get an error output saying so; nbgrader scores those 0. A cell that goes on after
  the time limit's interrupt has its kernel stopped, with the same outcome.
- Before each test cell it puts back whatever the notebook's own code replaced in the checking
  machinery, and says so in that test's output.
- With ``sandbox = "bubblewrap"`` (``nbgrader_config.py``), the kernel starts inside a sandbox:
  see :mod:`autodiff_ref.grading.sandbox`. Each notebook records which way it ran, in its metadata.

The first two are :class:`~autodiff_ref.grading.execution.GuardedRun`'s, which ``check`` shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Enum, List, Unicode

from autodiff_ref.grading import static
from autodiff_ref.grading.cells import (
    NOTE_TAG,
    keep_only_handed_out_grading,
    nbgrader_metadata,
    put_back_deleted,
    tampering,
)
from autodiff_ref.grading.execution import GuardedRun
from autodiff_ref.grading.sandbox import SandboxedKernelManager
from autodiff_ref.grading.submissions import unsafe_in_submission

# Notebook metadata key under which the grader records how the notebook ran ("sandbox":
# "bubblewrap" or "off"), for `autodiff-course audit`.
GRADING_METADATA = "autodiff_grading"


class GuardedExecute(GuardedRun, Execute):
    """nbgrader's ``Execute``, guarded (:class:`~autodiff_ref.grading.execution.GuardedRun`:
    checks put back before each test, a kernel's death recorded cell by cell) and, if so
    configured, sandboxed."""

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
        self.surviving_death(nb, lambda: super(GuardedExecute, self).preprocess(nb, resources, km))
        return nb, resources if resources is not None else {}


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
    if note.get("kernel_stopped"):
        noted.append(f"{name} would not stop at the time limit, so its kernel was stopped; nothing after it ran")
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
