"""Convolution and pooling in the tensor engine: ``ops.Conv2d`` (with ``Conv2dInputGrad`` and
``Conv2dWeightGrad``), ``ops.MaxPool2d``, ``ops.AvgPool2d`` and the layers of ``autodiff_ref.nn``.

Values are compared with loops written straight from the definitions; gradients, and gradients
of gradients, with numeric ones. Shapes come from hypothesis: batch, channels, kernel sizes,
stride and padding, pooling sizes that do and do not divide the image.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodiff_ref import Tensor, grad, ops
from autodiff_ref.gradcheck import gradcheck
from autodiff_ref.nn import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

FEW = settings(max_examples=25, deadline=None)


def conv_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """The definition, one output element at a time."""
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    (n, _, h, width), (f, _, kh, kw) = padded.shape, w.shape
    out = np.zeros((n, f, (h - kh) // stride + 1, (width - kw) // stride + 1))
    for index in np.ndindex(out.shape):
        image, filt, i, j = index
        window = padded[image, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
        out[index] = np.sum(window * w[filt]) + b[filt]
    return out


@st.composite
def conv_cases(draw):
    """(x shape, w shape, stride, padding) for which the kernel fits in the padded image."""
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 6))
    w = draw(st.integers(max(1, kw - 2 * padding), 6))
    return (n, c, h, w), (f, c, kh, kw), stride, padding


def sample(shape, rng):
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


@FEW
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_conv2d_matches_the_definition_and_numeric_gradients(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = sample(x_shape, rng), sample(w_shape, rng), sample(w_shape[:1], rng)
    out = ops.conv2d(x, w, b, stride=stride, padding=padding)
    np.testing.assert_allclose(out.data, conv_loops(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, w, b: ops.conv2d(x, w, b, stride=stride, padding=padding), x, w, b, seed=seed)


@FEW
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_the_gradients_of_conv2d_are_differentiable_again(case, seed):
    """Conv2dInputGrad and Conv2dWeightGrad have backwards of their own: second derivatives."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = sample(x_shape, rng), sample(w_shape, rng)
    out_shape = ops.conv2d(x, w, stride=stride, padding=padding).shape
    g, v = sample(out_shape, rng), sample(x_shape, rng)

    def input_gradient_times_v(x, w):  # (x . dL/dx) for L = sum(g * conv(x, w)^2): second order
        loss = lambda x, w: (ops.conv2d(x, w, stride=stride, padding=padding) ** 2 * g).sum()  # noqa: E731
        grad_x, grad_w = grad(loss, argnums=(0, 1))(x, w)
        return (grad_x * v).sum() + (grad_w * grad_w).sum()

    assert gradcheck(input_gradient_times_v, x, w, seed=seed)


def test_conv2d_without_bias_and_with_float32():
    rng = np.random.default_rng(0)
    x, w = sample((2, 3, 5, 5), rng).astype(np.float32), sample((4, 3, 3, 3), rng).astype(np.float32)
    b = Tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    x_tensor, w_tensor = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    with_zero_bias = ops.conv2d(x_tensor, w_tensor, b, padding=1)
    assert with_zero_bias.dtype == np.float32
    np.testing.assert_allclose(ops.conv2d(x, w, padding=1).data, with_zero_bias.data)
    with_zero_bias.sum().backward()
    assert x_tensor.grad.dtype == w_tensor.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_allclose(b.grad, np.full(4, 2 * 25))


@pytest.mark.parametrize("x_shape, w_shape, settings_, message", [
    ((2, 3, 5), (4, 3, 3, 3), {}, "(N, C, H, W)"),
    ((2, 3, 5, 5), (4, 2, 3, 3), {}, "the same C"),
    ((1, 1, 2, 2), (1, 1, 3, 3), {}, "does not fit"),
    ((1, 1, 4, 4), (1, 1, 3, 3), {"stride": 0}, "stride must be an integer >= 1"),
    ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": -1}, "padding must be an integer >= 0"),
])
def test_conv2d_explains_wrong_shapes_and_settings(x_shape, w_shape, settings_, message):
    with pytest.raises(ValueError) as error:
        ops.conv2d(np.ones(x_shape), np.ones(w_shape), **settings_)
    assert message in str(error.value)


def pool_loops(x: np.ndarray, size: int, reduce) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // size, w // size))
    for index in np.ndindex(out.shape):
        image, channel, i, j = index
        out[index] = reduce(x[image, channel, i * size:(i + 1) * size, j * size:(j + 1) * size])
    return out


pool_shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(3, 7), st.integers(3, 7))


@FEW
@given(pool_shapes, st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_pooling_matches_the_definition_and_numeric_gradients(shape, size, seed):
    rng = np.random.default_rng(seed)
    # Distinct values, well apart: a maximum that a nudge of 1e-6 could change would not be smooth.
    count = int(np.prod(shape))
    x = (rng.permutation(count).reshape(shape) + rng.uniform(0, 0.1, size=shape)) / count
    np.testing.assert_allclose(ops.max_pool2d(x, size).data, pool_loops(x, size, np.max))
    np.testing.assert_allclose(ops.avg_pool2d(x, size).data, pool_loops(x, size, np.mean), rtol=1e-12)
    assert gradcheck(lambda t: ops.max_pool2d(t, size), x, seed=seed)
    assert gradcheck(lambda t: ops.avg_pool2d(t, size), x, seed=seed)
    # Their backwards are Tensor ops: the gradient of a pooled loss is differentiable again.
    pooled_loss = lambda t: (ops.max_pool2d(t, size) ** 3).sum() + (ops.avg_pool2d(t * t, size) ** 2).sum()  # noqa: E731
    assert gradcheck(lambda t: grad(pooled_loss)(t), x, seed=seed)


def test_max_pooling_gives_a_tied_window_gradient_to_its_first_maximum():
    x = Tensor(np.array([[[[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]]]), requires_grad=True)
    ops.max_pool2d(x, 2).backward(np.array([[[[5.0, 7.0]]]]))
    np.testing.assert_array_equal(x.grad, [[[[5.0, 0.0, 7.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_pooling_explains_a_window_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        ops.max_pool2d(np.ones((1, 1, 2, 5)), 3)
    with pytest.raises(ValueError, match="positive integer"):
        ops.avg_pool2d(np.ones((1, 1, 4, 4)), 0)


def test_conv_layers_shapes_parameters_and_initial_scale():
    layer = Conv2d(16, 32, 3, padding=1, rng=0)
    assert [(name, p.shape) for name, p in layer.named_parameters()] == [
        ("weight", (32, 16, 3, 3)), ("bias", (32,))]
    assert layer(np.ones((2, 16, 5, 5))).shape == (2, 32, 5, 5)
    assert Conv2d(16, 32, 3, stride=2, rng=0)(np.ones((2, 16, 7, 7))).shape == (2, 32, 3, 3)
    np.testing.assert_allclose(layer.weight.data.std(), np.sqrt(2 / (16 * 9)), rtol=0.1)  # He scale
    np.testing.assert_array_equal(Conv2d(2, 3, 3, rng=5).weight.data, Conv2d(2, 3, 3, rng=5).weight.data)
    assert Conv2d(1, 2, 3, dtype=np.float32).weight.dtype == np.float32
    assert Conv2d(1, 2, 3, bias=False)(np.ones((1, 1, 3, 3))).shape == (1, 2, 1, 1)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 16, H, W\)"):
        layer(np.ones((2, 15, 5, 5)))
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 2, 0)


def test_a_small_cnn_built_from_the_layers_trains_end_to_end():
    rng = np.random.default_rng(0)
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
                       Conv2d(4, 4, 3, padding=1, rng=rng), ReLU(), AvgPool2d(2), Flatten(),
                       Linear(4, 2, rng=rng))
    x = rng.standard_normal((3, 1, 4, 4))
    assert model(x).shape == (3, 2)
    parameters = list(model.parameters())
    assert len(parameters) == 6
    assert gradcheck(lambda x, w: ops.avg_pool2d(ops.conv2d(x, w, padding=1).relu(), 2), x, parameters[0].data)
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in parameters)
    assert "MaxPool2d(size=2)" in repr(model.layers[2]) and "Conv2d(1, 4, kernel_size=3" in repr(model.layers[0])
