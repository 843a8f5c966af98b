"""Neural-network building blocks on top of the tensor engine.

* :class:`Parameter` — a Tensor that a model learns; optimizers update exactly these.
* :class:`Module` — a piece of a model. It finds its parameters by looking at its own
  attributes (parameters, sub-modules, and lists or tuples of them), so a model is written as a
  plain class with ``__init__`` and ``forward``.
* Layers: :class:`Linear`, :class:`ReLU`, :class:`Tanh`, :class:`Sigmoid`, :class:`Sequential`,
  :class:`Dropout`, :class:`LayerNorm`, :class:`Embedding`, and for images :class:`Conv2d`,
  :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`Flatten`, and for sequences :class:`RNNCell`,
  :class:`RNNClassifier`.
* Saving: :meth:`Module.state_dict`, :meth:`Module.load_state_dict`, and :func:`save` /
  :func:`load` for a model with its optimizer in one ``.npz`` file.
* Losses and metrics: :func:`mse_loss`, :func:`cross_entropy`, :func:`accuracy`.

Shapes follow the batch-first convention: a batch of ``N`` examples with ``F`` features is an
array of shape ``(N, F)``.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from .ops import LogSoftmax, affine, avg_pool2d, constant, conv2d, max_pool2d
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
    "Dropout",
    "LayerNorm",
    "Embedding",
    "save",
    "load",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "RNNCell",
    "RNNClassifier",
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
        return f"Parameter({np.array2string(self._data, separator=', ', prefix='Parameter(')})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and define
    ``forward``; calling the module calls ``forward``. Attributes are searched in the order they
    were set: a :class:`Parameter`, a ``Module``, or a list, tuple or dict of them (nested too;
    ``layers.0`` or ``blocks.encoder`` in the names). A parameter shared by two layers is listed
    once.
    """

    #: True while training, False after :meth:`eval`. A class default, so subclasses need not
    #: call ``super().__init__()``. :class:`Dropout` acts on it.
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

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's values, by dotted name (``"layers.0.weight"``).

        Plain NumPy arrays, so ``np.savez`` stores them without pickle (see :func:`save`).
        """
        return {name: parameter._data.copy() for name, parameter in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set every parameter from ``state`` (as :meth:`state_dict` made it), by name.

        The names must match exactly and each array must have its parameter's shape; values
        are copied and cast to the parameter's dtype. Nothing changes unless all of it fits.
        """
        parameters = dict(self.named_parameters())
        _check_state_names(type(self).__name__, set(parameters), set(state))
        values = {}
        for name, parameter in parameters.items():
            value = np.asarray(state[name])
            if value.shape != parameter.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {name!r} has shape {value.shape} in the "
                    f"state but {parameter.shape} in the model; was it saved from another architecture?"
                )
            values[name] = value
        for name, parameter in parameters.items():
            parameter.data = np.array(values[name], dtype=parameter.dtype)

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
        _check_positive_int("Linear", "in_features", in_features)
        _check_positive_int("Linear", "out_features", out_features)
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


class Dropout(Module):
    """While training, zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The scaling keeps each element's expected value, so the network needs no change at
    evaluation, where dropout does nothing (after :meth:`Module.eval`). Any shape. ``rng``: a
    ``numpy.random.Generator`` or an integer seed (``None``: fresh randomness).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"Dropout needs a probability 0 <= p <= 1, got p={p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(rng)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:  # every element dropped; 1 / (1 - p) would divide by zero
            return x * np.zeros(x.shape, dtype=x.dtype)
        keep = self.rng.random(x.shape) >= self.p
        return x * (keep / (1 - self.p)).astype(x.dtype)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class LayerNorm(Module):
    """Normalise each example over its last axes, then scale and shift: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    ``normalized_shape`` is the shape of those last axes (an int for one axis): input
    ``(..., *normalized_shape)``, ``weight`` and ``bias`` ``normalized_shape`` (starting at 1 and
    0), output the input's shape. The variance is the biased one (divided by the count), as in
    PyTorch. Written with Tensor ops, so its gradient is differentiable again.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, dtype: Any = np.float64) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape):
            raise ValueError(f"LayerNorm needs normalized_shape of positive sizes, got {normalized_shape!r}")
        if not eps > 0:
            raise ValueError(f"LayerNorm needs eps > 0, got eps={eps!r}")
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), eps
        self.weight = Parameter(np.ones(self.normalized_shape), dtype=dtype)
        self.bias = Parameter(np.zeros(self.normalized_shape), dtype=dtype)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        n = len(self.normalized_shape)
        if tuple(np.shape(x)[-n:]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm expects inputs ending in shape {self.normalized_shape}, got shape {np.shape(x)}"
            )
        x = x if isinstance(x, Tensor) else Tensor(x)
        axes = tuple(range(-n, 0))
        centered = x - x.mean(axis=axes, keepdims=True)
        variance = (centered * centered).mean(axis=axes, keepdims=True)
        return centered / (variance + self.eps).sqrt() * self.weight + self.bias

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape}, eps={self.eps})"


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` is the vector of token ``i``.

    Input: integer indices of any shape ``S`` in ``0..num_embeddings-1``; output
    ``S + (embedding_dim,)``. An index that appears several times in a batch gets the sum of its
    gradients. ``weight`` starts as standard normal draws, as in PyTorch.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        _check_positive_int("Embedding", "num_embeddings", num_embeddings)
        _check_positive_int("Embedding", "embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = Parameter(np.random.default_rng(rng).standard_normal((num_embeddings, embedding_dim)), dtype=dtype)

    def forward(self, indices: Any) -> Tensor:
        index = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
        if index.dtype.kind not in "iu" and not (index.dtype.kind == "f" and np.all(index == np.round(index))):
            raise TypeError(f"Embedding takes integer indices, got dtype {index.dtype}")
        index = index.astype(np.intp)
        if index.size and (index.min() < 0 or index.max() >= self.num_embeddings):
            raise IndexError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}) got index {index.min() if index.min() < 0 else index.max()}; "
                f"indices must be in 0..{self.num_embeddings - 1}"
            )
        return self.weight[index]

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


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
    array = np.asarray(labels._data if isinstance(labels, Tensor) else labels)
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
        if logits._data is not self.logits:
            raise RuntimeError(
                "this CrossEntropy op was applied to other logits after making this output, so its "
                "saved softmax belongs to them; make one CrossEntropy per call, as cross_entropy() does"
            )
        per_example = np.exp(self.log_probs)  # softmax(logits) ...
        per_example[self.rows, self.labels] -= 1  # ... minus onehot(labels)
        per_example *= g._data / len(self.labels)  # g is one number: scale the array, no op needed
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
    scores = logits._data if isinstance(logits, Tensor) else np.asarray(logits)
    return float(np.mean(scores.argmax(axis=1) == labels))


def _check_positive_int(owner: str, what: str, value: Any) -> None:
    """A size or a count: a positive int (NumPy's too), never a bool or a float such as 2.0."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner} needs {what} to be a positive integer, got {value!r}")


def _check_state_names(owner: str, expected: set[str], given: set[str]) -> None:
    """A state that lacks names or has extra ones was made for something else: say which."""
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        parts = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else ""]
        raise KeyError(f"{owner}.load_state_dict: the state does not fit: " + "; ".join(p for p in parts if p))


def save(path: Any, model: Module, optimizer: Any = None, scheduler: Any = None) -> None:
    """Write a model's parameters, and optionally its optimizer's and scheduler's state, to ``path`` (``.npz``).

    Plain arrays only, no pickle: loading such a file runs no code. Load with :func:`load` into
    objects built the same way; training then goes on with exactly the numbers it would have had
    without the stop (the data order and any dropout draws are yours to resume: seed them, e.g.
    per epoch).
    """
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    for part, owner in (("optimizer", optimizer), ("scheduler", scheduler)):
        if owner is not None:
            arrays.update({f"{part}/{name}": value for name, value in owner.state_dict().items()})
    np.savez(path, **arrays)


def load(path: Any, model: Module, optimizer: Any = None, scheduler: Any = None) -> None:
    """Set ``model`` (and ``optimizer``, ``scheduler`` if given) from a file written by :func:`save`."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for part, owner in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if owner is None:
            continue
        prefix = f"{part}/"
        state = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
        if not state and part != "model":
            raise KeyError(f"{path} holds no {part} state: it was saved without one")
        owner.load_state_dict(state)

# -- convolutional layers -------------------------------------------------------------------------


class Conv2d(Module):
    """A convolutional layer: ``(N, in_channels, H, W) -> (N, out_channels, Ho, Wo)``.

    ``weight`` has shape ``(out_channels, in_channels, k, k)``, filter first as in PyTorch (unlike
    :class:`Linear`'s input-major weight: here the filter is the unit one looks at and draws),
    ``bias`` shape ``(out_channels,)``. ``Ho = (H + 2 padding - k) // stride + 1``, ``Wo`` alike.
    Each output sums ``in_channels * k * k`` products, its fan-in, so the weights are drawn
    He-uniform as in :class:`Linear`: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)``. ``rng`` is a
    ``numpy.random.Generator`` or an integer seed.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, rng: np.random.Generator | int | None = None,
                 dtype: Any = np.float64) -> None:
        for what, size in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("kernel_size", kernel_size)):
            if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
                raise ValueError(f"Conv2d needs {what} to be a positive integer, got {size!r}")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), int(kernel_size)
        self.stride, self.padding = stride, padding
        rng = np.random.default_rng(rng)
        bound = np.sqrt(6.0 / (in_channels * kernel_size * kernel_size))
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = Parameter(rng.uniform(-bound, bound, size=shape), dtype=dtype)
        self.bias = Parameter(np.zeros(out_channels), dtype=dtype) if bias else None

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """``(N, in_channels, H, W) -> (N, out_channels, Ho, Wo)``."""
        shape = np.shape(x)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d expects images of shape (N, {self.in_channels}, H, W), got shape {shape}"
            )
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")


class MaxPool2d(Module):
    """The maximum of each ``size x size`` window, windows side by side: ``(N, C, H, W) ->
    (N, C, H // size, W // size)``."""

    def __init__(self, size: int = 2) -> None:
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.size)

    def __repr__(self) -> str:
        return f"MaxPool2d(size={self.size})"


class AvgPool2d(Module):
    """The mean of each ``size x size`` window, windows side by side: ``(N, C, H, W) ->
    (N, C, H // size, W // size)``."""

    def __init__(self, size: int = 2) -> None:
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.size)

    def __repr__(self) -> str:
        return f"AvgPool2d(size={self.size})"


class Flatten(Module):
    """Every axis after the first as one: ``(N, C, H, W) -> (N, C * H * W)``, for a Linear layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


# -- recurrent networks (notebook 09) ----------------------------------------------------------


class RNNCell(Module):
    """One step of a plain (Elman) recurrent network: ``h_new = tanh(h @ W + x @ U + b)``.

    Shapes: input ``x (N, input_size)``, state ``h (N, hidden_size)``, output ``(N,
    hidden_size)``. Parameters: ``weight_hh`` (W) ``(hidden_size, hidden_size)``, ``weight_ih``
    (U) ``(input_size, hidden_size)``, ``bias`` (b) ``(hidden_size,)``, stored input-major like
    :class:`Linear`, so ``torch.nn.RNNCell``'s ``weight_hh`` and ``weight_ih`` are their
    transposes and its two biases add up to ``bias``. The same cell, with the same parameters,
    runs at every time step; that sharing is why a parameter's gradient is a sum over the steps.

    Every weight and the bias start in ``U(-a, a)`` with ``a = 1 / sqrt(hidden_size)``, as in
    PyTorch: small enough that the state starts away from tanh's flat ends.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        for what, size in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
                raise ValueError(f"RNNCell needs {what} to be a positive integer, got {size!r}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        rng = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(hidden_size)
        self.weight_hh = Parameter(rng.uniform(-bound, bound, (hidden_size, hidden_size)), dtype=dtype)
        self.weight_ih = Parameter(rng.uniform(-bound, bound, (input_size, hidden_size)), dtype=dtype)
        self.bias = Parameter(rng.uniform(-bound, bound, hidden_size), dtype=dtype)

    def forward(self, x: Tensor | np.ndarray, h: Tensor | np.ndarray) -> Tensor:
        """``x (N, input_size)``, ``h (N, hidden_size)`` -> the next state ``(N, hidden_size)``."""
        if np.shape(x)[-1:] != (self.input_size,) or np.shape(h)[-1:] != (self.hidden_size,):
            raise ValueError(
                f"RNNCell({self.input_size}, {self.hidden_size}) expects x with {self.input_size} "
                f"features and h with {self.hidden_size}, got shapes {np.shape(x)} and {np.shape(h)}"
            )
        return (affine(x, self.weight_ih, self.bias) + h @ self.weight_hh).tanh()

    def __repr__(self) -> str:
        return f"RNNCell(input_size={self.input_size}, hidden_size={self.hidden_size})"


class RNNClassifier(Module):
    """Read a sequence one step at a time with an :class:`RNNCell`, then score the last state.

    ``x`` has shape ``(N, steps, input_size)``, or ``(N, steps * input_size)`` which is read as
    consecutive chunks of ``input_size`` (an 8x8 digit stored as 64 pixels is read row by row).
    The state starts at zeros; the logits ``(N, n_classes)`` are a :class:`Linear` layer of the
    last state.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_classes: int,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        rng = np.random.default_rng(rng)
        self.cell = RNNCell(input_size, hidden_size, rng=rng, dtype=dtype)
        self.head = Linear(hidden_size, n_classes, rng=rng, dtype=dtype)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """``(N, steps, input_size)`` or ``(N, steps * input_size)`` -> logits ``(N, n_classes)``."""
        size = self.cell.input_size
        if np.ndim(x) not in (2, 3) or np.shape(x)[-1] % size or (np.ndim(x) == 3 and np.shape(x)[-1] != size):
            raise ValueError(
                f"RNNClassifier reads steps of {size} features: it expects x of shape (N, steps, {size}) "
                f"or (N, steps * {size}), got {np.shape(x)}"
            )
        sequence = x.reshape(len(x), -1, size)
        h = Tensor(np.zeros((len(x), self.cell.hidden_size), dtype=self.cell.bias.dtype))
        for step in range(sequence.shape[1]):
            h = self.cell(sequence[:, step], h)
        return self.head(h)
