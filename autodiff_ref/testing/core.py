"""The pieces every checking helper shares: the failure type, random inputs, comparisons.

A check that fails raises :class:`CheckFailure` (an ``AssertionError``, so nbgrader and pytest
treat it as a failed test) whose message is written for the learner: what was checked, where the
numbers differ, what was expected and what came out, and, when the numbers match a usual mistake,
a hint naming it.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import os
import re
import sys
import sysconfig
import threading
from types import CodeType, FrameType
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "CheckFailure",
    "CheckInterrupted",
    "random_array",
    "format_index",
    "assert_close",
    "guess_mistake",
    "passed",
    "where_raised",
    "yours_or_reference",
    "own_work",
    "watched",
]

# Every check uses these unless told otherwise: central differences in float64 are good to about
# 1e-9, so these leave room for ill-conditioned ops while still catching any real mistake.
ATOL = 1e-6
RTOL = 1e-5


# For a NameError in learner code: the usual cause in a notebook is the order the cells ran in.
LATER_CELL_HINT = (
    "the code uses a name that is not defined when this test runs; cells run top to bottom, so a "
    "function defined in a later cell is not there yet."
)


class CheckFailure(AssertionError):
    """A check of learner code failed; the message says what to fix."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this error instead of a traceback: the message alone.

        The traceback would run through autodiff_ref.testing, which the learner has nothing to
        fix in; the message names the input, the element and the likely mistake. The cell still
        ends in this error, so nbgrader scores the test as failed.
        """
        return _rendered(type(self).__name__, str(self))


class CheckInterrupted(KeyboardInterrupt):
    """A check was interrupted while learner code ran (the Interrupt button, or the grader's time
    limit for a cell): the usual cause is an endless loop, never the learner's use of the
    profiler. A ``KeyboardInterrupt``, so the cell stops as any interrupted cell does."""

    def __init__(self, what: str, place: str | None) -> None:
        where = f" It was in {place} when it was stopped." if place else ""
        super().__init__(
            f"The check of your {what} was interrupted (the Interrupt button, or the time limit for "
            f"a cell) while your code ran.{where}\n"
            "  Hint: if the cell did not finish on its own, look for an endless loop: a while loop "
            "whose condition never becomes false, or a stack or queue that never empties."
        )

    def _render_traceback_(self) -> list[str]:
        return _rendered(type(self).__name__, str(self))


def _rendered(name: str, message: str) -> list[str]:
    """Lines as IPython shows an error: the name in red, then the message."""
    first, *rest = message.split("\n")
    return [f"\x1b[0;31m{name}\x1b[0m: {first}", *rest]


def deep_chain_length() -> int:
    """How many ops the checks' deep chains have, which a walk that recurses must fail on.

    A recursive walk spends at least one Python frame per node, and Python stops at
    ``sys.getrecursionlimit()`` frames: 1,000 unless raised. Three times the limit, at least
    3,000, fails any recursive walk with room to spare; read when the check runs, so that a
    notebook that raised the limit gets a longer chain. At most 10,000, which keeps a check's
    time bounded (a walk under a limit above that is not caught).
    """
    return min(10_000, max(3_000, 3 * sys.getrecursionlimit()))


def random_array(
    shape: tuple[int, ...], rng: np.random.Generator, domain: str = "real"
) -> np.ndarray:
    """Random float64 test input of ``shape`` that stays clear of kinks and singularities.

    ``domain="real"`` draws magnitudes in [0.3, 2] with a random sign, so nothing lands near
    the kink of ``relu``/``abs`` at 0 or the pole of ``1/x``; ``"positive"`` draws from
    [0.5, 2] (for ``log``, ``sqrt`` and the base of a power); ``"unit"`` draws from (-0.9, 0.9)
    (for ``tanh``-like ops whose interesting region is near 0).
    """
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, size=shape)
    if domain == "real":
        return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    raise ValueError(f"unknown domain {domain!r}: use 'real', 'positive' or 'unit'")


def format_index(index: tuple[int, ...]) -> str:
    """``(2, 1)`` -> ``[2, 1]``; ``()`` -> ``(the only element)``."""
    return "[" + ", ".join(str(i) for i in index) + "]" if index else "(the only element)"


def _worst_element(got: np.ndarray, expected: np.ndarray, atol: float, rtol: float):
    excess = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    excess = np.where(np.isnan(excess), np.inf, excess)
    index = np.unravel_index(int(np.argmax(excess)), got.shape) if got.ndim else ()
    return tuple(int(i) for i in index), int(np.sum(excess > 0))


def guess_mistake(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> str | None:
    """Name the usual mistake that turns ``expected`` into ``got``, if one fits."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return None
    if not np.all(np.isfinite(got)):
        return "some values are nan or inf: look for a log or a division of a value that can be 0."
    if np.allclose(got, -expected, rtol=rtol, atol=1e-9) and np.any(np.abs(expected) > 1e-9):
        return "every value has the wrong sign: look for a missing or extra minus."
    if np.allclose(got, 0) and not np.allclose(expected, 0):
        return "the result is all zeros: was a value never filled in, or a gradient never passed on?"
    nonzero = np.flatnonzero(np.abs(expected) > 1e-9)
    if nonzero.size >= 2:  # one number is always some multiple of another: no evidence
        ratio = got.flat[nonzero[0]] / expected.flat[nonzero[0]]
        if ratio != 0 and not np.isclose(ratio, 1.0) and np.allclose(got, ratio * expected, rtol=1e-6, atol=1e-9):
            return f"every value is {ratio:.4g} times the expected one: a constant factor is off."
    if got.ndim == 2 and got.shape[0] == got.shape[1] and np.allclose(got, expected.T, rtol=rtol):
        return "the values are the transpose of the expected ones."
    return None


def assert_close(
    got: Any,
    expected: Any,
    what: str,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    hint: str | None = None,
) -> None:
    """Raise :class:`CheckFailure` unless ``got`` matches ``expected`` in shape and value.

    ``what`` names the quantity for the learner, e.g. ``"the gradient of input 1 (b)"``. The
    message gives the worst element's index with its expected and actual value; ``hint`` (or,
    failing that, :func:`guess_mistake`) adds the likely cause.
    """
    try:
        got_array = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(
            f"{what} should be a number or an array of numbers, but it is {type(got).__name__}: {got!r}"
        ) from None
    expected_array = np.asarray(expected, dtype=np.float64)
    if got_array.shape != expected_array.shape:
        raise CheckFailure(
            f"{what} has shape {got_array.shape}, expected shape {expected_array.shape}."
            + (f"\n  Hint: {hint}" if hint else "")
        )
    if np.allclose(got_array, expected_array, atol=atol, rtol=rtol, equal_nan=False):
        return
    index, count = _worst_element(got_array, expected_array, atol, rtol)
    lines = [f"{what} is wrong."]
    if got_array.ndim:
        lines.append(
            f"  {count} of {got_array.size} elements differ; the worst is element {format_index(index)}:"
        )
    lines.append(f"  expected {expected_array[index]:.6g}, got {got_array[index]:.6g}")
    reason = hint or guess_mistake(got_array, expected_array, rtol)
    if reason:
        lines.append(f"  Hint: {reason}")
    raise CheckFailure("\n".join(lines))


HIDDEN_TESTS_BEGIN = re.compile(r"^\s*#+\s*BEGIN\s+HIDDEN\s+TESTS\s*$", re.IGNORECASE | re.MULTILINE)
HIDDEN_TESTS_NOTE = (
    "  (this exercise has hidden checks too: they run when it is graded; "
    "`autodiff-course check NOTEBOOK` runs them now)"
)


def passed(message: str, *, hidden: bool = False) -> None:
    """Tell the learner a check passed (test cells print this on success).

    ``hidden=True`` in a test cell that has hidden tests: where they were cut out (the learner's
    copy of the notebook) the ✓ line adds that hidden checks run at grading and how to run them
    now, once per run of the cell however many checks in it pass; where they ran
    (``nbgrader autograde``, ``autodiff-course check``) it does not.

    Inside :func:`own_work`, a check whose learner code called the reference implementation fails
    here instead, so the learner never sees a ✓ line for work that is not theirs.
    """
    global _HIDDEN_NOTE_SHOWN_IN
    if _ACTIVE and _ACTIVE[-1].finding is not None:
        raise _ACTIVE[-1].failure()
    print(f"✓ {message}")
    if not hidden:
        return
    cell = _calling_cell(sys._getframe(1))
    if cell is None:
        print(HIDDEN_TESTS_NOTE)
    elif cell is not _HIDDEN_NOTE_SHOWN_IN and not _has_hidden_tests(cell):
        print(HIDDEN_TESTS_NOTE)
        _HIDDEN_NOTE_SHOWN_IN = cell


# The run of a cell (its outermost frame) whose output already has HIDDEN_TESTS_NOTE. Held, not
# just its id, so that no later run can be given the same frame object while this one is kept.
_HIDDEN_NOTE_SHOWN_IN: FrameType | None = None


def _calling_cell(frame: FrameType | None) -> FrameType | None:
    """The frame of the cell run (the outermost frame of the nearest learner code) that called;
    None when no learner code called."""
    while frame is not None and not _is_learner_code(frame.f_code):
        frame = frame.f_back
    # A check called from a function the cell defines: still the cell's run.
    while frame is not None and frame.f_back is not None and (
        frame.f_back.f_code.co_filename == frame.f_code.co_filename
    ):
        frame = frame.f_back
    return frame


def _has_hidden_tests(cell: FrameType) -> bool:
    """Whether the cell running in ``cell`` has a hidden-tests block.

    IPython keeps each cell's source in ``linecache`` under the cell's file name; the graders
    run test cells with their ``### BEGIN HIDDEN TESTS`` marker, the learner's copy has none.
    """
    return bool(HIDDEN_TESTS_BEGIN.search("".join(linecache.getlines(cell.f_code.co_filename))))


def as_shapes(shapes: Iterable[Any]) -> list[tuple[int, ...]]:
    """Normalise ``[(2, 3), 4, ()]`` to a list of shape tuples."""
    return [tuple(s) if isinstance(s, (tuple, list)) else (int(s),) for s in shapes]


def where_raised(error: BaseException) -> str:
    """The name of the function whose code raised ``error``, e.g. ``Mul.backward``."""
    frame = error.__traceback__
    if frame is None:
        return "your code"
    while frame.tb_next is not None:
        frame = frame.tb_next
    code = frame.tb_frame.f_code
    return code.co_qualname.rsplit("<locals>.", 1)[-1]  # a function defined inside another: its own name


def yours_or_reference(
    what: str, yours: Any, check: Callable[[], None], reference: Any, reference_name: str
) -> Any:
    """``yours`` if ``check()`` passes, else ``reference``; prints which one the next cells use.

    Cells that *use* an exercise's result call this, so a learner who is stuck can read on.
    """
    try:
        check()
    except CheckFailure as failure:
        first_line = str(failure).splitlines()[0].rstrip(":.")
        print(
            f"Your {what} does not pass its check yet ({first_line}).\n"
            f"The cells below use {reference_name} instead, so you can read on; once its test "
            "passes, run this cell again to use your own."
        )
        return reference
    passed(f"your {what} passes its check: the cells below use it.")
    return yours


# --- the learner's own work, not the reference's ---------------------------------------------------
#
# Every exercise has a reference implementation in autodiff_ref, importable from a notebook. A
# check that receives learner code wraps its work in own_work(...), which fails the check when
# that code *is* the reference (imported, assigned, subclassed without overriding), or when it
# calls the reference while the check runs it. The second is seen by a profile function, on only
# while learner code runs (watched(...)), that looks up each Python call's code object in a
# dict: only calls of the exercise's reference code go further, to a walk up the stack that asks
# whether learner code made the call. The checks call the reference themselves (to compare) and
# run the reference engine over graphs holding learner ops; those calls have no learner frame
# between them and the check, so they are not counted.

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Code in autodiff_ref, the standard library and installed packages is not the learner's.
_LIBRARY_DIRS = tuple(
    {_PACKAGE_DIR}
    | {os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_LEARNERS_FILE: dict[str, bool] = {}  # co_filename -> whether it is learner code (a cache)


def _is_learner_code(code: CodeType) -> bool:
    """Whether ``code`` was written outside autodiff_ref and the installed libraries: a notebook
    cell (``/tmp/ipykernel_.../123.py``), a script, a test file."""
    filename = code.co_filename
    known = _LEARNERS_FILE.get(filename)
    if known is None:
        known = not (filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen"))
        _LEARNERS_FILE[filename] = known
    return known


def _function_of(obj: Any) -> Any:
    """The plain function behind ``obj``: through bound methods, static and class methods,
    ``functools.partial`` and ``functools.wraps`` wrappers."""
    for _ in range(32):  # a cycle of __wrapped__ must not hang the check
        if isinstance(obj, functools.partial):
            obj = obj.func
        elif isinstance(obj, (staticmethod, classmethod)) or inspect.ismethod(obj):
            obj = obj.__func__
        elif not isinstance(obj, type) and inspect.isfunction(getattr(obj, "__wrapped__", None)):
            obj = obj.__wrapped__
        else:
            break
    return obj


def _code_of(obj: Any) -> CodeType | None:
    code = getattr(_function_of(obj), "__code__", None)
    return code if isinstance(code, CodeType) else None


def _codes_within(code: CodeType) -> Iterable[CodeType]:
    """``code`` and the code of every function, lambda and comprehension defined inside it."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes_within(constant)


def _full_name(function: Any) -> str:
    """``autodiff_ref.ops.Mul.backward``; a closure made by a factory goes by its own name."""
    qualname = function.__qualname__
    if "<locals>" in qualname:
        qualname = function.__name__  # forward.exp is a closure named "exp"
    return f"{function.__module__}.{qualname}"


def _learner_place(frame: FrameType) -> str:
    code = frame.f_code
    name = code.co_qualname.rsplit("<locals>.", 1)[-1]
    return f"{name} (line {frame.f_lineno})"


class _OwnWork:
    """What :func:`own_work` returns: a context manager around one check's run."""

    def __init__(self, what: str, yours: Any, reference: Any, methods: Sequence[str], also: Iterable[Any]) -> None:
        self.what = what
        self.yours = yours
        self.reference = reference
        self.methods = tuple(methods)
        # code object -> the reference function's name, for every function the learner may not use
        self.forbidden: dict[CodeType, str] = {}
        if isinstance(reference, type):
            targets = [(getattr(reference, m), f"{_full_name(reference)}.{m}") for m in self.methods]
        else:
            targets = [] if reference is None else [(reference, None)]
        targets += [(function, None) for function in also]
        for function, name in targets:
            plain = _function_of(function)
            for code in _codes_within(plain.__code__):
                self.forbidden.setdefault(code, name or _full_name(plain))
        self.finding: str | None = None  # why the work is not the learner's own (a message)
        self.entry: FrameType | None = None

    # -- the static test: is the learner's object the reference? --------------------------------
    def check_object(self) -> None:
        yours, reference, what = self.yours, self.reference, self.what
        if reference is not None and (yours is reference or _function_of(yours) is reference):
            raise CheckFailure(
                f"Your {what} is {_full_name(reference)}, the reference implementation, imported "
                f"instead of written: this exercise asks you to write {what} yourself. Delete the "
                f"import (or the assignment) and write {what} in its cell."
            )
        if isinstance(yours, type):
            for method in self.methods:
                name = self.forbidden.get(_code_of(getattr(yours, method, None)))
                if name is None:
                    continue
                if isinstance(reference, type) and issubclass(yours, reference):
                    base = reference.__bases__[0]
                    instead = (f"Subclass {base.__name__} instead and write {method} in your class."
                               if base is not object else f"Write a class of your own, with your own {method}.")
                    raise CheckFailure(
                        f"Your {what} subclasses {_full_name(reference)} and inherits its {method}, "
                        f"the reference implementation: this exercise asks you to write {method} "
                        f"yourself. {instead}"
                    )
                raise CheckFailure(
                    f"Your {what}.{method} is {name}, the reference implementation, taken over instead "
                    f"of written: this exercise asks you to write {method} yourself, in your class."
                )
        else:
            name = self.forbidden.get(_code_of(yours))
            if name is not None:
                raise CheckFailure(
                    f"Your {what} is {name}, the reference implementation, imported instead of written: "
                    f"this exercise asks you to write {what} yourself. Delete the import (or the "
                    f"assignment) and write {what} in its cell."
                )

    # -- the run-time test: does the learner's code call the reference? ---------------------------
    def notice(self, frame: FrameType) -> None:
        """``frame`` runs a forbidden function: record it if learner code called it during this check."""
        name = self.forbidden.get(frame.f_code)
        if name is None or self.finding is not None:
            return
        if threading.get_ident() != self.thread:  # the checks run in one thread: this one is the learner's
            self.finding = (
                f"Your {self.what} calls {name}, the reference implementation, from another thread: this "
                "exercise asks you to write it yourself, so code that hands the work to the reference "
                "scores nothing. Replace that call with your own code."
            )
            return
        caller = frame.f_back
        while caller is not None and caller is not self.entry:
            if _is_learner_code(caller.f_code):
                self.finding = (
                    f"Your {self.what} calls {name}, the reference implementation, from "
                    f"{_learner_place(caller)}: this exercise asks you to write it yourself, so code "
                    "that hands the work to the reference scores nothing. Replace that call with your "
                    "own code."
                )
                return
            caller = caller.f_back
        # Reached the check itself without passing learner code: the check or the reference
        # engine called it, which is allowed.

    def failure(self) -> CheckFailure:
        return CheckFailure(self.finding)

    def __enter__(self) -> _OwnWork:
        self.check_object()
        self.entry = sys._getframe(1)  # the check's frame: the stack walks of notice() stop there
        self.thread = threading.get_ident()
        _ACTIVE.append(self)
        _WATCHED.update(self.forbidden)
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        _ACTIVE.remove(self)
        _WATCHED.clear()
        for guard in _ACTIVE:
            _WATCHED.update(guard.forbidden)
        if isinstance(error, KeyboardInterrupt):
            # Stopped from outside: whatever the watch saw meanwhile, the cell fails as
            # interrupted, and its message points at the loop, not at the learner's honesty.
            if isinstance(error, CheckInterrupted):
                return False
            raise CheckInterrupted(self.what, _innermost_learner_place(error)) from None
        if self.finding is not None:
            if isinstance(error, CheckFailure) and str(error) == str(self.failure()):
                return False  # passed() raised it already
            raise self.failure() from error
        return False


def _innermost_learner_place(error: BaseException) -> str | None:
    """Where in learner code ``error`` was raised (the deepest learner frame), if anywhere."""
    place, step = None, error.__traceback__
    while step is not None:
        if _is_learner_code(step.tb_frame.f_code):
            code = step.tb_frame.f_code
            place = f"{code.co_qualname.rsplit('<locals>.', 1)[-1]} (line {step.tb_lineno})"
        step = step.tb_next
    return place


_ACTIVE: list[_OwnWork] = []  # the checks running now, innermost last
_WATCHED: dict[CodeType, str] = {}  # the forbidden code of all of them


def _watch(frame: FrameType, event: str, arg: Any) -> None:
    """The profile function: a dict lookup per call; a forbidden call goes on to the stack walk."""
    if event == "call" and frame.f_code in _WATCHED:
        for guard in _ACTIVE:
            guard.notice(frame)


def watched(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``: learner code, run with the watch of :func:`own_work` on.

    The checks run learner code through this, so the profile function costs time only while
    learner code runs, not while a check computes its own expected values. Learner code that
    changes the profiler meanwhile (to hide a call) fails the check.
    """
    if not _ACTIVE or sys.getprofile() is _watch:  # no check is watching, or the watch is on already
        return function(*args, **kwargs)
    previous, previous_for_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(_watch)
    threading.setprofile(_watch)  # threads the learner's code starts are watched too
    unset_by_python = False
    try:
        return function(*args, **kwargs)
    except (RecursionError, MemoryError, KeyboardInterrupt):
        # Python unsets a profiler when an exception is raised inside it: the recursion limit,
        # memory running out, or an interrupt (a time limit, the Interrupt button) arriving
        # while the profile function runs. None of these is the learner touching the profiler.
        unset_by_python = True
        raise
    finally:
        if sys.getprofile() is not _watch and not unset_by_python and _ACTIVE[-1].finding is None:
            _ACTIVE[-1].finding = (
                f"Your {_ACTIVE[-1].what} changed the Python profiler (sys.setprofile) while its check "
                "ran, which the check uses to see that the work is your own: leave sys.setprofile alone."
            )
        sys.setprofile(previous)
        threading.setprofile(previous_for_threads)


def own_work(
    what: str, yours: Any, reference: Any, *, methods: Sequence[str] = (), also: Iterable[Any] = ()
) -> _OwnWork:
    """Fail the check unless ``yours`` is the learner's own work rather than ``reference``.

    Use as ``with own_work("Mul", op_class, ops.Mul, methods=("backward",)): ...`` around the body
    of a check. ``reference`` implements the exercise: a function, or a class whose ``methods``
    are the exercise (a subclass may inherit everything else), or None when autodiff_ref has
    none. ``also``: more functions that do the exercise's work (say ``Tensor.backward`` for a
    backward pass). Entering raises
    :class:`CheckFailure` when ``yours`` is the reference, a wrapper of it, a subclass that
    inherits one of ``methods``, or a class whose method is the reference's. While the body runs
    learner code through :func:`watched`, a call of any of these functions (or of a function
    defined inside them) made by learner code (a frame outside autodiff_ref and the installed
    libraries, between the call and the check) fails the check, at its ✓ line or when the body
    ends, with a message naming the function and the learner's line. The check's own calls of the
    reference are not counted.
    """
    return _OwnWork(what, yours, reference, methods, also)
