"""Checks for notebook 08, convolutions: the forward and backward of a convolution and of pooling.

The learner writes these as functions of NumPy arrays, images of shape ``(N, C, H, W)`` and
weights of shape ``(F, C, kh, kw)``:

* :func:`check_correlate2d`: ``correlate2d(image, kernel)``, one image and one channel, no padding;
* :func:`check_conv2d_forward`: ``conv2d_forward(x, w, b, stride, padding)``, batched, vectorised;
* :func:`check_conv2d_backward_weights`: ``conv2d_backward_weights(out_grad, x, w, stride,
  padding) -> (dw, db)``;
* :func:`check_conv2d_backward_input`: ``conv2d_backward_input(out_grad, x, w, stride, padding)
  -> dx``;
* :func:`check_max_pool2d` and :func:`check_avg_pool2d`: ``*_forward(x, size)`` and
  ``*_backward(out_grad, x, size)`` over non-overlapping ``size x size`` windows;
* :func:`check_digit_cnn`: the notebook's small network, as a Module.

Values are compared with :mod:`autodiff_ref.ops` (Conv2d, MaxPool2d, AvgPool2d) and gradients
with central differences of ``sum(out_grad * forward(...))``. Any correct way of computing them
passes: loops, ``einsum``, im2col, a full correlation with the flipped kernel. When the numbers
match a usual mistake the message names it. The ``*_or_reference`` functions hand back the
learner's function when it passes its check and the reference otherwise.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from .. import nn, ops
from ..gradcheck import numeric_grad
from ..tensor import Tensor, grad
from .core import CheckFailure, assert_close, own_work, random_array, yours_or_reference
from .engine import returned_array
from .training import _call, _matching_hint

__all__ = [
    "CONV_CASES",
    "POOL_CASES",
    "check_correlate2d",
    "check_conv2d_forward",
    "check_conv2d_backward_weights",
    "check_conv2d_backward_input",
    "check_max_pool2d",
    "check_avg_pool2d",
    "check_digit_cnn",
    "conv2d_forward_or_reference",
    "conv2d_backward_weights_or_reference",
    "conv2d_backward_input_or_reference",
    "max_pool2d_or_reference",
    "reference_conv2d_forward",
    "reference_conv2d_backward_weights",
    "reference_conv2d_backward_input",
    "reference_max_pool2d_forward",
    "reference_max_pool2d_backward",
]

#: (x shape (N, C, H, W), w shape (F, C, kh, kw), stride, padding) of each case the visible checks
#: run: one plain, one with F == C (where swapped channel axes still fit), one with stride and
#: padding, one with stride and a rectangular kernel that leaves rows no window reaches.
CONV_CASES = (
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 0),
    ((2, 3, 5, 5), (3, 3, 3, 3), 1, 1),
    ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1),
    ((1, 2, 8, 7), (2, 2, 3, 2), 3, 0),
)

#: (x shape, pooling size): one that tiles exactly, one with rows and columns left over.
POOL_CASES = (((2, 3, 4, 6), 2), ((1, 2, 7, 5), 2), ((2, 1, 6, 6), 3))


# --- the reference, on arrays ----------------------------------------------------------------------


def reference_conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                             padding: int = 0) -> np.ndarray:
    """``(N, C, H, W)``, ``(F, C, kh, kw)``, ``(F,)`` -> ``(N, F, Ho, Wo)``: :class:`ops.Conv2d`."""
    return ops.Conv2d(stride, padding).forward(x, w, b)


def reference_conv2d_backward_weights(out_grad: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int = 1,
                                      padding: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(dw (F, C, kh, kw), db (F,))`` for ``out_grad (N, F, Ho, Wo)``."""
    dw = ops.Conv2dWeightGrad(w.shape[2:], stride, padding).forward(x, out_grad)
    return dw, out_grad.sum(axis=(0, 2, 3))


def reference_conv2d_backward_input(out_grad: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int = 1,
                                    padding: int = 0) -> np.ndarray:
    """``dx (N, C, H, W)`` for ``out_grad (N, F, Ho, Wo)``."""
    return ops.Conv2dInputGrad(x.shape[2:], stride, padding).forward(out_grad, w)


def reference_max_pool2d_forward(x: np.ndarray, size: int = 2) -> np.ndarray:
    """``(N, C, H, W) -> (N, C, H // size, W // size)``: :class:`ops.MaxPool2d`."""
    return ops.MaxPool2d(size).forward(x)


def reference_max_pool2d_backward(out_grad: np.ndarray, x: np.ndarray, size: int = 2) -> np.ndarray:
    """``dx (N, C, H, W)``: each window's gradient to its (first) maximum, 0 elsewhere."""
    # grad() records the graph even under no_grad(), where an engine's backward pass runs.
    return grad(lambda t: (ops.MaxPool2d(size)(t) * out_grad).sum())(x).data


# Every reference function a learner's code may not call while its check runs.
_REFERENCE_CODE = (
    ops.Conv2d.forward, ops.Conv2d.backward, ops.Conv2dInputGrad.forward, ops.Conv2dWeightGrad.forward,
    ops.MaxPool2d.forward, ops.MaxPool2d.backward, ops.AvgPool2d.forward, ops.AvgPool2d.backward,
    ops.conv2d, ops.max_pool2d, ops.avg_pool2d,
)


# --- small pieces ----------------------------------------------------------------------------------


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _describe(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: int, padding: int) -> str:
    return f"x of shape {x_shape}, w of shape {w_shape}, stride={stride}, padding={padding}"


def _weighted_sum_gradients(forward: Callable[..., np.ndarray], out_grad: np.ndarray,
                            *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The gradients of ``sum(out_grad * forward(*arrays))`` by central differences: what a
    backward given ``out_grad`` must return."""
    return numeric_grad(lambda *xs: float(np.sum(out_grad * forward(*xs))), *arrays)


def _flipped(w: np.ndarray) -> np.ndarray:
    """The kernel turned by 180 degrees: what a textbook convolution slides over the image."""
    return w[..., ::-1, ::-1]


def _scatter_input_grad(out_grad: np.ndarray, w: np.ndarray, input_size: tuple[int, int],
                        step: int, padding: int) -> np.ndarray:
    """The col2im scatter-add with kernel offsets ``step`` apart: the input gradient when ``step``
    is the stride, and the usual wrong one when ``step`` is 1 but the stride is not."""
    return ops.Conv2dInputGrad(input_size, step, padding).forward(out_grad, w)


# --- exercise 1: one image, one channel, loops --------------------------------------------------------


def _check_correlate_case(fn: Callable[..., Any], image: np.ndarray, kernel: np.ndarray) -> None:
    what = f"correlate2d(image of shape {image.shape}, kernel of shape {kernel.shape})"
    got = returned_array(_call(what, fn, image.copy(), kernel.copy()), what)
    expected = reference_conv2d_forward(image[None, None], kernel[None, None], np.zeros(1))[0, 0]
    rows, columns = expected.shape
    if got.shape != expected.shape:
        hint = (f"the output has one row per position of the kernel's top edge: H - kh + 1 = "
                f"{image.shape[0]} - {kernel.shape[0]} + 1 = {rows} rows, and W - kw + 1 = {columns} "
                "columns. No padding here: the kernel stays inside the image.")
        raise CheckFailure(f"{what} has shape {got.shape}, expected {expected.shape}.\n  Hint: {hint}")
    candidates = [(reference_conv2d_forward(image[None, None], _flipped(kernel)[None, None], np.zeros(1))[0, 0],
                   "the kernel is flipped (turned by 180 degrees): that is the convolution of signal "
                   "processing. Deep learning's convolution is a cross-correlation: out[i, j] = sum of "
                   "image[i + u, j + v] * kernel[u, v], with no flip.")]
    if kernel.shape[0] == kernel.shape[1]:
        candidates.append((reference_conv2d_forward(image[None, None], kernel.T[None, None], np.zeros(1))[0, 0],
                           "the kernel is transposed: kernel[u, v] multiplies image[i + u, j + v], with u "
                           "the row offset and v the column offset."))
    assert_close(got, expected, f"The output of {what}", hint=_matching_hint(got, candidates))


def check_correlate2d(fn: Callable[..., Any], seed: int = 0) -> None:
    """Check ``correlate2d(image (H, W), kernel (kh, kw)) -> (H - kh + 1, W - kw + 1)``, the
    cross-correlation of one image with one kernel, against :class:`ops.Conv2d`."""
    with own_work("correlate2d", fn, reference_conv2d_forward, also=_REFERENCE_CODE):
        rng = np.random.default_rng(seed)
        for image_shape, kernel_shape in (((5, 6), (3, 3)), ((4, 4), (2, 3)), ((3, 3), (3, 3)), ((6, 2), (1, 1))):
            _check_correlate_case(fn, random_array(image_shape, rng), random_array(kernel_shape, rng))


# --- exercise 2: the forward, batched ---------------------------------------------------------------


def _forward_shape_hint(got: tuple[int, ...], expected: tuple[int, ...], x_shape: tuple[int, ...],
                        w_shape: tuple[int, ...], stride: int, padding: int) -> str:
    n, f, rows, columns = expected
    formula = (f"Ho = (H + 2*padding - kh) // stride + 1 = ({x_shape[2]} + {2 * padding} - {w_shape[2]}) "
               f"// {stride} + 1 = {rows}, and Wo = {columns} alike")
    if len(got) == 4 and got[1:3] == (rows, columns) and got[3] == f:
        return f"the axes are in the order (N, Ho, Wo, F); the output is (N, F, Ho, Wo): transpose it."
    if len(got) == 4 and got[:2] == (n, f):
        if stride > 1 and got[2:] == (_output_size(x_shape[2], w_shape[2], 1, padding),
                                      _output_size(x_shape[3], w_shape[3], 1, padding)):
            return f"the stride is ignored: the kernel moves {stride} pixels per step, so {formula}."
        if padding and got[2:] == (_output_size(x_shape[2], w_shape[2], stride, 0),
                                   _output_size(x_shape[3], w_shape[3], stride, 0)):
            return (f"the padding is ignored: pad x with {padding} zeros on every side of H and W "
                    f"(np.pad) before taking windows; {formula}.")
    return f"the output has shape (N, F, Ho, Wo), with {formula}."


def _axes_hint(x: np.ndarray, w: np.ndarray) -> str:
    return (f"x has shape {x.shape}, (N, C, H, W), and w {w.shape}, (F, C, kh, kw): the channel axis "
            "is axis 1 of x but axis 1 of w too (axis 0 of w is the filter), and the sum runs over c, u "
            "and v, as in np.einsum(\"ncijuv,fcuv->nfij\", windows, w).")


def _forward_hint(got: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                  padding: int) -> str | None:
    plain = reference_conv2d_forward(x, w, np.zeros_like(b), stride, padding)
    candidates = [
        (reference_conv2d_forward(x, _flipped(w), b, stride, padding),
         "the kernel is flipped: deep learning's convolution is a cross-correlation, "
         "x[i*stride + u, j*stride + v] times w[u, v], with no flip."),
        (plain, "the bias is missing: add b[f] to every position of output channel f."),
        (plain + b.reshape(1, 1, 1, -1) if plain.shape[3] == b.size else None,
         "the bias is added along the last axis (columns): it belongs to the filter axis 1; "
         "reshape it to (F, 1, 1) to broadcast over (N, F, Ho, Wo)."),
    ]
    if w.shape[0] == w.shape[1]:
        candidates.append((reference_conv2d_forward(x, w.transpose(1, 0, 2, 3), b, stride, padding),
                           "the channel axes are swapped: w has shape (F, C, kh, kw), filter first; "
                           "w[f, c] is the kernel filter f applies to input channel c."))
    return _matching_hint(got, [(wrong, hint) for wrong, hint in candidates if wrong is not None])


def _check_forward_case(fn: Callable[..., Any], x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                        padding: int) -> None:
    case = _describe(x.shape, w.shape, stride, padding)
    what = f"conv2d_forward({case})"
    got = returned_array(_call(what, fn, x.copy(), w.copy(), b.copy(), stride, padding, hint=_axes_hint(x, w)), what)
    expected = reference_conv2d_forward(x, w, b, stride, padding)
    if got.shape != expected.shape:
        raise CheckFailure(
            f"{what} has shape {got.shape}, expected {expected.shape}.\n  Hint: "
            + _forward_shape_hint(got.shape, expected.shape, x.shape, w.shape, stride, padding)
        )
    assert_close(got, expected, f"The output of {what}", hint=_forward_hint(got, x, w, b, stride, padding))


def _check_speed(name: str, fn: Callable[..., Any], reference: Callable[..., Any], rng: np.random.Generator,
                 limit: float) -> None:
    """``fn`` on a batch as large as the network's, in well under a second: loops over every image,
    filter and position take minutes per epoch. Slower than ``limit`` seconds *and* 50 times the
    reference fails; both, so that a busy machine does not fail a vectorised answer. ``fn`` and
    ``reference`` are called as the forward is, or with out_grad first as the backwards are."""
    x = random_array((64, 32, 8, 8), rng).astype(np.float32)
    w = random_array((32, 32, 3, 3), rng).astype(np.float32)
    first = random_array((32,), rng) if name == "conv2d_forward" else random_array(x.shape, rng)
    arguments = (x, w, first.astype(np.float32)) if name == "conv2d_forward" else (first.astype(np.float32), x, w)
    reference_seconds = np.inf
    for _ in range(3):  # the best of three: a busy machine slows single runs down at random
        start = time.perf_counter()
        reference(*arguments, 1, 1)
        reference_seconds = min(reference_seconds, time.perf_counter() - start)
    start = time.perf_counter()
    _call(f"{name} on a batch of 64 images of 32 channels", fn, *arguments, 1, 1)
    seconds = time.perf_counter() - start
    if seconds > limit and seconds > 50 * reference_seconds:
        raise CheckFailure(
            f"{name} took {seconds:.2f} s for 64 images of 32 channels, 8x8, with 32 filters of 3x3 "
            f"(the reference: {reference_seconds * 1000:.0f} ms). Training calls it hundreds of times "
            "per epoch.\n  Hint: loop over nothing that grows with the data. Take every window at once "
            "with np.lib.stride_tricks.sliding_window_view, and contract with np.einsum(..., "
            "optimize=True) or np.tensordot: without optimize=True, einsum sums in its own loops, a "
            "hundred times slower than a matrix product. A loop over the kh * kw kernel offsets is fine."
        )


def check_conv2d_forward(fn: Callable[..., Any], cases: Sequence[Any] = CONV_CASES, seed: int = 0,
                         time_limit: float = 1.0) -> None:
    """Check ``conv2d_forward(x (N, C, H, W), w (F, C, kh, kw), b (F,), stride, padding) ->
    (N, F, Ho, Wo)`` against :class:`ops.Conv2d` on each ``(x shape, w shape, stride, padding)``
    of ``cases``, then that a network-sized batch takes less than ``time_limit`` seconds (or 50
    times the reference)."""
    with own_work("conv2d_forward", fn, reference_conv2d_forward, also=_REFERENCE_CODE):
        rng = np.random.default_rng(seed)
        for x_shape, w_shape, stride, padding in cases:
            x, w = random_array(tuple(x_shape), rng), random_array(tuple(w_shape), rng)
            _check_forward_case(fn, x, w, random_array((w_shape[0],), rng), stride, padding)
        _check_speed("conv2d_forward", fn, reference_conv2d_forward, rng, time_limit)


# --- exercises 3 and 4: the backward ----------------------------------------------------------------


def _nudged(a: np.ndarray, eps: float) -> np.ndarray:
    """``(2, a.size, *a.shape)``: ``[0, i]`` is ``a`` with element ``i`` (in C order) plus ``eps``,
    ``[1, i]`` the same minus ``eps``: the points of central differences, in float64."""
    size = a.size
    copies = np.broadcast_to(np.asarray(a, dtype=np.float64), (2, size) + a.shape).copy()
    flat = copies.reshape(2, size, size)
    flat[0, np.arange(size), np.arange(size)] += eps
    flat[1, np.arange(size), np.arange(size)] -= eps
    return copies


def _conv_numeric_gradients(out_grad: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                            padding: int, eps: float = 1e-6) -> tuple[np.ndarray, ...]:
    """The gradients of ``sum(out_grad * conv2d(x, w, b))`` for x, w and b by central differences,
    the same numbers as :func:`_weighted_sum_gradients` (``numeric_grad``), with each array's
    nudged copies in one call of the reference forward rather than two calls per element: the
    copies of x as one large batch (the images of a batch do not mix), the copies of w and b as
    many filters side by side (nor do the filters)."""
    if x.size + w.size > 2_000:  # the copies grow as size**2: for large cases, one call per point
        forward = lambda *a: reference_conv2d_forward(*a, stride, padding)  # noqa: E731
        return _weighted_sum_gradients(forward, out_grad, x, w, b)
    n, f = x.shape[0], w.shape[0]

    def differences(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:  # values (2, size)
        return ((values[0] - values[1]) / (2 * eps)).reshape(shape)

    xs = _nudged(x, eps)
    out = reference_conv2d_forward(xs.reshape((-1,) + x.shape[1:]), w, b, stride, padding)
    values = (out.reshape((2, x.size) + out_grad.shape) * out_grad).sum(axis=(2, 3, 4, 5))
    grads = [differences(values, x.shape)]
    for nudged_w, nudged_b, size, shape in (
        (_nudged(w, eps), np.broadcast_to(b, (2, w.size, f)), w.size, w.shape),
        (np.broadcast_to(w, (2, b.size) + w.shape), _nudged(b, eps), b.size, b.shape),
    ):
        out = reference_conv2d_forward(x, nudged_w.reshape((-1,) + w.shape[1:]), nudged_b.reshape(-1), stride,
                                       padding)
        out = out.reshape((n, 2, size, f) + out.shape[2:])
        values = (out * out_grad[:, None, None]).sum(axis=(0, 3, 4, 5))
        grads.append(differences(values, shape))
    return tuple(grads)


def _conv_case(case: Any, rng: np.random.Generator):
    x_shape, w_shape, stride, padding = case
    x, w, b = random_array(tuple(x_shape), rng), random_array(tuple(w_shape), rng), random_array((w_shape[0],), rng)
    out_shape = reference_conv2d_forward(x, w, b, stride, padding).shape
    out_grad = random_array(out_shape, rng)
    numeric = _conv_numeric_gradients(out_grad, x, w, b, stride, padding)
    return x, w, b, stride, padding, out_grad, numeric


def _windows_hint(x: np.ndarray, w: np.ndarray, out_grad: np.ndarray, stride: int, padding: int) -> str:
    return (
        f"out_grad has shape {out_grad.shape}, (N, F, Ho, Wo). The windows it pairs with are those of x "
        f"padded by {padding}, taken every {stride} rows and columns (windows[:, :, ::stride, ::stride]): "
        f"shape {(x.shape[0], x.shape[1]) + out_grad.shape[2:] + w.shape[2:]}, (N, C, Ho, Wo, kh, kw)."
    )


def _weight_hint(got: np.ndarray, expected: np.ndarray, w: np.ndarray) -> str | None:
    candidates = [(_flipped(expected), "the weight gradient is flipped: w[f, c, u, v] multiplied "
                   "x_padded[n, c, i*stride + u, j*stride + v], so its gradient sums out_grad[n, f, i, j] "
                   "times exactly that, with no flip.")]
    if w.shape[0] == w.shape[1]:
        candidates.append((expected.transpose(1, 0, 2, 3), "the channel axes are swapped: dw has w's shape "
                           "(F, C, kh, kw), filter first."))
    return _matching_hint(got, candidates)


def _bias_shape_hint(got: tuple[int, ...], out_grad: np.ndarray) -> str:
    n, f = out_grad.shape[:2]
    if got == (n, f):
        return "it is not summed over the batch: each bias is added in every image, so sum over axis 0 too."
    if got == (f,) + out_grad.shape[2:]:
        return ("it is not summed over the positions: each bias is added at every (i, j) of its map, "
                "so sum over axes 2 and 3 too.")
    if got == out_grad.shape[:2] + (1, 1) or got == (1, f, 1, 1):
        return f"the summed axes are kept: sum over (0, 2, 3) without keepdims, giving ({f},)."
    return (f"db has the bias's shape ({f},): b[f] is added at every position of every image, so its "
            "gradient is out_grad summed over the batch and the positions, axes (0, 2, 3).")


def check_conv2d_backward_weights(fn: Callable[..., Any], cases: Sequence[Any] = CONV_CASES, seed: int = 0,
                                  time_limit: float = 1.0) -> None:
    """Check ``conv2d_backward_weights(out_grad, x, w, stride, padding) -> (dw, db)``, the
    gradients of ``sum(out_grad * conv2d(x, w, b))`` for the weight ``(F, C, kh, kw)`` and the
    bias ``(F,)``, against central differences on each case of :data:`CONV_CASES`; then its speed,
    as :func:`check_conv2d_forward` checks the forward's."""
    with own_work("conv2d_backward_weights", fn, reference_conv2d_backward_weights, also=_REFERENCE_CODE):
        rng = np.random.default_rng(seed)
        for case in cases:
            x, w, b, stride, padding, out_grad, numeric = _conv_case(case, rng)
            what = f"conv2d_backward_weights(out_grad, {_describe(x.shape, w.shape, stride, padding)})"
            returned = _call(what, fn, out_grad.copy(), x.copy(), w.copy(), stride, padding,
                             hint=_windows_hint(x, w, out_grad, stride, padding))
            if not isinstance(returned, (tuple, list)) or len(returned) != 2:
                raise CheckFailure(f"{what} returned {type(returned).__name__}; it should return two arrays, "
                                   "(dw, db).")
            dw, db = (returned_array(r, what) for r in returned)
            if dw.shape == (w.shape[0],) and db.shape == w.shape:
                raise CheckFailure(f"{what} returned (db, dw); return them as (dw, db).")
            if dw.shape != w.shape and dw.shape == (w.shape[1], w.shape[0]) + w.shape[2:]:
                raise CheckFailure(f"dw from {what} has shape {dw.shape}, expected {w.shape}.\n  Hint: the "
                                   "channel axes are swapped: dw has w's shape (F, C, kh, kw), filter first.")
            if dw.shape != w.shape:
                raise CheckFailure(
                    f"dw from {what} has shape {dw.shape}, expected w's shape {w.shape}.\n  Hint: "
                    + _windows_hint(x, w, out_grad, stride, padding)
                    + " Contract out_grad with them over N, Ho and Wo."
                )
            assert_close(dw, numeric[1], f"dw from {what}", hint=_weight_hint(dw, numeric[1], w))
            if db.shape != numeric[2].shape:
                raise CheckFailure(f"db from {what} has shape {db.shape}, expected {numeric[2].shape}.\n"
                                   f"  Hint: {_bias_shape_hint(db.shape, out_grad)}")
            assert_close(db, numeric[2], f"db from {what}", hint=_matching_hint(db, [
                (numeric[2] / x.shape[0], "db is the mean over the batch; the loss sums each bias's "
                 "contributions, so sum over axes (0, 2, 3)."),
            ]))
        _check_speed("conv2d_backward_weights", fn, reference_conv2d_backward_weights, rng, time_limit)


def _input_hint(got: np.ndarray, expected: np.ndarray, out_grad: np.ndarray, x: np.ndarray, w: np.ndarray,
                stride: int, padding: int) -> str | None:
    size = x.shape[2:]
    candidates = [
        (_scatter_input_grad(out_grad, _flipped(w), size, stride, padding),
         "the kernel is not flipped where it should be (or flipped twice). As a correlation, the input "
         "gradient is the full correlation of out_grad with the kernel turned by 180 degrees; as a "
         "scatter-add, out_grad[n, f, i, j] * w[f, c, u, v] goes to x_padded[n, c, i*stride + u, "
         "j*stride + v], with w as it is."),
    ]
    if stride > 1:
        candidates.append((_scatter_input_grad(out_grad, w, size, 1, padding),
                           f"the stride is ignored: output position (i, j) read the window at row i*stride, "
                           f"column j*stride (stride {stride}), so that is where its gradient goes back; for "
                           "the correlation form, first spread out_grad out with stride - 1 zeros between "
                           "its rows and columns."))
    if w.shape[0] == w.shape[1]:
        candidates.append((_scatter_input_grad(out_grad, w.transpose(1, 0, 2, 3), size, stride, padding),
                           "the channel axes are swapped: the gradient flows back from filter f to input "
                           "channel c through w[f, c]; as a correlation, the kernel is w with axes 0 and 1 "
                           "swapped, (C, F, kh, kw)."))
    return _matching_hint(got, candidates)


def _input_shape_hint(got: np.ndarray, expected: np.ndarray, stride: int, padding: int) -> str:
    if padding and got.shape == expected.shape[:2] + tuple(n + 2 * padding for n in expected.shape[2:]):
        cropped = got[:, :, padding:-padding, padding:-padding]
        right = " Cropped, your numbers are right." if np.allclose(cropped, expected, atol=1e-6, rtol=1e-5) else ""
        return (f"that is the padded input's shape: the zeros added around x are not inputs, so crop "
                f"{padding} rows and columns from each side, dx_padded[:, :, {padding}:-{padding}, "
                f"{padding}:-{padding}].{right}")
    return (f"dx has x's shape {expected.shape}. With stride {stride}, rows and columns that no window "
            "reached (at the bottom and right) get gradient 0, but they are still there.")


def check_conv2d_backward_input(fn: Callable[..., Any], cases: Sequence[Any] = CONV_CASES, seed: int = 0,
                                time_limit: float = 1.0) -> None:
    """Check ``conv2d_backward_input(out_grad, x, w, stride, padding) -> dx``, the gradient of
    ``sum(out_grad * conv2d(x, w, b))`` for the input ``(N, C, H, W)``, against central
    differences on each case of :data:`CONV_CASES`; then its speed, as :func:`check_conv2d_forward`
    checks the forward's."""
    with own_work("conv2d_backward_input", fn, reference_conv2d_backward_input, also=_REFERENCE_CODE):
        rng = np.random.default_rng(seed)
        for case in cases:
            x, w, b, stride, padding, out_grad, numeric = _conv_case(case, rng)
            what = f"conv2d_backward_input(out_grad, {_describe(x.shape, w.shape, stride, padding)})"
            dx = returned_array(_call(what, fn, out_grad.copy(), x.copy(), w.copy(), stride, padding, hint=(
                f"out_grad has shape {out_grad.shape}, (N, F, Ho, Wo), and w {w.shape}, (F, C, kh, kw): the "
                "gradient flows from filter f back to channel c, a sum over f, as in "
                "np.einsum(\"nfij,fc->ncij\", out_grad, w[:, :, u, v]).")), what)
            if dx.shape != x.shape:
                raise CheckFailure(f"dx from {what} has shape {dx.shape}, expected {x.shape}.\n"
                                   f"  Hint: {_input_shape_hint(dx, numeric[0], stride, padding)}")
            assert_close(dx, numeric[0], f"dx from {what}",
                         hint=_input_hint(dx, numeric[0], out_grad, x, w, stride, padding))
        _check_speed("conv2d_backward_input", fn, reference_conv2d_backward_input, rng, time_limit)


# --- exercises 5 and 6: pooling ----------------------------------------------------------------------


def _pool_forward(fn: Callable[..., Any], name: str, x: np.ndarray, size: int, expected: np.ndarray,
                  candidates: list[tuple[np.ndarray, str]]) -> None:
    what = f"{name}_forward(x of shape {x.shape}, size={size})"
    got = returned_array(_call(what, fn, x.copy(), size), what)
    if got.shape != expected.shape:
        raise CheckFailure(
            f"{what} has shape {got.shape}, expected {expected.shape}.\n  Hint: windows of {size}x{size} side "
            f"by side give H // size = {expected.shape[2]} rows and W // size = {expected.shape[3]} columns; "
            "rows and columns left over at the bottom and right are dropped (x[:, :, :rows*size, "
            ":columns*size])."
        )
    assert_close(got, expected, f"The output of {what}", hint=_matching_hint(got, candidates))


def _pool_backward(fn: Callable[..., Any], name: str, x: np.ndarray, size: int, out_grad: np.ndarray,
                   expected: np.ndarray, candidates: list[tuple[np.ndarray, str]]) -> np.ndarray:
    what = f"{name}_backward(out_grad, x of shape {x.shape}, size={size})"
    got = returned_array(_call(what, fn, out_grad.copy(), x.copy(), size), what)
    if got.shape != x.shape:
        raise CheckFailure(
            f"dx from {what} has shape {got.shape}, expected x's shape {x.shape}.\n  Hint: the rows and "
            "columns that pooling dropped get gradient 0, but dx still has them."
        )
    assert_close(got, expected, f"dx from {what}", hint=_matching_hint(got, candidates))
    return got


def _spread(out_grad: np.ndarray, size: int, shape: tuple[int, ...]) -> np.ndarray:
    """Each window's out_grad copied to all its elements; 0 on the dropped rows and columns."""
    spread = np.zeros(shape)
    rows, columns = out_grad.shape[2:]
    spread[:, :, :rows * size, :columns * size] = out_grad.repeat(size, axis=2).repeat(size, axis=3)
    return spread


def _check_ties(backward: Callable[..., Any], rng: np.random.Generator) -> None:
    """Windows with several equal maxima: any share of each window's out_grad among its maxima is
    a valid gradient (PyTorch gives it all to the first); nothing may go elsewhere or be copied."""
    size = 2
    x = rng.integers(0, 2, size=(2, 2, 4, 4)).astype(np.float64)  # mostly ties
    out_grad = random_array((2, 2, 2, 2), rng)
    what = f"max_pool2d_backward(out_grad, x of shape {x.shape}, size=2) with tied maxima (x of 0s and 1s)"
    got = returned_array(_call(what, backward, out_grad.copy(), x.copy(), size), what)
    if got.shape != x.shape:
        raise CheckFailure(f"dx from {what} has shape {got.shape}, expected {x.shape}.")
    windows = lambda a: a.reshape(2, 2, 2, size, 2, size)  # noqa: E731
    is_max = windows(x) == windows(x).max(axis=(3, 5), keepdims=True)
    share = windows(got).sum(axis=(3, 5))
    if np.any(np.abs(windows(got)[~is_max]) > 1e-9):
        raise CheckFailure(f"dx from {what} is not 0 at an element that is not its window's maximum.")
    if not np.allclose(share, out_grad, rtol=1e-6, atol=1e-9):
        maxima = is_max.sum(axis=(3, 5))
        copied = np.allclose(share, out_grad * maxima, rtol=1e-6, atol=1e-9)
        raise CheckFailure(
            f"dx from {what} is wrong: the gradients of a window's elements should add up to its out_grad, "
            "but they do not.\n  Hint: "
            + ("every tied maximum got the whole of out_grad, so the window passes on more gradient than "
               "it received (the output moves by out_grad, not by that times the number of ties). Give it "
               "to one of them, the first as np.argmax picks it (as PyTorch does), or split it among them."
               if copied else "give each window's out_grad to its maximum (with ties, to one of them).")
        )


def check_max_pool2d(forward: Callable[..., Any], backward: Callable[..., Any], cases: Sequence[Any] = POOL_CASES,
                     seed: int = 0) -> None:
    """Check ``max_pool2d_forward(x, size)`` and ``max_pool2d_backward(out_grad, x, size)`` over
    non-overlapping ``size x size`` windows: forward against :class:`ops.MaxPool2d`, backward
    against central differences, then on windows with tied maxima."""
    also = (*_REFERENCE_CODE, reference_max_pool2d_forward, reference_max_pool2d_backward)
    with own_work("max_pool2d_forward", forward, reference_max_pool2d_forward, also=also), \
            own_work("max_pool2d_backward", backward, reference_max_pool2d_backward, also=also):
        rng = np.random.default_rng(seed)
        for x_shape, size in cases:
            x = random_array(tuple(x_shape), rng)
            expected = reference_max_pool2d_forward(x, size)
            mean = ops.AvgPool2d(size).forward(x)
            _pool_forward(forward, "max_pool2d", x, size, expected, [
                (mean, "that is the mean of each window; max pooling keeps its largest value.")])
            out_grad = random_array(expected.shape, rng)
            numeric = _weighted_sum_gradients(lambda a: reference_max_pool2d_forward(a, size), out_grad, x)[0]
            spread = _spread(out_grad, size, x.shape)
            _pool_backward(backward, "max_pool2d", x, size, out_grad, numeric, [
                (spread, "every element of a window got its out_grad, but only the maximum affected the "
                 "output: the others get 0. Keep a mask of where each window's maximum is."),
                (spread / size**2, "that is average pooling's gradient, out_grad / size**2 to every element; "
                 "max pooling sends all of out_grad to the maximum."),
            ])
        _check_ties(backward, rng)


def check_avg_pool2d(forward: Callable[..., Any], backward: Callable[..., Any], cases: Sequence[Any] = POOL_CASES,
                     seed: int = 0) -> None:
    """Check ``avg_pool2d_forward(x, size)`` and ``avg_pool2d_backward(out_grad, x, size)`` over
    non-overlapping ``size x size`` windows against :class:`ops.AvgPool2d` and central differences."""
    with own_work("avg_pool2d_forward", forward, ops.AvgPool2d.forward, also=_REFERENCE_CODE), \
            own_work("avg_pool2d_backward", backward, ops.AvgPool2d.backward, also=_REFERENCE_CODE):
        rng = np.random.default_rng(seed)
        for x_shape, size in cases:
            x = random_array(tuple(x_shape), rng)
            expected = ops.AvgPool2d(size).forward(x)
            _pool_forward(forward, "avg_pool2d", x, size, expected, [
                (expected * size**2, f"that is each window's sum; the mean divides it by size**2 = {size**2}."),
                (reference_max_pool2d_forward(x, size), "that is the maximum of each window, not its mean.")])
            out_grad = random_array(expected.shape, rng)
            numeric = _weighted_sum_gradients(lambda a: ops.AvgPool2d(size).forward(a), out_grad, x)[0]
            spread = _spread(out_grad, size, x.shape)
            _pool_backward(backward, "avg_pool2d", x, size, out_grad, numeric, [
                (spread, f"each element is 1/size**2 = 1/{size**2} of its window's mean, so it gets "
                 f"out_grad / {size**2}, not all of out_grad."),
            ])


# --- exercise 7: the network -------------------------------------------------------------------------

#: The parameters of the notebook's network and their shapes, in the order they are made.
DIGIT_CNN_SHAPES = (((32, 1, 3, 3), "conv1.weight"), ((32,), "conv1.bias"), ((64, 32, 3, 3), "conv2.weight"),
                    ((64,), "conv2.bias"), ((256, 10), "output.weight"), ((10,), "output.bias"))


def _digit_cnn_reference(parameters: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The network of the notebook on arrays: conv 3x3 (padding 1), ReLU, max pool 2, twice; then
    flatten and a linear layer. ``(N, 1, 8, 8) -> (N, 10)``."""
    w1, b1, w2, b2, w3, b3 = parameters
    h = ops.MaxPool2d(2).forward(np.maximum(ops.Conv2d(1, 1).forward(x, w1, b1), 0))
    h = ops.MaxPool2d(2).forward(np.maximum(ops.Conv2d(1, 1).forward(h, w2, b2), 0))
    return h.reshape(len(x), -1) @ w3 + b3


def check_digit_cnn(ModelClass: type, seed: int = 0) -> None:
    """Check the notebook's network ``ModelClass(rng)``: its parameters (shapes as in
    :data:`DIGIT_CNN_SHAPES`), its output ``(N, 10)`` against the same network computed with the
    reference ops, and that every parameter gets a gradient."""
    model = _call("DigitCNN(rng=0)", ModelClass, np.random.default_rng(seed))
    if not isinstance(model, nn.Module):
        raise CheckFailure(f"DigitCNN(rng) made a {type(model).__name__}, not a Module: write class DigitCNN(Module).")
    named = dict(_call("model.named_parameters()", lambda: list(model.named_parameters())))
    wanted = {name: shape for shape, name in DIGIT_CNN_SHAPES}
    found = {name: p.shape for name, p in named.items()}
    if found != wanted:
        listing = ", ".join(f"{name} {shape}" for shape, name in DIGIT_CNN_SHAPES)
        raise CheckFailure(
            f"The network's parameters are {found}; expected {listing}.\n"
            "  Hint: name the layers conv1, conv2 and output: two Conv2d layers (1 -> 32 and 32 -> 64 "
            "channels, 3x3, padding=1) and one Linear. Padding 1 keeps 8x8; each 2x2 max pool halves it, "
            "8 -> 4 -> 2, so the Linear layer sees 64 * 2 * 2 = 256 features."
        )
    parameters = list(named.values())
    ordered = [named[name] for _, name in DIGIT_CNN_SHAPES]
    x = np.random.default_rng(seed + 1).uniform(-1, 2, size=(5, 1, 8, 8)).astype(ordered[0].dtype)
    layers = ("the layers are, in order: conv1 (padding=1), ReLU, 2x2 max pool, conv2 (padding=1), ReLU, "
              "2x2 max pool, flatten to (N, 256) with x.reshape(len(x), -1), output Linear. Padding 1 keeps "
              "8x8; each pooling halves it, 8 -> 4 -> 2, so the Linear layer sees 64 * 2 * 2 = 256 features.")
    out = _call("model(x) for x of shape (5, 1, 8, 8)", model, Tensor(x), hint=layers)
    got = returned_array(out, "model(x)")
    expected = _digit_cnn_reference([p.data.astype(np.float64) for p in ordered], x.astype(np.float64))
    if got.shape != expected.shape:
        raise CheckFailure(f"model(x) for x of shape (5, 1, 8, 8) has shape {got.shape}, expected (5, 10).")
    assert_close(got, expected, "model(x) for x of shape (5, 1, 8, 8)", atol=1e-3, rtol=1e-3, hint=layers)
    for p in parameters:
        p.grad = None
    _call("model(x).sum().backward()", lambda: model(Tensor(x)).sum().backward())
    for p, (shape, name) in zip(ordered, DIGIT_CNN_SHAPES):
        if p.grad is None:
            raise CheckFailure(f"After backward(), the {name} parameter of shape {shape} has no gradient.\n"
                               "  Hint: compute the output from the layers' Parameters with Tensor operations.")


# --- the learner's functions, or the reference --------------------------------------------------------


def conv2d_forward_or_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` if it passes :func:`check_conv2d_forward`, else the reference."""
    return yours_or_reference("conv2d_forward", fn, lambda: check_conv2d_forward(fn), reference_conv2d_forward,
                              "autodiff_ref's Conv2d forward")


def conv2d_backward_weights_or_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` if it passes :func:`check_conv2d_backward_weights`, else the reference."""
    return yours_or_reference("conv2d_backward_weights", fn, lambda: check_conv2d_backward_weights(fn),
                              reference_conv2d_backward_weights, "autodiff_ref's weight gradient")


def conv2d_backward_input_or_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` if it passes :func:`check_conv2d_backward_input`, else the reference."""
    return yours_or_reference("conv2d_backward_input", fn, lambda: check_conv2d_backward_input(fn),
                              reference_conv2d_backward_input, "autodiff_ref's input gradient")


def max_pool2d_or_reference(forward: Callable[..., Any], backward: Callable[..., Any]) -> tuple[Callable[..., Any], ...]:
    """``(forward, backward)`` if they pass :func:`check_max_pool2d`, else the reference pair."""
    return yours_or_reference("max_pool2d", (forward, backward), lambda: check_max_pool2d(forward, backward),
                              (reference_max_pool2d_forward, reference_max_pool2d_backward),
                              "autodiff_ref's MaxPool2d")
