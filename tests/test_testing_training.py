"""Tests for ``autodiff_ref.testing.training``: right answers pass, each usual mistake fails as meant.

The right answers are the reference (``autodiff_ref.nn``, ``autodiff_ref.optim``) and pieces
written from scratch the way a learner writes them in notebook 07 (so the checks are seen to
accept an independent implementation). Each broken piece below gets exactly one thing wrong, and
its test asserts the hint the learner would read.
"""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

from autodiff_ref import Tensor, no_grad
from autodiff_ref.data import batches, load_digits
from autodiff_ref.nn import Linear as ReferenceLinear
from autodiff_ref.nn import Module, Parameter, ReLU, Sequential, accuracy
from autodiff_ref.nn import cross_entropy as reference_cross_entropy
from autodiff_ref.optim import SGD as ReferenceSGD
from autodiff_ref.optim import Adam as ReferenceAdam
from autodiff_ref.optim import Optimizer
from autodiff_ref.testing import (
    CheckFailure,
    adam_or_reference,
    check_adam,
    check_cross_entropy,
    check_linear,
    check_sgd,
    check_training_loop,
    check_training_result,
    cross_entropy_or_reference,
    linear_or_reference,
    sgd_or_reference,
)
from autodiff_ref.testing import training


def written_copy(reference):
    """``reference`` as a learner who typed its source into a cell has it: the same code, but
    compiled here, so it is not the reference object that the checks turn away."""
    namespace = dict(vars(sys.modules[reference.__module__]))
    exec(compile(inspect.getsource(reference), __file__, "exec"), namespace)
    return namespace[reference.__name__]


def fails_with(check, candidate, *phrases, **options):
    """Run ``check(candidate)``, require a CheckFailure, and require each phrase in its message."""
    with pytest.raises(CheckFailure) as failure:
        check(candidate, **options)
    message = str(failure.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    return message


# --- Linear ------------------------------------------------------------------------------------------


class LearnerLinear(Module):
    """A Linear layer as notebook 07 asks for it."""

    def __init__(self, in_features, out_features, rng=None):
        rng = np.random.default_rng(rng)
        self.in_features = in_features
        bound = np.sqrt(6 / in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, size=(in_features, out_features)))
        self.bias = Parameter(np.zeros(out_features))

    def forward(self, x):
        if np.shape(x)[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features, got {np.shape(x)[-1]}")
        return x @ self.weight + self.bias


class NotAModule:
    def __init__(self, in_features, out_features, rng=None):
        self.weight = Parameter(np.ones((in_features, out_features)))
        self.bias = Parameter(np.zeros(out_features))


class TensorWeight(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.weight = Tensor(self.weight.data, requires_grad=True)


class OutputMajorWeight(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.weight = Parameter(self.weight.data.T)

    def forward(self, x):
        return x @ self.weight.T + self.bias


class RowBias(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.bias = Parameter(np.zeros((1, out_features)))


class ParametersInAList(LearnerLinear):
    """Keeps an extra, unlearned array as a Parameter."""

    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.scale = Parameter(np.ones(out_features))


class NoBias(LearnerLinear):
    def forward(self, x):
        super().forward(x)
        return x @ self.weight


class BiasSubtracted(LearnerLinear):
    def forward(self, x):
        super().forward(x)
        return x @ self.weight - self.bias


class ReturnsArray(LearnerLinear):
    def forward(self, x):
        return np.asarray(super().forward(x).data)


class CutsTheGraph(LearnerLinear):
    def forward(self, x):
        return Tensor(np.asarray(x) @ self.weight.data + self.bias.data)


class ZeroInit(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.weight.data[...] = 0.0


class UnscaledInit(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng)
        self.weight.data = np.random.default_rng(rng).standard_normal((in_features, out_features))


class IgnoresRng(LearnerLinear):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features, rng=0)


class NoRngArgument(LearnerLinear):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)


class SeedsNumpyGlobally(LearnerLinear):
    """Works for an integer seed; np.random.seed cannot take the Generator that rng may also be."""

    def __init__(self, in_features, out_features, rng=None):
        super().__init__(in_features, out_features)
        np.random.seed(rng)
        bound = np.sqrt(6 / in_features)
        self.weight = Parameter(np.random.uniform(-bound, bound, size=(in_features, out_features)))


class RewrapsTheInput(LearnerLinear):
    def forward(self, x):
        x = Tensor(x)
        return super().forward(x)


class NoFeatureCheck(LearnerLinear):
    def forward(self, x):
        return x @ self.weight + self.bias


class VagueFeatureError(LearnerLinear):
    def forward(self, x):
        if np.shape(x)[-1] != self.in_features:
            raise ValueError("wrong input")
        return x @ self.weight + self.bias


class SecondAxisFeatures(LearnerLinear):
    def forward(self, x):
        if np.shape(x)[1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features, got {np.shape(x)[1]}")
        return x @ self.weight + self.bias


class LinearNotWritten(Module):
    def __init__(self, in_features, out_features, rng=None):
        raise NotImplementedError()


@pytest.mark.parametrize("LinearClass", [written_copy(ReferenceLinear), LearnerLinear])
def test_right_linear_layers_pass(LinearClass):
    check_linear(LinearClass)
    check_linear(LinearClass, cases=((4, 2, (2, 3, 4)), (64, 10, (8, 64))), seed=3)


@pytest.mark.parametrize("LinearClass, phrases", [
    (NotAModule, ["not a Module", "class Linear(Module)"]),
    (TensorWeight, ["plain Tensor, not a Parameter", "Parameter(array)"]),
    (OutputMajorWeight, ["shape (3, 5), expected (5, 3)", "(in_features, out_features)"]),
    (RowBias, ["shape (1, 3), expected (3,)", "1-D array"]),
    (ParametersInAList, ["more than the weight and the bias", "['scale']"]),
    (NoBias, ["The output of Linear(5, 3)(x)", "the bias is missing"]),
    (BiasSubtracted, ["the bias is subtracted"]),
    (ReturnsArray, ["returned a ndarray, not a Tensor"]),
    (CutsTheGraph, ["does not require grad", ".data or NumPy functions cuts the graph"]),
    (ZeroInit, ["Every initial weight of Linear(200, 100) is 0", "Draw the weights at random"]),
    (UnscaledInit, ["standard deviation", "sqrt(2 / 200) = 0.1", "Standard normal draws need that scaling"]),
    (IgnoresRng, ["rng=8", "np.random.default_rng(rng)"]),
    (NoRngArgument, ["Linear(5, 3, rng=...) raised TypeError",
                     "created as Linear(in_features, out_features, rng=None)"]),
    (SeedsNumpyGlobally, ["Linear(6, 4, rng=...) raised TypeError", "rng was a numpy Generator here, not a seed",
                          "np.random.default_rng(rng)"]),
    (RewrapsTheInput, ["the input x has no gradient", "Tensor(x), x.data or np.asarray(x) makes a new leaf",
                       "use x as it is"]),
    (NoFeatureCheck, ["the engine's ValueError from inside the matmul", "expected 5, got 7"]),
    (VagueFeatureError, ["ValueError('wrong input')", "names both numbers"]),
    (LinearNotWritten, ["NotImplementedError", "not written yet"]),
])
def test_linear_mistakes_get_their_hint(LinearClass, phrases):
    fails_with(check_linear, LinearClass, *phrases)


def test_features_read_from_the_wrong_axis_fail_on_a_batched_input():
    check_linear(SecondAxisFeatures)  # 2-D inputs cannot tell shape[1] from shape[-1] ...
    fails_with(check_linear, SecondAxisFeatures, "x of shape (2, 3, 4) raised ValueError", "x.shape[-1]",
               cases=((4, 2, (2, 3, 4)),))  # ... a batch of sequences can


# --- cross-entropy -----------------------------------------------------------------------------------


def learner_cross_entropy(logits, labels):
    """Log-sum-exp with each row's maximum, log-probabilities picked by indexing."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[np.arange(len(labels)), labels].mean()


def one_hot_cross_entropy(logits, labels):
    """The same with a detached maximum and a one-hot mask: also right."""
    shifted = logits - logits.data.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    mask = np.eye(logits.shape[1])[labels]
    return -(log_probs * mask).sum() / len(labels)


def naive(logits, labels):
    probs = logits.exp() / logits.exp().sum(axis=1, keepdims=True)
    return -probs.log()[np.arange(len(labels)), labels].mean()


def global_max(logits, labels):
    shifted = logits - logits.max()
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[np.arange(len(labels)), labels].mean()


def log_of_softmax(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = shifted.exp() / shifted.exp().sum(axis=1, keepdims=True)
    return -probs.log()[np.arange(len(labels)), labels].mean()


def summed(logits, labels):
    return learner_cross_entropy(logits, labels) * len(labels)


def mean_over_entries(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -(log_probs * np.eye(logits.shape[1])[labels]).mean()


def sign_flipped(logits, labels):
    return -learner_cross_entropy(logits, labels)


def wrong_axis(logits, labels):
    shifted = logits - logits.max(axis=0, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=0, keepdims=True).log()
    return -log_probs[np.arange(len(labels)), labels].mean()


def block_of_labels(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[:, labels].mean()


def shifted_by(shift):
    """A log-sum-exp that subtracts ``shift(logits)`` instead of each row's maximum."""

    def cross_entropy(logits, labels):
        shifted = logits - shift(logits)
        log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
        return -log_probs[np.arange(len(labels)), labels].mean()

    return cross_entropy


def per_row(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[np.arange(len(labels)), labels]


def returns_float(logits, labels):
    return learner_cross_entropy(logits, labels).item()


def through_numpy(logits, labels):
    return Tensor(learner_cross_entropy(logits, labels).data)


def ready_made(logits, labels):
    return -logits.log_softmax(axis=1)[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("fn", [written_copy(reference_cross_entropy), learner_cross_entropy, one_hot_cross_entropy])
def test_right_cross_entropies_pass(fn):
    check_cross_entropy(fn)
    check_cross_entropy(fn, shapes=((1, 2), (7, 10)), seed=5)


@pytest.mark.parametrize("fn", [learner_cross_entropy, one_hot_cross_entropy])
def test_cross_entropies_from_scratch_pass_the_from_scratch_check(fn):
    check_cross_entropy(fn, from_scratch=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in exp, log(0): the mistakes under test
@pytest.mark.parametrize("fn, phrases", [
    (naive, ["logits around +1000", "expected", "got nan", "exp(1000) overflows", "Subtract each row's maximum"]),
    (global_max, ["one row near +1000 and one near -1000", "each row's own maximum"]),
    (log_of_softmax, ["a true class 1000 below the best one", "expected 500.232, got inf", "Do not take the log of a softmax"]),
    (summed, ["random logits", "4 (= N) times too large", "divide the sum by N"]),
    (mean_over_entries, ["3 (= C) times too small"]),
    (sign_flipped, ["the sign is flipped"]),
    (wrong_axis, ["the softmax was taken over the wrong axis"]),
    (block_of_labels, ["random logits", "N x N block", "lp[np.arange(N), labels]"]),
    (shifted_by(lambda logits: logits.mean(axis=1, keepdims=True)),
     ["a row from -1000 to +1000", "expected 500.232, got inf", "Subtract the row's maximum"]),
    (shifted_by(lambda logits: Tensor(logits.data[:, :1])),
     ["a row from -1000 to +1000", "expected 500.232, got inf", "Subtract the row's maximum"]),
    (per_row, ["Tensor of shape (4,); the loss is one number"]),
    (returns_float, ["returned a float, not a Tensor"]),
    (through_numpy, ["does not require grad"]),
])
def test_cross_entropy_mistakes_get_their_hint(fn, phrases):
    fails_with(check_cross_entropy, fn, *phrases)


def test_the_ready_made_ops_fail_only_when_the_exercise_asks_for_a_version_from_scratch():
    check_cross_entropy(ready_made)
    fails_with(check_cross_entropy, ready_made, "ready-made LogSoftmax", "max, exp, sum and log", from_scratch=True)
    fails_with(check_cross_entropy, written_copy(reference_cross_entropy), "ready-made CrossEntropy", from_scratch=True)


def test_an_unwritten_cross_entropy_says_so():
    def not_written(logits, labels):
        raise NotImplementedError()

    fails_with(check_cross_entropy, not_written, "NotImplementedError in `", "not written yet")


# --- SGD -----------------------------------------------------------------------------------------------


class LearnerSGD(Optimizer):
    """SGD with momentum and weight decay as notebook 07 asks for it (__init__ given, step written)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocities = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        for p, velocity in zip(self.params, self.velocities):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data
            velocity *= self.momentum
            velocity += g
            p.data -= self.lr * velocity


class Ascent(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                v[...] = self.momentum * v + p.grad + self.weight_decay * p.data
                p.data += self.lr * v


class ForgottenVelocity(LearnerSGD):
    def step(self):
        for p in self.params:
            if p.grad is not None:
                velocity = np.zeros_like(p.data)
                velocity = self.momentum * velocity + p.grad + self.weight_decay * p.data
                p.data -= self.lr * velocity


class UpdateBeforeVelocity(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                p.data -= self.lr * v
                v[...] = self.momentum * v + p.grad + self.weight_decay * p.data


class Dampened(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                v[...] = self.momentum * v + (1 - self.momentum) * (p.grad + self.weight_decay * p.data)
                p.data -= self.lr * v


class DecaySign(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                v[...] = self.momentum * v + p.grad - self.weight_decay * p.data
                p.data -= self.lr * v


class NoDecay(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                v[...] = self.momentum * v + p.grad
                p.data -= self.lr * v


class DecayAfterMomentum(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            if p.grad is not None:
                v[...] = self.momentum * v + p.grad
                p.data -= self.lr * (v + self.weight_decay * p.data)


class RebindsTheName(LearnerSGD):
    def step(self):
        for p in self.params:
            if p.grad is not None:
                p = p - self.lr * p.grad  # noqa: PLW2901 -- the mistake under test


class ReplacesDataWithATensor(LearnerSGD):
    def step(self):
        for p in self.params:
            if p.grad is not None:
                p.data = p - self.lr * p.grad


class NoneGradNotSkipped(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            v[...] = self.momentum * v + p.grad + self.weight_decay * p.data
            p.data -= self.lr * v


class NoneGradAsZero(LearnerSGD):
    def step(self):
        for p, v in zip(self.params, self.velocities):
            grad = np.zeros_like(p.data) if p.grad is None else p.grad
            v[...] = self.momentum * v + grad + self.weight_decay * p.data
            p.data -= self.lr * v


@pytest.mark.parametrize("SGDClass", [written_copy(ReferenceSGD), LearnerSGD])
def test_right_sgds_pass(SGDClass):
    check_sgd(SGDClass)
    check_sgd(SGDClass, seed=7)


@pytest.mark.parametrize("SGDClass, phrases", [
    (Ascent, ["SGD(params, lr=0.1), one step on a parameter holding 1 with gradient 0.5", "expected 0.95, got 1.05",
              "*up* the gradient"]),
    (ForgottenVelocity, ["2 steps", "after step 2", "expected 0.855, got 0.9", "carry over"]),
    (UpdateBeforeVelocity, ["expected 0.95, got 1", "v starts at 0", "then p.data -= lr * v"]),
    (Dampened, ["momentum=0.9", "the damped form"]),
    (DecaySign, ["weight_decay=0.1", "expected 0.94, got 0.96", "wrong sign"]),
    (NoDecay, ["expected 0.94, got 0.95", "weight_decay is ignored"]),
    (DecayAfterMomentum, ["3 steps", "*before* the velocity update"]),
    (RebindsTheName, ["did not change the parameter", "p.data -= ..."]),
    (ReplacesDataWithATensor, ["parameter's .data is Tensor", "NumPy arithmetic on p.data and p.grad"]),
    (NoneGradNotSkipped, ["grad None) in step 2", "raised TypeError", "skip a parameter whose .grad is None"]),
    (NoneGradAsZero, ["grad None) in step 2", "parameter 1 after step 2", "must not move at all (skip it)"]),
])
def test_sgd_mistakes_get_their_hint(SGDClass, phrases):
    fails_with(check_sgd, SGDClass, *phrases)


def test_the_sgd_rule_by_hand_gives_the_numbers_worked_out_on_paper():
    runs = training._sgd_runs(seed=0)
    assert np.allclose(training._sgd_by_hand(runs[0])[0][0], 0.95)
    assert np.allclose([step[0][0] for step in training._sgd_by_hand(runs[1])], [0.95, 0.855])
    assert np.allclose(training._sgd_by_hand(runs[2])[0][0], 0.94)


# --- Adam --------------------------------------------------------------------------------------------


class LearnerAdam(Optimizer):
    """Adam as notebook 07 asks for it (__init__ given, step written)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = [0] * len(self.params)
        self.means = [np.zeros_like(p.data) for p in self.params]
        self.squares = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.steps[i] += 1
            self.means[i] = self.beta1 * self.means[i] + (1 - self.beta1) * p.grad
            self.squares[i] = self.beta2 * self.squares[i] + (1 - self.beta2) * p.grad**2
            self.update(i, p, self.means[i], self.squares[i], self.steps[i])

    def update(self, i, p, m, v, t):
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class NoBiasCorrection(LearnerAdam):
    def update(self, i, p, m, v, t):
        p.data -= self.lr * m / (np.sqrt(v) + self.eps)


class NoSquareCorrection(LearnerAdam):
    def update(self, i, p, m, v, t):
        p.data -= self.lr * m / (1 - self.beta1**t) / (np.sqrt(v) + self.eps)


class NoSqrt(LearnerAdam):
    def update(self, i, p, m, v, t):
        p.data -= self.lr * (m / (1 - self.beta1**t)) / (v / (1 - self.beta2**t) + self.eps)


class EpsInsideSqrt(LearnerAdam):
    def update(self, i, p, m, v, t):
        p.data -= self.lr * (m / (1 - self.beta1**t)) / np.sqrt(v / (1 - self.beta2**t) + self.eps)


class EpsBeforeCorrection(LearnerAdam):
    """The shortcut form lr_t * m / (sqrt(v) + eps), with eps not corrected along with v."""

    def update(self, i, p, m, v, t):
        lr_t = self.lr * np.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        p.data -= lr_t * m / (np.sqrt(v) + self.eps)


class CountFromZero(LearnerAdam):
    def update(self, i, p, m, v, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            super().update(i, p, m, v, t - 1)


class CountStuck(LearnerAdam):
    def update(self, i, p, m, v, t):
        super().update(i, p, m, v, 1)


class GlobalCount(LearnerAdam):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.t = 0

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.means[i] = self.beta1 * self.means[i] + (1 - self.beta1) * p.grad
                self.squares[i] = self.beta2 * self.squares[i] + (1 - self.beta2) * p.grad**2
                self.update(i, p, self.means[i], self.squares[i], self.t)


class NoneAsZero(LearnerAdam):
    def step(self):
        for i, p in enumerate(self.params):
            grad = np.zeros_like(p.data) if p.grad is None else p.grad
            self.steps[i] += 1
            self.means[i] = self.beta1 * self.means[i] + (1 - self.beta1) * grad
            self.squares[i] = self.beta2 * self.squares[i] + (1 - self.beta2) * grad**2
            self.update(i, p, self.means[i], self.squares[i], self.steps[i])


class NotSquared(LearnerAdam):
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.steps[i] += 1
                self.means[i] = self.beta1 * self.means[i] + (1 - self.beta1) * p.grad
                self.squares[i] = self.beta2 * self.squares[i] + (1 - self.beta2) * p.grad
                self.update(i, p, self.means[i], self.squares[i], self.steps[i])


class ForgottenState(LearnerAdam):
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.steps[i] += 1
                m = (1 - self.beta1) * p.grad
                v = (1 - self.beta2) * p.grad**2
                self.update(i, p, m, v, self.steps[i])


class DefaultBetas(LearnerAdam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr, (0.9, 0.999), eps)


@pytest.mark.parametrize("AdamClass", [written_copy(ReferenceAdam), LearnerAdam])
def test_right_adams_pass(AdamClass):
    check_adam(AdamClass)
    check_adam(AdamClass, seed=7)


@pytest.mark.parametrize("AdamClass, phrases", [
    (NoBiasCorrection, ["Adam(params, lr=0.1), one step on a parameter holding 1 with gradient 0.5",
                        "expected 0.9, got 0.683772", "bias correction is missing", "3.16 times"]),
    (NoSquareCorrection, ["v is not bias-corrected"]),
    (NoSqrt, ["expected 0.9, got 0.8", "square root"]),
    (EpsInsideSqrt, ["lr=1.0, eps=1e-08", "gradient 1e-10", "expected 0.990099", "after the square root"]),
    (EpsBeforeCorrection, ["gradient 1e-10", "expected 0.990099, got 0.999684", "add eps to sqrt(v_hat)"]),
    (CountFromZero, ["got nan", "t is 0 in the first correction"]),
    (CountStuck, ["3 steps", "after step 2", "grow by one every step"]),
    (GlobalCount, ["parameter 0 getting no gradient (grad None) in step 3", "after step 4",
                   "count steps per parameter"]),
    (NoneAsZero, ["parameter 0 getting no gradient (grad None) in step 3", "parameter 0 after step 3",
                  "must not move at all"]),
    (NotSquared, ["*squared* gradients"]),
    (ForgottenState, ["after step 2", "m and v must carry over"]),
    (DefaultBetas, ["betas=(0.8, 0.99)", "use the betas passed to Adam"]),
])
def test_adam_mistakes_get_their_hint(AdamClass, phrases):
    fails_with(check_adam, AdamClass, *phrases)


def test_the_adam_rule_by_hand_gives_the_numbers_worked_out_on_paper():
    runs = training._adam_runs(seed=0)
    assert np.allclose(training._adam_by_hand(runs[0])[0][0], 1 - 0.1 * 0.5 / (0.5 + 1e-8))
    assert np.allclose(training._adam_by_hand(runs[2])[0][0], 1 - 1e-10 / (1e-10 + 1e-8))
    # Without bias correction the first step is (1 - beta1) / sqrt(1 - beta2) = 3.16 times too large.
    first_step = 1 - training._adam_by_hand(runs[0], "no_correction")[0][0]
    assert np.isclose(first_step / 0.1, (1 - 0.9) / np.sqrt(1 - 0.999))


# --- the trained model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    mean, scale = data.X_train.mean(axis=0), data.X_train.std(axis=0) + 0.1
    return data._replace(X_train=(data.X_train - mean) / scale, X_test=(data.X_test - mean) / scale)


def train_briefly(data, epochs):
    rng = np.random.default_rng(0)
    model = Sequential(ReferenceLinear(64, 64, rng=rng), ReLU(), ReferenceLinear(64, 10, rng=rng))
    optimizer = ReferenceSGD(model.parameters(), lr=0.05, momentum=0.9)
    history = {"epoch": [], "train_loss": [], "test_accuracy": []}
    for epoch in range(1, epochs + 1):
        losses = []
        for X, y in batches(data.X_train, data.y_train, 32, seed=rng):
            optimizer.zero_grad()
            loss = reference_cross_entropy(model(X), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        with no_grad():
            history["test_accuracy"].append(accuracy(model(data.X_test), data.y_test))
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
    return model, history


@pytest.fixture(scope="module")
def trained(digits):
    return train_briefly(digits, epochs=8)


def test_a_trained_model_passes(digits, trained):
    model, history = trained
    score = check_training_result(model, digits.X_test, digits.y_test, history=history)
    assert score == history["test_accuracy"][-1] >= 0.95


def test_an_untrained_model_is_at_chance(digits):
    model = Sequential(ReferenceLinear(64, 10, rng=0))
    fails_with(check_training_result, model, "about chance (10% for 10 classes)", "If train() is not written yet",
               X_test=digits.X_test, y_test=digits.y_test)


def test_a_model_that_learned_too_little_gets_advice(digits):
    model, _ = train_briefly(digits, epochs=1)
    fails_with(check_training_result, model, "should be at least 99%", "learned, but not enough",
               X_test=digits.X_test, y_test=digits.y_test, min_accuracy=0.99)


def test_nan_scores_mean_divergence(digits):
    def diverged(X):
        return Tensor(np.full((len(X), 10), np.nan))

    fails_with(check_training_result, diverged, "nan or inf", "lower the learning rate",
               X_test=digits.X_test, y_test=digits.y_test)


def test_scores_of_the_wrong_shape(digits):
    fails_with(check_training_result, lambda X: Tensor(np.zeros(len(X))), "shape (360,)", "(360, 10)",
               X_test=digits.X_test, y_test=digits.y_test)


@pytest.mark.parametrize("change, phrases", [
    (lambda h: h.pop("train_loss"), ["history has no ['train_loss']"]),
    (lambda h: h["train_loss"].append(0.1), ["one entry per epoch", "'train_loss': 9"]),
    (lambda h: h["train_loss"].reverse(), ["did not go down"]),
    (lambda h: h["train_loss"].__setitem__(3, float("nan")), ["contains nan"]),
    (lambda h: h.__setitem__("test_accuracy", [100 * a for a in h["test_accuracy"]]), ["fractions between 0 and 1"]),
    (lambda h: h["test_accuracy"].__setitem__(-1, 0.5), ["last entry of history['test_accuracy'] is 0.5000"]),
])
def test_a_bad_history_is_named(digits, trained, change, phrases):
    model, history = trained
    broken = {key: list(values) for key, values in history.items()}
    change(broken)
    fails_with(check_training_result, model, *phrases, X_test=digits.X_test, y_test=digits.y_test, history=broken)


# --- the learner's piece, or the reference -----------------------------------------------------------


@pytest.mark.parametrize("helper, own, broken, reference", [
    (linear_or_reference, LearnerLinear, NoBias, ReferenceLinear),
    (cross_entropy_or_reference, learner_cross_entropy, naive, reference_cross_entropy),
    (sgd_or_reference, LearnerSGD, Dampened, ReferenceSGD),
    (adam_or_reference, LearnerAdam, NoSqrt, ReferenceAdam),
])
def test_the_learners_piece_is_used_once_it_passes(helper, own, broken, reference, capsys):
    assert helper(own) is own
    assert "✓" in capsys.readouterr().out
    with np.errstate(over="ignore", invalid="ignore"):  # the naive cross-entropy overflows: that is its flaw
        assert helper(broken) is reference
    printed = capsys.readouterr().out
    assert "does not pass its check yet" in printed and "run this cell again" in printed


# --- the training loop -----------------------------------------------------------------------------


def learner_train(model, optimizer, loss_fn, data, *, epochs, batch_size, rng, mistake=None):
    """The loop as notebook 07 asks for it; ``mistake`` makes one usual slip."""
    history = {"epoch": [], "train_loss": [], "train_accuracy": [], "test_accuracy": []}
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        seed = 0 if mistake == "same_order" else rng
        for X, y in batches(data.X_train, data.y_train, batch_size, seed=seed):
            if mistake == "drop_last" and len(y) < batch_size:
                continue
            if mistake != "no_zero_grad":
                optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            if mistake == "zero_grad_late":
                optimizer.zero_grad()
            optimizer.step()
            if mistake == "loss_tensor":
                total = total + loss * len(y)
            else:
                weight = {"batch_size_weight": batch_size, "unweighted": 1}.get(mistake, len(y))
                total += loss.item() * weight
            count += 1 if mistake == "unweighted" else len(y)
        with no_grad():
            history["test_accuracy"].append(accuracy(model(data.X_test), data.y_test))
            history["train_accuracy"].append(accuracy(model(data.X_train), data.y_train))
        history["epoch"].append(epoch)
        history["train_loss"].append(total if mistake == "summed_loss" else total / count)
    if mistake == "returns_nothing":
        return None
    if mistake == "stale_accuracy":
        history["test_accuracy"][-1] = history["test_accuracy"][0]
    return history


def test_a_right_training_loop_passes(digits):
    check_training_loop(learner_train, digits)
    check_training_loop(learner_train, digits, epochs=3, batch_size=50, seed=1)


@pytest.mark.parametrize("mistake, phrases", [
    ("no_zero_grad", ["step() for batch 2 ran without a zero_grad()", "gradients add up"]),
    ("zero_grad_late", ["no parameter has a gradient", "between backward() and step()"]),
    ("same_order", ["same order", "pass the Generator itself"]),
    ("drop_last", ["called optimizer.step() 28 times", "should be 15 per epoch, 30 in all", "the last smaller one too"]),
    ("summed_loss", ["history['train_loss'][0] is", "mean loss per example of epoch 1", "times len(y)"]),
    ("batch_size_weight", ["history['train_loss'][0] is", "weighted by the batch_size argument",
                           "holds only 37 examples", "len(y)"]),
    ("unweighted", ["history['train_loss'][0] is", "weighted by its size, len(y)", "plain mean of the batch losses",
                    "only 37 examples", "Weight each batch loss by len(y)"]),
    ("loss_tensor", ["history['train_loss'][0] is a Tensor, not a plain number", "use loss.item()"]),
    ("returns_nothing", ["returned NoneType"]),
    ("stale_accuracy", ["history['test_accuracy'][-1]", "the model as it is then"]),
])
def test_training_loop_mistakes_get_their_hint(digits, mistake, phrases):
    def train(*args, **kwargs):
        return learner_train(*args, mistake=mistake, **kwargs)

    fails_with(check_training_loop, train, *phrases, data=digits)


def test_an_unwritten_training_loop_says_so(digits):
    def train(model, optimizer, loss_fn, data, *, epochs, batch_size, rng):
        raise NotImplementedError()

    fails_with(check_training_loop, train, "NotImplementedError", "not written yet", data=digits)


# --- the reference instead of the learner's own ----------------------------------------------------


def test_the_reference_pieces_instead_of_ones_own_fail():
    class SubclassedLinear(ReferenceLinear):
        def forward(self, x):
            return x @ self.weight + self.bias

    class WrappedLinear(Module):
        def __init__(self, in_features, out_features, rng=None):
            self.inner = ReferenceLinear(in_features, out_features, rng=rng)
            self.weight, self.bias = self.inner.weight, self.inner.bias

        def forward(self, x):
            return self.inner(x)

    class SubclassedSGD(ReferenceSGD):
        pass

    class SGDCallingTheReference(LearnerSGD):
        def step(self):
            ReferenceSGD.step(self)

    class AdamCallingTheReference(Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            super().__init__(params, lr)
            self.inner = ReferenceAdam(self.params, lr=lr, betas=betas, eps=eps)

        def step(self):
            self.inner.step()

    expected = [
        (check_linear, ReferenceLinear, "Your Linear is autodiff_ref.nn.Linear, the reference implementation, imported"),
        (check_linear, SubclassedLinear, "Your Linear subclasses autodiff_ref.nn.Linear and inherits its __init__, the "
                                         "reference implementation: this exercise asks you to write __init__ yourself. "
                                         "Subclass Module instead"),
        (check_linear, WrappedLinear, "Your Linear calls autodiff_ref.nn.Linear.__init__, the reference implementation, "
                                      "from WrappedLinear.__init__ (line "),
        (check_cross_entropy, reference_cross_entropy, "Your cross_entropy is autodiff_ref.nn.cross_entropy, the reference"),
        (check_cross_entropy, lambda logits, labels: reference_cross_entropy(logits, labels),
         "Your cross_entropy calls autodiff_ref.nn.cross_entropy, the reference implementation, from <lambda> (line "),
        (check_sgd, ReferenceSGD, "Your SGD is autodiff_ref.optim.SGD, the reference implementation, imported"),
        (check_sgd, SubclassedSGD, "Your SGD subclasses autodiff_ref.optim.SGD and inherits its step, the reference "
                                   "implementation: this exercise asks you to write step yourself. Subclass Optimizer"),
        (check_sgd, SGDCallingTheReference, "Your SGD calls autodiff_ref.optim.SGD.step, the reference implementation, "
                                            "from SGDCallingTheReference.step (line "),
        (check_adam, AdamCallingTheReference, "Your Adam calls autodiff_ref.optim.Adam.step, the reference "
                                              "implementation, from AdamCallingTheReference.step (line "),
    ]
    for check, yours, message in expected:
        with pytest.raises(CheckFailure) as failure:
            check(yours)
        assert str(failure.value).startswith(message), (check.__name__, str(failure.value))
