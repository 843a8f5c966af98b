"""Checks for notebook 06: the backward pass over ``autodiff_ref`` Tensor graphs.

The learner writes the engine as plain functions over the reference :class:`~autodiff_ref.Tensor`
(a tensor has ``.op``, the ``Function`` that made it, and ``.inputs``; ``op.backward(out_grad,
node)`` gives one gradient per input). Each check runs one of those functions on graphs built
here, compares what it does with ``autodiff_ref`` and with numeric gradients (central differences
in float64), and raises :class:`~autodiff_ref.testing.core.CheckFailure` with a message that names
the graph, the tensor, the expected and the actual values, and the likely mistake.

* :func:`check_tensor_topological_order` — ``topological_order(root)``: any valid order passes;
  a chain of 3,000 ops or more (:func:`deep_chain_length`) rules out recursion.
* :func:`check_accumulate_grad` — ``accumulate_grad(tensor, grad)``: adds to ``.grad``, and stores
  an array of its own.
* :func:`check_backward_pass` — ``backward(root, grad=None)``: a tensor used twice, a diamond,
  broadcasting, constants, non-scalar roots, a chain of 3,000 ops or more, and a second call.
* :func:`check_straight_through` — rounding whose backward is the identity, made with ``detach``.
* :func:`check_numeric_gradient` — central differences over every element of an array.
* :func:`check_gradcheck` — the learner's ``gradcheck`` passes correct ops and rejects wrong
  backwards, one of them wrong only away from the all-ones direction (random projection needed).
* :func:`check_hvp` — a Hessian-vector product against finite differences of the gradient.
* :func:`backward_or_reference`, :func:`hvp_or_reference` — the learner's function once it passes
  its check, else the reference, so that later demonstration cells run for everybody.

(The names say "tensor" and "pass" because ``check_topological_order`` and ``check_backward``
already check the notebooks' graph and scalar engines.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..gradcheck import gradcheck as reference_gradcheck
from ..gradcheck import numeric_grad
from ..graph import topological_order as reference_topological_order
from ..ops import unbroadcast
from ..tensor import Function, Tensor, _backpropagate, grad, is_grad_enabled, no_grad
from .core import (ATOL, RTOL, CheckFailure, deep_chain_length, format_index, guess_mistake, own_work,
                   random_array, watched, yours_or_reference)

__all__ = [
    "check_tensor_topological_order",
    "check_accumulate_grad",
    "check_backward_pass",
    "backward_or_reference",
    "check_straight_through",
    "check_numeric_gradient",
    "check_gradcheck",
    "check_hvp",
    "hvp_or_reference",
]

# The reference engine's backward pass, in each form a learner could call it: the exercises of
# accumulating and propagating gradients may not hand their work to it.
_REFERENCE_BACKWARD = (Tensor.backward, _backpropagate, grad)

_RECURSION_HINT = (
    "Python allows only about a thousand nested calls, and a recursive walk makes one per node. "
    "Walk the graph with an explicit stack (a list you append to and pop from) instead."
)


# --- calling learner code --------------------------------------------------------------------------


def _failure(error: Exception, what: str, hint: str | None = None) -> CheckFailure:
    """The CheckFailure to raise when learner code called as ``what`` raised ``error``."""
    if isinstance(error, NotImplementedError):
        return CheckFailure(
            f"{what} raised NotImplementedError: it (or a function it calls) is not written yet.\n"
            "  Hint: replace `raise NotImplementedError()` with your code, run that cell, then "
            "run this test again."
        )
    if isinstance(error, RecursionError):
        return CheckFailure(f"{what} raised RecursionError.\n  Hint: {_RECURSION_HINT}")
    return CheckFailure(
        f"{what} raised {type(error).__name__}: {error}" + (f"\n  Hint: {hint}" if hint else "")
    )


def _call(function: Callable[..., Any], *args: Any, what: str,
          explain: Callable[[Exception], str | None] | None = None) -> Any:
    """``function(*args)``, with any exception turned into a CheckFailure that names ``what``.

    ``explain(error)`` may name the likely mistake behind an unexpected exception.
    """
    try:
        return watched(function, *args)
    except CheckFailure:
        raise
    except Exception as error:
        explained = explain and not isinstance(error, (NotImplementedError, RecursionError))
        raise _failure(error, what, explain(error) if explained else None) from error


def returned_array(got: Any, what: str, should: str = "a NumPy array") -> np.ndarray:
    """What learner code returned, as a float64 array (a Tensor's data); fails with what came back
    instead (None, most often a missing ``return``)."""
    if got is None:
        raise CheckFailure(f"{what} returned None; it should return {should}: did you forget a `return`?")
    if isinstance(got, Tensor):
        got = got.data
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(f"{what} returned {got!r}; it should return {should}.") from None


def _close(got: np.ndarray, expected: np.ndarray, atol: float = ATOL, rtol: float = RTOL) -> bool:
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return got.shape == expected.shape and bool(np.allclose(got, expected, atol=atol, rtol=rtol))


def _difference(got: np.ndarray, expected: np.ndarray) -> str:
    """Where ``got`` and ``expected`` differ most, in one line."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected shape {expected.shape}"
    excess = np.abs(got - expected) - (ATOL + RTOL * np.abs(expected))
    excess = np.where(np.isnan(excess), np.inf, excess)
    index = np.unravel_index(int(np.argmax(excess)), got.shape) if got.ndim else ()
    index = tuple(int(i) for i in index)
    where = f"element {format_index(index)}" if got.ndim else "its only element"
    count = f"{int(np.sum(excess > 0))} of {got.size} elements differ; " if got.ndim else ""
    return f"{count}at {where} expected {expected[index]:.6g}, got {got[index]:.6g}"


# --- test graphs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    name: str
    shape: tuple[int, ...]
    domain: str = "real"
    requires_grad: bool = True


@dataclass(frozen=True)
class _Graph:
    text: str
    leaves: tuple[_Leaf, ...]
    build: Callable[..., Tensor]  # the leaves as keyword arguments -> the root
    given_grad: bool = False  # backward(root, grad) with a random grad, rather than backward(root)


def _stacked_diamonds(x: Tensor) -> Tensor:
    # Each level uses the one below twice, so a walk that does not skip visited tensors makes
    # 2**16 visits and lists tensors many times over.
    for _ in range(16):
        x = x.tanh() + x.exp() * 0.1
    return x.sum()


_GRAPHS = (
    _Graph("out = (x + x).sum() (x used twice)", (_Leaf("x", (3,)),), lambda x: (x + x).sum()),
    _Graph("out = (x * x).sum()", (_Leaf("x", (3,)),), lambda x: (x * x).sum()),
    _Graph(
        "out = (w1 * x + w2 * x).sum() (x feeds two products)",
        (_Leaf("w1", (2, 2)), _Leaf("w2", (2, 2)), _Leaf("x", (2, 2))),
        lambda w1, w2, x: (w1 * x + w2 * x).sum(),
    ),
    _Graph(
        "a diamond: h = x * y; out = (tanh(h) + exp(h)).sum()",
        (_Leaf("x", (3,), "unit"), _Leaf("y", (3,))),
        lambda x, y: (lambda h: (h.tanh() + h.exp()).sum())(x * y),
    ),
    _Graph(
        "x used at two depths: h = x * y; out = (h * (h + x)).sum()",
        (_Leaf("x", (3,)), _Leaf("y", (3,))),
        lambda x, y: (lambda h: (h * (h + x)).sum())(x * y),
    ),
    _Graph(
        "broadcasting: out = ((x + y) * y).sum() with x of shape (3, 1) and y of shape (4,)",
        (_Leaf("x", (3, 1)), _Leaf("y", (4,))),
        lambda x, y: ((x + y) * y).sum(),
    ),
    _Graph(
        "a layer: out = tanh(X @ W + b).mean() (b broadcast over the rows; X is data without grad)",
        (_Leaf("X", (5, 3), requires_grad=False), _Leaf("W", (3, 4), "unit"), _Leaf("b", (4,), "unit")),
        lambda X, W, b: (X @ W + b).tanh().mean(),
    ),
    _Graph(
        "constants: out = (c * x ** 2 + 3).sum() (c is a tensor without grad)",
        (_Leaf("c", (3,), requires_grad=False), _Leaf("x", (3,))),
        lambda c, x: (c * x**2 + 3).sum(),
    ),
    _Graph(
        "out = x * y + x (a root of shape (2, 3))",
        (_Leaf("x", (2, 3)), _Leaf("y", (2, 3))),
        lambda x, y: x * y + x,
    ),
    _Graph(
        "out = tanh(x @ W) (a root of shape (2, 4)) with a given grad",
        (_Leaf("x", (2, 3), "unit"), _Leaf("W", (3, 4), "unit")),
        lambda x, W: (x @ W).tanh(),
        given_grad=True,
    ),
)
# More cases, for hidden tests: a gradient that lands twice on one element, a coupled reduction, a
# small network with relu, a root that is itself a leaf, and a one-element root that is not 0-d.
_MORE_GRAPHS = (
    _Graph(
        "indexing that picks x[0] twice: out = (x[[0, 0, 2]] * y).sum()",
        (_Leaf("x", (3,)), _Leaf("y", (3,))),
        lambda x, y: (x[[0, 0, 2]] * y).sum(),
    ),
    _Graph(
        "out = (log_softmax(x, axis=1) * y).sum() with x of shape (2, 4)",
        (_Leaf("x", (2, 4)), _Leaf("y", (2, 4))),
        lambda x, y: (x.log_softmax(axis=1) * y).sum(),
    ),
    _Graph(
        "two layers: out = (relu(X @ W1 + b1) @ W2).mean() (X is data without grad)",
        (_Leaf("X", (4, 3), requires_grad=False), _Leaf("W1", (3, 5)), _Leaf("b1", (5,)),
         _Leaf("W2", (5, 2))),
        lambda X, W1, b1, W2: ((X @ W1 + b1).relu() @ W2).mean(),
    ),
    _Graph("a root that is a leaf: out = x", (_Leaf("x", (2, 2)),), lambda x: x),
    _Graph(
        "out = x @ y of shape (1, 1)",
        (_Leaf("x", (1, 3)), _Leaf("y", (3, 1))),
        lambda x, y: x @ y,
    ),
)


def _chain_graph(length: int) -> _Graph:
    """A chain of ``length`` ops (:func:`deep_chain_length`), which a recursive walk cannot finish."""

    def chain(x: Tensor) -> Tensor:
        for _ in range(length):
            x = x * 1.0001
        return x.sum()

    return _Graph(f"a chain of {length:,} ops: out = (1.0001 * (1.0001 * (... * x))).sum()",
                  (_Leaf("x", (2,)),), chain)


_STACKED_GRAPH = _Graph(
    "16 stacked diamonds: x = tanh(x) + 0.1 * exp(x) 16 times; out = x.sum()",
    (_Leaf("x", (2,), "unit"),), _stacked_diamonds,
)


@dataclass
class _Built:
    """One graph built on random leaves, with names for the tensors a message may mention."""

    graph: _Graph
    leaves: dict[str, Tensor]
    root: Tensor
    names: dict[int, str]

    @property
    def text(self) -> str:
        return self.graph.text

    def describe(self, tensor: Tensor) -> str:
        if id(tensor) in self.names:
            return self.names[id(tensor)]
        if tensor.op is None:
            return f"a constant of shape {tensor.shape} (made from a Python number)"
        return f"the output of {type(tensor.op).__name__} (shape {tensor.shape})"


def _build(graph: _Graph, rng: np.random.Generator) -> _Built:
    leaves = {
        leaf.name: Tensor(random_array(leaf.shape, rng, leaf.domain), requires_grad=leaf.requires_grad)
        for leaf in graph.leaves
    }
    root = graph.build(**leaves)
    names = {id(tensor): f"the leaf {name}" for name, tensor in leaves.items()}
    names[id(root)] = "out (the root)"
    return _Built(graph, leaves, root, names)


# --- topological order -----------------------------------------------------------------------------


_POST_ORDER_HINT = (
    "append a tensor only after all of its inputs, not when you first reach it: push it back on "
    "the stack marked as 'inputs done' before pushing its inputs, and append it to the order when "
    "you pop it the second time."
)


def _check_order(built: _Built, order: Any) -> None:
    what = f"topological_order(out) for {built.text}"
    try:
        order = list(order)
    except TypeError:
        raise CheckFailure(
            f"{what} returned {type(order).__name__}, not a list of tensors.\n"
            "  Hint: build a list and return it."
        ) from None
    for item in order:
        if not isinstance(item, Tensor):
            raise CheckFailure(
                f"{what} returned a list holding {type(item).__name__} {item!r}; it should hold the "
                "Tensors themselves.\n  Hint: append the node, not its id or its data."
            )
    expected = reference_topological_order(built.root)
    expected_ids = {id(t) for t in expected}
    position: dict[int, int] = {}
    for index, tensor in enumerate(order):
        if id(tensor) in position:
            raise CheckFailure(
                f"{what} lists {built.describe(tensor)} twice (at positions {position[id(tensor)]} "
                f"and {index}).\n  Hint: a tensor used by several ops is reached once per use; keep "
                "a set of the ids you have visited and skip a tensor the second time."
            )
        if id(tensor) not in expected_ids:
            raise CheckFailure(
                f"{what} lists {built.describe(tensor)}, which out does not depend on.\n"
                "  Hint: follow .inputs from out, nothing else."
            )
        position[id(tensor)] = index
    missing = [t for t in expected if id(t) not in position]
    if missing:
        leaves_missing = all(t.op is None for t in missing)
        raise CheckFailure(
            f"{what} leaves out {len(missing)} of the {len(expected)} tensors, e.g. "
            f"{built.describe(missing[0])}.\n  Hint: "
            + ("list the leaves too (tensors whose .inputs is empty), constants included."
               if leaves_missing else "follow .inputs all the way down to the leaves.")
        )
    if order[-1] is not built.root:
        reversed_is_valid = order[0] is built.root and all(
            position[id(t)] > position[id(tensor)] for tensor in order for t in tensor.inputs
        )
        raise CheckFailure(
            f"{what} ends with {built.describe(order[-1])}; out itself must come last, after "
            "everything it depends on.\n  Hint: "
            + ("your list starts with out: it is in reverse. List each tensor after its inputs "
               "(backward then walks reversed(order))." if reversed_is_valid else _POST_ORDER_HINT)
        )
    for tensor in order:
        for tensor_input in tensor.inputs:
            if position[id(tensor_input)] > position[id(tensor)]:
                raise CheckFailure(
                    f"{what} lists {built.describe(tensor)} at position {position[id(tensor)]}, "
                    f"before its input {built.describe(tensor_input)} at position "
                    f"{position[id(tensor_input)]}.\n  Hint: {_POST_ORDER_HINT}"
                )


def check_tensor_topological_order(
    topological_order: Callable[[Tensor], Any], *, seed: int = 0, more: bool = False
) -> None:
    """``topological_order(root)`` must list every tensor ``root`` depends on once, inputs first.

    Any valid order passes. Constants and data (tensors without grad) count: they are inputs too.
    The graphs: a single leaf, every graph of :func:`check_backward_pass`, 16 stacked diamonds (a
    walk that does not skip visited tensors lists them many times), and a chain of 3,000 ops or
    more (a recursive walk hits Python's recursion limit: :func:`deep_chain_length`). ``more``
    adds the extra graphs of :func:`check_backward_pass`.
    """
    with own_work("topological_order", topological_order, reference_topological_order):
        rng = np.random.default_rng(seed)
        single = Tensor(random_array((2,), rng), requires_grad=True)
        cases = [_Built(_Graph("a graph that is a single leaf x", (), lambda: single), {"x": single}, single,
                        {id(single): "the leaf x (also the root)"})]
        graphs = _GRAPHS + (_MORE_GRAPHS if more else ()) + (_STACKED_GRAPH, _chain_graph(deep_chain_length()))
        cases += [_build(graph, rng) for graph in graphs]
        for built in cases:
            order = _call(topological_order, built.root, what=f"topological_order(out) for {built.text}")
            _check_order(built, order)


# --- accumulate_grad -------------------------------------------------------------------------------

_COPY_HINT = (
    "store an array of your own the first time (tensor.grad = np.array(grad), which copies). The "
    "same array is often handed to several tensors (Add passes its gradient on unchanged to both "
    "inputs), and it may be a read-only view; adding to it in place later would change, or fail "
    "for, every tensor that shares it."
)


def _explain_accumulate_error(error: Exception) -> str | None:
    """The likely mistake behind an exception that accumulate_grad raised, if one fits."""
    if "read-only" in str(error):
        return _COPY_HINT
    if isinstance(error, TypeError) and "NoneType" in str(error):
        return ("the first time, tensor.grad is None, and None + grad fails: when tensor.grad is "
                "None, store a copy (tensor.grad = np.array(grad)); add only after that.")
    return None


def _check_left_alone(grad: np.ndarray, kept: np.ndarray, call: str, hint: str) -> None:
    """Fails if ``call`` changed the array ``grad`` it was given; ``kept`` is a copy from before."""
    if not np.array_equal(grad, kept):
        raise CheckFailure(f"{call} changed the array grad that it was given.\n  Hint: {hint}")


def check_accumulate_grad(accumulate_grad: Callable[[Tensor, np.ndarray], Any], *, seed: int = 0) -> None:
    """``accumulate_grad(tensor, grad)`` must add the array ``grad`` to ``tensor.grad``.

    ``tensor.grad`` is None until the first call, which stores a copy of ``grad`` (never ``grad``
    itself: other tensors may hold the same array); later calls add. Tried on a matrix, on a 0-d
    tensor, and with a read-only broadcast view as ``grad``.
    """
    with own_work("accumulate_grad", accumulate_grad, None, also=_REFERENCE_BACKWARD):
        rng = np.random.default_rng(seed)
        for shape in ((2, 3), ()):
            tensor = Tensor(random_array(shape, rng), requires_grad=True)
            first, second = random_array(shape, rng), random_array(shape, rng)
            first_kept, second_kept = first.copy(), second.copy()
            where = f"a tensor of shape {shape}"
            _call(accumulate_grad, tensor, first,
                  what=f"accumulate_grad(tensor, grad) on {where} with .grad None",
                  explain=_explain_accumulate_error)
            got = tensor.grad
            if got is None:
                raise CheckFailure(
                    f"after accumulate_grad(tensor, grad) on {where}, tensor.grad is still None.\n"
                    "  Hint: when tensor.grad is None, store (a copy of) grad in it."
                )
            if isinstance(got, Tensor):
                raise CheckFailure(
                    f"after accumulate_grad on {where}, tensor.grad is a Tensor; .grad holds a NumPy "
                    "array.\n  Hint: grad is already an array: store np.array(grad)."
                )
            _check_left_alone(first, first_kept, f"accumulate_grad on {where}", _COPY_HINT)
            if not _close(got, first_kept):
                raise CheckFailure(
                    f"after one accumulate_grad(tensor, grad) on {where}, tensor.grad is wrong: "
                    f"{_difference(got, first_kept)}.\n"
                    "  Hint: with .grad None, the result is grad itself."
                )
            if isinstance(got, np.ndarray) and np.shares_memory(got, first):
                raise CheckFailure(
                    f"after accumulate_grad(tensor, grad) on {where}, tensor.grad is the array grad "
                    f"itself (or a view of it), not a copy.\n  Hint: {_COPY_HINT}"
                )
            again = f"a second accumulate_grad on {where}"
            _call(accumulate_grad, tensor, second, what=again, explain=_explain_accumulate_error)
            _check_left_alone(second, second_kept, again,
                              "grad may be shared with other tensors: add it into tensor.grad, your "
                              "own array (tensor.grad += grad, or tensor.grad = tensor.grad + grad), "
                              "and leave grad as it is.")
            total = first_kept + second_kept
            if not _close(tensor.grad, total):
                hint = ("tensor.grad was replaced by the new grad: add it (tensor.grad + grad) instead."
                        if _close(tensor.grad, second_kept) else None)
                raise CheckFailure(
                    f"after two accumulate_grad calls on {where}, tensor.grad should be the sum of both "
                    f"grads: {_difference(tensor.grad, total)}." + (f"\n  Hint: {hint}" if hint else "")
                )
        tensor = Tensor(np.zeros((2, 3)), requires_grad=True)
        view = np.broadcast_to(np.arange(3.0), (2, 3))  # read-only, as a Sum's backward hands it on
        what = "accumulate_grad called twice with a read-only broadcast view as grad"
        for _ in range(2):
            _call(accumulate_grad, tensor, view, what=what, explain=_explain_accumulate_error)
        if not _close(tensor.grad, 2 * view):
            raise CheckFailure(f"after {what}, tensor.grad is wrong: {_difference(tensor.grad, 2 * view)}.")


# --- backward --------------------------------------------------------------------------------------


def _walk(root: Tensor, seed: np.ndarray, *, overwrite: bool) -> dict[int, np.ndarray]:
    """d root / d tensor for every tensor that requires grad, keyed by id, by the reference rules.

    With ``overwrite`` each share replaces what the ledger holds instead of adding to it: the
    usual slip, simulated so that a check can recognise its numbers.
    """
    ledger = {id(root): Tensor(seed)}
    found: dict[int, np.ndarray] = {}
    with no_grad():
        for node in reversed(reference_topological_order(root)):
            node_grad = ledger.pop(id(node), None)
            if node_grad is None:
                continue
            found[id(node)] = node_grad.data
            if node.op is None:
                continue
            for tensor, input_grad in zip(node.inputs, node.op.backward(node_grad, node)):
                if input_grad is None or not tensor.requires_grad:
                    continue
                if overwrite or id(tensor) not in ledger:
                    ledger[id(tensor)] = input_grad
                else:
                    ledger[id(tensor)] = ledger[id(tensor)] + input_grad
    return found


def _is_array_missing_tensor_method(error: Exception) -> bool:
    """Whether ``error`` is a NumPy array (or number) asked for a method that only Tensors have."""
    return (isinstance(error, AttributeError) and isinstance(error.obj, (np.ndarray, np.generic))
            and error.name is not None and hasattr(Tensor, error.name))


def _explain_backward_error(built: _Built) -> Callable[[Exception], str | None]:
    def explain(error: Exception) -> str | None:
        text = str(error)
        if isinstance(error, AttributeError) and error.obj is None and error.name == "backward":
            return ("a leaf has op None: call op.backward only for tensors an op made, and go on to "
                    "the next tensor when tensor.op is None.")
        if _is_array_missing_tensor_method(error):
            return ("a NumPy array is where a Tensor belongs: an op's backward computes with Tensor "
                    "methods, so its out_grad must be a Tensor. Wrap the seed, {id(root): Tensor(seed)}, "
                    "and pass op.backward the Tensor total, not total.data.")
        # None + array: NumPy adds None to each element, a float. So .grad is still None here.
        if "for +: 'NoneType' and 'float'" in text or "for +=: 'NoneType'" in text:
            return ("accumulate_grad: the first time, tensor.grad is None, and None + grad fails: "
                    "when tensor.grad is None, store a copy; add only after that.")
        if isinstance(error, (TypeError, AttributeError)) and "NoneType" in text:
            return ("an op's backward returns None for an input that does not require grad (the "
                    "exponent 2 in x ** 2, the data X in X @ W): skip such inputs.")
        if "read-only" in text:
            return "accumulate_grad: " + _COPY_HINT
        if "__array_ufunc__" in text:
            return ("a NumPy array met a Tensor: .grad holds arrays, so pass accumulate_grad the "
                    "array total.data, not the Tensor total.")
        if isinstance(error, KeyError):
            return ("a tensor had no entry in the ledger when it was visited. Walk "
                    "reversed(topological_order(root)), so that every op that uses a tensor has sent "
                    "its share before the tensor is visited, and skip a tensor that received nothing "
                    "(ledger.pop(id(node), None)).")
        if built.root.shape != () and not built.graph.given_grad:
            return (f"out has shape {built.root.shape}: the seed must be np.ones(root.shape), an "
                    "array of that shape, wrapped in a Tensor for the ops' backward.")
        return None

    return explain


def _backward_hint(built: _Built, got: dict[str, Any], seed: np.ndarray) -> str | None:
    """The usual mistake that explains the leaves' wrong gradients, if one does."""
    names = {leaf.name for leaf in built.graph.leaves if leaf.requires_grad}

    def matches(found: dict[int, np.ndarray]) -> bool:
        return all(
            got[name] is not None and id(built.leaves[name]) in found
            and _close(got[name], found[id(built.leaves[name])])
            for name in names
        )

    if matches(_walk(built.root, seed, overwrite=True)):
        return ("a tensor used more than once got one share instead of the sum of its shares (for "
                "x + x, 1 instead of 2). Either the shares are overwritten: add each share to what "
                "the ledger already holds for that tensor. Or the tensor was visited before every op "
                "that uses it had sent its share: walk reversed(topological_order(root)), with a "
                "topological_order that passes its test.")
    if built.graph.given_grad and matches(_walk(built.root, np.ones_like(seed), overwrite=False)):
        return "backward(root, grad) ignored grad: seed the root with the grad it was given."
    nothing = all(got[name] is None or not np.any(got[name]) for name in names)
    root_grad = built.root.grad
    if nothing and (root_grad is None or not np.any(root_grad)):
        return ("nothing reached the leaves, not even the root: seed the ledger with the gradient of "
                "the root, ones of root's shape when grad is None.")
    if nothing:
        return ("the root has its gradient but nothing reached the leaves: visit the tensors in "
                "reversed(topological_order(root)), root first, so that each tensor's gradient is "
                "complete before it is passed on to its inputs.")
    return None


def _leaf_table(built: _Built, got: dict[str, Any], expected: dict[str, np.ndarray]) -> str:
    lines = []
    for name, want in expected.items():
        have = got[name]
        if have is None:
            lines.append(f"    ✗ {name}.grad is None: no gradient was stored")
        elif _close(have, want):
            lines.append(f"    ✓ {name}.grad")
        else:
            lines.append(f"    ✗ {name}.grad: {_difference(have, want)}")
    return "\n".join(lines)


def _grad_of(tensor: Tensor, built: _Built, after: str) -> np.ndarray | None:
    value = tensor.grad
    if value is None:
        return None
    if isinstance(value, Tensor):
        raise CheckFailure(
            f"{after}, {built.describe(tensor)} has a Tensor in .grad; .grad holds a NumPy array.\n"
            "  Hint: the ledger holds Tensors (the ops' backward needs them); store their .data."
        )
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(f"{after}, {built.describe(tensor)}.grad is {value!r}, not an array.") from None


@dataclass
class _FirstCall:
    built: _Built
    seed: np.ndarray
    first: dict[int, np.ndarray]  # every grad after the first call, by id


def _numeric_leaf_grads(built: _Built, seed: np.ndarray) -> dict[str, np.ndarray]:
    graph = built.graph
    varying = [leaf.name for leaf in graph.leaves if leaf.requires_grad]
    fixed = {leaf.name: built.leaves[leaf.name].data for leaf in graph.leaves if not leaf.requires_grad}

    def projected(*arrays: np.ndarray) -> float:
        with no_grad():
            tensors = {name: Tensor(a) for name, a in fixed.items()}
            tensors.update((name, Tensor(a)) for name, a in zip(varying, arrays))
            return float(np.sum(graph.build(**tensors).data * seed))

    numeric = numeric_grad(projected, *[built.leaves[name].data for name in varying])
    return dict(zip(varying, numeric))


def _call_backward(backward: Callable[..., Any], built: _Built, seed: np.ndarray, what: str) -> None:
    args = (built.root, seed.copy()) if built.graph.given_grad else (built.root,)
    _call(backward, *args, what=what, explain=_explain_backward_error(built))


def _check_first_backward(backward: Callable[..., Any], built: _Built, rng: np.random.Generator) -> _FirstCall:
    root = built.root
    seed = rng.standard_normal(root.shape) if built.graph.given_grad else np.ones(root.shape)
    call = "backward(out, grad)" if built.graph.given_grad else "backward(out)"
    what = f"{call} on {built.text}"
    numeric = _numeric_leaf_grads(built, seed)
    with no_grad():
        reference = {id(node): g.data for node, g in _backpropagate(root, Tensor(seed))}
    _call_backward(backward, built, seed, what)
    after = f"after {what}"

    tensors = reference_topological_order(built.root)
    for tensor in tensors:
        if not tensor.requires_grad and tensor.grad is not None:
            raise CheckFailure(
                f"{after}, {built.describe(tensor)} has a .grad, but it does not require grad.\n"
                "  Hint: skip inputs whose requires_grad is False: nobody asked for their gradient, "
                "and data such as a batch of images would waste memory on it."
            )
    got = {name: _grad_of(built.leaves[name], built, after) for name in numeric}
    if not all(got[name] is not None and _close(got[name], numeric[name]) for name in numeric):
        hint = _backward_hint(built, got, seed)
        raise CheckFailure(
            f"{after}, the leaves' gradients are wrong (expected: numeric gradients):\n"
            + _leaf_table(built, got, numeric) + (f"\n  Hint: {hint}" if hint else "")
        )
    first = {}
    for tensor in tensors:
        if not tensor.requires_grad or tensor is root:
            continue
        have = _grad_of(tensor, built, after)
        if have is None:
            raise CheckFailure(
                f"{after}, {built.describe(tensor)} has .grad None.\n  Hint: fill .grad of every "
                "tensor that requires grad, those between the leaves and the root included."
            )
        if not _close(have, reference[id(tensor)]):
            raise CheckFailure(
                f"{after}, .grad of {built.describe(tensor)} is wrong (expected: autodiff_ref's "
                f"backward): {_difference(have, reference[id(tensor)])}."
            )
        first[id(tensor)] = have.copy()
    root_grad = _grad_of(root, built, after)
    if root_grad is None or not _close(root_grad, seed):
        raise CheckFailure(
            f"{after}, out.grad " + ("is None" if root_grad is None else f"is wrong: {_difference(root_grad, seed)}")
            + ".\n  Hint: the root's own gradient is the seed (d out / d out): "
            + ("the grad it was given." if built.graph.given_grad else "ones of its shape.")
            + " Add it to out.grad like every other tensor's."
        )
    first[id(root)] = root_grad.copy()
    if len(tensors) < 100:
        _check_own_arrays(built, tensors, after)
    return _FirstCall(built, seed, first)


def _check_own_arrays(built: _Built, tensors: list[Tensor], after: str) -> None:
    holders = [t for t in tensors if isinstance(t.grad, np.ndarray)]
    for tensor in holders:
        if not tensor.grad.flags.writeable:
            raise CheckFailure(
                f"{after}, .grad of {built.describe(tensor)} is a read-only array.\n"
                f"  Hint: accumulate_grad: {_COPY_HINT}"
            )
    for i, first in enumerate(holders):
        for second in holders[i + 1:]:
            if np.shares_memory(first.grad, second.grad):
                raise CheckFailure(
                    f"{after}, {built.describe(first)} and {built.describe(second)} share one array "
                    f"as .grad.\n  Hint: accumulate_grad: {_COPY_HINT}"
                )


def _check_second_backward(backward: Callable[..., Any], run: _FirstCall) -> None:
    built = run.built
    call = "backward(out, grad)" if built.graph.given_grad else "backward(out)"
    what = f"a second {call} on {built.text}"
    _call_backward(backward, built, run.seed, what)
    for tensor in reference_topological_order(built.root):
        if id(tensor) not in run.first:
            continue
        again = _grad_of(tensor, built, f"after {what}")
        once = run.first[id(tensor)]
        if again is not None and _close(again, 2 * once):
            continue
        if again is not None and _close(again, once):
            hint = ("backward replaced .grad instead of adding to it: add each call's gradient to "
                    ".grad (accumulate_grad), so that gradients accumulate across calls as in "
                    "PyTorch. A training loop sets .grad back to None itself.")
        elif again is not None and _close(again, 3 * once):
            hint = f"accumulate_grad: {_COPY_HINT}"
        else:
            hint = ("a second call should add exactly the first call's gradients again: collect "
                    "each call's gradients in a fresh ledger, and add them to .grad at the end.")
        raise CheckFailure(
            f"after {what}, .grad of {built.describe(tensor)} should have doubled, but it "
            + ("is None" if again is None else f"did not: {_difference(again, 2 * once)}")
            + f".\n  Hint: {hint}"
        )


def check_backward_pass(
    backward: Callable[..., Any], *, seed: int = 0, deep: bool = True, more: bool = False
) -> None:
    """``backward(root, grad=None)`` must add d root / d t to ``t.grad`` for every tensor ``t``
    in the graph that requires grad (root and intermediate tensors included).

    ``grad`` is the gradient flowing into the root; None means ones of the root's shape. Tensors
    that do not require grad keep ``.grad`` None. The graphs: ``x + x``, ``x * x`` and
    ``w1*x + w2*x`` (a tensor used twice), a diamond, a tensor used at two depths, broadcasting,
    a layer on data that needs no gradient, constants, a root of shape (2, 3) without and with a
    given ``grad``, and (``deep``) a chain of 3,000 ops or more (:func:`deep_chain_length`);
    ``more`` adds indexing that picks one element twice, log_softmax, two layers with relu, a
    root that is a leaf, and a root of shape (1, 1). Leaves are compared with numeric
    gradients, every other tensor with autodiff_ref; no two ``.grad`` may share memory; then a
    second call must double every gradient. Last, the two rules the notebook states besides: a
    ``grad`` of the wrong shape raises a ValueError that names both shapes, and the ops' backward
    methods run under ``no_grad()``.
    """
    with own_work("backward", backward, _reference_backward, also=_REFERENCE_BACKWARD):
        rng = np.random.default_rng(seed)
        chain = _chain_graph(deep_chain_length())
        graphs = _GRAPHS + (_MORE_GRAPHS if more else ()) + ((chain,) if deep else ())
        runs = [_check_first_backward(backward, _build(graph, rng), rng) for graph in graphs]
        for run in runs:
            if run.built.graph is not chain:
                _check_second_backward(backward, run)
        _check_seed_shape_is_refused(backward, rng)
        _check_walk_records_nothing(backward, rng)


def _check_seed_shape_is_refused(backward: Callable[..., Any], rng: np.random.Generator) -> None:
    """A grad whose shape is not the root's must raise a ValueError that names both shapes."""
    x = Tensor(random_array((2, 3), rng), requires_grad=True)
    out = x * x
    # (1, 3) broadcasts against (2, 3), so without the check the walk runs on and gives wrong
    # gradients rather than failing.
    what = "backward(out, grad) with out of shape (2, 3) and grad of shape (1, 3)"
    rule = (
        "the ops' backward methods rely on out_grad having their output's shape, so a grad of "
        "another shape must be refused before the walk: raise ValueError(f\"grad has shape "
        "{seed.shape}, but root has shape {root.shape}\")."
    )
    try:
        watched(backward, out, np.ones((1, 3)))
    except CheckFailure:
        raise
    except ValueError as error:
        text = str(error)
        if not ("1, 3" in text and "2, 3" in text):
            raise CheckFailure(
                f"{what} raised ValueError({text!r}), which does not name both shapes.\n"
                f"  Hint: say what was wrong, so that whoever called backward can fix it: {rule}"
            ) from None
        return
    except Exception as error:
        raise CheckFailure(
            f"{what} raised {type(error).__name__}: {error}\n  Hint: check the seed's shape first, "
            f"and raise a ValueError: {rule}"
        ) from None
    raise CheckFailure(f"{what} raised nothing; it should raise a ValueError.\n  Hint: {rule}")


class _RecordsGradMode(Function):
    """The identity, whose backward notes whether ops were recording when it was called."""

    def __init__(self) -> None:
        self.recording: list[bool] = []

    def forward(self, a: np.ndarray) -> np.ndarray:
        return a.copy()

    def backward(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor]:
        self.recording.append(is_grad_enabled())
        return (out_grad * 1.0,)


def _check_walk_records_nothing(backward: Callable[..., Any], rng: np.random.Generator) -> None:
    """The ops' backward methods must run under no_grad(), so they build no graph of the gradient."""
    x = Tensor(random_array((3,), rng), requires_grad=True)
    spy = _RecordsGradMode()
    out = (spy(x) * x).sum()
    _call(backward, out, what="backward(out) on a small graph of x of shape (3,)")
    if any(spy.recording):
        raise CheckFailure(
            "backward(out) called the ops' backward methods while ops were recording, so every "
            "Tensor operation in them added a node to a graph of the gradient that nobody uses "
            "(memory and time for nothing).\n  Hint: run the walk (steps 2 to 4) inside "
            "`with no_grad():`, as the exercise says."
        )


def _reference_backward(root: Tensor, grad: Any = None) -> None:
    root.backward(np.ones_like(root.data) if grad is None else grad)


def backward_or_reference(backward: Callable[..., Any]) -> Callable[..., Any]:
    """``backward`` if it passes :func:`check_backward_pass`, else one built on autodiff_ref's."""
    return yours_or_reference("backward", backward, lambda: check_backward_pass(backward, deep=False),
                              _reference_backward, "the reference backward")


# --- detach: rounding with a straight-through gradient ------------------------------------------------


def check_straight_through(round_straight_through: Callable[[Tensor], Tensor], *, seed: int = 0) -> None:
    """``round_straight_through(x)`` must have the values ``np.round(x)`` and the gradient of ``x``.

    Checked on a vector and a matrix of numbers at least 0.1 away from the halfway points: the
    values against NumPy, and ``x.grad`` after ``(w * out).sum().backward()`` against ``w``.
    """
    rng = np.random.default_rng(seed)
    for shape in ((6,), (2, 3)):
        data = np.round(rng.uniform(-3, 3, shape)) + rng.uniform(-0.4, 0.4, shape)
        x = Tensor(data, requires_grad=True)
        what = f"round_straight_through(x) for x of shape {shape}"
        out = _call(round_straight_through, x, what=what)
        if not isinstance(out, Tensor):
            raise CheckFailure(f"{what} returned {type(out).__name__}; it should return a Tensor.")
        if not np.array_equal(x.data, data):
            raise CheckFailure(f"{what} changed x.data.\n  Hint: build a new tensor; leave x as it is.")
        if out.shape != x.shape:
            raise CheckFailure(f"{what} has shape {out.shape}, expected {x.shape}.")
        if not _close(out.data, np.round(data)):
            raise CheckFailure(
                f"the values of {what} are wrong: {_difference(out.data, np.round(data))}.\n"
                "  Hint: the forward value is np.round(x.data); only the gradient pretends rounding "
                "was not there."
            )
        if not out.requires_grad:
            raise CheckFailure(
                f"{what} does not require grad: it is cut off from x, so no gradient can reach x.\n"
                "  Hint: a Tensor made from np.round(x.data) is a constant. Keep x itself in the "
                "expression: x + (constant - x).detach()."
            )
        if out.op is None:
            raise CheckFailure(
                f"{what} is a new leaf (its .op is None), not connected to x, so no gradient can "
                "reach x.\n  Hint: requires_grad=True makes a tensor a leaf of its own. Build out from "
                "x with Tensor operations: x + (constant - x).detach()."
            )
        weights = random_array(shape, rng)
        (out * weights).sum().backward()
        got = np.zeros(shape) if x.grad is None else x.grad
        if not np.any(got):
            raise CheckFailure(
                f"after (w * {what}).sum().backward(), x.grad is all zeros; it should equal w.\n"
                "  Hint: in x + (round(x) - x) the two x cancel in the backward pass too (1 - 1 = 0). "
                "Detach the correction, (round(x) - x).detach(), so that backward sees only the "
                "first x."
            )
        if not _close(got, weights):
            raise CheckFailure(
                f"after (w * {what}).sum().backward(), x.grad should equal w, as if out were x: "
                f"{_difference(got, weights)}.\n  Hint: only x itself may stay in the graph: "
                "x + (constant - x).detach()."
            )


# --- numeric gradients -------------------------------------------------------------------------------


def _one_sided(f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float) -> np.ndarray:
    """The forward difference (f(x + eps) - f(x)) / eps, for recognising it."""
    x = np.array(x, dtype=np.float64)
    base = float(np.asarray(f(x)).item())
    grad_array = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        nudged = x.copy()
        nudged[index] += eps
        grad_array[index] = (float(np.asarray(f(nudged)).item()) - base) / eps
    return grad_array


def _not_put_back(f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float) -> np.ndarray:
    """Central differences that leave each element at x - eps after its turn, for recognising them."""
    x = np.array(x, dtype=np.float64)
    grad_array = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        up = float(np.asarray(f(x)).item())
        x[index] = original - eps
        grad_array[index] = (up - float(np.asarray(f(x)).item())) / (2 * eps)
    return grad_array


@dataclass(frozen=True)
class _NumericCase:
    text: str
    f: Callable[[np.ndarray], Any]
    derivative: Callable[[np.ndarray], np.ndarray]  # exact, for comparison
    x: Callable[[np.random.Generator], Any]
    eps: float


_NUMERIC_CASES = (
    _NumericCase("f(x) = sum(sin(x) * x) on x of shape (3, 2)", lambda a: np.sum(np.sin(a) * a),
                 lambda a: np.cos(a) * a + np.sin(a), lambda rng: random_array((3, 2), rng), 1e-6),
    _NumericCase("f(x) = sum(exp(x)) on x of shape (4,)", lambda a: np.sum(np.exp(a)),
                 np.exp, lambda rng: random_array((4,), rng), 1e-3),
    _NumericCase("f(x) = x ** 3 on a 0-d array x", lambda a: a**3, lambda a: 3 * a**2,
                 lambda rng: np.array(random_array((), rng)), 1e-6),
    _NumericCase("f(x) = sum(x ** 3) / 6 on the integer array x = np.array([1, -2, 3])",
                 lambda a: np.sum(a**3) / 6, lambda a: np.asarray(a, dtype=np.float64) ** 2 / 2,
                 lambda rng: np.array([1, -2, 3]), 1e-6),
    # Each derivative depends on all the other elements, so an element left nudged after its turn
    # changes the later ones; eps=1e-3 makes that show (with 1e-6 it hides within the tolerance).
    _NumericCase("f(x) = prod(x) on x of shape (4,)", np.prod, lambda a: np.prod(a) / a,
                 lambda rng: random_array((4,), rng), 1e-3),
)


def _numeric_gradient_hint(case: _NumericCase, x: np.ndarray, got: np.ndarray, expected: np.ndarray,
                           integer_result: bool) -> str | None:
    """The usual mistake that turns the derivative at ``x`` into ``got``, if one fits."""
    if got.shape != expected.shape:
        return "return one derivative per element of x, in an array of x's shape."
    if integer_result:
        return ("the result array holds integers (np.zeros_like(x) of an integer x is one), so each "
                "derivative stored in it is cut to a whole number: make it float64, np.zeros(x.shape) "
                "or np.zeros_like(x, dtype=np.float64).")
    if x.dtype.kind in "iu":
        return ("x holds integers, and x + 1e-6 stored back in an integer array is x again: "
                "make a float64 copy of x first.")
    if _close(got, _one_sided(case.f, x, case.eps), rtol=1e-4) or _close(
            got, -_one_sided(case.f, x, -case.eps), rtol=1e-4):
        return ("this is a one-sided difference, (f(x + eps) - f(x)) / eps, whose error shrinks "
                "only like eps. Use the central difference (f(x + eps) - f(x - eps)) / (2 eps).")
    if _close(got, _not_put_back(case.f, x, case.eps)) or _close(got, _not_put_back(case.f, x, -case.eps)):
        return ("each element stays nudged after its turn, which moves the point at which the later "
                "elements are differenced: put x[i] back (x[i] = original) after each evaluation.")
    if _close(got, 2 * expected):
        return "every value is twice too big: divide by 2 * eps, the distance between x - eps and x + eps."
    return guess_mistake(got, expected)


def check_numeric_gradient(numeric_gradient: Callable[..., Any], *, seed: int = 0) -> None:
    """``numeric_gradient(f, x, eps=1e-6)`` must give d f / d x by central differences.

    ``f`` maps an array of ``x``'s shape to one number. The result has ``x``'s shape and dtype
    float64, and ``x`` is left unchanged. Tried on a matrix, with ``eps=1e-3`` (where a one-sided
    difference is visibly off), on a 0-d array, on an integer array, and on a product with
    ``eps=1e-3`` (where an element not put back after its turn spoils the later ones).
    """
    with own_work("numeric_gradient", numeric_gradient, numeric_grad):
        rng = np.random.default_rng(seed)
        for case in _NUMERIC_CASES:
            x = case.x(rng)
            kept = x.copy()
            what = f"numeric_gradient(f, x, eps={case.eps:g}) for {case.text}"
            got = _call(numeric_gradient, case.f, x, case.eps, what=what)
            if not np.array_equal(x, kept) or x.dtype != kept.dtype:
                raise CheckFailure(
                    f"{what} changed x.\n  Hint: work on a float64 copy (np.array(x, dtype=np.float64)) "
                    "and put each element back after nudging it."
                )
            integer_result = np.issubdtype(getattr(got, "dtype", np.float64), np.integer)
            got = returned_array(got, what, "an array")
            expected = case.derivative(np.asarray(kept, dtype=np.float64))
            if _close(got, expected):
                continue
            hint = _numeric_gradient_hint(case, kept, got, expected, integer_result)
            raise CheckFailure(
                f"{what} is wrong (expected: the exact derivative): {_difference(got, expected)}."
                + (f"\n  Hint: {hint}" if hint else "")
            )


# --- gradcheck ----------------------------------------------------------------------------------------


class _ExpWithSignFlipped(Function):
    """exp, with a backward that returns minus the right gradient."""

    def forward(self, a):
        return np.exp(a)

    def backward(self, g, node):
        return (-(g * node),)


class _MulWithWrongSecondGradient(Function):
    """a * b, with d/db wrongly taken as g * b (it is g * a); d/da is right."""

    def forward(self, a, b):
        return a * b

    def backward(self, g, node):
        a, b = node.inputs
        return unbroadcast(g * b, a.shape), unbroadcast(g * b, b.shape)


class _TransposeThatForgets(Function):
    """The transpose of a square matrix, with a backward that forgets to transpose back."""

    def forward(self, a):
        return a.T

    def backward(self, g, node):
        return (g,)


class _ReverseThatForgets(Function):
    """A vector in reverse order, with a backward that forgets to reverse the gradient."""

    def forward(self, a):
        return a[::-1]

    def backward(self, g, node):
        return (g,)


_SUM_DIRECTION_HINT = (
    "this backward is wrong only away from the all-ones direction: with the output summed (weights "
    "all 1) its gradient happens to be right. Weight the output with fixed random numbers, "
    "sum(w * f(...)) with w from a random generator, for both the analytic and the numeric "
    "gradient."
)


def _gradcheck_inputs(arrays: tuple[np.ndarray, ...], as_tensors: bool) -> tuple[Any, ...]:
    return tuple(Tensor(a, requires_grad=True) for a in arrays) if as_tensors else tuple(a.copy() for a in arrays)


def _check_accepts(gradcheck: Callable[..., Any], text: str, f: Callable[..., Tensor],
                   arrays: tuple[np.ndarray, ...], as_tensors: bool) -> None:
    inputs = _gradcheck_inputs(arrays, as_tensors)
    kind = "Tensors" if as_tensors else "arrays"
    what = f"gradcheck(f, ...) on {text} (inputs given as {kind})"
    try:
        result = watched(gradcheck, f, *inputs)
    except AssertionError as error:
        float32 = any(a.dtype == np.float32 for a in arrays)
        hint = ("the inputs are float32, where x + 1e-6 barely differs from x: copy every input to "
                "a float64 Tensor first." if float32 else
                "the backward of this op is right. Compare each input's analytic gradient with its "
                "numeric one, both for the same weighted sum of the output, within "
                "atol + rtol * |numeric|.")
        raise CheckFailure(f"{what} raised AssertionError, but this op's backward is right:\n"
                           f"  {error}\n  Hint: {hint}") from error
    except Exception as error:
        hint = ("an input that f does not use gets no .grad (it stays None): its analytic gradient "
                "is zeros." if "None" in str(error) else None)
        raise _failure(error, what, hint) from error
    if result is not True:
        raise CheckFailure(f"{what} returned {result!r}; it should return True when every input passes.")
    if as_tensors:
        for position, tensor in enumerate(inputs):
            if tensor.grad is not None:
                raise CheckFailure(
                    f"{what} left a .grad on input {position}, the caller's tensor.\n  Hint: run "
                    "backward on fresh float64 copies (Tensor(x.data, requires_grad=True)), so that a "
                    "check leaves the caller's tensors as they were."
                )


def _names_input(message: str, position: int) -> bool:
    """Whether ``message`` names input ``position``: "input 0", "Input 0", "input #0", "inputs[0]"."""
    return re.search(rf"\binputs?\s*[#\[(]?\s*{position}\b", message, re.IGNORECASE) is not None


def _check_rejects(gradcheck: Callable[..., Any], text: str, f: Callable[..., Tensor],
                   arrays: tuple[np.ndarray, ...], wrong_input: int, hint: str) -> None:
    what = f"gradcheck(f, ...) on {text}"
    try:
        result = watched(gradcheck, f, *_gradcheck_inputs(arrays, True))
    except AssertionError as error:
        message = str(error)
        if not _names_input(message, wrong_input):
            raise CheckFailure(
                f"{what} raised AssertionError, as it should, but its message does not name the "
                f"wrong input as 'input {wrong_input}':\n  {message!r}\n  Hint: say which input "
                "(by its position, counting from 0), which element, and both values there."
            ) from error
        return
    except Exception as error:
        raise _failure(error, what, "if that is your gradcheck reporting the wrong gradient, raise "
                                    "AssertionError (or a subclass) instead: test runners report it "
                                    "as a failed check, not as a crash.") from error
    raise CheckFailure(
        f"{what} returned {result!r}, but this backward is wrong for input {wrong_input}: gradcheck "
        f"should raise an AssertionError.\n  Hint: {hint}"
    )


def check_gradcheck(gradcheck: Callable[..., Any], *, seed: int = 0) -> None:
    """``gradcheck(f, *inputs)`` must return True for correct ops and raise for wrong backwards.

    ``f`` maps Tensors to a Tensor of any shape; each input is a Tensor or an array. Correct ops
    (broadcasting, an input used twice, a reduction, a non-scalar output, an input that ``f``
    ignores, float32 inputs, given as Tensors and as arrays) must give True and leave the
    caller's tensors without ``.grad``. Wrong backwards must raise an ``AssertionError`` whose
    message names the wrong input as ``input k``: exp with its sign flipped, a product wrong only
    for its second input, and a transpose and a reversal whose backwards forget to transpose or
    reverse, which only a random projection of the output catches.
    """
    with own_work("gradcheck", gradcheck, reference_gradcheck):
        rng = np.random.default_rng(seed)
        correct = (
            ("f(a, b) = exp(a * b), a of shape (2, 3), b of shape (3,)",
             lambda a, b: (a * b).exp(), (random_array((2, 3), rng, "unit"), random_array((3,), rng))),
            ("f(x) = tanh(x @ x.T), x used twice", lambda x: (x @ x.T).tanh(), (random_array((2, 3), rng, "unit"),)),
            ("f(x) = logsumexp(x, axis=1), a scalar per row", lambda x: x.logsumexp(axis=1),
             (random_array((3, 4), rng),)),
            ("f(x) = (x * x).sum(), a scalar output", lambda x: (x * x).sum(), (random_array((3,), rng),)),
            ("f(a, b) = 2 * a, b unused", lambda a, b: 2 * a,
             (random_array((3,), rng), random_array((2,), rng))),
            ("f(x) = exp(x * x).sum() on float32 x", lambda x: (x * x).exp().sum(),
             (random_array((3,), rng, "unit").astype(np.float32),)),
        )
        for index, (text, f, arrays) in enumerate(correct):
            _check_accepts(gradcheck, text, f, arrays, as_tensors=index % 2 == 0)
            _check_accepts(gradcheck, text, f, arrays, as_tensors=index % 2 == 1)
        wrong = (
            ("exp with its backward's sign flipped", lambda x: _ExpWithSignFlipped()(x),
             (random_array((3,), rng),), 0,
             "compare the analytic gradient from backward() with the numeric one, element by element."),
            ("a * b with the gradient of b wrong (that of a is right)",
             lambda a, b: _MulWithWrongSecondGradient()(a, b), (random_array((3,), rng), random_array((3,), rng)), 1,
             "check every input, not only the first."),
            ("a transpose of a 3 x 3 matrix whose backward forgets to transpose back",
             lambda x: _TransposeThatForgets()(x), (random_array((3, 3), rng),), 0, _SUM_DIRECTION_HINT),
            ("a reversal of a vector whose backward forgets to reverse",
             lambda x: _ReverseThatForgets()(x), (random_array((5,), rng),), 0, _SUM_DIRECTION_HINT),
        )
        for text, f, arrays, wrong_input, hint in wrong:
            _check_rejects(gradcheck, text, f, arrays, wrong_input, hint)


# --- Hessian-vector products --------------------------------------------------------------------------


def _reference_hvp(f: Callable[[Tensor], Tensor], x: Any, v: Any) -> Tensor:
    v = np.asarray(v, dtype=np.float64)
    return grad(lambda point: (grad(f)(point) * v).sum())(np.asarray(x, dtype=np.float64))


def _gradient_array(f: Callable[[Tensor], Tensor], x: np.ndarray) -> np.ndarray:
    return grad(f)(x).data


@dataclass(frozen=True)
class _HvpCase:
    text: str
    f: Callable[[Tensor], Tensor]
    shape: tuple[int, ...]
    domain: str = "real"


_ASYMMETRIC = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.5, 2.0, 1.0]])
_MIXING = np.array([[0.5, -1.0, 0.3, 0.8], [1.2, 0.4, -0.7, 0.1], [-0.3, 0.9, 0.6, -1.1]])

_HVP_CASES = (
    _HvpCase("f(x) = sum(x * (A @ x)) / 2, A not symmetric (H = (A + A.T) / 2)",
             lambda x: (x * (Tensor(_ASYMMETRIC) @ x)).sum() / 2, (3,)),
    _HvpCase("f(x) = sum(tanh(x) ** 3)", lambda x: (x.tanh() ** 3).sum(), (4,), "unit"),
    _HvpCase("f(x) = logsumexp(x)", lambda x: x.logsumexp(), (4,)),
    _HvpCase("f(X) = sum(tanh(X @ M) ** 2) for a matrix X of shape (2, 3)",
             lambda x: ((x @ Tensor(_MIXING)).tanh() ** 2).sum(), (2, 3), "unit"),
    _HvpCase("the Rosenbrock function f(x) = (1 - x0) ** 2 + 100 * (x1 - x0 ** 2) ** 2",
             lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2, (2,)),
)


def _hvp_hint(case: _HvpCase, got: np.ndarray, x: np.ndarray, v: np.ndarray, expected: np.ndarray) -> str | None:
    if got.shape != x.shape:
        if got.size == 1:
            return ("a Hessian-vector product has x's shape. grad(f)(x) · v is a number; "
                    "differentiate it with respect to x instead of returning it.")
        if got.shape == (x.size, x.size):
            return "return H v, a vector of x's shape, not the Hessian H itself."
        return None
    if not np.any(got):
        return ("the result is all zeros, as if the inner gradient did not depend on x. Compute "
                "grad(f)(x) inside the function that the outer grad differentiates, from the x it "
                "is given, and keep it a Tensor in the graph (no .data, no detach, no new Tensor).")
    if _close(got, _gradient_array(case.f, x)):
        return "this is the gradient of f; H v needs one more grad: the gradient of grad(f)(x) · v."
    if _close(got, _reference_hvp(case.f, x, np.ones_like(x)).data):
        return ("v is missing: this is H times a vector of ones. Differentiate (grad(f)(x) * v).sum(), "
                "not grad(f)(x).sum().")
    if _close(got, _gradient_array(case.f, x) * v):
        return "that is the gradient times v, element by element; H v is the gradient of (grad(f)(x) * v).sum()."
    return guess_mistake(got, expected)


def _explain_hvp_error(error: Exception) -> str | None:
    """The likely mistake behind an exception that hvp raised, if one fits."""
    if "needs f to return a one-element Tensor" in str(error):
        return ("the function that the outer grad differentiates must return a one-element Tensor: "
                "keep the inner gradient a Tensor, (grad(f)(x) * v).sum(), with no .data and no np.sum.")
    return None


def check_hvp(hvp: Callable[..., Any], *, seed: int = 0) -> None:
    """``hvp(f, x, v)`` must give the Hessian of ``f`` at ``x`` times ``v``, an array of x's shape.

    ``f`` maps a Tensor to a one-element Tensor; ``x`` and ``v`` are float64 arrays of one shape,
    left unchanged. The result (a Tensor or an array) is compared with central differences of
    the gradient, (grad f(x + eps v) - grad f(x - eps v)) / (2 eps), on a quadratic with a
    non-symmetric matrix, elementwise tanh cubes, logsumexp, a matrix input and the Rosenbrock
    function.
    """
    with own_work("hvp", hvp, _reference_hvp):
        rng = np.random.default_rng(seed)
        eps = 1e-5  # a difference of exact gradients: truncation ~ eps**2, round-off ~ 1e-16 / eps
        for case in _HVP_CASES:
            x = random_array(case.shape, rng, case.domain)
            v = rng.standard_normal(case.shape)
            x_kept, v_kept = x.copy(), v.copy()
            what = f"hvp(f, x, v) for {case.text}"
            got = _call(hvp, case.f, x, v, what=what, explain=_explain_hvp_error)
            if not (np.array_equal(x, x_kept) and np.array_equal(v, v_kept)):
                raise CheckFailure(f"{what} changed x or v.\n  Hint: leave the arrays you are given as they are.")
            got = returned_array(got, what, "a Tensor or an array")
            numeric = (_gradient_array(case.f, x_kept + eps * v_kept)
                       - _gradient_array(case.f, x_kept - eps * v_kept)) / (2 * eps)
            if not _close(got, numeric):
                hint = _hvp_hint(case, got, x_kept, v_kept, numeric)
                raise CheckFailure(
                    f"{what} is wrong (expected: central differences of the gradient along v): "
                    f"{_difference(got, numeric)}." + (f"\n  Hint: {hint}" if hint else "")
                )


def hvp_or_reference(hvp: Callable[..., Any]) -> Callable[..., Any]:
    """``hvp`` if it passes :func:`check_hvp`, else the reference grad-of-(grad · v)."""
    return yours_or_reference("hvp", hvp, lambda: check_hvp(hvp), _reference_hvp, "the reference hvp")
