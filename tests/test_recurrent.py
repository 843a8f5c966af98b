"""The recurrent pieces of ``autodiff_ref``: ``nn.RNNCell``, ``nn.RNNClassifier`` and
``optim.clip_grad_norm``, against numeric gradients, hand-computed numbers and PyTorch
(``torch.nn.RNNCell`` with tanh, ``torch.nn.utils.clip_grad_norm_``; skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor
from autodiff_ref.gradcheck import gradcheck
from autodiff_ref.nn import Parameter, RNNCell, RNNClassifier
from autodiff_ref.optim import clip_grad_norm


def cell_with(W, U, b):
    """An RNNCell holding the given weights (float64)."""
    cell = RNNCell(U.shape[0], W.shape[0], rng=0)
    cell.weight_hh.data, cell.weight_ih.data, cell.bias.data = W, U, b
    return cell


def test_the_cell_computes_tanh_of_the_affine_map():
    rng = np.random.default_rng(0)
    W, U, b = rng.standard_normal((4, 4)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    out = cell_with(W, U, b)(x, h)
    np.testing.assert_allclose(out.data, np.tanh(h @ W + x @ U + b), rtol=1e-12)


def test_the_cell_parameters_have_the_documented_shapes_and_scale():
    cell = RNNCell(3, 50, rng=1)
    names = {name: p.shape for name, p in cell.named_parameters()}
    assert names == {"weight_hh": (50, 50), "weight_ih": (3, 50), "bias": (50,)}
    assert all(np.abs(p.data).max() <= 1 / np.sqrt(50) for p in cell.parameters())
    assert RNNCell(3, 5, dtype=np.float32).weight_hh.dtype == np.float32


def test_gradients_through_an_unrolled_cell_match_central_differences():
    """The same weights at every step: their gradient sums over the steps."""
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((5, 2, 3))

    def unrolled(W, U, b, h0):
        cell = RNNCell(3, 4)
        cell.weight_hh, cell.weight_ih, cell.bias = W, U, b  # the tensors gradcheck differentiates
        h = h0
        for x in xs:
            h = cell(x, h)
        return h

    inputs = [rng.standard_normal((4, 4)) / 2, rng.standard_normal((3, 4)), rng.standard_normal(4),
              rng.standard_normal((2, 4))]
    assert gradcheck(unrolled, *inputs)


def test_the_cell_rejects_inputs_of_the_wrong_size():
    with pytest.raises(ValueError, match="expects x with 3 features and h with 4"):
        RNNCell(3, 4, rng=0)(np.ones((2, 5)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="positive integer"):
        RNNCell(0, 4)


def test_the_classifier_reads_rows_in_order_from_a_zero_state():
    rng = np.random.default_rng(2)
    model = RNNClassifier(8, 6, 10, rng=0)
    images = rng.uniform(0, 1, (3, 64))
    W, U, b = (p.data for p in (model.cell.weight_hh, model.cell.weight_ih, model.cell.bias))
    h = np.zeros((3, 6))
    for row in images.reshape(3, 8, 8).transpose(1, 0, 2):
        h = np.tanh(h @ W + row @ U + b)
    expected = h @ model.head.weight.data + model.head.bias.data
    np.testing.assert_allclose(model(images).data, expected, rtol=1e-12)
    np.testing.assert_allclose(model(images.reshape(3, 8, 8)).data, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="steps of 8 features"):
        model(np.ones((3, 63)))


def test_clipping_scales_every_gradient_by_one_factor_and_returns_the_norm_before():
    a, b, c = Parameter(np.zeros(2)), Parameter(np.zeros((2, 2))), Parameter(np.zeros(3))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([[0.0, 4.0], [0.0, 0.0]])  # global norm 5
    assert clip_grad_norm([a, b, c], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0])
    np.testing.assert_allclose(b.grad, [[0.0, 0.8], [0.0, 0.0]])
    assert c.grad is None
    assert clip_grad_norm([a, b, c], 2.0) == pytest.approx(1.0)  # below the threshold: unchanged
    np.testing.assert_allclose(a.grad, [0.6, 0.0])


def test_clipping_keeps_float32_gradients_float32_and_rejects_a_bad_threshold():
    p = Parameter(np.ones(4), dtype=np.float32)
    p.grad = np.full(4, 10.0, dtype=np.float32)
    clip_grad_norm([p], 1.0)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p.grad), 1.0, rtol=1e-6)
    for bad in (0, -1.0, "1", True):
        with pytest.raises(ValueError, match="positive max_norm"):
            clip_grad_norm([p], bad)


# --- against PyTorch --------------------------------------------------------------------------------


def test_the_unrolled_cell_matches_torch_rnncell():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the comparison is optional")
    rng = np.random.default_rng(3)
    D, H, N, T = 3, 5, 4, 6
    theirs = torch.nn.RNNCell(D, H, nonlinearity="tanh").double()
    # Our weights are stored input-major: torch's are their transposes, and its two biases add up.
    ours = cell_with(theirs.weight_hh.detach().numpy().T.copy(), theirs.weight_ih.detach().numpy().T.copy(),
                     (theirs.bias_ih + theirs.bias_hh).detach().numpy().copy())
    xs, h0, w = rng.standard_normal((T, N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))

    h_ours, h_theirs = Tensor(h0, requires_grad=True), torch.tensor(h0, requires_grad=True)
    start_ours, start_theirs = h_ours, h_theirs
    for x in xs:
        h_ours, h_theirs = ours(x, h_ours), theirs(torch.tensor(x), h_theirs)
    (h_ours * w).sum().backward()
    (h_theirs * torch.tensor(w)).sum().backward()

    np.testing.assert_allclose(h_ours.data, h_theirs.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(start_ours.grad, start_theirs.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.weight_hh.grad, theirs.weight_hh.grad.numpy().T, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.weight_ih.grad, theirs.weight_ih.grad.numpy().T, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias_ih.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias_hh.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_clipping_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the comparison is optional")
    rng = np.random.default_rng(4)
    for scale in (0.01, 10.0):
        grads = [scale * rng.standard_normal(shape) for shape in ((3, 4), (4,), (2, 2))]
        ours = [Parameter(np.zeros_like(g)) for g in grads]
        theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.copy(), torch.tensor(g)
        norm_ours = clip_grad_norm(ours, 1.0)
        norm_theirs = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        assert norm_ours == pytest.approx(float(norm_theirs), rel=1e-12)
        for p, q in zip(ours, theirs):  # torch divides by norm + 1e-6: equal to about 1e-6
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-5)
