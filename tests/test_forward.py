"""Forward mode: dual numbers against analytic and numeric derivatives, JVPs, Jacobians."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodiff_ref import Tensor
from autodiff_ref import forward as fw
from autodiff_ref.forward import Dual
from autodiff_ref.scalar import Value

def numeric_jacobian(f, x, eps=1e-6):
    """Central differences, one column per entry of x: shape f(x).shape + x.shape."""
    columns = []
    for j in range(x.size):
        step = np.zeros_like(x)
        step.flat[j] = eps
        columns.append((np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * eps))
    out_shape = np.shape(f(x))
    return np.stack(columns, axis=-1).reshape(out_shape + x.shape)


FUNCTIONS = {
    "exp": (fw.exp, math.exp),
    "log": (fw.log, lambda x: 1 / x),
    "sin": (fw.sin, math.cos),
    "cos": (fw.cos, lambda x: -math.sin(x)),
    "tanh": (fw.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "sqrt": (fw.sqrt, lambda x: 0.5 / math.sqrt(x)),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@settings(max_examples=25)
@given(x=st.floats(0.2, 3.0), tangent=st.floats(-2.0, 2.0))
def test_elementary_functions_apply_the_chain_rule(name, x, tangent):
    f, df = FUNCTIONS[name]
    out = f(Dual(x, tangent))
    assert out.value == pytest.approx(float(f(x)))
    assert out.tangent == pytest.approx(df(x) * tangent, abs=1e-12)


@settings(max_examples=25)
@given(a=st.floats(0.3, 3.0), b=st.floats(0.3, 3.0))
def test_arithmetic_matches_central_differences(a, b):
    def f(x):  # runs on floats and on Duals alike
        return (x * b - a / x) * (x + 1.5) - 3 / x + x**2.5 - (2 - x) + 2**x + x**x - -x

    expected = (f(a + 1e-6) - f(a - 1e-6)) / 2e-6
    assert fw.derivative(f)(a) == pytest.approx(expected, rel=1e-5)
    assert f(Dual(a, 1.0)).value == pytest.approx(f(a))


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_duals_and_arrays_on_either_side(seed):
    rng = np.random.default_rng(seed)
    c, M = rng.uniform(0.5, 2.0, 3), rng.standard_normal((3, 3))

    def f(v):  # every operator meets a Dual on one side, an array or a Dual on the other
        u, w = v * c + 1.0, c - v
        return (u * w) / (c + v**2) + (M @ v) * (v @ M) - c / (2.0 + u) + c**v + (u @ w)

    x = rng.uniform(0.3, 1.5, 3)
    J = fw.jacobian_forward(f, x)
    np.testing.assert_allclose(J, numeric_jacobian(f, x), rtol=1e-6, atol=1e-8)


def test_derivative_of_a_constant_function_is_zero():
    assert fw.derivative(lambda x: 3.0)(1.0) == 0.0
    assert (-Dual(2.0, 1.0)).tangent == -1.0


def test_jacobian_of_tanh_of_a_matrix_product():
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    J = fw.jacobian_forward(lambda v: fw.tanh(W @ v), x)
    assert J.shape == (3, 4)
    numeric = numeric_jacobian(lambda v: np.tanh(W @ v), x)
    np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-9)


def test_jacobian_of_a_mixed_function():
    x = np.array([0.4, 1.3, 2.1])

    def f(v):  # the fw functions take arrays as well as Duals, so f runs on both
        return fw.sin(v) * fw.exp(v[::-1]) + fw.log(v) / fw.sqrt(v) + fw.cos(v[0] * v[2])

    J = fw.jacobian_forward(f, x)
    np.testing.assert_allclose(J, numeric_jacobian(f, x), rtol=1e-6, atol=1e-9)


def test_jacobian_shape_is_output_shape_then_input_shape():
    x = np.array([[0.5, 1.0], [1.5, 2.0]])
    J = fw.jacobian_forward(lambda v: v[0, 0] ** 2 + v[0, 1] ** 2 + v[1, 0] ** 2 + v[1, 1] ** 2, x)
    assert J.shape == (2, 2)
    np.testing.assert_allclose(J, 2 * x)
    J = fw.jacobian_forward(lambda v: fw.sin(v) * 3.0, x)
    assert J.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(J, numeric_jacobian(lambda v: np.sin(v) * 3.0, x), atol=1e-8)


def test_derivative_is_elementwise_on_arrays():
    x = np.linspace(0.5, 2.0, 5)
    np.testing.assert_allclose(fw.derivative(lambda v: fw.log(v) * v)(x), np.log(x) + 1)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1))
def test_jvp_matches_finite_differences_and_reverse_mode(seed):
    rng = np.random.default_rng(seed)
    W, x, v = rng.standard_normal((2, 3)), rng.standard_normal(3), rng.standard_normal(3)

    def f(z):
        return fw.tanh(W @ z) * 2.0

    value, tangent = fw.jvp(f, x, v)
    np.testing.assert_allclose(value, 2 * np.tanh(W @ x))
    along_v = (f(x + 1e-6 * v) - f(x - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(tangent, along_v, rtol=1e-5, atol=1e-8)
    # Row i of the Jacobian by reverse mode, dotted with v, is entry i of J v.
    for i in range(2):
        xt = Tensor(x, requires_grad=True)
        ((Tensor(W) @ xt).tanh() * 2.0)[i].backward()
        assert float(xt.grad @ v) == pytest.approx(tangent[i], rel=1e-10, abs=1e-12)


def exp(x):
    """exp of a Value or Tensor by its own method, of a Dual or float by forward mode."""
    return x.exp() if isinstance(x, (Value, Tensor)) else fw.exp(x)


def tanh(x):
    return x.tanh() if isinstance(x, (Value, Tensor)) else fw.tanh(x)


@settings(max_examples=25)
@given(x=st.floats(-2.0, 2.0))
def test_value_dual_and_tensor_agree(x):
    def f(x):  # one expression, three engines
        return tanh(x * x * 3.0 - 1.0) / (1.0 + exp(-x)) + (2.0 - x) ** 3

    by_forward_mode = fw.derivative(f)(x)
    value = Value(x)
    f(value).backward()
    tensor = Tensor(x, requires_grad=True)
    f(tensor).backward()
    assert value.grad == pytest.approx(by_forward_mode, rel=1e-10, abs=1e-12)
    assert float(tensor.grad) == pytest.approx(by_forward_mode, rel=1e-10, abs=1e-12)
    assert by_forward_mode == pytest.approx((f(x + 1e-6) - f(x - 1e-6)) / 2e-6, rel=1e-5, abs=1e-7)


def test_bad_input():
    with pytest.raises(TypeError, match="value is a number or a numeric array, got str"):
        Dual("1.0", 1.0)
    with pytest.raises(TypeError, match="tangent is a number or a numeric array, got list"):
        Dual(1.0, ["a"])
    with pytest.raises(TypeError, match="not str"):
        Dual(1.0, 1.0) + "a"
    with pytest.raises(ValueError, match="direction v of x's shape"):
        fw.jvp(lambda v: v, np.ones(3), np.ones(2))


def test_lists_are_arrays_not_sequences_to_join():
    out = Dual([1.0, 2.0], [1.0, 0.0]) + Dual((3.0, 4.0), (0.0, 1.0))
    np.testing.assert_array_equal(out.value, [4.0, 6.0])
    np.testing.assert_array_equal(out.tangent, [1.0, 1.0])
    np.testing.assert_array_equal((Dual([1.0, 2.0], [1.0, 0.0]) * 2.0).tangent, [2.0, 0.0])


@pytest.mark.parametrize("x", [0.0, np.zeros(2)], ids=["float", "array"])
def test_powers_at_zero_take_their_limits_like_the_scalar_engine(x):
    def slope(k):
        return np.asarray(fw.derivative(lambda v: v**k)(x))

    np.testing.assert_array_equal(slope(0), 0.0)  # x^0 = 1 is constant, also at 0
    np.testing.assert_array_equal(slope(1), 1.0)
    np.testing.assert_array_equal(slope(2), 0.0)
    np.testing.assert_array_equal(slope(0.5), np.inf)  # sqrt is vertical at 0


def test_a_dual_exponent_that_does_not_move_leaves_bases_down_to_zero_and_below_alone():
    # exp(y log x) would give nan for x = -2 and divide by zero for x = 0, though x^2 is fine.
    for base in (-2.0, 0.0, 3.0):
        out = Dual(base, 1.0) ** Dual(2.0, 0.0)
        assert out.value == pytest.approx(base**2)
        assert out.tangent == pytest.approx(2 * base)
    out = Dual(2.0, 1.0) ** Dual(3.0, 1.0)  # both move: 3·2²·1 + 2³·log 2·1
    assert out.value == pytest.approx(8.0) and out.tangent == pytest.approx(12 + 8 * math.log(2))
    assert math.isnan((Dual(-2.0, 1.0) ** Dual(2.0, 1.0)).tangent)  # d/dy (-2)^y does not exist


def test_float32_duals_stay_float32_next_to_float32_arrays():
    x = Dual(np.ones(2, np.float32), np.ones(2, np.float32))
    for out in (x * np.ones(2, np.float32), x + np.ones(2, np.float32), x**2):
        assert out.value.dtype == np.float32 and out.tangent.dtype == np.float32


def test_jacobian_of_a_function_of_no_numbers_is_empty():
    assert fw.jacobian_forward(lambda v: v * 2.0, []).shape == (0, 0)
    assert fw.jacobian_forward(lambda v: np.ones(3), np.zeros((0, 2))).shape == (3, 0, 2)
