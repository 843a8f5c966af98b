"""Bad input to the tensor engine fails loudly, with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Function, Tensor, grad, no_grad, ops
from autodiff_ref.gradcheck import gradcheck, numeric_grad


def re_shape(shape: tuple[int, ...]) -> str:
    """A regular expression for a shape written as Python (``(2, 3)``) or NumPy (``(2,3)``) does."""
    return str(shape).replace("(", r"\(").replace(")", r"\)").replace(", ", ", ?")


# -- backward() ----------------------------------------------------------------------------------------
def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor([1.0, 2.0]) * 3).sum().backward()


def test_backward_on_a_tensor_computed_under_no_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        loss = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"does not require grad.*no_grad"):
        loss.backward()


def test_backward_on_a_non_scalar_without_grad():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"one element.*shape \(2, 3\).*grad="):
        y.backward()


@pytest.mark.parametrize("wrong", [np.ones(3), np.ones((3, 2)), 1.0, np.ones((1, 2, 3))], ids=lambda w: str(np.shape(w)))
def test_backward_with_a_grad_of_the_wrong_shape(wrong):
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    wrong_shape = np.shape(wrong)
    with pytest.raises(ValueError, match=rf"gradient of shape {re_shape(wrong_shape)} for a tensor of shape \(2, 3\)"):
        y.backward(grad=wrong)


# -- shapes that do not fit ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (2,)), ((2, 3, 4), (5, 4, 2))],
)
def test_matmul_of_incompatible_shapes_names_both(shape_a, shape_b):
    a, b = Tensor(np.ones(shape_a), requires_grad=True), Tensor(np.ones(shape_b))
    for call in (lambda: a @ b, lambda: a.matmul(b), lambda: a @ np.ones(shape_b)):
        with pytest.raises(ValueError, match=rf"MatMul.*{re_shape(shape_a)}.*{re_shape(shape_b)}"):
            call()


def test_matmul_of_a_0d_tensor():
    with pytest.raises(ValueError, match=r"MatMul.*\(\).*\(3,\)"):
        Tensor(2.0) @ Tensor(np.ones(3))


@pytest.mark.parametrize("operator", ["+", "-", "*", "/", "**"])
def test_elementwise_ops_on_shapes_that_do_not_broadcast_name_both(operator):
    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones(4))
    apply = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "**": lambda: a**b}
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        apply[operator]()


def test_broadcast_to_an_incompatible_shape_names_both():
    with pytest.raises(ValueError, match=r"BroadcastTo.*\(3,\).*\(4,\)"):
        Tensor(np.ones(3), requires_grad=True).broadcast_to((4,))
    with pytest.raises(ValueError, match=rf"BroadcastTo.*\(2, 3\).*{re_shape((4, 2))}"):
        Tensor(np.ones((2, 3))).broadcast_to((4, 2))


def test_broadcast_to_fewer_axes_names_both_shapes():
    with pytest.raises(ValueError, match=r"BroadcastTo.*\(2, 3\).*\(3,\)"):
        Tensor(np.ones((2, 3))).broadcast_to((3,))


def test_reshape_to_a_different_size_names_both():
    with pytest.raises(ValueError, match=r"Reshape.*\(2, 3\).*\(4,\)"):
        Tensor(np.ones((2, 3)), requires_grad=True).reshape(4)


# -- a Function whose backward is wrong ------------------------------------------------------------------
def op_returning(make_grads):
    """A Function computing a + b whose backward returns ``make_grads(g, a, b)``."""

    class BrokenAdd(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g, node):
            return make_grads(g, *node.inputs)

    return BrokenAdd()


def run_backward(op: Function, shape_b: tuple[int, ...] = (2, 3)) -> None:
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(shape_b), requires_grad=True)
    op(a, b).sum().backward()


def test_backward_returning_too_few_gradients():
    with pytest.raises(TypeError, match=r"BrokenAdd\.backward.*one gradient per input \(2\).*returned 1"):
        run_backward(op_returning(lambda g, a, b: (g,)))


def test_backward_returning_too_many_gradients():
    with pytest.raises(TypeError, match=r"BrokenAdd\.backward.*one gradient per input \(2\).*returned 3"):
        run_backward(op_returning(lambda g, a, b: (g, g, g)))


def test_backward_returning_a_gradient_of_the_wrong_shape():
    # The classic mistake: forgetting to sum the gradient over the axis that broadcasting added.
    with pytest.raises(ValueError, match=r"BrokenAdd\.backward.*shape \(2, 3\) for input 1.*shape \(3,\)"):
        run_backward(op_returning(lambda g, a, b: (g, g)), shape_b=(3,))


def test_backward_returning_a_numpy_array():
    with pytest.raises(TypeError, match=r"BrokenAdd\.backward returned a ndarray for input 1.*Tensor"):
        run_backward(op_returning(lambda g, a, b: (g, g.data)))


def test_backward_returning_a_bare_numpy_array_instead_of_a_tuple():
    class BrokenExp(Function):
        def forward(self, a):
            return np.exp(a)

        def backward(self, g, node):
            return g.data * node.data

    with pytest.raises(TypeError, match=r"BrokenExp\.backward.*tuple.*returned a ndarray"):
        BrokenExp()(Tensor([1.0, 2.0], requires_grad=True)).sum().backward()


def test_backward_returning_none_for_an_input_that_requires_grad():
    with pytest.raises(TypeError, match=r"BrokenAdd\.backward returned None for input 0"):
        run_backward(op_returning(lambda g, a, b: (None, g)))


def test_function_without_forward_or_backward_names_itself():
    class Unfinished(Function):
        pass

    with pytest.raises(NotImplementedError, match="Unfinished does not define forward"):
        Unfinished()(Tensor([1.0]))


# -- data a Tensor cannot hold ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    ["abc", ["1.0", "2.0"], None, {"a": 1}, object(), 1 + 2j, [[1.0, 2.0], [3.0]]],
    ids=["str", "list of str", "None", "dict", "object", "complex", "ragged"],
)
def test_non_numeric_data(data):
    with pytest.raises(TypeError, match=r"a Tensor holds (real )?numbers: got " + type(data).__name__):
        Tensor(data)


@pytest.mark.parametrize(
    "operand",
    [
        None,
        ["a", "b"],
        object(),
        "3",
        "abc",
        b"4",
    ],
    ids=["None", "list of str", "object", "numeric str", "str", "bytes"],
)
def test_non_numeric_operand(operand):
    x = Tensor([1.0, 2.0], requires_grad=True)
    for combine in (lambda: x + operand, lambda: operand * x):
        with pytest.raises(TypeError, match="a Tensor holds (real )?numbers: got " + type(operand).__name__):
            combine()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_explicit_integer_dtype_with_requires_grad(dtype):
    with pytest.raises(TypeError, match=rf"only floating-point tensors can require gradients.*{np.dtype(dtype)}"):
        Tensor([1, 2, 3], dtype=dtype, requires_grad=True)


def test_explicit_integer_dtype_without_requires_grad_is_kept():
    assert Tensor([1, 2, 3], dtype=np.int64).dtype == np.int64


# -- the rest of the API --------------------------------------------------------------------------------------
def test_item_of_a_tensor_with_several_elements():
    with pytest.raises(ValueError, match=r"one element.*shape \(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_grad_of_a_function_that_does_not_return_one_element():
    with pytest.raises(TypeError, match=r"one-element Tensor, got \(3,\)"):
        grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="one-element Tensor, got float"):
        grad(lambda x: 2.0)(np.ones(3))


def test_numeric_grad_of_a_function_that_does_not_return_one_number():
    with pytest.raises(ValueError, match=r"single number, got shape \(3,\)"):
        numeric_grad(lambda x: x * 2, np.ones(3))


def test_gradcheck_of_a_function_that_does_not_return_a_tensor():
    with pytest.raises(TypeError, match="gradcheck needs f to return a Tensor, got float"):
        gradcheck(lambda x: 2.0, np.ones(3))


def test_unbroadcast_sums_to_the_given_shape():
    # Not bad input, but the tool the wrong-shape message above points to: check it does its job.
    g = Tensor(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(ops.unbroadcast(g, (3, 1)).data, g.data.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(ops.unbroadcast(g, (4,)).data, g.data.sum(axis=(0, 1)))
    np.testing.assert_array_equal(ops.unbroadcast(g, ()).data, g.data.sum())
