"""Checks for notebook 07, training a network: a layer, a loss, two optimizers, a trained model.

* :func:`check_linear` checks a ``Linear`` module: its parameters (names, shapes, registration,
  initial scale, use of ``rng``), its forward against :class:`autodiff_ref.nn.Linear` with the
  same weights, the gradients of weight, bias and input against central differences, and the
  error it raises for inputs with the wrong number of features.
* :func:`check_cross_entropy` checks a softmax cross-entropy function against
  :func:`autodiff_ref.nn.cross_entropy` and against numeric gradients, then on logits in the
  thousands, where only a log-sum-exp formulation stays finite.
* :func:`check_sgd` and :func:`check_adam` run an optimizer's ``step`` once and several times on
  parameters with given gradients and compare every step with the update rule worked out by hand.
* :func:`check_training_loop` runs a training loop on a small model with an optimizer that
  watches it: one step per mini-batch, gradients cleared in between, every example once per epoch
  in a new order, and a history that matches what happened.
* :func:`check_training_result` measures a trained model's accuracy on held-out data and checks
  the per-epoch history that the training loop recorded.
* :func:`linear_or_reference`, :func:`cross_entropy_or_reference`, :func:`sgd_or_reference` and
  :func:`adam_or_reference` hand back the learner's piece when it passes its check and the
  reference otherwise, so that later cells still run for a learner who is stuck.

A failing check raises :class:`~autodiff_ref.testing.core.CheckFailure` with a message that says
what was checked, what was expected and what came out, and, when the numbers match a usual
mistake, a hint naming it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .. import nn
from ..gradcheck import numeric_grad
from ..graph import topological_order
from ..optim import Adam as ReferenceAdam
from ..optim import SGD as ReferenceSGD
from ..tensor import Tensor, no_grad
from .core import CheckFailure, assert_close, own_work, random_array, watched, where_raised, yours_or_reference

__all__ = [
    "check_linear",
    "check_cross_entropy",
    "check_sgd",
    "check_adam",
    "check_training_loop",
    "check_training_result",
    "linear_or_reference",
    "cross_entropy_or_reference",
    "sgd_or_reference",
    "adam_or_reference",
]


# --- running learner code ------------------------------------------------------------------------


def _call(description: str, function: Callable[..., Any], *args: Any, hint: str | None = None,
          **kwargs: Any) -> Any:
    """Run learner code; turn any exception into a CheckFailure that names the case."""
    try:
        return watched(function, *args, **kwargs)
    except CheckFailure:
        raise
    except NotImplementedError as error:
        raise CheckFailure(
            f"{description} raised NotImplementedError in `{where_raised(error)}`: that part is not "
            "written yet.\n  Hint: replace `raise NotImplementedError()` with your code, run its "
            "cell, then run this test again."
        ) from error
    except Exception as error:  # anything else the learner's code raises fails this case
        raise CheckFailure(
            f"{description} raised {type(error).__name__}: {error}"
            + (f"\n  Hint: {hint}" if hint else "")
        ) from error


def _matching_hint(got: Any, candidates: Sequence[tuple[Any, str]]) -> str | None:
    """The hint of the first wrong answer that ``got`` equals (nan matching nan), if any."""
    got_array = np.asarray(got, dtype=np.float64)
    for wrong, hint in candidates:
        wrong_array = np.asarray(wrong, dtype=np.float64)
        if wrong_array.shape == got_array.shape and np.allclose(
            got_array, wrong_array, rtol=1e-6, atol=1e-9, equal_nan=True
        ):
            return hint
    return None


# --- Linear ----------------------------------------------------------------------------------------

#: (in_features, out_features, input shape) of each layer the visible check builds.
LINEAR_CASES = ((5, 3, (4, 5)), (1, 2, (3, 1)))


def _creation_hint(LinearClass: type, in_features: int, out_features: int, rng: Any) -> str | None:
    """Why ``LinearClass(in_features, out_features, rng=rng)`` may fail, decided before the call: a
    signature that does not take these arguments, or an rng that is a Generator, not a seed."""
    try:
        inspect.signature(LinearClass).bind(in_features, out_features, rng=rng)
    except TypeError:
        return "the class should be created as Linear(in_features, out_features, rng=None)."
    except ValueError:  # no signature to read (a class written in C): nothing to tell
        return None
    if isinstance(rng, np.random.Generator):  # the checks pass one only after integer seeds worked
        return ("rng was a numpy Generator here, not a seed, and np.random.seed and the np.random.* "
                "functions do not take one. Draw from rng = np.random.default_rng(rng), which takes a "
                "seed, None or a Generator, then rng.uniform(...).")
    return None


def _make_linear(LinearClass: type, in_features: int, out_features: int, rng: Any) -> Any:
    return _call(
        f"Linear({in_features}, {out_features}, rng=...)", LinearClass, in_features, out_features, rng=rng,
        hint=_creation_hint(LinearClass, in_features, out_features, rng),
    )


def _linear_parameters(
    layer: Any, in_features: int, out_features: int, text: str
) -> tuple[nn.Parameter, nn.Parameter]:
    """The layer's ``weight`` and ``bias``, after checking their type and shape."""
    if not isinstance(layer, nn.Module):
        raise CheckFailure(
            f"{text} is a {type(layer).__name__}, not a Module.\n"
            "  Hint: write `class Linear(Module):` so that the layer has parameters() and zero_grad()."
        )
    found = []
    for name, shape in (("weight", (in_features, out_features)), ("bias", (out_features,))):
        value = getattr(layer, name, None)
        if value is None:
            raise CheckFailure(
                f"{text} has no attribute `{name}`.\n"
                f"  Hint: in __init__, set self.{name} = Parameter(...) with shape {shape}."
            )
        if not isinstance(value, nn.Parameter):
            kind = "a plain Tensor" if isinstance(value, Tensor) else f"a {type(value).__name__}"
            raise CheckFailure(
                f"{text}.{name} is {kind}, not a Parameter.\n"
                f"  Hint: wrap the array: self.{name} = Parameter(array). A Parameter requires grad, "
                "and parameters() finds it, so the optimizer will update it."
            )
        if value.shape != shape:
            if name == "weight" and value.shape == (out_features, in_features):
                hint = ("the weight is stored as (out_features, in_features); this course stores it as "
                        "(in_features, out_features), so that the forward is x @ W with no transpose.")
            elif name == "bias" and value.size == out_features:
                hint = f"make the bias a 1-D array of shape ({out_features},): one number per output."
            else:
                hint = f"the {name} of a Linear({in_features}, {out_features}) has shape {shape}."
            raise CheckFailure(f"{text}.{name} has shape {value.shape}, expected {shape}.\n  Hint: {hint}")
        found.append(value)
    weight, bias = found
    named = _call(f"{text}.named_parameters()", lambda: list(layer.named_parameters()))
    registered = {id(p) for _, p in named}
    for name, value in (("weight", weight), ("bias", bias)):
        if id(value) not in registered:
            raise CheckFailure(
                f"{text}.parameters() does not include the {name}.\n"
                f"  Hint: set it as an attribute of the layer itself (self.{name} = Parameter(...)); "
                "Module finds parameters among the attributes."
            )
    extra = [name for name, p in named if p is not weight and p is not bias]
    if extra:
        raise CheckFailure(
            f"{text}.parameters() holds more than the weight and the bias: also {extra}.\n"
            "  Hint: only the weight and the bias are learned; keep other arrays as plain attributes."
        )
    return weight, bias


def _check_linear_forward(
    layer: Any, weight: nn.Parameter, bias: nn.Parameter, x: np.ndarray, text: str
) -> Tensor:
    """The output for ``x`` against the reference layer with the same weight and bias."""
    in_features, out_features = weight.shape
    reference = nn.Linear(in_features, out_features)
    reference.weight.data, reference.bias.data = weight.data.copy(), bias.data.copy()
    expected = reference(x).data
    what = f"{text}(x) for x of shape {x.shape}"
    out = _call(
        what, layer, x,
        hint="this input is valid: the features are on the last axis (x.shape[-1]); any axes "
             "before it are batch axes, and x @ W handles them.",
    )
    if not isinstance(out, Tensor):
        raise CheckFailure(
            f"{what} returned a {type(out).__name__}, not a Tensor.\n"
            "  Hint: compute it with Tensor operations, x @ self.weight + self.bias, so that "
            "backward() can reach the parameters."
        )
    plain = x @ weight.data
    assert_close(
        out.data, expected, f"The output of {what}",
        hint=_matching_hint(out.data, [
            (plain, "the bias is missing: return x @ self.weight + self.bias."),
            (plain - bias.data, "the bias is subtracted; add it."),
        ]) or ("the output of a Linear has shape (..., out_features): x @ W has it already, and "
               "the bias broadcasts along the rows." if out.shape != expected.shape else None),
    )
    return out


# Why a tensor got no gradient: a parameter was left out of the computation, or the input was
# rewrapped in forward, which looks harmless but starts a new graph.
_NO_PARAMETER_GRADIENT = "the output must be computed from it with Tensor operations."
_NO_INPUT_GRADIENT = ("Tensor(x), x.data or np.asarray(x) makes a new leaf cut off from x's graph: use x as "
                      "it is; x @ self.weight works for an array and for a Tensor alike.")


def _check_linear_gradients(layer: Any, weight: nn.Parameter, bias: nn.Parameter, x: np.ndarray,
                            text: str, rng: np.random.Generator) -> None:
    """Gradients of ``sum(w * layer(x))`` for weight, bias and x against central differences."""
    x_tensor = Tensor(x, requires_grad=True)
    weight.grad = bias.grad = None
    out = _call(f"{text}(x)", layer, x_tensor)
    if not out.requires_grad:
        raise CheckFailure(
            f"The output of {text}(x) does not require grad, so no gradient can reach the weight "
            "and the bias.\n  Hint: compute it from the Parameters with Tensor operations "
            "(x @ self.weight + self.bias); going through .data or NumPy functions cuts the graph."
        )
    output_weights = rng.standard_normal(out.shape)
    _call(f"backward() through {text}", lambda: (out * output_weights).sum().backward())

    def projected(x_values: np.ndarray, w_values: np.ndarray, b_values: np.ndarray) -> float:
        saved = weight.data, bias.data
        weight.data, bias.data = w_values, b_values
        try:
            with no_grad():
                return float(np.sum(layer(Tensor(x_values)).data * output_weights))
        finally:
            weight.data, bias.data = saved

    numeric = numeric_grad(projected, x, weight.data, bias.data)
    for name, tensor, expected in (("weight", weight, numeric[1]), ("bias", bias, numeric[2]),
                                   ("input x", x_tensor, numeric[0])):
        if tensor.grad is None:
            raise CheckFailure(
                f"After backward() through {text}, the {name} has no gradient (.grad is None).\n"
                f"  Hint: {_NO_INPUT_GRADIENT if tensor is x_tensor else _NO_PARAMETER_GRADIENT}"
            )
        assert_close(
            tensor.grad, expected,
            f"The gradient of sum(w * {text}(x)) with respect to the {name} (x of shape {x.shape})",
        )


def _check_initialisation(LinearClass: type, seed: int) -> None:
    """Random, reproducible weights of roughly the He scale ``sqrt(2 / in_features)``."""
    in_features, out_features = 200, 100
    text = f"Linear({in_features}, {out_features})"
    weights = _make_linear(LinearClass, in_features, out_features, seed).weight.data
    if not np.all(np.isfinite(weights)):
        raise CheckFailure(f"The initial weights of {text} contain nan or inf.")
    if np.ptp(weights) == 0:
        raise CheckFailure(
            f"Every initial weight of {text} is {weights.flat[0]:.6g}.\n"
            "  Hint: with equal weights every output unit computes the same thing and gets the same "
            "gradient, so they never become different. Draw the weights at random."
        )
    he_std = np.sqrt(2.0 / in_features)
    std = float(weights.std())
    if not 0.5 <= std / he_std <= 2.0:
        bound = np.sqrt(6.0 / in_features)
        raise CheckFailure(
            f"The initial weights of {text} have standard deviation {std:.4g}; for {in_features} "
            f"inputs it should be near sqrt(2 / {in_features}) = {he_std:.4g} (He initialisation).\n"
            f"  Hint: draw them from U(-a, a) with a = sqrt(6 / in_features) ({bound:.4g} here)."
            + (" Standard normal draws need that scaling too." if 0.8 < std < 1.25 else "")
        )
    small = (6, 4)
    first = _make_linear(LinearClass, *small, 7).weight.data
    again = _make_linear(LinearClass, *small, 7).weight.data
    other = _make_linear(LinearClass, *small, 8).weight.data
    _make_linear(LinearClass, *small, np.random.default_rng(7))  # a Generator works as rng too
    if not np.array_equal(first, again) or np.array_equal(first, other):
        raise CheckFailure(
            f"Linear{small} made with rng=7 twice should have the same weights, and with rng=8 "
            "different ones.\n  Hint: draw the weights from rng = np.random.default_rng(rng), so a "
            "seed makes a layer reproducible (and a Generator passed in is used as it is)."
        )


def _check_feature_error(LinearClass: type) -> None:
    """Inputs with the wrong number of features get the layer's own ValueError."""
    in_features, out_features, wrong = 5, 3, 7
    layer = _make_linear(LinearClass, in_features, out_features, 0)
    text = f"Linear({in_features}, {out_features})(x) for x of shape (4, {wrong})"
    own_error = (
        f"check x.shape[-1] against the layer's in_features before computing, and raise "
        f"ValueError with a message that names both numbers (expected {in_features}, got {wrong})."
    )
    try:
        layer(np.ones((4, wrong)))
    except ValueError as error:
        message = str(error)
        if "MatMul" in message:
            raise CheckFailure(
                f"{text} raised the engine's ValueError from inside the matmul:\n  {message}\n"
                f"  Hint: a learner using your layer should read what is wrong in its terms: {own_error}"
            ) from error
        if str(in_features) not in message or str(wrong) not in message:
            raise CheckFailure(
                f"{text} raised ValueError({message!r}), which does not say how many features were "
                f"expected ({in_features}) and how many came ({wrong}).\n  Hint: {own_error}"
            ) from error
    except NotImplementedError as error:
        raise CheckFailure(
            f"{text} raised NotImplementedError in `{where_raised(error)}`: it is not written yet."
        ) from error
    except Exception as error:
        raise CheckFailure(
            f"{text} raised {type(error).__name__}: {error}\n  Hint: raise ValueError here: {own_error}"
        ) from error
    else:
        raise CheckFailure(f"{text} did not raise an error.\n  Hint: {own_error}")


def check_linear(LinearClass: type, *, cases: Sequence[tuple[int, int, tuple[int, ...]]] = LINEAR_CASES,
                 seed: int = 0) -> None:
    """Check a ``Linear`` module built as ``LinearClass(in_features, out_features, rng=None)``.

    For each ``(in_features, out_features, input_shape)`` in ``cases``: ``weight`` and ``bias``
    are Parameters of shapes ``(in_features, out_features)`` and ``(out_features,)`` and are what
    ``parameters()`` returns; with a random bias, the output equals the reference layer's with the
    same weights; and the gradients of weight, bias and input match central differences. Then:
    the initial weights are random with a standard deviation near ``sqrt(2 / in_features)`` and
    come from ``rng``; and an input with the wrong number of features raises the layer's own
    ValueError naming both numbers.
    """
    with own_work("Linear", LinearClass, nn.Linear, methods=("__init__", "forward")):
        rng = np.random.default_rng(seed)
        for in_features, out_features, input_shape in cases:
            text = f"Linear({in_features}, {out_features})"
            layer = _make_linear(LinearClass, in_features, out_features, int(rng.integers(1 << 30)))
            weight, bias = _linear_parameters(layer, in_features, out_features, text)
            bias.data = random_array((out_features,), rng)  # a zero bias would hide a missing one
            x = random_array(tuple(input_shape), rng)
            _check_linear_forward(layer, weight, bias, x, text)
            _check_linear_gradients(layer, weight, bias, x, text, rng)
        _check_initialisation(LinearClass, seed)
        _check_feature_error(LinearClass)


# --- cross-entropy ---------------------------------------------------------------------------------

_READY_MADE_OPS = ("LogSumExp", "LogSoftmax", "CrossEntropy")


def _stability_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """(description, logits, labels, hint if the loss is not finite) for logits in the thousands."""
    noise = rng.uniform(-2.0, 2.0, size=(3, 4))
    return [
        (
            "logits around +1000", 1000.0 + noise, np.array([0, 3, 1]),
            "exp(1000) overflows float64 (the largest float is about e^709) to inf, and inf / inf "
            "is nan. Subtract each row's maximum m before exponentiating: "
            "log(sum(exp(z))) = m + log(sum(exp(z - m))), and now no exponent is positive.",
        ),
        (
            "logits around -1000", -1000.0 + noise, np.array([2, 0, 3]),
            "exp(-1000) underflows to 0, and log(0) = -inf. Subtracting each row's maximum m fixes "
            "this too: the largest term becomes exp(0) = 1, so the sum is at least 1.",
        ),
        (
            "one row near +1000 and one near -1000",
            np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1003.0]]), np.array([2, 1]),
            "subtract each row's own maximum, z.max(axis=1, keepdims=True), not one maximum for the "
            "whole batch: after subtracting 1000 from the second row every exp underflows to 0.",
        ),
        (
            "a true class 1000 below the best one", np.array([[1000.0, 0.0, -5.0], [2.0, 1.0, 0.5]]),
            np.array([1, 0]),
            "the true class's probability exp(-1000) underflows to 0, and log(0) = -inf. Do not "
            "take the log of a softmax; compute the log-probability directly: "
            "(z - m) - log(sum(exp(z - m))).",
        ),
        (
            # Only the row's maximum works for every row: another shift, such as the row's mean or
            # its first entry, passes the cases above but leaves exp(1000) in this row.
            "a row from -1000 to +1000 with its largest logit in the middle",
            np.array([[0.0, 1000.0, -1000.0], [2.0, 1.0, 0.5]]), np.array([0, 0]),
            "exp(1000) overflows: what was subtracted from this row left an exponent near 1000. Subtract "
            "the row's maximum, z.max(axis=1, keepdims=True): only it makes every exponent at most 0, "
            "however far apart the scores are. The row's mean or its first entry does not.",
        ),
    ]


def _log_softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Log-probabilities normalised along ``axis``, computed the stable way."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _cross_entropy_mistakes(
    logits: np.ndarray, labels: np.ndarray, expected: float
) -> list[tuple[float, str]]:
    n_rows, n_classes = logits.shape
    column_logp = _log_softmax(logits, axis=0)
    return [
        (n_rows * expected, f"the loss is {n_rows} (= N) times too large: the cross-entropy is the "
                            "*mean* over the batch of -log p(true class); divide the sum by N."),
        (expected / n_classes, f"the loss is {n_classes} (= C) times too small: average over the N "
                               "rows only, not over all N * C entries."),
        (-expected, "the sign is flipped: the loss is *minus* the mean log-probability of the true "
                    "classes, a positive number."),
        (-np.mean(column_logp[np.arange(n_rows), labels]),
         "the softmax was taken over the wrong axis: each row holds one example's scores for the "
         "C classes, so normalise along axis=1."),
        (-np.mean(_log_softmax(logits, axis=1)[:, labels]),
         "lp[:, labels] picks an N x N block, every row at every label. Index rows and labels "
         "together, lp[np.arange(N), labels], to pick each row's own true class."),
    ]


def _check_cross_entropy_case(fn: Callable[..., Any], logits: np.ndarray, labels: np.ndarray, description: str,
                              unstable_hint: str | None, from_scratch: bool) -> None:
    """Loss and gradient of ``fn`` for one batch; ``unstable_hint`` (logits in the thousands) if not finite."""
    text = f"cross_entropy(logits, labels) for {description}"
    logits_tensor = Tensor(logits, requires_grad=True)
    loss = _call(text, fn, logits_tensor, labels.copy())
    if not isinstance(loss, Tensor):
        raise CheckFailure(
            f"{text} returned a {type(loss).__name__}, not a Tensor.\n  Hint: compute it with Tensor "
            "operations on the logits, so that loss.backward() can run."
        )
    if loss.size != 1:
        raise CheckFailure(
            f"{text} returned a Tensor of shape {loss.shape}; the loss is one number.\n  Hint: it is "
            "the mean over the rows of -log p(true class): average the N per-row losses."
        )
    reference_logits = Tensor(logits, requires_grad=True)
    reference_loss = nn.cross_entropy(reference_logits, labels)
    reference_loss.backward()
    expected = reference_loss.item()
    got = float(loss.data.reshape(()))
    if unstable_hint and not np.isfinite(got):
        hint = unstable_hint
    else:
        hint = _matching_hint(got, _cross_entropy_mistakes(logits, labels, expected))
    assert_close(got, expected, f"The loss for {description}", hint=hint)
    if from_scratch:
        used = sorted({type(node.op).__name__ for node in topological_order(loss)
                       if node.op is not None and type(node.op).__name__ in _READY_MADE_OPS})
        if used:
            raise CheckFailure(
                f"{text} uses the engine's ready-made {', '.join(used)}.\n  Hint: that is what this "
                "exercise builds: write it from max, exp, sum and log, so you see why it is stable."
            )
    if not loss.requires_grad:
        raise CheckFailure(
            f"The loss for {description} does not require grad, so backward() cannot reach the "
            "logits.\n  Hint: compute it from the logits with Tensor operations; .data and NumPy "
            "functions cut the graph."
        )
    _call(f"loss.backward() for {description}", loss.backward)
    if logits_tensor.grad is None:
        raise CheckFailure(f"After loss.backward() for {description}, logits.grad is None.")
    if unstable_hint is None:  # ordinary logits: the ground truth is the numeric gradient

        def loss_of(values: np.ndarray) -> float:
            with no_grad():
                return float(fn(Tensor(values), labels.copy()).data.reshape(()))

        (expected_grad,) = numeric_grad(loss_of, logits)
        source = "central differences"
    else:  # in the thousands the reference, (softmax - onehot) / N, is the ground truth
        expected_grad = reference_logits.grad
        source = "(softmax(logits) - onehot(labels)) / N"
    assert_close(
        logits_tensor.grad, expected_grad,
        f"The gradient of the loss with respect to the logits for {description} (expected from {source})",
        hint=None if np.all(np.isfinite(logits_tensor.grad)) else unstable_hint,
    )


def check_cross_entropy(fn: Callable[..., Any], *, shapes: Sequence[tuple[int, int]] = ((4, 3), (6, 10)),
                        seed: int = 0, from_scratch: bool = False) -> None:
    """Check ``fn(logits, labels)``: the mean softmax cross-entropy as a one-element Tensor.

    ``logits`` is a Tensor of shape ``(N, C)``, ``labels`` an int64 array of shape ``(N,)``. For
    random logits of each shape in ``shapes`` the loss must equal
    :func:`autodiff_ref.nn.cross_entropy` and its gradient the numeric one; for logits around
    +1000 and -1000, rows on very different scales, a true class 1000 below the best, and a row
    from -1000 to +1000 (where only its maximum is a safe shift), the loss and gradient must stay
    finite and right. With ``from_scratch`` the graph of the loss may not use the engine's
    ``LogSumExp``, ``LogSoftmax`` or ``CrossEntropy``.
    """
    with own_work("cross_entropy", fn, nn.cross_entropy):
        rng = np.random.default_rng(seed)
        for n_rows, n_classes in shapes:
            logits = rng.normal(scale=2.0, size=(n_rows, n_classes))
            labels = rng.integers(0, n_classes, size=n_rows)
            description = f"random logits of shape ({n_rows}, {n_classes})"
            _check_cross_entropy_case(fn, logits, labels, description, None, from_scratch)
        for description, logits, labels, hint in _stability_cases(rng):
            _check_cross_entropy_case(fn, logits, labels, description, hint, from_scratch)


# --- optimizers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """Parameters with starting values, and the gradients each step hands them (None: no gradient)."""

    description: str
    settings: dict[str, Any]
    start: tuple[np.ndarray, ...]
    grads: tuple[tuple[np.ndarray | None, ...], ...]

    def call_text(self, name: str) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings.items())
        return f"{name}(params, {settings})"


def _scalar_run(settings: dict[str, Any], grads: Sequence[float], start: float = 1.0) -> _Run:
    """A run on one parameter holding ``start``, with one gradient per step."""
    shown = ", ".join(f"{g:g}" for g in grads)
    steps = "one step" if len(grads) == 1 else f"{len(grads)} steps"
    return _Run(
        f"{steps} on a parameter holding {start:g} with gradient{'s' if len(grads) > 1 else ''} {shown}",
        settings, (np.array([start]),), tuple((np.array([g]),) for g in grads),
    )


def _array_run(settings: dict[str, Any], rng: np.random.Generator, missing: tuple[int, int]) -> _Run:
    """Two parameters of shapes (2, 3) and (4,), four steps of random gradients.

    ``missing`` = (step, parameter) whose gradient is None in that step (the loss did not reach it).
    """
    shapes = ((2, 3), (4,))
    start = tuple(random_array(shape, rng) for shape in shapes)
    grads = tuple(
        tuple(None if (step, i) == missing else random_array(shape, rng) for i, shape in enumerate(shapes))
        for step in range(4)
    )
    return _Run(
        f"4 steps on two parameters of shapes (2, 3) and (4,), parameter {missing[1]} getting no "
        f"gradient (grad None) in step {missing[0] + 1}", settings, start, grads,
    )


def _run_learner(OptimizerClass: type, name: str, run: _Run) -> list[list[np.ndarray]]:
    """The learner's parameter values after each step of ``run``."""
    params = [nn.Parameter(value.copy()) for value in run.start]
    optimizer = _call(f"{run.call_text(name)}", OptimizerClass, params, **run.settings)
    after = []
    for step, grads in enumerate(run.grads, start=1):
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.copy()
        _call(
            f"step {step} of {name}: {run.description}", optimizer.step,
            hint="skip a parameter whose .grad is None: the loss did not reach it."
            if any(g is None for g in grads) else None,
        )
        for i, p in enumerate(params):
            if not isinstance(p.data, np.ndarray) or p.data.shape != run.start[i].shape:
                label = f"parameter {i}'s" if len(params) > 1 else "the parameter's"
                raise CheckFailure(
                    f"After step {step} of {name} ({run.description}), {label} .data is "
                    f"{type(p.data).__name__} of shape {np.shape(p.data)}, not an array of shape "
                    f"{run.start[i].shape}.\n  Hint: update the array in place with NumPy arithmetic "
                    "on p.data and p.grad: p.data -= ..."
                )
        after.append([p.data.copy() for p in params])
    return after


_NOT_WRITTEN_BACK = ("step() did not change the parameter. Update its array in place, p.data -= ...; "
                     "`p = p - ...` only points the local name p at a new Tensor.")


def _compare_runs(name: str, run: _Run, got: list[list[np.ndarray]], expected: list[list[np.ndarray]],
                  mistakes: dict[str, tuple[list[list[np.ndarray]], str]], unchanged_hint: str) -> None:
    """Report the first step and parameter where the learner's run leaves the expected one.

    A parameter that did not move although it had a gradient gets ``unchanged_hint``; otherwise
    the hint of the first mistake whose run reaches the learner's value at that step.
    """
    for step, (got_step, expected_step) in enumerate(zip(got, expected), start=1):
        for i, (got_value, expected_value) in enumerate(zip(got_step, expected_step)):
            if np.allclose(got_value, expected_value, rtol=1e-5, atol=1e-6):
                continue
            before = run.start[i] if step == 1 else got[step - 2][i]
            if np.array_equal(got_value, before) and run.grads[step - 1][i] is not None:
                hint = unchanged_hint
            else:
                hint = _matching_hint(got_value, [
                    (values[step - 1][i], mistake_hint) for values, mistake_hint in mistakes.values()
                ])
            label = f"parameter {i} " if len(got_step) > 1 else "the parameter "
            if got_value.size == 1:  # a one-number parameter: show the number, not element [0]
                got_value, expected_value = got_value.reshape(()), expected_value.reshape(())
            assert_close(
                got_value, expected_value,
                f"{run.call_text(name)}, {run.description}: {label}after step {step}", hint=hint,
            )


def _sgd_by_hand(run: _Run, mistake: str | None = None) -> list[list[np.ndarray]]:
    """The SGD update rule applied step by step; ``mistake`` names one usual slip to make."""
    lr = run.settings["lr"]
    momentum = run.settings.get("momentum", 0.0)
    decay = run.settings.get("weight_decay", 0.0)
    params = [value.copy() for value in run.start]
    velocities = [np.zeros_like(value) for value in run.start]
    after = []
    for grads in run.grads:
        for i, g in enumerate(grads):
            if g is None:
                if mistake != "none_as_zero":
                    continue
                g = np.zeros_like(params[i])
            p = params[i]
            if mistake == "forgotten_velocity":
                velocities[i] = np.zeros_like(p)
            decay_used = {"decay_sign": -decay, "no_decay": 0.0, "decay_after_momentum": 0.0}.get(mistake, decay)
            d = g + decay_used * p
            previous = velocities[i]
            if mistake == "dampened":
                velocities[i] = momentum * previous + (1 - momentum) * d
            else:
                velocities[i] = momentum * previous + d
            move = previous if mistake == "update_before_velocity" else velocities[i]
            if mistake == "decay_after_momentum":
                move = move + decay * p
            params[i] = p + lr * move if mistake == "ascent" else p - lr * move
        after.append([value.copy() for value in params])
    return after


_SGD_MISTAKES = {
    "ascent": "the parameter moved *up* the gradient: a step goes against it, p.data -= lr * v.",
    "forgotten_velocity": "each step used only the current gradient: the velocity must carry over "
                          "from step to step (keep it in self.velocities[i] and update it there).",
    "update_before_velocity": "momentum is applied in the wrong order: first update the velocity, "
                              "v = momentum * v + g, then move the parameter by lr * v with the *new* v.",
    "dampened": "v = momentum * v + (1 - momentum) * g is the damped form; this SGD uses "
                "v = momentum * v + g.",
    "decay_sign": "weight decay has the wrong sign: it adds weight_decay * p to the gradient, which "
                  "pulls every weight towards 0.",
    "no_decay": "weight_decay is ignored: add weight_decay * p.data to the gradient.",
    "decay_after_momentum": "add weight_decay * p to the gradient *before* the velocity update, so "
                            "that the decay goes through the momentum too.",
    "none_as_zero": "a parameter with grad None must not move at all (skip it): taken as a zero "
                    "gradient, weight decay and the velocity still move it.",
}


_SGD_UNCHANGED = (_NOT_WRITTEN_BACK + " Or the step moved by the velocity before updating it (v starts "
                  "at 0): first v = momentum * v + g, then p.data -= lr * v.")


def _sgd_runs(seed: int) -> list[_Run]:
    rng = np.random.default_rng(seed)
    return [
        _scalar_run({"lr": 0.1}, [0.5]),  # 1 - 0.1 * 0.5 = 0.95
        _scalar_run({"lr": 0.1, "momentum": 0.9}, [0.5, 0.5]),  # v = 0.5, 0.95; p = 0.95, 0.855
        _scalar_run({"lr": 0.1, "weight_decay": 0.1}, [0.5]),  # g = 0.5 + 0.1 * 1 = 0.6; p = 0.94
        _scalar_run({"lr": 0.1, "momentum": 0.5, "weight_decay": 0.2}, [1.0, -1.0, 0.5]),
        _array_run({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, rng, missing=(1, 1)),
    ]


def check_sgd(SGDClass: type, *, seed: int = 0) -> None:
    """Check ``SGDClass(params, lr, momentum=0.0, weight_decay=0.0).step()`` against the rule

    ``g = grad + weight_decay * p``, ``v = momentum * v + g`` (``v`` starts at 0),
    ``p = p - lr * v``, step by step: one step of plain SGD, two with momentum, one with weight
    decay, three with both, and four on two array parameters, one of which gets no gradient
    (``grad`` None, to be skipped) in one step. ``seed`` draws the array run.
    """
    with own_work("SGD", SGDClass, ReferenceSGD, methods=("step",)):
        for run in _sgd_runs(seed):
            got = _run_learner(SGDClass, "SGD", run)
            mistakes = {name: (_sgd_by_hand(run, name), hint) for name, hint in _SGD_MISTAKES.items()}
            _compare_runs("SGD", run, got, _sgd_by_hand(run), mistakes, _SGD_UNCHANGED)


def _adam_by_hand(run: _Run, mistake: str | None = None) -> list[list[np.ndarray]]:
    """The Adam update rule applied step by step; ``mistake`` names one usual slip to make."""
    lr = run.settings.get("lr", 1e-3)
    beta1, beta2 = (0.9, 0.999) if mistake == "default_betas" else run.settings.get("betas", (0.9, 0.999))
    eps = run.settings.get("eps", 1e-8)
    params = [value.copy() for value in run.start]
    means = [np.zeros_like(value) for value in run.start]
    squares = [np.zeros_like(value) for value in run.start]
    counts = [0] * len(params)
    after = []
    for step, grads in enumerate(run.grads, start=1):
        for i, g in enumerate(grads):
            if g is None:
                if mistake != "none_as_zero":
                    continue
                g = np.zeros_like(params[i])
            counts[i] += 1
            t = {"global_count": step, "count_stuck": 1, "count_from_zero": counts[i] - 1}.get(
                mistake, counts[i]
            )
            if mistake == "forgotten_state":
                means[i], squares[i] = np.zeros_like(g), np.zeros_like(g)
            means[i] = beta1 * means[i] + (1 - beta1) * g
            squares[i] = beta2 * squares[i] + (1 - beta2) * (g if mistake == "not_squared" else g * g)
            with np.errstate(divide="ignore", invalid="ignore"):
                m_hat = means[i] / (1 if mistake in ("no_correction", "no_mean_correction") else 1 - beta1**t)
                v_hat = squares[i] / (1 if mistake in ("no_correction", "no_square_correction") else 1 - beta2**t)
                denominator = {
                    "eps_inside_sqrt": np.sqrt(v_hat + eps),
                    "no_sqrt": v_hat + eps,
                    "no_eps": np.sqrt(v_hat),
                    "eps_on_v": (np.sqrt(squares[i]) + eps) / np.sqrt(1 - beta2**t),
                }.get(mistake, np.sqrt(v_hat) + eps)
                move = lr * m_hat / denominator
            params[i] = params[i] + move if mistake == "ascent" else params[i] - move
        after.append([value.copy() for value in params])
    return after


_ADAM_MISTAKES = {
    "no_correction": "the bias correction is missing: m and v start at 0, so early on they are too "
                     "small; divide m by (1 - beta1**t) and v by (1 - beta2**t). Without it the "
                     "first step is (1 - beta1) / sqrt(1 - beta2) = 3.16 times too large.",
    "no_mean_correction": "m is not bias-corrected: m_hat = m / (1 - beta1**t).",
    "no_square_correction": "v is not bias-corrected: v_hat = v / (1 - beta2**t).",
    "count_from_zero": "the step count t is 0 in the first correction, and 1 - beta**0 = 0: add 1 to "
                       "t before using it, so that the first step has t = 1.",
    "count_stuck": "the step count t must grow by one every step; the bias correction used t = 1 "
                   "each time.",
    "global_count": "count steps per parameter (self.steps[i]): a parameter whose grad was None was "
                    "not updated, so its t must not grow either.",
    "none_as_zero": "a parameter with grad None must not move at all (skip it, and leave its m, v and "
                    "t as they are): taken as a zero gradient, the m of earlier steps still moves it.",
    "forgotten_state": "m and v must carry over from step to step (keep them in self.means[i] and "
                       "self.squares[i]); each step started from 0 again.",
    "not_squared": "v is the running mean of the *squared* gradients: (1 - beta2) * g**2.",
    "no_sqrt": "divide by the square root of v_hat: lr * m_hat / (sqrt(v_hat) + eps).",
    "eps_inside_sqrt": "add eps after the square root, sqrt(v_hat) + eps, not inside it.",
    "no_eps": "eps is missing: divide by sqrt(v_hat) + eps.",
    "eps_on_v": "eps was added to sqrt(v) before the bias correction (as in lr_t * m / (sqrt(v) + eps)): "
                "add eps to sqrt(v_hat), the bias-corrected v.",
    "default_betas": "use the betas passed to Adam (self.beta1, self.beta2), not the defaults 0.9 and 0.999.",
    "ascent": "the parameter moved *up* the gradient: p.data -= lr * m_hat / (sqrt(v_hat) + eps).",
}


def _adam_runs(seed: int) -> list[_Run]:
    rng = np.random.default_rng(seed)
    return [
        # m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25: p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9
        _scalar_run({"lr": 0.1}, [0.5]),
        _scalar_run({"lr": 0.1}, [0.5, -0.25, 1.0]),
        # A tiny gradient, where eps matters: p = 1 - 1e-10 / (1e-10 + 1e-8) = 0.990099
        _scalar_run({"lr": 1.0, "eps": 1e-8}, [1e-10]),
        # No gradient after some steps: a zero in its place would still move the parameter.
        _array_run({"lr": 0.01}, rng, missing=(2, 0)),
        # No gradient in the first step: the count t must be the parameter's own.
        _array_run({"lr": 0.01, "betas": (0.8, 0.99)}, rng, missing=(0, 1)),
    ]


def check_adam(AdamClass: type, *, seed: int = 0) -> None:
    """Check ``AdamClass(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8).step()`` against the rule

    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g**2``,
    ``p = p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1**t)``,
    ``v_hat = v / (1 - beta2**t)`` and ``t`` the parameter's own step count, step by step: one
    step, three steps, a tiny gradient (where eps matters), and twice four steps on two array
    parameters, one of which gets no gradient (``grad`` None) in one step: the third, then the
    first (with other betas).
    """
    with own_work("Adam", AdamClass, ReferenceAdam, methods=("step",)):
        for run in _adam_runs(seed):
            got = _run_learner(AdamClass, "Adam", run)
            mistakes = {name: (_adam_by_hand(run, name), hint) for name, hint in _ADAM_MISTAKES.items()}
            _compare_runs("Adam", run, got, _adam_by_hand(run), mistakes, _NOT_WRITTEN_BACK)


# --- the trained model -----------------------------------------------------------------------------


def _check_history(history: Any, model_accuracy: float) -> None:
    """A per-epoch record with finite losses that fall, and a last test accuracy equal to the model's."""
    if not isinstance(history, dict):
        raise CheckFailure(
            f"history should be a dict of per-epoch lists, but it is a {type(history).__name__}."
        )
    missing = [key for key in ("train_loss", "test_accuracy") if key not in history]
    if missing:
        raise CheckFailure(
            f"history has no {missing}; it has the keys {sorted(history)}.\n  Hint: append each "
            "epoch's mean training loss to history['train_loss'] and the test accuracy to "
            "history['test_accuracy']."
        )
    lengths = {key: len(history[key]) for key in ("epoch", "train_loss", "test_accuracy") if key in history}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise CheckFailure(
            f"history should hold one entry per epoch under each key, but the lengths are {lengths}."
        )
    losses = np.asarray(history["train_loss"], dtype=float)
    accuracies = np.asarray(history["test_accuracy"], dtype=float)
    if not np.all(np.isfinite(losses)):
        raise CheckFailure(
            f"history['train_loss'] contains nan or inf: {losses.tolist()}.\n  Hint: training "
            "diverged; try a smaller learning rate."
        )
    if len(losses) > 1 and not losses[-1] < losses[0]:
        raise CheckFailure(
            f"The training loss did not go down: {losses[0]:.4g} after the first epoch, "
            f"{losses[-1]:.4g} after the last.\n  Hint: each batch needs zero_grad(), the loss, "
            "backward() and step(), in that order."
        )
    if np.any((accuracies < 0) | (accuracies > 1)):
        raise CheckFailure(
            f"history['test_accuracy'] holds {accuracies.tolist()}; accuracies are fractions between "
            "0 and 1 (0.97, not 97)."
        )
    if abs(accuracies[-1] - model_accuracy) > 1e-9:
        raise CheckFailure(
            f"The last entry of history['test_accuracy'] is {accuracies[-1]:.4f}, but the trained "
            f"model classifies {model_accuracy:.4f} of the test set correctly.\n  Hint: after each "
            "epoch, record the accuracy of the model as it is then, on the test images."
        )


def check_training_result(model: Callable[[Any], Any], X_test: np.ndarray, y_test: np.ndarray,
                          min_accuracy: float = 0.95, *, history: Any = None) -> float:
    """Check that ``model`` classifies at least ``min_accuracy`` of ``(X_test, y_test)`` correctly.

    ``model(X_test)`` must return scores of shape ``(N, C)``; the predicted class is the largest.
    With ``history`` (the dict the training loop returns) the per-epoch ``train_loss`` must be
    finite and fall, and the last ``test_accuracy`` must be the model's. Returns the accuracy.
    """
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    with no_grad():
        scores = _call(f"model(X_test) with X_test of shape {X_test.shape}", model, X_test)
    scores = np.asarray(scores.data if isinstance(scores, Tensor) else scores, dtype=float)
    n_classes = int(y_test.max()) + 1
    if scores.ndim != 2 or scores.shape[0] != len(y_test) or scores.shape[1] < n_classes:
        raise CheckFailure(
            f"model(X_test) returned scores of shape {scores.shape}; expected ({len(y_test)}, "
            f"{n_classes}): one row per test image, one score per class."
        )
    if not np.all(np.isfinite(scores)):
        raise CheckFailure(
            "The model's scores contain nan or inf: training diverged.\n  Hint: lower the learning "
            "rate, and watch the loss curve; it should fall from the first epoch on."
        )
    correct = int(np.sum(scores.argmax(axis=1) == y_test))
    accuracy = correct / len(y_test)
    if history is not None:
        _check_history(history, accuracy)
    if accuracy < min_accuracy:
        if accuracy < 2.0 / n_classes:
            hint = (
                f"that is about chance ({1 / n_classes:.0%} for {n_classes} classes): the model has not "
                "learned. If train() is not written yet, finish it and run the training cell. "
                "Otherwise check that every batch runs optimizer.zero_grad(), the loss, "
                "loss.backward() and optimizer.step(), and that the optimizer got model.parameters()."
            )
        else:
            hint = (
                "the model learned, but not enough. Check that every epoch goes through all training "
                "batches, and that the loss curve falls steadily (too small a learning rate crawls, "
                "too large a one jumps about); then train for more epochs."
            )
        raise CheckFailure(
            f"The test accuracy is {accuracy:.1%} ({correct} of {len(y_test)} test images), but it "
            f"should be at least {min_accuracy:.0%}.\n  Hint: {hint}"
        )
    return accuracy


# --- the training loop -----------------------------------------------------------------------------


class _LoopRecorder:
    """What a training loop did, seen from the model, the loss function and the optimizer."""

    def __init__(self) -> None:
        self.cleared = True  # fresh parameters have no gradients
        self.steps = 0
        self.batch_labels: list[np.ndarray] = []
        self.batch_losses: list[float] = []


class _RecordedModel(nn.Module):
    """A softmax-regression model (one Linear layer) that reports zero_grad() to the recorder."""

    def __init__(self, n_features: int, n_classes: int, recorder: _LoopRecorder, seed: int) -> None:
        self.layer = nn.Linear(n_features, n_classes, rng=seed)
        self.recorder = recorder

    def forward(self, x: Any) -> Tensor:
        return self.layer(x)

    def zero_grad(self) -> None:
        super().zero_grad()
        self.recorder.cleared = True


class _RecordedSGD(ReferenceSGD):
    """The reference SGD, refusing a step on gradients that were never cleared or never computed."""

    def __init__(self, params: Any, recorder: _LoopRecorder) -> None:
        super().__init__(params, lr=0.1)
        self.recorder = recorder

    def zero_grad(self) -> None:
        super().zero_grad()
        self.recorder.cleared = True

    def step(self) -> None:
        recorder = self.recorder
        batch = recorder.steps + 1
        if not recorder.cleared:
            raise CheckFailure(
                f"optimizer.step() for batch {batch} ran without a zero_grad() since the step before.\n"
                "  Hint: gradients add up across backward() calls, so this step used the sum of every "
                "gradient so far. Call optimizer.zero_grad() once per batch, before loss.backward()."
            )
        if all(p.grad is None for p in self.params):
            raise CheckFailure(
                f"At optimizer.step() for batch {batch}, no parameter has a gradient.\n  Hint: the "
                "order per batch is zero_grad(), loss, loss.backward(), step(); a zero_grad() between "
                "backward() and step() throws the gradients away."
            )
        recorder.cleared = False
        recorder.steps += 1
        super().step()


def _check_plain_numbers(history: dict[str, Any]) -> None:
    """Every recorded entry is a plain number, not a Tensor: a Tensor in the history keeps the graph
    it came from alive, and the training cell cannot print it with a number format."""
    for key in ("train_loss", "train_accuracy", "test_accuracy"):
        for epoch, value in enumerate(history.get(key, ())):
            if isinstance(value, Tensor):
                raise CheckFailure(
                    f"history[{key!r}][{epoch}] is a Tensor, not a plain number.\n  Hint: "
                    + ("use loss.item(), a plain number, to add up the losses; adding up the loss Tensors "
                       "themselves builds one graph through every batch of the epoch and keeps it alive."
                       if key == "train_loss" else
                       "record plain numbers, as accuracy(model(X), y) returns them; .item() turns a "
                       "one-number Tensor into one.")
                )


def _train_loss_hint(got: Any, losses: np.ndarray, sizes: np.ndarray, batch_size: int) -> str:
    """What went wrong in a wrong mean of one epoch's batch ``losses`` (batches of ``sizes``)."""
    by_batch_size = float(np.sum(losses) * batch_size / np.sum(sizes))
    return _matching_hint(got, [
        (by_batch_size,
         "each batch loss was weighted by the batch_size argument, but the epoch's last batch holds "
         f"only {sizes[-1]} examples: weight each batch loss by len(y), the size of that batch."),
        (float(np.mean(losses)),
         "that is the plain mean of the batch losses, in which the epoch's last batch, of only "
         f"{sizes[-1]} examples, counts as much as a full one. Weight each batch loss by len(y), the "
         "size of that batch, and divide the sum by the number of examples: the mean loss per "
         "example, as the exercise asks."),
    ]) or ("add up loss.item() times len(y), the size of this batch (the last one is smaller than "
           "batch_size), over the epoch's batches, then divide by the number of examples.")


def check_training_loop(train_fn: Callable[..., Any], data: Any, *, epochs: int = 2, batch_size: int = 100,
                        seed: int = 0) -> None:
    """Check ``train_fn(model, optimizer, loss_fn, data, epochs=, batch_size=, rng=)`` on a small model.

    ``data`` has ``X_train, y_train, X_test, y_test`` (a :class:`autodiff_ref.data.Digits`). The
    loop must take one optimizer step per mini-batch with the gradients cleared in between, see
    every training example once per epoch in a new random order drawn from ``rng``, and return a
    history with one plain number (not a Tensor) per epoch: ``train_loss`` the mean batch loss of
    the epoch, each batch's loss weighted by its size ``len(y)`` (the mean loss per example),
    ``test_accuracy`` (and ``train_accuracy`` if
    recorded) the model's accuracy at the end of the epoch.
    """
    X_train, y_train = np.asarray(data.X_train), np.asarray(data.y_train)
    n_classes = int(max(y_train.max(), np.max(data.y_test))) + 1
    recorder = _LoopRecorder()
    model = _RecordedModel(X_train.shape[1], n_classes, recorder, seed)
    optimizer = _RecordedSGD(model.parameters(), recorder)

    def loss_fn(logits: Tensor, labels: Any) -> Tensor:
        loss = nn.cross_entropy(logits, labels)
        recorder.batch_labels.append(np.array(labels))
        recorder.batch_losses.append(loss.item())
        return loss

    call = f"train(model, optimizer, loss_fn, data, epochs={epochs}, batch_size={batch_size}, rng=...)"
    history = _call(call, train_fn, model, optimizer, loss_fn, data, epochs=epochs, batch_size=batch_size,
                    rng=np.random.default_rng(seed))

    batches_per_epoch = -(-len(X_train) // batch_size)
    expected_steps = epochs * batches_per_epoch
    if recorder.steps != expected_steps or len(recorder.batch_losses) != expected_steps:
        raise CheckFailure(
            f"{call} computed the loss {len(recorder.batch_losses)} times and called optimizer.step() "
            f"{recorder.steps} times; with {len(X_train)} training examples in batches of "
            f"{batch_size} that should be {batches_per_epoch} per epoch, {expected_steps} in all.\n"
            "  Hint: each epoch loops over batches(data.X_train, data.y_train, batch_size, seed=rng), "
            "and every batch, the last smaller one too, gets zero_grad(), loss, backward() and step()."
        )

    def of_epoch(items: list[Any], epoch: int) -> list[Any]:
        """The entries recorded for the batches of ``epoch`` (counted from 0)."""
        return items[epoch * batches_per_epoch:(epoch + 1) * batches_per_epoch]

    epoch_labels = [np.concatenate(of_epoch(recorder.batch_labels, e)) for e in range(epochs)]
    for epoch, labels in enumerate(epoch_labels, start=1):
        if not np.array_equal(np.sort(labels), np.sort(y_train)):
            raise CheckFailure(
                f"In epoch {epoch} the loss saw other labels than the training set's: an epoch should use "
                "every training example exactly once.\n  Hint: take the batches from data.X_train and "
                "data.y_train, with batches(...) as shown."
            )
    if epochs > 1 and all(np.array_equal(labels, epoch_labels[0]) for labels in epoch_labels[1:]):
        unshuffled = np.array_equal(epoch_labels[0], y_train)
        raise CheckFailure(
            "Every epoch visited the training examples in the same order"
            + (" (the stored order)" if unshuffled else "") + ".\n"
            "  Hint: draw a new order each epoch: pass the Generator itself, batches(..., seed=rng); "
            "an integer seed repeats the same order every time."
        )

    if not isinstance(history, dict):
        raise CheckFailure(f"{call} returned {type(history).__name__}; it should return the history dict.")
    for key in ("train_loss", "test_accuracy"):
        if key not in history:
            raise CheckFailure(f"The history has no key {key!r}; it has {sorted(history)}.")
    for key in ("epoch", "train_loss", "train_accuracy", "test_accuracy"):
        if key in history and len(history[key]) != epochs:
            raise CheckFailure(
                f"history[{key!r}] has {len(history[key])} entries after {epochs} epochs; it needs one per "
                "epoch (append after each epoch's batches)."
            )
    if "epoch" in history and list(history["epoch"]) != list(range(1, epochs + 1)):
        raise CheckFailure(f"history['epoch'] is {list(history['epoch'])}; it should count the epochs from 1.")
    _check_plain_numbers(history)
    for epoch in range(epochs):
        losses = np.array(of_epoch(recorder.batch_losses, epoch))
        sizes = np.array([len(labels) for labels in of_epoch(recorder.batch_labels, epoch)])
        weighted = float(np.sum(losses * sizes) / np.sum(sizes))
        got = history["train_loss"][epoch]
        if not np.isclose(got, weighted, rtol=1e-6, atol=1e-9):
            raise CheckFailure(
                f"history['train_loss'][{epoch}] is {got!r}, but the mean loss per example of epoch "
                f"{epoch + 1} (each batch's loss weighted by its size, len(y)) is {weighted:.6g}.\n"
                f"  Hint: {_train_loss_hint(got, losses, sizes, batch_size)}"
            )
    with no_grad():
        for key, X, y in (("test_accuracy", data.X_test, data.y_test), ("train_accuracy", X_train, y_train)):
            if key in history:
                model_accuracy = nn.accuracy(model(np.asarray(X)), np.asarray(y))
                if not np.isclose(history[key][-1], model_accuracy, rtol=0, atol=1e-9):
                    raise CheckFailure(
                        f"history[{key!r}][-1] is {history[key][-1]!r}, but the trained model's accuracy on "
                        f"{'the test set' if key == 'test_accuracy' else 'the training set'} is "
                        f"{model_accuracy:.6g}.\n  Hint: after each epoch, compute accuracy(model(X), y) "
                        "with the model as it is then."
                    )


# --- the learner's pieces, or the reference ---------------------------------------------------------


def linear_or_reference(LinearClass: type) -> type:
    """``LinearClass`` if it passes :func:`check_linear`, else :class:`autodiff_ref.nn.Linear`."""
    return yours_or_reference("Linear", LinearClass, lambda: check_linear(LinearClass), nn.Linear, "autodiff_ref.nn.Linear")


def cross_entropy_or_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` if it passes :func:`check_cross_entropy`, else :func:`autodiff_ref.nn.cross_entropy`."""
    return yours_or_reference(
        "cross_entropy", fn, lambda: check_cross_entropy(fn), nn.cross_entropy, "autodiff_ref.nn.cross_entropy"
    )


def sgd_or_reference(SGDClass: type) -> type:
    """``SGDClass`` if it passes :func:`check_sgd`, else :class:`autodiff_ref.optim.SGD`."""
    return yours_or_reference("SGD", SGDClass, lambda: check_sgd(SGDClass), ReferenceSGD, "autodiff_ref.optim.SGD")


def adam_or_reference(AdamClass: type) -> type:
    """``AdamClass`` if it passes :func:`check_adam`, else :class:`autodiff_ref.optim.Adam`."""
    return yours_or_reference("Adam", AdamClass, lambda: check_adam(AdamClass), ReferenceAdam, "autodiff_ref.optim.Adam")
