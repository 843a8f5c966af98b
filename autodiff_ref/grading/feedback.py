"""Keep hidden tests hidden in the autograded notebooks and the feedback students get.

``nbgrader autograde`` writes each graded notebook with the hidden tests it ran, and ``nbgrader
generate_feedback`` renders it as it is, so every student who gets either would read the hidden
tests in full (nbgrader's issue #917), and a failing test's traceback would repeat its lines.
:class:`HideHiddenTests` (put in place by ``nbgrader_config.py``: last in autograde, once the
scores are in the gradebook, and again in feedback, for notebooks autograded without it) shows
each test cell as students were given it -- its hidden part replaced by one comment line -- and
each error as its type and message only (the message says what to fix), so a course can use the
same tests next year. Whether each test passed, and its points, are unchanged; nbgrader's later
steps read the scores from the gradebook and regrading restores the tests from it, so neither
needs the hidden source in ``autograded/``. ``c.HideHiddenTests.show_hidden_tests = True`` shows
them.
"""

from __future__ import annotations

import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

HIDDEN_TESTS_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END)\s+HIDDEN\s+TESTS\s*$", re.IGNORECASE)
HIDDEN_TESTS_NOTE = "# ... hidden tests, not shown: their results are below"


def without_hidden_tests(source: str) -> str | None:
    """``source`` with each hidden-tests block replaced by one comment line; None if it has none."""
    shown, hidden, found = [], False, False
    for line in source.split("\n"):
        marker = HIDDEN_TESTS_MARKER.match(line)
        if marker and marker.group(1).upper() == "BEGIN":
            hidden = found = True
            indent = line[: len(line) - len(line.lstrip())]
            shown.append(indent + HIDDEN_TESTS_NOTE)
        elif marker:
            hidden = False
        elif not hidden:
            shown.append(line)
    return "\n".join(shown) if found else None


def hide_hidden_tests(cell: NotebookNode) -> None:
    """Strip ``cell``'s hidden tests, and the traceback lines that would repeat them."""
    if cell.cell_type != "code":
        return
    shown = without_hidden_tests(cell.source)
    if shown is None:
        return
    cell.source = shown
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = output.get("evalue") or "a hidden test failed"
            output.traceback = [f"{output.get('ename', 'Error')}: {message}"]


class HideHiddenTests(NbGraderPreprocessor):
    """For ``nbgrader autograde`` and ``generate_feedback``: test cells without their hidden tests' source."""

    show_hidden_tests = Bool(
        False, help="Show the hidden tests' source and full tracebacks in the autograded notebooks and the feedback.",
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        if not self.show_hidden_tests:
            for cell in nb.cells:
                hide_hidden_tests(cell)
        return nb, resources
