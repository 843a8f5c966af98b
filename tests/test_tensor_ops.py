"""Every op of the tensor engine: its value against NumPy, its gradient against numeric gradients.

Shapes come from hypothesis: broadcasting pairs (size-1 axes, missing leading axes), matrix
products of every rank, reductions over every combination of axes. Values come from a seeded
generator and stay clear of kinks and poles: magnitudes in [0.3, 2] with random signs, positive
where log, sqrt and the base of a power need it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from autodiff_ref import Tensor, grad, no_grad, ops
from autodiff_ref.gradcheck import gradcheck

FEW = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)
small_shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
broadcast_pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


def sample(shape: tuple[int, ...], rng: np.random.Generator, domain: str = "real") -> np.ndarray:
    """float64 values away from kinks: ``real`` has |x| in [0.3, 2], ``positive`` is in [0.5, 2]."""
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def forward_value(f, *arrays: np.ndarray) -> np.ndarray:
    return f(*[Tensor(a) for a in arrays]).data


def axis_specs(ndim: int) -> list:
    """Every way to name a set of axes of an ``ndim``-array: None, each int, each tuple (also
    empty), each axis written positive or negative."""
    specs: list = [None]
    for k in range(ndim + 1):
        for axes in itertools.combinations(range(ndim), k):
            for signs in itertools.product((False, True), repeat=k):
                written = tuple(a - ndim if negative else a for a, negative in zip(axes, signs))
                specs.append(written)
                if k == 1:
                    specs.append(written[0])
    return specs


# -- elementwise, two inputs, with broadcasting ------------------------------------------------------
BINARY = {
    # name: (tensor expression, NumPy expression, domain of a, domain of b)
    "add": (lambda a, b: a + b, np.add, "real", "real"),
    "sub": (lambda a, b: a - b, np.subtract, "real", "real"),
    "mul": (lambda a, b: a * b, np.multiply, "real", "real"),
    "div": (lambda a, b: a / b, np.divide, "real", "real"),
    "pow": (lambda a, b: a**b, np.power, "positive", "real"),  # base positive: d/db needs log(a)
}

FIXED_BROADCASTS = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),  # missing leading axis
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),  # size-1 axes stretched on both sides
    ((), (2, 3)),  # a scalar against a matrix
    ((4, 1, 3), (2, 1)),
]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shape_a, shape_b", FIXED_BROADCASTS)
def test_binary_op_gradients_on_broadcast_shapes(name, shape_a, shape_b):
    expression, reference, domain_a, domain_b = BINARY[name]
    rng = np.random.default_rng(1)
    a, b = sample(shape_a, rng, domain_a), sample(shape_b, rng, domain_b)
    np.testing.assert_allclose(forward_value(expression, a, b), reference(a, b), rtol=1e-12)
    assert gradcheck(expression, a, b)


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_op_gradients_on_random_broadcast_shapes(name, shapes, seed):
    expression, reference, domain_a, domain_b = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = sample(shapes.input_shapes[0], rng, domain_a), sample(shapes.input_shapes[1], rng, domain_b)
    out = forward_value(expression, a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out, reference(a, b), rtol=1e-12)
    assert gradcheck(expression, a, b)


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_classes_and_functions_match_the_operators(name):
    expression, _, domain_a, domain_b = BINARY[name]
    rng = np.random.default_rng(2)
    a, b = sample((2, 3), rng, domain_a), sample((3,), rng, domain_b)
    op_class = {"add": ops.Add, "sub": ops.Sub, "mul": ops.Mul, "div": ops.Div, "pow": ops.Pow}[name]
    function = getattr(ops, name)
    expected = forward_value(expression, a, b)
    np.testing.assert_array_equal(forward_value(lambda x, y: op_class()(x, y), a, b), expected)
    np.testing.assert_array_equal(forward_value(function, a, b), expected)
    assert gradcheck(lambda x, y: op_class()(x, y), a, b)


CONSTANT_SIDES = {
    # Python numbers and NumPy arrays on either side of each operator; x is the only input
    "number + x": lambda x: 2.5 + x,
    "x + array": lambda x: x + np.array([1.0, -2.0, 3.0]),
    "number - x": lambda x: 2.5 - x,
    "array - x": lambda x: np.array([1.0, -2.0, 3.0]) - x,
    "x - number": lambda x: x - 2.5,
    "number * x": lambda x: -1.5 * x,
    "array * x": lambda x: np.array([[1.0], [-2.0]]) * x,
    "number / x": lambda x: 2.0 / x,
    "array / x": lambda x: np.array([1.0, -2.0, 3.0]) / x,
    "x / number": lambda x: x / 4.0,
    "x ** 3 (negative base)": lambda x: x**3,
    "x ** array": lambda x: x ** np.array([2.0, 3.0, 4.0]),
    "number ** x": lambda x: 2.0**x,
    "array ** x": lambda x: np.array([0.5, 2.0, 3.0]) ** x,
    "x ** 0.5 (positive base)": lambda x: (x * x + 1.0) ** 0.5,
    "array @ x": lambda x: np.arange(6.0).reshape(3, 2) @ x,
    "x @ array": lambda x: x @ np.arange(6.0).reshape(3, 2),
}


@pytest.mark.parametrize("name", CONSTANT_SIDES)
def test_gradients_with_constants_on_either_side(name):
    x = sample((2, 3), np.random.default_rng(3))
    expression = CONSTANT_SIDES[name]
    out = expression(Tensor(x, requires_grad=True))
    assert isinstance(out, Tensor) and out.requires_grad
    np.testing.assert_allclose(out.data, expression(x), rtol=1e-12)
    assert gradcheck(expression, x)


def test_pow_gradient_reaches_both_base_and_exponent():
    rng = np.random.default_rng(4)
    base, exponent = sample((2, 3), rng, "positive"), sample((2, 3), rng)
    a, b = Tensor(base, requires_grad=True), Tensor(exponent, requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_allclose(a.grad, exponent * base ** (exponent - 1), rtol=1e-12)
    np.testing.assert_allclose(b.grad, base**exponent * np.log(base), rtol=1e-12)


# -- elementwise, one input ----------------------------------------------------------------------------
UNARY = {
    # name: (tensor expression, NumPy reference, domain)
    "neg": (lambda x: -x, np.negative, "real"),
    "exp": (lambda x: x.exp(), np.exp, "real"),
    "log": (lambda x: x.log(), np.log, "positive"),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, "positive"),
    "abs": (lambda x: x.abs(), np.abs, "real"),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0.0), "real"),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), "real"),
    "tanh": (lambda x: x.tanh(), np.tanh, "real"),
}


@pytest.mark.parametrize("name", UNARY)
@FEW
@given(shape=small_shapes, seed=seeds)
def test_unary_op_gradients(name, shape, seed):
    expression, reference, domain = UNARY[name]
    x = sample(shape, np.random.default_rng(seed), domain)
    np.testing.assert_allclose(forward_value(expression, x), reference(x), rtol=1e-12)
    assert gradcheck(expression, x)


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_as_functions_and_classes(name):
    expression = UNARY[name][0]
    x = sample((2, 3), np.random.default_rng(5), UNARY[name][2])
    class_name = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs",
                  "relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}[name]
    expected = forward_value(expression, x)
    np.testing.assert_array_equal(forward_value(getattr(ops, name), x), expected)
    np.testing.assert_array_equal(forward_value(lambda t: getattr(ops, class_name)()(t), x), expected)


def test_relu_and_abs_gradients_on_both_sides_of_the_kink():
    x = Tensor([-2.0, -0.3, 0.3, 2.0], requires_grad=True)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0 - 1.0, 0.0 - 1.0, 1.0 + 1.0, 1.0 + 1.0])


def test_sigmoid_saturates_without_overflow():
    x = Tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    with np.errstate(all="raise"):
        y = x.sigmoid()
        y.sum().backward()
    np.testing.assert_allclose(y.data, [0.0, 0.5, 1.0], atol=1e-300)
    np.testing.assert_allclose(x.grad, [0.0, 0.25, 0.0], atol=1e-300)


# -- matrix products -------------------------------------------------------------------------------------
@st.composite
def matmul_shapes(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operand shapes of every kind NumPy's matmul accepts: vectors, matrices, and stacks whose
    batch axes broadcast (size 1 or missing on one side)."""
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    a_is_vector, b_is_vector = draw(st.booleans()), draw(st.booleans())
    shape_a = (k,) if a_is_vector else batch.input_shapes[0] + (m, k)
    shape_b = (k,) if b_is_vector else batch.input_shapes[1] + (k, n)
    return shape_a, shape_b


FIXED_MATMULS = [
    ((3,), (3,)),  # dot product: a 0-d result
    ((2, 3), (3,)),  # matrix @ vector
    ((3,), (3, 4)),  # vector @ matrix
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),  # a stack against one matrix
    ((2, 3), (5, 3, 4)),
    ((5, 1, 2, 3), (4, 3, 2)),  # batch axes (5, 1) and (4,) broadcast to (5, 4)
    ((3,), (5, 3, 4)),  # a vector against a stack
    ((5, 2, 3), (3,)),
]


@pytest.mark.parametrize("shape_a, shape_b", FIXED_MATMULS)
def test_matmul_gradients(shape_a, shape_b):
    rng = np.random.default_rng(6)
    a, b = sample(shape_a, rng), sample(shape_b, rng)
    np.testing.assert_allclose(forward_value(lambda x, y: x @ y, a, b), a @ b, rtol=1e-12)
    assert gradcheck(lambda x, y: x @ y, a, b)
    assert gradcheck(lambda x, y: x.matmul(y), a, b)


@FEW
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_gradients_on_random_shapes(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = sample(shapes[0], rng), sample(shapes[1], rng)
    out = forward_value(ops.matmul, a, b)
    assert out.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    assert gradcheck(lambda x, y: ops.MatMul()(x, y), a, b)


@pytest.mark.parametrize("shape_a, shape_b", [((4, 3), (3, 2)), ((5, 4, 3), (3, 2))])
def test_matmul_with_a_data_operand_gives_the_parameter_its_gradient(shape_a, shape_b):
    rng = np.random.default_rng(7)
    data, weights = sample(shape_a, rng), sample(shape_b, rng)
    X, W = Tensor(data), Tensor(weights, requires_grad=True)
    (X @ W).sum().backward()
    expected = np.broadcast_to(data.sum(axis=tuple(range(data.ndim - 1)))[:, None], weights.shape)
    np.testing.assert_allclose(W.grad, expected, rtol=1e-12)
    assert X.grad is None


@pytest.mark.parametrize("shape_a, shape_b", [((4, 3), (3, 2)), ((5, 4, 3), (3, 2)), ((3,), (3, 2))])
def test_matmul_computes_no_gradient_for_a_data_operand(shape_a, shape_b):
    """That product would cost as much as the forward, for nothing."""
    rng = np.random.default_rng(7)
    out = Tensor(sample(shape_a, rng)) @ Tensor(sample(shape_b, rng), requires_grad=True)
    with no_grad():
        grad_data, grad_weights = out.op.backward(Tensor(np.ones(out.shape)), out)
    assert grad_data is None and grad_weights.shape == shape_b


# -- shapes ------------------------------------------------------------------------------------------------
def test_transpose_without_axes_and_T_reverse_every_axis():
    x = sample((2, 3, 4), np.random.default_rng(8))
    for expression in (lambda t: t.T, lambda t: t.transpose(), lambda t: ops.transpose(t)):
        np.testing.assert_array_equal(forward_value(expression, x), x.T)
        assert gradcheck(expression, x)


@FEW
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data())
def test_transpose_with_axes(shape, data):
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    x = sample(shape, np.random.default_rng(9))
    for expression in (lambda t: t.transpose(*axes), lambda t: t.transpose(axes), lambda t: ops.Transpose(axes)(t)):
        np.testing.assert_array_equal(forward_value(expression, x), np.transpose(x, axes))
        assert gradcheck(expression, x)


@pytest.mark.parametrize("shape, axes", [((2, 2), (-1, 0)), ((2, 3, 4), (-1, 0, 1))])
def test_transpose_with_negative_axes(shape, axes):
    x = sample(shape, np.random.default_rng(10))
    np.testing.assert_array_equal(forward_value(lambda t: t.transpose(*axes), x), np.transpose(x, axes))
    assert gradcheck(lambda t: t.transpose(*axes), x)


@FEW
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data())
def test_reshape_including_minus_one(shape, data):
    target = list(data.draw(st.permutations(shape)))
    unknown = data.draw(st.sampled_from([None, *range(len(target))]))
    if unknown is not None:
        target[unknown] = -1
    x = sample(shape, np.random.default_rng(11))
    np.testing.assert_array_equal(forward_value(lambda t: t.reshape(*target), x), x.reshape(target))
    np.testing.assert_array_equal(forward_value(lambda t: t.reshape(tuple(target)), x), x.reshape(target))
    assert gradcheck(lambda t: t.reshape(*target), x)
    assert gradcheck(lambda t: t.reshape(-1), x)
    assert gradcheck(lambda t: ops.Reshape(tuple(target))(t), x)


@st.composite
def broadcast_targets(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, target): target has shape's axes, some stretched from 1, plus new leading axes."""
    target = draw(array_shapes(min_dims=0, max_dims=4, max_side=3))
    kept = draw(st.integers(0, len(target)))
    shape = tuple(1 if draw(st.booleans()) else n for n in target[len(target) - kept:])
    return shape, target


@FEW
@given(shapes=broadcast_targets(), seed=seeds)
def test_broadcast_to(shapes, seed):
    shape, target = shapes
    x = sample(shape, np.random.default_rng(seed))
    np.testing.assert_array_equal(forward_value(lambda t: t.broadcast_to(target), x), np.broadcast_to(x, target))
    assert gradcheck(lambda t: t.broadcast_to(target), x)
    assert gradcheck(lambda t: ops.BroadcastTo(target)(t), x)


@FEW
@given(shapes=broadcast_targets(), seed=seeds)
def test_sum_to_reverses_broadcast_to(shapes, seed):
    shape, target = shapes
    x = sample(target, np.random.default_rng(seed))
    added = len(target) - len(shape)
    stretched = tuple(added + i for i, n in enumerate(shape) if n == 1 and target[added + i] != 1)
    expected = x.sum(axis=tuple(range(added)) + stretched).reshape(shape)
    np.testing.assert_allclose(forward_value(lambda t: ops.SumTo(shape)(t), x), expected, rtol=1e-12)
    assert gradcheck(lambda t: ops.SumTo(shape)(t), x)
    assert gradcheck(lambda t: ops.unbroadcast(t, shape), x)


@pytest.mark.parametrize("shape, target", [((3,), (2, 3)), ((2, 3), (4, 3)), ((3,), (3, 3)), ((2, 3), (2,))])
def test_sum_to_a_shape_that_does_not_broadcast_names_both(shape, target):
    with pytest.raises(ValueError) as caught:
        ops.SumTo(target)(Tensor(np.ones(shape)))
    assert f"SumTo got inputs of shapes {shape}" in str(caught.value)
    assert f"shape {shape} is not a broadcast of shape {target}" in str(caught.value)


@pytest.mark.parametrize("shape_x", [(5, 3), (3,), (2, 4, 3)])
def test_affine_is_matmul_plus_bias_in_one_op(shape_x):
    rng = np.random.default_rng(12)
    x, w, b = sample(shape_x, rng), sample((3, 2), rng), sample((2,), rng)
    out = ops.affine(Tensor(x), Tensor(w, requires_grad=True), Tensor(b))
    np.testing.assert_allclose(out.data, x @ w + b, rtol=1e-12)
    assert type(out.op) is ops.Affine and len(out.inputs) == 3
    assert gradcheck(ops.affine, x, w, b)
    assert gradcheck(lambda x, w, b: ops.Affine()(x, w, b).tanh(), x, w, b)


@pytest.mark.parametrize("shape_x, shape_b", [((5, 3), (2,)), ((3,), (2,)), ((2, 4, 3), (2,)), ((4, 3), (1, 2)), ((4, 3), (4, 2))])
def test_affine_plain_backward_on_arrays_matches_its_tensor_op_rule(shape_x, shape_b):
    # .backward() takes the array path; grad() records the gradient's graph, so it takes the
    # Tensor-op path. Both must give the same gradients, including a bias that was broadcast.
    rng = np.random.default_rng(14)
    x, w, b = sample(shape_x, rng), sample((3, 2), rng), sample(shape_b, rng)
    weights = sample(np.broadcast_shapes(x[..., :2].shape, shape_b), rng)
    loss = lambda x, w, b: (ops.affine(x, w, b) * Tensor(weights)).sum()  # noqa: E731
    tensors = [Tensor(v, requires_grad=True) for v in (x, w, b)]
    loss(*tensors).backward()
    by_tensor_ops = grad(loss, argnums=(0, 1, 2))(x, w, b)
    for tensor, expected in zip(tensors, by_tensor_ops):
        assert tensor.grad.shape == tensor.shape
        np.testing.assert_allclose(tensor.grad, expected.data, rtol=1e-13)


def test_affine_skips_the_gradients_nobody_asked_for():
    rng = np.random.default_rng(13)
    X, W, b = Tensor(sample((4, 3), rng)), Tensor(sample((3, 2), rng), requires_grad=True), Tensor(np.zeros(2))
    out = ops.affine(X, W, b)
    grad_x, grad_w, grad_b = out.op.backward(Tensor(np.ones((4, 2))), out)
    assert grad_x is None and grad_b is None
    np.testing.assert_allclose(grad_w.data, X.data.T @ np.ones((4, 2)))


# -- indexing -----------------------------------------------------------------------------------------------
@st.composite
def slicings(draw, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A slice per axis, with any start, stop and step (negative ones too)."""
    return tuple(
        slice(draw(st.integers(-n, n) | st.none()), draw(st.integers(-n, n) | st.none()),
              draw(st.sampled_from([None, 1, 2, -1, -2])))
        for n in shape
    )


@FEW
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_getitem_with_slices(shape, data):
    index = data.draw(slicings(shape))
    x = sample(shape, np.random.default_rng(12))
    np.testing.assert_array_equal(forward_value(lambda t: t[index], x), x[index])
    assert gradcheck(lambda t: t[index], x)


@FEW
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_getitem_with_integer_arrays_that_repeat(shape, data):
    n = shape[0]
    positions = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
    index = np.array(positions)
    x = sample(shape, np.random.default_rng(13))
    np.testing.assert_array_equal(forward_value(lambda t: t[index], x), x[index])
    assert gradcheck(lambda t: t[index], x)


def test_getitem_gradient_counts_repeated_indices():
    x = Tensor([10.0, 20.0, 30.0, 40.0], requires_grad=True)
    x[np.array([2, 0, 2, -2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 4.0, 0.0])


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (1, 2),
        (slice(None), 0),
        (Ellipsis, 1),
        (None, slice(1, None)),
        (np.array([1, 0, 1]), slice(None), np.array([0, 0, 1])),
        (slice(None, None, -1), np.array([2, 2, 0])),
        [0, 0, 1],
    ],
    ids=repr,
)
def test_getitem_with_mixed_indices(index):
    x = sample((2, 3, 2), np.random.default_rng(14))
    np.testing.assert_array_equal(forward_value(lambda t: t[index], x), x[index])
    assert gradcheck(lambda t: t[index], x)


def test_getitem_with_a_mask_and_with_an_index_tensor():
    x = sample((3, 4), np.random.default_rng(15))
    mask = x > 0
    assert gradcheck(lambda t: t[mask], x)
    assert gradcheck(lambda t: t[Tensor([2, 0, 2])], x)
    np.testing.assert_array_equal(forward_value(lambda t: t[Tensor([2, 0, 2])], x), x[[2, 0, 2]])


def test_index_tensors_keep_their_meaning():
    """A boolean Tensor is a mask, not the positions 0 and 1; a float one must hold whole numbers."""
    x = Tensor(np.arange(6.0).reshape(2, 3))
    rows = Tensor([True, False], dtype=bool)
    np.testing.assert_array_equal(x[rows].data, x.data[[True, False]])
    np.testing.assert_array_equal(x[rows, Tensor([2, 0])].data, x.data[[True, False], [2, 0]])
    with pytest.raises(IndexError, match="whole numbers"):
        x[Tensor([0.5, 1.7])]


def test_shapes_and_axes_may_come_as_numpy_arrays_or_one_int_as_in_numpy():
    x = Tensor(np.arange(6.0))
    assert x.reshape(np.array([3, 2])).shape == (3, 2)
    assert x.reshape(np.array([3, 2])).transpose(np.array([1, 0])).shape == (2, 3)
    assert Tensor(2.0).broadcast_to(3).shape == (3,)


def test_the_mean_of_nothing_is_nan_as_in_numpy():
    assert np.isnan(Tensor(np.zeros(0)).mean().item())
    assert np.isnan(Tensor(np.zeros((0, 3))).mean(axis=0).data).all()


def test_numpy_array_of_a_tensor_is_a_copy():
    """np.array(t) is a snapshot: changing either side leaves the other alone."""
    t = Tensor([1.0, 2.0])
    snapshot = np.array(t)
    snapshot[0] = 99.0
    t.data[1] = -1.0
    np.testing.assert_array_equal(t.data, [1.0, -1.0])
    np.testing.assert_array_equal(snapshot, [99.0, 2.0])
    assert np.asarray(t) is t.data  # asarray does not ask for a copy: none is made


def test_truth_value_as_in_numpy():
    assert not Tensor(0.0) and Tensor([2.0]) and not Tensor([[0.0]])
    for shape in [(2,), (0,), (2, 3)]:
        with pytest.raises(ValueError, match=rf"truth value of a Tensor of shape \({shape[0]},"):
            bool(Tensor(np.ones(shape)))


def test_numpy_copy_false_never_copies():
    t = Tensor([1.0, 2.0])
    assert np.array(t, copy=False) is t.data
    with pytest.raises(ValueError, match="float32 without a copy"):
        np.array(t, dtype=np.float32, copy=False)
    assert np.array(t, dtype=np.float32).dtype == np.float32


# -- reductions ----------------------------------------------------------------------------------------------
REDUCTIONS = {
    # name: (tensor method, NumPy reference)
    "sum": (Tensor.sum, np.sum),
    "mean": (Tensor.mean, np.mean),
    "max": (Tensor.max, np.max),
    "logsumexp": (Tensor.logsumexp, lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", axis_specs(3), ids=repr)
def test_reduction_over_every_axis_combination(name, axis, keepdims):
    method, reference = REDUCTIONS[name]
    x = sample((2, 3, 2), np.random.default_rng(16))
    expression = lambda t: method(t, axis=axis, keepdims=keepdims)  # noqa: E731
    out = forward_value(expression, x)
    expected = reference(x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert gradcheck(expression, x)


@pytest.mark.parametrize("name", REDUCTIONS)
@FEW
@given(shape=array_shapes(min_dims=0, max_dims=4, max_side=3), data=st.data(), seed=seeds)
def test_reduction_over_random_axes_of_random_shapes(name, shape, data, seed):
    method, reference = REDUCTIONS[name]
    axis = data.draw(st.sampled_from(axis_specs(len(shape))))
    keepdims = data.draw(st.booleans())
    x = sample(shape, np.random.default_rng(seed))
    expression = lambda t: method(t, axis=axis, keepdims=keepdims)  # noqa: E731
    out = forward_value(expression, x)
    expected = reference(x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert gradcheck(expression, x)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_over_a_numpy_integer_axis(name):
    method = REDUCTIONS[name][0]
    x = sample((2, 3), np.random.default_rng(25))
    assert gradcheck(lambda t: method(t, axis=np.int64(1)), x)


def test_reduction_classes_and_functions_take_axis_and_keepdims():
    x = sample((2, 3), np.random.default_rng(17))
    for op_class, function in ((ops.Sum, ops.sum), (ops.Max, ops.max), (ops.LogSumExp, ops.logsumexp)):
        expected = forward_value(lambda t: function(t, -1, True), x)
        assert expected.shape == (2, 1)
        np.testing.assert_array_equal(forward_value(lambda t: op_class(axis=-1, keepdims=True)(t), x), expected)
        assert gradcheck(lambda t: op_class(axis=(0, 1))(t), x)


def test_max_splits_the_gradient_between_ties():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


# -- softmax and friends --------------------------------------------------------------------------------------
def softmax_reference(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_softmax_and_log_softmax_along_each_axis(axis):
    x = sample((2, 3, 4), np.random.default_rng(18))
    np.testing.assert_allclose(forward_value(lambda t: t.softmax(axis), x), softmax_reference(x, axis), rtol=1e-12)
    np.testing.assert_allclose(
        forward_value(lambda t: t.log_softmax(axis=axis), x), np.log(softmax_reference(x, axis)), rtol=1e-12
    )
    assert gradcheck(lambda t: t.softmax(axis=axis), x)
    assert gradcheck(lambda t: t.log_softmax(axis), x)
    assert gradcheck(lambda t: ops.log_softmax(t, axis), x)


def test_softmax_defaults_to_the_last_axis():
    x = sample((3, 4), np.random.default_rng(19))
    np.testing.assert_allclose(forward_value(lambda t: t.softmax(), x), softmax_reference(x, -1), rtol=1e-12)
    log_p = np.log(softmax_reference(x, -1))
    np.testing.assert_allclose(forward_value(lambda t: t.log_softmax(), x), log_p, rtol=1e-12)


LARGE_INPUTS = np.array([[1000.0, 2000.0, 2001.0], [-3000.0, -3001.5, -2999.0]])


def stable_reference(name: str, x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, gradient of sum(weights * value)) along axis 1, from the shifted rows in NumPy."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log(p) itself underflows
    p = np.exp(log_p)
    if name == "logsumexp":
        return (x - log_p)[:, 0], weights[:, None] * p  # x_i - log p_i is the same for every i
    if name == "softmax":
        return p, p * (weights - (weights * p).sum(axis=1, keepdims=True))
    return log_p, weights - p * weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["logsumexp", "softmax", "log_softmax"])
def test_softmax_family_is_stable_for_inputs_in_the_thousands(name):
    x = Tensor(LARGE_INPUTS, requires_grad=True)
    out = getattr(x, name)(axis=1)
    weights = np.random.default_rng(20).standard_normal(out.shape)
    out.backward(grad=weights)
    expected_value, expected_grad = stable_reference(name, LARGE_INPUTS, weights)
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(out.data, expected_value, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(x.grad, expected_grad, rtol=1e-10, atol=1e-300)


def test_logsumexp_over_all_axes_of_large_inputs():
    expected = 2001.0 + np.log1p(np.exp(-1.0))  # 2000 and 2001 dominate; the rest underflow
    np.testing.assert_allclose(forward_value(lambda t: t.logsumexp(), LARGE_INPUTS), expected, rtol=1e-12)


def test_logsumexp_gradient_is_softmax_for_large_inputs():
    x = Tensor(LARGE_INPUTS, requires_grad=True)
    x.logsumexp(axis=-1).sum().backward()
    np.testing.assert_allclose(x.grad, softmax_reference(LARGE_INPUTS, -1), rtol=1e-12, atol=1e-300)


def test_stable_ops_in_float32_for_inputs_in_the_thousands():
    x = Tensor(LARGE_INPUTS.astype(np.float32), requires_grad=True)
    out = x.log_softmax(axis=1) + x.softmax(axis=1) + x.logsumexp(axis=1, keepdims=True)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(x.grad))


# -- casts ---------------------------------------------------------------------------------------------------
def test_cast_changes_dtype_and_its_gradient_returns_in_the_input_dtype():
    x = Tensor(sample((2, 3), np.random.default_rng(21)), requires_grad=True)
    y = x.astype(np.float32)
    assert isinstance(y.op, ops.Cast) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data, x.data.astype(np.float32))
    cotangent = np.arange(6, dtype=np.float32).reshape(2, 3)
    y.backward(grad=cotangent)
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, cotangent)


def test_cast_to_the_same_dtype_is_no_op():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert x.astype(np.float64) is x


def test_cast_gradient_against_numeric_gradient():
    # A round trip through a wider float keeps every float64 value exactly, so the numeric
    # gradient sees no rounding.
    x = sample((2, 3), np.random.default_rng(22))
    assert gradcheck(lambda t: ops.Cast(np.float64)(ops.Cast(np.longdouble)(t) * 3.0).exp(), x)


# -- float32 against float64 ------------------------------------------------------------------------------------
FLOAT32_CASES = {
    # name: (expression of two inputs, domain of a, shape of a, shape of b)
    "add broadcast": (lambda a, b: a + b, "real", (2, 3), (3,)),
    "sub": (lambda a, b: a - b, "real", (2, 3), (2, 3)),
    "mul and number": (lambda a, b: 2.5 * a * b - 1, "real", (2, 3), (1, 3)),
    "div": (lambda a, b: a / b, "real", (2, 3), (2, 1)),
    "pow": (lambda a, b: a**b + a**2, "positive", (2, 3), (3,)),
    "unary chain": (
        lambda a, b: (a.exp() + a.sigmoid() + a.tanh()).log() * b.relu() + b.abs().sqrt() - b,
        "positive", (2, 3), (2, 3),
    ),
    "matmul": (lambda a, b: a @ b, "real", (4, 2, 3), (3, 2)),
    "reductions": (
        lambda a, b: a.sum(axis=0) + a.mean(axis=-1, keepdims=True) + a.max(axis=1) * b,
        "real", (3, 3), (3,),
    ),
    "softmax family": (
        lambda a, b: a.softmax(axis=0) * b + a.log_softmax() + a.logsumexp(axis=1, keepdims=True),
        "real", (2, 3), (3,),
    ),
    "shapes": (
        lambda a, b: a.T.reshape(-1)[np.array([0, 0, 5])] * b.broadcast_to((2, 3))[1, ::2].sum(),
        "real", (2, 3), (3,),
    ),
}


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_stays_float32_and_agrees_with_float64(name):
    expression, domain, shape_a, shape_b = FLOAT32_CASES[name]
    rng = np.random.default_rng(23)
    a, b = sample(shape_a, rng, domain), sample(shape_b, rng)
    weights = None
    results = {}
    for dtype in (np.float32, np.float64):
        ta, tb = Tensor(a.astype(dtype), requires_grad=True), Tensor(b.astype(dtype), requires_grad=True)
        out = expression(ta, tb)
        if weights is None:
            weights = np.random.default_rng(24).standard_normal(out.shape)
        out.backward(grad=weights)
        results[dtype] = (out, ta.grad, tb.grad)
    out32, grad_a32, grad_b32 = results[np.float32]
    out64, grad_a64, grad_b64 = results[np.float64]
    assert out32.dtype == np.float32 and grad_a32.dtype == np.float32 and grad_b32.dtype == np.float32
    assert out64.dtype == np.float64 and grad_a64.dtype == np.float64
    for got, expected in ((out32.data, out64.data), (grad_a32, grad_a64), (grad_b32, grad_b64)):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


def test_float32_gradients_stay_float32_when_mixed_with_float64_arrays():
    values = sample((2, 3), np.random.default_rng(26)).astype(np.float32)
    x = Tensor(values, requires_grad=True)
    out = (x * np.array([1.0, 2.0, 3.0])) @ np.ones((3, 2))
    assert out.dtype == np.float64  # NumPy's promotion, as in the forward
    out.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, np.broadcast_to([2.0, 4.0, 6.0], (2, 3)), rtol=1e-7)


def test_integer_and_boolean_data_give_float64():
    for data in ([1, 2, 3], np.arange(3), np.array([True, False, True]), 7):
        assert Tensor(data).dtype == np.float64
