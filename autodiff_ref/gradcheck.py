"""Numeric gradients, the ground truth every backward is checked against.

The central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` has truncation error of order
``eps**2`` and round-off error of order ``1e-16 / eps``; in float64 with ``eps = 1e-6`` both
are around ``1e-10``, far below any real mistake in a backward.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .tensor import Tensor, _from_op, no_grad

__all__ = ["numeric_grad", "gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytic gradient from ``backward`` disagrees with the numeric one."""


def numeric_grad(f: Callable[..., Any], *arrays: Any, eps: float = 1e-6) -> tuple[np.ndarray, ...]:
    """d f / d array for each array, by central differences in float64.

    ``f(*arrays)`` must return a single number (a float, a one-element array or Tensor). The
    result has one gradient per input, each with that input's shape. ``f`` is called
    ``2 * size`` times per input, so keep the inputs small.
    """
    points = [np.array(a.data if isinstance(a, Tensor) else a, dtype=np.float64) for a in arrays]

    def value() -> float:
        out = f(*points)
        data = out.data if isinstance(out, Tensor) else out
        try:
            return float(data.item() if isinstance(data, np.ndarray) else data)
        except (TypeError, ValueError):
            # A string or None has a shape too, (), which would not say what went wrong.
            shaped = isinstance(out, (Tensor, np.ndarray, list, tuple))
            got = f"shape {np.shape(out)}" if shaped else f"a {type(out).__name__}"
            raise ValueError(f"numeric_grad needs f to return a single number, got {got}") from None

    return _central_differences(value, points, eps)


def _central_differences(value: Callable[[], float], points: list[np.ndarray], eps: float) -> tuple[np.ndarray, ...]:
    """d value() / d point for each array in ``points``, which ``value`` reads.

    Each element is nudged in place, by ``+eps`` then ``-eps``, and put back exactly; ``value``
    takes no arguments, so a caller can wrap the points once rather than once per call.
    """
    grads = []
    for x in points:
        grad = np.zeros_like(x)
        flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)  # views, so nudging flat_x nudges x
        for i in range(flat_x.size):
            original = flat_x[i]
            flat_x[i] = original + eps
            up = value()
            flat_x[i] = original - eps
            down = value()
            flat_x[i] = original
            flat_grad[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return tuple(grads)


def gradcheck(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Check ``backward`` through ``f`` against numeric gradients, for every input.

    ``f`` maps Tensors to a Tensor of any shape. A non-scalar output is reduced to
    ``sum(w * f(...))`` with fixed random weights ``w``, which checks the whole vector-Jacobian
    product, not just its sum. Inputs are copied to float64. Returns True, or raises
    :class:`GradcheckError` naming the input, its worst element, and both values.
    """
    tensors = [Tensor(np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64), requires_grad=True) for x in inputs]
    out = f(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck needs f to return a Tensor, got {type(out).__name__}")
    weights = np.random.default_rng(seed).standard_normal(out.shape) if out.size != 1 else np.ones(out.shape)
    if out.requires_grad:
        (out * weights).sum().backward()

    # Copies of the inputs to nudge, each wrapped once in a constant Tensor that shares its data.
    points = [t.data.copy() for t in tensors]
    constants = [_from_op(point, None, ()) for point in points]

    def projected() -> float:
        return float(np.sum(f(*constants).data * weights))

    with no_grad():
        numeric = _central_differences(projected, points, eps)
    for position, (tensor, expected) in enumerate(zip(tensors, numeric)):
        analytic = tensor.grad if tensor.grad is not None else np.zeros_like(expected)
        excess = np.abs(analytic - expected) - (atol + rtol * np.abs(expected))
        off = ~(excess <= 0)  # a NaN on either side is off too, though NaN > 0 is False
        if not off.any():
            continue
        worst = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), expected.shape)
        where = f"element {list(map(int, worst))}" if expected.ndim else "its only element"
        raise GradcheckError(
            f"gradcheck failed for input {position} (shape {expected.shape}): at {where} the "
            f"analytic gradient is {analytic[worst]:.8g} but the numeric one is {expected[worst]:.8g} "
            f"({int(off.sum())} of {expected.size} elements are off)"
        )
    return True
