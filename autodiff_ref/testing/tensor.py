"""Checks for tensor ops written as :class:`~autodiff_ref.Function` subclasses (notebook 05).

* :func:`check_function` runs a learner's op on random float64 inputs through the engine's
  protocol (``op(*tensors)`` records it; ``op.backward(out_grad, node)`` is then called on the
  recorded output), compares its forward with the reference op of :mod:`autodiff_ref.ops` and
  each gradient with a numeric one: the central-difference gradient of ``sum(w * forward(...))``
  for random weights ``w``, which is exactly what ``backward(Tensor(w), node)`` must return.
* :func:`check_unbroadcast` checks a learner's ``unbroadcast(grad, shape)``.

A failure raises :class:`~autodiff_ref.testing.core.CheckFailure` naming the op, forward or
backward, the input (its index and name), the worst element with its expected and actual value,
and, when the numbers match a usual mistake, what that mistake is: operands swapped, a gradient
not summed over the axes broadcasting stretched, a matmul gradient transposed or multiplied in
the wrong order, ``out_grad`` left out, a flipped sign, a constant factor, a wrong count of
gradients, a NumPy array where a Tensor belongs, a wrong shape, a mask that ``==`` on Tensors left
all zeros, ``out_grad`` changed in place, a gradient built from a copy of an input (which cannot
be differentiated again). A passing check prints a ✓ line.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import ops
from ..gradcheck import numeric_grad
from ..tensor import Function, Tensor
from .core import ATOL, LATER_CELL_HINT, RTOL, CheckFailure, as_shapes, assert_close, own_work, passed, random_array, watched, where_raised

__all__ = ["DOMAINS", "UNBROADCAST_CASES", "check_function", "check_unbroadcast"]

# Where check_function draws each input of a reference op (the domains of random_array). "real"
# keeps every value at least 0.3 away from 0, so it already avoids the kinks of abs and relu and
# the pole of a / b; the other entries keep an input where the op is defined. Ops not listed
# take "real" for every input.
DOMAINS: dict[str, tuple[str, ...]] = {
    "Log": ("positive",),
    "Sqrt": ("positive",),
    "Pow": ("positive", "real"),  # d(a**b)/db = a**b log a needs a > 0
    "Div": ("real", "real"),  # |b| >= 0.3: no pole
    "Abs": ("real",),  # |a| >= 0.3: no kink
    "ReLU": ("real",),
}

# The reference ops that reduce over axis: their backward spreads out_grad over the reduced axes.
_REDUCTIONS = ("Sum", "Mean", "Max", "LogSumExp")

# (shape of grad, shape to sum it to): added leading axes, stretched size-1 axes, and both.
UNBROADCAST_CASES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((4, 2, 3), (3,)),
    ((2, 3), (1, 3)),
    ((2, 3), (2, 1)),
    ((4, 2, 3), (2, 1)),
    ((4, 2, 3), (1, 3)),
    ((5, 1, 3), (1, 3)),
    ((2, 3), ()),
)


# --- small pieces --------------------------------------------------------------------------------


def _draw(shape: tuple[int, ...], rng: np.random.Generator, domain: str) -> np.ndarray:
    """A random input; with ``"real"``, both signs occur whenever there are two elements or more,
    so that a backward that forgets the sign of abs or the mask of relu cannot pass by luck."""
    array = random_array(shape, rng, domain)
    if domain == "real" and array.size > 1 and len(np.unique(np.sign(array))) == 1:
        array.flat[rng.integers(array.size)] *= -1
    return array


def _show_shapes(names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> str:
    return ", ".join(f"{name}: {shape}" for name, shape in zip(names, shapes))


def _label(op: Function) -> str:
    """``Exp`` for an op without settings, ``Sum(axis=0, keepdims=True)`` for one with them."""
    settings = ", ".join(f"{name}={value!r}" for name, value in vars(op).items())
    return f"{type(op).__name__}({settings})" if settings else type(op).__name__


def _input_names(op_type: type, count: int) -> list[str]:
    """The names of ``forward``'s parameters (``a``, ``b``), or a, b, c... if it hides them."""
    try:
        parameters = list(inspect.signature(op_type.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in parameters if p.kind in positional]
    return names if len(names) == count else [chr(ord("a") + i) for i in range(count)]


def _can_sum_to(big: tuple[int, ...], small: tuple[int, ...]) -> bool:
    """Whether broadcasting ``small`` can give ``big`` (so summing ``big`` can give ``small``)."""
    return len(small) <= len(big) and all(s in (1, b) for s, b in zip(reversed(small), reversed(big)))


def _sum_to_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` summed over the axes that broadcasting ``shape`` to ``array.shape`` added or stretched."""
    summed = array.sum(axis=tuple(range(array.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and summed.shape[i] != 1)
    return summed.sum(axis=stretched, keepdims=True)


def _fit(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A wrong answer as the learner would return it for an input of ``shape``, if it can be."""
    if array.shape == shape:
        return array
    return _sum_to_shape(array, shape) if _can_sum_to(array.shape, shape) else None


def _kept_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape a reduction over ``axis`` gives with ``keepdims=True``."""
    if axis is None:
        return (1,) * len(shape)
    axes = {int(a) % len(shape) for a in np.atleast_1d(axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _swap_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[:-2] + (shape[-1], shape[-2])


def _run(
    what: str, case: str, function: Callable[[], Any], hint: Callable[[Exception], str | None] | None = None
) -> Any:
    """Run learner code; turn what it raises into a CheckFailure that names the op and the case.
    ``hint`` says what to check, given the error (a TypeError and a ValueError need different ones)."""
    try:
        return watched(function)
    except CheckFailure:
        raise
    except NotImplementedError as error:
        origin = where_raised(error)
        if origin.rsplit(".", 1)[-1] in ("forward", "backward", what.rsplit(".", 1)[-1]):
            message = f"{what} is not written yet: it raises NotImplementedError."
        else:
            message = f"{what} calls {origin}, which is not written yet: it raises NotImplementedError."
        raise CheckFailure(
            message + " Replace `raise NotImplementedError()` with your code and run its cell again."
        ) from error
    except Exception as error:  # anything else the learner's code raises fails this case
        lines = [f"{what} raised {type(error).__name__} ({case}): {error}"]
        hint_text = hint(error) if hint else None
        if isinstance(error, NameError):
            hint_text = hint_text or LATER_CELL_HINT
        if hint_text:
            lines.append(f"  Hint: {hint_text}")
        raise CheckFailure("\n".join(lines)) from error


def _changed_in_place(tensors: Sequence[Tensor], originals: Sequence[np.ndarray], names: Sequence[str]) -> str | None:
    """The name of the first tensor whose values differ from their copy taken before learner code ran."""
    for tensor, original, name in zip(tensors, originals, names):
        if not np.array_equal(tensor.data, original):
            return name
    return None


def _require_tensor(result: Any, what: str) -> Tensor:
    if isinstance(result, Tensor):
        return result
    if result is None:
        raise CheckFailure(f"{what} is None: did you forget a `return`?")
    if isinstance(result, (np.ndarray, np.generic, float, int)):
        kind = "a NumPy array" if isinstance(result, np.ndarray) else f"a plain number ({type(result).__name__})"
        raise CheckFailure(
            f"{what} is {kind}, not a Tensor.\n"
            "  Hint: compute it from the Tensors you were given with Tensor operations "
            "(`out_grad * b`, `grad.sum(axis=0)`), not on their .data with NumPy: a gradient that "
            "is a Tensor is part of a graph, and notebook 06 differentiates it again."
        )
    raise CheckFailure(f"{what} is a {type(result).__name__}, not a Tensor.")


def _require_graph(result: Tensor, what: str, made_from: str) -> None:
    """A gradient built with Tensor operations from a Tensor that requires grad requires grad too."""
    if not result.requires_grad:
        raise CheckFailure(
            f"{what} has the right numbers, but it is not computed from {made_from} with Tensor "
            "operations: it is a new Tensor outside the graph.\n"
            f"  Hint: was it computed on .data with NumPy and wrapped in Tensor(...)? Use Tensor "
            f"operations on {made_from} itself (`out_grad * b`, `grad.sum(axis=0)`), so that the "
            "gradient is part of a graph: notebook 06 differentiates gradients again."
        )


def _inputs_reached(grad: Tensor, inputs: Sequence[Tensor]) -> set[int]:
    """The positions of the ``inputs`` that ``grad``'s graph leads back to (through the op's
    output ``node`` too, whose own inputs they are)."""
    positions = {id(tensor): i for i, tensor in enumerate(inputs)}
    reached, seen, waiting = set(), set(), [grad]
    while waiting:
        tensor = waiting.pop()
        if id(tensor) not in seen:
            seen.add(id(tensor))
            if id(tensor) in positions:
                reached.add(positions[id(tensor)])
            waiting.extend(tensor.inputs)
    return reached


def _inputs_each_gradient_uses(reference: Function, arrays: Sequence[np.ndarray]) -> list[set[int]]:
    """For each input, the inputs whose Tensors the reference op's gradient for it is built from.

    A gradient that depends on an input must use that Tensor, not a copy of its values, to be
    differentiated again. A constant the reference builds on .data, such as the mask of ReLU or
    Max, is not differentiated by design, so it leads to no input and asks for none.
    """
    inputs = [Tensor(x, requires_grad=True) for x in arrays]
    with np.errstate(all="ignore"):  # only the graph counts here, not the values (log of a < 0 is nan)
        node = reference(*inputs)
        grads = reference.backward(Tensor(np.ones(node.shape), requires_grad=True), node)
    grads = (grads,) if isinstance(grads, Tensor) else grads
    return [set() if grad is None else _inputs_reached(grad, inputs) for grad in grads]


def _require_inputs(grad: Tensor, what: str, inputs: Sequence[Tensor], needed: set[int], names: list[str]) -> None:
    """``grad``'s graph leads back to every input in ``needed``, so that it can be differentiated again."""
    missing = sorted(needed - _inputs_reached(grad, inputs))
    if missing:
        name = names[missing[0]]
        raise CheckFailure(
            f"{what} has the right numbers, but it depends on {name} and its graph does not lead back "
            f"to {name}: it is built from a copy, such as Tensor({name}.data) or Tensor(node.data).\n"
            f"  Hint: use the Tensors {', '.join(names)} and node themselves, not Tensor({name}.data): a "
            "gradient built from copies cannot be differentiated again, and notebook 06 differentiates "
            "gradients again for second derivatives."
        )


# --- the reference op ----------------------------------------------------------------------------


@dataclass
class _Reference:
    forward: Callable[..., np.ndarray]
    name: str  # the key into DOMAINS and _MISTAKES
    description: str  # for the ✓ line
    op: Function | None  # the reference op itself, when there is one (its settings feed hints)


def _reference_op_named(name: str) -> type:
    found = {
        cls.__name__.lower(): cls for cls in vars(ops).values()
        if isinstance(cls, type) and issubclass(cls, Function) and cls is not Function
    }
    if name.lower() not in found:
        raise ValueError(
            f"check_function compares {name} with the op of the same name in autodiff_ref.ops, but "
            "there is none; pass reference= (a Function subclass, or a function of NumPy arrays "
            "that computes the forward)"
        )
    return found[name.lower()]


def _resolve_reference(op_type: type, reference: Any, args: tuple, kwargs: dict) -> _Reference:
    if reference is None:
        reference = _reference_op_named(op_type.__name__)
    if isinstance(reference, type) and issubclass(reference, Function):
        reference = reference(*args, **kwargs)
    if isinstance(reference, Function):
        op = reference
        name = type(op).__name__
        where = "autodiff_ref.ops." if type(op).__module__ == ops.__name__ else ""
        return _Reference(lambda *xs: np.asarray(op.forward(*xs), dtype=np.float64), name, where + name, op)
    if callable(reference):
        def forward(*arrays: np.ndarray) -> np.ndarray:
            out = reference(*arrays)
            return np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)

        return _Reference(forward, op_type.__name__, "the reference", None)
    raise TypeError(f"reference must be a Function subclass or a function of arrays, got {type(reference).__name__}")


# --- hints for a wrong gradient --------------------------------------------------------------------


@dataclass
class _Case:
    """One run of a learner's op, with everything a hint may need."""

    label: str
    op: Function  # the learner's op
    names: list[str]
    arrays: list[np.ndarray]  # the inputs
    out: np.ndarray  # the reference output
    weights: np.ndarray  # out_grad
    numeric: tuple[np.ndarray, ...]  # the right gradients
    reference: _Reference
    atol: float
    rtol: float
    _numeric_ones: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    def close(self, got: np.ndarray, expected: np.ndarray | None) -> bool:
        return (
            expected is not None and got.shape == expected.shape
            and bool(np.allclose(got, expected, atol=self.atol, rtol=self.rtol))
        )

    def numeric_ones(self) -> tuple[np.ndarray, ...]:
        """The gradients for out_grad = 1 everywhere: what a backward without out_grad returns."""
        if self._numeric_ones is None:
            forward = self.reference.forward
            self._numeric_ones = numeric_grad(lambda *xs: np.sum(forward(*xs)), *self.arrays)
        return self._numeric_ones

    def setting(self, name: str, default: Any = None) -> Any:
        """A setting of the op, such as its axis: the learner's, else the reference op's."""
        return getattr(self.op, name, getattr(self.reference.op, name, default))


def _matmul_rule(a_shape: tuple[int, ...], b_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
    if len(a_shape) < 2 or len(b_shape) < 2:
        return "For Z = A @ B and G = dL/dZ: dL/dA = G @ Bᵀ and dL/dB = Aᵀ @ G."
    (m, k), n = a_shape[-2:], b_shape[-1]
    rule = (
        f"For Z = A @ B with A {a_shape}, B {b_shape}, G = dL/dZ has Z's shape {out_shape}; "
        f"dL/dA = G @ Bᵀ: ({m}, {n}) @ ({n}, {k}) gives ({m}, {k}), and dL/dB = Aᵀ @ G: "
        f"({k}, {m}) @ ({m}, {n}) gives ({k}, {n})."
    )
    if len(a_shape) > 2 or len(b_shape) > 2:
        rule += (
            " With batch axes, ᵀ swaps the last two axes only, and each gradient is summed over "
            "the batch axes its input did not have or had with size 1 (unbroadcast)."
        )
    return rule


def _matmul_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    a, b = case.arrays
    if a.ndim < 2 or b.ndim < 2:
        return
    g, T = case.weights, (lambda x: np.swapaxes(x, -1, -2))
    if i == 0:
        right, products = "G @ Bᵀ", {
            "B @ Gᵀ, the transpose of the right answer": (b, T(g)),
            "G @ B (Bᵀ is not transposed)": (g, b),
            "B @ G": (b, g), "Bᵀ @ G": (T(b), g), "Gᵀ @ B": (T(g), b),
            "Bᵀ @ Gᵀ": (T(b), T(g)), "Gᵀ @ Bᵀ": (T(g), T(b)),
        }
    else:
        right, products = "Aᵀ @ G", {
            "Gᵀ @ A, the transpose of the right answer": (T(g), a),
            "A @ G (Aᵀ is not transposed)": (a, g),
            "G @ A": (g, a), "G @ Aᵀ": (g, T(a)), "A @ Gᵀ": (a, T(g)),
            "Aᵀ @ Gᵀ": (T(a), T(g)), "Gᵀ @ Aᵀ": (T(g), T(a)),
        }
    rule = _matmul_rule(a.shape, b.shape, case.out.shape)
    for text, (x, y) in products.items():
        try:
            product = x @ y
        except ValueError:  # shapes that do not fit cannot be what the learner computed
            continue
        wrong = _fit(product, case.arrays[i].shape)
        if wrong is not None:
            yield wrong, f"your gradient for {'AB'[i]} equals {text}, but it is {right}. {rule}"


def _transpose_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    axes = case.setting("axes")
    if axes is None:
        return
    ndim = case.weights.ndim
    inverse = tuple(int(x) for x in np.argsort([axis % ndim for axis in axes]))
    if any(axis < 0 for axis in axes):
        yield np.transpose(case.weights, np.argsort(axes)), (
            f"np.argsort({tuple(axes)}) sorts the negative axes first; make the axes positive with "
            f"axis % ndim before inverting: the inverse permutation is {inverse}."
        )
    if inverse != tuple(axis % ndim for axis in axes):
        yield np.transpose(case.weights, axes), (
            f"out_grad was permuted with axes={tuple(axes)} again; undo the permutation instead, "
            f"with its inverse np.argsort(axes) = {inverse}."
        )


def _max_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    (a,) = case.arrays
    kept = _kept_shape(a.shape, case.setting("axis"))
    yield np.broadcast_to(case.weights.reshape(kept), a.shape), (
        "every element got out_grad, but only the elements that are the maximum affect the output: "
        "multiply by a mask that is 1 where a equals the maximum and 0 elsewhere."
    )
    # A mask that matches nothing (the maximum compared in the wrong shape, or against the wrong
    # array) makes out_grad all zeros: of a's shape if broadcast, else of the shape it had then.
    for shape in dict.fromkeys((a.shape, kept, case.out.shape)):
        yield np.zeros(shape), (
            "the gradient is all zeros, as from a mask that matched no element: compare a's "
            f"elements with the maximum put back in a's rank, a.data == node.data.reshape({kept})."
        )


def _mean_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    (a,) = case.arrays
    kept = _kept_shape(a.shape, case.setting("axis"))
    count = a.size // int(np.prod(kept))
    yield np.broadcast_to(case.weights.reshape(kept), a.shape), (
        f"that is the gradient of the sum: each output is the mean of {count} elements, so each "
        f"element's share of out_grad is divided by {count} (node.size / a.size is 1/{count})."
    )


def _elementwise_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    """Wrong local derivatives that the usual slips produce, for each elementwise reference op."""
    g, out, name = case.weights, case.out, case.reference.name
    a = case.arrays[0]
    b = case.arrays[1] if len(case.arrays) > 1 else None
    wrong: list[tuple[Any, str]] = []
    if name == "Mul":
        wrong = [(g, "the local derivative is missing: for a * b, a's gradient is out_grad * b and b's is out_grad * a.")]
    elif name == "Div" and i == 0:
        wrong = [(g * b, "d(a/b)/da = 1/b: divide out_grad by b rather than multiply.")]
    elif name == "Div":
        wrong = [
            (-g / b**2, "the factor a is missing: d(a/b)/db = -a / b**2."),
            (-g * a / b, "b must be squared: d(a/b)/db = -a / b**2."),
            (g / b, "that is the rule for a; d(a/b)/db = -a / b**2."),
        ]
    elif name == "Pow" and i == 0:
        with np.errstate(all="ignore"):
            wrong = [
                (g * a ** (b - 1), "the factor b is missing: d(a**b)/da = b * a**(b-1)."),
                (g * b * a**b, "the exponent was not lowered: d(a**b)/da = b * a**(b-1)."),
                (g * out * np.log(a), "that is the rule for the exponent b; d(a**b)/da = b * a**(b-1)."),
            ]
    elif name == "Pow":
        with np.errstate(all="ignore"):
            wrong = [
                (g * out, "the factor log(a) is missing: d(a**b)/db = a**b * log(a)."),
                (g * np.log(a), "the factor a**b (the output) is missing: d(a**b)/db = a**b * log(a)."),
                (g * b * a ** (b - 1), "that is the rule for the base a; d(a**b)/db = a**b * log(a)."),
            ]
    elif name == "Exp":
        wrong = [(g * a, "the local derivative of exp is its output exp(a) (that is node), not its input a.")]
    elif name == "Log":
        with np.errstate(all="ignore"):
            wrong = [
                (g * a, "d log(a)/da = 1/a: divide out_grad by a rather than multiply."),
                (g / out, "divide by the input a (node.inputs[0]), not by the output log(a) (node)."),
                (g * out, "d log(a)/da = 1/a, not log(a)."),
            ]
    elif name == "Sqrt":
        wrong = [
            (g / out, "the factor 1/2 is missing: d sqrt(a)/da = 1 / (2 sqrt(a)), and sqrt(a) is node."),
            (g / (2 * a), "divide by 2 * sqrt(a), which is 2 * node, not by 2 * a."),
            (g * out / 2, "d sqrt(a)/da = 1 / (2 sqrt(a)): divide by 2 * node rather than multiply."),
        ]
    elif name == "Abs":
        wrong = [
            (g, "the sign is missing: |a| falls as a grows where a < 0; the gradient is out_grad * sign(a)."),
            (g * out, "|a| is the output, not the slope: the gradient is out_grad * sign(a)."),
            (g * a, "the slope of |a| is sign(a), not a."),
        ]
    elif name == "ReLU":
        wrong = [
            (g, "the mask is missing: relu's slope is 1 where a > 0 and 0 where a < 0."),
            (g * (a < 0), "the mask is the wrong way round: relu's slope is 1 where a > 0."),
            (g * out, "relu's slope is 1 or 0, not its output."),
        ]
    elif name == "Sigmoid":
        wrong = [
            (g * out, "the factor (1 - s) is missing: with s = sigmoid(a) (node), the slope is s * (1 - s)."),
            (g * (1 - out), "the factor s is missing: with s = sigmoid(a) (node), the slope is s * (1 - s)."),
            (g * a * (1 - a), "use the output s (node), not the input a: the slope is s * (1 - s)."),
        ]
    elif name == "Tanh":
        wrong = [
            (g * (1 - out), "the square is missing: with t = tanh(a) (node), the slope is 1 - t**2."),
            (g * (1 - a * a), "use the output t (node), not the input a: the slope is 1 - t**2."),
        ]
    for array, hint in wrong:
        fitted = _fit(np.asarray(array, dtype=np.float64), case.arrays[i].shape)
        if fitted is not None:
            yield fitted, hint


_MISTAKES: dict[str, Callable[[_Case, int], Iterator[tuple[np.ndarray, str]]]] = {
    "MatMul": _matmul_mistakes,
    "Transpose": _transpose_mistakes,
    "Max": _max_mistakes,
    "Mean": _mean_mistakes,
}


def _usual_mistakes(case: _Case, i: int) -> Iterator[tuple[np.ndarray, str]]:
    """Wrong gradients for input ``i`` that the usual mistakes produce, each with its hint."""
    for j, (other, name) in enumerate(zip(case.numeric, case.names)):
        if j != i:
            yield other, (
                f"it is the gradient for input {j} ({name}): the operands are swapped, either in the "
                "order the gradients are returned (one per input, in the order forward takes them) "
                "or in the formulas."
            )
    yield case.numeric_ones()[i], (
        "it is the gradient for out_grad = 1 everywhere: multiply by out_grad. By the chain rule each "
        "input's gradient is out_grad times the op's local derivative."
    )
    yield from _MISTAKES.get(case.reference.name, _elementwise_mistakes)(case, i)


def _shape_hint(case: _Case, i: int, got: np.ndarray) -> str:
    name, shape, expected = case.names[i], case.arrays[i].shape, case.numeric[i]
    rule = " " + _matmul_rule(case.arrays[0].shape, case.arrays[1].shape, case.out.shape) \
        if case.reference.name == "MatMul" else ""
    if case.reference.name == "BroadcastTo":
        return (
            f"{name} of shape {shape} was broadcast to {case.out.shape}, and its gradient is out_grad "
            "summed over exactly the axes broadcasting added or stretched, which depend on both "
            f"shapes: that is unbroadcast(out_grad, {name}.shape), the function of exercise 12. A sum "
            "over one fixed axis (such as axis=0) fits only some shapes."
        )
    if rule and got.ndim >= 2 and len(shape) >= 2 and got.shape == _swap_last(shape):
        return f"the shape is the transpose of {name}'s: a product is transposed or in the wrong order.{rule}"
    if got.size > expected.size and _can_sum_to(got.shape, shape):
        summed_right = case.close(_sum_to_shape(got, shape), expected)
        return (
            f"{name} has shape {shape}, but it was broadcast to {got.shape}, and the gradient kept "
            f"that shape. Broadcasting uses each element of {name} several times, so its gradient is "
            f"the sum over the broadcast axes: unbroadcast(grad, {name}.shape)."
            + (" Summed that way, your numbers are right." if summed_right else "")
            + " (If the gradient already goes through your unbroadcast, its test says what to fix.)"
            + rule
        )
    kept = _kept_shape(shape, case.setting("axis")) if case.reference.name in _REDUCTIONS else shape
    if got.shape == kept != shape:  # reshaped for a reduction, and then not spread out
        spread = f"multiply it by the mask, of {name}'s shape {shape}" if case.reference.name == "Max" \
            else f"broadcast_to({shape})"
        return f"{kept} is the kept shape, the output's shape with keepdims=True: now {spread}."
    if got.shape == case.out.shape and got.size < expected.size:
        return (
            f"the gradient has the output's shape {case.out.shape}, not {name}'s {shape}. Every "
            f"element of {name} that went into an output element gets that element's out_grad: "
            f"reshape out_grad to the shape the output has with keepdims=True, then broadcast_to {shape}."
        )
    if got.size == expected.size and case.close(got.reshape(shape), expected):
        return f"the numbers are right, but the shape is not: reshape to {shape}.{rule}"
    return f"a gradient has the shape of its input, and {name} has shape {shape}.{rule}"


def _gradient_hint(case: _Case, i: int, got: np.ndarray) -> str | None:
    if case.close(-got, case.numeric[i]):  # before the list: for a - b, -g is also a's gradient
        return "every value has the wrong sign: look for a missing or extra minus."
    for wrong, hint in _usual_mistakes(case, i):
        if case.close(got, wrong):
            return hint
    if got.shape != case.numeric[i].shape:
        return _shape_hint(case, i, got)
    return None  # assert_close then names sign flips, constant factors, zeros, nan, transposes


def _forward_hint(case: _Case, got: np.ndarray) -> str | None:
    expected = case.out
    if len(case.arrays) == 2 and case.arrays[0].shape == case.arrays[1].shape:
        if case.close(got, case.reference.forward(case.arrays[1], case.arrays[0])):
            return f"the output is the op applied to ({case.names[1]}, {case.names[0]}): the operands are swapped."
    if got.shape != expected.shape and got.size == expected.size and case.close(got.reshape(expected.shape), expected):
        return f"the numbers are right, but the shape is not: it should be {expected.shape} (keepdims?)."
    return None


def _backward_error_hint(
    op: Function, reference: _Reference, shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], error: Exception
) -> str | None:
    """What to check when a backward raises, for the ops whose shapes are easy to get wrong."""
    if reference.name == "MatMul":
        return _matmul_rule(shapes[0], shapes[1], out_shape)
    if reference.name == "Transpose":
        return (
            "Tensor.transpose takes a tuple of axes, such as out_grad.transpose((2, 0, 1)); with "
            "axes=None, transpose reverses all axes, which out_grad.T does."
        )
    if reference.name in _REDUCTIONS:
        axis = getattr(op, "axis", getattr(reference.op, "axis", None))
        kept = _kept_shape(shapes[0], axis)
        # A TypeError or an IndexError (NumPy's AxisError is both an IndexError and a ValueError)
        # comes from code that takes axis for one kind of value, such as np.argmax, which takes
        # one int; a plain ValueError from shapes that do not broadcast.
        if isinstance(error, (TypeError, IndexError)):
            return (
                f"here axis={axis!r}. axis may be None (every axis), an int, or a tuple of ints, and "
                "negative ones count from the end; np.argmax and other NumPy functions that take "
                "a single axis fail on a tuple. kept_shape(a.shape, self.axis) handles every kind: "
                f"here it gives {kept}, the shape to reshape out_grad to"
                + (", and a.data == node.data.reshape(kept) marks the maximum for any axis."
                   if reference.name == "Max" else ".")
            )
        return (
            f"out_grad has the output's shape {out_shape}. To spread it over the input's shape "
            f"{shapes[0]}, first reshape it to the shape the output has with keepdims=True, {kept}, "
            f"then broadcast_to {shapes[0]}."
        )
    return None


def _compare(case: _Case, got: np.ndarray, expected: np.ndarray, what: str, hint: Callable[[], str | None]) -> None:
    if case.close(got, expected):
        return
    assert_close(got, expected, what, atol=case.atol, rtol=case.rtol, hint=hint())


def _gradient_list(returned: Any, label: str, names: list[str]) -> list[Any]:
    count = len(names)
    if count == 1 and not isinstance(returned, (tuple, list)):
        returned = (returned,)  # the engine accepts a lone gradient for a one-input op
    listed = ", ".join(names)
    example = "return (grad_a,)" if count == 1 else "return " + ", ".join(f"grad_{n}" for n in names)
    if not isinstance(returned, (tuple, list)):
        raise CheckFailure(
            f"{label}.backward returned a {type(returned).__name__}; it must return a tuple with one "
            f"gradient per input, here {count} ({listed}): `{example}`."
        )
    if len(returned) != count:
        raise CheckFailure(
            f"{label}.backward returned {len(returned)} gradient{'s' * (len(returned) != 1)}, but "
            f"{label} has {count} input{'s' * (count != 1)} ({listed}): return one gradient per "
            f"input, in the order forward takes them: `{example}`."
        )
    return list(returned)


# --- the checks ----------------------------------------------------------------------------------


def check_function(
    op_class: type,
    shapes: Sequence[Any],
    args: tuple = (),
    kwargs: dict[str, Any] | None = None,
    reference: Any = None,
    domain: str | Sequence[str] | None = None,
    seed: int = 0,
    atol: float = ATOL,
    rtol: float = RTOL,
    hidden: bool = False,
) -> None:
    """Check a learner's ``Function`` subclass: its forward, and its backward on every input.

    ``op_class(*args, **kwargs)`` is the op, applied to one random
    float64 Tensor per entry of ``shapes`` (``[(2, 3), (3,)]`` broadcasts). Its forward is compared
    with ``reference``: by default the op of :mod:`autodiff_ref.ops` with the same class name
    (compared case-insensitively) built with the same settings; or any ``Function`` subclass or
    instance, or a function of NumPy arrays. Its backward is called directly,
    ``op.backward(out_grad, node)``, with ``node`` the output Tensor the engine recorded and
    random ``out_grad``; each gradient must be a Tensor of its input's shape built from
    ``out_grad`` with Tensor operations, equal to the numeric gradient, and, for a reference op
    of :mod:`autodiff_ref.ops`, built from each input Tensor (or ``node``) that the reference's
    gradient is built from. ``forward`` must not change its inputs in place, nor ``backward``
    ``out_grad``, the inputs or ``node``. ``domain`` is where
    inputs are drawn (``"real"``, ``"positive"``, ``"unit"``; one for all inputs or one each),
    by default :data:`DOMAINS` of the reference op, else ``"real"``.
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    kwargs = dict(kwargs or {})
    if isinstance(op_class, Function):
        raise TypeError(
            f"check_function takes the op's class and builds it with args and kwargs; got an instance, "
            f"{op_class!r}: pass {type(op_class).__name__} and its settings in args= or kwargs="
        )
    if not (isinstance(op_class, type) and issubclass(op_class, Function)):
        raise TypeError(
            f"check_function needs a subclass of autodiff_ref.Function, got {op_class!r}; "
            "define the op as `class Name(Function):`"
        )
    reference_op = _resolve_reference(op_class, reference, args, kwargs)
    # The exercise is the backward; a subclass of the reference op may inherit its forward.
    reference_class = type(reference_op.op) if reference_op.op is not None else None
    if reference_class is not None and reference_class.__module__ != ops.__name__:
        reference_class = None  # the caller's own reference (a test's), not one a learner could import
    with own_work(op_class.__name__, op_class, reference_class, methods=("backward",)):
        op = op_class(*args, **kwargs)
        label = _label(op)
        shapes = as_shapes(shapes)
        if domain is None:
            domains = DOMAINS.get(reference_op.name, ("real",) * len(shapes))
        else:
            domains = (domain,) * len(shapes) if isinstance(domain, str) else tuple(domain)
        if len(domains) != len(shapes):
            raise ValueError(f"{len(shapes)} shapes but {len(domains)} domains for {label}")
        names = _input_names(type(op), len(shapes))
        shown = _show_shapes(names, shapes)

        rng = np.random.default_rng(seed)
        arrays = [_draw(shape, rng, where) for shape, where in zip(shapes, domains)]
        inputs = [Tensor(x, requires_grad=True) for x in arrays]
        node = _run(f"{label}.forward", shown, lambda: op(*inputs))
        changed = _changed_in_place(inputs, arrays, names)
        if changed:
            raise CheckFailure(
                f"{label}.forward changed its input {changed} in place; compute a new array instead "
                "(`a + b`, not `a += b`)."
            )
        expected = reference_op.forward(*[x.copy() for x in arrays])
        weights = random_array(expected.shape, rng, "real")
        numeric = numeric_grad(lambda *xs: np.sum(weights * reference_op.forward(*xs)), *arrays)
        case = _Case(label, op, names, arrays, expected, weights, numeric, reference_op, atol, rtol)

        got = np.asarray(node.data, dtype=np.float64)
        _compare(case, got, expected, f"{label}.forward ({shown}): the output", lambda: _forward_hint(case, got))

        # out_grad requires grad, so a gradient built from it with Tensor operations does too.
        out_grad = Tensor(weights, requires_grad=True)
        node_values = node.data.copy()
        # The engine made the recorded arrays read-only; writable again, a write in place by the
        # backward below is caught by the comparison after it, whose message says what to do.
        for array in [t.data for t in inputs] + [node.data]:
            with contextlib.suppress(ValueError):  # NumPy keeps some views read-only
                array.setflags(write=True)
        returned = _run(
            f"{label}.backward", shown, lambda: op.backward(out_grad, node),
            hint=lambda error: _backward_error_hint(op, reference_op, shapes, expected.shape, error),
        )
        changed = _changed_in_place(
            [out_grad, *inputs, node], [weights, *arrays, node_values], ["out_grad", *names, "node"]
        )
        if changed:
            shared = (
                "the engine may hand the same out_grad to several ops (Add returns it as the gradient "
                "of both its inputs)" if changed == "out_grad" else f"other ops read {changed} too"
            )
            raise CheckFailure(
                f"{label}.backward changed {changed} in place (its .data); {shared}, so a change made in "
                f"place corrupts another gradient. Compute a new Tensor instead (`out_grad * mask`, not "
                f"`{changed}.data[...] = 0`)."
            )
        grads = _gradient_list(returned, label, names)
        # Only the backward of an op of autodiff_ref.ops is known to build each gradient as it should.
        needed = [set()] * len(names)
        if reference_class is not None:
            needed = _inputs_each_gradient_uses(reference_op.op, arrays)
        for i, (name, grad) in enumerate(zip(names, grads)):
            what = f"{label}.backward ({shown}): the gradient for input {i} ({name})"
            if grad is None:
                raise CheckFailure(
                    f"{what} is None, but {name} requires a gradient (None is only for an input that "
                    "does not require grad)."
                )
            grad = _require_tensor(grad, what)
            got_grad = np.asarray(grad.data, dtype=np.float64)
            _compare(case, got_grad, numeric[i], what, lambda: _gradient_hint(case, i, got_grad))
            _require_graph(grad, what, "out_grad")
            _require_inputs(grad, what, inputs, needed[i], names)
        passed(f"{label}: forward matches {reference_op.description}, backward matches numeric gradients ({shown})",
               hidden=hidden)


def _unbroadcast_recipe(grad_shape: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """What summing ``grad_shape`` down to ``shape`` takes, step by step, for this case."""
    added = len(grad_shape) - len(shape)
    summed = grad_shape[added:]
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and summed[k] != 1)
    steps = []
    if added:
        axes = tuple(range(added))
        steps.append(f"sum over the added leading axes {axes} without keepdims, giving {summed}")
    if stretched:
        steps.append(
            f"sum over the stretched axes {stretched} (size 1 in shape) with keepdims=True, giving {shape}"
        )
    return f"Here, from {grad_shape} to {shape}: " + ("; then ".join(steps) or "nothing to sum") + "."


def _unbroadcast_hint(grad_shape: tuple[int, ...], shape: tuple[int, ...], got: np.ndarray) -> str | None:
    added = len(grad_shape) - len(shape)
    stretched = [n == 1 and grad_shape[added + k] != 1 for k, n in enumerate(shape)]
    recipe = " " + _unbroadcast_recipe(grad_shape, shape)
    if got.shape == shape:
        return None  # assert_close names a constant factor (a mean instead of a sum) and the like
    if got.shape == grad_shape:
        return "nothing was summed: the result still has grad's shape." + recipe
    if added and got.shape == (1,) * added + shape:
        return (
            "the added leading axes were summed with keepdims=True, so they are still there with "
            "size 1: sum them without keepdims." + recipe
        )
    if any(stretched) and got.shape == grad_shape[added:]:
        return "the stretched axes were not summed: shape has 1 there, but grad has more." + recipe
    if any(stretched) and got.shape == tuple(n for n, s in zip(shape, stretched) if not s):
        return (
            "the stretched axes were summed without keepdims=True, so they disappeared; shape has 1 "
            "there, so they must stay." + recipe
        )
    if added and got.shape == grad_shape[:added] + shape:
        return "the leading axes that broadcasting added were not summed." + recipe
    return f"the result must have shape {shape}." + recipe


def check_unbroadcast(
    unbroadcast: Callable[[Tensor, tuple[int, ...]], Tensor],
    cases: Sequence[tuple[tuple[int, ...], tuple[int, ...]]] = UNBROADCAST_CASES,
    seed: int = 0,
    hidden: bool = False,
) -> None:
    """Check a learner's ``unbroadcast(grad, shape)`` on each ``(grad shape, shape)`` of ``cases``.

    The result must be a Tensor of ``shape``: ``grad`` summed over the leading axes broadcasting
    added and over the axes where ``shape`` has 1 but ``grad`` has more, built from ``grad`` with
    Tensor operations.
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    with own_work("unbroadcast", unbroadcast, ops.unbroadcast):
        rng = np.random.default_rng(seed)
        for grad_shape, shape in cases:
            grad_shape, shape = tuple(grad_shape), tuple(shape)
            g = random_array(grad_shape, rng, "real")
            grad = Tensor(g, requires_grad=True)
            what = f"unbroadcast(grad of shape {grad_shape}, {shape})"
            result = _require_tensor(_run("unbroadcast", what, lambda: unbroadcast(grad, shape)), what)
            got = np.asarray(result.data, dtype=np.float64)
            expected = _sum_to_shape(g, shape)
            if got.shape != expected.shape or not np.allclose(got, expected, atol=ATOL, rtol=RTOL):
                assert_close(got, expected, what, hint=_unbroadcast_hint(grad_shape, shape, got))
            _require_graph(result, what, "grad")
        shown = ", ".join(f"{g} -> {s}" for g, s in cases)
        passed(f"unbroadcast sums over added and stretched axes: {shown}", hidden=hidden)
