"""Every differentiable op: its forward on NumPy arrays next to its backward on Tensors.

Read each class as one row of a table. ``forward`` computes the value; ``backward`` receives
``g``, the gradient flowing into the output ``node``, and returns the vector-Jacobian product for
each input, ``g · d(node)/d(input)``, built from Tensor operations so that gradients can be
differentiated again.

Elementwise ops broadcast as NumPy does. An input that was broadcast was, in effect, copied along
the stretched axes, so its gradient is the sum over those axes: :func:`unbroadcast`.

The fused ops :class:`Affine` and ``nn.CrossEntropy`` exist for speed, and their backward has
a second path: in a plain backward pass, which records nothing, it works on the arrays directly.

A backward may return ``None`` for an input that does not require grad (data, a constant, a
mask). Mul, Div, Pow, MatMul and Affine do: there a gradient nobody asked for costs as much as
the forward.

Below the classes, a lowercase function per op (``mul(a, b)``, ``sum(a, axis)``) applies it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .tensor import Function, Tensor, _from_op, is_grad_enabled

Axis = int | tuple[int, ...] | None


def constant(array: Any) -> Tensor:
    """A tensor outside the graph: masks and signs that scale a gradient but are not learned."""
    return _from_op(np.asarray(array), None, ())


def unbroadcast(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving it ``shape``.

    Broadcasting ``(3,)`` to ``(2, 3)`` uses each element twice, so each element's gradient is the
    sum of the two rows' gradients: ``unbroadcast(g, (3,)) == g.sum(axis=0)``.
    """
    return grad if grad.data.shape == shape else SumTo(shape)(grad)


def _broadcast_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of ``shape`` that broadcasting ``target`` to ``shape`` added or stretched."""
    added = len(shape) - len(target)
    if added >= 0:
        axes = list(range(added))
        for i, n in enumerate(target):
            if n != shape[added + i]:
                if n != 1:
                    break  # a size that broadcasting could not have turned into shape's
                axes.append(added + i)
        else:
            return tuple(axes)
    raise ValueError(f"shape {shape} is not a broadcast of shape {target}")


def _as_axis(axis: Any) -> Axis:
    """An axis argument as NumPy takes it: a list of axes becomes a tuple (NumPy refuses lists)."""
    if axis is None or isinstance(axis, (int, np.integer)):
        return axis
    if isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) for a in axis):
        return tuple(axis)
    raise TypeError(f"axis must be None, an int or a tuple (or list) of ints, got {axis!r}")


def _kept_shape(shape: tuple[int, ...], axis: Axis) -> tuple[int, ...]:
    """The shape a reduction over ``axis`` has with ``keepdims=True``."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


# -- elementwise, two inputs -------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g, node):
        a, b = node.inputs
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g, node):
        a, b = node.inputs
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, g, node):
        a, b = node.inputs
        return (unbroadcast(g * b, a.shape) if a.requires_grad else None,
                unbroadcast(g * a, b.shape) if b.requires_grad else None)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, g, node):
        a, b = node.inputs
        return (unbroadcast(g / b, a.shape) if a.requires_grad else None,
                unbroadcast(-g * a / (b * b), b.shape) if b.requires_grad else None)


class Pow(Function):
    def forward(self, a, b):
        return a**b

    def backward(self, g, node):
        a, b = node.inputs
        # At a = 0 both rules take their limits, as PyTorch does: d(a^b)/da = b a^(b-1) is 0 for
        # b = 0 (a^0 = 1), not 0 * inf; d(a^b)/db = a^b log a is 0 for b >= 0, not 0 * -inf.
        # Shifting the exponent or log's argument by 1 at exactly those points gives those zeros
        # with Tensor ops, so the rule can still be differentiated.
        at_zero = a.data == 0
        grad_a = grad_b = None
        if a.requires_grad:
            exponent = b - 1
            if at_zero.any():
                exponent = exponent + constant((at_zero & (b.data == 0)).astype(a.dtype))
            grad_a = unbroadcast(g * b * a**exponent, a.shape)
        # d(a^b)/db = a^b log a is real only for a >= 0; skip it when b is a constant like 2.
        if b.requires_grad:
            base = a + constant((at_zero & (b.data >= 0)).astype(a.dtype)) if at_zero.any() else a
            grad_b = unbroadcast(g * node * log(base), b.shape)
        return grad_a, grad_b


# -- elementwise, one input --------------------------------------------------------------------
class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g, node):
        return (-g,)


class Exp(Function):
    def forward(self, a):
        return np.exp(a)

    def backward(self, g, node):
        return (g * node,)


class Log(Function):
    def forward(self, a):
        return np.log(a)

    def backward(self, g, node):
        (a,) = node.inputs
        return (g / a,)


class Sqrt(Function):
    def forward(self, a):
        return np.sqrt(a)

    def backward(self, g, node):
        return (g / (2 * node),)


class Abs(Function):
    def forward(self, a):
        return np.abs(a)

    def backward(self, g, node):
        (a,) = node.inputs
        return (g * constant(np.sign(a.data)),)


class ReLU(Function):
    def forward(self, a):
        return np.maximum(a, 0)

    def backward(self, g, node):
        (a,) = node.inputs
        return (g * constant(a.data > 0),)  # a boolean mask: g times True is g, no cast needed


class Sigmoid(Function):
    def forward(self, a):
        # 1 / (1 + e^-a) for a >= 0 and e^a / (1 + e^a) below: the exponential never overflows,
        # and tiny values for very negative a keep their digits (0.5 (1 + tanh(a/2)) rounds them
        # to 0 or to a multiple of 2^-53, so log(sigmoid(-40)) was -inf).
        with np.errstate(under="ignore"):  # e^-1000 is 0, rightly
            e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1, e) / (1 + e)

    def backward(self, g, node):
        return (g * node * (1 - node),)


class Tanh(Function):
    def forward(self, a):
        return np.tanh(a)

    def backward(self, g, node):
        return (g * (1 - node * node),)


class Cast(Function):
    def __init__(self, dtype: Any):
        self.dtype = np.dtype(dtype)

    def forward(self, a):
        return a.astype(self.dtype)

    def backward(self, g, node):
        (a,) = node.inputs
        return (cast(g, a.dtype),)


# -- matrix product ------------------------------------------------------------------------------
class MatMul(Function):
    """``a @ b`` with NumPy's rules: 1-D operands are vectors, leading axes are batch axes."""

    def forward(self, a, b):
        return a @ b

    def backward(self, g, node):
        a, b = node.inputs
        if a.ndim == 2 and b.ndim == 2:  # dL/dA = G Bᵀ, dL/dB = Aᵀ G
            # A product is as costly as the forward: skip it for an input that is data, like X.
            return (g @ b.T if a.requires_grad else None), (a.T @ g if b.requires_grad else None)
        # Treat a vector as a one-row (a) or one-column (b) matrix, then undo that at the end.
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        g2 = g.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        grad_a = unbroadcast(g2 @ swap_last_axes(b2), a2.shape).reshape(a.shape) if a.requires_grad else None
        grad_b = unbroadcast(swap_last_axes(a2) @ g2, b2.shape).reshape(b.shape) if b.requires_grad else None
        return grad_a, grad_b


class Affine(Function):
    """``x @ w + b``, a dense layer as one op: ``x (..., n_in)``, ``w (n_in, n_out)``, ``b (n_out,)``.

    The same numbers as a MatMul followed by an Add, with one node fewer and no ``x @ w`` kept
    in between. Leading axes of ``x`` are batch axes: ``w`` and ``b`` are shared by every row.

    A layer is the op every network calls most, so its backward has a fast path, as
    :class:`~autodiff_ref.nn.CrossEntropy` does: a plain backward pass, which records nothing,
    computes the same three products on the arrays. On a small layer the five Tensor ops of the
    general rule would cost as much as the products themselves. When the gradient is itself
    being differentiated (``grad`` of ``grad``), the rule runs as Tensor ops.
    """

    def forward(self, x, w, b):
        return x @ w + b

    def backward(self, g, node):
        x, w, b = node.inputs
        if is_grad_enabled():
            return ((g @ w.T) if x.requires_grad else None,
                    (_as_rows(x).T @ _as_rows(g)) if w.requires_grad else None,
                    unbroadcast(g, b.shape) if b.requires_grad else None)
        g = g.data
        return (constant(g @ w.data.T) if x.requires_grad else None,
                constant(_as_rows(x.data).T @ _as_rows(g)) if w.requires_grad else None,
                constant(SumTo(b.shape).forward(g)) if b.requires_grad else None)


def _as_rows(t: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``t`` as a matrix, its leading (batch) axes flattened into rows: ``(..., n) -> (rows, n)``.
    Tensors and arrays alike, for both paths of Affine's backward."""
    return t if t.ndim == 2 else t.reshape(-1, t.shape[-1])


def swap_last_axes(t: Tensor) -> Tensor:
    """Transpose every matrix in a stack: ``(..., m, n) -> (..., n, m)``."""
    axes = list(range(t.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return t.transpose(axes)


# -- shapes ---------------------------------------------------------------------------------------
class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def backward(self, g, node):
        return (g.reshape(node.inputs[0].shape),)


class Transpose(Function):
    """Permute axes; ``axes=None`` reverses them, as ``ndarray.T`` does."""

    def __init__(self, axes: Sequence[int] | None = None):
        self.axes = None if axes is None else tuple(axes)

    def forward(self, a):
        return a.transpose(self.axes)  # the method: np.transpose adds a Python call per op

    def backward(self, g, node):
        ndim = node.ndim
        inverse = None if self.axes is None else tuple(np.argsort([axis % ndim for axis in self.axes]))
        return (transpose(g, inverse),)


class BroadcastTo(Function):
    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, a):
        return np.broadcast_to(a, self.shape)

    def backward(self, g, node):
        return (unbroadcast(g, node.inputs[0].shape),)


class SumTo(Function):
    """Sum over the axes that broadcasting to the input's shape added or stretched: the reverse
    of BroadcastTo, so each is the other's backward."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, a):
        total = a.sum(axis=_broadcast_axes(a.shape, self.shape))
        # Reshape only to put back stretched axes: a view would be copied again to become a .grad.
        return total if total.shape == self.shape else total.reshape(self.shape)

    def backward(self, g, node):
        return (broadcast_to(g, node.inputs[0].shape),)


class GetItem(Function):
    """``a[index]`` for any NumPy index: integers, slices, integer arrays, masks."""

    def __init__(self, index: Any):
        self.index = index

    def forward(self, a):
        return a[self.index]

    def backward(self, g, node):
        return (IndexAdd(self.index, node.inputs[0].shape)(g),)


class IndexAdd(Function):
    """Zeros of ``shape`` with ``g`` added at ``index``: indexing's backward (repeats add up)."""

    def __init__(self, index: Any, shape: tuple[int, ...]):
        self.index, self.shape = index, shape

    def forward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(out, self.index, g)
        return out

    def backward(self, g, node):
        return (g[self.index],)


# -- reductions -----------------------------------------------------------------------------------
class Sum(Function):
    def __init__(self, axis: Axis = None, keepdims: bool = False):
        self.axis, self.keepdims = _as_axis(axis), keepdims

    def forward(self, a):
        return a.sum(axis=self.axis, keepdims=self.keepdims)  # the method skips np.sum's dispatch

    def backward(self, g, node):
        shape = node.inputs[0].shape
        return (g.reshape(_kept_shape(shape, self.axis)).broadcast_to(shape),)


class Max(Function):
    def __init__(self, axis: Axis = None, keepdims: bool = False):
        self.axis, self.keepdims = _as_axis(axis), keepdims

    def forward(self, a):
        return a.max(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g, node):
        (a,) = node.inputs
        kept = _kept_shape(a.shape, self.axis)
        # A NaN is the maximum of its slice (NumPy and PyTorch propagate it), so it takes the
        # gradient; NaN == NaN is False, hence the isnan.
        winners = (a.data == node.data.reshape(kept)) | np.isnan(a.data)
        share = winners / winners.sum(axis=self.axis, keepdims=True)  # ties split the gradient
        return (g.reshape(kept) * constant(share.astype(a.dtype)),)


class LogSumExp(Function):
    """``log(sum(exp(a)))`` over ``axis``, computed as ``m + log(sum(exp(a - m)))`` with ``m``
    the maximum, so that no exponential overflows."""

    def __init__(self, axis: Axis = None, keepdims: bool = False):
        self.axis, self.keepdims = _as_axis(axis), keepdims

    def forward(self, a):
        if a.size == 0:  # of nothing: log 0 = -inf over an empty axis, as in PyTorch; else empty
            return a.max(axis=self.axis, keepdims=self.keepdims, initial=-np.inf)
        m = a.max(axis=self.axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.exp(a - m).sum(axis=self.axis, keepdims=True)) + m
        if self.keepdims:
            return out
        return out.reshape(()) if self.axis is None else np.squeeze(out, axis=self.axis)

    def backward(self, g, node):
        (a,) = node.inputs
        kept = _kept_shape(a.shape, self.axis)
        softmax = (a - node.reshape(kept)).exp()
        return (g.reshape(kept) * softmax,)


class LogSoftmax(Function):
    """``a - logsumexp(a)`` along ``axis``: log-probabilities, stable for any input size."""

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, a):
        if a.size == 0:  # max would refuse an empty axis; the answer is as empty as a
            return a.copy()
        shifted = a - a.max(axis=self.axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, g, node):
        return (g - node.exp() * g.sum(axis=self.axis, keepdims=True),)


# -- what each backward reads -------------------------------------------------------------------
# A recorded op's inputs and output are made read-only (Function.saves_inputs, saves_output), so
# that changing them in place before the backward pass raises. Locking costs time, so these ops,
# whose backward reads less than all of them, say so here: a table, like the rows above.
for _op in (Add, Sub, Neg, Cast, Reshape, Transpose, BroadcastTo, SumTo, GetItem, IndexAdd, Sum):
    _op.saves_inputs = _op.saves_output = False  # shapes only (and Cast the input's dtype)
for _op in (Mul, Div, MatMul, Affine, Log, Abs, ReLU):
    _op.saves_output = False  # the inputs' values only
for _op in (Exp, Sqrt, Sigmoid, Tanh, LogSoftmax):
    _op.saves_inputs = False  # the output's value only
del _op


# -- one function per op --------------------------------------------------------------------------
def add(a, b) -> Tensor:
    return Add()(a, b)


def sub(a, b) -> Tensor:
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    return Mul()(a, b)


def div(a, b) -> Tensor:
    return Div()(a, b)


def pow(a, b) -> Tensor:  # noqa: A001 -- ops.pow mirrors np.power and the operator **
    return Pow()(a, b)


def neg(a) -> Tensor:
    return Neg()(a)


def exp(a) -> Tensor:
    return Exp()(a)


def log(a) -> Tensor:
    return Log()(a)


def sqrt(a) -> Tensor:
    return Sqrt()(a)


def abs(a) -> Tensor:  # noqa: A001
    return Abs()(a)


def relu(a) -> Tensor:
    return ReLU()(a)


def sigmoid(a) -> Tensor:
    return Sigmoid()(a)


def tanh(a) -> Tensor:
    return Tanh()(a)


def cast(a, dtype) -> Tensor:
    dtype = np.dtype(dtype)
    if isinstance(a, Tensor) and a.dtype == dtype:
        return a
    if dtype.kind != "f":  # integers and booleans carry no gradient: a constant, as in PyTorch
        return constant((a.data if isinstance(a, Tensor) else np.asarray(a)).astype(dtype))
    return Cast(dtype)(a)


def matmul(a, b) -> Tensor:
    return MatMul()(a, b)


def affine(x, w, b) -> Tensor:
    return Affine()(x, w, b)


def reshape(a, shape: tuple[int, ...]) -> Tensor:
    return a if isinstance(a, Tensor) and a.shape == tuple(shape) else Reshape(tuple(shape))(a)


def transpose(a, axes: Sequence[int] | None = None) -> Tensor:
    return Transpose(axes)(a)


def broadcast_to(a, shape: tuple[int, ...]) -> Tensor:
    return a if isinstance(a, Tensor) and a.shape == tuple(shape) else BroadcastTo(tuple(shape))(a)


def getitem(a, index: Any) -> Tensor:
    index = tuple(map(_as_index, index)) if isinstance(index, tuple) else _as_index(index)
    return GetItem(index)(a)


def _as_index(index: Any) -> Any:
    """A Tensor used as an index, as the array NumPy indexes with. A boolean mask stays a mask;
    numbers must be whole, since a Tensor holds integers as float64 unless told otherwise."""
    if not isinstance(index, Tensor):
        return index
    array = index.data
    if array.dtype.kind in "biu":
        return array
    whole = array.astype(np.intp)
    if not np.array_equal(whole, array):
        raise IndexError(f"a Tensor used as an index must hold whole numbers, got {np.array2string(array)}")
    return whole


def sum(a, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Sum(axis, keepdims)(a)


def max(a, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Max(axis, keepdims)(a)


def logsumexp(a, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return LogSumExp(axis, keepdims)(a)


def log_softmax(a, axis: int = -1) -> Tensor:
    return LogSoftmax(axis)(a)
