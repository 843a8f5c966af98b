"""autodiff_ref.nn: parameters and modules, layers, losses, and their gradients."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, grad, no_grad
from autodiff_ref import nn
from autodiff_ref.gradcheck import gradcheck


def random_array(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Magnitudes in [0.3, 2] with random signs: nowhere near the kink of relu at 0."""
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def module_gradcheck(module: nn.Module, x: np.ndarray) -> None:
    """gradcheck ``module(x)`` with respect to ``x`` and every parameter of the module.

    Each parameter is swapped for gradcheck's own input tensor while ``f`` runs, then restored.
    """
    named = list(module.named_parameters())

    def owner_and_name(dotted: str) -> tuple[object, str]:
        *path, name = dotted.split(".")
        owner = module
        for part in path:
            owner = owner[int(part)] if isinstance(owner, (list, tuple)) else getattr(owner, part)
        return owner, name

    def f(x, *values):
        for (dotted, _), value in zip(named, values):
            setattr(*owner_and_name(dotted), value)
        return module(x)

    try:
        gradcheck(f, x, *[p.data for _, p in named])
    finally:
        for dotted, parameter in named:
            setattr(*owner_and_name(dotted), parameter)


def log_softmax_reference(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# -- Parameter and Module ---------------------------------------------------------------------------
def test_parameter_is_a_float_leaf_that_requires_grad():
    p = nn.Parameter([[1, 2], [3, 4]])
    assert isinstance(p, Tensor) and p.requires_grad and p.op is None and p.inputs == ()
    assert p.dtype == np.float64
    out = p * 2
    assert type(out) is Tensor, "ops on parameters give plain tensors, not new parameters"
    assert "Parameter" in repr(p)


class Block(nn.Module):
    """A module with the shapes of attributes Module must find: nested, listed, shared, plain."""

    def __init__(self, shared: nn.Parameter) -> None:
        self.first = nn.Linear(3, 4, rng=0)
        self.heads = [nn.Linear(4, 2, rng=1), nn.Linear(4, 2, bias=False, rng=2)]
        self.scale = shared
        self.also_scale = shared
        self.mask = Tensor(np.ones(4))  # a tensor, but not a parameter

    def forward(self, x):
        h = self.first(x).relu() * self.mask
        return (self.heads[0](h) + self.heads[1](h)) * self.scale


def test_named_parameters_finds_nested_listed_and_shared_parameters_once():
    shared = nn.Parameter(np.array(2.0))
    block = Block(shared)
    names = [name for name, _ in block.named_parameters()]
    assert names == ["first.weight", "first.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight", "scale"]
    assert [p for p in block.parameters()][-1] is shared
    assert block.heads[1].bias is None


def test_zero_grad_forgets_every_gradient():
    block = Block(nn.Parameter(np.array(2.0)))
    block(np.ones((5, 3))).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


def test_a_slice_of_a_sequential_is_a_sequential():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1))
    body = model[:2]
    assert isinstance(body, nn.Sequential) and body.layers == model.layers[:2]
    assert model[-1] is model.layers[-1]
    x = Tensor(np.ones((4, 2)))
    np.testing.assert_array_equal(model[2:](body(x)).data, model(x).data)


def test_train_and_eval_set_the_flag_on_every_submodule():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Sequential(nn.Tanh()))
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert [m.training for m in model.modules()] == [False] * 5
    model.train()
    assert all(m.training for m in model.modules())


def test_a_module_without_forward_says_so():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty does not define forward"):
        Empty()(1.0)


def test_module_gradients_through_a_custom_module_with_shared_and_listed_parameters():
    rng = np.random.default_rng(0)
    block = Block(nn.Parameter(np.array(1.5)))
    x = random_array((5, 3), rng)
    with no_grad():
        pre = block.first(x).data
    assert np.abs(pre).min() > 1e-3, "inputs chosen away from the ReLU kink"
    module_gradcheck(block, x)


# -- layers ------------------------------------------------------------------------------------------
def test_linear_shapes_value_and_bias():
    layer = nn.Linear(3, 2, rng=0)
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (2,)
    assert np.all(layer.bias.data == 0)
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data)
    layer.bias.data = np.array([1.0, -1.0])  # not [:] =: the graph of layer(x) locked the old array
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data + [1.0, -1.0])
    assert layer(np.ones((2, 5, 3))).shape == (2, 5, 2), "leading axes are batch axes"
    assert nn.Linear(3, 2, bias=False).bias is None
    assert [name for name, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_uses_he_uniform_initialisation_and_is_seeded():
    fan_in = 400
    weight = nn.Linear(fan_in, 300, rng=1).weight.data
    bound = np.sqrt(6 / fan_in)
    assert np.abs(weight).max() <= bound
    assert np.abs(weight).max() > 0.99 * bound, "draws fill the whole interval"
    assert weight.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.02)
    np.testing.assert_array_equal(nn.Linear(4, 3, rng=7).weight.data, nn.Linear(4, 3, rng=7).weight.data)
    same = np.random.default_rng(7)
    np.testing.assert_array_equal(nn.Linear(4, 3, rng=same).weight.data, nn.Linear(4, 3, rng=7).weight.data)
    assert not np.array_equal(nn.Linear(4, 3, rng=7).weight.data, nn.Linear(4, 3, rng=8).weight.data)
    assert nn.Linear(4, 3, dtype=np.float32).weight.dtype == np.float32


def test_linear_rejects_an_input_of_the_wrong_feature_size_naming_both():
    layer = nn.Linear(64, 10, rng=0)
    with pytest.raises(ValueError, match=r"expects inputs with 64 features.*got 32 features \(input shape \(5, 32\)\)"):
        layer(np.zeros((5, 32)))
    with pytest.raises(ValueError, match="64 features.*got a scalar"):
        layer(Tensor(3.0))
    with pytest.raises(ValueError, match="in_features to be a positive integer"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="out_features to be a positive integer"):
        nn.Linear(3, 2.5)


def test_linear_gradients():
    rng = np.random.default_rng(1)
    module_gradcheck(nn.Linear(4, 3, rng=rng), random_array((5, 4), rng))
    module_gradcheck(nn.Linear(4, 3, bias=False, rng=rng), random_array((5, 4), rng))
    module_gradcheck(nn.Linear(4, 3, rng=rng), random_array((2, 5, 4), rng))


@pytest.mark.parametrize(
    "module, reference",
    [
        (nn.ReLU(), lambda x: np.maximum(x, 0)),
        (nn.Tanh(), np.tanh),
        (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    ],
    ids=["relu", "tanh", "sigmoid"],
)
def test_activations_values_and_gradients(module, reference):
    x = random_array((4, 3), np.random.default_rng(2))  # kink-free: |x| >= 0.3
    np.testing.assert_allclose(module(Tensor(x)).data, reference(x), rtol=1e-12)
    module_gradcheck(module, x)
    assert list(module.parameters()) == []


def test_sequential_applies_layers_in_order_and_its_gradients_check():
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Linear(4, 6, rng=rng), nn.Tanh(), nn.Linear(6, 5, rng=rng), nn.ReLU(),
                          nn.Linear(5, 3, rng=rng), nn.Sigmoid())
    x = random_array((7, 4), rng)
    with no_grad():
        expected = Tensor(x)
        for layer in model.layers:
            expected = layer(expected)
        pre_relu = model[2](model[1](model[0](x))).data
    np.testing.assert_allclose(model(x).data, expected.data)
    assert np.abs(pre_relu).min() > 1e-3, "inputs chosen away from the ReLU kink"
    assert len(model) == 6 and isinstance(model[1], nn.Tanh)
    assert len(list(model.parameters())) == 6
    module_gradcheck(model, x)
    with pytest.raises(TypeError, match="takes Modules, but argument 1 is a ufunc"):
        nn.Sequential(nn.ReLU(), np.tanh)
    with pytest.raises(TypeError, match=r"argument 1 is the class ReLU itself; make a layer of it: ReLU\(\)"):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU)
    with pytest.raises(TypeError, match=r"argument 0 is a list; pass the layers one by one: Sequential\(\*layers\)"):
        nn.Sequential([nn.Linear(2, 2), nn.ReLU()])


# -- losses and metrics -------------------------------------------------------------------------------
def test_mse_loss_value_gradients_and_shape_check():
    rng = np.random.default_rng(4)
    pred, target = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    assert nn.mse_loss(Tensor(pred), target).item() == pytest.approx(np.mean((pred - target) ** 2))
    gradcheck(nn.mse_loss, pred, target)
    with pytest.raises(ValueError, match=r"same shape, got \(6,\) and \(6, 1\)"):
        nn.mse_loss(Tensor(np.zeros(6)), np.zeros((6, 1)))
    from_arrays = nn.mse_loss(pred, target)  # a Tensor, as documented, even from two arrays
    assert isinstance(from_arrays, Tensor) and from_arrays.item() == pytest.approx(np.mean((pred - target) ** 2))


def test_cross_entropy_value_and_gradients():
    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(6, 4)) * 3, np.array([0, 3, 1, 1, 2, 0])
    expected = -np.mean(log_softmax_reference(logits)[np.arange(6), labels])
    assert nn.cross_entropy(Tensor(logits), labels).item() == pytest.approx(expected, rel=1e-12)
    gradcheck(lambda z: nn.cross_entropy(z, labels), logits)


def test_cross_entropy_is_stable_for_logits_in_the_thousands():
    rng = np.random.default_rng(6)
    labels = np.array([2, 0, 1, 2])
    # Near each other but far from 0: exp() would overflow without the max shift.
    logits = 1000 + rng.normal(size=(4, 3)) * 3
    gradcheck(lambda z: nn.cross_entropy(z, labels), logits)
    shifted_by_thousands = nn.cross_entropy(Tensor(logits + 4000), labels).item()
    assert shifted_by_thousands == pytest.approx(nn.cross_entropy(Tensor(logits - 1000), labels).item(), rel=1e-9)

    # Spread over thousands: softmax is one-hot in float64, the loss is the logit gap.
    wide = np.array([[3000.0, -2000.0, 1000.0], [-5000.0, 0.0, 2500.0]])
    z = Tensor(wide, requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        loss = nn.cross_entropy(z, [2, 2])
        loss.backward()
    assert loss.item() == pytest.approx((2000.0 + 0.0) / 2)
    softmax = np.exp(log_softmax_reference(wide))
    np.testing.assert_allclose(z.grad, (softmax - np.eye(3)[[2, 2]]) / 2, atol=1e-15)


def test_cross_entropy_second_derivatives():
    # The Hessian is symmetric, so the gradient of <grad L, v> is H v, the derivative of grad L
    # along v: compare it with central differences of the first-order gradient.
    rng = np.random.default_rng(7)
    labels, z, v = np.array([0, 2, 1]), rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    first = grad(lambda logits: nn.cross_entropy(logits, labels))
    hessian_times_v = grad(lambda logits: (first(logits) * Tensor(v)).sum())(Tensor(z)).data
    eps = 1e-6
    numeric = (first(Tensor(z + eps * v)).data - first(Tensor(z - eps * v)).data) / (2 * eps)
    np.testing.assert_allclose(hessian_times_v, numeric, atol=1e-8)
    assert np.abs(hessian_times_v).max() > 1e-2, "cross-entropy is curved: H v is not zero"


def test_cross_entropy_backward_and_grad_agree():
    # backward() takes the softmax the forward saved; grad() rebuilds it from the logits so that it
    # can be differentiated again. Both must give the same first derivative.
    rng = np.random.default_rng(8)
    labels, logits = np.array([3, 0, 0, 2, 1]), rng.normal(size=(5, 4)) * 2
    z = Tensor(logits, requires_grad=True)
    nn.cross_entropy(z, labels).backward()
    from_grad = grad(lambda t: nn.cross_entropy(t, labels))(Tensor(logits))
    np.testing.assert_allclose(z.grad, from_grad.data, rtol=1e-12, atol=1e-15)
    assert from_grad.requires_grad, "grad() returns a gradient that can be differentiated again"


def test_a_cross_entropy_op_applied_twice_refuses_to_mix_up_its_saved_softmax():
    labels = np.array([0, 1])
    op = nn.CrossEntropy(labels)
    first = op(Tensor(np.zeros((2, 3)), requires_grad=True))
    op(Tensor(np.ones((2, 3)), requires_grad=True))
    with pytest.raises(RuntimeError, match="make one CrossEntropy per call"):
        first.backward()


def test_cross_entropy_keeps_float32():
    z = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    loss = nn.cross_entropy(z, np.array([0, 1]))
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32
    assert loss.item() == pytest.approx(np.log(3), rel=1e-6)


@pytest.mark.parametrize("loss_or_metric", [nn.cross_entropy, nn.accuracy])
def test_bad_labels_get_clear_errors(loss_or_metric):
    logits = Tensor(np.zeros((3, 4)))
    name = loss_or_metric.__name__
    with pytest.raises(ValueError, match=rf"{name}: label 4 at position 1 is out of range.*0\.\.3"):
        loss_or_metric(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"label -1 at position 2 is out of range"):
        loss_or_metric(logits, [0, 1, -1])
    with pytest.raises(TypeError, match="integer class labels, got dtype float64"):
        loss_or_metric(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\).*got shape \(3, 1\)"):
        loss_or_metric(logits, np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\).*got shape \(2,\)"):
        loss_or_metric(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\).*got shape \(4,\)"):
        loss_or_metric(Tensor(np.zeros(4)), np.array([0]))


@pytest.mark.parametrize("dtype", ["<i8", ">i8", "<i4", ">i2", "u1", "<u4", ">u8"])
def test_labels_of_any_integer_dtype_and_byte_order_are_range_checked_alike(dtype):
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    loss = nn.cross_entropy(Tensor(logits), np.array([0, 2], dtype=dtype))
    assert loss.item() == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="label 3 at position 1 is out of range"):
        nn.cross_entropy(Tensor(logits), np.array([0, 3], dtype=dtype))
    if np.dtype(dtype).kind == "i":
        with pytest.raises(ValueError, match="label -2 at position 0 is out of range"):
            nn.cross_entropy(Tensor(logits), np.array([-2, 1], dtype=dtype))


def test_accuracy_counts_rows_whose_top_logit_is_the_label():
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 3.0, 2.0]])
    result = nn.accuracy(Tensor(logits), np.array([1, 0, 2, 2]))
    assert isinstance(result, float) and result == 0.75
    assert nn.accuracy(logits, [1, 0, 2, 1]) == 1.0


def test_integer_labels_that_a_tensor_made_float_get_a_hint():
    # Tensor([0, 2, 1]) holds float64, so a PyTorch habit gives float labels without a word.
    with pytest.raises(TypeError, match=r"got dtype float64 \(a Tensor turns integers into float64"):
        nn.cross_entropy(Tensor(np.zeros((3, 4))), Tensor([0, 2, 1]))
    loss = nn.cross_entropy(Tensor(np.zeros((3, 4))), Tensor([0, 2, 1], dtype=np.int64))
    assert loss.item() == pytest.approx(np.log(4))
