"""The Tensor API beyond the first ops: comparisons, NumPy's functions on Tensors, and the ops
users reach for (min, prod, var, where, clip, concatenate, ...), each value against NumPy's and
each gradient against numeric gradients.

Values come from a seeded generator, clear of kinks: magnitudes in [0.3, 2] with random signs.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import autodiff_ref
from autodiff_ref import Tensor, grad, ops
from autodiff_ref.gradcheck import gradcheck

from test_tensor_ops import axis_specs  # every way to name a set of axes

FEW = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)
small_shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


def sample(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# -- comparisons -------------------------------------------------------------------------------------
COMPARISONS = {
    "==": (lambda a, b: a == b, np.equal),
    "!=": (lambda a, b: a != b, np.not_equal),
    "<": (lambda a, b: a < b, np.less),
    "<=": (lambda a, b: a <= b, np.less_equal),
    ">": (lambda a, b: a > b, np.greater),
    ">=": (lambda a, b: a >= b, np.greater_equal),
}


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_are_elementwise_bool_arrays_with_anything_on_either_side(name):
    compare, reference = COMPARISONS[name]
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    x = Tensor(a, requires_grad=True)
    expected = reference(a, b)
    for left, right in ((x, Tensor(b)), (x, b), (a, Tensor(b)), (x, [2.0, 2.0, 2.0])):
        result = compare(left, right)
        assert type(result) is np.ndarray and result.dtype == bool
        np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(compare(x, 2.0), reference(a, 2.0))
    np.testing.assert_array_equal(compare(2.0, x), reference(2.0, a))  # Python reflects the operator
    np.testing.assert_array_equal(compare(np.float64(2.0), x), reference(2.0, a))


def test_a_mask_from_a_comparison_selects_and_passes_gradients():
    x = Tensor([[1.0, 2.0], [1.0, 5.0]], requires_grad=True)
    picked = x[x == 1]  # before comparisons were elementwise, this was silently empty
    np.testing.assert_array_equal(picked.data, [1.0, 1.0])
    (picked * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 0.0], [3.0, 0.0]])
    mask = Tensor(x.data > 1, dtype=bool)  # a bool Tensor is a mask too
    np.testing.assert_array_equal(x[mask].data, [2.0, 5.0])
    np.testing.assert_array_equal(x[x != 1].data, [2.0, 5.0])


def test_a_mask_times_a_float32_tensor_stays_float32_as_in_numpy():
    x = Tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    for out in (x * (x > 0), (x > 0) * x, x + (x < 0)):
        assert out.dtype == np.float32
    (x * (x > 0)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])
    mask = x > 0
    out = x * mask
    mask[:] = False  # the op keeps a copy: changing the mask later changes no gradient
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 2.0])


def test_comparison_results_answer_questions_as_numpy_does():
    a, b = Tensor([1.0, 2.0]), Tensor([1.0, 2.0])
    assert (a == b).all() and not (a != b).any()
    assert (a == Tensor([1.0, 3.0])).tolist() == [True, False]
    if (a < 0).any():
        pytest.fail("no element is negative")


def test_tensors_still_hash_and_compare_by_identity_where_no_number_is_involved():
    x, y = Tensor([1.0, 2.0]), Tensor([1.0, 2.0])
    assert len({x, y, x}) == 2 and {x: "x", y: "y"}[y] == "y"
    assert (x == None) is False and (x != None) is True  # noqa: E711 -- the fallback is the point
    assert (x == "text") is False
    with pytest.raises(TypeError, match="'<' not supported"):
        x < None  # noqa: B015
    assert [t for t in [x, y] if t is y] == [y]


# -- NumPy's functions on Tensors --------------------------------------------------------------------
NUMPY_CASES = {
    # name: (the call on a Tensor x (2, 3) and a Tensor y (3,), the same on arrays)
    "np.add": lambda x, y, np=np: np.add(x, y),
    "np.subtract with an array": lambda x, y, np=np: np.subtract(np.ones(3), x),
    "np.multiply": lambda x, y, np=np: np.multiply(x, y),
    "np.divide": lambda x, y, np=np: np.divide(y, x),
    "np.power": lambda x, y, np=np: np.power(np.abs(x), 1.5),
    "np.exp, np.log, np.sqrt": lambda x, y, np=np: np.exp(x) + np.log(np.abs(y)) + np.sqrt(np.abs(x)),
    "np.tanh, np.sin, np.cos": lambda x, y, np=np: np.tanh(x) * np.sin(y) - np.cos(x),
    "np.negative, np.positive": lambda x, y, np=np: np.negative(x) * np.positive(y),
    "np.maximum, np.minimum": lambda x, y, np=np: np.maximum(x, y) + np.minimum(x, 0.5),
    "np.matmul": lambda x, y, np=np: np.matmul(x, y),
    "array on the left": lambda x, y, np=np: np.array([[2.0], [3.0]]) * x - np.ones(3) / y + np.float64(2.0) ** y,
    "array @ tensor": lambda x, y, np=np: np.ones((4, 2)) @ x,
    "np.sum": lambda x, y, np=np: np.sum(x, axis=0) + np.sum(x),
    "np.mean": lambda x, y, np=np: np.mean(x, axis=-1, keepdims=True),
    "np.max, np.min": lambda x, y, np=np: np.max(x, axis=1) + np.min(x, axis=1) + np.amax(x) * np.amin(y),
    "np.prod": lambda x, y, np=np: np.prod(x, axis=0),
    "np.var, np.std": lambda x, y, np=np: np.var(x, axis=1) + np.std(x, axis=1, ddof=1),
    "np.reshape": lambda x, y, np=np: np.reshape(x, (3, 2)),
    "np.transpose": lambda x, y, np=np: np.transpose(x) + np.transpose(x, (1, 0)),
    "np.ravel": lambda x, y, np=np: np.ravel(x),
    "np.squeeze, np.expand_dims": lambda x, y, np=np: np.squeeze(np.expand_dims(x, 0), axis=0),
    "np.broadcast_to": lambda x, y, np=np: np.broadcast_to(y, (2, 3)),
    "np.concatenate": lambda x, y, np=np: np.concatenate([x, y.reshape(1, 3), np.ones((1, 3))]),
    "np.stack": lambda x, y, np=np: np.stack([y, y * 2, np.zeros(3)], axis=-1),
    "np.split": lambda x, y, np=np: np.split(x, 3, axis=1)[2],
    "np.where": lambda x, y, np=np: np.where(x > 0, x, y),
    "np.clip": lambda x, y, np=np: np.clip(x, -1.0, 1.0),
}


@pytest.mark.parametrize("name", NUMPY_CASES)
def test_numpy_functions_on_tensors_run_the_tensor_ops(name):
    call = NUMPY_CASES[name]
    rng = np.random.default_rng(1)
    a, b = sample((2, 3), rng), sample((3,), rng)
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = call(x, y)
    assert isinstance(out, Tensor) and out.requires_grad, f"{name} gave a {type(out).__name__}"
    np.testing.assert_allclose(out.data, call(a, b), rtol=1e-12)
    inputs_used = [t for t in (x, y) if _depends_on(out, t)]
    assert inputs_used, f"{name}: the output does not depend on the inputs"
    assert gradcheck(lambda p, q: call(p, q), a, b)


def _depends_on(out: Tensor, leaf: Tensor) -> bool:
    waiting, seen = [out], set()
    while waiting:
        node = waiting.pop()
        if node is leaf:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            waiting.extend(node.inputs)
    return False


@pytest.mark.parametrize("function", [
    np.sort, np.fft.fft, np.linalg.inv, np.dot, np.cumsum, np.copy, np.round, np.floor, np.square,
], ids=lambda f: f.__name__)
def test_numpy_functions_without_a_tensor_op_refuse_instead_of_dropping_the_graph(function):
    x = Tensor(np.eye(2) + 1, requires_grad=True)
    with pytest.raises(TypeError, match=r"np\..*" + function.__name__ + r".*t\.data"):
        function(x, x) if function is np.dot else function(x)


def test_numpy_calls_with_options_a_tensor_cannot_honour_say_which():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match=r"np\.sum on a Tensor supports a, axis, keepdims only, not out="):
        np.sum(x, axis=0, out=np.zeros(3))
    with pytest.raises(TypeError, match=r"not dtype="):
        np.mean(x, dtype=np.float32)
    with pytest.raises(TypeError, match=r"np\.exp on a Tensor takes no keyword arguments"):
        np.exp(x, where=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match=r"np\.add\.reduce does not support Tensors"):
        np.add.reduce(x)
    array = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"np\.add\(\.\.\., out=\.\.\.\) would write into an array in place"):
        array += x
    np.testing.assert_array_equal(np.sum(x, axis=0, out=None, keepdims=False).data, [2.0, 2.0, 2.0])


def test_numpy_questions_about_values_answer_with_arrays():
    x = Tensor([[1.0, -2.0], [3.0, 0.0]], requires_grad=True)
    assert np.shape(x) == (2, 2) and np.ndim(x) == 2 and np.size(x) == 4
    assert np.allclose(x, x.data) and np.array_equal(x, Tensor(x.data))
    np.testing.assert_array_equal(np.argmax(x, axis=1), [0, 0])
    np.testing.assert_array_equal(np.isfinite(x), np.ones((2, 2), bool))
    np.testing.assert_array_equal(np.where(x > 0), np.where(x.data > 0))
    assert np.count_nonzero(x) == 3 and not np.all(x > 0)
    np.testing.assert_array_equal(np.greater(x, 0), x.data > 0)


def test_numpy_array_of_a_tensor_is_still_its_values():
    x = Tensor([1.0, 2.0], requires_grad=True)
    for array in (np.array(x), np.asarray(x)):
        assert type(array) is np.ndarray
        np.testing.assert_array_equal(array, [1.0, 2.0])
    assert np.array(x) is not x.data and np.asarray(x) is x.data


def test_numpy_leaves_other_libraries_arrays_to_them():
    class Other:
        def __array_function__(self, func, types, args, kwargs):
            return "other"

    assert np.concatenate([Tensor([1.0]), Other()]) == "other"


def test_a_list_of_graph_tensors_is_stacked_not_silently_detached():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with pytest.raises(TypeError, match=r"autodiff_ref\.stack"):
        Tensor([x[0, 0], x[0, 1]], requires_grad=True)
    with pytest.raises(TypeError, match=r"lose the graph"):
        x[0] + [[x[1, 0], 1.0]]
    stacked = autodiff_ref.stack([x[0, 0], x[0, 1] * 2])
    stacked.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 2.0], [0.0, 0.0]])
    constants = Tensor([Tensor(1.0), Tensor([2.0]).detach()[0]])  # nothing to lose: allowed
    np.testing.assert_array_equal(constants.data, [1.0, 2.0])


# -- elementwise ops -------------------------------------------------------------------------------
UNARY = {
    "sin": (Tensor.sin, np.sin),
    "cos": (Tensor.cos, np.cos),
    "builtin abs": (abs, np.abs),
    "unary +": (lambda t: +t, np.positive),
}


@pytest.mark.parametrize("name", UNARY)
@FEW
@given(shape=small_shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    method, reference = UNARY[name]
    a = sample(shape, np.random.default_rng(seed))
    np.testing.assert_allclose(method(Tensor(a)).data, reference(a), rtol=1e-12)
    assert gradcheck(method, a)


def test_sin_and_cos_second_derivatives():
    x = Tensor([0.3, -1.2, 2.0])
    second_sin = grad(lambda t: grad(lambda u: u.sin().sum())(t).sum())(x)
    second_cos = grad(lambda t: grad(lambda u: u.cos().sum())(t).sum())(x)
    np.testing.assert_allclose(second_sin.data, -np.sin(x.data), rtol=1e-12)
    np.testing.assert_allclose(second_cos.data, -np.cos(x.data), rtol=1e-12)


BINARY = {
    "maximum": (autodiff_ref.maximum, np.maximum),
    "minimum": (autodiff_ref.minimum, np.minimum),
}


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=seeds)
def test_maximum_and_minimum_broadcast(name, shapes, seed):
    function, reference = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = sample(shapes.input_shapes[0], rng), sample(shapes.input_shapes[1], rng)
    np.testing.assert_array_equal(function(Tensor(a), Tensor(b)).data, reference(a, b))
    assert gradcheck(function, a, b)
    assert gradcheck(lambda t: function(t, t * 0.5), a)  # one node used twice


@pytest.mark.parametrize("name", BINARY)
def test_maximum_and_minimum_split_ties_half_and_half(name):
    function = BINARY[name][0]
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([1.0, 0.0, 5.0], requires_grad=True)
    function(a, b).sum().backward()
    if name == "maximum":
        np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
        np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])
    else:
        np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
        np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    x = Tensor(2.0, requires_grad=True)
    function(x, x).backward()  # both halves reach the same node
    assert x.grad == 1.0


@pytest.mark.parametrize("name", BINARY)
def test_maximum_and_minimum_pass_a_nan_s_gradient_to_both_inputs_as_pytorch_does(name):
    a = Tensor([np.nan, 1.0], requires_grad=True)
    b = Tensor([1.0, np.nan], requires_grad=True)
    out = BINARY[name][0](a, b)
    assert np.isnan(out.data).all()
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_minimum_with_a_number_keeps_float32():
    x = Tensor(np.array([1.0, -1.0], np.float32), requires_grad=True)
    assert autodiff_ref.minimum(x, 0.0).dtype == np.float32
    assert autodiff_ref.maximum(0.0, x).dtype == np.float32


@FEW
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=seeds)
def test_where_broadcasts_condition_and_both_branches(shapes, seed):
    rng = np.random.default_rng(seed)
    condition_shape, x_shape, y_shape = shapes.input_shapes
    condition = rng.random(condition_shape) < 0.5
    a, b = sample(x_shape, rng), sample(y_shape, rng)
    out = autodiff_ref.where(condition, Tensor(a), Tensor(b))
    assert out.shape == shapes.result_shape
    np.testing.assert_array_equal(out.data, np.where(condition, a, b))
    assert gradcheck(lambda x, y: autodiff_ref.where(condition, x, y), a, b)
    assert gradcheck(lambda x: autodiff_ref.where(condition, x * x, x), a)  # x on both sides


def test_where_keeps_an_infinite_gradient_out_of_the_branch_not_taken():
    x, y = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    autodiff_ref.where(np.array([True, False]), x, y).backward(grad=np.array([np.inf, 1.0]))
    np.testing.assert_array_equal(x.grad, [np.inf, 0.0])
    np.testing.assert_array_equal(y.grad, [0.0, 1.0])  # not inf * 0 = nan


def test_where_condition_may_be_a_tensor_and_second_derivatives_flow():
    x = Tensor([-1.0, 2.0])
    f = lambda t: autodiff_ref.where(t > 0, t**3, t**2).sum()  # noqa: E731
    np.testing.assert_allclose(grad(f)(x).data, [-2.0, 12.0])
    np.testing.assert_allclose(grad(lambda t: grad(f)(t).sum())(x).data, [2.0, 12.0])
    mask = Tensor([1.0, 0.0])  # a float condition means "nonzero", as in NumPy
    np.testing.assert_array_equal(autodiff_ref.where(mask, x, 5.0).data, [-1.0, 5.0])


def test_clip_gradient_is_one_inside_and_at_the_bounds_zero_outside():
    x = Tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    out = x.clip(-1.0, 1.0)
    np.testing.assert_array_equal(out.data, [-1.0, -1.0, 0.0, 1.0, 1.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])  # PyTorch's convention
    assert gradcheck(lambda t: t.clip(-1.0, 1.0), [-2.0, -0.5, 0.7, 1.5])


def test_clip_with_one_bound_tensor_bounds_and_crossed_bounds():
    a = np.array([-2.0, -0.5, 0.5, 2.0])
    np.testing.assert_array_equal(Tensor(a).clip(a_min=0.0).data, np.clip(a, 0.0, None))
    np.testing.assert_array_equal(Tensor(a).clip(a_max=0.0).data, np.clip(a, None, 0.0))
    np.testing.assert_array_equal(Tensor(a).clip(1.0, -1.0).data, np.clip(a, 1.0, -1.0))
    assert gradcheck(lambda t, low, high: t.clip(low, high), a, [-1.0, -1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.5])
    with pytest.raises(ValueError, match="clip needs a_min or a_max"):
        Tensor(a).clip()


def test_clip_keeps_float32():
    x = Tensor(np.array([-2.0, 0.5], np.float32), requires_grad=True)
    out = x.clip(-1.0, np.float64(1.0))
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32


# -- reductions ----------------------------------------------------------------------------------------
REDUCTIONS = {
    # name: (tensor method, NumPy reference)
    "min": (Tensor.min, np.min),
    "prod": (Tensor.prod, np.prod),
    "var": (Tensor.var, np.var),
    "var ddof=1": (lambda t, axis, keepdims: t.var(axis, ddof=1, keepdims=keepdims),
                   lambda a, axis, keepdims: np.var(a, axis, ddof=1, keepdims=keepdims)),
    "std": (Tensor.std, np.std),
}


def _reduced_count(shape: tuple[int, ...], axis) -> int:
    """How many elements each slice of a reduction over ``axis`` holds."""
    return np.ones(shape).size // np.ones(shape).sum(axis=axis).size


def _check_reduction(name: str, shape: tuple[int, ...], axis, keepdims: bool, seed: int) -> None:
    method, reference = REDUCTIONS[name]
    a = sample(shape, np.random.default_rng(seed))
    expression = lambda t: method(t, axis=axis, keepdims=keepdims)  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's var of one element with ddof=1
        out, expected = expression(Tensor(a)).data, reference(a, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    n = _reduced_count(shape, axis)
    # The spread of one element has no derivative (std: sqrt at 0), nor has ddof=1 of one.
    if not (name.startswith("std") and n < 2) and not (name == "var ddof=1" and n < 2):
        assert gradcheck(expression, a)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", axis_specs(3), ids=repr)
def test_reduction_over_every_axis_combination(name, axis, keepdims):
    _check_reduction(name, (2, 3, 2), axis, keepdims, seed=16)


@pytest.mark.parametrize("name", REDUCTIONS)
@FEW
@given(shape=array_shapes(min_dims=0, max_dims=4, max_side=3), data=st.data(), seed=seeds)
def test_reduction_over_random_axes_of_random_shapes(name, shape, data, seed):
    axis = data.draw(st.sampled_from(axis_specs(len(shape))))
    _check_reduction(name, shape, axis, data.draw(st.booleans()), seed)


def test_min_splits_ties_as_max_does_and_argmin_argmax_are_numpy_indices():
    x = Tensor([[1.0, 0.0, 0.0], [2.0, -1.0, 3.0]], requires_grad=True)
    x.min(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0]])
    for got, expected in ((x.argmax(axis=1), [0, 2]), (x.argmin(), 4), (x.argmin(axis=0, keepdims=True), [[0, 1, 0]])):
        assert isinstance(got, (np.ndarray, np.integer))
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("values, expected", [
    ([2.0, 3.0, 4.0], [12.0, 8.0, 6.0]),
    ([2.0, 0.0, 4.0], [0.0, 8.0, 0.0]),   # one zero: only it has a nonzero gradient
    ([0.0, 3.0, 0.0], [0.0, 0.0, 0.0]),   # two zeros: every product of the others has one
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
], ids=["no zero", "one zero", "two zeros", "all zeros"])
def test_prod_gradient_with_zeros_divides_by_nothing(values, expected):
    x = Tensor(values, requires_grad=True)
    with np.errstate(all="raise"):
        x.prod().backward()
    np.testing.assert_array_equal(x.grad, expected)
    assert gradcheck(lambda t: t.prod(), values)


def test_prod_gradient_with_zeros_per_slice_and_second_derivatives():
    a = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 0.5]])
    for axis in (0, 1, (0, 1), None, -1):
        assert gradcheck(lambda t: t.prod(axis=axis), a)
        # the Hessian-vector product against the numeric gradient of the gradient
        v = np.random.default_rng(3).standard_normal(a.shape)
        assert gradcheck(lambda t: (grad(lambda u: u.prod(axis=axis).sum())(t) * v).sum(), a)


@pytest.mark.parametrize("values, ddof", [([1.0], 1), ([1.0, 2.0], 2), ([1.0, 2.0], 3), ([], 0)])
def test_var_and_std_without_degrees_of_freedom_are_inf_or_nan_as_in_numpy(values, ddof):
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(Tensor(values).var(ddof=ddof).data, np.var(values, ddof=ddof))
        np.testing.assert_array_equal(Tensor(values).std(ddof=ddof).data, np.std(values, ddof=ddof))


def test_second_derivative_of_var():
    x = Tensor([1.0, 2.0, 4.0])
    hessian_rows = [grad(lambda t: grad(lambda u: u.var())(t)[i])(x).data for i in range(3)]
    n = 3
    np.testing.assert_allclose(hessian_rows, 2 / n * (np.eye(n) - 1 / n), rtol=1e-12)


# -- joining, splitting and shapes -------------------------------------------------------------------
@FEW
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=3), data=st.data(), seed=seeds)
def test_concatenate_stack_and_split_on_random_shapes(shape, data, seed):
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    a, b = sample(shape, rng), sample(tuple(other), rng)
    joined = autodiff_ref.concatenate([Tensor(a), Tensor(b), Tensor(a)], axis=axis)
    np.testing.assert_array_equal(joined.data, np.concatenate([a, b, a], axis=axis))
    assert gradcheck(lambda x, y: autodiff_ref.concatenate([x, y, x * 2], axis=axis), a, b)

    new_axis = data.draw(st.integers(-ndim - 1, ndim))
    stacked = autodiff_ref.stack([Tensor(a), Tensor(a * 3)], axis=new_axis)
    np.testing.assert_array_equal(stacked.data, np.stack([a, a * 3], axis=new_axis))
    assert gradcheck(lambda x: autodiff_ref.stack([x, x.sin()], axis=new_axis), a)

    cuts = sorted(data.draw(st.lists(st.integers(0, shape[axis]), max_size=3)))
    pieces = autodiff_ref.split(Tensor(a), cuts, axis=axis)
    expected = np.split(a, cuts, axis=axis)
    assert len(pieces) == len(expected)
    for piece, reference in zip(pieces, expected):
        np.testing.assert_array_equal(piece.data, reference)
    assert gradcheck(lambda x: autodiff_ref.concatenate(
        [p * (i + 1) for i, p in enumerate(autodiff_ref.split(x, cuts, axis=axis))], axis=axis), a)


def test_concatenate_axis_none_split_sections_and_errors():
    a, b = np.ones((2, 2)), np.arange(3.0)
    np.testing.assert_array_equal(autodiff_ref.concatenate([a, Tensor(b)], axis=None).data, np.concatenate([a, b], axis=None))
    assert [p.shape for p in Tensor(np.ones((4, 2))).split(2)] == [(2, 2), (2, 2)]
    with pytest.raises(ValueError, match="equal division"):
        Tensor(np.ones(5)).split(2)
    with pytest.raises(ValueError, match=r"stack needs tensors of one shape, got shapes \(2,\), \(3,\)"):
        autodiff_ref.stack([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="Concatenate got inputs of shapes"):
        autodiff_ref.concatenate([np.ones((2, 2)), np.ones((3, 3))])
    with pytest.raises(ValueError, match="at least one"):
        autodiff_ref.stack([])


def test_concatenate_mixed_dtypes_gives_each_input_its_own_dtype_back():
    x = Tensor(np.ones(2, np.float32), requires_grad=True)
    y = Tensor(np.ones(3), requires_grad=True)
    out = autodiff_ref.concatenate([x, y])
    assert out.dtype == np.float64
    out.sum().backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64


@FEW
@given(shape=array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2), data=st.data(), seed=seeds)
def test_squeeze_expand_dims_and_flatten(shape, data, seed):
    a = sample(shape, np.random.default_rng(seed))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = data.draw(st.one_of(st.none(), st.sampled_from([()] + [(i,) for i in ones] + [tuple(ones)])))
    new = data.draw(st.integers(-len(shape) - 1, len(shape)))
    for method, reference in (
        (lambda t: t.squeeze(axis), lambda x: np.squeeze(x, axis)),
        (lambda t: t.expand_dims(new), lambda x: np.expand_dims(x, new)),
        (lambda t: t.flatten(), np.ravel),
    ):
        out = method(Tensor(a))
        np.testing.assert_array_equal(out.data, reference(a))
        assert gradcheck(method, a)


def test_squeeze_and_expand_dims_errors_are_numpys():
    x = Tensor(np.ones((2, 1)))
    with pytest.raises(ValueError, match="size not equal to one"):
        x.squeeze(0)
    with pytest.raises(np.exceptions.AxisError):
        x.expand_dims(4)
    assert x.expand_dims((0, 2)).shape == (1, 2, 1, 1)


# -- float32 ---------------------------------------------------------------------------------------------
def test_new_ops_keep_float32_and_agree_with_float64():
    rng = np.random.default_rng(5)
    a, b = sample((2, 3), rng), sample((3,), rng)

    def expression(x, y):
        parts = [x.sin() * y.cos(), autodiff_ref.maximum(x, y), autodiff_ref.minimum(x, 0.5),
                 autodiff_ref.where(x.data > 0, x, y), x.clip(-1, 1), abs(x) + (+y),
                 x.var(axis=0, keepdims=True) + x.std(axis=1, keepdims=True) + x.prod(axis=0) + x.min(axis=1, keepdims=True)]
        joined = autodiff_ref.concatenate(parts, axis=0)
        return autodiff_ref.stack(joined.split(7, axis=0), axis=-1).squeeze().expand_dims(0).flatten()

    results = {}
    for dtype in (np.float32, np.float64):
        x, y = Tensor(a.astype(dtype), requires_grad=True), Tensor(b.astype(dtype), requires_grad=True)
        out = expression(x, y)
        out.backward(grad=np.linspace(-1, 1, out.size))
        results[dtype] = (out, x.grad, y.grad)
    out32, x32, y32 = results[np.float32]
    assert out32.dtype == x32.dtype == y32.dtype == np.float32
    for got, expected in zip((out32.data, x32, y32), (results[np.float64][0].data, *results[np.float64][1:])):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


# -- constructors ------------------------------------------------------------------------------------------
def test_constructors_take_shapes_dtype_and_requires_grad():
    for make, value in ((autodiff_ref.zeros, 0.0), (autodiff_ref.ones, 1.0)):
        t = make(2, 3)
        assert t.shape == (2, 3) and t.dtype == np.float64 and not t.requires_grad and np.all(t.data == value)
        t = make((2,), dtype=np.float32, requires_grad=True)
        assert t.shape == (2,) and t.dtype == np.float32 and t.requires_grad and t.op is None
        assert make().shape == ()
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        autodiff_ref.zeros(2, dtype=np.int64, requires_grad=True)
    with pytest.raises(TypeError, match=r"a shape is made of sizes.*2\.5"):
        autodiff_ref.ones(2.5)
    with pytest.raises(TypeError, match="-1"):
        autodiff_ref.zeros((2, -1))


def test_random_constructors_are_seeded_by_a_generator_or_a_seed():
    for make in (autodiff_ref.randn, autodiff_ref.rand):
        first = make(3, 2, rng=7, requires_grad=True)
        assert first.shape == (3, 2) and first.requires_grad and first.dtype == np.float64
        np.testing.assert_array_equal(make((3, 2), rng=np.random.default_rng(7)).data, first.data)
        assert make(4, rng=1, dtype=np.float32).dtype == np.float32
        assert not np.array_equal(make(5).data, make(5).data)  # no seed: new numbers every call
    assert np.all((autodiff_ref.rand(100, rng=0).data >= 0) & (autodiff_ref.rand(100, rng=0).data < 1))
    samples = autodiff_ref.randn(10_000, rng=0).data
    assert abs(samples.mean()) < 0.05 and abs(samples.std() - 1) < 0.05


def test_the_api_is_exported():
    for name in ("zeros", "ones", "randn", "rand", "where", "concatenate", "stack", "split", "maximum", "minimum"):
        assert name in autodiff_ref.__all__ and getattr(autodiff_ref, name) is not None
    for name in ("min", "prod", "var", "std", "argmax", "argmin", "clip", "sin", "cos", "squeeze", "expand_dims", "flatten", "split"):
        assert callable(getattr(Tensor, name)) and callable(getattr(ops, name))
