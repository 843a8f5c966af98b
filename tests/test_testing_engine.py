"""Tests for ``autodiff_ref.testing.engine``: right engines pass, each usual mistake fails as meant.

The right implementations below are written the way a learner writes them in notebook 06, as
plain functions over the reference ``Tensor``. Each broken variant changes one thing, and its test
asserts the hint the learner would read.
"""

from __future__ import annotations

import contextlib

import inspect
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from autodiff_ref import Tensor, grad, no_grad
from autodiff_ref.gradcheck import numeric_grad
from autodiff_ref.testing import (
    CheckFailure,
    backward_or_reference,
    check_accumulate_grad,
    check_backward_pass,
    check_gradcheck,
    check_hvp,
    check_numeric_gradient,
    check_straight_through,
    check_tensor_topological_order,
    hvp_or_reference,
)

# --- right implementations -------------------------------------------------------------------------


def topological_order(root):
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((t, False) for t in node.inputs if id(t) not in visited)
    return order


def topological_order_kahn(root):
    """Another valid order: Kahn's algorithm, counting each tensor's uses first."""
    uses, stack, seen = {}, [root], {id(root)}
    while stack:
        node = stack.pop()
        for t in node.inputs:
            uses[id(t)] = uses.get(id(t), 0) + 1
            if id(t) not in seen:
                seen.add(id(t))
                stack.append(t)
    ready, reverse_order = [root], []
    while ready:
        node = ready.pop()
        reverse_order.append(node)
        for t in node.inputs:
            uses[id(t)] -= 1
            if uses[id(t)] == 0:
                ready.append(t)
    return reverse_order[::-1]


def accumulate_grad(tensor, grad_array):
    if tensor.grad is None:
        tensor.grad = np.array(grad_array)
    else:
        tensor.grad = tensor.grad + grad_array


def make_backward(order=topological_order, accumulate=accumulate_grad, *, overwrite=False,
                  seed_scalar=False, ignore_grad=False, skip_none=True, only_requiring_grad=True,
                  inputs_first=False, leaves_only=False, store_tensor=False, skip_leaves=True,
                  pass_data=False, check_shape=True, recording=False, vague_error=False):
    """A backward pass; each keyword turns on one usual mistake."""

    def backward(root, grad_array=None):
        if grad_array is None or ignore_grad:
            seed = np.array(1.0) if seed_scalar else np.ones(root.shape)
        else:
            seed = np.asarray(grad_array, dtype=np.float64)
            if check_shape and seed.shape != root.shape:
                raise ValueError("grad has the wrong shape" if vague_error else
                                 f"grad has shape {seed.shape}, but root has shape {root.shape}")
        ledger = {id(root): Tensor(seed)}
        nodes = order(root) if inputs_first else reversed(order(root))
        with contextlib.nullcontext() if recording else no_grad():
            for node in nodes:
                node_grad = ledger.pop(id(node)) if inputs_first else ledger.pop(id(node), None)
                if node_grad is None:
                    continue
                if (node.requires_grad or not only_requiring_grad) and not (leaves_only and node.op is not None):
                    if store_tensor:
                        node.grad = node_grad
                    else:
                        accumulate(node, node_grad.data)
                if node.op is None and skip_leaves:
                    continue
                out_grad = node_grad.data if pass_data else node_grad
                for tensor, input_grad in zip(node.inputs, node.op.backward(out_grad, node)):
                    if skip_none and input_grad is None:
                        continue
                    if not skip_none:  # starts every tensor at zeros, so None meets a +
                        ledger.setdefault(id(tensor), Tensor(np.zeros(tensor.shape)))
                    if overwrite or id(tensor) not in ledger:
                        ledger[id(tensor)] = input_grad
                    else:
                        ledger[id(tensor)] = ledger[id(tensor)] + input_grad

    return backward


def round_straight_through(x):
    return x + (Tensor(np.round(x.data)) - x).detach()


def numeric_gradient(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    result = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        up = float(f(x))
        x[index] = original - eps
        down = float(f(x))
        x[index] = original
        result[index] = (up - down) / (2 * eps)
    return result


def make_gradcheck(*, random_weights=True, to_float64=True, inputs_checked=None, message="input {k}",
                   fresh=True, exception=AssertionError, result=True):
    """A gradcheck; each keyword turns on one usual mistake."""

    def gradcheck(f, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4):
        arrays = [np.array(x.data if isinstance(x, Tensor) else x) for x in inputs]
        if to_float64:
            arrays = [a.astype(np.float64) for a in arrays]
        differences = numeric_gradient if to_float64 else numeric_gradient_in_place
        if fresh or not all(isinstance(x, Tensor) for x in inputs):
            tensors = [Tensor(a, requires_grad=True) for a in arrays]
        else:
            tensors = list(inputs)
        out = f(*tensors)
        rng = np.random.default_rng(0)
        weights = rng.standard_normal(out.shape) if random_weights else np.ones(out.shape)
        (out * weights).sum().backward()
        for k, (tensor, array) in enumerate(zip(tensors, arrays)):
            if inputs_checked is not None and k >= inputs_checked:
                break

            def projected(a, k=k):
                values = [Tensor(b) for b in arrays]
                values[k] = Tensor(a)
                with no_grad():
                    return np.sum(f(*values).data * weights)

            numeric = differences(projected, array, eps)
            analytic = np.zeros_like(numeric) if tensor.grad is None else tensor.grad
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                raise exception(message.format(k=k) + f": analytic {analytic} but numeric {numeric}")
        return result

    return gradcheck


def numeric_gradient_in_place(f, x, eps=1e-6):
    """Central differences in x's own dtype (too coarse in float32)."""
    result = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        up = float(f(x))
        x[index] = original - eps
        down = float(f(x))
        x[index] = original
        result[index] = (up - down) / (2 * eps)
    return result


def hvp(f, x, v):
    return grad(lambda point: (grad(f)(point) * v).sum())(x)


# --- right implementations pass ---------------------------------------------------------------------


def test_right_implementations_pass():
    check_tensor_topological_order(topological_order)
    check_tensor_topological_order(topological_order_kahn, seed=3, more=True)
    check_accumulate_grad(accumulate_grad)
    check_backward_pass(make_backward())
    check_backward_pass(make_backward(order=topological_order_kahn), seed=4, deep=False, more=True)
    check_straight_through(round_straight_through)
    check_numeric_gradient(numeric_gradient)
    check_gradcheck(make_gradcheck())
    check_gradcheck(make_gradcheck(message="Input #{k}"))
    check_hvp(hvp)
    check_hvp(hvp, seed=5)


def written_copy(module) -> SimpleNamespace:
    """``module`` as a learner who typed it into a cell has it: the same code, but compiled here
    (one line lower), so it is not the reference that the checks turn away."""
    namespace = {"__name__": "learners_copy", "__package__": module.__package__}
    exec(compile("\n" + inspect.getsource(module), __file__, "exec"), namespace)
    return SimpleNamespace(**namespace)


def test_the_reference_pieces_pass_when_written_by_hand():
    from autodiff_ref import gradcheck, graph

    graph_copy, gradcheck_copy = written_copy(graph), written_copy(gradcheck)
    check_tensor_topological_order(graph_copy.topological_order)
    check_gradcheck(gradcheck_copy.gradcheck)
    check_numeric_gradient(lambda f, x, eps=1e-6: gradcheck_copy.numeric_grad(f, x, eps=eps)[0])


def test_the_reference_pieces_instead_of_ones_own_fail():
    from autodiff_ref.gradcheck import gradcheck
    from autodiff_ref.graph import topological_order as reference_order
    from autodiff_ref.testing.engine import _reference_hvp

    def backward_by_the_engine(root, grad=None):
        root.backward(grad)

    def accumulate_by_the_engine(tensor, grad_array):
        tensor.backward(grad_array)  # on a leaf, the engine's backward adds to .grad

    expected = [
        (check_tensor_topological_order, reference_order,
         "Your topological_order is autodiff_ref.graph.topological_order, the reference implementation, imported"),
        (check_tensor_topological_order, lambda root: reference_order(root),
         "Your topological_order calls autodiff_ref.graph.topological_order, the reference implementation, "
         "from <lambda> (line "),
        (check_backward_pass, backward_by_the_engine,
         "Your backward calls autodiff_ref.tensor.Tensor.backward, the reference implementation, from "
         "backward_by_the_engine (line "),
        (check_backward_pass, Tensor.backward, "Your backward is autodiff_ref.tensor.Tensor.backward, the reference"),
        (check_accumulate_grad, accumulate_by_the_engine, "Your accumulate_grad calls autodiff_ref.tensor.Tensor.backward"),
        (check_numeric_gradient, lambda f, x, eps=1e-6: numeric_grad(f, x, eps=eps)[0],
         "Your numeric_gradient calls autodiff_ref.gradcheck.numeric_grad, the reference implementation"),
        (check_gradcheck, gradcheck, "Your gradcheck is autodiff_ref.gradcheck.gradcheck, the reference"),
        (check_gradcheck, lambda f, *inputs, **options: gradcheck(f, *inputs, **options),
         "Your gradcheck calls autodiff_ref.gradcheck.gradcheck, the reference"),
        (check_hvp, lambda f, x, v: _reference_hvp(f, x, v),
         "Your hvp calls autodiff_ref.testing.engine._reference_hvp, the reference implementation"),
    ]
    for check, yours, message in expected:
        with pytest.raises(CheckFailure) as failure:
            check(yours)
        assert str(failure.value).startswith(message), (check.__name__, str(failure.value))


def test_or_reference_helpers_choose(capsys):
    right = make_backward()
    assert backward_or_reference(right) is right
    assert "✓" in capsys.readouterr().out
    wrong = make_backward(overwrite=True)
    fallback = backward_or_reference(wrong)
    assert fallback is not wrong and "does not pass" in capsys.readouterr().out
    x = Tensor([1.0, 2.0], requires_grad=True)
    fallback(x * x)
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    assert hvp_or_reference(hvp) is hvp
    returns_gradient = lambda f, x, v: grad(f)(x)  # noqa: E731
    fallback_hvp = hvp_or_reference(returns_gradient)
    assert fallback_hvp is not returns_gradient
    np.testing.assert_allclose(fallback_hvp(lambda t: (t**3).sum(), np.array([2.0]), np.array([1.0])).data, [12.0])


# --- the usual mistakes fail with their hint --------------------------------------------------------


def message_of(check, *args, **kwargs) -> str:
    with pytest.raises(CheckFailure) as failure:
        check(*args, **kwargs)
    return str(failure.value)


def recursive_order(root):
    order, visited = [], set()

    def visit(node):
        if id(node) in visited:
            return
        visited.add(id(node))
        for t in node.inputs:
            visit(t)
        order.append(node)

    visit(root)
    return order


def order_without_visited_set(root):
    order, stack = [], [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((t, False) for t in node.inputs)
    return order


def preorder(root):
    order, visited, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in visited:
            visited.add(id(node))
            order.append(node)
            stack.extend(node.inputs)
    return order


@pytest.mark.parametrize("order, hint", [
    (recursive_order, "explicit stack"),
    (order_without_visited_set, "set of the ids you have visited"),
    (lambda root: topological_order(root)[::-1], "it is in reverse"),
    (preorder, "it is in reverse"),
    (lambda root: preorder(root)[::-1], "marked as 'inputs done'"),
    (lambda root: [t for t in topological_order(root) if t.op is not None or t.requires_grad], "constants included"),
    (lambda root: [id(t) for t in topological_order(root)], "append the node, not its id"),
])
def test_topological_order_mistakes(order, hint):
    assert hint in message_of(check_tensor_topological_order, order)


@pytest.mark.parametrize("limit, length", [(1_000, "3,000"), (2_000, "6,000"), (8_000, "10,000")])
def test_a_raised_recursion_limit_gets_a_longer_chain(limit, length):
    # The deep chain is three times the recursion limit (3,000 to 10,000 ops), read when the check
    # runs: a recursive walk fails it even after the notebook raised the limit below 10,000.
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        for check, walk in ((check_tensor_topological_order, recursive_order),
                            (check_backward_pass, make_backward(order=recursive_order))):
            message = message_of(check, walk)
            assert f"a chain of {length} ops" in message and "explicit stack" in message
    finally:
        sys.setrecursionlimit(before)


def test_unwritten_function_says_so():
    def unwritten(*args):
        raise NotImplementedError()

    for check in (check_tensor_topological_order, check_accumulate_grad, check_backward_pass,
                  check_straight_through, check_numeric_gradient, check_gradcheck, check_hvp):
        assert "not written yet" in message_of(check, unwritten)


def accumulate_without_copy(tensor, grad_array):
    if tensor.grad is None:
        tensor.grad = grad_array
    else:
        tensor.grad += grad_array


def accumulate_replacing(tensor, grad_array):
    tensor.grad = np.array(grad_array)


def accumulate_into_none(tensor, grad_array):
    tensor.grad += grad_array


def accumulate_tensor(tensor, grad_array):
    tensor.grad = Tensor(grad_array) if tensor.grad is None else tensor.grad + grad_array


def accumulate_without_none(tensor, grad_array):
    tensor.grad += grad_array


def accumulate_into_given(tensor, grad_array):
    if tensor.grad is None:
        tensor.grad = np.array(grad_array)
    else:
        grad_array += tensor.grad
        tensor.grad = grad_array


@pytest.mark.parametrize("accumulate, hint", [
    (accumulate_without_copy, "not a copy"),
    (accumulate_replacing, "was replaced by the new grad"),
    (accumulate_tensor, "store np.array(grad)"),
    (accumulate_without_none, "the first time, tensor.grad is None"),
    (accumulate_into_given, "a second accumulate_grad on a tensor of shape (2, 3) changed the array grad"),
])
def test_accumulate_grad_mistakes(accumulate, hint):
    assert hint in message_of(check_accumulate_grad, accumulate)


@pytest.mark.parametrize("backward, hint", [
    (make_backward(overwrite=True), "the shares are overwritten"),
    (make_backward(order=lambda root: preorder(root)[::-1]), "visited before every op that uses it"),
    (make_backward(accumulate=lambda tensor, g: accumulate_grad(tensor, Tensor(g))), "store their .data"),
    (make_backward(seed_scalar=True), "np.ones(root.shape)"),
    (make_backward(ignore_grad=True), "ignored grad"),
    (make_backward(skip_none=False, only_requiring_grad=False), "returns None for an input that does not require grad"),
    (make_backward(only_requiring_grad=False), "skip inputs whose requires_grad is False"),
    (make_backward(inputs_first=True), "reversed(topological_order(root))"),
    (make_backward(leaves_only=True), "those between the leaves and the root included"),
    (make_backward(store_tensor=True), "store their .data"),
    (make_backward(accumulate=accumulate_replacing), "replaced .grad instead of adding"),
    (make_backward(accumulate=accumulate_into_none), "the first time, tensor.grad is None"),
    (make_backward(accumulate=accumulate_without_copy), "store an array of your own"),
    (make_backward(order=recursive_order), "explicit stack"),
    (make_backward(skip_leaves=False), "a leaf has op None"),
    (make_backward(pass_data=True), "its out_grad must be a Tensor"),
])
def test_backward_mistakes(backward, hint):
    assert hint in message_of(check_backward_pass, backward)


@pytest.mark.parametrize("backward, hints", [
    (make_backward(check_shape=False), ["grad of shape (1, 3) raised nothing", "ValueError",
                                        "out_grad having their output's shape"]),
    (make_backward(vague_error=True), ["raised ValueError('grad has the wrong shape')",
                                       "does not name both shapes"]),
    (make_backward(recording=True), ["while ops were recording", "`with no_grad():`"]),
])
def test_backward_that_skips_a_stated_rule(backward, hints):
    message = message_of(check_backward_pass, backward)
    for hint in hints:
        assert hint in message, f"{hint!r} missing from:\n{message}"


def test_backward_failures_name_the_graph_and_values():
    message = message_of(check_backward_pass, make_backward(overwrite=True))
    assert "(x + x).sum()" in message
    assert "expected 2, got 1" in message


def test_backward_passing_tensors_to_an_in_place_accumulate_is_explained():
    def accumulate_in_place(tensor, grad_array):
        if tensor.grad is None:
            tensor.grad = np.array(grad_array)
        else:
            tensor.grad += grad_array

    backward = make_backward(accumulate=lambda tensor, g: accumulate_in_place(tensor, Tensor(g)))
    assert "pass accumulate_grad the array total.data" in message_of(check_backward_pass, backward)


def test_backward_without_seed_is_told_to_seed():
    def unseeded(root, grad_array=None):
        make_backward()(root, np.zeros(root.shape))

    assert "seed the ledger" in message_of(check_backward_pass, unseeded)


@pytest.mark.parametrize("function, hint", [
    (lambda x: x + (Tensor(np.round(x.data)) - x), "Detach the correction"),
    (lambda x: Tensor(np.round(x.data)), "is a constant"),
    (lambda x: Tensor(np.round(x.data), requires_grad=True), "is a new leaf"),
    (lambda x: x * 1.0, "the forward value is np.round(x.data)"),
])
def test_straight_through_mistakes(function, hint):
    assert hint in message_of(check_straight_through, function)


def forward_difference(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    base, result = float(f(x)), np.zeros_like(x)
    for index in np.ndindex(x.shape):
        nudged = x.copy()
        nudged[index] += eps
        result[index] = (float(f(nudged)) - base) / eps
    return result


def not_restoring(f, x, eps=1e-6):
    x = np.asarray(x, dtype=np.float64)
    result = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        x[index] += eps
        up = float(f(x))
        x[index] -= 2 * eps
        down = float(f(x))
        result[index] = (up - down) / (2 * eps)
    return result


def integer_result(f, x, eps=1e-6):
    result = np.zeros_like(x)  # an integer array when x holds integers
    result[...] = numeric_gradient(f, x, eps)
    return result


@pytest.mark.parametrize("function, hint", [
    (forward_difference, "one-sided difference"),
    (lambda f, x, eps=1e-6: 2 * numeric_gradient(f, x, eps), "divide by 2 * eps"),
    (lambda f, x, eps=1e-6: numeric_gradient_in_place(f, np.asarray(x), eps), "make a float64 copy of x first"),
    (not_restoring, "put each element back"),
    (lambda f, x, eps=1e-6: not_restoring(f, np.array(x, dtype=np.float64), eps), "put x[i] back"),
    (integer_result, "the result array holds integers"),
    (lambda f, x, eps=1e-6: None, "returned None; it should return an array: did you forget a `return`?"),
])
def test_numeric_gradient_mistakes(function, hint):
    assert hint in message_of(check_numeric_gradient, function)


@pytest.mark.parametrize("gradcheck, hint", [
    (make_gradcheck(random_weights=False), "wrong only away from the all-ones direction"),
    (make_gradcheck(inputs_checked=1), "check every input"),
    (make_gradcheck(to_float64=False), "copy every input to a float64 Tensor"),
    (make_gradcheck(message="the gradient is wrong"), "does not name the wrong input as 'input 0'"),
    (make_gradcheck(result=None), "should return True"),
    (make_gradcheck(fresh=False), "run backward on fresh float64 copies"),
    (make_gradcheck(exception=ValueError), "raise AssertionError (or a subclass) instead"),
])
def test_gradcheck_mistakes(gradcheck, hint):
    assert hint in message_of(check_gradcheck, gradcheck)


def gradcheck_crashing_on_unused_input(f, *inputs):
    tensors = [Tensor(np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64), requires_grad=True)
               for x in inputs]
    f(*tensors).sum().backward()
    return all(t.grad.size > 0 for t in tensors)


def test_gradcheck_crash_on_unused_input_is_explained():
    assert "its analytic gradient is zeros" in message_of(check_gradcheck, gradcheck_crashing_on_unused_input)


def detached_inner_gradient(f, x, v):
    return grad(lambda point: (Tensor(grad(f)(point).data) * v).sum())(x)


@pytest.mark.parametrize("function, hint", [
    (lambda f, x, v: grad(f)(x), "this is the gradient of f"),
    (lambda f, x, v: hvp(f, x, np.ones_like(v)), "v is missing"),
    (detached_inner_gradient, "keep it a Tensor in the graph"),
    (lambda f, x, v: (grad(f)(x) * v).sum(), "differentiate it with respect to x"),
    (lambda f, x, v: grad(f)(x) * v, "the gradient times v"),
    (lambda f, x, v: grad(lambda point: np.sum(grad(f)(point).data * v))(x), "keep the inner gradient a Tensor"),
])
def test_hvp_mistakes(function, hint):
    assert hint in message_of(check_hvp, function)
