"""Tensors that remember how they were made, and the backward pass over them.

A :class:`Tensor` wraps a NumPy array. When it is the output of a :class:`Function` applied to
tensors that require gradients, it also keeps that function (``op``) and its input tensors
(``inputs``): together they form the computational graph. ``backward`` walks that graph from the
output back to the leaves, asking each op for its vector-Jacobian product.

The ops themselves live in :mod:`autodiff_ref.ops`, one ``Function`` subclass each.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import heapq
import inspect
import itertools
import numbers
from typing import Any, Callable, Iterator, Sequence

import numpy as np

# Whether ops record the graph. A context variable, so each thread has its own (as in PyTorch,
# every new thread starts with recording on) and so has each asyncio task: a no_grad() held by
# one thread, say an evaluation loop, must not switch recording off in another. Reading it costs
# about as little as reading a global, much less than a threading.local attribute.
_grad_enabled = contextvars.ContextVar("autodiff_ref_grad_enabled", default=True)
_recording = _grad_enabled.get

# Every tensor takes the next number when it is made. A tensor is always made after its inputs,
# so ordering by this number, largest first, visits every op before the ops that made its inputs:
# a topological order that costs nothing to find. A tensor loaded by pickle or copied takes a new
# number too (__setstate__): the number it had in the process that saved it means nothing here.
_creation_counter = itertools.count()
_new_object = object.__new__


class no_grad:
    """Inside this block, ops record no graph: outputs never require gradients.

    Use it for evaluation and for updating parameters in place. Also a decorator, with or
    without the parentheses (``@no_grad()``, ``@no_grad``), on functions and on generator
    functions, whose every step (up to each ``yield``) then runs without recording.
    The setting belongs to the thread that enters the block.
    """

    def __new__(cls, function: Callable[..., Any] | None = None) -> Any:
        if function is None:
            return super().__new__(cls)
        if not callable(function):
            raise TypeError(f"no_grad() takes no arguments (or, as @no_grad, a function), got {function!r}")
        return cls()(function)  # @no_grad without parentheses

    def __enter__(self) -> None:
        self._previous = _recording()
        _grad_enabled.set(False)

    def __exit__(self, *exception: Any) -> None:
        _grad_enabled.set(self._previous)

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(function):
            return functools.wraps(function)(functools.partial(_generate_without_grad, function))

        @functools.wraps(function)
        def without_grad(*args: Any, **kwargs: Any) -> Any:
            with no_grad():  # a new block per call: the decorated function may call itself
                return function(*args, **kwargs)

        return without_grad


def _generate_without_grad(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a generator function with no_grad around each of its steps, not around its caller's
    code between them: a decorator that only wrapped the call would leave before the first step."""
    generator = function(*args, **kwargs)
    resume, value = generator.send, None
    while True:
        with no_grad():
            try:
                item = resume(value)
            except StopIteration as stop:
                return stop.value
        try:
            value, resume = (yield item), generator.send
        except GeneratorExit:
            with no_grad():
                generator.close()
            raise
        except BaseException as error:  # thrown in by the caller: pass it on to the generator
            value, resume = error, generator.throw


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """The opposite of :class:`no_grad`: inside this block ops record the graph again (in this
    thread), as in PyTorch. A gradient needs it, even when asked for under ``no_grad()``, and so
    does a backward that recomputes something and differentiates it (a checkpoint's)."""
    token = _grad_enabled.set(True)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph in this thread (False inside :func:`no_grad`)."""
    return _recording()


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """A fresh NumPy array from ``data``; integer and boolean data become float64."""
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, (list, tuple)) and _holds_graph_tensor(data):
        raise TypeError(
            "a list of Tensors that are part of a graph (they require grad) would become plain "
            "numbers here and lose the graph: join them with autodiff_ref.stack(...) to keep the "
            "gradients, or pass t.detach() (or t.data) to drop them on purpose"
        )
    try:
        array = np.array(data, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"a Tensor holds numbers: got {type(data).__name__} ({error})"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"a Tensor holds real numbers: got {type(data).__name__} of dtype {array.dtype}"
        )
    if dtype is None and array.dtype.kind in "biu":
        array = array.astype(np.float64)
    return array


_PLAIN_NUMBERS = {float, int, bool}


def _holds_graph_tensor(items: list | tuple) -> bool:
    """Whether a (nested) list or tuple holds a Tensor that requires grad. The set of the items'
    types is found at C speed: a list of numbers costs a fraction of its conversion to an array."""
    kinds = set(map(type, items))
    if kinds <= _PLAIN_NUMBERS:  # the usual list, answered in a few hundred nanoseconds
        return False
    if any(issubclass(kind, Tensor) for kind in kinds):
        if any(isinstance(item, Tensor) and item.requires_grad for item in items):
            return True
    if list in kinds or tuple in kinds:
        return any(_holds_graph_tensor(item) for item in items if type(item) in (list, tuple))
    return False


def _from_op(data: np.ndarray, op: Function | None, inputs: tuple[Tensor, ...]) -> Tensor:
    """An op's output (or, with ``op=None``, a constant); skips ``Tensor.__init__``'s checks and
    copy, which the op's inputs already passed. A plain function: on small arrays, even the cost of
    a classmethod call shows."""
    out = _new_object(Tensor)
    # One assignment per line: unpacking a tuple into five slots costs a tuple per op.
    out._data = data
    out._saved_by = None
    out.grad = None
    out.op = op
    out.inputs = inputs
    out.requires_grad = op is not None
    out.created = next(_creation_counter)
    return out


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data, requires_grad=False, dtype=None)``: ``data`` is a number, a nested list or a
    NumPy array (copied). Integers and booleans become float64 unless ``dtype`` says otherwise;
    floating arrays keep their dtype, and so do their gradients. ``created`` numbers the tensors
    in the order they were made, which the backward pass uses as its topological order.
    """

    # _data is the array itself, which the engine reads; .data hands it out (see the property).
    # _saved_by is the op that made _data read-only to keep it for its backward, or None.
    __slots__ = ("_data", "_saved_by", "grad", "requires_grad", "op", "inputs", "created", "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _to_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, but dtype is {array.dtype}; "
                "leave dtype unset (integers then become float64) or pass a float dtype"
            )
        self._data: np.ndarray = array
        self._saved_by: Function | None = None
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.op: Function | None = None
        self.inputs: tuple[Tensor, ...] = ()
        self.created: int = next(_creation_counter)

    # -- the array ----------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The NumPy array this tensor wraps (shared, not copied).

        While a recorded op keeps it for its backward, the array is read-only, and this gives a
        view of it whose writes (``t.data[...] = 0``, ``t.data += 1``, ``np.copyto(t.data, a)``)
        raise an error naming the tensor and the op; the library itself reads ``_data``.
        """
        array = self._data
        # Whatever was stored is handed back, even what is no array (a learner's p.data = p - g,
        # which the optimizer checks then explain).
        if type(array) is not np.ndarray or array.flags.writeable:
            return array
        view = array.view(_SavedArray)
        view.tensor = self
        return view

    @data.setter
    def data(self, array: np.ndarray) -> None:
        # A new array is not a change in place: allowed, as in PyTorch. But while an op keeps this
        # tensor, its backward reads the new array, so that one is kept read-only in turn.
        # (The engine computes on plain arrays: x.data = y.data stores the array under y's view.)
        array = _plain(array)
        if self._saved_by is not None and array is not self._data:
            _lock(array)
        self._data = array

    # -- plain facts --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), as ``.data`` gives it."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # np.array(t) asks for a copy and trusts that it gets one: a snapshot must not change
        # when an optimizer later updates t.data in place. copy=False forbids one, as in NumPy.
        array = self._data if dtype is None else self._data.astype(dtype, copy=False)
        if copy is False and array is not self._data:
            raise ValueError(
                f"a Tensor of dtype {self.dtype} cannot become {array.dtype} without a copy, "
                "and copy=False was asked"
            )
        return array.copy() if copy and array is self._data else array

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        # As in NumPy: without this, `if t:` would ask len(t), true for any non-empty tensor.
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a Tensor of shape {self.shape} is ambiguous: ask about its "
                "elements with .data.any() or .data.all()"
            )
        return bool(self._data)

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        extra = f", op={type(self.op).__name__}" if self.op is not None else ""
        extra += ", requires_grad=True" if self.requires_grad and self.op is None else ""
        return f"Tensor({body}{extra})"

    def detach(self) -> Tensor:
        """The same data as a new leaf that does not require gradients: the graph stops here."""
        return _from_op(self._data, None, ())

    # -- pickle and copy: everything but the creation number, which orders the backward walk ------
    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in ("grad", "requires_grad", "op", "inputs")}
        return {"data": self._data, **state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._saved_by = None  # a read-only array stays so in the copy, but no op of its graph is known
        for name, value in state.items():
            setattr(self, name, value)
        # pickle restores a tensor's inputs before the tensor, so a new number keeps them earlier
        self.created = next(_creation_counter)

    # -- the backward pass --------------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Add d(self)/d(x) to ``x.grad`` for every tensor ``x`` in the graph that requires grad.

        ``grad`` is the gradient flowing into ``self`` (the vector in a vector-Jacobian product);
        it may be left out when ``self`` has a single element, such as a loss.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: none of the tensors it "
                "was computed from has requires_grad=True (or it was computed under no_grad())"
            )
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward() without grad= works only for a tensor with one element (a loss), "
                    f"but this one has shape {self.shape}; reduce it first (e.g. .sum()) or pass "
                    f"grad= of shape {self.shape}"
                )
            ones = np.empty(self._data.shape, self._data.dtype)
            ones.fill(1)  # what np.ones does, without its Python-level wrapper: a loss is one number
            seed = _from_op(ones, None, ())
        else:
            seed = _from_op(_to_array(grad, self.dtype), None, ())
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward(grad=...) got a gradient of shape {seed.shape} for a tensor of shape {self.shape}"
                )
        stored: set[int] = set()
        with no_grad():
            for node, node_grad in _backpropagate(self, seed):
                array = node_grad._data
                if node.grad is not None:
                    node.grad = np.asarray(node.grad + array)  # 0-d sums are scalars
                else:
                    # Ops may hand the same array to several inputs (Add passes g on as it is) or
                    # return a view; every .grad gets an array of its own, safe to change in place.
                    node.grad = array.copy() if id(array) in stored or array.base is not None else array
                stored.add(id(node.grad))

    # -- operators (the ops are in ops.py; one shared instance each, defined below) -----------
    def __add__(self, other: Any) -> Tensor:
        return _ADD(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ADD(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _SUB(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _SUB(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _MUL(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _MUL(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _DIV(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _DIV(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _POW(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _POW(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _MATMUL(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _MATMUL(other, self)

    def __neg__(self) -> Tensor:
        return _NEG(self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index)

    # -- methods (the op classes called directly too, where no shortcut applies) -------------
    def exp(self) -> Tensor:
        return ops.Exp()(self)

    def log(self) -> Tensor:
        return ops.Log()(self)

    def sqrt(self) -> Tensor:
        return ops.Sqrt()(self)

    def abs(self) -> Tensor:
        return ops.Abs()(self)

    def relu(self) -> Tensor:
        return ops.ReLU()(self)

    def sigmoid(self) -> Tensor:
        return ops.Sigmoid()(self)

    def tanh(self) -> Tensor:
        return ops.Tanh()(self)

    def matmul(self, other: Any) -> Tensor:
        return _MATMUL(self, other)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Sum(axis, keepdims)(self)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        total = ops.Sum(axis, keepdims)(self)
        return total * (total.size / self.size if self.size else np.nan)  # of nothing: nan, as NumPy

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Max(axis, keepdims)(self)

    def logsumexp(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.LogSumExp(axis, keepdims)(self)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.LogSoftmax(axis)(self)

    def softmax(self, axis: int = -1) -> Tensor:
        return self.log_softmax(axis).exp()

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, np.ndarray)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list, np.ndarray))):
            axes = () if axes[0] is None else tuple(axes[0])  # transpose(None) reverses, as in NumPy
        return ops.transpose(self, axes or None)

    @property
    def T(self) -> Tensor:
        return ops.Transpose()(self)

    def broadcast_to(self, shape: int | Sequence[int]) -> Tensor:
        return ops.broadcast_to(self, (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape))

    def astype(self, dtype: Any) -> Tensor:
        return ops.cast(self, dtype)

    # -- the rest of the Tensor API: more ops, comparisons, NumPy's functions --------------------
    def sin(self) -> Tensor:
        return ops.sin(self)

    def cos(self) -> Tensor:
        return ops.cos(self)

    def __abs__(self) -> Tensor:
        return ops.Abs()(self)

    def __pos__(self) -> Tensor:
        return self

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.min(self, axis, keepdims)

    def prod(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.prod(self, axis, keepdims)

    def var(self, axis: int | tuple[int, ...] | None = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        return ops.var(self, axis, ddof, keepdims)

    def std(self, axis: int | tuple[int, ...] | None = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        return ops.std(self, axis, ddof, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
        return ops.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
        return ops.argmin(self, axis, keepdims)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Tensor:
        return ops.clip(self, a_min, a_max)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        return ops.squeeze(self, axis)

    def expand_dims(self, axis: int | tuple[int, ...]) -> Tensor:
        return ops.expand_dims(self, axis)

    def flatten(self) -> Tensor:
        return ops.flatten(self)

    def split(self, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
        return ops.split(self, indices_or_sections, axis)

    # Comparisons are elementwise, as in NumPy, and give NumPy bool arrays: masks for indexing and
    # np.where, which have no gradient. Only == and != fall back to identity, for what is not a
    # number or array (t == None is False).
    def __eq__(self, other: Any) -> Any:
        return _compare(np.equal, self, other)

    def __ne__(self, other: Any) -> Any:
        return _compare(np.not_equal, self, other)

    def __lt__(self, other: Any) -> Any:
        return _compare(np.less, self, other)

    def __le__(self, other: Any) -> Any:
        return _compare(np.less_equal, self, other)

    def __gt__(self, other: Any) -> Any:
        return _compare(np.greater, self, other)

    def __ge__(self, other: Any) -> Any:
        return _compare(np.greater_equal, self, other)

    # Defining __eq__ would drop the hash: a Tensor stays usable in sets and as a dict key, by
    # identity (the engine keys its own dicts by id(tensor) anyway).
    __hash__ = object.__hash__

    # NumPy's functions and ufuncs given a Tensor run the Tensor op, or raise; see the end of ops.py.
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _OPERATOR_UFUNCS.get(ufunc)
        if op is not None and method == "__call__" and not kwargs:
            return op(*inputs)  # `array * tensor`, as fast as `tensor * array`
        return ops.numpy_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: tuple[type, ...], args: tuple, kwargs: dict) -> Any:
        return ops.numpy_function(func, types, args, kwargs)


def _compare(ufunc: np.ufunc, tensor: Tensor, other: Any) -> Any:
    """``ufunc`` (a comparison) on the values, or NotImplemented for what is not a number or array."""
    if isinstance(other, Tensor):
        other = other._data
    elif not isinstance(other, (numbers.Number, np.ndarray, np.generic, list, tuple)):
        return NotImplemented
    return ufunc(tensor._data, other)


class Function:
    """One differentiable operation.

    Subclasses define

    * ``forward(self, *arrays) -> ndarray``: the value, on NumPy arrays;
    * ``backward(self, out_grad, node) -> tuple[Tensor, ...]``: given the gradient ``out_grad``
      flowing into the output ``node`` (a Tensor whose ``inputs`` are the op's inputs), the
      gradient for each input, with that input's shape, computed with Tensor operations so that
      it can itself be differentiated. A gradient may be ``None`` for an input that does not
      require grad.

    Settings of an op (an axis, a shape) go to ``__init__``. Calling an instance on tensors,
    arrays or numbers, ``Mul()(a, b)``, computes the output and records the op in the graph.

    ``saves_inputs`` and ``saves_output`` say whether ``backward`` reads the values (not just the
    shapes) of the inputs and of the output. When the op is recorded, those arrays are made
    read-only, so that changing them in place before the backward pass raises at once instead
    of giving wrong gradients. Both default to True; an op that needs only shapes (Add, Sum,
    Reshape) sets them False and costs nothing.
    """

    saves_inputs = True
    saves_output = True

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor | None, ...]:
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *inputs: Any) -> Tensor:
        # This runs for every op, forward and backward; on small arrays its overhead is most of
        # an op's cost. Hence a plain loop rather than all() over a generator, and the usual one
        # and two inputs spelled out: a list comprehension would cost as much as NumPy's work.
        for value in inputs:
            if not isinstance(value, Tensor):
                inputs = _as_tensors(inputs)
                break
        try:
            if len(inputs) == 2:
                a, b = inputs
                data = self.forward(a._data, b._data)
                recorded = (a.requires_grad or b.requires_grad) and _recording()
            elif len(inputs) == 1:
                data = self.forward(inputs[0]._data)
                recorded = inputs[0].requires_grad and _recording()
            else:
                data = self.forward(*[t._data for t in inputs])
                recorded = any(t.requires_grad for t in inputs) and _recording()
        except ValueError as error:
            shapes = ", ".join(str(t.shape) for t in inputs)
            settings = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
            raise ValueError(
                f"{type(self).__name__} got inputs of shapes {shapes}"
                + (f" with {settings}" if settings else "") + f": {error}"
            ) from error
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        if not recorded:
            return _from_op(data, None, ())
        # The backward reads these arrays again: lock them, so that a change made in place before
        # then (x.data[...] = 5, an optimizer's step, y.data *= 2) raises at once, where it would
        # give wrong gradients without a word. A flag costs nothing per element, unlike a
        # checksum, and catches writes made straight into the array, which a version counter
        # bumped by the library's own in-place ops would not see. An op's output stays locked; a
        # leaf's array is unlocked by the backward pass that reaches it (see _backpropagate).
        # The tensor remembers the op that locked it (_saved_by): the error names it, and a tensor
        # locked already, such as a parameter after its first op of the forward, costs a slot's
        # read, not a look at the array's flags. (setflags(False), positional: half the cost of
        # write=False.)
        out = _from_op(data, self, inputs)
        if self.saves_output:
            data.setflags(False)
            if data.base is not None:
                _lock(data.base)
            out._saved_by = self
        if self.saves_inputs:
            for value in inputs:
                if value._saved_by is None:
                    value._saved_by = self
                    array = value._data
                    array.setflags(False)
                    if array.base is not None:
                        _lock(array.base)
        return out

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({settings})"


def _as_tensors(values: Sequence[Any]) -> tuple[Tensor, ...]:
    """The op's inputs as Tensors; a Python number takes the dtype of the first float tensor."""
    like = None
    for value in values:
        if isinstance(value, Tensor) and value._data.dtype.kind == "f":
            like = value._data.dtype
            break
    # A bool array (a mask, as a comparison gives) stays bool: NumPy promotes it to the other
    # operand's dtype, so that x * (x > 0) keeps float32, as float64 ones and zeros would not.
    return tuple(
        v if isinstance(v, Tensor)
        else _from_op(np.asarray(v, dtype=like), None, ()) if like is not None and isinstance(v, numbers.Real)
        else _from_op(v.copy() if type(v) is np.ndarray and v.dtype == bool else _to_array(v), None, ())
        for v in values
    )


def _gradient_tuple(node: Tensor, grads: Any) -> tuple[Any, ...]:
    """``node.op.backward``'s result as a tuple with one entry per input, or a clear error."""
    if isinstance(grads, Tensor):
        grads = (grads,)
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.inputs):
        count = len(grads) if isinstance(grads, (tuple, list)) else f"a {type(grads).__name__}"
        raise TypeError(
            f"{type(node.op).__name__}.backward must return a tuple with one gradient per input "
            f"({len(node.inputs)}), but returned {count}"
        )
    return tuple(grads)


def _checked_gradient(node: Tensor, position: int, grad: Any) -> Tensor:
    """A gradient that is not a Tensor of its input's shape and dtype: cast it, or explain."""
    op_name, tensor = type(node.op).__name__, node.inputs[position]
    if grad is None:
        raise TypeError(f"{op_name}.backward returned None for input {position}, which requires grad")
    if not isinstance(grad, Tensor):
        raise TypeError(
            f"{op_name}.backward returned a {type(_plain(grad)).__name__} for input {position}; return a "
            "Tensor computed from out_grad with Tensor operations"
        )
    if grad.shape != tensor.shape:
        raise ValueError(
            f"{op_name}.backward returned a gradient of shape {grad.shape} for input {position}, "
            f"which has shape {tensor.shape}; a gradient has the shape of its input (if the input "
            "was broadcast, sum the gradient over the broadcast axes: ops.unbroadcast)"
        )
    return grad if grad.dtype == tensor.dtype else grad.astype(tensor.dtype)


def _backpropagate(root: Tensor, seed: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Every tensor that ``root`` depends on and that requires grad, with d(root)/d(it).

    ``seed`` is the gradient flowing into ``root``. Contributions from every path are summed in a
    ledger keyed by ``id(tensor)``, as notebook 06 teaches: a key that would still work if Tensor
    had an elementwise ``==``. The tensors with an entry wait in a heap, latest made first: when a
    tensor comes off the heap its total is final, because every op that used it made a later
    tensor, which has passed its share back already. This finds a topological order on the way
    (as PyTorch's engine does) instead of walking the whole graph first, and never visits the
    tensors that do not require grad.
    """
    ledger: dict[int, Tensor] = {id(root): seed}
    recording = _recording()  # building the graph of the gradient itself (grad of grad)?
    sums: set[int] = set()  # ledger entries that are sums this walk made: safe to add to in place
    # The id breaks ties, should two tensors ever share a number, so that the heap never has to
    # compare two Tensors.
    waiting = [(-root.created, id(root), root)]
    while waiting:
        node = heapq.heappop(waiting)[2]
        grad = ledger.pop(id(node))
        yield node, grad
        if node.op is None:
            _unlock(node)  # every op that read this leaf has run its backward
            continue
        inputs = node.inputs
        input_grads = node.op.backward(grad, node)
        if type(input_grads) is not tuple or len(input_grads) != len(inputs):
            input_grads = _gradient_tuple(node, input_grads)
        for position, tensor in enumerate(inputs):
            if not tensor.requires_grad:
                if tensor.op is None:
                    _unlock(tensor)  # data and constants: writable again after this backward
                continue
            input_grad = input_grads[position]
            # The usual case inline; anything else is cast or explained by _checked_gradient.
            # (NumPy's dtypes for float32 and float64 are singletons: `is` is the cheap test.)
            if (
                type(input_grad) is not Tensor
                or input_grad._data.shape != tensor._data.shape
                or input_grad._data.dtype is not tensor._data.dtype
            ):
                input_grad = _checked_gradient(node, position, input_grad)
            key = id(tensor)
            earlier = ledger.get(key)
            if earlier is None:
                ledger[key] = input_grad
                heapq.heappush(waiting, (-tensor.created, key, tensor))
            elif recording:
                ledger[key] = earlier + input_grad
            elif key in sums:  # first-order, third share or later: add to the sum we own
                earlier._data += input_grad._data
            else:  # first-order, second share: a new array for the sum, no op to record
                ledger[key] = _from_op(np.asarray(earlier._data + input_grad._data), None, ())
                sums.add(key)


def _lock(base: Any) -> None:
    """Make the array a saved view looks into read-only too: a write through it (x.data[...] = 5
    after y = x.reshape(...) * w) would change the view."""
    while type(base) is np.ndarray and base.flags.writeable:
        base.setflags(False)
        base = base.base


def _unlock(leaf: Tensor) -> None:
    """Make a leaf's array writable again once a backward pass is done with it: an optimizer
    updates parameters in place after backward. (Not a view: its base may be locked, or be
    another tensor's array, and NumPy cannot unlock a view of a read-only array.)"""
    array = leaf._data
    if array.base is None:
        array.setflags(True)
        leaf._saved_by = None


class _SavedArray(np.ndarray):
    """What ``t.data`` gives while a recorded op keeps ``t``'s array for its backward: a view of
    that read-only array, whose writes raise :func:`_changed_in_place`'s error, naming the tensor
    and the op, where NumPy's would say only "assignment destination is read-only".

    Only ``.data`` makes these views, and only of read-only arrays: the engine and the ops read
    the plain array (``t._data``), so results of ops stay plain ndarrays, at no cost. A view of a
    view (``t.data[0]``) is one too; NumPy computes on the plain arrays underneath.
    """

    __slots__ = ("tensor",)

    def __array_finalize__(self, parent: Any) -> None:
        self.tensor = getattr(parent, "tensor", None)

    def _refuse_if_read_only(self) -> None:
        if not self.flags.writeable:
            raise _changed_in_place(self.tensor)

    def _writing(method: Callable[..., Any]) -> Callable[..., Any]:
        """An ndarray method that writes in place, refusing first when the array is kept."""

        @functools.wraps(method)
        def write(self: _SavedArray, *args: Any, **kwargs: Any) -> Any:
            self._refuse_if_read_only()
            return method(self, *args, **kwargs)

        return write

    __setitem__ = _writing(np.ndarray.__setitem__)
    fill = _writing(np.ndarray.fill)
    sort = _writing(np.ndarray.sort)
    partition = _writing(np.ndarray.partition)
    put = _writing(np.ndarray.put)
    del _writing

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        # t.data += 1, np.add(a, b, out=t.data) and the other ufuncs, each with its result plain
        outputs = kwargs.get("out", ())
        for array in outputs:
            if isinstance(array, _SavedArray):
                array._refuse_if_read_only()
        if outputs:
            kwargs["out"] = tuple(map(_plain, outputs))
        return getattr(ufunc, method)(*map(_plain, inputs), **kwargs)

    def __array_function__(self, function: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        # np.copyto(t.data, a), np.put, np.place, np.fill_diagonal: the destination comes first
        try:
            return super().__array_function__(function, types, args, kwargs)
        except ValueError as error:
            destination = args[0] if args else None
            if isinstance(destination, _SavedArray) and "read-only" in str(error):
                destination._refuse_if_read_only()
            raise

    def setflags(self, write: Any = None, align: Any = None, uic: Any = None) -> None:
        # What t.data.setflags(write=True) did when .data was the array itself: unlock it, for a
        # caller who knows that no backward will read it (the Function checker does so).
        if write and self.tensor is not None and self.tensor._data.base is None:
            self.tensor._data.setflags(True)
            self.tensor._saved_by = None
        super().setflags(write, align, uic)

    def copy(self, order: str = "C") -> np.ndarray:
        return _plain(self).copy(order)

    def __repr__(self) -> str:
        return repr(_plain(self))


def _plain(value: Any) -> Any:
    """A _SavedArray as the plain ndarray it views (anything else as it is)."""
    return value.view(np.ndarray) if isinstance(value, _SavedArray) else value


def _changed_in_place(tensor: Tensor | None) -> ValueError:
    """The error for a change in place of an array that a recorded op keeps for its backward."""
    if tensor is None:
        subject = "This array"
    else:
        origin = f"the output of {type(tensor.op).__name__}" if tensor.op is not None else "a leaf"
        subject = f"This {type(tensor).__name__} of shape {tensor.shape} and dtype {tensor.dtype} ({origin})"
    op = tensor._saved_by if tensor is not None else None
    keeper = (
        f"{type(op).__name__} keeps it for its backward" if op is not None
        else "a recorded op keeps it, or an array it shares memory with, for its backward"
    )
    return ValueError(
        f"{subject} is read-only: {keeper}, which would give wrong gradients if it changed in "
        "place. Change it after backward() (which makes a leaf writable again), run a forward "
        "that you will not differentiate under no_grad() (it keeps nothing), or change a copy "
        "(t.data.copy(); t.detach() shares the array)."
    )


def grad(f: Callable[..., Tensor], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The gradient function of a scalar-valued ``f``, as in JAX.

    ``grad(f)(x)`` is d f / d x as a Tensor that is itself part of a graph, so it can be
    differentiated again: ``grad(lambda x: grad(f)(x).sum())(x)`` gives second derivatives.
    With a tuple ``argnums`` the result is a tuple of gradients. Arguments that are not tensors
    requiring grad are wrapped in new ones; ``.grad`` attributes are left untouched. Each position
    is a variable of its own, as in JAX: ``grad(f, argnums=(0, 1))(t, t)`` gives the two partial
    derivatives, whether or not ``t`` requires grad.
    """
    positions = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    if not all(isinstance(i, (int, np.integer)) for i in positions):
        raise TypeError(f"grad(f, argnums=...) takes an int or a tuple of ints, got {argnums!r}")

    def gradient(*args: Any) -> Any:
        with enable_grad():  # a gradient needs its graph, even under no_grad()
            return _gradient(*args)

    def _gradient(*args: Any) -> Any:
        for i in positions:
            if not 0 <= i < len(args):
                raise TypeError(
                    f"grad(f, argnums={argnums!r}) differentiates with respect to argument {i}, "
                    f"but was called with {len(args)} argument{'s' * (len(args) != 1)}"
                )
        args = list(args)
        for i in positions:
            if isinstance(args[i], Tensor) and args[i].requires_grad:
                # A node of its own per position, still joined to the caller's graph (grad of grad):
                # the same tensor at two positions gives two partial derivatives, not two totals.
                args[i] = ops.Cast(args[i].dtype)(args[i])
            else:
                args[i] = Tensor(args[i], requires_grad=True)
        out = f(*args)
        if not isinstance(out, Tensor) or out.size != 1:
            shape = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise TypeError(f"grad(f) needs f to return a one-element Tensor, got {shape}")
        if not out.requires_grad:
            found = {}
        else:
            found = {id(node): g for node, g in _backpropagate(out, _from_op(np.ones_like(out._data), None, ()))}
        zeros = lambda t: _from_op(np.zeros_like(t._data), None, ())  # noqa: E731
        grads = tuple(found[id(args[i])] if id(args[i]) in found else zeros(args[i]) for i in positions)
        return grads[0] if isinstance(argnums, (int, np.integer)) else grads

    return gradient


from . import ops  # noqa: E402  -- ops needs Tensor and Function, defined above

# The operators call one shared instance of each op rather than making one per call: these ops
# keep no settings and no state, and a new instance per op is a cost that shows on small arrays.
_ADD, _SUB, _MUL, _DIV, _POW, _MATMUL, _NEG = ops.Add(), ops.Sub(), ops.Mul(), ops.Div(), ops.Pow(), ops.MatMul(), ops.Neg()
_OPERATOR_UFUNCS = {np.add: _ADD, np.subtract: _SUB, np.multiply: _MUL, np.divide: _DIV, np.power: _POW, np.matmul: _MATMUL}


# -- constructors -----------------------------------------------------------------------------------
def zeros(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return Tensor(np.zeros(_shape(shape), dtype), requires_grad=requires_grad, dtype=dtype)


def ones(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return Tensor(np.ones(_shape(shape), dtype), requires_grad=requires_grad, dtype=dtype)


def randn(*shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """Standard normal samples. ``rng`` is a ``np.random.Generator`` or a seed; without one the
    numbers differ on every call."""
    samples = np.random.default_rng(rng).standard_normal(_shape(shape), dtype=dtype)
    return Tensor(samples, requires_grad=requires_grad, dtype=dtype)


def rand(*shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1). ``rng`` is a ``np.random.Generator`` or a seed."""
    samples = np.random.default_rng(rng).random(_shape(shape), dtype=dtype)
    return Tensor(samples, requires_grad=requires_grad, dtype=dtype)


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """A constructor's shape, given as separate sizes or as one tuple or list."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for size in shape:
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 0:
            raise TypeError(f"a shape is made of sizes, whole numbers >= 0; got {size!r} in {shape}")
    return tuple(int(size) for size in shape)
