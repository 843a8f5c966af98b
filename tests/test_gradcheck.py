"""numeric_grad and gradcheck: the ground truth every other gradient test leans on."""

from __future__ import annotations

import re

import numpy as np
import pytest

from autodiff_ref import Function, Tensor, ops
from autodiff_ref.gradcheck import GradcheckError, gradcheck, numeric_grad


# -- numeric_grad ------------------------------------------------------------------------------------
def test_numeric_grad_of_known_functions():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal(3)
    grads = numeric_grad(lambda x, y: np.sum(x**2 * y) + np.sin(y).sum(), x, y)
    assert isinstance(grads, tuple) and len(grads) == 2
    assert grads[0].shape == x.shape and grads[1].shape == y.shape
    assert grads[0].dtype == np.float64 and grads[1].dtype == np.float64
    np.testing.assert_allclose(grads[0], 2 * x * y, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(grads[1], (x**2).sum(axis=0) + np.cos(y), rtol=1e-8, atol=1e-9)


def test_numeric_grad_of_one_input_is_still_a_tuple():
    (g,) = numeric_grad(lambda x: np.exp(x).sum(), np.array([0.0, 1.0]))
    np.testing.assert_allclose(g, np.exp([0.0, 1.0]), rtol=1e-8)


def test_numeric_grad_of_scalars_lists_and_tensor_valued_functions():
    (g,) = numeric_grad(lambda x: x**3, 2.0)
    assert g.shape == () and g.dtype == np.float64
    np.testing.assert_allclose(g, 12.0, rtol=1e-8)
    (g,) = numeric_grad(lambda x: (Tensor(x) ** 2).sum(), [1, 2, 3])  # f may return a Tensor
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0], rtol=1e-8)


def test_numeric_grad_works_in_float64_whatever_the_input_dtype():
    x = np.array([0.1, 0.7, 1.3], dtype=np.float32)
    seen = []

    def f(a: np.ndarray) -> float:
        seen.append(a.dtype)
        return float(np.sum(np.sin(a)))

    (g,) = numeric_grad(f, x)
    assert set(seen) == {np.dtype(np.float64)}
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, np.cos(x.astype(np.float64)), rtol=1e-8)


def test_numeric_grad_leaves_its_inputs_unchanged():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    before = x.copy()
    numeric_grad(lambda a: np.sum(a**2), x)
    np.testing.assert_array_equal(x, before)


def test_numeric_grad_with_a_given_step():
    # f(x) = x**3: the central difference is 3 x**2 + eps**2 exactly, so the step shows through.
    (g,) = numeric_grad(lambda x: x**3, 1.0, eps=0.1)
    np.testing.assert_allclose(g, 3.0 + 0.01, rtol=1e-12)


# -- gradcheck on correct ops ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "f, shapes",
    [
        (lambda a, b: (a * b).exp().sum(), [(2, 3), (3,)]),
        (lambda a: a.tanh() @ a.T, [(3, 2)]),  # a non-scalar output
        (lambda a, b: (a / b).log_softmax(axis=0), [(3, 2), (1, 2)]),
        (lambda a: a.max(axis=1) * a.sum(), [(2, 4)]),
    ],
)
def test_gradcheck_passes_on_correct_ops(f, shapes):
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(0.3, 2.0, size=s) * rng.choice([-1.0, 1.0], size=s) for s in shapes]
    assert gradcheck(f, *arrays) is True
    assert gradcheck(f, *[Tensor(a) for a in arrays]) is True  # Tensors are accepted too


def test_gradcheck_of_an_output_that_ignores_its_input():
    assert gradcheck(lambda a: Tensor([1.0, 2.0]), np.ones(3))


# -- gradcheck on wrong ops ---------------------------------------------------------------------------------
class MulWithWrongSecondGradient(Function):
    """a * b whose gradient for b is off by 10% (the one for a is right)."""

    def forward(self, a, b):
        return a * b

    def backward(self, g, node):
        a, b = node.inputs
        return g * b, g * a * 1.1


def numbers_after(word: str, message: str) -> float:
    match = re.search(word + r"\D*?(-?\d+(?:\.\d*)?(?:e[-+]?\d+)?)", message)
    assert match, f"no number after {word!r} in: {message}"
    return float(match.group(1))


def test_gradcheck_names_input_element_and_both_values():
    a = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    b = np.array([[1.0, 2.0, -3.0], [0.5, 4.0, 1.0]])
    with pytest.raises(GradcheckError) as failure:
        gradcheck(lambda a, b: MulWithWrongSecondGradient()(a, b).sum(), a, b)
    message = str(failure.value)
    # input 0 is right, so input 1 is the one named; its worst element is where |a| is largest.
    assert re.search(r"input 1\b", message), message
    assert "input 0" not in message
    assert re.search(r"element \[0, 2\]", message), message
    np.testing.assert_allclose(numbers_after("analytic", message), 2.0 * 1.1, rtol=1e-6)
    np.testing.assert_allclose(numbers_after("numeric", message), 2.0, rtol=1e-6)


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)


class ExpWithTinyError(Function):
    def forward(self, a):
        return np.exp(a)

    def backward(self, g, node):
        return (g * node * (1 + 1e-3),)


def test_gradcheck_tolerances():
    x = np.array([0.1, 0.5, 1.0])
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: ExpWithTinyError()(t), x)
    assert gradcheck(lambda t: ExpWithTinyError()(t), x, rtol=1e-2)
    assert gradcheck(lambda t: ExpWithTinyError()(t), x, atol=1e-2)


def test_a_wrong_gradient_for_a_0d_input_is_named_too():
    with pytest.raises(GradcheckError, match=r"input 0.*only element"):
        gradcheck(lambda t: ExpWithTinyError()(t) * 100, 2.0)


class DoubleWithAveragedGradient(Function):
    """2 a, but its backward spreads the mean of g over every element: right only when g is
    constant, as it is for the gradient of ``.sum()``."""

    def forward(self, a):
        return 2 * a

    def backward(self, g, node):
        (a,) = node.inputs
        return ((g.sum() * (2 / a.size)).broadcast_to(a.shape),)


def test_a_non_scalar_output_is_checked_along_a_random_direction():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    # Checking only the sum cannot see the mistake, because every element of g is 1 there ...
    assert gradcheck(lambda t: DoubleWithAveragedGradient()(t).sum(), x)
    # ... the random projection gradcheck uses for a non-scalar output does.
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: DoubleWithAveragedGradient()(t), x)
    for seed in range(3):
        with pytest.raises(GradcheckError):
            gradcheck(lambda t: DoubleWithAveragedGradient()(t), x, seed=seed)


class DoubleWithNanGradient(Function):
    """2 a, whose backward gives NaN for the first element, as a 0 * inf in a rule would."""

    def forward(self, a):
        return 2 * a

    def backward(self, g, node):
        return (g * 2 * ops.constant(np.where(np.arange(g.size) == 0, np.nan, 1.0)),)


def test_a_nan_gradient_is_counted_among_the_elements_that_are_off():
    # NaN > tolerance is False, so a count of elements above it would leave NaN out.
    with pytest.raises(GradcheckError, match=r"element \[0\] the analytic gradient is nan.*\(1 of 3 elements are off\)"):
        gradcheck(lambda t: DoubleWithNanGradient()(t).sum(), np.array([0.5, 1.0, 2.0]))


def test_numeric_grad_names_what_f_returned_instead_of_a_number():
    with pytest.raises(ValueError, match="single number, got a str"):
        numeric_grad(lambda x: "1.0 or so", np.ones(2))
    with pytest.raises(ValueError, match="single number, got a NoneType"):
        numeric_grad(lambda x: None, np.ones(2))
