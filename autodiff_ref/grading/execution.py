"""Running a course notebook as grading runs it: the part that nbgrader's grading
(:class:`~autodiff_ref.grading.preprocessors.GuardedExecute`) and ``autodiff-course check``
(:class:`CheckRun`) share, so that the two score a notebook alike.

:class:`GuardedRun` goes on top of nbclient's ``NotebookClient`` (nbgrader's ``Execute`` is one):

- Before each test cell it puts back whatever the notebook's own code replaced in the checking
  machinery -- NumPy's comparisons, ``autodiff_ref`` and its checks, IPython's hooks -- using
  :mod:`autodiff_ref.grading.integrity` in the kernel, and adds a note to that test's output naming
  what was put back.
- When student code kills the kernel (``os._exit``, a crash in native code, running out of
  memory), the cells that ran keep their outputs, and the cell where the kernel died and every
  code cell after it get an error output saying so, which scores 0. ``raise SystemExit`` needs
  nothing special: IPython records it as that cell's error and the kernel keeps running.
- A cell that runs past the time limit is interrupted (nbclient does that). One that goes on
  even then -- a loop that catches ``KeyboardInterrupt``, or everything with a bare ``except:``
  -- would make every later cell wait out the time limit too, behind it; instead the kernel is
  stopped and the cells from there on are marked as with a kernel that died.

Nothing here imports nbgrader, which ``check`` would pay about a second of CPU for at every run.
"""

from __future__ import annotations

import ast
import secrets
import signal
import time
from queue import Empty
from typing import Any, Callable

from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from autodiff_ref.grading.cells import NOTE_TAG, bound_names, error_outputs, is_fixed_cell, is_test_cell, nbgrader_metadata

KERNEL_DIED = "KernelDied"
# How long a cell interrupted at the time limit has to stop before its kernel is stopped, in
# seconds: time enough for an interrupt to reach Python from inside a long NumPy call.
STOP_AFTER_INTERRUPT = 5.0
# What a cell stopped at the timeout records, as nbgrader's Execute records it in grading.
CELL_TIMEOUT_ERROR = {
    "ename": "CellTimeoutError", "evalue": "",
    "traceback": ["CellTimeoutError: the cell ran past its time limit and was interrupted"],
}


class GuardedRun:
    """What grading adds to nbclient's ``NotebookClient``: see the module's docstring. Put it
    first among the bases, and wrap each run in :meth:`surviving_death`."""

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, execution_count: int | None = None, store_history: bool = True
    ) -> NotebookNode:
        if cell.cell_type != "code":
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self._running_cell = cell_index
        if self._guarded is None:
            # The guard is reached under a name made up for this run, never through a module
            # attribute that a cell could replace (see integrity's docstring).
            self._guard = f"_autodiff_grading_guard_{secrets.token_hex(8)}"
            install = f"__import__('autodiff_ref.grading.integrity', fromlist=['install']).install({self._guard!r})"
            self._guarded = await self._run_hidden(install) is not None
            if not self._guarded:
                self.log.warning("Grading guard unavailable: is autodiff_ref installed in the grading kernel?")
        put_back = None
        if self._guarded and is_test_cell(cell):
            put_back = await self._run_hidden(f"{self._guard}.restore()")
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError:  # interrupted at the time limit, and then the kernel never went idle
            await self._stop_stuck_kernel(cell_index)
        if CELL_TIMEOUT_ERROR["ename"] in {error.get("ename") for error in error_outputs(cell)}:
            await self._stop_unless_interrupted(cell_index)
        if self._guarded and is_test_cell(cell):
            self._note_put_back(cell, _as_list(put_back))
        if self._guarded and is_fixed_cell(cell):
            names = bound_names(cell.source)
            if names:
                await self._run_hidden(f"{self._guard}.record({names!r})")
        return cell

    # nbclient binds its synchronous form to its own coroutine; nbconvert's preprocessors call it.
    execute_cell = run_sync(async_execute_cell)

    def surviving_death(self, nb: NotebookNode, run: Callable[[], Any]) -> bool:
        """Call ``run()``, which runs ``nb`` with this client; False if the kernel died in a cell,
        which then marks that cell and every code cell after it. A kernel that dies before the
        first cell (while it starts) raises, as it would without this."""
        self._running_cell: int | None = None
        self._guarded: bool | None = None  # None until the snapshot before the first code cell
        self._death: tuple[str, str, str] | None = None  # set when the run stops the kernel itself
        try:
            run()
        except DeadKernelError:
            if self._running_cell is None:
                raise
            self._mark_cells_after_death(nb)
            return False
        return True

    async def _stop_unless_interrupted(self, cell_index: int) -> None:
        """After cell ``cell_index`` was interrupted at the time limit: if the kernel does not
        answer a request within STOP_AFTER_INTERRUPT seconds, the cell is still running: stop
        the kernel and end the run there (see :meth:`surviving_death`)."""
        request = self.kc.execute("", silent=True, store_history=False)
        deadline = time.monotonic() + STOP_AFTER_INTERRUPT
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = await self.kc.shell_channel.get_msg(timeout=left)
            except Empty:
                break
            if reply["parent_header"].get("msg_id") == request:
                return
        await self._stop_stuck_kernel(cell_index)

    async def _stop_stuck_kernel(self, cell_index: int) -> None:
        """Stop the kernel, which still runs cell ``cell_index`` though it was interrupted, and end
        the run there."""
        await self.km.signal_kernel(signal.SIGKILL)
        self._death = (
            f"cell {cell_index} ran past the time limit and went on when it was interrupted (does "
            "it catch KeyboardInterrupt, or every exception with a bare `except:`?), so the kernel "
            "was stopped; this cell and every cell after it could not run",
            f"not run: cell {cell_index} would not stop, so the kernel was stopped",
            "kernel_stopped",
        )
        raise DeadKernelError(f"cell {cell_index} would not stop when interrupted")

    async def _run_hidden(self, expression: str) -> str | None:
        """Evaluate ``expression`` in the kernel, outside the notebook: the text of its result, or
        None if it failed.

        It goes in as a "user expression" of an empty, silent request, so neither the notebook's
        history nor any input transformer the notebook installed ever sees it.
        """
        request = self.kc.execute("", silent=True, store_history=False, user_expressions={"result": expression})
        reply = await self.async_wait_for_reply(request)
        result = reply["content"].get("user_expressions", {}).get("result", {})
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
        cause, later, tag = self._death or (
            f"the kernel died while running cell {died_at} (os._exit, a crash in native code, "
            "or running out of memory); this cell and every cell after it could not run",
            f"not run: the kernel ended in cell {died_at}",
            "kernel_died",
        )
        self.log.error("Kernel ended in cell %d: %s", died_at, cause)
        nb.cells[died_at].metadata[NOTE_TAG] = {tag: True}
        for index, cell in enumerate(nb.cells):
            if index < died_at or cell.cell_type != "code":
                continue
            if index > died_at:
                cell.outputs = []
                cell.execution_count = None
            cell.outputs.append(_error_output(KERNEL_DIED, cause if index == died_at else later))


class CheckRun(GuardedRun, NotebookClient):
    """nbclient's client set up as nbgrader's ``Execute`` is for grading -- errors do not stop
    the run, and a cell that runs past ``timeout`` seconds is interrupted and records a
    ``CellTimeoutError`` -- and guarded as grading is. For ``check``, in a kernel already started."""

    def __init__(self, nb: NotebookNode, km: Any, timeout: int) -> None:
        super().__init__(
            nb, km=km, timeout=timeout, allow_errors=True, interrupt_on_timeout=True, raise_on_iopub_timeout=True,
            error_on_timeout=CELL_TIMEOUT_ERROR, on_cell_executed=_record_unshown_error,
        )

    def run(self) -> None:
        """Run the notebook in place."""
        self.surviving_death(self.nb, self.execute)


def _record_unshown_error(cell: NotebookNode, execute_reply: dict[str, Any] | None, **_: Any) -> None:
    """Give a cell whose run ended in an error that no output shows (one stopped at the timeout:
    nbclient's reply comes from ``CELL_TIMEOUT_ERROR``) an output for it, as grading does."""
    content = (execute_reply or {}).get("content", {})
    if content.get("status") == "error" and content.get("ename") not in {e.get("ename") for e in error_outputs(cell)}:
        cell.outputs.append(NotebookNode(
            output_type="error", ename=content["ename"], evalue=content.get("evalue", ""),
            traceback=content.get("traceback") or [content["ename"]],
        ))


def _as_list(text: str | None) -> list[str] | None:
    """The list of names ``restore()`` returned, from its printed form; None if it is not one."""
    try:
        names = ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        return None
    return names if isinstance(names, list) else None


def _error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])
