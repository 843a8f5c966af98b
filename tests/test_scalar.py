"""The scalar engine `Value`: every op against central differences, graph shapes, accumulation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodiff_ref import Tensor
from autodiff_ref.scalar import Value

EPS = 1e-6


def numeric(f, *xs):
    """Central differences of a function of floats, one partial per argument."""
    grads = []
    for i in range(len(xs)):
        up = list(xs)
        down = list(xs)
        up[i] += EPS
        down[i] -= EPS
        grads.append((f(*up) - f(*down)) / (2 * EPS))
    return grads


def value_grads(f, *xs):
    values = [Value(x) for x in xs]
    out = f(*values)
    out.backward()
    return out.data, [v.grad for v in values]


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "mixed": lambda a, b: (a * b - a / b) * (a + 2.5) - 3 / b + b**2,
}
UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp() if isinstance(a, Value) else math.exp(a),
    "log": lambda a: a.log() if isinstance(a, Value) else math.log(a),
    "tanh": lambda a: a.tanh() if isinstance(a, Value) else math.tanh(a),
    "relu": lambda a: a.relu() if isinstance(a, Value) else max(a, 0.0),
    "sigmoid": lambda a: a.sigmoid() if isinstance(a, Value) else 1 / (1 + math.exp(-a)),
    "square": lambda a: a**2,
    "rpow": lambda a: 2**a,
}
positive = st.floats(0.3, 3.0)
away_from_zero = st.one_of(st.floats(-3.0, -0.3), st.floats(0.3, 3.0))


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=25)
@given(a=positive, b=positive)
def test_binary_ops_match_central_differences(name, a, b):
    f = BINARY[name]
    data, grads = value_grads(f, a, b)
    assert data == pytest.approx(f(a, b), rel=1e-12)
    assert grads == pytest.approx(numeric(f, a, b), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=25)
@given(a=away_from_zero)
def test_unary_ops_match_central_differences(name, a):
    f = UNARY[name]
    if name == "log":
        a = abs(a)
    data, (grad,) = value_grads(f, a)
    assert data == pytest.approx(f(a), rel=1e-12)
    assert grad == pytest.approx(numeric(f, a)[0], rel=1e-5, abs=1e-7)


WITH_A_NUMBER = {
    "1.5 + x": lambda x: 1.5 + x,
    "x + 1.5": lambda x: x + 1.5,
    "1.5 - x": lambda x: 1.5 - x,
    "x - 1.5": lambda x: x - 1.5,
    "1.5 * x": lambda x: 1.5 * x,
    "x * 1.5": lambda x: x * 1.5,
    "1.5 / x": lambda x: 1.5 / x,
    "x / 1.5": lambda x: x / 1.5,
    "1.5 ** x": lambda x: 1.5**x,
    "x ** 1.5": lambda x: x**1.5,
    "x ** 3": lambda x: x**3,
    "x ** -2": lambda x: x**-2,
}


@pytest.mark.parametrize("expression", WITH_A_NUMBER)
def test_numbers_on_either_side(expression):
    f = WITH_A_NUMBER[expression]
    x = Value(0.8)
    out = f(x)
    out.backward()
    assert any(node is x for node in out.inputs) and all(isinstance(n, Value) for n in out.inputs)
    assert out.data == pytest.approx(f(0.8), rel=1e-12)
    assert x.grad == pytest.approx(numeric(f, 0.8)[0], rel=1e-6)


def test_power_at_zero():
    x = Value(0.0)
    (x**0).backward()
    assert x.grad == 0.0  # x^0 = 1 is constant, also at 0
    y = Value(0.0)
    (y**2).backward()
    assert y.grad == 0.0
    assert (Value(0.0) ** 0.5).local_grads == (math.inf,)  # sqrt is vertical at 0


def test_value_exponent_records_both_inputs():
    a, b = Value(1.5), Value(2.0)
    out = a**b
    assert out.inputs == (a, b)
    out.backward()
    assert a.grad == pytest.approx(2.0 * 1.5)
    assert b.grad == pytest.approx(1.5**2 * math.log(1.5))
    assert math.isnan((Value(-2.0) ** Value(2.0)).local_grads[1])


def test_node_used_twice_sums_its_gradients():
    x = Value(3.0)
    (x * x).backward()
    assert x.grad == 6.0
    y = Value(3.0)
    (y + y).backward()
    assert y.grad == 2.0
    w1, w2, z = Value(2.0), Value(-5.0), Value(0.7)
    (w1 * z + w2 * z).backward()
    assert (z.grad, w1.grad, w2.grad) == pytest.approx((-3.0, 0.7, 0.7))


def test_diamond():
    x = Value(0.5)
    a, b = x.exp(), x * 3
    out = a * b
    out.backward()
    assert x.grad == pytest.approx(math.exp(0.5) * 1.5 + math.exp(0.5) * 3)


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(1.0)
    z = x
    for i in range(100_000):
        z = z * 1.0 if i % 2 else z + 1.0
    z.backward()
    assert x.grad == 1.0


def test_gradients_accumulate_across_backward_calls():
    x = Value(2.0)
    y = x * x
    y.backward()
    y.backward()
    assert x.grad == 8.0


@settings(max_examples=25)
@given(a=away_from_zero, b=away_from_zero, c=st.floats(0.3, 3.0))
def test_agrees_with_the_tensor_engine(a, b, c):
    def f(a, b, c):
        return ((a * b + c).tanh() * a - (b / (c + 2)).sigmoid() + (a * c).exp() / c).relu()

    _, scalar_grads = value_grads(f, a, b, c)
    tensors = [Tensor(x, requires_grad=True) for x in (a, b, c)]
    f(*tensors).backward()
    assert scalar_grads == pytest.approx([float(t.grad) for t in tensors], rel=1e-10, abs=1e-12)


def test_bad_input():
    with pytest.raises(TypeError, match="real number, got str"):
        Value("3")
    with pytest.raises(TypeError, match="real number, got Value"):
        Value(Value(1.0))
    with pytest.raises(ValueError, match=r"log of a non-positive number: -1\.0"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="negative base needs an integer exponent"):
        Value(-2.0) ** 0.5
    with pytest.raises(ValueError, match="negative base"):
        Value(-2.0) ** Value(0.5)
    with pytest.raises(TypeError, match="real number, got str"):
        Value(1.0) + "2"
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / 0
    with pytest.raises(ValueError, match="local gradients"):
        Value(1.0, inputs=(Value(2.0),), local_grads=())


def test_repr_and_protocol():
    a = Value(2.0)
    out = a * 3
    assert out.op == "*" and out.local_grads == (3.0, 2.0) and out.inputs[0] is a
    assert repr(Value(1.5)) == "Value(data=1.5, grad=0)"
    assert np.isfinite(Value(-1000.0).sigmoid().data)
