"""Forward mode: dual numbers against analytic and numeric derivatives, JVPs, Jacobians."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodiff_ref import Tensor
from autodiff_ref import forward as fw
from autodiff_ref.forward import Dual

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
    def f(x):
        return (x * b - a / x) * (x + 1.5) - 3 / x + x**2.5 - (2 - x) + 2**x + x**x

    def plain(x):
        return (x * b - a / x) * (x + 1.5) - 3 / x + x**2.5 - (2 - x) + 2**x + x**x

    expected = (plain(a + 1e-6) - plain(a - 1e-6)) / 2e-6
    assert fw.derivative(f)(a) == pytest.approx(expected, rel=1e-5)
    assert f(Dual(a, 1.0)).value == pytest.approx(plain(a))


def test_derivative_of_a_constant_function_is_zero():
    assert fw.derivative(lambda x: 3.0)(1.0) == 0.0
    assert (-Dual(2.0, 1.0)).tangent == -1.0


def numeric_jacobian(f, x, eps=1e-6):
    columns = []
    for j in range(x.size):
        step = np.zeros_like(x)
        step.flat[j] = eps
        columns.append((np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * eps))
    return np.stack(columns, axis=-1)


def test_jacobian_of_tanh_of_a_matrix_product():
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    J = fw.jacobian_forward(lambda v: fw.tanh(W @ v), x)
    assert J.shape == (3, 4)
    np.testing.assert_allclose(J, numeric_jacobian(lambda v: np.tanh(W @ v), x), rtol=1e-6, atol=1e-9)


def test_jacobian_of_a_mixed_function():
    x = np.array([0.4, 1.3, 2.1])

    def f(v, lib=fw):
        return lib.sin(v) * lib.exp(v[::-1] if not isinstance(v, Dual) else Dual(v.value[::-1], v.tangent[::-1])) + lib.log(v) / lib.sqrt(v)

    J = fw.jacobian_forward(f, x)
    np.testing.assert_allclose(J, numeric_jacobian(lambda v: f(v, np), x), rtol=1e-6, atol=1e-9)


def test_jvp_matches_finite_differences_and_reverse_mode():
    rng = np.random.default_rng(1)
    W, x, v = rng.standard_normal((2, 3)), rng.standard_normal(3), rng.standard_normal(3)
    value, tangent = fw.jvp(lambda z: fw.tanh(W @ z) * 2.0, x, v)
    np.testing.assert_allclose(value, 2 * np.tanh(W @ x))
    np.testing.assert_allclose(tangent, (2 * np.tanh(W @ (x + 1e-6 * v)) - 2 * np.tanh(W @ (x - 1e-6 * v))) / 2e-6, rtol=1e-6)
    # Row i of the Jacobian by reverse mode, dotted with v, is entry i of J v.
    for i in range(2):
        xt = Tensor(x, requires_grad=True)
        ((Tensor(W) @ xt).tanh() * 2.0)[i].backward()
        assert float(xt.grad @ v) == pytest.approx(tangent[i], rel=1e-10)


def test_forward_and_reverse_agree_on_a_scalar_function():
    from autodiff_ref.scalar import Value

    def f(x):
        return x * x * 3.0 + x.exp() if not isinstance(x, Dual) else x * x * 3.0 + fw.exp(x)

    value = Value(0.6)
    f(value).backward()
    assert fw.derivative(f)(0.6) == pytest.approx(value.grad, rel=1e-12)


def test_bad_input():
    with pytest.raises(TypeError, match="not str"):
        Dual(1.0, 1.0) + "a"
    with pytest.raises(ValueError, match="direction v of x's shape"):
        fw.jvp(lambda v: v, np.ones(3), np.ones(2))
