"""autodiff_ref.nn's Dropout, LayerNorm and Embedding: values, gradients, modes and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodiff_ref import Tensor, nn
from autodiff_ref.gradcheck import gradcheck


def test_dropout_zeroes_about_p_and_keeps_the_mean():
    x = Tensor(np.ones((200, 100)), requires_grad=True)
    out = nn.Dropout(0.3, rng=0)(x)
    dropped = np.mean(out.data == 0)
    assert abs(dropped - 0.3) < 0.02
    np.testing.assert_allclose(out.data[out.data != 0], 1 / 0.7)
    assert abs(out.data.mean() - 1) < 0.03
    out.sum().backward()  # the gradient is the same mask, scaled
    np.testing.assert_array_equal(x.grad, out.data)


def test_dropout_does_nothing_in_eval_mode_and_is_seeded():
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.Dropout(0.5, rng=1))
    x = np.ones((5, 4))
    first, second = model(x).data, nn.Sequential(nn.Linear(4, 3, rng=0), nn.Dropout(0.5, rng=1))(x).data
    np.testing.assert_array_equal(first, second)
    model.eval()
    np.testing.assert_array_equal(model(x).data, model[0](x).data)
    assert model.train().layers[1].training


def test_dropout_edge_probabilities_and_dtype():
    x = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    assert nn.Dropout(0.0)(x) is x
    zeros = nn.Dropout(1.0)(x)
    assert zeros.dtype == np.float32 and not zeros.data.any()
    assert nn.Dropout(0.5, rng=0)(x).dtype == np.float32
    for p in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="Dropout needs a probability"):
            nn.Dropout(p)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    normalized=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_layer_norm_gradients_match_numeric_ones(shape, normalized, seed):
    normalized = min(normalized, len(shape))
    rng = np.random.default_rng(seed)
    x = Tensor(rng.normal(size=shape), requires_grad=True)
    layer = nn.LayerNorm(tuple(shape[-normalized:]))
    layer.weight.data = rng.normal(size=layer.weight.shape)
    layer.bias.data = rng.normal(size=layer.bias.shape)
    upstream = rng.normal(size=shape)
    assert gradcheck(lambda x, w, b: ((nn.LayerNorm.forward(_with(layer, w, b), x)) * upstream).sum(),
                     x, layer.weight, layer.bias)


def _with(layer, weight, bias):
    """The layer with these tensors as its parameters (gradcheck passes its own copies)."""
    layer.weight, layer.bias = weight, bias
    return layer


def test_layer_norm_normalises_each_row():
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(4, 6))
    out = nn.LayerNorm(6)(x).data
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), 1, rtol=1e-4)  # eps makes it a hair below 1


def test_layer_norm_gradient_is_differentiable_again():
    from autodiff_ref import grad

    layer = nn.LayerNorm(3)
    f = lambda x: (layer(x) * Tensor([1.0, 2.0, -1.0])).sum()  # noqa: E731
    second = grad(lambda x: (grad(f)(x) ** 2).sum())(Tensor([[0.3, -1.2, 2.0]]))
    assert second.shape == (1, 3) and np.all(np.isfinite(second.data))


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"expects inputs ending in shape \(4,\), got shape \(2, 3\)"):
        nn.LayerNorm(4)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="positive sizes"):
        nn.LayerNorm((3, 0))


def test_embedding_looks_up_rows_and_adds_up_repeated_indices():
    table = nn.Embedding(5, 3, rng=0)
    indices = np.array([[1, 4, 1], [0, 1, 2]])
    out = table(indices)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.data[0, 0], table.weight.data[1])
    out.sum().backward()
    np.testing.assert_array_equal(table.weight.grad[:, 0], [1, 3, 1, 0, 1])  # index 1 three times


def test_embedding_errors():
    table = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"got index 5; indices must be in 0..4"):
        table([0, 5])
    with pytest.raises(IndexError, match="got index -1"):
        table([-1])
    with pytest.raises(TypeError, match="integer indices"):
        table(np.array([0.5]))
    with pytest.raises(ValueError, match="embedding_dim to be a positive integer"):
        nn.Embedding(3, 0)


def test_new_layers_find_their_parameters_and_print():
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Dropout(0.1), nn.Linear(4, 2))
    assert [name for name, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias",
    ]
    assert "Embedding(10, 4)" in repr(model) and "LayerNorm((4,), eps=1e-05)" in repr(model)
    assert "Dropout(p=0.1)" in repr(model)
