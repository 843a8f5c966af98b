"""autodiff_ref.optim: SGD and Adam against updates worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, nn, no_grad
from autodiff_ref.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR


def run_steps(optimizer, parameter, grads):
    """Feed ``grads`` one per step and return the parameter value after each step."""
    values = []
    for g in grads:
        parameter.grad = np.array(g, dtype=float)
        optimizer.step()
        values.append(parameter.data.copy())
    return values


def test_sgd_takes_a_step_against_the_gradient_of_a_real_loss():
    p = nn.Parameter([1.0, -2.0, 0.5])
    optimizer = SGD([p], lr=0.1)
    (p * p).sum().backward()  # gradient 2p
    optimizer.step()
    np.testing.assert_allclose(p.data, [0.8, -1.6, 0.4])


def test_sgd_momentum_by_hand():
    # v1 = 1, p = 1 - 0.1*1 = 0.9; v2 = 0.9*1 + 1 = 1.9, p = 0.71; v3 = 0.9*1.9 + 1 = 2.71, p = 0.439
    p = nn.Parameter(1.0)
    values = run_steps(SGD([p], lr=0.1, momentum=0.9), p, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(values, [0.9, 0.71, 0.439])


def test_sgd_weight_decay_by_hand():
    # g + 0.5 p: 1 + 0.5 = 1.5 -> p = 0.85; 1 + 0.425 = 1.425 -> p = 0.7075
    p = nn.Parameter(1.0)
    values = run_steps(SGD([p], lr=0.1, weight_decay=0.5), p, [1.0, 1.0])
    np.testing.assert_allclose(values, [0.85, 0.7075])


def test_sgd_momentum_and_weight_decay_together_by_hand():
    # step 1: g = 2 + 0.1*1 = 2.1, v = 2.1, p = 1 - 0.5*2.1 = -0.05
    # step 2: g = -1 + 0.1*(-0.05) = -1.005, v = 0.8*2.1 - 1.005 = 0.675, p = -0.05 - 0.3375 = -0.3875
    # step 3: g = 0 + 0.1*(-0.3875) = -0.03875, v = 0.8*0.675 - 0.03875 = 0.50125,
    #         p = -0.3875 - 0.250625 = -0.638125
    p = nn.Parameter([1.0])
    values = run_steps(SGD([p], lr=0.5, momentum=0.8, weight_decay=0.1), p, [[2.0], [-1.0], [0.0]])
    np.testing.assert_allclose(np.concatenate(values), [-0.05, -0.3875, -0.638125])


def test_adam_first_step_moves_each_coordinate_by_lr():
    # After bias correction m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
    p = nn.Parameter([1.0, 1.0, 1.0])
    (values,) = run_steps(Adam([p], lr=0.01), p, [[1e-4, -3.0, 250.0]])
    g = np.array([1e-4, -3.0, 250.0])
    np.testing.assert_allclose(values, 1 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(values, [0.99, 1.01, 0.99], rtol=2e-6)  # whatever the gradient's size


def test_adam_three_steps_by_hand():
    beta1, beta2, lr, eps = 0.5, 0.75, 0.1, 1e-8
    grads = [2.0, -1.0, 4.0]
    # m1 = 0.5*2 = 1, m2 = 0.5*1 + 0.5*(-1) = 0, m3 = 0 + 0.5*4 = 2
    # v: v1 = 0.25*4 = 1, v2 = 0.75*1 + 0.25*1 = 1, v3 = 0.75*1 + 0.25*16 = 4.75
    # m_hat = m / (1 - 0.5^t): 2, 0, 2/0.875;  v_hat = v / (1 - 0.75^t): 4, 1/0.4375, 4.75/0.578125
    m_hat = [2.0, 0.0, 2 / 0.875]
    v_hat = [4.0, 1 / 0.4375, 4.75 / 0.578125]
    expected, p_value = [], 3.0
    for mh, vh in zip(m_hat, v_hat):
        p_value -= lr * mh / (np.sqrt(vh) + eps)
        expected.append(p_value)
    p = nn.Parameter(3.0)
    values = run_steps(Adam([p], lr=lr, betas=(beta1, beta2), eps=eps), p, grads)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert expected[0] == pytest.approx(2.9) and expected[1] == pytest.approx(2.9)


def test_parameters_without_gradient_are_skipped_and_keep_their_state():
    used, unused = nn.Parameter([1.0]), nn.Parameter([5.0])
    adam = Adam([used, unused], lr=0.1)
    used.grad = np.array([1.0])
    adam.step()
    adam.step()
    assert unused.data[0] == 5.0
    unused.grad = np.array([-2.0])
    adam.step()
    # unused's first real step: bias correction with t = 1, so it moves by exactly lr.
    np.testing.assert_allclose(unused.data, [5.1])
    sgd = SGD([used, unused], lr=0.1, momentum=0.9)
    used.grad, unused.grad = np.array([1.0]), None
    sgd.step()
    assert unused.data[0] == pytest.approx(5.1)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01), lambda ps: Adam(ps)],
                         ids=["sgd", "adam"])
def test_step_updates_data_in_place_without_building_a_graph(make):
    model = nn.Linear(3, 2, rng=0)
    arrays = [p.data for p in model.parameters()]
    optimizer = make(model.parameters())
    before = [a.copy() for a in arrays]
    nn.cross_entropy(model(np.ones((4, 3))), np.array([0, 1, 1, 0])).backward()
    optimizer.step()
    for p, array, old in zip(model.parameters(), arrays, before):
        assert p.data is array, "updated in place"
        assert p.op is None and p.inputs == () and p.requires_grad
        assert not np.array_equal(array, old)
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_float32_parameters_stay_float32():
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    for optimizer in (SGD([p], lr=0.1, momentum=0.9), Adam([p])):
        p.grad = np.full(3, 0.5, dtype=np.float32)
        optimizer.step()
        assert p.data.dtype == np.float32


@pytest.mark.parametrize("optimizer_class", [SGD, Adam])
def test_bad_parameter_lists_get_clear_errors(optimizer_class):
    name = optimizer_class.__name__
    with pytest.raises(ValueError, match=f"{name} got an empty parameter list"):
        optimizer_class([], lr=0.1)
    model = nn.Linear(2, 2, rng=0)
    params = model.parameters()
    optimizer_class(params, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list.*consumed only once"):
        optimizer_class(params, lr=0.1)
    with pytest.raises(TypeError, match="parameter 1 is a ndarray, not a Tensor"):
        optimizer_class([model.weight, np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"parameter 0 \(shape \(2,\)\) is a Tensor without requires_grad"):
        optimizer_class([Tensor([1.0, 2.0])], lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 .* is the output of Mul"):
        optimizer_class([model.weight * 2], lr=0.1)
    with pytest.raises(TypeError, match="got a single Tensor; wrap it in a list"):
        optimizer_class(model.weight, lr=0.1)
    with pytest.raises(ValueError, match="parameter 1 .* appears twice"):
        optimizer_class([model.weight, model.weight], lr=0.1)
    with pytest.raises(ValueError, match="positive learning rate, got lr=-0.1"):
        optimizer_class([model.weight], lr=-0.1)


def test_bad_settings_get_clear_errors():
    p = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="0 <= momentum < 1"):
        SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay >= 0"):
        SGD([p], lr=0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="betas in"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps > 0"):
        Adam([p], eps=0)


def test_a_plain_tensor_that_requires_grad_is_accepted():
    w = Tensor([2.0], requires_grad=True)
    optimizer = SGD([w], lr=0.25)
    (w * w).sum().backward()
    optimizer.step()
    np.testing.assert_allclose(w.data, [1.0])


@pytest.mark.parametrize("optimizer_class", [SGD, Adam])
def test_a_module_or_a_dict_instead_of_parameters_is_named(optimizer_class):
    model = nn.Linear(2, 2, rng=0)
    with pytest.raises(TypeError, match="got the Linear module itself; pass model.parameters()"):
        optimizer_class(model, lr=0.1)
    with pytest.raises(TypeError, match=r"got a dict; pass its \.values\(\)"):
        optimizer_class(dict(model.named_parameters()), lr=0.1)


def test_settings_that_are_not_numbers_are_named():
    p = nn.Parameter([1.0])
    with pytest.raises(TypeError, match="SGD needs lr to be a number, got str '0.1'"):
        SGD([p], lr="0.1")
    with pytest.raises(TypeError, match="SGD needs momentum to be a number, got NoneType"):
        SGD([p], lr=0.1, momentum=None)
    with pytest.raises(TypeError, match="Adam needs eps to be a number"):
        Adam([p], eps="1e-8")
    with pytest.raises(ValueError, match=r"betas as a pair \(beta1, beta2\), got betas=\(0.9,\)"):
        Adam([p], betas=(0.9,))
    assert SGD([p], lr=np.float32(0.1)).lr == np.float32(0.1)  # NumPy numbers are numbers


@pytest.mark.parametrize("make", [lambda p: SGD([p], lr=0.1), lambda p: SGD([p], lr=0.1, momentum=0.9), lambda p: Adam([p])],
                         ids=["sgd", "momentum", "adam"])
def test_a_grad_set_by_hand_of_the_wrong_shape_or_type_is_named(make):
    p = nn.Parameter(np.ones((2, 3)))
    optimizer = make(p)
    p.grad = np.ones(3)  # would broadcast over the rows without a word
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(2, 3\) but its \.grad has shape \(3,\)"):
        optimizer.step()
    p.grad = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"parameter 0 \(shape \(2, 3\)\) has a \.grad that is a Tensor"):
        optimizer.step()
    np.testing.assert_array_equal(p.data, np.ones((2, 3)))


def test_sgd_nesterov_by_hand():
    # v1 = 1, step g + 0.9 v = 1.9 -> p = 0.81; v2 = 1.9, step 1 + 1.71 = 2.71 -> p = 0.539
    p = nn.Parameter(1.0)
    values = run_steps(SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [1.0, 1.0])
    np.testing.assert_allclose(values, [0.81, 0.539])
    with pytest.raises(ValueError, match="nesterov=True needs a momentum > 0"):
        SGD([p], lr=0.1, nesterov=True)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    # With a zero gradient Adam does not move; AdamW still shrinks p by lr * weight_decay each step.
    p = nn.Parameter(2.0)
    values = run_steps(AdamW([p], lr=0.1, weight_decay=0.5), p, [0.0, 0.0])
    np.testing.assert_allclose(values, [2.0 * 0.95, 2.0 * 0.95**2])
    q = nn.Parameter(2.0)
    np.testing.assert_allclose(run_steps(AdamW([q], lr=0.1, weight_decay=0.0), q, [0.0]), [2.0])
    with pytest.raises(ValueError, match="weight_decay >= 0"):
        AdamW([p], weight_decay=-1.0)


def rates_after_steps(optimizer, schedule, steps):
    """The optimizer's learning rate after each of ``steps`` steps of ``schedule``."""
    rates = []
    for _ in range(steps):
        schedule.step()
        rates.append(optimizer.lr)
    return rates


def test_schedules_by_hand():
    optimizer = SGD([nn.Parameter(1.0)], lr=0.8)
    rates = rates_after_steps(optimizer, StepLR(optimizer, step_size=2, gamma=0.5), 5)
    assert rates == [0.8, 0.4, 0.4, 0.2, 0.2]

    optimizer = SGD([nn.Parameter(1.0)], lr=1.0)
    rates = rates_after_steps(optimizer, CosineAnnealingLR(optimizer, T_max=4, eta_min=0.2), 4)
    np.testing.assert_allclose(rates, [0.2 + 0.8 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(1, 5)])
    assert rates[-1] == pytest.approx(0.2)


def test_schedule_errors():
    optimizer = SGD([nn.Parameter(1.0)], lr=1.0)
    with pytest.raises(ValueError, match="step_size to be a positive integer"):
        StepLR(optimizer, step_size=0)
    with pytest.raises(ValueError, match="T_max to be a positive integer"):
        CosineAnnealingLR(optimizer, T_max=2.5)
    with pytest.raises(TypeError, match="takes an Optimizer, got a list"):
        StepLR([optimizer], step_size=1)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: AdamW(ps)])
def test_a_step_after_a_forward_that_was_not_backpropagated_says_what_to_do(make):
    model = nn.Linear(3, 2, rng=0)
    optimizer = make(list(model.parameters()))
    model(np.ones((4, 3))).sum().backward()
    model(np.ones((4, 3)))  # a look at the outputs with recording on, after the backward
    with pytest.raises(ValueError, match=r"parameter 0 \(shape \(3, 2\)\) is read-only.*under no_grad\(\)"):
        optimizer.step()
    with no_grad():
        model(np.ones((4, 3)))
    model(np.ones((4, 3))).sum().backward()  # a backward makes the parameters writable again
    optimizer.step()
