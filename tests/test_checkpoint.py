"""``autodiff_ref.checkpoint``: a checkpointed computation gives the plain one's values and
gradients, first and second order, keeps less memory, and treats closed-over tensors as the
module docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, grad, is_grad_enabled, no_grad
from autodiff_ref.checkpoint import Checkpoint, checkpoint, enable_grad
from autodiff_ref.gradcheck import gradcheck
from autodiff_ref.testing.recurrent import chain_segment, peak_memory


def chain(h, W, depth, segments=None):
    """``depth`` blocks tanh(h @ W), plain or in ``segments`` checkpointed segments."""
    if segments is None:
        return chain_segment(h, W, depth)
    for _ in range(segments):
        h = checkpoint(lambda x, w: chain_segment(x, w, depth // segments), h, W)
    return h


@pytest.mark.parametrize("depth, segments", [(6, 1), (6, 2), (6, 3), (6, 6)])
def test_values_and_gradients_equal_the_plain_chain(depth, segments):
    rng = np.random.default_rng(depth * 10 + segments)
    h0, W0, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 4)) / 2, rng.standard_normal((3, 4))
    results = []
    for parts in (None, segments):
        h, W = Tensor(h0, requires_grad=True), Tensor(W0, requires_grad=True)
        out = chain(h, W, depth, parts)
        (out * w).sum().backward()
        results.append((out.data, h.grad, W.grad))
    for plain, checkpointed in zip(*results):
        np.testing.assert_allclose(checkpointed, plain, rtol=1e-12, atol=1e-14)


def test_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    assert gradcheck(lambda h, W: chain(h, W, 4, 2), rng.standard_normal((2, 3)), rng.standard_normal((3, 3)))


def test_second_derivatives_go_through_a_checkpoint():
    rng = np.random.default_rng(1)
    h0, W0 = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) / 2

    def gradient_sum(segments):
        # d/dh0 of sum(d loss / dW): a mixed second derivative, through the recomputed segments.
        return grad(lambda h: grad(lambda W: (chain(h, W, 4, segments) ** 2).sum())(Tensor(W0)).sum())(
            Tensor(h0)).data

    np.testing.assert_allclose(gradient_sum(2), gradient_sum(None), rtol=1e-10, atol=1e-12)


def test_inputs_that_need_no_gradient_get_none_and_unused_inputs_get_zeros():
    x, data = Tensor(np.ones(3), requires_grad=True), Tensor(np.arange(3.0))
    unused = Tensor(np.ones(2), requires_grad=True)
    out = checkpoint(lambda a, d, u: a * d, x, data, unused)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(unused.grad, [0.0, 0.0])
    assert data.grad is None


def test_one_tensor_passed_twice_gets_both_shares():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    checkpoint(lambda a, b: a * b, x, x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_a_closed_over_tensor_is_a_constant_to_the_checkpoint():
    x, closed = Tensor(np.ones(2), requires_grad=True), Tensor(np.full(2, 3.0), requires_grad=True)
    checkpoint(lambda a: a * closed, x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])
    assert closed.grad is None


def test_the_forward_records_nothing_inside_the_segment():
    x = Tensor(np.ones(2), requires_grad=True)
    out = checkpoint(lambda a: (a * 2).exp().tanh(), x)
    assert isinstance(out.op, Checkpoint) and out.inputs == (x,)


def test_f_must_return_a_tensor():
    with pytest.raises(TypeError, match="return a Tensor"):
        checkpoint(lambda a: 1.0, Tensor(np.ones(2), requires_grad=True))


def test_enable_grad_turns_recording_back_on_and_restores_the_mode():
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_peak_memory_falls_to_a_fraction_with_sqrt_depth_segments():
    rng = np.random.default_rng(0)
    h0, W0 = rng.standard_normal((64, 128)), rng.standard_normal((128, 128)) / np.sqrt(128)

    def run(segments):
        h, W = Tensor(h0, requires_grad=True), Tensor(W0, requires_grad=True)
        chain(h, W, 64, segments).sum().backward()

    plain, checkpointed = peak_memory(lambda: run(None)), peak_memory(lambda: run(8))
    assert checkpointed <= 0.3 * plain, (plain, checkpointed)  # measured: about 0.19
