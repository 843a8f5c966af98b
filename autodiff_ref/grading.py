"""Grading that survives a submission which ends its own kernel.

Stock nbgrader runs a notebook with one kernel; when student code kills that kernel
(``os._exit``, a segfault, running out of memory) the run raises ``DeadKernelError`` and the
whole notebook is dropped, even the cells that had already passed.

:class:`KernelDeathTolerantExecute` is nbgrader's ``Execute`` preprocessor with one change: when
the kernel dies, the cells that ran keep their outputs (so their points), and the cell where it
died and every code cell after it get an error output saying so. The instructor reads why in the
autograded notebook and the feedback; nbgrader scores those cells 0 because they hold an error.

``raise SystemExit`` / ``sys.exit()`` need nothing special: IPython catches ``SystemExit`` in the
cell, records it as that cell's error and the kernel keeps running. ``exit()`` / ``quit()`` only
ask the front end to close the kernel, which a headless run ignores.

``nbgrader_config.py`` puts this class in place of ``Execute`` in
``c.Autograde.autograde_preprocessors``; ``autodiff_ref.check`` runs learners' notebooks with it.
"""

from __future__ import annotations

from typing import Any

from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

KERNEL_DIED = "KernelDied"


def _error_output(message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=KERNEL_DIED,
        evalue=message,
        traceback=[f"{KERNEL_DIED}: {message}"],
    )


class KernelDeathTolerantExecute(Execute):
    """nbgrader's ``Execute``, keeping what ran before a kernel death and marking the rest."""

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        # The caller's ``nb`` is run in place, as in the parent class.
        self._running_cell: int | None = None
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError:
            if self._running_cell is None:  # died before the first cell, e.g. while starting
                raise
            self._mark_cells_after_death(nb)
            return nb, resources if resources is not None else {}

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type == "code":
            self._running_cell = index
        return super().preprocess_cell(cell, resources, index)

    def _mark_cells_after_death(self, nb: NotebookNode) -> None:
        died_at = self._running_cell
        cause = (
            f"the kernel died while running cell {died_at} (os._exit, a crash in native code, "
            "or running out of memory); this cell and every cell after it could not run"
        )
        self.log.error("Kernel died in cell %d: %s", died_at, cause)
        for index, cell in enumerate(nb.cells):
            if index < died_at or cell.cell_type != "code":
                continue
            if index > died_at:
                cell.outputs = []
                cell.execution_count = None
            message = cause if index == died_at else f"not run: the kernel ended in cell {died_at}"
            cell.outputs.append(_error_output(message))
