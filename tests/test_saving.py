"""state_dict / load_state_dict and nn.save / nn.load: a stopped run resumes with the same numbers."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from autodiff_ref import nn
from autodiff_ref.data import batches, load_digits
from autodiff_ref.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR


def make_run(optimizer_class, **settings):
    model = nn.Sequential(nn.Linear(64, 16, rng=0), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 10, rng=1))
    optimizer = optimizer_class(model.parameters(), lr=0.05, **settings)
    return model, optimizer, CosineAnnealingLR(optimizer, T_max=6, eta_min=0.001)


def train(model, optimizer, scheduler, epochs, digits):
    losses = []
    for epoch in epochs:
        for X, y in batches(digits.X_train[:256], digits.y_train[:256], 64, seed=epoch):
            optimizer.zero_grad()
            loss = nn.cross_entropy(model(X), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    return losses


@pytest.mark.parametrize(
    "optimizer_class, settings",
    [(SGD, {"momentum": 0.9, "nesterov": True}), (Adam, {}), (AdamW, {"weight_decay": 0.1})],
)
def test_training_resumed_from_a_file_gives_the_numbers_of_training_that_never_stopped(
    optimizer_class, settings, tmp_path
):
    digits = load_digits()
    straight = make_run(optimizer_class, **settings)
    expected = train(*straight, range(6), digits)

    first = make_run(optimizer_class, **settings)
    before = train(*first, range(3), digits)
    nn.save(tmp_path / "run.npz", *first)
    resumed = make_run(optimizer_class, **settings)  # fresh objects, as in a new process
    nn.load(tmp_path / "run.npz", *resumed)
    after = train(*resumed, range(3, 6), digits)

    assert before + after == expected  # exactly, not approximately
    for (name, p), (_, q) in zip(straight[0].named_parameters(), resumed[0].named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert resumed[1].lr == straight[1].lr


def test_the_file_holds_plain_arrays_only(tmp_path):
    model, optimizer, scheduler = make_run(Adam)
    nn.save(tmp_path / "run.npz", model, optimizer, scheduler)
    with np.load(tmp_path / "run.npz", allow_pickle=False) as archive:  # raises if anything is pickled
        names = set(archive.files)
        assert all(archive[name].dtype != object for name in names)
    assert {"model/layers.0.weight", "optimizer/lr", "optimizer/means.0", "optimizer/steps.3",
            "scheduler/steps_taken"} <= names
    assert zipfile.is_zipfile(tmp_path / "run.npz")


def test_state_dict_is_a_copy_and_loading_checks_names_and_shapes():
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    state = model.state_dict()
    state["layers.0.weight"][...] = 7.0
    assert not np.any(model.layers[0].weight.data == 7.0)
    model.load_state_dict(state)
    assert np.all(model.layers[0].weight.data == 7.0)

    with pytest.raises(KeyError, match=r"missing \['layers.0.bias'\]"):
        model.load_state_dict({"layers.0.weight": np.zeros((3, 2))})
    with pytest.raises(KeyError, match=r"unexpected \['extra'\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"'layers.0.weight' has shape \(2, 3\) in the state but \(3, 2\)"):
        model.load_state_dict({**state, "layers.0.weight": np.zeros((2, 3))})
    assert np.all(model.layers[0].weight.data == 7.0), "a failed load changes nothing"


def test_a_float32_model_stays_float32_after_loading():
    model = nn.Linear(3, 2, dtype=np.float32)
    model.load_state_dict({name: value.astype(np.float64) for name, value in model.state_dict().items()})
    assert model.weight.dtype == np.float32


def test_optimizer_state_must_fit_the_parameters(tmp_path):
    small, large = nn.Linear(2, 2), nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"'means.0' has shape \(2, 2\) in the state but \(3, 2\) here"):
        Adam(large.parameters()).load_state_dict(Adam(small.parameters()).state_dict())
    with pytest.raises(KeyError, match="missing"):
        SGD(small.parameters(), lr=0.1, momentum=0.9).load_state_dict(SGD(small.parameters(), lr=0.1).state_dict())
    nn.save(tmp_path / "model.npz", small)
    with pytest.raises(KeyError, match="holds no optimizer state"):
        nn.load(tmp_path / "model.npz", small, Adam(small.parameters()))


def test_step_schedule_state_round_trips():
    optimizer = SGD(nn.Linear(2, 1).parameters(), lr=1.0)
    schedule = StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(3):
        schedule.step()
    again = StepLR(SGD(nn.Linear(2, 1).parameters(), lr=9.0), step_size=2, gamma=0.5)
    again.load_state_dict(schedule.state_dict())
    again.step()
    schedule.step()
    assert again.optimizer.lr == schedule.optimizer.lr == 0.25
