"""Regression tests for issue #18: wrong answers and unclear errors, each checked on the inputs
that used to break (the value PyTorch gives is the reference, quoted in each test)."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from autodiff_ref import Tensor, grad, is_grad_enabled, no_grad, nn
from autodiff_ref.forward import Dual, jvp
from autodiff_ref.gradcheck import gradcheck
from autodiff_ref.scalar import Value


# -- 1. the backward walk's order, for tensors made anywhere ------------------------------------
def _pickled_in_another_process(values: list[float]) -> bytes:
    """A tensor pickled by a fresh process that made many tensors first: it carries a creation
    number far above any this process has handed out."""
    code = (
        "import pickle, sys; from autodiff_ref import Tensor\n"
        "junk = [Tensor(0.0) for _ in range(100_000)]\n"
        f"sys.stdout.buffer.write(pickle.dumps(Tensor({values!r}, requires_grad=True)))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout


def test_a_tensor_pickled_in_another_process_gets_the_right_gradients():
    P = pickle.loads(_pickled_in_another_process([0.3, 1.7]))
    (P * P + P).sum().backward()
    np.testing.assert_allclose(P.grad, 2 * P.data + 1, rtol=1e-15)
    g = grad(lambda p: (p * p + p.exp()).sum())(P)
    np.testing.assert_allclose(g.data, 2 * P.data + np.exp(P.data), rtol=1e-15)  # [2.649, 7.482]


def test_pickled_and_copied_graphs_backpropagate():
    x = Tensor([0.5, -1.5], requires_grad=True)
    y = x * x.exp() + x
    for loaded in (pickle.loads(pickle.dumps(y)), copy.deepcopy(y)):
        leaf = loaded.inputs[1]
        assert leaf.op is None and loaded.created > leaf.created
        loaded.sum().backward()
        np.testing.assert_allclose(leaf.grad, (1 + x.data) * np.exp(x.data) + 1, rtol=1e-15)


# -- 2. sigmoid keeps its digits for negative inputs ----------------------------------------------
@pytest.mark.parametrize("dtype, x", [(np.float32, -20.0), (np.float64, -37.0), (np.float64, -700.0)])
def test_sigmoid_is_accurate_far_below_zero(dtype, x):
    out = Tensor(np.array(x, dtype)).sigmoid()
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, 1 / (1 + math.exp(-x)), rtol=1e-6 if dtype == np.float32 else 1e-15)
    assert Value(x).sigmoid().data == pytest.approx(1 / (1 + math.exp(-x)), rel=1e-15)


def test_log_of_sigmoid_at_minus_40_is_minus_40_with_gradient_1():  # PyTorch: -40, 1
    x = Tensor(-40.0, requires_grad=True)
    y = x.sigmoid().log()
    y.backward()
    assert y.item() == pytest.approx(-40.0, rel=1e-15) and x.grad == pytest.approx(1.0, rel=1e-12)
    v = Value(-40.0)
    w = v.sigmoid().log()
    w.backward()
    assert w.data == pytest.approx(-40.0, rel=1e-15) and v.grad == pytest.approx(1.0, rel=1e-12)


def test_sigmoid_gradient_matches_numeric_on_both_sides():
    assert gradcheck(lambda a: a.sigmoid() * a.sigmoid(), np.array([-30.0, -3.0, -0.5, 0.0, 0.5, 3.0]))


# -- 4. powers at 0 take their limits, as in PyTorch ------------------------------------------------
def test_pow_gradients_at_zero_base_are_zero_not_nan():
    x = Tensor([0.0, 0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])  # PyTorch: 0 (was NaN)

    x = Tensor([0.0, 1.0, 2.0], requires_grad=True)
    (x**x).sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 1.0, 4 * (1 + np.log(2))], rtol=1e-15)  # PyTorch: 0 at 0

    base = Tensor([0.0, 0.0, 0.0, 3.0], requires_grad=True)
    exponent = Tensor([0.0, 0.5, 2.0, 2.0], requires_grad=True)
    with np.errstate(divide="ignore"):  # 0 ** -0.5 in d(a^b)/da is inf, and meant to be
        (base**exponent).sum().backward()
    np.testing.assert_array_equal(exponent.grad[:3], [0.0, 0.0, 0.0])  # PyTorch: 0 (was NaN)
    np.testing.assert_array_equal(base.grad, [0.0, np.inf, 0.0, 6.0])  # 0.5 * 0^-0.5 is inf, as PyTorch


def test_pow_with_zeros_broadcast_and_reused_still_matches_numeric_gradients():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 2.0, (2, 3))
    a[0, 1] = 0.0
    b = rng.uniform(1.0, 2.0, (3,))  # b < 1 would make d(a^b)/da infinite at 0, rightly
    assert gradcheck(lambda a, b: a**b + (a * a) ** b, a + 1.0, b)  # away from 0: the general rule
    x = Tensor(a, requires_grad=True)
    y = Tensor(b, requires_grad=True)
    (x**y).sum().backward()
    assert np.isfinite(x.grad).all() and np.isfinite(y.grad).all()
    assert y.grad[1] == pytest.approx(np.sum(a[1, 1] ** b[1] * np.log(a[1, 1])), rel=1e-12)


def test_second_derivative_of_a_power_at_zero():
    second = grad(lambda x: grad(lambda x: (x**3).sum())(x).sum())
    np.testing.assert_array_equal(second(Tensor([0.0, 1.0])).data, [0.0, 6.0])


def test_pow_at_zero_in_forward_mode_and_in_scalars():
    assert (0 ** Dual(0.0, 1.0)).tangent == 0.0  # was -inf
    assert (Dual(0.0, 1.0) ** Dual(2.0, 1.0)).tangent == 0.0
    a, b = Value(0.0), Value(0.0)
    out = a**b
    out.backward()
    assert (out.data, a.grad, b.grad) == (1.0, 0.0, 0.0)  # b.grad was NaN


# -- 5. max with a NaN --------------------------------------------------------------------------------
def test_max_sends_the_gradient_to_the_nan():  # PyTorch: [0, 1, 0]
    x = Tensor([1.0, np.nan, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])
    m = Tensor([[1.0, np.nan, 2.0], [3.0, 1.0, 2.0]], requires_grad=True)
    m.max(axis=1).sum().backward()
    np.testing.assert_array_equal(m.grad, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


# -- 6. integer casts are not differentiable -----------------------------------------------------------
def test_integer_cast_does_not_require_grad():
    x = Tensor([1.5, 2.5], requires_grad=True)
    for dtype in (np.int64, np.int32, bool):
        out = x.astype(dtype)
        assert out.dtype == np.dtype(dtype) and not out.requires_grad and out.op is None
    assert x.astype(np.float32).requires_grad


# -- 7. grad with several argnums gives partial derivatives, as JAX does ------------------------------
@pytest.mark.parametrize("requires_grad", [False, True])
def test_grad_at_two_positions_holding_one_tensor_gives_partials(requires_grad):
    t = Tensor([1.0, 2.0], requires_grad=requires_grad)
    d_a, d_b = grad(lambda a, b: (a * b * b).sum(), argnums=(0, 1))(t, t)
    np.testing.assert_allclose(d_a.data, t.data**2, rtol=1e-15)  # b², not the total 3 t²
    np.testing.assert_allclose(d_b.data, 2 * t.data**2, rtol=1e-15)  # 2ab


def test_grad_of_grad_still_reaches_the_outer_variable():
    x = Tensor([0.5, 2.0], requires_grad=True)
    hessian_diagonal = grad(lambda x: grad(lambda u, v: (u * v * v).sum(), argnums=(0, 1))(x, x)[1].sum())(x)
    np.testing.assert_allclose(hessian_diagonal.data, 4 * x.data, rtol=1e-15)  # d(2 x x)/dx


# -- 8 and 10. no_grad per thread, on generators, with or without parentheses -------------------------
def test_no_grad_in_one_thread_leaves_recording_on_in_another():
    entered, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with no_grad():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold_no_grad)
    holder.start()
    try:
        assert entered.wait(10)
        assert is_grad_enabled()
        assert (Tensor([1.0], requires_grad=True) * 2).requires_grad
    finally:
        release.set()
        holder.join()

    seen = []
    with no_grad():  # a new thread starts with recording on, as in PyTorch
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


def test_no_grad_on_a_generator_function_applies_inside_it_only():
    x = Tensor([1.0, 2.0], requires_grad=True)

    @no_grad()
    def steps(n):
        for i in range(n):
            received = yield (x * i).requires_grad, is_grad_enabled()
            assert received == i and not is_grad_enabled()
        return "done"

    generator = steps(3)
    assert next(generator) == (False, False)
    assert is_grad_enabled() and (x * 2).requires_grad  # the caller's code between steps records
    assert generator.send(0) == (False, False)
    assert generator.send(1) == (False, False)
    with pytest.raises(StopIteration) as stopped:
        generator.send(2)
    assert stopped.value.value == "done" and is_grad_enabled()


def test_no_grad_generator_passes_thrown_exceptions_and_close():
    closed = []

    @no_grad
    def numbers():
        try:
            while True:
                try:
                    yield is_grad_enabled()
                except KeyError:
                    yield "caught"
        finally:
            closed.append(is_grad_enabled())

    generator = numbers()
    assert next(generator) is False
    assert generator.throw(KeyError()) == "caught"
    generator.close()
    assert closed == [False] and is_grad_enabled()


def test_no_grad_without_parentheses():
    @no_grad
    def evaluate(t, scale=1.0):
        return (t * scale).sum()

    x = Tensor([1.0, 2.0], requires_grad=True)
    out = evaluate(x, scale=2.0)
    assert out.item() == 6.0 and not out.requires_grad and is_grad_enabled()
    assert evaluate.__name__ == "evaluate"
    with pytest.raises(TypeError, match="no_grad"):
        no_grad(3)


# -- 11. forward mode's powers and dtypes; softmax family over an empty axis --------------------------
def test_dual_to_a_fractional_power_of_a_negative_is_nan_not_complex():
    with np.errstate(invalid="ignore"):
        out = Dual(-8.0, 1.0) ** (1 / 3)
    assert not isinstance(out.value, complex) and np.isnan(out.value)  # PyTorch: nan
    assert (Dual(8.0, 1.0) ** (1 / 3)).value == pytest.approx(2.0)


def test_jvp_keeps_float32():
    value, tangent = jvp(lambda d: d * d, np.array([1.0, 2.0], np.float32), [1.0, 1.0])
    assert value.dtype == np.float32 and tangent.dtype == np.float32
    np.testing.assert_array_equal(tangent, [2.0, 4.0])
    assert jvp(lambda d: d * d, [1, 2], [1, 0])[1].dtype == np.float64  # integers become float64


def test_softmax_family_over_an_empty_axis():  # PyTorch: empty results, and -inf for logsumexp
    x = Tensor(np.zeros((3, 0)), requires_grad=True)
    assert x.softmax(axis=1).shape == (3, 0) and x.log_softmax(axis=1).shape == (3, 0)
    out = x.logsumexp(axis=1)
    np.testing.assert_array_equal(out.data, [-np.inf] * 3)
    assert x.logsumexp(axis=0).shape == (0,) and x.logsumexp(axis=1, keepdims=True).shape == (3, 1)
    (x.softmax(axis=1).sum() + x.log_softmax(axis=1).sum() + out.sum()).backward()
    assert x.grad.shape == (3, 0)


# -- clear errors -------------------------------------------------------------------------------------
def test_grad_with_argnums_past_the_arguments_says_so():
    with pytest.raises(TypeError, match=r"argnums=2.*argument 2.*called with 1 argument\b"):
        grad(lambda x: x.sum(), argnums=2)(Tensor([1.0]))
    with pytest.raises(TypeError, match="int or a tuple of ints"):
        grad(lambda x: x.sum(), argnums="0")


def test_jvp_of_a_function_returning_a_tuple_says_so():
    with pytest.raises(TypeError, match="returned a tuple"):
        jvp(lambda d: (d * 2, d * 3), [1.0], [1.0])


def test_sum_and_friends_take_a_list_of_axes():
    data = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(data, requires_grad=True)
    np.testing.assert_array_equal(x.sum(axis=[0, 2]).data, data.sum(axis=(0, 2)))
    np.testing.assert_array_equal(x.max(axis=[0, 1]).data, data.max(axis=(0, 1)))
    np.testing.assert_allclose(x.mean(axis=[1]).data, data.mean(axis=1))
    np.testing.assert_allclose(x.logsumexp(axis=[0, 1]).data, np.log(np.exp(data).sum(axis=(0, 1))))
    x.sum(axis=[0, 1]).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones_like(data))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple"):
        x.sum(axis="rows")


def test_module_call_passes_keyword_arguments():
    class Scaled(nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale

    assert Scaled()(Tensor([2.0]), scale=3.0).item() == 6.0


def test_parameters_found_in_dicts_and_nested_lists():
    class Model(nn.Module):
        def __init__(self):
            self.heads = {"left": nn.Linear(2, 3), "right": nn.Linear(2, 1)}
            self.blocks = [[nn.Linear(3, 3)], (nn.Linear(3, 2),)]
            self.sizes = [2, 3]  # numbers are not parameters

    names = [name for name, _ in Model().named_parameters()]
    assert names == [
        "heads.left.weight", "heads.left.bias", "heads.right.weight", "heads.right.bias",
        "blocks.0.0.weight", "blocks.0.0.bias", "blocks.1.0.weight", "blocks.1.0.bias",
    ]
    assert len(list(Model().parameters())) == 8


# -- 3. changes made in place between forward and backward raise at once ------------------------------
def test_writing_into_a_saved_input_raises_instead_of_a_wrong_gradient():
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    with pytest.raises(ValueError, match="read-only"):
        x.data[...] = 5  # was: y.backward() then gave 10 without a word
    y.backward()
    assert x.grad.tolist() == [4.0]
    x.data[...] = 5  # the backward pass that reached x made it writable again
    assert x.data.tolist() == [5.0]


def test_writing_into_a_saved_output_raises():
    x = Tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    with pytest.raises(ValueError, match="read-only"):
        y.data *= 2
    with pytest.raises(ValueError, match="read-only"):
        y.numpy()[0] = 0.0


def test_a_write_through_the_base_of_a_saved_view_raises():
    x = Tensor(np.arange(1.0, 7.0), requires_grad=True)
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x.reshape(2, 3) * w  # Mul saves the reshaped view; its values are x's
    with pytest.raises(ValueError, match="read-only"):
        x.data[0] = 100.0
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, np.arange(1.0, 7.0).reshape(2, 3))


def test_an_optimizer_step_between_forward_and_backward_raises_and_after_it_works():
    from autodiff_ref import optim

    layer = nn.Linear(3, 2, rng=0)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = Tensor(np.ones((4, 3)))
    loss = (layer(x) ** 2).mean()
    layer.weight.grad = np.ones((3, 2))
    layer.bias.grad = np.ones(2)
    with pytest.raises(ValueError, match="read-only"):
        opt.step()  # would change the weights the pending backward needs
    layer.zero_grad()
    loss.backward()
    before = layer.weight.data.copy()
    opt.step()  # the usual order: forward, backward, step
    np.testing.assert_allclose(layer.weight.data, before - 0.1 * layer.weight.grad)
    x.data[...] = 2.0  # data the backward read is writable again too


def test_ops_that_read_only_shapes_lock_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    x.data[...] = 5  # Add and Sum need no values in backward: nothing to protect
    y.backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_a_forward_under_no_grad_locks_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = x * x
    x.data[...] = 5
    y.data[...] = 0
    assert x.data.tolist() == [5.0, 5.0]
