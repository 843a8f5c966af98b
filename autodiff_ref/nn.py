"""Neural-network building blocks on top of the tensor engine.

* :class:`Parameter` — a Tensor that a model learns; optimizers update exactly these.
* :class:`Module` — a piece of a model. It finds its parameters by looking at its own
  attributes (parameters, sub-modules, and lists or tuples of them), so a model is written as a
  plain class with ``__init__`` and ``forward``.
* Layers: :class:`Linear`, :class:`ReLU`, :class:`Tanh`, :class:`Sigmoid`, :class:`Sequential`.
* Losses and metrics: :func:`mse_loss`, :func:`cross_entropy`, :func:`accuracy`.

Shapes follow the batch-first convention: a batch of ``N`` examples with ``F`` features is an
array of shape ``(N, F)``.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .ops import LogSoftmax, affine, constant
from .tensor import Function, Tensor, is_grad_enabled

__all__ = [
    "Parameter",
    "Module",
    "Linear",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Sequential",
    "mse_loss",
    "cross_entropy",
    "accuracy",
    "CrossEntropy",
]


class Parameter(Tensor):
    """A learnable tensor: always a float leaf with ``requires_grad=True``.

    Being its own class lets a :class:`Module` tell the numbers it learns from every other
    tensor it happens to hold (a cached mask, a constant), and lets optimizers refuse anything
    else. Integer data becomes float64, like any Tensor.
    """

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self) -> str:
        return f"Parameter({np.array2string(self.data, separator=', ', prefix='Parameter(')})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and define
    ``forward``; calling the module calls ``forward``. Attributes are searched in the order they
    were set: a :class:`Parameter`, a ``Module``, or a list, tuple or dict of them (nested too;
    ``layers.0`` or ``blocks.encoder`` in the names). A parameter shared by two layers is listed
    once.
    """

    #: True while training, False after :meth:`eval`. A class default, so subclasses need not
    #: call ``super().__init__()``. No layer here acts on it; dropout-like layers would.
    training: bool = True

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted path, e.g. ``("layers.0.weight", Parameter)``."""
        seen: set[int] = set()
        for name, parameter in self._walk(prefix):
            if id(parameter) not in seen:
                seen.add(id(parameter))
                yield name, parameter

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter of this module and its sub-modules, each once."""
        for _, parameter in self.named_parameters():
            yield parameter

    def modules(self) -> Iterator[Module]:
        """This module and every sub-module below it, depth first."""
        yield self
        for _, value in self._children():
            if isinstance(value, Module):
                yield from value.modules()

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (``grad = None``).

        Gradients accumulate across ``backward()`` calls, so call this before each one.
        ``None`` rather than an array of zeros: nothing to allocate, and an optimizer can skip a
        parameter that the last loss did not reach.
        """
        for parameter in self.parameters():
            parameter.grad = None

    def train(self, mode: bool = True) -> Module:
        """Put this module and all its sub-modules in training mode (or evaluation if False)."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Put this module and all its sub-modules in evaluation mode."""
        return self.train(False)

    def _children(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for every attribute that is a Parameter or a Module, lists, tuples and
        dicts unpacked: layers kept in a dict must train too, not be skipped without a word."""
        for name, value in vars(self).items():
            yield from _unpacked(name, value)

    def _walk(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in self._children():
            if isinstance(value, Parameter):
                yield prefix + name, value
            else:
                yield from value._walk(f"{prefix}{name}.")

    def __repr__(self) -> str:
        children = [f"  ({name}): {value!r}".replace("\n", "\n  ")
                    for name, value in self._children() if isinstance(value, Module)]
        if not children:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"


def _unpacked(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (Parameter, Module)):
        yield name, value
    elif isinstance(value, (list, tuple, dict)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _unpacked(f"{name}.{key}", item)


class Linear(Module):
    """An affine layer: ``x @ weight + bias``.

    Shapes: input ``(..., in_features)``, ``weight`` ``(in_features, out_features)``, ``bias``
    ``(out_features,)``, output ``(..., out_features)``. The weight is stored input-major so the
    forward is a plain ``x @ W`` with no transpose.

    Initialisation (He/Kaiming uniform): every weight is drawn from ``U(-a, a)`` with
    ``a = sqrt(6 / in_features)``, which gives variance ``2 / in_features``. A ReLU zeroes half
    of its inputs, halving the second moment; the factor 2 makes up for it, so activations keep
    roughly the same scale layer after layer instead of shrinking or blowing up (He et al.,
    2015). ReLU networks are the ones this package trains; for tanh or sigmoid layers Glorot's
    ``sqrt(6 / (in + out))`` would be the matching choice. The bias starts at zero: the random
    weights already make units differ.

    ``rng`` is a ``numpy.random.Generator`` or an integer seed (``None``: fresh randomness).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        for what, size in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
                raise ValueError(f"Linear needs {what} to be a positive integer, got {size!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng(rng)
        bound = np.sqrt(6.0 / in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, size=(in_features, out_features)), dtype=dtype)
        self.bias = Parameter(np.zeros(out_features), dtype=dtype) if bias else None

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """``(..., in_features) -> (..., out_features)``."""
        shape = np.shape(x)
        if len(shape) == 0 or shape[-1] != self.in_features:
            got = f"{shape[-1]} features (input shape {shape})" if shape else "a scalar"
            raise ValueError(
                f"Linear expects inputs with {self.in_features} features on the last axis, got {got}"
            )
        return x @ self.weight if self.bias is None else affine(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


class ReLU(Module):
    """``max(x, 0)`` elementwise; any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    """``tanh(x)`` elementwise; any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise; any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) == c(b(a(x)))``."""

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, but argument {i} is {_what_instead(layer)}")
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):  # a run of layers is itself a network: model[:2](x)
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)


def _what_instead(layer: Any) -> str:
    """What was passed where a Module belongs, with the usual fix when there is one."""
    if isinstance(layer, type) and issubclass(layer, Module):
        return f"the class {layer.__name__} itself; make a layer of it: {layer.__name__}()"
    if isinstance(layer, (list, tuple)):
        return f"a {type(layer).__name__}; pass the layers one by one: Sequential(*layers)"
    return f"a {type(layer).__name__}"


# -- losses and metrics -------------------------------------------------------------------------
def mse_loss(pred: Tensor, target: Tensor | np.ndarray) -> Tensor:
    """Mean squared error ``mean((pred - target)**2)``: a scalar Tensor.

    ``pred`` and ``target`` must have the same shape: ``(N,)`` against ``(N, 1)`` would
    otherwise broadcast to ``(N, N)`` and silently compute something else.
    """
    if np.shape(pred) != np.shape(target):
        raise ValueError(
            f"mse_loss needs pred and target of the same shape, got {np.shape(pred)} and "
            f"{np.shape(target)}; reshape one of them"
        )
    if not isinstance(pred, Tensor) and not isinstance(target, Tensor):
        pred = Tensor(pred)  # two arrays would give a NumPy number, not the Tensor promised
    diff = pred - target
    return (diff * diff).mean()


_UNSIGNED = {size: np.dtype(f"u{size}") for size in (1, 2, 4, 8)}  # by item size in bytes


def _class_labels(labels: Any, n_rows: int, n_classes: int, caller: str) -> np.ndarray:
    """``labels`` as an integer array of shape ``(n_rows,)`` with values in ``[0, n_classes)``."""
    array = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if array.dtype.kind not in "iu":
        # Tensor([0, 2, 1]) holds float64 (integers become floats unless dtype says otherwise),
        # so labels that were integers can arrive as floats without the caller knowing.
        made_float = (" (a Tensor turns integers into float64: keep labels a NumPy integer array, "
                      "or pass dtype=np.int64)") if isinstance(labels, Tensor) else ""
        raise TypeError(
            f"{caller} needs integer class labels, got dtype {array.dtype}{made_float}; labels are "
            "class indices 0..C-1 (convert with .astype(np.int64) if they are whole numbers)"
        )
    if array.shape != (n_rows,):
        raise ValueError(
            f"{caller} needs labels of shape ({n_rows},), one class index per row of the logits, "
            f"got shape {array.shape}"
        )
    if not array.dtype.isnative:  # read from a big-endian file, say: the view below needs ours
        array = array.astype(array.dtype.newbyteorder("="))
    # One pass over the labels: seen as unsigned integers, negative labels become huge ones.
    if array.size and array.view(_UNSIGNED[array.itemsize]).max() >= n_classes:
        i = int(np.argmax((array < 0) | (array >= n_classes)))
        raise ValueError(
            f"{caller}: label {int(array[i])} at position {i} is out of range; with {n_classes} "
            f"classes (logits of shape ({n_rows}, {n_classes})) labels must be in 0..{n_classes - 1}"
        )
    return array


def _logits_shape(logits: Any, caller: str) -> tuple[int, int]:
    shape = np.shape(logits)
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"{caller} needs logits of shape (N, C) with N, C >= 1, got shape {shape}")
    return shape


class CrossEntropy(Function):
    """Mean cross-entropy of logits ``(N, C)`` against class labels ``(N,)``, as one op:
    ``-mean(log_softmax(logits)[i, labels[i]])``.

    Its gradient with respect to the logits is ``(softmax(logits) - onehot(labels)) / N`` times
    the incoming scalar ``g``. A plain backward pass takes the softmax from the log-probabilities
    the forward kept (one ``exp``). When the gradient is itself being differentiated (``grad`` of
    ``grad``), that saved array would be a constant, so the softmax is computed again as Tensor
    operations on the logits.
    """

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.rows = np.arange(len(labels))

    def forward(self, logits):
        # Kept for the backward, with the array they belong to (see there).
        self.logits, self.log_probs = logits, LogSoftmax(axis=1).forward(logits)
        return -self.log_probs[self.rows, self.labels].sum() / len(self.labels)

    def backward(self, g, node):
        (logits,) = node.inputs
        if is_grad_enabled():
            onehot = np.zeros(logits.shape, dtype=logits.dtype)
            onehot[self.rows, self.labels] = 1
            return ((logits.softmax(axis=1) - constant(onehot)) * (g / len(self.labels)),)
        if logits.data is not self.logits:
            raise RuntimeError(
                "this CrossEntropy op was applied to other logits after making this output, so its "
                "saved softmax belongs to them; make one CrossEntropy per call, as cross_entropy() does"
            )
        per_example = np.exp(self.log_probs)  # softmax(logits) ...
        per_example[self.rows, self.labels] -= 1  # ... minus onehot(labels)
        per_example *= g.data / len(self.labels)  # g is one number: scale the array, no op needed
        return (constant(per_example),)


def cross_entropy(logits: Tensor, labels: Any) -> Tensor:
    """Mean cross-entropy between softmax(logits) and the true classes: a scalar Tensor.

    ``logits`` has shape ``(N, C)`` (unnormalised scores), ``labels`` shape ``(N,)`` with
    integers in ``0..C-1``. Computed as ``-mean(log_softmax(logits)[i, labels[i]])``: log-softmax
    subtracts each row's maximum before exponentiating, so logits in the thousands neither
    overflow nor lose the loss to ``log(0)``. Its gradient with respect to the logits is
    ``(softmax(logits) - onehot(labels)) / N``.
    """
    n_rows, n_classes = _logits_shape(logits, "cross_entropy")
    labels = _class_labels(labels, n_rows, n_classes, "cross_entropy")
    if not isinstance(logits, Tensor):
        logits = Tensor(logits)
    return CrossEntropy(labels)(logits)


def accuracy(logits: Tensor | np.ndarray, labels: Any) -> float:
    """The fraction of rows whose largest logit is at the true class. Shapes ``(N, C)``, ``(N,)``."""
    n_rows, n_classes = _logits_shape(logits, "accuracy")
    labels = _class_labels(labels, n_rows, n_classes, "accuracy")
    scores = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    return float(np.mean(scores.argmax(axis=1) == labels))
