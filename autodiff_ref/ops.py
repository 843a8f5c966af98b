"""Every differentiable op: its forward on NumPy arrays next to its backward on Tensors.

Read each class as one row of a table. ``forward`` computes the value; ``backward`` receives
``g``, the gradient flowing into the output ``node``, and returns the vector-Jacobian product for
each input, ``g · d(node)/d(input)``, built from Tensor operations so that gradients can be
differentiated again.

Elementwise ops broadcast as NumPy does. An input that was broadcast was, in effect, copied along
the stretched axes, so its gradient is the sum over those axes: :func:`unbroadcast`.

The fused ops :class:`Affine` and ``nn.CrossEntropy`` exist for speed, and their backward has
a second path: in a plain backward pass, which records nothing, it works on the arrays directly.

Where a backward needs an input's values as an array (a mask, a sign), it reads ``a._data``, the
array itself: ``a.data`` would hand out a read-only view (see ``Tensor.data``), which NumPy
computes on more slowly.

A backward may return ``None`` for an input that does not require grad (data, a constant, a
mask). Mul, Div, Pow, MatMul and Affine do: there a gradient nobody asked for costs as much as
the forward.

Below the classes, a lowercase function per op (``mul(a, b)``, ``sum(a, axis)``) applies it; some,
such as ``var``, ``clip`` and ``stack``, are built from other ops. Last come the tables that NumPy's
functions consult when given a Tensor (``np.exp(t)``, ``np.concatenate([t, u])``).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from .tensor import Function, Tensor, _as_tensors, _from_op, is_grad_enabled

Axis = int | tuple[int, ...] | None


def constant(array: Any) -> Tensor:
    """A tensor outside the graph: masks and signs that scale a gradient but are not learned."""
    return _from_op(np.asarray(array), None, ())


def unbroadcast(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving it ``shape``.

    Broadcasting ``(3,)`` to ``(2, 3)`` uses each element twice, so each element's gradient is the
    sum of the two rows' gradients: ``unbroadcast(g, (3,)) == g.sum(axis=0)``.
    """
    return grad if grad._data.shape == shape else SumTo(shape)(grad)


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
        at_zero = a._data == 0
        grad_a = grad_b = None
        if a.requires_grad:
            exponent = b - 1
            if at_zero.any():
                exponent = exponent + constant((at_zero & (b._data == 0)).astype(a.dtype))
            grad_a = unbroadcast(g * b * a**exponent, a.shape)
        # d(a^b)/db = a^b log a is real only for a >= 0; skip it when b is a constant like 2.
        if b.requires_grad:
            base = a + constant((at_zero & (b._data >= 0)).astype(a.dtype)) if at_zero.any() else a
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
        return (g * constant(np.sign(a._data)),)


class ReLU(Function):
    def forward(self, a):
        return np.maximum(a, 0)

    def backward(self, g, node):
        (a,) = node.inputs
        return (g * constant(a._data > 0),)  # a boolean mask: g times True is g, no cast needed


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
        g = g._data
        return (constant(g @ w._data.T) if x.requires_grad else None,
                constant(_as_rows(x._data).T @ _as_rows(g)) if w.requires_grad else None,
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
        winners = (a._data == node._data.reshape(kept)) | np.isnan(a._data)
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


# -- elementwise: sin, cos, maximum, where --------------------------------------------------------
class Sin(Function):
    def forward(self, a):
        return np.sin(a)

    def backward(self, g, node):
        (a,) = node.inputs
        return (g * a.cos(),)


class Cos(Function):
    def forward(self, a):
        return np.cos(a)

    def backward(self, g, node):
        (a,) = node.inputs
        return (-g * a.sin(),)


class Maximum(Function):
    """The larger of ``a`` and ``b``, elementwise. A tie splits the gradient half and half, and a
    NaN (which wins, as in NumPy) passes it to both inputs: PyTorch's rule."""

    def forward(self, a, b):
        return np.maximum(a, b)

    def backward(self, g, node):
        a, b = node.inputs
        share = np.where(a._data == b._data, 0.5, 1.0)
        share_a = constant(np.where(a._data < b._data, 0.0, share).astype(g.dtype))
        share_b = constant(np.where(a._data > b._data, 0.0, share).astype(g.dtype))
        return unbroadcast(g * share_a, a.shape), unbroadcast(g * share_b, b.shape)


class Where(Function):
    """``x`` where ``condition`` holds, ``y`` elsewhere. The condition is a setting, not an input:
    it picks where each gradient goes but has none of its own."""

    def __init__(self, condition: np.ndarray):
        self.condition = condition

    def forward(self, x, y):
        return np.where(self.condition, x, y)

    def backward(self, g, node):
        x, y = node.inputs
        # Where again, rather than g times a mask: an infinite g must not put NaN (inf * 0) into
        # the branch that was not taken.
        return (unbroadcast(Where(self.condition)(g, 0), x.shape),
                unbroadcast(Where(self.condition)(0, g), y.shape))


# -- joining --------------------------------------------------------------------------------------
class Concatenate(Function):
    """The inputs joined along an existing ``axis``; each input's gradient is its slice of ``g``."""

    def __init__(self, axis: int = 0):
        self.axis = axis

    def forward(self, *arrays):
        return np.concatenate(arrays, axis=self.axis)

    def backward(self, g, node):
        sizes = [t.shape[self.axis] for t in node.inputs]
        return tuple(split(g, np.cumsum(sizes)[:-1], self.axis))


# -- reductions, continued ------------------------------------------------------------------------
class Prod(Function):
    def __init__(self, axis: Axis = None, keepdims: bool = False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        return a.prod(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g, node):
        (a,) = node.inputs
        kept = _kept_shape(a.shape, self.axis)
        return (g.reshape(kept) * _product_of_the_others(a, node.reshape(kept), self.axis),)


def _product_of_the_others(a: Tensor, product: Tensor, axis: Axis) -> Tensor:
    """For each element of ``a``, the product of the other elements of its slice along ``axis``:
    d prod / d a, without dividing by zero. ``product / a`` is that where a slice has no zero.

    Otherwise it is the product of the other nonzero elements times the product of the other
    zeros. The latter is 0 in value as soon as it has a factor, but it is written as the zero
    element itself (one factor) where that is what it is, so that second derivatives are right too.
    """
    is_zero = a._data == 0
    if not is_zero.any():
        return product / a
    zeros = is_zero.sum(axis=axis, keepdims=True)  # how many zeros each slice holds
    nonzero = Where(is_zero)(1, a)
    nonzero_others = Prod(axis, keepdims=True)(nonzero) / nonzero
    zero_sum = Where(is_zero)(a, 0).sum(axis=axis, keepdims=True)  # 0, but it carries a gradient
    # The product of the other zeros: of none, 1; of one, that zero; of two or more, 0 to second order.
    at_a_zero = Where(zeros == 1)(1, Where(zeros == 2)(zero_sum - a, 0))
    elsewhere = Where(zeros == 0)(1, Where(zeros == 1)(zero_sum, 0))
    return nonzero_others * Where(is_zero)(at_a_zero, elsewhere)

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
        return constant((a._data if isinstance(a, Tensor) else np.asarray(a)).astype(dtype))
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
    array = index._data
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


# -- the Tensor API's other ops: functions of the classes above, or built from other ops ---------
def sin(a) -> Tensor:
    return Sin()(a)


def cos(a) -> Tensor:
    return Cos()(a)


def maximum(a, b) -> Tensor:
    return Maximum()(a, b)


def minimum(a, b) -> Tensor:
    """``-maximum(-a, -b)``: the same gradient rule as maximum (ties split half and half)."""
    a, b = _as_tensors((a, b))  # first, so that a Python number takes the tensor's dtype
    return neg(maximum(neg(a), neg(b)))


def where(condition, x, y) -> Tensor:
    """``x`` where ``condition`` holds and ``y`` elsewhere, all three broadcast together, as
    ``np.where(condition, x, y)``. The condition is a bool array (as comparisons give) or Tensor."""
    values = condition._data if isinstance(condition, Tensor) else condition
    return Where(np.asarray(values, dtype=bool))(x, y)


def clip(a, a_min=None, a_max=None) -> Tensor:
    """``a`` limited to ``[a_min, a_max]``, either bound ``None`` for none, built from ``where``.

    The gradient goes to ``a`` where ``a_min <= a <= a_max``, bounds included as in PyTorch, and to
    a bound (which may be a Tensor) where it replaces ``a``. With ``a_min > a_max`` every element
    is ``a_max``, as in NumPy.
    """
    if a_min is None and a_max is None:
        raise ValueError("clip needs a_min or a_max (or both); with neither it would change nothing")
    out = a
    if a_min is not None:
        out = where(out < a_min, a_min, out)
    if a_max is not None:
        out = where(out > a_max, a_max, out)
    return out


def min(a, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """``-max(-a)``, so that min shares max's gradient rule: ties split, and a NaN wins."""
    return neg(Max(axis, keepdims)(neg(a)))


def argmax(a, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Where the largest values are, as NumPy says: integers, which have no gradient."""
    return np.argmax(a._data if isinstance(a, Tensor) else a, axis=axis, keepdims=keepdims)


def argmin(a, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Where the smallest values are, as NumPy says: integers, which have no gradient."""
    return np.argmin(a._data if isinstance(a, Tensor) else a, axis=axis, keepdims=keepdims)


def prod(a, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return Prod(axis, keepdims)(a)


def var(a, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """The mean squared deviation from the mean, dividing by ``n - ddof`` for ``n`` elements per
    slice. ``ddof=0`` is NumPy's default; PyTorch's ``var`` divides by ``n - 1`` unless told."""
    (a,) = _as_tensors((a,))
    deviations = a - a.mean(axis=axis, keepdims=True)
    total = (deviations**2).sum(axis=axis, keepdims=keepdims)
    n = a.size // total.size if total.size else 0
    return total / (n - ddof if n > ddof else 0)  # of no degrees of freedom: inf or nan, as NumPy


def std(a, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """The square root of ``var``."""
    return var(a, axis, ddof, keepdims).sqrt()


def concatenate(tensors: Sequence[Any], axis: int | None = 0) -> Tensor:
    """The tensors joined along an existing ``axis``; ``axis=None`` flattens them first."""
    tensors = _as_tensors(tuple(tensors))
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    if axis is None:
        tensors, axis = [flatten(t) for t in tensors], 0
    return Concatenate(axis)(*tensors)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Tensors of one shape joined along a new ``axis``: each gets that axis, then they are
    concatenated along it."""
    tensors = _as_tensors(tuple(tensors))
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack needs tensors of one shape, got shapes {', '.join(map(str, sorted(shapes)))}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis)


def split(a, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """``np.split``: ``a`` cut along ``axis`` into that many equal parts, or at those indices.
    Each part is ``a`` indexed by a slice, so gradients flow back into ``a``."""
    (a,) = _as_tensors((a,))
    axis = normalize_axis_index(axis, a.ndim)
    pieces = np.split(np.arange(a.shape[axis]), indices_or_sections)  # NumPy's rules and errors
    stops = np.cumsum([len(piece) for piece in pieces])
    before = (slice(None),) * axis
    return [a[before + (slice(int(stop) - len(piece), int(stop)),)] for piece, stop in zip(pieces, stops)]


def squeeze(a, axis: Axis = None) -> Tensor:
    """``a`` without its axes of size 1 (or without those in ``axis``, which must have size 1)."""
    (a,) = _as_tensors((a,))
    return reshape(a, _shape_after(np.squeeze, a.shape, axis))


def expand_dims(a, axis: int | tuple[int, ...]) -> Tensor:
    """``a`` with a new axis of size 1 at each position in ``axis`` (of the result)."""
    (a,) = _as_tensors((a,))
    return reshape(a, _shape_after(np.expand_dims, a.shape, axis))


def flatten(a) -> Tensor:
    """``a`` as one axis, in row-major order."""
    (a,) = _as_tensors((a,))
    return reshape(a, (a.size,))


def _shape_after(numpy_function: Any, shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape ``numpy_function(array, axis)`` gives an array of ``shape``: NumPy's rules and
    errors, worked out on a view that holds one element, whatever the shape."""
    return numpy_function(np.broadcast_to(np.empty((), dtype=bool), shape), axis).shape


# -- NumPy's functions on Tensors ------------------------------------------------------------------
# NumPy hands a call that has a Tensor among its arguments to Tensor.__array_ufunc__ (np.exp,
# np.add, and the operators when an array is on the left) or Tensor.__array_function__ (np.sum,
# np.concatenate, ...), which look here. A function in a table runs the Tensor op; one that only
# answers a question about the values (np.shape, np.allclose, np.argmax, a comparison) runs on the
# arrays; any other raises, because it would compute on the values and silently drop the graph.

def _first_tensor(a) -> Tensor:
    return a if isinstance(a, Tensor) else _as_tensors((a,))[0]


UFUNCS = {
    np.add: add, np.subtract: sub, np.multiply: mul, np.divide: div, np.power: pow,
    np.matmul: matmul, np.maximum: maximum, np.minimum: minimum, np.negative: neg,
    np.positive: _first_tensor, np.exp: exp, np.log: log, np.sqrt: sqrt, np.absolute: abs,
    np.tanh: tanh, np.sin: sin, np.cos: cos,
}

QUESTION_UFUNCS = {
    np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal,
    np.isfinite, np.isinf, np.isnan, np.signbit,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not,
}

# Each takes the names of NumPy's parameters that it supports, with the same meaning.
FUNCTIONS = {
    np.sum: sum,
    np.mean: lambda a, axis=None, keepdims=False: _first_tensor(a).mean(axis, keepdims),
    np.max: max, np.amax: max, np.min: min, np.amin: min, np.prod: prod,
    np.var: var, np.std: std,
    np.reshape: lambda a, shape: _first_tensor(a).reshape(shape),
    np.transpose: transpose,
    np.ravel: flatten,
    np.squeeze: squeeze,
    np.expand_dims: expand_dims,
    np.broadcast_to: lambda array, shape: _first_tensor(array).broadcast_to(shape),
    np.concatenate: lambda arrays, axis=0: concatenate(arrays, axis),
    np.stack: lambda arrays, axis=0: stack(arrays, axis),
    np.split: lambda ary, indices_or_sections, axis=0: split(ary, indices_or_sections, axis),
    np.clip: clip,
    np.where: lambda condition, x=None, y=None: (
        np.nonzero(_values(condition)) if x is None and y is None else where(condition, x, y)
    ),
}

QUESTION_FUNCTIONS = {
    np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero, np.flatnonzero,
    np.argwhere, np.count_nonzero, np.all, np.any, np.allclose, np.isclose, np.array_equal,
    np.array_equiv, np.iscomplexobj, np.isrealobj,
}


def numpy_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """What ``Tensor.__array_ufunc__`` answers NumPy."""
    op = UFUNCS.get(ufunc)
    if op is not None and method == "__call__" and not kwargs:  # the usual case first: array * tensor
        return op(*inputs)
    name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if kwargs.get("out") is not None:
        raise TypeError(
            f"{name}(..., out=...) would write into an array in place, outside the graph, so "
            "Tensor.__array_ufunc__ refuses it: write a = a + t to get a Tensor, or use t.data "
            "for the values alone (no gradient)"
        )
    if method == "__call__" and ufunc in QUESTION_UFUNCS:
        return ufunc(*_values(inputs), **kwargs)
    if op is None or method != "__call__":
        raise _unsupported(name)
    raise TypeError(f"{name} on a Tensor takes no keyword arguments, got {', '.join(kwargs)}")


def numpy_function(function: Any, types: tuple[type, ...], args: tuple, kwargs: dict) -> Any:
    """What ``Tensor.__array_function__`` answers NumPy."""
    if not all(issubclass(t, (Tensor, np.ndarray)) for t in types):
        return NotImplemented  # another library's arrays: let them answer
    if function in QUESTION_FUNCTIONS:
        return function(*_values(args), **_values(kwargs))
    name = f"{function.__module__.replace('numpy', 'np', 1)}.{function.__name__}"
    op = FUNCTIONS.get(function)
    if op is None:
        raise _unsupported(name)
    arguments = inspect.signature(function).bind(*args, **kwargs).arguments  # NumPy's own errors
    supported = inspect.signature(op).parameters
    refused = [key for key, value in arguments.items() if key not in supported and not _is_default(function, key, value)]
    if refused:
        raise TypeError(
            f"{name} on a Tensor supports {', '.join(supported)} only, not {', '.join(key + '=' for key in refused)}"
        )
    return op(**{key: value for key, value in arguments.items() if key in supported})


def _is_default(function: Any, key: str, value: Any) -> bool:
    parameter = inspect.signature(function).parameters[key]
    if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
        return not value
    default = parameter.default
    return value is default or (isinstance(default, str) and value == default)


def _values(value: Any) -> Any:
    """``value`` with every Tensor in it (also in lists, tuples and dicts) replaced by its array."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, (list, tuple)):
        return type(value)(_values(item) for item in value)
    if isinstance(value, dict):
        return {key: _values(item) for key, item in value.items()}
    return value


def _unsupported(name: str) -> TypeError:
    return TypeError(
        f"{name} does not support Tensors: it would compute on the values alone and drop the "
        "graph, so no gradient would flow through it. Use a Tensor op (docs/library.md lists "
        "them), or pass t.data for a plain array, without gradient"
    )

# -- convolution and pooling ----------------------------------------------------------------------
#
# Images are batches of shape (N, C, H, W): N images of C channels, H rows and W columns. A
# convolution's weight has shape (F, C, kh, kw): F filters, each looking at all C channels through
# a kh x kw window. As in every deep-learning library, "convolution" here is cross-correlation: the
# kernel slides over the image without being flipped.
#
# The convolution is bilinear in (x, w), so its two gradients are two more bilinear ops, and each of
# the three ops has the other two in its backward: Conv2dInputGrad (PyTorch's conv_transpose2d) and
# Conv2dWeightGrad. That closes the set, so gradients of gradients come for free.


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: int, padding: int) -> np.ndarray:
    """Every patch a ``kernel``-sized window visits: ``(N, C, H, W) -> (N, C, Ho, Wo, kh, kw)``.

    A view into the (padded) input, no copy: ``windows[n, c, i, j]`` is the patch whose top-left
    corner is at row ``i * stride``, column ``j * stride`` of the padded image.
    """
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))[:, :, ::stride, ::stride]


def _check_conv_settings(stride: Any, padding: Any) -> tuple[int, int]:
    for what, value, least in (("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise ValueError(f"{what} must be an integer >= {least}, got {value!r}")
    return int(stride), int(padding)


class Conv2d(Function):
    """2-D cross-correlation: ``x (N, C, H, W)``, ``w (F, C, kh, kw)``, optional ``b (F,)`` ->
    ``(N, F, Ho, Wo)`` with ``Ho = (H + 2 padding - kh) // stride + 1`` (``Wo`` alike).

    ``out[n, f, i, j] = b[f] + sum over c, u, v of x_padded[n, c, i*stride + u, j*stride + v] w[f, c, u, v]``.
    """

    def __init__(self, stride: int = 1, padding: int = 0):
        self.stride, self.padding = _check_conv_settings(stride, padding)

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ValueError("Conv2d needs x of shape (N, C, H, W) and w of shape (F, C, kh, kw), the same C")
        if b is not None and b.shape != w.shape[:1]:
            raise ValueError(f"Conv2d needs a bias of shape ({w.shape[0]},), one number per filter")
        padded = (x.shape[2] + 2 * self.padding, x.shape[3] + 2 * self.padding)
        if w.shape[2] > padded[0] or w.shape[3] > padded[1]:
            raise ValueError(f"a {w.shape[2]}x{w.shape[3]} kernel does not fit in the padded {padded[0]}x{padded[1]} image")
        windows = _windows(x, w.shape[2:], self.stride, self.padding)
        # One matrix product over (c, u, v): tensordot lays the patches out as im2col's rows.
        out = np.tensordot(windows, w, axes=((1, 4, 5), (1, 2, 3))).transpose(0, 3, 1, 2)
        return out if b is None else out + b.reshape(-1, 1, 1)

    def backward(self, g, node):
        x, w = node.inputs[:2]
        grads = (
            Conv2dInputGrad(x.shape[2:], self.stride, self.padding)(g, w) if x.requires_grad else None,
            Conv2dWeightGrad(w.shape[2:], self.stride, self.padding)(x, g) if w.requires_grad else None,
        )
        if len(node.inputs) == 2:
            return grads
        # Each bias is added at every position of every image: its gradient sums over all of them.
        return grads + (g.sum(axis=(0, 2, 3)) if node.inputs[2].requires_grad else None,)


class Conv2dInputGrad(Function):
    """The gradient of a :class:`Conv2d` with respect to its input (a transposed convolution):
    ``g (N, F, Ho, Wo)``, ``w (F, C, kh, kw)`` -> ``(N, C, H, W)`` for the input size ``(H, W)``.

    Each output position received ``sum w * patch`` from one patch, so it hands ``g * w`` back to
    that patch: a scatter-add of ``g[n, :, i, j] @ w`` into the padded image (col2im), with the
    padding then cropped off. Rows a strided window never reached get 0.
    """

    def __init__(self, input_size: tuple[int, int], stride: int = 1, padding: int = 0):
        self.input_size = tuple(int(n) for n in input_size)
        self.stride, self.padding = _check_conv_settings(stride, padding)

    def forward(self, g, w):
        (n, _, out_h, out_w), (_, c, kh, kw) = g.shape, w.shape
        s, p = self.stride, self.padding
        patches = np.tensordot(g, w, axes=(1, 0))  # (N, Ho, Wo, C, kh, kw): each patch's share
        padded = np.zeros((n, c, self.input_size[0] + 2 * p, self.input_size[1] + 2 * p), dtype=patches.dtype)
        for u in range(kh):  # kernel offset (u, v) touches rows u, u + s, ... and columns v, v + s, ...
            for v in range(kw):
                padded[:, :, u:u + s * out_h:s, v:v + s * out_w:s] += patches[..., u, v].transpose(0, 3, 1, 2)
        return padded[:, :, p:p + self.input_size[0], p:p + self.input_size[1]]

    def backward(self, grad, node):
        g, w = node.inputs
        # <grad, input_grad(g, w)> = <conv2d(grad, w), g>: differentiate that in g and in w.
        return (
            Conv2d(self.stride, self.padding)(grad, w) if g.requires_grad else None,
            Conv2dWeightGrad(w.shape[2:], self.stride, self.padding)(grad, g) if w.requires_grad else None,
        )


class Conv2dWeightGrad(Function):
    """The gradient of a :class:`Conv2d` with respect to its weight: ``x (N, C, H, W)``,
    ``g (N, F, Ho, Wo)`` -> ``(F, C, kh, kw)`` for the kernel size ``(kh, kw)``.

    A weight is used at every position of every image, so its gradient sums ``g`` times the input
    it multiplied, over all of them: the patches contracted with ``g``.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: int = 1, padding: int = 0):
        self.kernel_size = tuple(int(n) for n in kernel_size)
        self.stride, self.padding = _check_conv_settings(stride, padding)

    def forward(self, x, g):
        windows = _windows(x, self.kernel_size, self.stride, self.padding)
        # einsum picks a better memory order here than tensordot, which copies g transposed.
        return np.einsum("nfij,ncijuv->fcuv", g, windows, optimize=True)

    def backward(self, grad, node):
        x, g = node.inputs
        # <grad, weight_grad(x, g)> = <g, conv2d(x, grad)>: differentiate that in x and in g.
        return (
            Conv2dInputGrad(x.shape[2:], self.stride, self.padding)(g, grad) if x.requires_grad else None,
            Conv2d(self.stride, self.padding)(x, grad) if g.requires_grad else None,
        )


def _pool_windows(x: np.ndarray, size: int) -> np.ndarray:
    """``(N, C, H, W) -> (N, C, H // size, size, W // size, size)``, a view of the non-overlapping
    ``size x size`` windows; rows and columns left over at the bottom and right are dropped."""
    n, c, h, w = x.shape
    rows, columns = h // size, w // size
    if rows == 0 or columns == 0:
        raise ValueError(f"a {size}x{size} pooling window does not fit in a {h}x{w} image")
    return x[:, :, :rows * size, :columns * size].reshape(n, c, rows, size, columns, size)


def _check_pool_size(size: Any) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"the pooling size must be a positive integer, got {size!r}")
    return int(size)


def _spread(g: Tensor, size: int, scale: Any, shape: tuple[int, ...]) -> Tensor:
    """``g (N, C, Ho, Wo)`` copied to every element of its window and times ``scale`` (a number
    or a constant of the windows' shape), as a Tensor of the pooled input's ``shape``; the rows
    and columns that pooling dropped get 0."""
    n, c, rows, columns = g.shape
    spread = (g.reshape(n, c, rows, 1, columns, 1) * scale).broadcast_to((n, c, rows, size, columns, size))
    spread = spread.reshape(n, c, rows * size, columns * size)
    if spread.shape == shape:
        return spread
    return IndexAdd((slice(None), slice(None), slice(0, rows * size), slice(0, columns * size)), shape)(spread)


class MaxPool2d(Function):
    """The largest value of each non-overlapping ``size x size`` window: ``(N, C, H, W) ->
    (N, C, H // size, W // size)``.

    The gradient goes to the element that was the maximum; the others did not affect the output.
    When several elements tie for the maximum, the first of them (in row-major order) takes it all,
    as in PyTorch: any split among the tied elements is a valid subgradient, but sending the full
    gradient to each of them would not be.
    """

    def __init__(self, size: int = 2):
        self.size = _check_pool_size(size)

    def forward(self, x):
        # np.maximum over the size * size arrays windows[:, :, :, u, :, v] (element (u, v) of every
        # window): many times faster than .max(axis=(3, 5)), whose inner loops are size elements long.
        windows = _pool_windows(x, self.size)
        out = windows[:, :, :, 0, :, 0]
        for u in range(self.size):
            for v in range(self.size):
                out = np.maximum(out, windows[:, :, :, u, :, v])
        return out

    def backward(self, g, node):
        (x,) = node.inputs
        windows, top = _pool_windows(x._data, self.size), node._data
        offsets = [(u, v) for u in range(self.size) for v in range(self.size)]
        # The offset in each window that gets the gradient, scanning row by row as PyTorch does:
        # the first maximum, or the last NaN in a window that has one.
        winner = np.full(top.shape, -1)
        for k, (u, v) in enumerate(offsets):
            here = windows[:, :, :, u, :, v]
            winner = np.where(((here == top) & (winner < 0)) | np.isnan(here), k, winner)
        mask = np.zeros(windows.shape, dtype=x._data.dtype)
        for k, (u, v) in enumerate(offsets):
            mask[:, :, :, u, :, v] = winner == k
        return (_spread(g, self.size, constant(mask), x.shape),)


class AvgPool2d(Function):
    """The mean of each non-overlapping ``size x size`` window: ``(N, C, H, W) ->
    (N, C, H // size, W // size)``. Each element of a window gets ``1 / size**2`` of its gradient."""

    def __init__(self, size: int = 2):
        self.size = _check_pool_size(size)

    def forward(self, x):
        return _pool_windows(x, self.size).mean(axis=(3, 5))

    def backward(self, g, node):
        (x,) = node.inputs
        return (_spread(g, self.size, 1.0 / self.size**2, x.shape),)


def conv2d(x, w, b=None, stride: int = 1, padding: int = 0) -> Tensor:
    op = Conv2d(stride, padding)
    return op(x, w) if b is None else op(x, w, b)


def max_pool2d(x, size: int = 2) -> Tensor:
    return MaxPool2d(size)(x)


def avg_pool2d(x, size: int = 2) -> Tensor:
    return AvgPool2d(size)(x)
