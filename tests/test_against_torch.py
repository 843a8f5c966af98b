"""Values and gradients of the tensor engine against PyTorch's, in float64.

PyTorch is optional: without it this module is skipped, and CI does not install it.
"""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, grad

torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only needed for this optional comparison")


def sample(shape: tuple[int, ...], rng: np.random.Generator, domain: str = "real") -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


INDEX = np.array([0, 2, 0, 1])
LABELS = np.array([0, 2, 1, 1, 0])

# name: (ours, theirs or None when the same expression works for both, [(shape, domain) per input])
CASES = {
    "broadcast arithmetic": (
        lambda a, b: a * b - a / b + b**2 - 3.0 / a + 1.5,
        None,
        [((2, 3), "real"), ((3,), "real")],
    ),
    "power with tensor exponent": (lambda a, b: a**b + 2.0**b, None, [((2, 1), "positive"), ((1, 3), "real")]),
    "elementwise functions": (
        lambda a: a.exp() + a.abs().sqrt() + a.relu() * a.sigmoid() - a.tanh() + (a * a).log() - (-a),
        None,
        [((2, 3, 2), "real")],
    ),
    "batched matmul, batch axes broadcast": (lambda a, b: a @ b, None, [((5, 1, 2, 3), "real"), ((4, 3, 2), "real")]),
    "vector against a stack": (lambda a, b: a @ b, None, [((3,), "real"), ((5, 3, 4), "real")]),
    "dot product": (lambda a, b: a @ b, None, [((4,), "real"), ((4,), "real")]),
    "sum and mean over axes": (
        lambda a: a.sum(axis=(0, 2), keepdims=True) * a.mean(axis=-1, keepdims=True) + a.mean(),
        lambda a: a.sum(dim=(0, 2), keepdim=True) * a.mean(dim=-1, keepdim=True) + a.mean(),
        [((2, 3, 4), "real")],
    ),
    "max over axes": (
        lambda a: a.max(axis=(0, -1)) + a.max(axis=1, keepdims=True).sum() + a.max(),
        lambda a: torch.amax(a, dim=(0, -1)) + torch.amax(a, dim=1, keepdim=True).sum() + a.max(),
        [((2, 3, 4), "real")],
    ),
    "logsumexp": (
        lambda a: a.logsumexp(axis=1) + a.logsumexp(axis=(0, 2), keepdims=True).sum(),
        lambda a: torch.logsumexp(a, dim=1) + torch.logsumexp(a, dim=(0, 2), keepdim=True).sum(),
        [((2, 3, 4), "real")],
    ),
    "softmax and log_softmax": (
        lambda a: a.softmax(axis=0) * a.log_softmax(axis=-1),
        lambda a: torch.softmax(a, dim=0) * torch.log_softmax(a, dim=-1),
        [((3, 4), "real")],
    ),
    "softmax family on inputs in the thousands": (
        lambda a: (a * 1000).softmax(axis=1)
        + (a * 1000).log_softmax(axis=1)
        + (a * 1000).logsumexp(axis=1, keepdims=True),
        lambda a: torch.softmax(a * 1000, dim=1)
        + torch.log_softmax(a * 1000, dim=1)
        + torch.logsumexp(a * 1000, dim=1, keepdim=True),
        [((3, 4), "real")],
    ),
    "shapes and indexing": (
        lambda a: a.transpose(2, 0, 1).reshape(-1, 4)[INDEX, 1:] * a.T.reshape(4, -1)[1, ::2].sum(),
        lambda a: a.permute(2, 0, 1).reshape(-1, 4)[torch.from_numpy(INDEX), 1:]
        * a.permute(2, 1, 0).reshape(4, -1)[1, ::2].sum(),
        [((2, 3, 2), "real")],
    ),
    "broadcast_to": (
        lambda a: a.broadcast_to((4, 2, 3)) * np.arange(24.0).reshape(4, 2, 3),
        lambda a: a.broadcast_to((4, 2, 3)) * torch.arange(24.0, dtype=torch.float64).reshape(4, 2, 3),
        [((2, 1), "real")],
    ),
    "a small classifier's loss": (
        lambda X, W1, b1, W2: -(
            ((X @ W1 + b1).tanh() @ W2).log_softmax(axis=1)[np.arange(5), LABELS]
        ).mean(),
        lambda X, W1, b1, W2: -(
            torch.log_softmax(torch.tanh(X @ W1 + b1) @ W2, dim=1)[torch.arange(5), torch.from_numpy(LABELS)]
        ).mean(),
        [((5, 3), "real"), ((3, 4), "real"), ((4,), "real"), ((4, 3), "real")],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_match_torch(name):
    ours, theirs, inputs = CASES[name]
    theirs = theirs or ours
    rng = np.random.default_rng(0)
    arrays = [sample(shape, rng, domain) for shape, domain in inputs]

    our_inputs = [Tensor(a, requires_grad=True) for a in arrays]
    their_inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    our_out, their_out = ours(*our_inputs), theirs(*their_inputs)
    assert our_out.shape == tuple(their_out.shape)
    np.testing.assert_allclose(our_out.data, their_out.detach().numpy(), rtol=1e-12, atol=1e-12)

    weights = rng.standard_normal(our_out.shape)  # checks the whole vector-Jacobian product
    our_out.backward(grad=weights)
    their_out.backward(torch.from_numpy(weights))
    for position, (mine, reference) in enumerate(zip(our_inputs, their_inputs)):
        assert mine.grad.dtype == np.float64
        np.testing.assert_allclose(
            mine.grad, reference.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"input {position}"
        )


def test_hessian_vector_product_matches_torch():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3))
    W, V = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def loss(W, X):
        return ((X @ W).tanh().logsumexp(axis=1) ** 2).mean()

    ours = grad(lambda W: (grad(loss)(W, X) * V).sum())(W)

    W_torch = torch.tensor(W, requires_grad=True)
    X_torch = torch.from_numpy(X)
    their_loss = (torch.logsumexp(torch.tanh(X_torch @ W_torch), dim=1) ** 2).mean()
    (first,) = torch.autograd.grad(their_loss, W_torch, create_graph=True)
    (theirs,) = torch.autograd.grad((first * torch.from_numpy(V)).sum(), W_torch)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-10, atol=1e-12)


# Issue #18: values where the textbook rule divides by zero or loses its digits.
EDGE_CASES = {
    "powers at base 0": (lambda a, b: a**b + a**0.0 + a**a, [[0.0, 0.0, 0.0, 2.0], [0.0, 1.5, 2.0, 0.5]]),
    "max over a NaN": (lambda a, b: a.max() * b.sum(), [[1.0, np.nan, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]]),
    "sigmoid far below 0": (lambda a, b: a.sigmoid().log() + (a * b).sigmoid(), [[-40.0, -37.0, -700.0, 3.0], [1.0, 0.5, 0.01, -2.0]]),
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_values_and_gradients_match_torch(name):
    f, arrays = EDGE_CASES[name]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    with np.errstate(divide="ignore", invalid="ignore"):
        our_out = f(*ours)
        our_out.sum().backward()
    their_out = f(*theirs)
    their_out.sum().backward()
    np.testing.assert_allclose(our_out.data, their_out.detach().numpy(), rtol=1e-12)
    for position, (mine, reference) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-12, err_msg=f"input {position}")


def test_softmax_family_over_an_empty_axis_matches_torch():
    empty = np.zeros((3, 0))
    theirs = torch.tensor(empty)
    ours = Tensor(empty)
    np.testing.assert_array_equal(ours.logsumexp(axis=1).data, torch.logsumexp(theirs, dim=1).numpy())
    assert ours.softmax(axis=1).shape == tuple(torch.softmax(theirs, dim=1).shape)
    assert ours.log_softmax(axis=1).shape == tuple(torch.log_softmax(theirs, dim=1).shape)
