"""Gradient checkpointing: trade a second forward pass for memory.

Reverse mode keeps every intermediate that a backward needs until the backward pass has used it,
so the memory of a training step grows with the depth of the computation. ``checkpoint(f,
*inputs)`` runs ``f`` without recording a graph and keeps only its inputs; when the backward pass
reaches the output, it runs ``f`` again, this time recording, and passes the incoming gradient
back through that fresh graph. Cutting a chain of ``L`` layers into ``k`` checkpointed segments
keeps ``k`` segment inputs plus one segment's ``L / k`` intermediates at a time; ``k`` near
``sqrt(L)`` keeps about ``2 sqrt(L)`` arrays instead of ``L``, for one extra forward pass.

Gradients of gradients work through a checkpoint: when the backward pass is itself recorded
(``grad`` of ``grad``), the segment is recomputed from the actual inputs, so the gradient it
returns is connected to them.

Every tensor whose gradient is wanted must be an argument of ``f``. A tensor that ``f`` only
closes over (a parameter read from ``self``, say) is a constant to the checkpoint: it gets no
gradient through it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .tensor import Function, Tensor, _backpropagate, _from_op, enable_grad, no_grad

__all__ = ["Checkpoint", "checkpoint", "enable_grad"]


class _Boundary(Function):
    """The identity, marking where a recomputed segment meets its inputs (see ``backward``)."""

    def forward(self, a):
        return a

    def backward(self, g, node):
        return (g,)


class Checkpoint(Function):
    """``f(*inputs)`` as one op that keeps no intermediates: ``Checkpoint(f)(*inputs)``.

    ``f`` maps Tensors to one Tensor. The forward runs it under ``no_grad()`` on the input
    arrays; the backward runs it again with recording on and back-propagates ``out_grad``
    through it, returning one gradient per input (``None`` for inputs that do not require grad).
    """

    def __init__(self, f: Callable[..., Tensor]) -> None:
        self.f = f

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        with no_grad():
            out = self.f(*[_from_op(array, None, ()) for array in arrays])
        if not isinstance(out, Tensor):
            raise TypeError(f"checkpoint needs f to return a Tensor, got {type(out).__name__}")
        return out.data

    def backward(self, g: Tensor, node: Tensor) -> tuple[Tensor | None, ...]:
        inputs = node.inputs
        with enable_grad():
            # Each input that needs a gradient goes in through a boundary made now: newer than
            # every tensor outside the segment, older than every tensor inside it.
            boundaries = [_Boundary()(x) if x.requires_grad else x for x in inputs]
            out = self.f(*boundaries)
        marked = {id(b): i for i, b in enumerate(boundaries) if b.requires_grad}
        grads: list[Tensor | None] = [None] * len(inputs)
        if not marked or not out.requires_grad:
            return tuple(None if not x.requires_grad else _zeros(x) for x in inputs)
        oldest = min(b.created for b in boundaries if b.requires_grad)
        # The engine's walk visits the newest tensors first: the segment's insides, then the
        # boundaries, each with its complete gradient. Stop once it leaves the segment, so the
        # walk never goes on into the graph before it (the rest of the backward pass does that).
        # Under grad-of-grad the gradients are recorded as functions of the real inputs.
        for tensor, tensor_grad in _backpropagate(out, g):
            if tensor.created < oldest:
                break
            position = marked.get(id(tensor))
            if position is not None:
                grads[position] = tensor_grad
        return tuple(
            grad if grad is not None or not x.requires_grad else _zeros(x)
            for x, grad in zip(inputs, grads)
        )


def _zeros(x: Tensor) -> Tensor:
    """The gradient of an input the segment's output does not depend on."""
    return _from_op(np.zeros_like(x.data), None, ())


def checkpoint(f: Callable[..., Tensor], *inputs: Any) -> Tensor:
    """``f(*inputs)``, recomputed in the backward pass instead of kept: see :class:`Checkpoint`.

    >>> import numpy as np
    >>> from autodiff_ref import Tensor
    >>> x = Tensor(np.ones(3), requires_grad=True)
    >>> checkpoint(lambda t: (t * t).tanh(), x).sum().backward()
    >>> x.grad.round(4)
    array([0.84, 0.84, 0.84])
    """
    return Checkpoint(f)(*inputs)
