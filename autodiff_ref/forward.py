r"""Forward-mode differentiation with dual numbers.

A dual number :math:`a + b\varepsilon` with :math:`\varepsilon^2 = 0` carries a value ``a`` and a
tangent ``b``. Since :math:`f(a + b\varepsilon) = f(a) + f'(a)\, b\, \varepsilon` for any smooth
``f``, evaluating a function on ``Dual(x, v)`` yields its value and its directional derivative
along ``v`` in the same single pass. Values and tangents may be floats or NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class Dual:
    """``value + tangent·ε``: a number or array with its derivative along one direction."""

    __slots__ = ("value", "tangent")

    # NumPy defers to our reflected operators, so `W @ dual` and `array * dual` give Duals.
    __array_ufunc__ = None

    def __init__(self, value: Any, tangent: Any = 0.0) -> None:
        for name, part in (("value", value), ("tangent", tangent)):
            if isinstance(part, Dual) or not _is_numeric(part):
                raise TypeError(f"a Dual's {name} is a number or a numeric array, "
                                f"got {type(part).__name__}: {part!r}")
        # Lists become arrays: `+` on two lists would join them, not add them.
        self.value = np.asarray(value) if isinstance(value, (list, tuple)) else value
        self.tangent = np.asarray(tangent) if isinstance(tangent, (list, tuple)) else tangent

    def __add__(self, other: Any) -> Dual:
        other = as_dual(other)
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __sub__(self, other: Any) -> Dual:
        other = as_dual(other)
        return Dual(self.value - other.value, self.tangent - other.tangent)

    def __mul__(self, other: Any) -> Dual:  # product rule
        other = as_dual(other)
        tangent = self.tangent * other.value + self.value * other.tangent
        return Dual(self.value * other.value, tangent)

    def __truediv__(self, other: Any) -> Dual:  # quotient rule
        other = as_dual(other)
        return Dual(
            self.value / other.value,
            (self.tangent * other.value - self.value * other.tangent) / (other.value * other.value),
        )

    def __pow__(self, other: Any) -> Dual:
        if not isinstance(other, Dual):
            value = self.value**other
            if isinstance(value, complex):  # Python's (-8.0) ** (1/3); NumPy and PyTorch give nan
                value = np.power(self.value, other)
            return Dual(value, _power_rule(self.value, other) * self.tangent)
        # d(a^b) = b a^(b-1) da + a^b log(a) db. log a is real only for a > 0, so the second term
        # is taken only where b moves: (-2)^b and 0^b at b = 2 still have a value and a slope
        # along a. At a = 0 it is 0 for b >= 0 (its limit, as in PyTorch), not 0 * -inf.
        # (a * 1.0: NumPy refuses integers to negative integer powers.)
        a, b = self.value, other.value
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.power(a * 1.0, b)
            flat = np.equal(other.tangent, 0) | (np.equal(a, 0) & np.greater_equal(b, 0))
            along_b = np.where(flat, 0.0, value * np.log(a * 1.0) * other.tangent)
        return Dual(value, _power_rule(a, b) * self.tangent + along_b[()])

    def __rpow__(self, base: Any) -> Dual:
        return as_dual(base) ** self

    def __matmul__(self, other: Any) -> Dual:  # bilinear, like a product
        other = as_dual(other)
        tangent = self.tangent @ other.value + self.value @ other.tangent
        return Dual(self.value @ other.value, tangent)

    def __rmatmul__(self, other: Any) -> Dual:
        return as_dual(other) @ self

    def __getitem__(self, index: Any) -> Dual:  # selecting entries is linear: select both parts
        tangent = np.broadcast_to(self.tangent, np.shape(self.value))
        return Dual(self.value[index], tangent[index])

    def __neg__(self) -> Dual:
        return Dual(-self.value, -self.tangent)

    def __radd__(self, other: Any) -> Dual:
        return as_dual(other) + self

    def __rsub__(self, other: Any) -> Dual:
        return as_dual(other) - self

    def __rmul__(self, other: Any) -> Dual:
        return as_dual(other) * self

    def __rtruediv__(self, other: Any) -> Dual:
        return as_dual(other) / self

    def __repr__(self) -> str:
        return f"Dual(value={self.value!r}, tangent={self.tangent!r})"


def as_dual(x: Any) -> Dual:
    """``x`` itself if it is a Dual, else a constant: tangent zero (of the same shape)."""
    if isinstance(x, Dual):
        return x
    if not _is_numeric(x):
        raise TypeError(f"a Dual combines with numbers and arrays, not {type(x).__name__}")
    if not np.ndim(x):
        return Dual(x, 0.0)
    dtype = np.asarray(x).dtype
    # A float32 constant keeps a float32 tangent, so float32 Duals stay float32.
    return Dual(x, np.zeros(np.shape(x), dtype=dtype if dtype.kind == "f" else np.float64))


def _power_rule(a: Any, b: Any) -> Any:
    """d(a^b)/da = b a^(b-1), elementwise, with its limits at a = 0, where a^(b-1) divides by
    zero: 0 for b = 0 (a^0 = 1 is constant) and inf for 0 < b < 1 (a^0.5 is vertical there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = b * np.power(a * 1.0, b - 1)
    return np.where(np.equal(b, 0), 0.0, slope)[()]


def _is_numeric(x: Any) -> bool:
    return not isinstance(x, (str, bytes)) and np.issubdtype(np.asarray(x).dtype, np.number)


def _elementary(f: Callable[[Any], Any], df: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Lift ``f`` with derivative ``df`` to Duals by the chain rule; numbers and arrays pass.

    f(a + b ε) = f(a) + f'(a) b ε, elementwise when ``a`` and ``b`` are arrays.
    """

    def lifted(x: Any) -> Any:
        if isinstance(x, Dual):
            return Dual(f(x.value), df(x.value) * x.tangent)
        return f(x)

    lifted.__name__ = f.__name__
    lifted.__doc__ = f"``{f.__name__}`` of a number, an array or a Dual (chain rule on tangents)."
    return lifted


exp = _elementary(np.exp, np.exp)
log = _elementary(np.log, lambda a: 1 / a)
sin = _elementary(np.sin, np.cos)
cos = _elementary(np.cos, lambda a: -np.sin(a))
tanh = _elementary(np.tanh, lambda a: 1 - np.tanh(a) ** 2)
sqrt = _elementary(np.sqrt, lambda a: 0.5 / np.sqrt(a))


def derivative(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``f'`` for a function of one number: one forward pass with tangent 1."""

    def df(x: Any) -> Any:
        out = f(Dual(x, 1.0))
        return out.tangent if isinstance(out, Dual) else 0.0  # f ignored its input: constant

    return df


def jvp(f: Callable[[Any], Any], x: Any, v: Any) -> tuple[Any, Any]:
    """``(f(x), J v)``: the value and the Jacobian-vector product, in one forward pass.

    A floating ``x`` keeps its dtype (float32 stays float32, and ``v`` takes it); integers
    become float64. ``f`` returns one Dual, array or number.
    """
    x = np.asarray(x)
    x = x if x.dtype.kind == "f" else x.astype(float)
    v = np.asarray(v, dtype=x.dtype)
    if v.shape != x.shape:
        raise ValueError(f"jvp needs a direction v of x's shape {x.shape}, got {v.shape}")
    out = f(Dual(x, v))
    if isinstance(out, (tuple, list, dict)):
        raise TypeError(
            f"jvp needs f to return one Dual (or array), but it returned a {type(out).__name__}; "
            "call jvp once per output, or stack the outputs into one array"
        )
    if not isinstance(out, Dual):
        return out, np.zeros_like(np.asarray(out, dtype=float))
    return out.value, np.broadcast_to(out.tangent, np.shape(out.value)).copy()


def jacobian_forward(f: Callable[[Any], Any], x: Any) -> np.ndarray:
    """The Jacobian of ``f`` at ``x``, one column per forward pass (``x.size`` passes).

    The result has shape ``f(x).shape + x.shape``: for a vector function of a vector, ``(m, n)``
    with ``J[i, j] = d f_i / d x_j``.
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:  # no columns to stack: the shape comes from one evaluation
        value, _ = jvp(f, x, x)
        return np.zeros(np.shape(value) + x.shape)
    columns = []
    for j in range(x.size):
        direction = np.zeros(x.size)
        direction[j] = 1.0
        _, column = jvp(f, x, direction.reshape(x.shape))
        columns.append(np.asarray(column))
    out_shape = columns[0].shape
    return np.stack(columns, axis=-1).reshape(out_shape + x.shape)
