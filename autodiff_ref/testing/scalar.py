"""Checks for a scalar ``Value`` engine that follows the reference protocol (notebook 03).

The protocol, shared with :class:`autodiff_ref.scalar.Value`: a node has ``.data`` (a float),
``.grad`` (a float, 0.0 at creation), ``.inputs`` (the nodes it was computed from),
``.local_grads`` (one number per input: d node / d input) and ``.op`` (a short name, ``""`` for
a leaf). ``Value(data, inputs=(), local_grads=(), op="")`` makes a node, and ``root.backward()``
adds d root / d node to ``node.grad`` for every node ``root`` depends on, ``root`` included.

* :func:`check_value_op` checks one op: its forward value against the reference engine, and
  each local gradient against a numeric derivative (central differences in float64), with
  Python numbers on either side and a node used as both inputs.
* :func:`check_backward` checks ``backward()`` alone, on graphs it builds with the constructor
  (so a wrong op cannot hide a right backward, or the other way round): nodes used twice, a
  diamond, a node used at two depths, a chain of 3,000 ops or more, and accumulation across calls.
* :func:`check_expression` checks ops and ``backward()`` together on one expression built with
  the learner's own ops, against the reference engine and numeric gradients.
* :func:`value_class_or_reference` hands back the learner's class when it passes both, and the
  reference otherwise, so the later cells of a notebook still run for a learner who is stuck.

A check passes silently or raises :class:`~autodiff_ref.testing.core.CheckFailure` with a
message that names the op or graph, the input, the expected and the actual number, and a hint
when the numbers match a usual mistake.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..gradcheck import numeric_grad
from ..graph import topological_order
from ..scalar import Value as ReferenceValue
from .core import ATOL, RTOL, CheckFailure, deep_chain_length, own_work, passed, random_array, watched

__all__ = [
    "SCALAR_OPS",
    "check_value_op",
    "check_backward",
    "check_expression",
    "value_class_or_reference",
]


# --- comparing two numbers -----------------------------------------------------------------------


def _is_close(got: float, expected: float) -> bool:
    return abs(got - expected) <= ATOL + RTOL * abs(expected)  # False for nan, as it should be


def _scalar_mistake(got: float, expected: float) -> str | None:
    """The usual mistakes one pair of numbers can reveal (a ratio of two numbers proves nothing)."""
    if not math.isfinite(got):
        return "the result is nan or inf: look for a log or a division of a value that can be 0."
    if abs(expected) > 1e-9 and _is_close(-got, expected):
        return "the sign is flipped: look for a missing or extra minus."
    if got == 0.0:
        return "the result is 0: was this value never set, or never passed on?"
    return None


def _as_number(got: Any, what: str) -> float:
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        if hasattr(got, "data"):
            raise CheckFailure(f"{what} is a {type(got).__name__}, but it should be a plain number.")
        raise CheckFailure(f"{what} should be a number, but it is {type(got).__name__}: {got!r}")
    return float(got)


def _assert_number(got: Any, expected: float, what: str, hint: str | None = None) -> None:
    """Raise a CheckFailure naming ``what`` unless ``got`` is close to ``expected``."""
    got_number = _as_number(got, what)
    if _is_close(got_number, expected):
        return
    reason = hint or _scalar_mistake(got_number, expected)
    raise CheckFailure(
        f"{what} is wrong.\n  expected {expected:.6g}, got {got_number:.6g}"
        + (f"\n  Hint: {reason}" if reason else "")
    )


# --- the ops -------------------------------------------------------------------------------------

# A mistake list maps the float operands and the position of the input being differentiated to
# (wrong value, hint) pairs: the local gradients that the usual slips produce.
Mistakes = Callable[[tuple[float, ...], int], list[tuple[float, str]]]


@dataclass(frozen=True)
class _Op:
    """One op of the protocol, as the checks exercise it."""

    template: str  # how the op is written, "{0} * {1}" or "{0}.exp()"
    apply: Callable[..., Any]  # the op on Values (and on numbers where the template allows)
    on_floats: Callable[..., float]  # the same op on plain floats, for numeric derivatives
    domains: tuple[str, ...]  # random_array domain of each operand
    forms: tuple[str, ...]  # per form, one letter per operand: a Value "a"/"b", or a number "n"
    mistakes: Mistakes
    reflected: str | None = None  # the method Python calls when a number is on the left


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    return math.exp(x) / (1.0 + math.exp(x))  # the same number, without overflow for x << 0


_BINARY_FORMS = ("ab", "an", "na")

SCALAR_OPS: dict[str, _Op] = {
    "add": _Op(
        "{0} + {1}", operator.add, operator.add, ("real", "real"), _BINARY_FORMS + ("aa",),
        lambda xs, i: [(xs[1 - i], "that is the rule for *; for + both local gradients are 1.")],
        "__radd__",
    ),
    "sub": _Op(
        "{0} - {1}", operator.sub, operator.sub, ("real", "real"), _BINARY_FORMS,
        lambda xs, i: [(1.0 if i else -1.0, "a - b has local gradients +1 for a and -1 for b.")],
        "__rsub__",
    ),
    "mul": _Op(
        "{0} * {1}", operator.mul, operator.mul, ("real", "real"), _BINARY_FORMS + ("aa",),
        lambda xs, i: [
            (xs[i], "the operands are swapped: d(a*b)/da = b and d(a*b)/db = a, so each input's "
                    "local gradient is the *other* input's data."),
            (1.0, "1 is the local gradient of +; for * it is the other input's data."),
        ],
        "__rmul__",
    ),
    "div": _Op(
        "{0} / {1}", operator.truediv, operator.truediv, ("real", "real"), _BINARY_FORMS,
        lambda xs, i: [
            (-xs[0] / xs[1] ** 2, "that is d(a/b)/db; d(a/b)/da = 1/b."),
        ] if i == 0 else [
            (-1.0 / xs[1] ** 2, "the factor a is missing: d(a/b)/db = -a/b**2."),
            (1.0 / xs[1], "that is d(a/b)/da; d(a/b)/db = -a/b**2."),
        ],
        "__rtruediv__",
    ),
    "pow": _Op(
        "{0} ** {1}", operator.pow, operator.pow, ("real", "exponent"), ("an",),
        lambda xs, i: [
            (xs[0] ** (xs[1] - 1), "the factor n is missing: d(x**n)/dx = n * x**(n-1)."),
            (xs[1] * xs[0] ** xs[1], "the exponent was not lowered: d(x**n)/dx = n * x**(n-1), "
                                     "not n * x**n."),
            (xs[1] * xs[0] ** (xs[1] + 1), "the exponent went up instead of down: "
                                           "d(x**n)/dx = n * x**(n-1)."),
        ] + ([(xs[0] ** xs[1] * math.log(xs[0]),
               "that is the derivative with respect to the exponent n; with respect to x it is "
               "n * x**(n-1).")] if xs[0] > 0 else []),
    ),
    "neg": _Op(
        "-{0}", operator.neg, operator.neg, ("real",), ("a",),
        lambda xs, i: [(1.0, "-a falls as a grows: its local gradient is -1.")],
    ),
    "exp": _Op(
        "{0}.exp()", lambda a: a.exp(), math.exp, ("real",), ("a",),
        lambda xs, i: [
            (xs[0], "the local gradient of exp is its output exp(a), not its input a."),
            (1.0, "the local gradient of exp is its output exp(a), not 1."),
        ],
    ),
    "log": _Op(
        "{0}.log()", lambda a: a.log(), math.log, ("positive",), ("a",),
        lambda xs, i: [
            (math.log(xs[0]), "d log(a)/da = 1/a, not log(a)."),
            (xs[0], "d log(a)/da = 1/a, not a."),
        ],
    ),
    "tanh": _Op(
        "{0}.tanh()", lambda a: a.tanh(), math.tanh, ("unit",), ("a",),
        lambda xs, i: [
            (1.0 - math.tanh(xs[0]), "the square is missing: d tanh(a)/da = 1 - tanh(a)**2, "
                                     "not 1 - tanh(a)."),
            (1.0 - xs[0] ** 2, "use the output t = tanh(a): the local gradient is 1 - t**2, "
                               "not 1 - a**2."),
            (math.tanh(xs[0]) ** 2 - 1.0, "the sign is flipped: d tanh(a)/da = 1 - tanh(a)**2."),
            (1.0 + math.tanh(xs[0]) ** 2, "the square is added, but it is subtracted: d tanh(a)/da "
                                          "= 1 - tanh(a)**2, which is at most 1."),
        ],
    ),
    "relu": _Op(
        "{0}.relu()", lambda a: a.relu(), lambda x: max(x, 0.0), ("real",), ("a",),
        lambda xs, i: [
            (0.0 if xs[0] > 0 else 1.0, "relu at the wrong side: its local gradient is 1 where "
                                        "the input is positive and 0 where it is negative."),
            (max(xs[0], 0.0), "the local gradient of relu is 1 or 0, not its output."),
            (xs[0], "the local gradient of relu is 1 or 0, not its input."),
        ],
    ),
    "sigmoid": _Op(
        "{0}.sigmoid()", lambda a: a.sigmoid(), _sigmoid, ("real",), ("a",),
        lambda xs, i: [
            (_sigmoid(xs[0]), "the factor (1 - s) is missing: with s = sigmoid(a), the local "
                              "gradient is s * (1 - s)."),
            (1.0 - _sigmoid(xs[0]), "the factor s is missing: with s = sigmoid(a), the local "
                                    "gradient is s * (1 - s)."),
            (xs[0] * (1.0 - xs[0]), "use the output s = sigmoid(a): the local gradient is "
                                    "s * (1 - s), not a * (1 - a)."),
        ],
    ),
}

# Exponents for pow: integer ones on bases of either sign, fractional ones on positive bases.
_EXPONENTS = (2.0, 3.0, -1.0, 0.5, -1.5)


# The methods of the reference Value that implement each op: the learner's class may not use them.
_METHODS: dict[str, tuple[str, ...]] = {
    "add": ("__add__", "__radd__"),
    "sub": ("__sub__", "__rsub__"),
    "mul": ("__mul__", "__rmul__"),
    "div": ("__truediv__", "__rtruediv__"),
    "pow": ("__pow__",),
    "neg": ("__neg__",),
    "exp": ("exp",),
    "log": ("log",),
    "tanh": ("tanh",),
    "relu": ("relu",),
    "sigmoid": ("sigmoid",),
}


def _name_of(ValueClass: Any) -> str:
    return getattr(ValueClass, "__name__", "Value")


def _op_named(op_name: str) -> _Op:
    if op_name not in SCALAR_OPS:
        raise ValueError(f"unknown op {op_name!r}; the ops are {', '.join(SCALAR_OPS)}")
    return SCALAR_OPS[op_name]


def _random_operands(op: _Op, rng: np.random.Generator, trial: int) -> tuple[float, ...]:
    """Kink-free operands, rounded so messages can quote them exactly.

    The first operand alternates in sign from trial to trial, so relu is seen on both sides.
    """
    operands = []
    for position, domain in enumerate(op.domains):
        if domain == "exponent":
            exponent = _EXPONENTS[trial % len(_EXPONENTS)]
            operands.append(exponent)
            if not exponent.is_integer():
                operands[0] = abs(operands[0])  # a fractional power needs a positive base
            continue
        number = round(float(random_array((), rng, domain)), 3)
        if position == 0 and domain == "real":
            number = abs(number) if trial % 2 == 0 else -abs(number)
        operands.append(number)
    return tuple(operands)


# --- following a learner's graph -------------------------------------------------------------------


def _describe_node(thing: Any) -> str:
    return f"{type(thing).__name__} {thing!r}"


_TUPLE_HINT = (
    "inputs and local_grads are tuples, one entry per input: for a single input write "
    "(self,) and (g,), with the comma; (g) is just g."
)


def _recorded(out: Any, name: str, op_name: str, text: str) -> tuple:
    """``out.inputs`` or ``out.local_grads`` as a tuple; a class that stores what it is given
    may hold a bare number there."""
    try:
        return tuple(getattr(out, name))
    except TypeError as error:
        raise CheckFailure(
            f"{op_name}: for {text}, out.{name} is {_describe_node(getattr(out, name))}, not a tuple.\n"
            f"  Hint: {_TUPLE_HINT}"
        ) from error


def _check_node_shape(out: Any, op_name: str, text: str) -> None:
    """``out`` must be a node whose inputs are nodes, with one number per input in local_grads."""
    missing = [name for name in ("data", "grad", "inputs", "local_grads") if not hasattr(out, name)]
    if missing:
        raise CheckFailure(
            f"{op_name}: {text} returned {_describe_node(out)}, which has no "
            f"{', '.join('.' + name for name in missing)}.\n"
            "  Hint: every op returns a new Value(data, inputs=..., local_grads=..., op=...)."
        )
    inputs = _recorded(out, "inputs", op_name, text)
    local_grads = _recorded(out, "local_grads", op_name, text)
    if len(inputs) != len(local_grads):
        raise CheckFailure(
            f"{op_name}: for {text}, out.inputs holds {len(inputs)} node(s) but out.local_grads "
            f"holds {len(local_grads)} number(s).\n"
            "  Hint: record one local gradient per input, in the same order as the inputs."
        )
    for position, node in enumerate(inputs):
        if not all(hasattr(node, name) for name in ("data", "inputs", "local_grads")):
            raise CheckFailure(
                f"{op_name}: for {text}, out.inputs[{position}] is {_describe_node(node)}, not a Value.\n"
                "  Hint: wrap a Python number in a Value before recording it as an input."
            )
    for position, local in enumerate(local_grads):
        if hasattr(local, "data"):
            raise CheckFailure(
                f"{op_name}: for {text}, out.local_grads[{position}] is a {type(local).__name__}, "
                "not a number.\n  Hint: store plain numbers, e.g. other.data rather than other."
            )
        _as_number(local, f"{op_name}: for {text}, out.local_grads[{position}]")


def _gradients_by_node(root: Any) -> dict[int, float]:
    """d root / d node for every node, keyed by id, from the nodes' own local gradients.

    This is the whole of reverse mode: it lets :func:`check_value_op` follow an op that the
    learner built from other ops, without relying on the learner's ``backward``.
    """
    ledger = {id(root): 1.0}
    for node in reversed(topological_order(root)):
        upstream = ledger.get(id(node), 0.0)
        for node_input, local in zip(node.inputs, node.local_grads):
            ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + upstream * float(local)
    return ledger


def _derivative_name(out: Any, leaf: Any, name: str) -> str:
    """How the learner should read d out / d leaf off their node."""
    positions = [i for i, node in enumerate(out.inputs) if node is leaf]
    if len(positions) == 1:
        return f"out.local_grads[{positions[0]}] (d out / d {name})"
    if len(positions) > 1:
        terms = " + ".join(f"out.local_grads[{i}]" for i in positions)
        return f"d out / d {name} = {terms} ({name} is recorded {len(positions)} times)"
    return f"d out / d {name}, following inputs and local_grads back from out"


# --- check_value_op --------------------------------------------------------------------------------


def _build_operands(make_leaf: Callable[[float], Any], form: str, values: tuple[float, ...]):
    """Operands for one form: Values named by letter (shared when a letter repeats), numbers as is."""
    leaves: dict[str, Any] = {}
    operands = []
    for letter, value in zip(form, values):
        if letter == "n":
            operands.append(value)
            continue
        if letter not in leaves:
            leaves[letter] = make_leaf(value)
        operands.append(leaves[letter])
    return operands, leaves


def _describe_case(op: _Op, form: str, values: tuple[float, ...]) -> str:
    shown = [f"{value:g}" if letter == "n" else letter for letter, value in zip(form, values)]
    named = {}
    for letter, value in zip(form, values):
        if letter != "n":
            named.setdefault(letter, value)
    where = ", ".join(f"{letter} = {value:g}" for letter, value in named.items())
    return op.template.format(*shown) + (f" with {where}" if where else "")


def _not_written_yet(what: str) -> CheckFailure:
    return CheckFailure(
        f"{what} raised NotImplementedError: it is not written yet.\n"
        "  Hint: replace `raise NotImplementedError()` in its cell with your code, run that "
        "cell, then run this test again."
    )


_AS_VALUE_HINT = "wrap a Python number in a Value (as_value) before using it."


def _type_error_hint(message: str, op: _Op, form: str) -> str | None:
    """The likely cause of a TypeError an op raised, read off Python's message."""
    if "has no len()" in message or "is not iterable" in message:
        return _TUPLE_HINT  # a number where the constructor wanted a tuple: a forgotten comma
    # Python says one of these when no method takes the operands: a number reached an operator
    # or a reflected method is missing. Any other TypeError (the notebook's Value explains its
    # own) is not about the operands' types, and a hint about them would mislead.
    if "unsupported operand" not in message and "not callable" not in message:
        return None
    if form.startswith("n") and op.reflected:
        return (f"with a number on the left Python calls the Value's {op.reflected}; "
                "define it to wrap the number and do the same op.")
    return _AS_VALUE_HINT if "n" in form else None


def _attribute_error_hint(message: str, form: str) -> str | None:
    """A number used as if it were a Value, say other.data on the 2.5 of a * 2.5."""
    is_number = message.startswith(("'float' object", "'int' object"))
    return _AS_VALUE_HINT if is_number and "n" in form else None


def _apply(op_name: str, op: _Op, operands: list[Any], form: str, text: str) -> Any:
    try:
        return watched(op.apply, *operands)
    except NotImplementedError as error:
        raise _not_written_yet(f"{op_name}: {text}") from error
    except Exception as error:
        if isinstance(error, TypeError):
            hint = _type_error_hint(str(error), op, form)
        elif isinstance(error, AttributeError):
            hint = _attribute_error_hint(str(error), form)
        else:
            hint = None
        raise CheckFailure(
            f"{op_name}: computing {text} raised {type(error).__name__}: {error}"
            + (f"\n  Hint: {hint}" if hint else "")
        ) from error


def _check_case(ValueClass: type, op_name: str, op: _Op, form: str, values: tuple[float, ...]) -> None:
    text = _describe_case(op, form, values)
    operands, leaves = _build_operands(ValueClass, form, values)
    out = _apply(op_name, op, operands, form, text)
    _check_node_shape(out, op_name, text)

    reference_operands, _ = _build_operands(ReferenceValue, form, values)
    expected_data = op.apply(*reference_operands).data
    _assert_number(out.data, expected_data, f"{op_name}: the value (out.data) of {text}")

    try:
        ledger = _gradients_by_node(out)
    except (AttributeError, TypeError, ValueError) as error:
        raise CheckFailure(
            f"{op_name}: could not follow the graph of {text} back from out: "
            f"{type(error).__name__}: {error}"
        ) from error
    for name, leaf in leaves.items():
        if id(leaf) not in ledger:
            raise CheckFailure(
                f"{op_name}: {name} is not in the graph of {text}: out.inputs does not lead back to it.\n"
                f"  Hint: you forgot to record an input — record every Value the op reads in "
                "inputs, with its local gradient at the same position in local_grads."
            )

        def op_of(x: float, name: str = name) -> float:
            moved = [x if letter == name else value for letter, value in zip(form, values)]
            return op.on_floats(*moved)

        expected = float(numeric_grad(op_of, values[form.index(name)])[0])
        got = ledger[id(leaf)]
        hint = None
        if form.count(name) == 1:
            for wrong, why in op.mistakes(values, form.index(name)):
                if _is_close(got, wrong) and not _is_close(wrong, expected):
                    hint = why
                    break
        _assert_number(got, expected, f"{op_name}: {_derivative_name(out, leaf, name)} for {text}", hint)


def check_value_op(
    ValueClass: type,
    op_name: str,
    *,
    seed: int = 0,
    trials: int | None = None,
    points: list[tuple[float, ...]] | None = None,
) -> None:
    """Check one op of a learner's scalar ``Value`` class; raise CheckFailure naming what is wrong.

    ``op_name`` is one of ``add sub mul div pow neg exp log tanh relu sigmoid``. The op runs on
    Values made by ``ValueClass(x)``, in every form it is written: ``a + b``, ``a + 2.5`` and
    ``2.5 + a`` for the arithmetic ops, ``a + a`` and ``a * a`` for a node used twice,
    ``a ** n`` with a number ``n`` for pow, ``a.exp()`` and so on for the methods. For each
    form the check compares ``out.data`` with the reference ``autodiff_ref.scalar.Value`` and
    d out / d input (read off ``out.inputs`` and ``out.local_grads``, so an op built from other
    ops works too) with a central difference in float64.

    ``trials`` random draws per form (kink-free: never 0 for relu, positive for log and for
    fractional powers; by default 3, and for pow one per exponent 2, 3, -1, 0.5, -1.5); or
    ``points``, a list of operand tuples such as ``[(2.0, 3.0)]`` (for pow: ``(base,
    exponent)``), to check chosen edge values instead.
    """
    op = _op_named(op_name)
    with own_work(_name_of(ValueClass), ValueClass, ReferenceValue, methods=_METHODS[op_name]):
        if points is None:
            if trials is None:
                trials = len(_EXPONENTS) if op_name == "pow" else 3
            rng = np.random.default_rng(seed)
            draws = [_random_operands(op, rng, trial) for trial in range(trials)]
        else:
            draws = [tuple(float(x) for x in point) for point in points]
            wrong = [point for point in draws if len(point) != len(op.domains)]
            if wrong:
                raise ValueError(f"{op_name} takes {len(op.domains)} operand(s) per point, got {wrong[0]}")
            if op_name == "pow":
                wrong = [(base, n) for base, n in draws if base < 0 and not n.is_integer()]
                if wrong:
                    raise ValueError(f"pow: a fractional exponent needs a positive base, got {wrong[0]}")
        for form in op.forms:
            for values in draws:
                _check_case(ValueClass, op_name, op, form, values)


# --- check_backward --------------------------------------------------------------------------------


class _FloatOps:
    """The ops of the test graphs on plain floats, for numeric gradients."""

    add = staticmethod(operator.add)
    mul = staticmethod(operator.mul)
    tanh = staticmethod(math.tanh)
    exp = staticmethod(math.exp)

    @staticmethod
    def scale(a: float, factor: float) -> float:
        return a * factor


class _NodeOps:
    """The same ops as nodes of the learner's class, made with its constructor.

    Building the graphs here, rather than with the learner's operators, tests backward() on its
    own: the local gradients in these nodes are right by construction.
    """

    def __init__(self, ValueClass: type):
        self.ValueClass = ValueClass

    def node(self, data: float, inputs: tuple, local_grads: tuple, op: str) -> Any:
        return self.ValueClass(data, inputs=inputs, local_grads=local_grads, op=op)

    def add(self, a: Any, b: Any) -> Any:
        return self.node(a.data + b.data, (a, b), (1.0, 1.0), "+")

    def mul(self, a: Any, b: Any) -> Any:
        return self.node(a.data * b.data, (a, b), (b.data, a.data), "*")

    def scale(self, a: Any, factor: float) -> Any:
        return self.node(a.data * factor, (a,), (factor,), f"*{factor:g}")

    def tanh(self, a: Any) -> Any:
        t = math.tanh(a.data)
        return self.node(t, (a,), (1.0 - t * t,), "tanh")

    def exp(self, a: Any) -> Any:
        e = math.exp(a.data)
        return self.node(e, (a,), (e,), "exp")


def _long_chain(length: int) -> Callable[..., Any]:
    """A chain of ``length`` ops (:func:`deep_chain_length`), which a recursive walk cannot finish."""

    def build(ops: Any, x: Any) -> Any:
        for _ in range(length):
            x = ops.scale(x, 1.0001)
        return x

    return build


@dataclass(frozen=True)
class _Graph:
    text: str
    leaf_names: tuple[str, ...]
    build: Callable[..., Any]  # (ops, *leaves) -> root
    lesson: str | None = None  # what this graph tests, for a failure no usual mistake explains


_ORDER_LESSON = (
    "here h reaches out along two paths, so it must collect both shares before it passes its "
    "gradient on to its inputs. Visit every node exactly once, in "
    "reversed(topological_order(root)), rather than following each path separately."
)

_GRAPHS = (
    _Graph("out = x + x (x used twice)", ("x",), lambda ops, x: ops.add(x, x)),
    _Graph("out = x * x (x used twice)", ("x",), lambda ops, x: ops.mul(x, x)),
    _Graph(
        "out = w1*x + w2*x (x feeds two products)", ("w1", "w2", "x"),
        lambda ops, w1, w2, x: ops.add(ops.mul(w1, x), ops.mul(w2, x)),
    ),
    _Graph(
        "a diamond: h = x*y, out = tanh(h) + exp(h)", ("x", "y"),
        lambda ops, x, y: (lambda h: ops.add(ops.tanh(h), ops.exp(h)))(ops.mul(x, y)),
        _ORDER_LESSON,
    ),
    _Graph(
        "x used at two depths: h = x*y, out = h * (h + x)", ("x", "y"),
        lambda ops, x, y: (lambda h: ops.mul(h, ops.add(h, x)))(ops.mul(x, y)),
        _ORDER_LESSON,
    ),
)


def _chain_graph(length: int) -> _Graph:
    return _Graph(f"a chain of {length:,} ops: out = 1.0001 * (1.0001 * (... * x))", ("x",), _long_chain(length))


def _simulated_mistakes(root: Any) -> dict[str, dict[int, float]]:
    """The .grad each node would end up with under three usual slips in a backward, keyed by id.

    ``overwritten``: each use assigns its share instead of adding it. ``no_upstream``: each
    use sends its local gradient alone, not times its own gradient (right wherever that is 1,
    as on a node used twice by the root). ``inputs_first``: the nodes are visited in
    topological order rather than reversed, so each node takes its gradient before its uses
    have sent their shares.
    """
    order = topological_order(root)
    overwritten: dict[int, float] = {id(root): 1.0}
    no_upstream: dict[int, float] = {id(root): 1.0}
    for node in reversed(order):
        for node_input, local in zip(node.inputs, node.local_grads):
            overwritten[id(node_input)] = overwritten.get(id(node), 0.0) * local
            no_upstream[id(node_input)] = no_upstream.get(id(node_input), 0.0) + local
    collected: dict[int, float] = {id(root): 1.0}
    inputs_first: dict[int, float] = {}
    for node in order:
        inputs_first[id(node)] = collected.get(id(node), 0.0)
        for node_input, local in zip(node.inputs, node.local_grads):
            share = inputs_first[id(node)] * local
            collected[id(node_input)] = collected.get(id(node_input), 0.0) + share
    return {"overwritten": overwritten, "no_upstream": no_upstream, "inputs_first": inputs_first}


def _one_branch_shares(root: Any) -> dict[int, list[float]]:
    """For each node, what each of its uses sends back (their sum is its gradient)."""
    gradients = _gradients_by_node(root)
    shares: dict[int, list[float]] = {}
    for node in topological_order(root):
        for node_input, local in zip(node.inputs, node.local_grads):
            shares.setdefault(id(node_input), []).append(gradients[id(node)] * local)
    return shares


def _backward_hint(root: Any, leaves: dict[str, Any], got: dict[str, float]) -> str | None:
    ids = {name: id(leaf) for name, leaf in leaves.items()}
    simulated = _simulated_mistakes(root)
    shares = _one_branch_shares(root)
    expected = _gradients_by_node(root)

    def matches(gradients: dict[int, float]) -> bool:
        return all(_is_close(got[name], gradients.get(ids[name], 0.0)) for name in leaves)

    if matches(expected):
        return ("backward() combined the local gradients stored in the graph correctly, so an op "
                "stored a wrong local gradient: make the op tests above pass first.")
    if all(value == 0.0 for value in got.values()) and root.grad == 0.0:
        return ("nothing reached the leaves and out.grad is 0: seed the root with 1.0 "
                "(d out / d out = 1) before walking back through the graph.")
    if matches(simulated["no_upstream"]):
        return ("each input got its local gradient alone: multiply each input's local gradient by "
                "the node's upstream gradient (its .grad, or its entry in the ledger): "
                "share = upstream * local.")
    one_branch = any(
        len(shares[ids[name]]) > 1 and not _is_close(got[name], expected[ids[name]])
        and any(_is_close(got[name], share) for share in shares[ids[name]])
        for name in leaves
    )
    if matches(simulated["overwritten"]) or one_branch:
        return ("gradients are overwritten instead of summed: a node used more than once gets a "
                "share of gradient from every use, and its gradient is the sum of the shares "
                "(add with +=, never assign with =).")
    if matches(simulated["inputs_first"]):
        return ("the nodes were visited inputs first: walk reversed(topological_order(root)), so "
                "that every node has its whole gradient before it passes it on to its inputs.")
    if all(value == 0.0 for value in got.values()):
        return "every leaf's grad is still 0: does backward() add what it collected to each node's .grad?"
    return None


def _missing_entry_hint(root: Any, key: Any) -> str | None:
    """Why a backward() looked up a node (or its id) that its ledger did not hold yet."""
    if key is root or (isinstance(key, int) and key == id(root)):
        return ("the root has no entry in the ledger: seed it with d root / d root = 1, as in "
                "ledger = {self: 1.0}, before the walk.")
    ids = {id(node) for node in topological_order(root)}
    if id(key) not in ids and not (isinstance(key, int) and key in ids):
        return None  # some other dict of the learner's: no guess
    # A walk in the wrong order and a `+=` on an input's first share both fail on a leaf of
    # out = x + x, so the message cannot tell them apart: name both.
    return ("a node was read from the ledger before any of its uses sent it a share: walk "
            "reversed(topological_order(root)). If the walk is reversed already, an input's "
            "first share has no entry to add to: write ledger.get(node_input, 0.0) + share, "
            "not ledger[node_input] += share.")


def _run_backward(root: Any, text: str) -> None:
    try:
        watched(root.backward)
    except NotImplementedError as error:
        raise _not_written_yet("backward()") from error
    except KeyError as error:
        hint = _missing_entry_hint(root, error.args[0]) if error.args else None
        raise CheckFailure(
            f"backward() on {text} raised KeyError: {error}" + (f"\n  Hint: {hint}" if hint else "")
        ) from error
    except RecursionError as error:
        raise CheckFailure(
            f"backward() on {text} raised RecursionError.\n"
            "  Hint: Python allows only about a thousand nested calls, and a recursive walk "
            "makes one per node. Use an explicit stack instead: an iterative topological order "
            "such as autodiff_ref.graph.topological_order(root)."
        ) from error
    except Exception as error:
        raise CheckFailure(f"backward() on {text} raised {type(error).__name__}: {error}") from error


def _leaf_grads(leaves: dict[str, Any], after: str) -> dict[str, float]:
    return {name: _as_number(leaf.grad, f"{after}, {name}.grad") for name, leaf in leaves.items()}


def _leaf_table(got: dict[str, float], expected: dict[str, float]) -> str:
    return "\n".join(
        f"    {'✓' if _is_close(got[name], expected[name]) else '✗'} {name}.grad: "
        f"expected {expected[name]:.6g}, got {got[name]:.6g}"
        for name in expected
    )


@dataclass
class _CheckedGraph:
    """A graph whose first backward() was right, kept for the accumulation check."""

    text: str
    root: Any
    leaves: dict[str, Any]
    first: dict[str, float]  # each leaf's grad after the first backward()


def _check_first_backward(ValueClass: type, graph: _Graph, leaf_data: tuple[float, ...]) -> _CheckedGraph:
    where = ", ".join(f"{name} = {value:g}" for name, value in zip(graph.leaf_names, leaf_data))
    text = f"{graph.text} with {where}"
    try:
        leaves = {name: ValueClass(value) for name, value in zip(graph.leaf_names, leaf_data)}
        root = graph.build(_NodeOps(ValueClass), *leaves.values())
    except Exception as error:
        raise CheckFailure(
            f"could not build {graph.text}: Value(data, inputs=..., local_grads=..., op=...) raised "
            f"{type(error).__name__}: {error}\n"
            "  Hint: the checks build graphs with this constructor; keep the signature as given."
        ) from error

    def on_floats(*xs: np.ndarray) -> float:
        return graph.build(_FloatOps, *(float(x) for x in xs))

    expected = dict(zip(graph.leaf_names, (float(g) for g in numeric_grad(on_floats, *leaf_data))))
    _run_backward(root, text)
    got = _leaf_grads(leaves, f"after backward() on {text}")
    if not all(_is_close(got[name], expected[name]) for name in expected):
        hint = _backward_hint(root, leaves, got) or graph.lesson
        raise CheckFailure(
            f"backward() on {text} left wrong gradients in the leaves:\n"
            + _leaf_table(got, expected)
            + (f"\n  Hint: {hint}" if hint else "")
        )
    _assert_number(
        root.grad, 1.0, f"after backward() on {text}, out.grad (d out / d out)",
        "backward() should add 1.0 to the root's own .grad too: the seed of the walk.",
    )
    return _CheckedGraph(text, root, leaves, got)


def _check_second_backward(checked: _CheckedGraph) -> None:
    _run_backward(checked.root, checked.text + ", called a second time")
    again = _leaf_grads(checked.leaves, f"after a second backward() on {checked.text}")
    twice = {name: 2.0 * grad for name, grad in checked.first.items()}
    if all(_is_close(again[name], twice[name]) for name in twice):
        return
    if all(_is_close(again[name], checked.first[name]) for name in twice):
        hint = ("backward() replaced .grad instead of adding to it. Add what this call collected "
                "(node.grad += ...), so gradients accumulate across calls as in PyTorch; a "
                "training loop resets them to 0 itself.")
    else:
        hint = ("a second call should add exactly the same gradients again. Collect this call's "
                "gradients in a fresh dict (a ledger), not in the nodes' .grad, and add them to "
                ".grad at the end.")
    raise CheckFailure(
        f"a second backward() on {checked.text} should double every leaf's grad:\n"
        + _leaf_table(again, twice)
        + f"\n  Hint: {hint}"
    )


def check_backward(ValueClass: type, *, seed: int = 0) -> None:
    """Check a learner's ``Value.backward()``; raise CheckFailure naming what is wrong.

    The graphs are built with ``ValueClass(data, inputs=..., local_grads=..., op=...)``, so
    only ``backward`` is on trial: ``x + x``, ``x * x`` and ``w1*x + w2*x`` (a node used
    twice), a diamond, a node used at two depths, and a chain of 3,000 ops or more (a recursive
    walk fails there: :func:`deep_chain_length`). Every leaf's ``.grad`` is compared with a
    numeric gradient and the root's ``.grad`` must be 1. Then a second ``backward()`` on each
    graph must double every leaf's ``.grad``: gradients accumulate across calls.
    """
    with own_work(_name_of(ValueClass), ValueClass, ReferenceValue, methods=("backward",)):
        rng = np.random.default_rng(seed)
        checked = []
        for graph in _GRAPHS + (_chain_graph(deep_chain_length()),):
            leaf_data = tuple(round(float(x), 3) for x in random_array((len(graph.leaf_names),), rng))
            checked.append(_check_first_backward(ValueClass, graph, leaf_data))
        for graph in checked:
            _check_second_backward(graph)


def check_expression(
    ValueClass: type, text: str, build: Callable[..., Any], leaf_data: dict[str, float]
) -> None:
    """Check ops and ``backward()`` together on one expression; raise CheckFailure if wrong.

    ``build`` takes the leaves as keyword arguments named as in ``leaf_data`` and returns the
    root, e.g. ``lambda w, x, b: (w * x + b).tanh()``; ``text`` describes it for messages. The
    expression is built from ``ValueClass`` leaves with the learner's own ops and from
    reference Values; the root's data and, after ``backward()``, every leaf's ``.grad`` must
    match both the reference engine and a numeric gradient.
    """
    with own_work(_name_of(ValueClass), ValueClass, ReferenceValue, methods=("backward",)):
        names = tuple(leaf_data)
        values = tuple(float(leaf_data[name]) for name in names)
        where = ", ".join(f"{name} = {value:g}" for name, value in zip(names, values))
        text = f"{text} with {where}"

        leaves = {name: ValueClass(value) for name, value in zip(names, values)}
        try:
            out = watched(build, **leaves)
        except NotImplementedError as error:
            raise _not_written_yet(f"an op in {text}") from error
        except Exception as error:
            raise CheckFailure(f"computing {text} raised {type(error).__name__}: {error}") from error
        reference_leaves = {name: ReferenceValue(value) for name, value in zip(names, values)}
        reference_out = build(**reference_leaves)
        _assert_number(getattr(out, "data", out), reference_out.data, f"the value of {text}")

        def on_reference(*xs: np.ndarray) -> float:
            return build(**{name: ReferenceValue(float(x)) for name, x in zip(names, xs)}).data

        numeric = dict(zip(names, (float(g) for g in numeric_grad(on_reference, *values))))
        reference_out.backward()
        _run_backward(out, text)
        got = _leaf_grads(leaves, f"after backward() on {text}")
        agrees = all(
            _is_close(got[name], numeric[name]) and _is_close(got[name], reference_leaves[name].grad)
            for name in names
        )
        if not agrees:
            hint = _backward_hint(out, leaves, got)
            raise CheckFailure(
                f"backward() on {text} left wrong gradients in the leaves (expected: numeric "
                "gradient, which the reference engine matches):\n"
                + _leaf_table(got, numeric)
                + (f"\n  Hint: {hint}" if hint else "")
            )


# --- for the cells that use the engine -------------------------------------------------------------


def value_class_or_reference(ValueClass: type, ops: tuple[str, ...] = tuple(SCALAR_OPS)) -> type:
    """``ValueClass`` if its ``ops`` and ``backward`` pass the checks, else the reference ``Value``.

    Notebook cells that *use* an engine (to train a network, say) call this, so they run for a
    learner whose class is still unfinished; it prints which class they get and why.
    """
    try:
        for op_name in ops:
            check_value_op(ValueClass, op_name)
        check_backward(ValueClass)
    except CheckFailure as failure:
        first_line = str(failure).splitlines()[0].rstrip(".")
        print(
            f"Your {ValueClass.__name__} does not pass every check yet ({first_line}).\n"
            "The cells below use the reference autodiff_ref.scalar.Value instead, so you can read "
            "on; once the tests above pass, run this cell again to use your own."
        )
        return ReferenceValue
    passed(f"your {ValueClass.__name__} passes every check: the cells below use it.")
    return ValueClass
