"""Tests for ``autodiff_ref.testing.tensor``: right ops pass, each usual mistake fails as meant.

Right ops come in two kinds: every reference op of ``autodiff_ref.ops``, and ops written from
scratch the way a learner writes them in notebook 05 (not the reference, so the checks are seen
to accept an independent implementation). Each broken op gets exactly one thing wrong, and its
test asserts the hint the learner would read.
"""

from __future__ import annotations

import inspect
import re
import sys

import numpy as np
import pytest

from autodiff_ref import Function, Tensor, ops
from autodiff_ref.testing import CheckFailure, check_function, check_unbroadcast
from autodiff_ref.testing.core import HIDDEN_TESTS_NOTE


def failure(op, shapes, **options) -> str:
    """The message check_function fails with (the test fails if it passes)."""
    with pytest.raises(CheckFailure) as caught:
        check_function(op, shapes, **options)
    return str(caught.value)


def written_copy(reference: type) -> type:
    """``reference`` as a learner who typed its source into a cell has it: the same code, but
    compiled here, so it is not the reference object that check_function turns away."""
    namespace = dict(vars(sys.modules[reference.__module__]))
    exec(compile(inspect.getsource(reference), __file__, "exec"), namespace)
    return namespace[reference.__name__]


def swap_last(t: Tensor) -> Tensor:
    axes = list(range(t.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return t.transpose(axes)


# --- right ops pass --------------------------------------------------------------------------------

REFERENCE_CASES = [
    (ops.Add, [(2, 3), (2, 3)], {}),
    (ops.Add, [(2, 3), (3,)], {}),
    (ops.Sub, [(4, 1, 3), (2, 1)], {}),
    (ops.Mul, [(3,), (2, 3)], {}),
    (ops.Mul, [(), (2, 2)], {}),
    (ops.Div, [(2, 3), (2, 1)], {}),
    (ops.Pow, [(2, 3), (3,)], {}),
    (ops.Pow, [(3,), ()], {}),
    (ops.Neg, [(2, 3)], {}),
    (ops.Exp, [(2, 3)], {}),
    (ops.Log, [(4,)], {}),
    (ops.Sqrt, [(2, 2)], {}),
    (ops.Abs, [(7,)], {}),
    (ops.ReLU, [(3, 3)], {}),
    (ops.Sigmoid, [(5,)], {}),
    (ops.Tanh, [()], {}),
    (ops.MatMul, [(2, 3), (3, 4)], {}),
    (ops.MatMul, [(5, 2, 3), (3, 4)], {}),
    (ops.MatMul, [(2, 3), (5, 3, 4)], {}),
    (ops.MatMul, [(1, 2, 3), (4, 3, 2)], {}),
    (ops.MatMul, [(3,), (3, 4)], {}),
    (ops.MatMul, [(2, 3), (3,)], {}),
    (ops.Sum, [(3, 4)], {}),
    (ops.Sum, [(3, 4)], {"axis": 0}),
    (ops.Sum, [(2, 3, 4)], {"axis": (0, 2), "keepdims": True}),
    (ops.Sum, [(2, 3, 4)], {"axis": -1}),
    (ops.Max, [(3, 4)], {"axis": 1}),
    (ops.Max, [(3, 4)], {"axis": None, "keepdims": True}),
    (ops.Reshape, [(3, 4)], {"shape": (2, 6)}),
    (ops.Transpose, [(2, 3, 4)], {"axes": (1, 2, 0)}),
    (ops.Transpose, [(2, 3)], {}),
    (ops.BroadcastTo, [(3, 1)], {"shape": (2, 3, 4)}),
    (ops.LogSumExp, [(3, 4)], {"axis": 1}),
    (ops.LogSoftmax, [(3, 4)], {}),
    (ops.GetItem, [(4, 3)], {"index": (slice(1, 3),)}),
]


@pytest.mark.parametrize(
    "op, shapes, kwargs", REFERENCE_CASES, ids=[f"{op.__name__}-{shapes}-{kw}" for op, shapes, kw in REFERENCE_CASES]
)
def test_every_reference_op_passes_when_written_by_hand(op, shapes, kwargs, capsys):
    check_function(written_copy(op), shapes, kwargs=kwargs)
    line = capsys.readouterr().out
    assert line.startswith("✓ " + op.__name__)
    assert "numeric gradients" in line


def learner_unbroadcast(grad: Tensor, shape) -> Tensor:
    """unbroadcast the way notebook 05's solution writes it."""
    added = grad.ndim - len(shape)
    if added:
        grad = grad.sum(axis=tuple(range(added)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, out_grad, node):
        a, b = node.inputs
        return learner_unbroadcast(out_grad * b, a.shape), learner_unbroadcast(out_grad * a, b.shape)


class MatMul(Function):
    def forward(self, a, b):
        return a @ b

    def backward(self, out_grad, node):
        a, b = node.inputs
        return (
            learner_unbroadcast(out_grad @ swap_last(b), a.shape),
            learner_unbroadcast(swap_last(a) @ out_grad, b.shape),
        )


class Mean(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        return a.mean(axis=self.axis, keepdims=self.keepdims)

    def backward(self, out_grad, node):
        (a,) = node.inputs
        kept = np.mean(a.data, axis=self.axis, keepdims=True).shape
        return (out_grad.reshape(kept).broadcast_to(a.shape) * (np.prod(kept) / a.size),)


class Relu(Function):  # a name that differs from ops.ReLU in case only
    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, out_grad, node):
        (x,) = node.inputs
        return out_grad * Tensor(x.data > 0)  # a lone Tensor: the engine accepts it for one input


def test_a_learners_ops_pass(capsys):
    check_function(Mul, [(2, 3), (3,)])
    check_function(MatMul, [(3, 4), (2, 4, 5)])
    check_function(MatMul, [(2, 1, 3, 4), (5, 4, 2)])
    check_function(Relu, [(4, 5)])
    check_function(Mean, [(3, 4)], kwargs={"axis": 1}, reference=lambda a: a.mean(axis=1))
    check_function(Mean, [(3, 4)], reference=np.mean)
    check_unbroadcast(learner_unbroadcast)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all(line.startswith("✓") for line in lines)
    assert "forward matches the reference" in lines[4]


# Right backwards that differ from the reference: none may trip the checks for in-place changes
# and for gradients cut off from the inputs.
OTHER_RIGHT_CASES = [
    (ops.Exp, lambda self, g, node: (g * node.inputs[0].exp(),), [(2, 3)], {}),
    (ops.Abs, lambda self, g, node: (g * node.inputs[0] / node,), [(2, 3)], {}),
    (ops.ReLU, lambda self, g, node: (g * Tensor(node.data > 0),), [(2, 3)], {}),
    (ops.Div, lambda self, g, node: (g / node.inputs[1], -g * node / node.inputs[1]), [(2, 3), (2, 3)], {}),
    (ops.Max, lambda self, g, node: (g.reshape(3, 1) * Tensor(node.inputs[0].data == node.data.reshape(3, 1)),),
     [(3, 4)], {"axis": 1}),
    (ops.Sum, lambda self, g, node: (g.reshape(3, 1) * Tensor(np.ones((3, 4))),), [(3, 4)], {"axis": 1}),
]


def test_each_check_says_when_hidden_checks_run_at_grading_once_per_cell(capsys):
    # This test function stands for a test cell of the learner's copy: no hidden tests in it.
    for shapes in ([(2, 3), (3,)], [(4, 1), (1, 3)]):
        check_function(Mul, shapes, hidden=True)
    check_unbroadcast(learner_unbroadcast, hidden=True)
    first, note, *others = capsys.readouterr().out.splitlines()
    assert first.startswith("✓ Mul") and note == HIDDEN_TESTS_NOTE
    assert [line.split(":")[0] for line in others] == ["✓ Mul", "✓ unbroadcast sums over added and stretched axes"]



@pytest.mark.parametrize(
    "op, backward, shapes, kwargs", OTHER_RIGHT_CASES, ids=[op.__name__ for op, *_ in OTHER_RIGHT_CASES]
)
def test_other_right_backwards_pass(op, backward, shapes, kwargs, capsys):
    check_function(broken(op, backward=backward), shapes, kwargs=kwargs)
    assert capsys.readouterr().out.startswith("✓ " + op.__name__)


def test_settings_are_passed_to_both_ops():
    Sum = written_copy(ops.Sum)
    check_function(Sum, [(2, 3)], args=(1, True))
    assert "axis=1" in failure(Sum, [(2, 3)], args=(1, True), reference=ops.Sum(0, True))


def test_an_instance_is_turned_away():
    with pytest.raises(TypeError, match="pass Sum and its settings in args= or kwargs="):
        check_function(ops.Sum(axis=0), [(3, 2)])


# --- the forward -----------------------------------------------------------------------------------


def broken(base: type, **methods) -> type:
    """A subclass of a hand-written copy of ``base``, named like it, with some methods replaced."""
    return type(base.__name__, (written_copy(base),), methods)


def test_a_wrong_forward_names_the_op_and_the_element():
    message = failure(broken(ops.Mul, forward=lambda self, a, b: a + b), [(2, 3), (2, 3)])
    assert message.startswith("Mul.forward (a: (2, 3), b: (2, 3)): the output is wrong")
    assert re.search(r"the worst is element \[\d, \d\]:\n  expected -?\d.*, got -?\d", message)


def test_a_forward_with_swapped_operands():
    message = failure(broken(ops.Sub, forward=lambda self, a, b: b - a), [(2, 3), (2, 3)])
    assert "the operands are swapped" in message


def test_a_forward_that_ignores_keepdims():
    message = failure(broken(ops.Sum, forward=lambda self, a: np.sum(a, axis=self.axis)), [(2, 3)],
                      kwargs={"axis": 1, "keepdims": True})
    assert "has shape (2,), expected shape (2, 1)" in message and "keepdims" in message


def test_a_forward_that_changes_its_input():
    def forward(self, a):
        np.maximum(a, 0, out=a)
        return a

    assert "changed its input a in place" in failure(broken(ops.ReLU, forward=forward), [(4,)])


def relu_masking_out_grad(self, g, node):
    g.data[node.inputs[0].data <= 0] = 0
    return (g,)  # the right numbers, but the engine may have handed this g to another op too


def abs_taking_the_sign_of_its_input(self, g, node):
    (a,) = node.inputs
    a.data[:] = np.sign(a.data)
    return (g * Tensor(a.data),)


@pytest.mark.parametrize("op, backward, expected", [
    (ops.ReLU, relu_masking_out_grad, "ReLU.backward changed out_grad in place (its .data); the engine may hand "
                                      "the same out_grad to several ops (Add returns it"),
    (ops.Abs, abs_taking_the_sign_of_its_input, "Abs.backward changed a in place (its .data); other ops read a too"),
], ids=["out_grad", "input"])
def test_a_backward_that_changes_a_tensor_in_place(op, backward, expected):
    message = failure(broken(op, backward=backward), [(6,)])
    assert message.startswith(expected) and "Compute a new Tensor instead" in message


# --- the backward: the usual mistakes --------------------------------------------------------------


def test_operands_swapped_in_the_formulas():
    def backward(self, g, node):
        a, b = node.inputs
        return g * a, g * b

    message = failure(broken(ops.Mul, backward=backward), [(2, 3), (2, 3)])
    assert message.startswith("Mul.backward (a: (2, 3), b: (2, 3)): the gradient for input 0 (a) is wrong")
    assert "it is the gradient for input 1 (b): the operands are swapped" in message


def test_gradients_returned_in_the_wrong_order():
    def backward(self, g, node):
        a, b = node.inputs
        return -g * a / (b * b), g / b

    assert "the operands are swapped" in failure(broken(ops.Div, backward=backward), [(3,), (3,)])


def test_gradient_not_summed_over_broadcast_axes():
    def backward(self, g, node):
        a, b = node.inputs
        return g * b, g * a

    message = failure(broken(ops.Mul, backward=backward), [(2, 3), (3,)])
    assert "the gradient for input 0 (a) has shape (2, 3)" not in message  # a was not broadcast
    assert "the gradient for input 1 (b) has shape (2, 3), expected shape (3,)" in message
    assert "unbroadcast(grad, b.shape)" in message and "Summed that way, your numbers are right" in message


def test_gradient_not_summed_over_a_stretched_size_one_axis():
    def backward(self, g, node):
        return g, -g

    message = failure(broken(ops.Sub, backward=backward), [(2, 3), (2, 1)])
    assert "has shape (2, 3), expected shape (2, 1)" in message and "unbroadcast" in message


def test_matmul_gradient_transposed():
    def backward(self, g, node):
        a, b = node.inputs
        return (g @ b.T).T, a.T @ g

    message = failure(broken(ops.MatMul, backward=backward), [(3, 2), (2, 4)])
    assert "input 0 (a) has shape (2, 3), expected shape (3, 2)" in message
    assert "the shape is the transpose of a's" in message
    assert "dL/dA = G @ Bᵀ: (3, 4) @ (4, 2) gives (3, 2)" in message


def test_matmul_gradient_in_the_wrong_order_on_square_matrices():
    def backward(self, g, node):
        a, b = node.inputs
        return b @ g, a.T @ g

    message = failure(broken(ops.MatMul, backward=backward), [(3, 3), (3, 3)])
    assert "your gradient for A equals B @ G, but it is G @ Bᵀ" in message


def test_matmul_gradient_transposed_on_square_matrices():
    def backward(self, g, node):
        a, b = node.inputs
        return g @ b.T, g.T @ a

    message = failure(broken(ops.MatMul, backward=backward), [(3, 3), (3, 3)])
    assert "input 1 (b)" in message and "Gᵀ @ A, the transpose of the right answer" in message


def test_matmul_with_shapes_that_do_not_fit():
    def backward(self, g, node):
        a, b = node.inputs
        return b @ g, a.T @ g

    message = failure(broken(ops.MatMul, backward=backward), [(2, 3), (3, 4)])
    assert "MatMul.backward raised ValueError" in message
    assert "dL/dA = G @ Bᵀ: (2, 4) @ (4, 3) gives (2, 3)" in message


def test_batched_matmul_not_summed_over_the_batch():
    def backward(self, g, node):
        a, b = node.inputs
        return g @ swap_last(b), swap_last(a) @ g

    message = failure(broken(ops.MatMul, backward=backward), [(2, 3), (5, 3, 4)])
    assert "input 0 (a) has shape (5, 2, 3), expected shape (2, 3)" in message
    assert "unbroadcast(grad, a.shape)" in message and "batch axes" in message


def test_matmul_with_dot_t_fails_on_a_batch_with_the_batch_rule():
    def backward(self, g, node):  # right for matrices; .T reverses every axis of a stack
        a, b = node.inputs
        return g @ b.T, a.T @ g

    check_function(broken(ops.MatMul, backward=backward), [(2, 3), (3, 4)])
    message = failure(broken(ops.MatMul, backward=backward), [(4, 2, 3), (3, 2)])
    assert "MatMul.backward raised ValueError" in message
    assert "ᵀ swaps the last two axes only" in message and "(unbroadcast)" in message


def test_broadcast_to_summed_over_axis_0_gets_the_unbroadcast_hint():
    backward = lambda self, g, node: (g.sum(axis=0),)  # noqa: E731 -- right only when axis 0 was added
    check_function(broken(ops.BroadcastTo, backward=backward), [(3,)], kwargs={"shape": (2, 3)})
    message = failure(broken(ops.BroadcastTo, backward=backward), [(3, 1)], kwargs={"shape": (3, 4)})
    assert "has shape (4,), expected shape (3, 1)" in message
    assert "unbroadcast(out_grad, a.shape)" in message and "one fixed axis (such as axis=0)" in message


def test_forgot_out_grad():
    message = failure(broken(ops.Exp, backward=lambda self, g, node: (node,)), [(2, 3)])
    assert "it is the gradient for out_grad = 1 everywhere: multiply by out_grad" in message


def test_forgot_out_grad_in_add():
    def backward(self, g, node):
        a, b = node.inputs
        return Tensor(np.ones(a.shape)) + 0 * g, Tensor(np.ones(b.shape)) + 0 * g

    assert "out_grad = 1 everywhere" in failure(broken(ops.Add, backward=backward), [(2, 2), (2, 2)])


def test_sign_flipped():
    def backward(self, g, node):
        return g, g

    message = failure(broken(ops.Sub, backward=backward), [(3,), (3,)])
    assert "input 1 (b)" in message and "every value has the wrong sign" in message


def test_constant_factor():
    message = failure(broken(ops.Tanh, backward=lambda self, g, node: (2 * g * (1 - node * node),)), [(4,)])
    assert "every value is 2 times the expected one: a constant factor is off" in message


def test_wrong_number_of_gradients():
    def backward(self, g, node):
        a, b = node.inputs
        return (g * b,)

    message = failure(broken(ops.Mul, backward=backward), [(2,), (2,)])
    assert "Mul.backward returned 1 gradient, but Mul has 2 inputs (a, b)" in message
    assert "`return grad_a, grad_b`" in message


def test_a_lone_tensor_for_two_inputs():
    message = failure(broken(ops.Add, backward=lambda self, g, node: g), [(2,), (2,)])
    assert "returned a Tensor; it must return a tuple with one gradient per input, here 2 (a, b)" in message


def test_numpy_array_instead_of_a_tensor():
    def backward(self, g, node):
        a, b = node.inputs
        return g.data * b.data, g.data * a.data

    message = failure(broken(ops.Mul, backward=backward), [(2,), (2,)])
    assert "the gradient for input 0 (a) is a NumPy array, not a Tensor" in message
    assert "Tensor operations" in message


@pytest.mark.parametrize("op, backward, shapes, expected", [
    (ops.Mul, lambda self, g, node: (g * Tensor(node.inputs[1].data), g * node.inputs[0]), [(2,), (2,)],
     "the gradient for input 0 (a) has the right numbers, but it depends on b and its graph does not lead back to b"),
    (ops.Exp, lambda self, g, node: (g * Tensor(node.data),), [(2,)],
     "the gradient for input 0 (a) has the right numbers, but it depends on a"),
], ids=["Mul", "Exp"])
def test_a_gradient_built_from_copies_of_the_inputs(op, backward, shapes, expected):
    message = failure(broken(op, backward=backward), shapes)
    assert expected in message and "a gradient built from copies cannot be differentiated again" in message


def test_a_tensor_wrapped_around_numpy():
    def backward(self, g, node):
        a, b = node.inputs
        return Tensor(g.data * b.data), Tensor(g.data * a.data)

    message = failure(broken(ops.Mul, backward=backward), [(2,), (2,)])
    assert "has the right numbers, but it is not computed from out_grad with Tensor operations" in message


def test_none_for_an_input_that_requires_grad():
    def backward(self, g, node):
        a, b = node.inputs
        return g * b * a ** (b - 1), None

    message = failure(broken(ops.Pow, backward=backward), [(2,), (2,)])
    assert "input 1 (b) is None, but b requires a gradient" in message


def test_reduction_gradient_with_the_outputs_shape():
    message = failure(broken(ops.Sum, backward=lambda self, g, node: (g,)), [(3, 4)], kwargs={"axis": 0})
    assert "has shape (4,), expected shape (3, 4)" in message
    assert "reshape out_grad to the shape the output has with keepdims=True, then broadcast_to (3, 4)" in message


def max_with_argmax(self, g, node):
    """Right for an int axis, but np.argmax takes no tuple."""
    (a,) = node.inputs
    mask = np.zeros(a.shape)
    np.put_along_axis(mask, np.expand_dims(np.argmax(a.data, axis=self.axis), self.axis), 1, axis=self.axis)
    return (g.reshape(mask.sum(axis=self.axis, keepdims=True).shape) * Tensor(mask),)


@pytest.mark.parametrize("op, backward, kwargs, raised, hint, not_hint", [
    (ops.Sum, lambda self, g, node: (g.broadcast_to(node.inputs[0].shape),), {"axis": 1},
     "Sum(axis=1, keepdims=False).backward raised ValueError",
     "reshape it to the shape the output has with keepdims=True, (2, 1, 4)", "axis may be None"),
    (ops.Max, max_with_argmax, {"axis": (0, 2), "keepdims": True},
     "Max(axis=(0, 2), keepdims=True).backward raised TypeError",
     "here axis=(0, 2). axis may be None (every axis), an int, or a tuple of ints", "then broadcast_to"),
], ids=["broadcast-without-reshape", "argmax-on-a-tuple"])
def test_a_reduction_that_raises_gets_a_hint_that_fits_the_error(op, backward, kwargs, raised, hint, not_hint):
    message = failure(broken(op, backward=backward), [(2, 3, 4)], kwargs=kwargs)
    assert raised in message and hint in message and not_hint not in message


def test_right_numbers_in_the_wrong_shape():
    message = failure(broken(ops.Reshape, backward=lambda self, g, node: (g,)), [(3, 4)], kwargs={"shape": (2, 6)})
    assert "the numbers are right, but the shape is not: reshape to (3, 4)" in message


@pytest.mark.parametrize("op, backward, shapes, kwargs, hint", [
    (ops.ReLU, lambda self, g, node: (g * Tensor(node.inputs[0].data < 0),), [(6,)], {},
     "the mask is the wrong way round"),
    (ops.Tanh, lambda self, g, node: (g * (1 - node),), [(5,)], {}, "the square is missing"),
    (ops.Sigmoid, lambda self, g, node: (g * node,), [(5,)], {}, "the factor (1 - s) is missing"),
    (ops.Log, lambda self, g, node: (g / node,), [(5,)], {}, "not by the output log(a)"),
    (ops.Sqrt, lambda self, g, node: (g / node,), [(5,)], {}, "the factor 1/2 is missing"),
    (ops.Abs, lambda self, g, node: (g * 1,), [(2,)], {}, "the sign is missing"),
    (ops.Transpose, lambda self, g, node: (g.transpose(self.axes),), [(2, 3, 4)], {"axes": (1, 2, 0)},
     "undo the permutation instead, with its inverse np.argsort(axes) = (2, 0, 1)"),
    (ops.Max, lambda self, g, node: (g.reshape(3, 1).broadcast_to((3, 4)),), [(3, 4)], {"axis": 1},
     "only the elements that are the maximum affect the output"),
    (ops.Sum, lambda self, g, node: (g.reshape(3, 1),), [(3, 4)], {"axis": 1},
     "(3, 1) is the kept shape, the output's shape with keepdims=True: now broadcast_to((3, 4))"),
    (ops.Max, lambda self, g, node: (g.reshape(3, 1),), [(3, 4)], {"axis": 1},
     "(3, 1) is the kept shape, the output's shape with keepdims=True: now multiply it by the mask"),
])
def test_hints_for_one_ops_usual_slips(op, backward, shapes, kwargs, hint):
    assert hint in failure(broken(op, backward=backward), shapes, kwargs=kwargs)


@pytest.mark.parametrize("backward", [
    lambda self, g, node: (g.reshape(3, 1) * (node.inputs[0] == node.reshape(3, 1)),),
    lambda self, g, node: ((g.reshape(3, 1) * Tensor(node.inputs[0].data == node.reshape(3, 1))).broadcast_to((3, 4)),),
])
def test_a_max_mask_from_comparing_tensors_is_right(backward, capsys):
    # == on Tensors is elementwise, as in NumPy: these masks are right (they were one False once).
    check_function(broken(ops.Max, backward=backward), [(3, 4)], kwargs={"axis": 1})
    assert "backward matches numeric gradients" in capsys.readouterr().out


def test_mean_without_the_division():
    def backward(self, out_grad, node):
        (a,) = node.inputs
        return (out_grad.reshape(a.shape[0], 1).broadcast_to(a.shape),)

    message = failure(broken(Mean, backward=backward), [(3, 4)], kwargs={"axis": 1},
                      reference=lambda a: a.mean(axis=1))
    assert "each output is the mean of 4 elements" in message


def test_transpose_that_raises_gets_the_calling_convention():
    message = failure(broken(ops.Transpose, backward=lambda self, g, node: (g.transpose((0,)),)), [(3, 4)])
    assert "Transpose(axes=None).backward raised ValueError" in message
    assert "Tensor.transpose takes a tuple of axes" in message and "out_grad.T" in message


def test_transpose_with_negative_axes_inverted_as_they_are():
    def backward(self, g, node):
        return (g.transpose(tuple(int(axis) for axis in np.argsort(self.axes))),)

    message = failure(broken(ops.Transpose, backward=backward), [(2, 3, 4)], kwargs={"axes": (-1, 0, 1)})
    assert "np.argsort((-1, 0, 1)) sorts the negative axes first; make the axes positive with axis % ndim before " \
           "inverting: the inverse permutation is (1, 2, 0)" in message


def test_pow_exponent_without_log():
    def backward(self, g, node):
        a, b = node.inputs
        return g * b * a ** (b - 1), g * node

    assert "the factor log(a) is missing" in failure(broken(ops.Pow, backward=backward), [(3,), (3,)])


def test_the_learners_parameter_names_are_used():
    class Hypot(Function):
        def forward(self, x, y):
            return np.sqrt(x * x + y * y)

        def backward(self, out_grad, node):
            x, y = node.inputs
            return out_grad * x / node, out_grad * x / node  # y's is wrong

    message = failure(Hypot, [(3,), (3,)], reference=lambda x, y: np.hypot(x, y))
    assert "Hypot.backward (x: (3,), y: (3,)): the gradient for input 1 (y) is wrong" in message


# --- code that is not written yet, and other errors --------------------------------------------------


def test_an_unwritten_backward():
    def backward(self, g, node):
        raise NotImplementedError()

    message = failure(broken(ops.Exp, backward=backward), [(2,)])
    assert message.startswith("Exp.backward is not written yet: it raises NotImplementedError")


def test_an_unwritten_helper_is_named():
    def unbroadcast(grad, shape):
        raise NotImplementedError()

    def backward(self, g, node):
        a, b = node.inputs
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)

    message = failure(broken(ops.Add, backward=backward), [(2,), (2,)])
    assert "Add.backward calls" in message and "unbroadcast, which is not written yet" in message


def test_an_op_that_is_not_a_function_subclass():
    with pytest.raises(TypeError, match="subclass of autodiff_ref.Function"):
        check_function(lambda a: a, [(2,)])


def test_an_op_without_a_reference():
    class Cube(Function):
        def forward(self, a):
            return a**3

        def backward(self, out_grad, node):
            return (out_grad * 3 * node.inputs[0] ** 2,)

    with pytest.raises(ValueError, match="pass reference="):
        check_function(Cube, [(2,)])
    check_function(Cube, [(2,)], reference=lambda a: a**3)


def test_real_inputs_have_both_signs():
    # With one sign only, a relu without its mask or an abs without its sign would pass.
    for seed in range(50):
        message = failure(broken(ops.ReLU, backward=lambda self, g, node: (g * 1,)), [(2,)], seed=seed)
        assert "the mask is missing" in message


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_domains_keep_inputs_where_the_op_is_defined(capsys):
    check_function(written_copy(ops.Log), [(50,)])  # the default domain for Log is positive
    with pytest.raises(CheckFailure, match="nan"):
        check_function(written_copy(ops.Log), [(50,)], domain="real")


# --- unbroadcast -----------------------------------------------------------------------------------


def unbroadcast_failure(fn) -> str:
    with pytest.raises(CheckFailure) as caught:
        check_unbroadcast(fn)
    return str(caught.value)


def test_the_reference_unbroadcast_passes_when_written_by_hand(capsys):
    check_unbroadcast(written_copy(ops.unbroadcast))
    assert capsys.readouterr().out.startswith("✓ unbroadcast")


# --- the reference op instead of the learner's own --------------------------------------------------


class MulCallingTheReference(Function):
    """Its own forward, and a backward that hands the work to autodiff_ref's."""

    def forward(self, a, b):
        return a * b

    def backward(self, out_grad, node):
        return ops.Mul.backward(self, out_grad, node)


class MulRunningTheReferenceEngine(Function):
    """A backward that differentiates the reference op with the reference engine."""

    def forward(self, a, b):
        return a * b

    def backward(self, out_grad, node):
        a, b = (Tensor(t.data, requires_grad=True) for t in node.inputs)
        ops.Mul()(a, b).backward(out_grad.data)
        return Tensor(a.grad), Tensor(b.grad)


class MulTakingTheReferenceBackward(Function):
    def forward(self, a, b):
        return a * b

    backward = ops.Mul.backward


@pytest.mark.parametrize(
    "op, expected",
    [
        (ops.Mul, "Your Mul is autodiff_ref.ops.Mul, the reference implementation, imported instead of written"),
        (type("Mul", (ops.Mul,), {}), "Your Mul subclasses autodiff_ref.ops.Mul and inherits its backward, the "
                                      "reference implementation: this exercise asks you to write backward yourself. "
                                      "Subclass Function instead"),
        (type("Mul", (ops.Mul,), {"forward": lambda self, a, b: a * b}), "inherits its backward"),
        (type("Mul", (MulTakingTheReferenceBackward,), {}),
         "Your Mul.backward is autodiff_ref.ops.Mul.backward, the reference implementation, taken over"),
        (type("Mul", (MulCallingTheReference,), {}),
         "Your Mul calls autodiff_ref.ops.Mul.backward, the reference implementation, from "
         "MulCallingTheReference.backward (line "),
        (type("Mul", (MulRunningTheReferenceEngine,), {}),
         "Your Mul calls autodiff_ref.ops.Mul.backward, the reference implementation, from "
         "MulRunningTheReferenceEngine.backward (line "),
    ],
    ids=["imported", "subclassed", "subclassed-own-forward", "method-taken-over", "calls-it", "runs-its-engine"],
)
def test_the_reference_op_instead_of_ones_own_fails(op, expected, capsys):
    message = failure(op, [(2, 3), (2, 3)])
    assert message.startswith("Your Mul") and expected in message
    assert "✓" not in capsys.readouterr().out  # no pass line before the failure


def test_a_subclass_of_the_reference_with_its_own_backward_passes(capsys):
    class Mul(ops.Mul):
        def backward(self, out_grad, node):
            a, b = node.inputs
            return out_grad * b, out_grad * a

    check_function(Mul, [(2, 3), (2, 3)])
    assert capsys.readouterr().out.startswith("✓ Mul")


def test_other_reference_ops_and_unbroadcast_may_be_used_in_a_backward(capsys):
    class Div(Function):  # its backward runs ops.Mul, ops.Div and ops.unbroadcast: all allowed here
        def forward(self, a, b):
            return a / b

        def backward(self, out_grad, node):
            a, b = node.inputs
            return (ops.unbroadcast(out_grad / b, a.shape),
                    ops.unbroadcast(-out_grad * a / (b * b), b.shape))

    check_function(Div, [(2, 3), (3,)])
    check_function(written_copy(ops.Mul), [(2, 3), (3,)])  # Mul.backward runs the reference ops.unbroadcast
    assert capsys.readouterr().out.count("✓") == 2


def test_the_reference_unbroadcast_instead_of_ones_own_fails():
    def calls_it(grad, shape):
        return ops.unbroadcast(grad, shape)

    with pytest.raises(CheckFailure, match="Your unbroadcast is autodiff_ref.ops.unbroadcast, the reference"):
        check_unbroadcast(ops.unbroadcast)
    with pytest.raises(CheckFailure, match=r"Your unbroadcast calls autodiff_ref.ops.unbroadcast, the reference "
                                           r"implementation, from .*calls_it \(line \d+\)"):
        check_unbroadcast(calls_it)


def test_unbroadcast_that_sums_nothing():
    message = unbroadcast_failure(lambda grad, shape: grad)
    assert "unbroadcast(grad of shape (2, 3), (3,)) has shape (2, 3), expected shape (3,)" in message
    assert "nothing was summed" in message


def test_unbroadcast_that_keeps_the_leading_axes():
    def keeps_leading(grad, shape):
        added = grad.ndim - len(shape)
        return learner_unbroadcast(grad, (1,) * added + tuple(shape))

    assert "summed with keepdims=True, so they are still there" in unbroadcast_failure(keeps_leading)


def test_unbroadcast_that_only_sums_leading_axes():
    def leading_only(grad, shape):
        added = grad.ndim - len(shape)
        return grad.sum(axis=tuple(range(added))) if added else grad

    with pytest.raises(CheckFailure, match="the stretched axes were not summed"):
        check_unbroadcast(leading_only, cases=[((4, 2, 3), (2, 1))])
    # Where broadcasting added no axis, summing only leading axes sums nothing; the recipe says
    # which axis was stretched.
    message = unbroadcast_failure(leading_only)
    assert "nothing was summed" in message
    assert "Here, from (2, 3) to (1, 3): sum over the stretched axes (0,) (size 1 in shape) with keepdims=True" in message


def test_unbroadcast_that_drops_stretched_axes():
    def drops(grad, shape):
        added = grad.ndim - len(shape)
        stretched = tuple(added + i for i, n in enumerate(shape) if n == 1 and grad.shape[added + i] != 1)
        return grad.sum(axis=tuple(range(added)) + stretched) if added or stretched else grad

    assert "summed without keepdims=True, so they disappeared" in unbroadcast_failure(drops)


def test_unbroadcast_with_a_mean():
    def mean(grad, shape):
        out = learner_unbroadcast(grad, shape)
        return out * (out.size / grad.size)

    assert "times the expected one: a constant factor is off" in unbroadcast_failure(mean)


def test_unbroadcast_on_numpy():
    def on_numpy(grad, shape):
        return Tensor(learner_unbroadcast(grad, shape).data) if grad.shape != tuple(shape) else grad

    assert "not computed from grad with Tensor operations" in unbroadcast_failure(on_numpy)
    assert "is a NumPy array, not a Tensor" in unbroadcast_failure(lambda grad, shape: grad.data)


def test_unbroadcast_not_written():
    def unbroadcast(grad, shape):
        raise NotImplementedError()

    assert unbroadcast_failure(unbroadcast).startswith("unbroadcast is not written yet")
