"""The tensor engine's backward pass: graph shapes, higher-order gradients, and the Tensor API."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Function, Tensor, grad, is_grad_enabled, no_grad, ops
from autodiff_ref.gradcheck import gradcheck


def sample(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Magnitudes in [0.3, 2] with random signs, clear of the kinks of relu and abs."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# -- graphs that reuse nodes ----------------------------------------------------------------------
def test_a_node_multiplied_by_itself():
    values = sample((2, 3), 0)
    x = Tensor(values, requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * values, rtol=1e-15)


def test_a_node_used_in_two_terms():
    rng = np.random.default_rng(1)
    w1, w2, x = (Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(3))
    f = w1 * x + w2 * x
    f.sum().backward()
    np.testing.assert_allclose(x.grad, w1.data + w2.data, rtol=1e-15)
    np.testing.assert_allclose(w1.grad, x.data, rtol=1e-15)
    np.testing.assert_allclose(w2.grad, x.data, rtol=1e-15)


def test_a_diamond():
    #      x
    #      |
    #      a = exp(x)
    #     / \
    #  3 a   tanh(a)
    #     \ /
    #      out = 3a + tanh(a)
    values = sample((4,), 2) / 2
    x = Tensor(values, requires_grad=True)
    a = x.exp()
    out = 3 * a + a.tanh()
    out.sum().backward()
    d_out_d_a = 3 + 1 - np.tanh(np.exp(values)) ** 2
    np.testing.assert_allclose(a.grad, d_out_d_a, rtol=1e-14)
    np.testing.assert_allclose(x.grad, d_out_d_a * np.exp(values), rtol=1e-14)
    assert gradcheck(lambda t: 3 * t.exp() + t.exp().tanh(), values)


def test_paths_of_different_lengths_meet():
    # a reaches out directly and through three more ops: its gradient must be complete (both
    # paths summed) before it is passed on to x, whatever order a depth-first walk finds.
    values = sample((3,), 3)
    x = Tensor(values, requires_grad=True)
    a = x * 2
    (((a + 1) * a).tanh() * a).sum().backward()
    a_values = 2 * values
    u = (a_values + 1) * a_values
    d_out_d_a = np.tanh(u) + a_values * (1 - np.tanh(u) ** 2) * (2 * a_values + 1)
    np.testing.assert_allclose(a.grad, d_out_d_a, rtol=1e-14)
    np.testing.assert_allclose(x.grad, 2 * d_out_d_a, rtol=1e-14)


def test_tensors_made_in_any_order_get_complete_gradients():
    # The backward pass visits tensors latest made first. Leaves made late (c), constants made
    # early, and a tensor reached both directly and through later ops (b) must all come out right.
    rng = np.random.default_rng(4)
    a_values, c_values = rng.uniform(0.5, 1.5, 3), rng.uniform(0.5, 1.5, 3)
    a = Tensor(a_values, requires_grad=True)
    scale = Tensor(2.0)
    b = a * scale
    c = Tensor(c_values, requires_grad=True)
    out = (b * c + a).exp() * b
    out.sum().backward()
    inner = np.exp(2 * a_values * c_values + a_values)
    d_out_d_b = inner * c_values * 2 * a_values + inner
    np.testing.assert_allclose(b.grad, d_out_d_b, rtol=1e-14)
    np.testing.assert_allclose(c.grad, inner * 2 * a_values * 2 * a_values, rtol=1e-14)
    np.testing.assert_allclose(a.grad, 2 * d_out_d_b + inner * 2 * a_values, rtol=1e-14)
    assert scale.grad is None


def test_a_copy_of_a_tensor_in_the_same_graph():
    # copy.copy keeps the creation number; the walk must still tell the two apart.
    import copy

    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    twin = copy.copy(y)
    (y * twin).sum().backward()
    np.testing.assert_allclose(x.grad, 18 * x.data, rtol=1e-15)  # d sum(9 x^2) / dx


def test_a_chain_of_100_000_ops_needs_no_recursion():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.00001**100_000, rtol=1e-9)
    np.testing.assert_allclose(y.data, 1.00001**100_000, rtol=1e-9)


# -- higher order ---------------------------------------------------------------------------------
def test_second_derivative_of_a_cube():
    values = np.array([-1.5, -0.5, 0.5, 2.0])
    cube = lambda x: (x**3).sum()  # noqa: E731
    np.testing.assert_allclose(grad(cube)(values).data, 3 * values**2, rtol=1e-14)
    second = grad(lambda x: grad(cube)(x).sum())(values)
    np.testing.assert_allclose(second.data, 6 * values, rtol=1e-14)


def sig(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def tanh_prime(x: np.ndarray) -> np.ndarray:
    return 1 - np.tanh(x) ** 2


HIGHER_DERIVATIVES = {
    # name: (function, [first, second, third derivative])
    "tanh": (
        lambda x: x.tanh(),
        [tanh_prime, lambda x: -2 * np.tanh(x) * tanh_prime(x), lambda x: tanh_prime(x) * (6 * np.tanh(x) ** 2 - 2)],
    ),
    "sigmoid": (
        lambda x: x.sigmoid(),
        [
            lambda x: sig(x) * (1 - sig(x)),
            lambda x: sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)),
            lambda x: sig(x) * (1 - sig(x)) * (1 - 6 * sig(x) + 6 * sig(x) ** 2),
        ],
    ),
    "log of a square": (lambda x: (x * x).log(), [lambda x: 2 / x, lambda x: -2 / x**2, lambda x: 4 / x**3]),
    "exp": (lambda x: x.exp(), [np.exp, np.exp, np.exp]),
}


@pytest.mark.parametrize("name", HIGHER_DERIVATIVES)
def test_grad_of_grad_of_grad(name):
    function, derivatives = HIGHER_DERIVATIVES[name]
    values = np.array([-1.3, -0.4, 0.35, 1.1])
    nth = lambda x: function(x).sum()  # noqa: E731
    for order, derivative in enumerate(derivatives, start=1):
        got = grad(nth)(values)
        np.testing.assert_allclose(got.data, derivative(values), rtol=1e-12, atol=1e-14, err_msg=f"order {order}")
        nth = lambda x, previous=nth: grad(previous)(x).sum()  # noqa: E731


def mlp_loss(W1: Tensor, W2: Tensor) -> Tensor:
    """A two-layer network's mean squared error on fixed data; W1 is (3, 4), W2 is (4, 2)."""
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    hidden = (X @ W1).tanh()
    return ((hidden @ W2 - Y) ** 2).mean() + (W1 * W1).sum() * 0.01


def test_hessian_vector_product_against_differences_of_gradients():
    rng = np.random.default_rng(5)
    W1, W2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    V1, V2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    gradient = grad(mlp_loss, argnums=(0, 1))

    def directional(W1: Tensor, W2: Tensor) -> Tensor:
        g1, g2 = gradient(W1, W2)
        return (g1 * V1).sum() + (g2 * V2).sum()

    hvp1, hvp2 = grad(directional, argnums=(0, 1))(W1, W2)
    eps = 1e-5
    up, down = gradient(W1 + eps * V1, W2 + eps * V2), gradient(W1 - eps * V1, W2 - eps * V2)
    np.testing.assert_allclose(hvp1.data, (up[0].data - down[0].data) / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hvp2.data, (up[1].data - down[1].data) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_hessian_of_logsumexp_is_diag_p_minus_p_p_transposed():
    values = sample((4,), 6)
    p = np.exp(values - values.max())
    p /= p.sum()
    rows = [grad(lambda x, i=i: grad(lambda t: t.logsumexp())(x)[i])(values).data for i in range(4)]
    np.testing.assert_allclose(np.stack(rows), np.diag(p) - np.outer(p, p), rtol=1e-12, atol=1e-15)


def test_grad_with_argnums():
    a, b = sample((2, 3), 7), sample((3,), 8)
    f = lambda a, b: (a * b**2).sum()  # noqa: E731
    grad_a, grad_b = grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(grad_a.data, np.broadcast_to(b**2, a.shape), rtol=1e-15)
    np.testing.assert_allclose(grad_b.data, 2 * b * a.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(grad(f, argnums=1)(a, b).data, grad_b.data, rtol=1e-15)
    np.testing.assert_allclose(grad(f)(a, b).data, grad_a.data, rtol=1e-15)
    (only_b,) = grad(f, argnums=(1,))(a, b)
    np.testing.assert_allclose(only_b.data, grad_b.data, rtol=1e-15)


def test_grad_leaves_grad_attributes_alone_and_gives_zeros_for_unused_arguments():
    x = Tensor(sample((3,), 9), requires_grad=True)
    unused = Tensor(sample((2,), 10), requires_grad=True)
    gx, g_unused = grad(lambda x, u: (x * x).sum(), argnums=(0, 1))(x, unused)
    np.testing.assert_allclose(gx.data, 2 * x.data, rtol=1e-15)
    np.testing.assert_array_equal(g_unused.data, np.zeros(2))
    assert x.grad is None and unused.grad is None
    np.testing.assert_array_equal(grad(lambda x: Tensor(5.0))(x).data, np.zeros(3))


def test_grad_accepts_lists_numbers_and_tensors_that_do_not_require_grad():
    for argument in ([1.0, 2.0], Tensor([1.0, 2.0]), np.array([1.0, 2.0])):
        np.testing.assert_allclose(grad(lambda x: (x**2).sum())(argument).data, [2.0, 4.0], rtol=1e-15)
    assert grad(lambda x: x * x)(3.0).item() == 6.0


# -- no_grad and detach -----------------------------------------------------------------------------
def test_no_grad_records_nothing_and_restores():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 3).exp().sum()
        with no_grad():
            pass
        assert not is_grad_enabled(), "leaving an inner no_grad keeps the outer one"
    assert is_grad_enabled()
    assert not y.requires_grad and y.inputs == () and y.op is None
    assert (x * 3).requires_grad


def test_no_grad_as_a_decorator():
    x = Tensor([1.0, 2.0], requires_grad=True)

    @no_grad()
    def evaluate(t: Tensor) -> Tensor:
        assert not is_grad_enabled()
        return (t * t).sum()

    for _ in range(2):  # a decorated function can be called more than once
        assert not evaluate(x).requires_grad
        assert is_grad_enabled()


def test_no_grad_restores_on_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()


def test_detach_stops_the_gradient():
    values = sample((3,), 11)
    x = Tensor(values, requires_grad=True)
    frozen = x.detach()
    assert not frozen.requires_grad and frozen.op is None and frozen.inputs == ()
    np.testing.assert_array_equal(frozen.data, values)
    (x * frozen).sum().backward()
    np.testing.assert_allclose(x.grad, values, rtol=1e-15)  # not 2 x: the second factor is frozen
    assert frozen.grad is None


# -- .grad ---------------------------------------------------------------------------------------------
def test_grad_accumulates_across_backward_calls():
    x = Tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 + 2 * x.data, rtol=1e-15)
    x.grad = None
    loss = (x * 3).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0], rtol=1e-15)
    loss.backward()  # the same graph again: the graph survives a backward pass
    np.testing.assert_allclose(x.grad, [6.0, 6.0], rtol=1e-15)


def test_interior_nodes_get_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y.exp()
    loss = z.sum()
    loss.backward()
    np.testing.assert_allclose(z.grad, [1.0, 1.0])
    np.testing.assert_allclose(y.grad, np.exp(y.data), rtol=1e-15)
    np.testing.assert_allclose(x.grad, 2 * np.exp(y.data), rtol=1e-15)
    assert loss.grad == 1.0


@pytest.mark.parametrize(
    "expression",
    [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: (a.reshape(2, 2) + b.reshape(2, 2)).T],
    ids=["add", "sub", "reshape and transpose"],
)
def test_each_grad_is_its_own_writable_array(expression):
    a = Tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = Tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    out = expression(a, b)
    out.backward(grad=np.ones(out.shape))
    grads = [a.grad, b.grad, out.grad]
    before = [g.copy() for g in grads]
    a.grad[...] = 99.0  # changing one gradient in place changes no other
    np.testing.assert_array_equal(b.grad, before[1])
    np.testing.assert_array_equal(out.grad, before[2])
    b.grad += 1.0
    np.testing.assert_array_equal(out.grad, before[2])
    assert all(isinstance(g, np.ndarray) and g.flags.writeable for g in grads)


def test_grad_of_a_0d_tensor_used_twice_is_an_ndarray():
    x = Tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert isinstance(x.grad, np.ndarray)
    x.grad[...] = 0.0


def test_backward_with_an_explicit_gradient_for_a_non_scalar():
    values = sample((2, 3), 12)
    x = Tensor(values, requires_grad=True)
    y = x.tanh() * 2
    cotangent = sample((2, 3), 13)
    y.backward(grad=cotangent)
    np.testing.assert_allclose(x.grad, cotangent * 2 * (1 - np.tanh(values) ** 2), rtol=1e-14)
    np.testing.assert_array_equal(y.grad, cotangent)
    for given in (Tensor(cotangent), cotangent.tolist()):  # a Tensor or nested lists work too
        x.grad = None
        y.backward(grad=given)
        np.testing.assert_allclose(x.grad, cotangent * 2 * (1 - np.tanh(values) ** 2), rtol=1e-14)


# -- user-defined ops -------------------------------------------------------------------------------
class Square(Function):
    """x ** 2, written as a learner would."""

    def forward(self, a):
        return a * a

    def backward(self, g, node):
        (a,) = node.inputs
        return (g * 2 * a,)


class ScaledDifference(Function):
    """k * (a - b), broadcasting; a setting in __init__ and a gradient per input."""

    def __init__(self, k: float):
        self.k = k

    def forward(self, a, b):
        return self.k * (a - b)

    def backward(self, g, node):
        a, b = node.inputs
        return ops.unbroadcast(g * self.k, a.shape), ops.unbroadcast(g * -self.k, b.shape)


def test_a_user_defined_function_plugs_into_the_engine():
    values = sample((2, 3), 14)
    x = Tensor(values, requires_grad=True)
    y = Square()(x)
    assert isinstance(y.op, Square) and y.inputs == (x,)
    (y.exp() * 0.1).sum().backward()
    np.testing.assert_allclose(x.grad, 0.1 * np.exp(values**2) * 2 * values, rtol=1e-14)
    assert gradcheck(lambda t: Square()(t).tanh(), values)
    assert gradcheck(lambda a, b: ScaledDifference(2.5)(a, b) * a, values, sample((3,), 15))


def test_a_user_defined_function_can_be_differentiated_twice():
    values = sample((3,), 16)
    second = grad(lambda x: grad(lambda t: (Square()(t) * t).sum())(x).sum())(values)
    np.testing.assert_allclose(second.data, 6 * values, rtol=1e-14)


# -- constants -----------------------------------------------------------------------------------------
OPERATORS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "@": lambda a, b: a @ b,
}


CONSTANTS = {"float": 2.0, "int": 3, "array": np.array([[1.5, 2.0], [0.5, 1.0]])}


@pytest.mark.parametrize(
    "operator, constant",
    [(operator, name) for operator in OPERATORS for name in CONSTANTS if operator != "@" or name == "array"],
)
def test_constants_on_either_side_never_require_grad(operator, constant):
    apply, constant = OPERATORS[operator], CONSTANTS[constant]
    x = Tensor([[1.0, 2.0], [3.0, 0.5]], requires_grad=True)
    for out in (apply(x, constant), apply(constant, x)):
        assert isinstance(out, Tensor) and out.requires_grad
        wrapped = [t for t in out.inputs if t is not x]
        assert wrapped and not any(t.requires_grad for t in wrapped)
        out.sum().backward()
        assert all(t.grad is None for t in wrapped)
    assert not apply(Tensor([[1.0, 2.0], [3.0, 0.5]]), constant).requires_grad


# -- the Tensor API ------------------------------------------------------------------------------------------
def test_integer_data_becomes_float64_that_can_require_grad():
    x = Tensor([1, 2, 3], requires_grad=True)
    assert x.dtype == np.float64 and x.requires_grad and x.grad is None
    assert Tensor(np.array([1.0, 2.0], dtype=np.float32)).dtype == np.float32
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_tensor_copies_its_data():
    array = np.array([1.0, 2.0])
    x = Tensor(array)
    array[0] = 100.0
    assert x.data[0] == 1.0


def test_leaves_and_op_outputs():
    x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.inputs == () and x.op is None
    y = x * 2
    assert isinstance(y.op, ops.Mul) and y.inputs[0] is x and len(y.inputs) == 2


def test_item_numpy_len_and_repr():
    x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert x.sum().item() == 21.0 and isinstance(x.sum().item(), float)
    assert Tensor([[7.0]]).item() == 7.0
    assert isinstance(x.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.numpy(), x.data)
    assert len(x) == 2 and len(x[0]) == 3
    assert repr(x) == "Tensor([[1., 2., 3.],\n        [4., 5., 6.]], requires_grad=True)"
    assert repr(x * 2) == "Tensor([[ 2.,  4.,  6.],\n        [ 8., 10., 12.]], op=Mul)"
    assert repr(Tensor(2.5)) == "Tensor(2.5)"


def test_transpose_none_reverses_the_axes_as_numpy_does():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    out = x.transpose(None)
    np.testing.assert_array_equal(out.data, x.data.T)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
