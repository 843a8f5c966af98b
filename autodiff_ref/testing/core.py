"""The pieces every checking helper shares: the failure type, random inputs, comparisons.

A check that fails raises :class:`CheckFailure` (an ``AssertionError``, so nbgrader and pytest
treat it as a failed test) whose message is written for the learner: what was checked, where the
numbers differ, what was expected and what came out, and, when the numbers match a usual mistake,
a hint naming it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

__all__ = [
    "CheckFailure",
    "random_array",
    "format_index",
    "assert_close",
    "guess_mistake",
    "passed",
    "where_raised",
    "yours_or_reference",
]

# Every check uses these unless told otherwise: central differences in float64 are good to about
# 1e-9, so these leave room for ill-conditioned ops while still catching any real mistake.
ATOL = 1e-6
RTOL = 1e-5


class CheckFailure(AssertionError):
    """A check of learner code failed; the message says what to fix."""


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
    nonzero = np.abs(expected) > 1e-9
    if np.any(nonzero):
        ratio = got[nonzero] / expected[nonzero]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and not np.isclose(ratio[0], 1.0):
            return f"every value is {ratio[0]:.4g} times the expected one: a constant factor is off."
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


def passed(message: str) -> None:
    """Tell the learner a check passed (test cells print this on success)."""
    print(f"✓ {message}")


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
    qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    return qualname.rsplit("<locals>.", 1)[-1]  # a function defined inside another: its own name


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
