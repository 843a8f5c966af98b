"""Tests for ``autodiff_ref.testing.conv``: right answers pass, however they are written, and each
usual mistake fails with the hint that names it.

The right answers are written here from scratch, as a learner writes them in notebook 08, in more
than one way: einsum over windows, im2col, the input gradient as a scatter-add and as a full
correlation with the flipped kernel, ties in max pooling given to the first maximum or split.
Each broken version below gets exactly one thing wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from autodiff_ref import ops
from autodiff_ref.nn import Linear, Module, Parameter
from autodiff_ref.testing import (
    CONV_CASES,
    CheckFailure,
    check_avg_pool2d,
    check_conv2d_backward_input,
    check_conv2d_backward_weights,
    check_conv2d_forward,
    check_correlate2d,
    check_digit_cnn,
    check_max_pool2d,
    conv2d_backward_input_or_reference,
    conv2d_forward_or_reference,
    max_pool2d_or_reference,
    reference_conv2d_backward_input,
    reference_conv2d_forward,
    reference_max_pool2d_backward,
)


def fails_with(check, *candidates, phrases, **options):
    """Run ``check(*candidates)``, require a CheckFailure, and require each phrase in its message."""
    with pytest.raises(CheckFailure) as failure:
        check(*candidates, **options)
    message = str(failure.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    return message


# --- right answers, written as a learner writes them -------------------------------------------------


def correlate2d(image, kernel, flip=False, transpose=False, same=False):
    kernel = kernel[::-1, ::-1] if flip else kernel.T if transpose else kernel
    if same:
        image = np.pad(image, ((1, 1), (1, 1)))
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
    return out


def windows_of(x, kernel_size, stride, padding):
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    return sliding_window_view(padded, kernel_size, axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d_forward(x, w, b, stride=1, padding=0, mistake=None):
    if mistake == "flip":
        w = w[..., ::-1, ::-1]
    if mistake == "channels":
        w = w.transpose(1, 0, 2, 3)
    windows = windows_of(x, w.shape[2:], 1 if mistake == "stride" else stride, 0 if mistake == "padding" else padding)
    out = np.einsum("ncijuv,fcuv->nfij", windows, w)
    if mistake == "last axes":
        return out.transpose(0, 2, 3, 1) + b
    if mistake == "no bias":
        return out
    if mistake == "bias on columns":
        return out + b
    return out + b.reshape(-1, 1, 1)


def conv2d_forward_im2col(x, w, b, stride=1, padding=0):
    windows = windows_of(x, w.shape[2:], stride, padding)
    n, _, rows, columns = windows.shape[:4]
    matrix = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * rows * columns, -1)
    out = matrix @ w.reshape(len(w), -1).T + b
    return out.reshape(n, rows, columns, -1).transpose(0, 3, 1, 2)


def conv2d_forward_loops(x, w, b, stride=1, padding=0):
    windows = windows_of(x, w.shape[2:], stride, padding)
    out = np.zeros((len(x), len(w)) + windows.shape[2:4])
    for index in np.ndindex(out.shape):
        n, f, i, j = index
        out[index] = np.sum(windows[n, :, i, j] * w[f]) + b[f]
    return out


def conv2d_backward_weights(out_grad, x, w, stride=1, padding=0, mistake=None):
    windows = windows_of(x, w.shape[2:], 1 if mistake == "stride" else stride, padding)
    dw = np.einsum("nfij,ncijuv->fcuv", out_grad, windows)
    db = out_grad.sum(axis=(0, 2, 3))
    if mistake == "flip":
        dw = dw[..., ::-1, ::-1]
    if mistake == "channels":
        dw = dw.transpose(1, 0, 2, 3)
    if mistake == "bias per image":
        db = out_grad.sum(axis=(2, 3))
    if mistake == "bias keepdims":
        db = out_grad.sum(axis=(0, 2, 3), keepdims=True)
    if mistake == "bias mean":
        db = out_grad.sum(axis=(0, 2, 3)) / len(x)
    if mistake == "bias per position":
        db = out_grad.sum(axis=0)
    return (db, dw) if mistake == "order" else (dw, db)


def conv2d_backward_input(out_grad, x, w, stride=1, padding=0, mistake=None):
    """The scatter-add (col2im)."""
    n, c, height, width = x.shape
    kh, kw = w.shape[2:]
    rows, columns = out_grad.shape[2:]
    p, s = padding, (1 if mistake == "stride" else stride)
    if mistake == "flip":
        w = w[..., ::-1, ::-1]
    if mistake == "channels":
        w = w.transpose(1, 0, 2, 3)
    dx = np.zeros((n, c, height + 2 * p, width + 2 * p))
    for u in range(kh):
        for v in range(kw):
            dx[:, :, u:u + s * rows:s, v:v + s * columns:s] += np.einsum("nfij,fc->ncij", out_grad, w[:, :, u, v])
    return dx if mistake == "no crop" else dx[:, :, p:p + height, p:p + width]


def conv2d_backward_input_full(out_grad, x, w, stride=1, padding=0, mistake=None):
    """The full correlation of the dilated out_grad with the flipped kernel, axes f and c swapped."""
    n, f, rows, columns = out_grad.shape
    kh, kw = w.shape[2:]
    dilated = np.zeros((n, f, (rows - 1) * stride + 1, (columns - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = out_grad
    kernel = w.transpose(1, 0, 2, 3) if mistake == "not flipped" else w[..., ::-1, ::-1].transpose(1, 0, 2, 3)
    full = conv2d_forward(np.pad(dilated, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1))), kernel,
                          np.zeros(len(kernel)))
    height, width = x.shape[2:]
    dx = np.zeros((n, x.shape[1], height + 2 * padding, width + 2 * padding))
    dx[:, :, :full.shape[2], :full.shape[3]] = full  # rows no window reached stay 0
    return dx[:, :, padding:padding + height, padding:padding + width]


def pool_windows(x, size):
    n, c, h, w = x.shape
    return x[:, :, :h // size * size, :w // size * size].reshape(n, c, h // size, size, w // size, size)


def max_pool2d_forward(x, size=2, mean=False):
    return pool_windows(x, size).mean(axis=(3, 5)) if mean else pool_windows(x, size).max(axis=(3, 5))


def max_pool2d_backward(out_grad, x, size=2, mistake=None):
    """Ties split equally (a valid choice too); the mistakes send the gradient elsewhere."""
    windows = pool_windows(x, size)
    is_max = windows == windows.max(axis=(3, 5), keepdims=True)
    if mistake == "every element":
        share = np.ones_like(windows)
    elif mistake == "average":
        share = np.ones_like(windows) / size**2
    elif mistake == "ties copied":
        share = is_max.astype(float)
    else:
        share = is_max / is_max.sum(axis=(3, 5), keepdims=True)
    routed = share * out_grad[:, :, :, None, :, None]
    if mistake == "no leftover":
        return routed.reshape(x.shape[0], x.shape[1], windows.shape[2] * size, -1)
    dx = np.zeros_like(x)
    dx[:, :, :routed.shape[2] * size, :routed.shape[4] * size] = routed.reshape(
        x.shape[0], x.shape[1], routed.shape[2] * size, -1)
    return dx


def avg_pool2d_forward(x, size=2, total=False):
    return pool_windows(x, size).sum(axis=(3, 5)) if total else pool_windows(x, size).mean(axis=(3, 5))


def avg_pool2d_backward(out_grad, x, size=2, undivided=False):
    share = np.repeat(np.repeat(out_grad, size, axis=2), size, axis=3) / (1 if undivided else size**2)
    dx = np.zeros_like(x)
    dx[:, :, :share.shape[2], :share.shape[3]] = share
    return dx


def with_mistake(function, mistake):
    return lambda *args: function(*args, mistake=mistake)


# --- the right answers pass --------------------------------------------------------------------------


def test_every_way_of_writing_them_passes():
    check_correlate2d(correlate2d)
    for forward in (conv2d_forward, conv2d_forward_im2col):
        check_conv2d_forward(forward)
    check_conv2d_backward_weights(conv2d_backward_weights)
    for backward in (conv2d_backward_input, conv2d_backward_input_full):
        check_conv2d_backward_input(backward, seed=1)
    check_max_pool2d(max_pool2d_forward, max_pool2d_backward)  # ties split equally
    check_max_pool2d(max_pool2d_forward, first_maximum_backward)  # ties to the first, as PyTorch
    check_avg_pool2d(avg_pool2d_forward, avg_pool2d_backward)


def first_maximum_backward(out_grad, x, size=2):
    """Ties to the first maximum, as PyTorch; by argmax over each window's elements."""
    windows = pool_windows(x, size)
    n, c, rows, _, columns, _ = windows.shape
    flat = windows.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, rows, columns, -1)
    mask = (np.arange(size * size) == flat.argmax(-1)[..., None]).reshape(n, c, rows, columns, size, size)
    routed = mask.transpose(0, 1, 2, 4, 3, 5) * out_grad[:, :, :, None, :, None]
    dx = np.zeros_like(x)
    dx[:, :, :rows * size, :columns * size] = routed.reshape(n, c, rows * size, columns * size)
    return dx


# --- the hints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mistake, phrases", [
    ({"flip": True}, ["kernel is flipped", "cross-correlation"]),
    ({"transpose": True}, ["kernel is transposed"]),
    ({"same": True}, ["H - kh + 1", "No padding here"]),
])
def test_correlate2d_hints(mistake, phrases):
    fails_with(check_correlate2d, lambda image, kernel: correlate2d(image, kernel, **mistake), phrases=phrases)


def test_a_result_that_is_not_returned_is_named():
    fails_with(check_correlate2d, lambda image, kernel: None, phrases=["returned None", "forget a `return`"])


@pytest.mark.parametrize("mistake, phrases", [
    ("flip", ["kernel is flipped"]),
    ("channels", ["channel axes are swapped", "(F, C, kh, kw)"]),
    ("no bias", ["bias is missing"]),
    ("stride", ["stride is ignored", "Ho = (H + 2*padding - kh) // stride + 1"]),
    ("padding", ["padding is ignored", "np.pad"]),
    ("last axes", ["(N, Ho, Wo, F)", "transpose"]),
])
def test_conv2d_forward_hints(mistake, phrases):
    fails_with(check_conv2d_forward, with_mistake(conv2d_forward, mistake), phrases=phrases,
               cases=(CONV_CASES[1], CONV_CASES[2]))  # as many filters as channels, then stride and padding


def test_conv2d_forward_bias_on_the_wrong_axis():
    # Wo == F: a bias added along the columns broadcasts without an error.
    fails_with(check_conv2d_forward, with_mistake(conv2d_forward, "bias on columns"),
               phrases=["bias is added along the last axis", "(F, 1, 1)"], cases=(((2, 3, 6, 6), (4, 3, 3, 3), 1, 0),))


def test_conv2d_forward_with_loops_over_everything_is_too_slow():
    fails_with(check_conv2d_forward, conv2d_forward_loops, time_limit=0.01,
               phrases=["Training calls it hundreds of times", "sliding_window_view"])


def backward_loops(out_grad, x, w, stride=1, padding=0):
    """Both backwards, right but one output position at a time: (dw, db), dx."""
    windows = windows_of(x, w.shape[2:], stride, padding)
    p = padding
    dw, dx = np.zeros(w.shape), np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p))
    kh, kw = w.shape[2:]
    for n, f, i, j in np.ndindex(out_grad.shape):
        dw[f] += out_grad[n, f, i, j] * windows[n, :, i, j]
        dx[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += out_grad[n, f, i, j] * w[f]
    return (dw, out_grad.sum(axis=(0, 2, 3))), dx[:, :, p:p + x.shape[2], p:p + x.shape[3]]


def test_backwards_with_loops_over_every_position_are_too_slow():
    fails_with(check_conv2d_backward_input, lambda *args: backward_loops(*args)[1], time_limit=0.01,
               phrases=["conv2d_backward_input took", "optimize=True"])
    fails_with(check_conv2d_backward_weights, lambda *args: backward_loops(*args)[0], time_limit=0.01,
               phrases=["conv2d_backward_weights took", "Training calls it"])


@pytest.mark.parametrize("mistake, phrases", [
    ("flip", ["weight gradient is flipped"]),
    ("channels", ["channel axes are swapped"]),
    ("bias per image", ["not summed over the batch"]),
    ("bias keepdims", ["without keepdims"]),
    ("bias mean", ["mean over the batch"]),
    ("bias per position", ["not summed over the positions", "axes 2 and 3"]),
    ("order", ["returned (db, dw)"]),
    ("stride", ["windows[:, :, ::stride, ::stride]"]),
])
def test_conv2d_backward_weights_hints(mistake, phrases):
    fails_with(check_conv2d_backward_weights, with_mistake(conv2d_backward_weights, mistake), phrases=phrases)


@pytest.mark.parametrize("function, mistake, phrases", [
    (conv2d_backward_input, "no crop", ["padded input's shape", "crop", "Cropped, your numbers are right."]),
    (conv2d_backward_input, "stride", ["stride is ignored"]),
    (conv2d_backward_input, "flip", ["kernel is not flipped where it should be (or flipped twice)"]),
    (conv2d_backward_input_full, "not flipped", ["kernel is not flipped where it should be"]),
    (conv2d_backward_input, "channels", ["channel axes are swapped", "(C, F, kh, kw)"]),
])
def test_conv2d_backward_input_hints(function, mistake, phrases):
    fails_with(check_conv2d_backward_input, with_mistake(function, mistake), phrases=phrases,
               cases=(CONV_CASES[1], CONV_CASES[2]))


def test_swapped_weight_gradient_axes_with_as_many_filters_as_channels():
    fails_with(check_conv2d_backward_weights, with_mistake(conv2d_backward_weights, "channels"),
               phrases=["channel axes are swapped", "filter first"], cases=(CONV_CASES[1],))


def test_an_input_gradient_cut_short_by_the_stride_keeps_the_inputs_shape():
    def cut_short(out_grad, x, w, stride=1, padding=0):
        return conv2d_backward_input(out_grad, x, w, stride, padding)[:, :, :-1]

    fails_with(check_conv2d_backward_input, cut_short, phrases=["no window", "still there"],
               cases=(CONV_CASES[3],))


def test_swapped_channel_axes_that_do_not_fit_get_a_hint_too():
    for check, function, phrase in [
        (check_conv2d_forward, conv2d_forward, "axis 0 of w is the filter"),
        (check_conv2d_backward_input, conv2d_backward_input, "a sum over f"),
        (check_conv2d_backward_weights, conv2d_backward_weights, "channel axes are swapped"),
    ]:
        fails_with(check, with_mistake(function, "channels"), phrases=[phrase])  # the first case has F != C


def test_max_pool2d_hints():
    fails_with(check_max_pool2d, lambda x, size: max_pool2d_forward(x, size, mean=True), max_pool2d_backward,
               phrases=["mean of each window"])
    for mistake, phrases in [
        ("every element", ["only the maximum affected the output"]),
        ("average", ["average pooling's gradient"]),
        ("ties copied", ["tied maxima", "every tied maximum got the whole of out_grad"]),
        ("no leftover", ["pooling dropped get gradient 0"]),
    ]:
        fails_with(check_max_pool2d, max_pool2d_forward, with_mistake(max_pool2d_backward, mistake), phrases=phrases)


def test_avg_pool2d_hints():
    fails_with(check_avg_pool2d, lambda x, size: avg_pool2d_forward(x, size, total=True), avg_pool2d_backward,
               phrases=["each window's sum"])
    fails_with(check_avg_pool2d, max_pool2d_forward, avg_pool2d_backward, phrases=["maximum of each window"])
    fails_with(check_avg_pool2d, avg_pool2d_forward, lambda g, x, size: avg_pool2d_backward(g, x, size, True),
               phrases=["1/size**2", "not all of out_grad"])


def test_a_missing_piece_says_it_is_not_written_yet():
    def not_written(*args):
        raise NotImplementedError()

    fails_with(check_conv2d_backward_input, not_written, phrases=["not written yet"])


# --- the work is the learner's own, and the fallbacks -------------------------------------------------


def test_calling_the_reference_is_not_the_learners_work():
    fails_with(check_conv2d_forward, lambda x, w, b, stride=1, padding=0: ops.conv2d(x, w, b, stride, padding).data,
               phrases=["calls autodiff_ref.ops.conv2d", "the reference implementation"])
    fails_with(check_conv2d_backward_input, reference_conv2d_backward_input, phrases=["the reference implementation"])


def test_the_fallbacks_hand_back_the_learners_function_once_it_passes(capsys):
    assert conv2d_forward_or_reference(conv2d_forward) is conv2d_forward
    assert conv2d_forward_or_reference(with_mistake(conv2d_forward, "flip")) is reference_conv2d_forward
    assert conv2d_backward_input_or_reference(conv2d_backward_input) is conv2d_backward_input
    pair = max_pool2d_or_reference(max_pool2d_forward, with_mistake(max_pool2d_backward, "every element"))
    assert pair[1] is reference_max_pool2d_backward
    printed = capsys.readouterr().out
    assert "does not pass its check yet" in printed and "passes its check" in printed


# --- the network -------------------------------------------------------------------------------------


class ConvLayer(Module):
    def __init__(self, in_channels, out_channels, padding, rng):
        bound = np.sqrt(6.0 / (in_channels * 9))
        self.weight = Parameter(rng.uniform(-bound, bound, size=(out_channels, in_channels, 3, 3)), dtype=np.float32)
        self.bias = Parameter(np.zeros(out_channels), dtype=np.float32)
        self.padding = padding

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, padding=self.padding)


def digit_cnn(padding=1, features=256, pool=True):
    class DigitCNN(Module):
        def __init__(self, rng):
            self.conv1 = ConvLayer(1, 32, padding, rng)
            self.conv2 = ConvLayer(32, 64, padding, rng)
            self.output = Linear(features, 10, rng=rng, dtype=np.float32)

        def forward(self, x):
            x = ops.max_pool2d(self.conv1(x).relu(), 2) if pool else self.conv1(x).relu()
            x = ops.max_pool2d(self.conv2(x).relu(), 2)
            return self.output(x.reshape(len(x), -1))

    return DigitCNN


def test_check_digit_cnn():
    check_digit_cnn(digit_cnn())
    fails_with(check_digit_cnn, digit_cnn(padding=0, features=64), phrases=["64 * 2 * 2 = 256 features"])
    fails_with(check_digit_cnn, digit_cnn(pool=False), phrases=["256 features", "8 -> 4 -> 2"])


def test_check_digit_cnn_needs_a_module_whose_parameters_all_get_gradients():
    fails_with(check_digit_cnn, lambda rng: object(), phrases=["not a Module"])

    class CutOff(digit_cnn()):
        def forward(self, x):  # the first layer's output rewrapped: the graph stops there
            from autodiff_ref import Tensor

            x = Tensor(ops.max_pool2d(self.conv1(x).relu(), 2).data)
            x = ops.max_pool2d(self.conv2(x).relu(), 2)
            return self.output(x.reshape(len(x), -1))

    fails_with(check_digit_cnn, CutOff, phrases=["conv1.weight", "has no gradient"])
