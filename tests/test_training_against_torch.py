"""Layers, optimizers and schedules against PyTorch's, step for step, in float64.

PyTorch is optional: without it this module is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, nn
from autodiff_ref.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR

torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only needed for this optional comparison")

OPTIMIZERS = {
    "SGD, Nesterov and weight decay": (
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    "Adam": (lambda ps: Adam(ps, lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "AdamW": (
        lambda ps: AdamW(ps, lr=0.01, weight_decay=0.05),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.05),
    ),
}
SCHEDULES = {
    "step": (lambda o: StepLR(o, step_size=3, gamma=0.5),
             lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "cosine": (lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.001),
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_and_schedule_match_pytorch_step_for_step(optimizer, schedule):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(4, 3)), rng.normal(size=(3,))]
    ours = [nn.Parameter(value) for value in start]
    theirs = [torch.tensor(value, requires_grad=True) for value in start]
    make_ours, make_theirs = OPTIMIZERS[optimizer]
    ours_optimizer, theirs_optimizer = make_ours(ours), make_theirs(theirs)
    ours_schedule, theirs_schedule = SCHEDULES[schedule][0](ours_optimizer), SCHEDULES[schedule][1](theirs_optimizer)
    x = rng.normal(size=(5, 4))
    for _ in range(12):
        ours_optimizer.zero_grad()
        ((Tensor(x) @ ours[0] + ours[1]).tanh() ** 2).sum().backward()
        ours_optimizer.step()
        ours_schedule.step()
        theirs_optimizer.zero_grad()
        ((torch.tensor(x) @ theirs[0] + theirs[1]).tanh() ** 2).sum().backward()
        theirs_optimizer.step()
        theirs_schedule.step()
        assert ours_optimizer.lr == pytest.approx(theirs_optimizer.param_groups[0]["lr"], rel=1e-12)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_layer_norm_matches_pytorch():
    rng = np.random.default_rng(1)
    x, w, b, upstream = rng.normal(size=(2, 3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(2, 3, 4))
    layer = nn.LayerNorm((3, 4))
    layer.weight.data, layer.bias.data = w.copy(), b.copy()
    xt = Tensor(x, requires_grad=True)
    (layer(xt) * upstream).sum().backward()
    reference = torch.nn.LayerNorm((3, 4), dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(w))
        reference.bias.copy_(torch.tensor(b))
    x_torch = torch.tensor(x, requires_grad=True)
    (reference(x_torch) * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(xt.grad, x_torch.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, reference.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, reference.bias.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_embedding_gradient_with_repeated_indices_matches_pytorch():
    indices = np.array([[3, 1, 3], [3, 0, 2]])
    table = nn.Embedding(4, 2, rng=0)
    reference = torch.nn.Embedding(4, 2, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(table.weight.data))
    upstream = np.random.default_rng(2).normal(size=(2, 3, 2))
    (table(indices) * upstream).sum().backward()
    (reference(torch.tensor(indices)) * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(table.weight.grad, reference.weight.grad.numpy(), rtol=1e-12)
