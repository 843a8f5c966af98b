"""Values and gradients of the tensor engine against PyTorch's, in float64.

PyTorch is optional: without it this module is skipped, and CI does not install it.
"""

from __future__ import annotations

import numpy as np
import pytest

import autodiff_ref as ad
from autodiff_ref import Tensor, grad, ops

torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only needed for this optional comparison")


def sample(shape: tuple[int, ...], rng: np.random.Generator, domain: str = "real") -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


INDEX = np.array([0, 2, 0, 1])
LABELS = np.array([0, 2, 1, 1, 0])
WHERE_MASK = np.array([[True, False, True], [False, False, True]])

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
    "sin, cos, abs() and unary +": (
        lambda a: a.sin() * a.cos() + abs(a) - (+a),
        None,
        [((2, 3), "real")],
    ),
    "maximum and minimum, broadcast": (
        lambda a, b: ad.maximum(a, b) * ad.minimum(b, a) + ad.maximum(a, 0.5),
        lambda a, b: torch.maximum(a, b) * torch.minimum(b, a) + torch.clamp(a, min=0.5),
        [((2, 3), "real"), ((3,), "real")],
    ),
    "where, broadcast": (
        lambda a, b: ad.where(WHERE_MASK, a * a, b),
        lambda a, b: torch.where(torch.from_numpy(WHERE_MASK), a * a, b),
        [((2, 1), "real"), ((3,), "real")],
    ),
    "clip, with tensor bounds": (
        lambda a, low, high: a.clip(-1.0, 1.0) + (a * 2).clip(low, high),
        lambda a, low, high: torch.clamp(a, -1.0, 1.0) + torch.clamp(a * 2, min=low, max=high),
        [((2, 3), "real"), ((2, 3), "real"), ((2, 3), "positive")],
    ),
    "min over axes": (
        lambda a: a.min(axis=(0, -1)) + a.min(axis=1, keepdims=True).sum() + a.min(),
        lambda a: torch.amin(a, dim=(0, -1)) + torch.amin(a, dim=1, keepdim=True).sum() + a.min(),
        [((2, 3, 4), "real")],
    ),
    "var and std": (
        lambda a: a.var(axis=(0, 2)) + a.std(axis=1, ddof=1, keepdims=True).sum() + a.var(ddof=1) * a.std(),
        lambda a: torch.var(a, dim=(0, 2), correction=0) + torch.std(a, dim=1, correction=1, keepdim=True).sum()
        + torch.var(a, correction=1) * torch.std(a, correction=0),
        [((2, 3, 4), "real")],
    ),
    "prod": (
        lambda a: a.prod(axis=1) + a.prod(axis=-1, keepdims=True).sum() + a.prod(),
        lambda a: torch.prod(a, dim=1) + torch.prod(a, dim=-1, keepdim=True).sum() + a.prod(),
        [((2, 3, 2), "real")],
    ),
    "concatenate, stack and split": (
        lambda a, b: ad.concatenate(
            [ad.stack([a, a * 2], axis=1).flatten()]
            + [piece.flatten() * (i + 1) for i, piece in enumerate(ad.concatenate([a, b], axis=-1).split([1, 4], axis=1))]
        ),
        lambda a, b: torch.cat(
            [torch.stack([a, a * 2], dim=1).flatten()]
            + [piece.flatten() * (i + 1) for i, piece in enumerate(torch.tensor_split(torch.cat([a, b], dim=-1), [1, 4], dim=1))]
        ),
        [((2, 3), "real"), ((2, 2), "real")],
    ),
    "squeeze, expand_dims, flatten": (
        lambda a: a.squeeze(1).expand_dims(-1) * a.squeeze().expand_dims((0, 2)) + a.flatten().sum(),
        lambda a: a.squeeze(1).unsqueeze(-1) * a.squeeze().unsqueeze(0).unsqueeze(2) + a.flatten().sum(),
        [((3, 1, 2), "real")],
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
    "conv2d with stride, padding and a rectangular kernel": (
        lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=2, padding=1),
        [((2, 3, 7, 6), "real"), ((4, 3, 3, 2), "real"), ((4,), "real")],
    ),
    "conv2d whose stride leaves rows unread": (
        lambda x, w: ops.conv2d(x, w, stride=3),
        lambda x, w: torch.nn.functional.conv2d(x, w, stride=3),
        [((1, 2, 8, 7), "real"), ((3, 2, 2, 3), "real")],
    ),
    "max and average pooling, sizes that do not divide": (
        lambda x: ops.max_pool2d(x, 2) * ops.avg_pool2d(x, 2) + ops.max_pool2d(x, 3).sum(),
        lambda x: torch.nn.functional.max_pool2d(x, 2) * torch.nn.functional.avg_pool2d(x, 2)
        + torch.nn.functional.max_pool2d(x, 3).sum(),
        [((2, 3, 7, 6), "real")],
    ),
    "a small convolutional network": (
        lambda x, w1, w2: ops.max_pool2d(ops.conv2d(x, w1, padding=1).relu(), 2).tanh()
        * ops.avg_pool2d(ops.conv2d(x, w2, padding=1), 2),
        lambda x, w1, w2: torch.tanh(torch.nn.functional.max_pool2d(
            torch.relu(torch.nn.functional.conv2d(x, w1, padding=1)), 2))
        * torch.nn.functional.avg_pool2d(torch.nn.functional.conv2d(x, w2, padding=1), 2),
        [((2, 2, 6, 6), "real"), ((3, 2, 3, 3), "real"), ((3, 2, 3, 3), "real")],
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


@pytest.mark.parametrize("values", [
    [[2.0, 0.0, 3.0], [0.0, 0.0, 5.0]],
    [[0.0, 0.0, 0.0], [1.5, -2.0, 0.0]],
], ids=["one and two zeros per row", "three zeros and one"])
@pytest.mark.parametrize("axis", [0, 1, None])
def test_prod_with_zeros_first_and_second_derivatives_match_torch(values, axis):
    a = np.array(values)
    v = np.random.default_rng(2).standard_normal(a.shape)
    f = (lambda t: t.prod()) if axis is None else (lambda t: t.prod(axis=axis).sum())
    ours_first = grad(f)(Tensor(a))
    ours_second = grad(lambda t: (grad(f)(t) * v).sum())(Tensor(a))

    x = torch.tensor(a, requires_grad=True)
    total = x.prod() if axis is None else x.prod(dim=axis).sum()
    (first,) = torch.autograd.grad(total, x, create_graph=True)
    (second,) = torch.autograd.grad((first * torch.from_numpy(v)).sum(), x)
    np.testing.assert_allclose(ours_first.data, first.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_second.data, second.numpy(), rtol=1e-12, atol=1e-12)


def test_ties_and_bounds_split_and_pass_gradients_as_torch_does():
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 3.0, 5.0])
    for ours, theirs in (
        (lambda x, y: ad.maximum(x, y), torch.maximum),
        (lambda x, y: ad.minimum(x, y), torch.minimum),
        (lambda x, y: x.clip(-1.0, 3.0) + y.clip(1.0, 3.0), lambda x, y: torch.clamp(x, -1.0, 3.0) + torch.clamp(y, 1.0, 3.0)),
        (lambda x, y: ad.stack([x, y]).max(axis=0) + ad.stack([x, y]).min(axis=0),
         lambda x, y: torch.stack([x, y]).amax(dim=0) + torch.stack([x, y]).amin(dim=0)),
    ):
        x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        ours(x, y).sum().backward()
        xt, yt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        theirs(xt, yt).sum().backward()
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(y.grad, yt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("size", [2, 3])
def test_max_pooling_passes_gradients_on_ties_and_nans_as_torch_does(size):
    # Ties: the first maximum of a window, row by row. NaN: the window's value, and its last NaN
    # gets the gradient.
    rng = np.random.default_rng(size)
    x = rng.integers(0, 3, size=(2, 3, 7, 8)).astype(float)
    x[0, 0, :size, :size] = np.nan
    x[1, 2, 0, :2] = np.nan
    seed = rng.standard_normal((2, 3, 7 // size, 8 // size))
    ours = Tensor(x, requires_grad=True)
    (ops.max_pool2d(ours, size) * Tensor(seed)).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    value = torch.nn.functional.max_pool2d(theirs, size)
    value.backward(torch.tensor(seed))
    np.testing.assert_array_equal(ops.max_pool2d(Tensor(x), size).data, value.detach().numpy())
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_second_derivatives_through_a_convolution_match_torch():
    rng = np.random.default_rng(2)
    x, w, v = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((4, 3, 3, 3))

    def loss(w, x):
        return (ops.max_pool2d(ops.conv2d(x, w, stride=2, padding=1), 2).tanh() ** 2).sum()

    ours = grad(lambda w: (grad(loss)(w, x) * v).sum())(w)

    w_torch = torch.tensor(w, requires_grad=True)
    out = torch.nn.functional.conv2d(torch.from_numpy(x), w_torch, stride=2, padding=1)
    their_loss = (torch.tanh(torch.nn.functional.max_pool2d(out, 2)) ** 2).sum()
    (first,) = torch.autograd.grad(their_loss, w_torch, create_graph=True)
    (theirs,) = torch.autograd.grad((first * torch.from_numpy(v)).sum(), w_torch)
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


def test_a_change_in_place_before_backward_is_refused_as_in_torch_and_allowed_after():
    x, theirs = Tensor([2.0], requires_grad=True), torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y, their_y = x * x, theirs * theirs
    with torch.no_grad():
        theirs[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        their_y.backward()  # PyTorch refuses at backward; we refuse at the write, and say which op
    with pytest.raises(ValueError, match="Mul keeps it for its backward"):
        x.data[0] = 5.0
    y.backward()
    x.data[0] = 5.0  # after backward, as in PyTorch: the next forward sees the new value
    with torch.no_grad():
        theirs[0] = 5.0
    theirs.grad = None
    (x * x).backward()
    (theirs * theirs).backward()
    np.testing.assert_allclose(x.grad, 4.0 + theirs.grad.numpy(), rtol=1e-15)  # 4 from the first
