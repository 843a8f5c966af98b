"""A scalar reverse-mode engine: the smallest complete automatic differentiation.

Every operation makes a new :class:`Value` that remembers its inputs and the *local* derivative
of its output with respect to each input, computed right next to the output itself::

    a * b   ->  Value(a.data * b.data, inputs=(a, b), local_grads=(b.data, a.data), op="*")

``backward`` is then the same for every op: walk the graph from the output back to the leaves
and apply the chain rule, d out / d input = d out / d node * d node / d input, summing over every
path by which a value reaches the output.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Union

from .graph import topological_order

Number = Union[int, float]


class Value:
    """A float in a computational graph.

    ``data`` is the value; ``grad`` the derivative with respect to it of each root that
    ``backward()`` was called on, summed over those calls; ``inputs`` the Values it was computed
    from, ``local_grads`` the derivative of this value with respect to each input, and ``op`` the
    operation's symbol.
    """

    __slots__ = ("data", "grad", "inputs", "local_grads", "op", "label")

    def __init__(
        self,
        data: Number,
        inputs: tuple[Value, ...] = (),
        local_grads: tuple[float, ...] = (),
        op: str = "",
        label: str = "",
    ) -> None:
        if isinstance(data, Value) or not isinstance(data, Real):
            raise TypeError(f"Value holds a real number, got {type(data).__name__}: {data!r}")
        if len(inputs) != len(local_grads):
            raise ValueError(
                f"{len(inputs)} inputs need {len(inputs)} local gradients, got {len(local_grads)}"
            )
        self.data = float(data)
        self.grad = 0.0
        self.inputs = tuple(inputs)
        self.local_grads = tuple(map(float, local_grads))  # no generator object per node
        self.op = op
        self.label = label

    # -- arithmetic: each output next to its local derivatives ---------------------------------
    def __add__(self, other: Value | Number) -> Value:
        other = as_value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Value | Number) -> Value:
        other = as_value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, exponent: Value | Number) -> Value:
        b = exponent.data if isinstance(exponent, Value) else exponent
        if not isinstance(b, Real):
            return NotImplemented
        a = self.data
        if a < 0 and not float(b).is_integer():
            raise ValueError(f"{a!r} ** {b!r} is not a real number: a negative base needs an "
                             "integer exponent")
        out = a**b
        d_base = _power_rule(a, b)
        if isinstance(exponent, Value):
            # d(a^b)/db = a^b log a exists only for a > 0; at a = 0 its limit is 0 for b >= 0
            # (a^b is 0 or 1 there), as PyTorch has it.
            d_exponent = out * math.log(a) if a > 0 else 0.0 if a == 0 and b >= 0 else math.nan
            return Value(out, (self, exponent), (d_base, d_exponent), "**")
        return Value(out, (self,), (d_base,), f"**{b:g}")

    def __rpow__(self, base: Number) -> Value:
        return as_value(base) ** self

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), (-1.0,), "neg")

    def __sub__(self, other: Value | Number) -> Value:
        other = as_value(other)
        return Value(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __truediv__(self, other: Value | Number) -> Value:
        other = as_value(other)
        if other.data == 0:
            raise ZeroDivisionError(f"division of {self.data!r} by a Value equal to 0")
        local_grads = (1 / other.data, -self.data / other.data**2)
        return Value(self.data / other.data, (self, other), local_grads, "/")

    def __radd__(self, other: Number) -> Value:
        return as_value(other) + self

    def __rmul__(self, other: Number) -> Value:
        return as_value(other) * self

    def __rsub__(self, other: Number) -> Value:
        return as_value(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return as_value(other) / self

    # -- elementary functions -------------------------------------------------------------------
    def exp(self) -> Value:
        """e^x; its derivative is itself, e^x."""
        out = math.exp(self.data)
        return Value(out, (self,), (out,), "exp")

    def log(self) -> Value:
        """ln x for x > 0; derivative 1/x."""
        if self.data <= 0:
            raise ValueError(f"log of a non-positive number: {self.data!r}")
        return Value(math.log(self.data), (self,), (1 / self.data,), "log")

    def tanh(self) -> Value:
        """tanh x; derivative 1 - tanh^2 x, from the output."""
        out = math.tanh(self.data)
        return Value(out, (self,), (1 - out * out,), "tanh")

    def relu(self) -> Value:
        """max(x, 0); derivative 1 for x > 0, else 0 (0 at the kink x = 0)."""
        positive = self.data > 0
        return Value(self.data if positive else 0.0, (self,), (1.0 if positive else 0.0,), "relu")

    def sigmoid(self) -> Value:
        """1 / (1 + e^-x); derivative s (1 - s) with s the output."""
        # 1 / (1 + e^-x), written so that e^... never overflows and tiny outputs keep their digits
        e = math.exp(-abs(self.data))
        out = (1.0 if self.data >= 0 else e) / (1 + e)
        return Value(out, (self,), (out * (1 - out),), "sigmoid")

    # -- the backward pass ------------------------------------------------------------------------
    def backward(self) -> None:
        """Add d self / d v to ``v.grad`` for every Value ``v`` that ``self`` depends on.

        Gradients are gathered in a ledger first: a node's total is complete once every node
        that used it (all later in topological order) has passed its share back. The walk uses
        an explicit stack, so a chain of 100,000 ops is fine.
        """
        ledger = {id(self): 1.0}
        for node in reversed(topological_order(self)):
            upstream = ledger.get(id(node), 0.0)
            node.grad += upstream
            for parent, local in zip(node.inputs, node.local_grads):
                ledger[id(parent)] = ledger.get(id(parent), 0.0) + upstream * local

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


def _power_rule(a: float, b: float) -> float:
    """d(a^b)/da = b a^(b-1), with its limits at a = 0, where a^(b-1) would divide by zero."""
    if a == 0 and b < 1:
        return 0.0 if b == 0 else math.inf  # a^0 is constant; a^0.5 is vertical at 0
    return b * a ** (b - 1)


def as_value(x: Value | Number) -> Value:
    """``x`` itself if it is a Value, else a new leaf Value holding the number."""
    return x if isinstance(x, Value) else Value(x)
