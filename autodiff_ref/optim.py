"""Optimizers: turn the gradients left by ``backward()`` into parameter updates.

Each optimizer keeps a list of parameters and, for each of them, whatever state its rule needs
(a velocity, running moments). ``step()`` updates every parameter's ``.data`` in place with NumPy
arithmetic, so no graph is recorded; a parameter whose ``.grad`` is None (the loss did not reach
it) is left alone and its state does not move.

:class:`SGD` (momentum, Nesterov), :class:`Adam` and :class:`AdamW`; the schedules
:class:`StepLR` and :class:`CosineAnnealingLR` set an optimizer's ``lr`` epoch by epoch. Each
has ``state_dict()``/``load_state_dict()``, which :func:`autodiff_ref.nn.save` writes to a file.

Typical loop::

    optimizer = Adam(model.parameters(), lr=1e-3)
    for X, y in batches(...):
        optimizer.zero_grad()
        loss = cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Mapping

import numpy as np

from .nn import Module, _check_positive_int, _check_state_names
from .tensor import Tensor

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR", "clip_grad_norm",
]


class Optimizer:
    """What every optimizer shares: checking the parameters, ``zero_grad``, and saving its state."""

    #: The attributes that hold one entry per parameter (a velocity, a moment, a step count):
    #: what :meth:`state_dict` saves besides ``lr``.
    per_parameter_state: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__} takes an iterable of parameters, got a single Tensor; "
                "wrap it in a list: [tensor]"
            )
        if isinstance(params, Module):
            raise TypeError(
                f"{type(self).__name__} takes the parameters, got the {type(params).__name__} "
                "module itself; pass model.parameters()"
            )
        if isinstance(params, Mapping):  # iterating a dict would give its keys, the names
            raise TypeError(
                f"{type(self).__name__} takes an iterable of parameters, got a {type(params).__name__}; "
                "pass its .values()"
            )
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list: nothing to optimize (pass "
                "model.parameters(); a generator can be consumed only once)"
            )
        seen: set[int] = set()
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor; "
                    "optimizers update nn.Parameter (or Tensor(..., requires_grad=True)) objects"
                )
            if not p.requires_grad or p.op is not None:
                if p.op is not None:
                    made_by = f"the output of {type(p.op).__name__}"
                else:
                    made_by = "a Tensor without requires_grad"
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} (shape {p.shape}) is {made_by}; only leaf "
                    "tensors that require grad can be learned: use nn.Parameter"
                )
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) appears twice in the list")
            seen.add(id(p))
        _check_number(self, "lr", lr)
        if not lr > 0:
            raise ValueError(f"{type(self).__name__} needs a positive learning rate, got lr={lr!r}")
        self.lr = lr

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None before the next ``backward()``."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    def state_dict(self) -> dict[str, np.ndarray]:
        """``lr`` and a copy of each per-parameter state (``"means.0"``, ``"steps.3"``), as arrays.

        Plain arrays, so ``np.savez`` stores them without pickle (see :func:`autodiff_ref.nn.save`).
        The settings given to the constructor (momentum, betas, ...) are not included: build the
        optimizer the same way before loading.
        """
        state = {"lr": np.array(self.lr)}
        for name in self.per_parameter_state:
            for i, value in enumerate(getattr(self, name) or ()):
                state[f"{name}.{i}"] = np.array(value)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take ``lr`` and every per-parameter state from ``state`` (as :meth:`state_dict` made it)."""
        current = self.state_dict()
        _check_state_names(type(self).__name__, set(current), set(state))
        for key, value in current.items():
            if np.shape(state[key]) != value.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape {np.shape(state[key])} in the "
                    f"state but {value.shape} here; was it saved for other parameters?"
                )
        self.lr = float(state["lr"])
        for name in self.per_parameter_state:
            values = getattr(self, name)
            for i, value in enumerate(values or ()):
                saved = np.asarray(state[f"{name}.{i}"])
                values[i] = saved.astype(value.dtype) if isinstance(value, np.ndarray) else type(value)(saved)

    def _checked_grad(self, i: int) -> np.ndarray:
        """Parameter ``i``'s ``.grad``, when the step cannot simply use it: explain what is wrong.

        A ``.grad`` set by hand to something other than an array of the parameter's shape
        (``p.data -= lr * g`` would fail on a Tensor with a message about ufuncs, and would
        silently broadcast a gradient of shape ``(3,)`` over a parameter of shape ``(2, 3)``), or a
        parameter that a recorded op still holds for its backward (read-only until that backward
        runs: NumPy's own message would not say why).
        """
        p = self.params[i]
        if not p._data.flags.writeable:
            keeper = type(p._saved_by).__name__ if p._saved_by is not None else "an op"
            raise ValueError(
                f"{type(self).__name__}: parameter {i} (shape {p.shape}) is read-only: {keeper} in a "
                "forward pass recorded since the last backward() keeps it for its backward, which "
                "would then be wrong. Call backward() on that loss before step(), or run forward "
                "passes that only look (accuracy, a validation loss) under no_grad()"
            )
        if not isinstance(p.grad, np.ndarray):
            raise TypeError(
                f"{type(self).__name__}: parameter {i} (shape {p.shape}) has a .grad that is a "
                f"{type(p.grad).__name__}; .grad holds a NumPy array (or None), as backward() leaves it"
            )
        if p.grad.shape != p._data.shape:
            raise ValueError(
                f"{type(self).__name__}: parameter {i} has shape {p._data.shape} but its .grad has "
                f"shape {p.grad.shape}; a gradient has the shape of its parameter"
            )
        return p.grad


def _check_number(owner: Any, name: str, value: Any) -> None:
    """A setting must be a real number: a string such as "0.1" would fail later, less clearly."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{type(owner).__name__} needs {name} to be a number, got {type(value).__name__} {value!r}"
        )


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (plain or Nesterov) and weight decay.

    For each parameter ``p`` with gradient ``g``, per step::

        g = g + weight_decay * p          # L2 penalty (weight_decay / 2) * |p|^2 added to the loss
        v = momentum * v + g              # velocity, starts at 0 (skipped when momentum == 0)
        p = p - lr * v                    # or, with nesterov=True: p - lr * (g + momentum * v)

    Momentum averages gradients over roughly ``1 / (1 - momentum)`` steps, which damps the
    zig-zag across steep directions and speeds travel along shallow ones. Nesterov's variant
    steps with the gradient plus the velocity it is about to have: a look ahead along the path.
    """

    per_parameter_state = ("velocities",)

    def __init__(
        self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        _check_number(self, "momentum", momentum)
        _check_number(self, "weight_decay", weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD needs 0 <= momentum < 1, got momentum={momentum!r}")
        if not weight_decay >= 0:
            raise ValueError(f"SGD needs weight_decay >= 0, got weight_decay={weight_decay!r}")
        if nesterov and not momentum:
            raise ValueError("SGD with nesterov=True needs a momentum > 0: Nesterov is a kind of momentum")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, bool(nesterov)
        self.velocities = [np.zeros_like(p._data) for p in self.params] if momentum else None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if type(g) is not np.ndarray or g.shape != p._data.shape or not p._data.flags.writeable:
                g = self._checked_grad(i)
            if self.weight_decay:
                g = g + self.weight_decay * p._data
            if self.velocities is not None:
                velocity = self.velocities[i]
                velocity *= self.momentum
                velocity += g
                g = g + self.momentum * velocity if self.nesterov else velocity
            p._data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): a step per coordinate scaled by its recent gradient size.

    For each parameter ``p`` with gradient ``g``, at its step ``t = 1, 2, ...``::

        m = beta1 * m + (1 - beta1) * g           # running mean of gradients
        v = beta2 * v + (1 - beta2) * g**2        # running mean of squared gradients
        m_hat = m / (1 - beta1**t)                # bias correction: m and v start at 0,
        v_hat = v / (1 - beta2**t)                #   so early averages are too small
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    Each parameter counts its own steps, so one that gets no gradient for a while is corrected
    for the updates it actually received.
    """

    per_parameter_state = ("steps", "means", "squares")
    decoupled_weight_decay = 0.0  # AdamW's

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam needs betas as a pair (beta1, beta2), got betas={betas!r}")
        for name, value in (("betas[0]", betas[0]), ("betas[1]", betas[1]), ("eps", eps)):
            _check_number(self, name, value)
        beta1, beta2 = betas
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"Adam needs betas in [0, 1), got betas={betas!r}")
        if not eps > 0:
            raise ValueError(f"Adam needs eps > 0, got eps={eps!r}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.steps = [0] * len(self.params)
        self.means = [np.zeros_like(p._data) for p in self.params]
        self.squares = [np.zeros_like(p._data) for p in self.params]

    def step(self) -> None:
        beta1, beta2 = self.beta1, self.beta2
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if type(g) is not np.ndarray or g.shape != p._data.shape or not p._data.flags.writeable:
                g = self._checked_grad(i)
            if self.decoupled_weight_decay:
                p._data *= 1 - self.lr * self.decoupled_weight_decay
            self.steps[i] += 1
            t = self.steps[i]
            m, v = self.means[i], self.squares[i]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            # lr * m_hat / (sqrt(v_hat) + eps), with the two corrections folded into scalars.
            step_size = self.lr / (1 - beta1**t)
            denominator = np.sqrt(v / (1 - beta2**t))
            denominator += self.eps
            p._data -= step_size * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    Before each Adam step, ``p = p - lr * weight_decay * p``: the decay shrinks the weights
    directly instead of joining the gradient, where Adam's per-coordinate scaling would weaken it
    for exactly the coordinates with large gradients. The default ``weight_decay=0.01`` is
    PyTorch's.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr, betas, eps)
        _check_number(self, "weight_decay", weight_decay)
        if not weight_decay >= 0:
            raise ValueError(f"AdamW needs weight_decay >= 0, got weight_decay={weight_decay!r}")
        self.decoupled_weight_decay = weight_decay


class LRScheduler:
    """Sets ``optimizer.lr`` from the learning rate it started with, one :meth:`step` at a time.

    Call ``step()`` once per epoch (or per batch, if the schedule counts batches), after the
    optimizer's ``step()``. Subclasses say what the rate is after ``t`` steps in :meth:`rate_at`.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} takes an Optimizer, got a {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.steps_taken = 0

    def rate_at(self, t: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define rate_at()")

    def step(self) -> None:
        self.steps_taken += 1
        self.optimizer.lr = self.rate_at(self.steps_taken)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"base_lr": np.array(self.base_lr), "steps_taken": np.array(self.steps_taken)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_state_names(type(self).__name__, {"base_lr", "steps_taken"}, set(state))
        self.base_lr, self.steps_taken = float(state["base_lr"]), int(state["steps_taken"])


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``base_lr * gamma ** (t // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        _check_positive_int("StepLR", "step_size", step_size)
        _check_number(self, "gamma", gamma)
        self.step_size, self.gamma = int(step_size), gamma

    def rate_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``base_lr`` down to ``eta_min`` over ``T_max`` steps.

    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``: a large rate early, when
    the loss falls fast, and a gentle one at the end, where large steps would only bounce around
    the minimum. Past ``T_max`` the cosine rises again, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        super().__init__(optimizer)
        _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        _check_number(self, "eta_min", eta_min)
        self.T_max, self.eta_min = int(T_max), eta_min

    def rate_at(self, t: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale the gradients of ``params`` together, in place, so that their global norm is at
    most ``max_norm``; return the global norm they had before.

    The global norm is ``sqrt(sum over every parameter of sum(grad**2))``: all gradients seen as
    one long vector. When it exceeds ``max_norm`` every gradient is multiplied by the same factor
    ``max_norm / norm``, so the step keeps its direction and only gets shorter; below it nothing
    changes. Parameters whose ``.grad`` is None are skipped. Call it between ``backward()`` and
    ``optimizer.step()``.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not max_norm > 0:
        raise ValueError(f"clip_grad_norm needs a positive max_norm, got {max_norm!r}")
    grads = [p.grad for p in params if p.grad is not None]
    norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)))
    if norm > max_norm:
        for g in grads:
            g *= max_norm / norm
    return norm
