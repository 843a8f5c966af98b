"""Checks for notebook 02: numeric derivatives, local derivatives, and the chain rule by hand.

* :func:`check_central_difference` checks a learner's ``central_difference(f, x, eps)`` on
  several functions, points and step sizes, against the reference central difference
  (:func:`autodiff_ref.gradcheck.numeric_grad`) and the exact derivative, and names the usual
  slips: a forward or backward difference, dividing by ``eps`` instead of ``2 * eps``, a flipped
  sign, a missing pair of parentheses, a step that ignores ``eps``, the more accurate five-point
  formula.
* :func:`central_difference_or_reference` hands back the learner's function when it passes, and
  the reference otherwise, so the plots after the exercise still work for a learner who is stuck.
* :func:`check_local_derivatives` checks one primitive's local derivatives (``add sub mul neg
  exp log reciprocal``), each returned as a tuple with one number per input, against the
  reference ``autodiff_ref.scalar.Value`` and a central difference in float64.
* :func:`check_sigmoid_by_hand` checks the upstream, local and downstream gradient at each node
  of ``y = 1 / (1 + exp(-z))``, from the output down, against the reference ``Value`` graph.
* :func:`check_fan_out` checks the gradients of ``f = w1*x + w2*x``, where ``x`` feeds two
  products, and says so when one branch's share of ``df/dx`` is lost.

A check passes silently or raises :class:`~autodiff_ref.testing.core.CheckFailure` with a
message that names the input, the expected and the actual number, and the likely mistake.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..gradcheck import numeric_grad
from .core import ATOL, RTOL, CheckFailure, own_work, random_array, watched

__all__ = [
    "DIFFERENCE_TEST_FUNCTIONS",
    "check_central_difference",
    "central_difference_or_reference",
    "PRIMITIVES",
    "check_local_derivatives",
    "SIGMOID_NODES",
    "check_sigmoid_by_hand",
    "check_fan_out",
]


def _reference_value_class() -> type:
    from ..scalar import Value

    return Value


def _by_the_engine(*references: Callable[..., Any]) -> tuple[Callable[..., Any], ...]:
    """What an exercise "by hand" may not call: the reference engine's backward, and ``references``."""
    return (_reference_value_class().backward, *references)


# --- shared pieces -------------------------------------------------------------------------------


def _is_close(got: float, expected: float, atol: float = ATOL, rtol: float = RTOL) -> bool:
    return abs(got - expected) <= atol + rtol * abs(expected)  # False for nan, as it should be


# Said wherever a number from one of exercise 2's functions shows up still inside its tuple.
_TAKE_THE_NUMBER_OUT = "the local-derivative functions return tuples; take the number out with [0]."


def _forgot_return(got: Any) -> str:
    """A hint line for None, which is what a function without ``return`` gives back; else ""."""
    return "\n  Hint: did you forget `return`? A function without one gives back None." if got is None else ""


def _as_number(got: Any, what: str) -> float:
    """``got`` as a float, or a CheckFailure saying what came back instead."""
    if hasattr(got, "data") and hasattr(got, "grad"):
        raise CheckFailure(f"{what} is a {type(got).__name__}, but it should be a plain number (its .data?).")
    if isinstance(got, np.ndarray) and got.ndim == 0:
        got = got.item()
    if isinstance(got, (tuple, list)) and len(got) == 1:
        raise CheckFailure(
            f"{what} should be a number, but it is a {type(got).__name__} holding one: {got!r}.\n"
            f"  Hint: {_TAKE_THE_NUMBER_OUT}"
        )
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise CheckFailure(
            f"{what} should be a number, but it is {type(got).__name__}: {got!r}{_forgot_return(got)}"
        )
    return float(got)


def _is_arithmetic_on_a_tuple(error: Exception) -> bool:
    """Whether ``error`` is what Python raises for ``1.5 * (x,)``, ``1.5 + (x,)`` or ``-(x,)``."""
    return isinstance(error, TypeError) and ("sequence" in str(error) or "'tuple'" in str(error))


def _call(fn: Callable[..., Any], args: tuple[Any, ...], call_text: str, *,
          may_use_local_functions: bool = False) -> Any:
    """``fn(*args)``, with an unwritten exercise or a crash turned into a learner-facing message.

    ``may_use_local_functions``: ``fn`` is an exercise that may call exercise 2's functions, so a
    crash on arithmetic with a tuple most likely comes from one of their results used as a number.
    """
    try:
        return watched(fn, *args)
    except NotImplementedError:
        raise CheckFailure(
            f"{call_text} raised NotImplementedError: it is not written yet.\n"
            "  Hint: replace `raise NotImplementedError()` in its cell with your code, run that "
            "cell, then run this test again."
        ) from None
    except Exception as error:
        hint = ""
        if may_use_local_functions and _is_arithmetic_on_a_tuple(error):
            hint = f"\n  Hint: that is arithmetic on a tuple: {_TAKE_THE_NUMBER_OUT}"
        raise CheckFailure(f"{call_text} raised {type(error).__name__}: {error}{hint}") from error


def _first_matching(got: float, expected: float, mistakes: list[tuple[float, str]], **tolerance: float) -> str | None:
    """The hint of the first usual mistake whose value ``got`` equals (and the right answer does not)."""
    for wrong, why in mistakes:
        if math.isfinite(wrong) and _is_close(got, wrong, **tolerance) and not _is_close(expected, wrong, **tolerance):
            return why
    if not math.isfinite(got):
        return "the result is nan or inf: look for a division by 0 or an overflowing exp."
    if abs(expected) > 1e-12 and _is_close(-got, expected, **tolerance):
        return "the sign is flipped: look for a missing or extra minus."
    return None


def _fail(headline: str, expected: float, got: float, hint: str | None, note: str = "") -> CheckFailure:
    lines = [headline, f"  expected {expected:.10g}, got {got:.10g}"]
    if note:
        lines.append(f"  ({note})")
    if hint:
        lines.append(f"  Hint: {hint}")
    return CheckFailure("\n".join(lines))


def _rounded_draws(domain: str, rng: np.random.Generator, count: int) -> list[float]:
    """Kink-free random numbers, rounded to 3 decimals so messages can quote them exactly."""
    return [round(float(x), 3) for x in random_array((count,), rng, domain)]


# --- central differences -------------------------------------------------------------------------


@dataclass(frozen=True)
class _TestFunction:
    text: str  # how a message writes f(x)
    f: Callable[[float], float]
    derivative: Callable[[float], float]
    derivative_text: str
    domain: str  # random_array domain of the points


DIFFERENCE_TEST_FUNCTIONS: dict[str, _TestFunction] = {
    "sin": _TestFunction("sin(x)", math.sin, math.cos, "cos(x)", "real"),
    "exp": _TestFunction("exp(x)", math.exp, math.exp, "exp(x)", "real"),
    "cubic": _TestFunction(
        "x**3 - 2*x", lambda x: x**3 - 2 * x, lambda x: 3 * x**2 - 2, "3*x**2 - 2", "real"
    ),
    "log": _TestFunction("log(x)", math.log, lambda x: 1 / x, "1/x", "positive"),
}

# Large steps make every slip visible (a forward difference is off by about eps/2 * f''), the
# small one is the step a learner would use in practice.
_STEPS = (0.1, 1e-3, 1e-5)


def _reference_central_difference(f: Callable[[float], float], x: float, eps: float = 1e-5) -> float:
    return float(numeric_grad(f, x, eps=eps)[0])


def _five_point_difference(f: Callable[[float], float], x: float, eps: float) -> float:
    """The fourth-order stencil, more accurate than asked; nan where x - 2*eps leaves log's domain."""
    try:
        return (f(x - 2 * eps) - 8 * f(x - eps) + 8 * f(x + eps) - f(x + 2 * eps)) / (12 * eps)
    except ValueError:
        return math.nan


def _central_difference_mistakes(f: Callable[[float], float], x: float, eps: float) -> list[tuple[float, str]]:
    up, down, here = f(x + eps), f(x - eps), f(x)
    return [
        ((up - here) / eps,
         "that is the forward difference (f(x + eps) - f(x)) / eps, whose error shrinks only like "
         "eps. Step to both sides of x: (f(x + eps) - f(x - eps)) / (2 * eps)."),
        ((here - down) / eps,
         "that is the backward difference (f(x) - f(x - eps)) / eps, whose error shrinks only like "
         "eps. Step to both sides of x: (f(x + eps) - f(x - eps)) / (2 * eps)."),
        ((up - down) / eps,
         "that is twice the central difference: divide by 2 * eps, the distance between x - eps "
         "and x + eps, not by eps."),
        ((down - up) / (2 * eps),
         "the sign is flipped: subtract f(x - eps) from f(x + eps), not the other way round."),
        ((up - down) / 2 * eps,
         "`/ 2 * eps` divides by 2 and then multiplies by eps (Python reads it left to right): "
         "write `/ (2 * eps)`."),
        (up - down / (2 * eps),
         "only f(x - eps) was divided: put the numerator in parentheses, "
         "(f(x + eps) - f(x - eps)) / (2 * eps)."),
        ((f(x + eps / 2) - f(x - eps / 2)) / eps,
         "that central difference steps eps/2 to each side; this one steps to x + eps and "
         "x - eps and divides by 2 * eps."),
        (_five_point_difference(f, x, eps),
         "that is the five-point formula, whose error shrinks like eps**4. It is more accurate, "
         "but the exercise asks for the central difference itself, (f(x + eps) - f(x - eps)) / "
         "(2 * eps), and the test compares with exactly that."),
    ]


def _check_one_difference(fn: Callable[..., Any], name: str, x: float, eps: float) -> None:
    test = DIFFERENCE_TEST_FUNCTIONS[name]
    fn_name = getattr(fn, "__name__", "central_difference")
    call_text = f"{fn_name}(f, {x:g}, {eps:g}) with f(x) = {test.text}"
    got = _as_number(_call(fn, (test.f, x, eps), call_text), f"{call_text} returned a value that")
    expected = _reference_central_difference(test.f, x, eps)
    # Rearranging the formula (e.g. 0.5 * (...) / eps) changes the rounding of the numerator.
    rounding = 8 * np.finfo(np.float64).eps * (abs(test.f(x + eps)) + abs(test.f(x - eps))) / (2 * eps)
    tolerance = {"atol": 1e-10 + rounding, "rtol": 1e-7}
    if _is_close(got, expected, **tolerance):
        return
    exact = test.derivative(x)
    hint = _first_matching(got, expected, _central_difference_mistakes(test.f, x, eps), **tolerance)
    if hint is None and abs(got - exact) < abs(expected - exact) / 10:
        hint = (f"your result is closer to the exact derivative than a central difference with "
                f"eps = {eps:g} can be: use the eps argument as the step, not a fixed number, and the "
                "central formula itself, not a more accurate one.")
    raise _fail(
        f"{call_text} is wrong.",
        expected, got, hint,
        note=f"expected = (f(x + eps) - f(x - eps)) / (2 * eps); the exact derivative "
             f"{test.derivative_text} is {exact:.10g} there",
    )


def check_central_difference(
    fn: Callable[[Callable[[float], float], float, float], float],
    *,
    seed: int = 0,
    trials: int = 2,
    points: Sequence[tuple[str, float]] | None = None,
) -> None:
    """Check ``fn(f, x, eps) = (f(x + eps) - f(x - eps)) / (2 * eps)``; raise CheckFailure if wrong.

    ``fn`` runs on every function of :data:`DIFFERENCE_TEST_FUNCTIONS` (``sin``, ``exp``,
    ``cubic``, ``log``) at ``trials`` random points each, with ``eps`` = 0.1, 1e-3 and 1e-5,
    and must agree with the reference central difference to rounding. ``points``, a list of
    ``(function name, x)`` pairs such as ``[("sin", 0.0)]``, checks chosen points instead.
    """
    with own_work("central_difference", fn, _reference_central_difference, also=(numeric_grad,)):
        if points is None:
            rng = np.random.default_rng(seed)
            cases = [
                (name, x)
                for name, test in DIFFERENCE_TEST_FUNCTIONS.items()
                for x in _rounded_draws(test.domain, rng, trials)
            ]
        else:
            cases = [(name, float(x)) for name, x in points]
            unknown = [name for name, _ in cases if name not in DIFFERENCE_TEST_FUNCTIONS]
            if unknown:
                raise ValueError(
                    f"unknown test function {unknown[0]!r}; use one of {', '.join(DIFFERENCE_TEST_FUNCTIONS)}"
                )
            too_close = [x for name, x in cases if name == "log" and x - max(_STEPS) <= 0]
            if too_close:
                raise ValueError(f"log needs x > {max(_STEPS):g} so that x - eps stays positive, got {too_close[0]:g}")
        for eps in _STEPS:
            for name, x in cases:
                _check_one_difference(fn, name, x, eps)


def central_difference_or_reference(fn: Callable[..., float]) -> Callable[..., float]:
    """``fn`` if it passes :func:`check_central_difference`, else the reference central difference.

    Prints which one the cells that follow use, so a learner who is stuck can go on.
    """
    try:
        check_central_difference(fn)
    except CheckFailure as failure:
        first_line = str(failure).splitlines()[0]
        print(f"Your central_difference does not pass its test yet:\n  {first_line}\n"
              "The cells below use the reference from autodiff_ref.gradcheck instead.")
        return _reference_central_difference
    return fn


# --- local derivatives of the primitives ---------------------------------------------------------


@dataclass(frozen=True)
class _Primitive:
    formula: str  # the op on its inputs, "a * b"
    input_names: tuple[str, ...]
    on_floats: Callable[..., float]
    on_values: Callable[..., Any]  # the same op on reference Values
    domains: tuple[str, ...]  # random_array domain of each input
    mistakes: Callable[[tuple[float, ...], int], list[tuple[float, str]]]


PRIMITIVES: dict[str, _Primitive] = {
    "add": _Primitive(
        "a + b", ("a", "b"), lambda a, b: a + b, lambda a, b: a + b, ("real", "real"),
        lambda xs, i: [
            (xs[1 - i], "that is the rule for a * b; for a + b both local derivatives are 1."),
            (0.0, "a grows one for one with a + b (and so does b): the local derivative is 1, not 0."),
        ],
    ),
    "sub": _Primitive(
        "a - b", ("a", "b"), lambda a, b: a - b, lambda a, b: a - b, ("real", "real"),
        lambda xs, i: [
            (1.0, "a - b falls as b grows: d(a - b)/db = -1."),
            (-1.0, "a - b grows with a: d(a - b)/da = +1."),
        ],
    ),
    "mul": _Primitive(
        "a * b", ("a", "b"), lambda a, b: a * b, lambda a, b: a * b, ("real", "real"),
        lambda xs, i: [
            (xs[i], "the inputs are swapped: d(a * b)/da = b and d(a * b)/db = a, so each input's "
                    "local derivative is the *other* input."),
            (1.0, "1 is the local derivative of a + b; for a * b it is the other input."),
            (xs[0] * xs[1], "that is the product itself; its derivative with respect to one input "
                            "is the other input."),
        ],
    ),
    "neg": _Primitive(
        "-a", ("a",), lambda a: -a, lambda a: -a, ("real",),
        lambda xs, i: [
            (1.0, "-a falls as a grows: its local derivative is -1."),
            (-xs[0], "that is the value -a; its derivative is the constant -1."),
        ],
    ),
    "exp": _Primitive(
        "exp(a)", ("a",), math.exp, lambda a: a.exp(), ("real",),
        lambda xs, i: [
            (xs[0], "the local derivative of exp(a) is exp(a) itself, not a."),
            (1.0, "the local derivative of exp(a) is exp(a) itself, not 1."),
            (xs[0] * math.exp(xs[0] - 1), "exp(a) is not a power of a: d exp(a)/da = exp(a)."),
            (math.exp(-xs[0]), "the sign in the exponent is flipped: d exp(a)/da = exp(a), not exp(-a)."),
        ],
    ),
    "log": _Primitive(
        "log(a)", ("a",), math.log, lambda a: a.log(), ("positive",),
        lambda xs, i: [
            (math.log(xs[0]), "d log(a)/da = 1/a, not log(a)."),
            (xs[0], "d log(a)/da = 1/a, not a."),
        ],
    ),
    "reciprocal": _Primitive(
        "1 / a", ("a",), lambda a: 1 / a, lambda a: a**-1, ("real",),
        lambda xs, i: [
            (1 / xs[0] ** 2, "the sign is missing: 1/a falls as a grows (for a != 0), so "
                             "d(1/a)/da = -1/a**2."),
            (-1 / xs[0], "by the power rule d(a**-1)/da = -1 * a**-2 = -1/a**2: the exponent "
                         "goes down by one, from -1 to -2."),
            (1 / xs[0], "that is the value 1/a; its derivative is -1/a**2."),
            (-(xs[0] ** 2), "write 1/a as a**-1: d(a**-1)/da = -a**-2 = -1/a**2, not -a**2."),
            (-1.0, "`-1 / a*a` is `(-1/a)*a = -1` (Python reads it left to right): write `-1 / a**2`."),
        ],
    ),
}


def _reference_local_derivatives(primitive: _Primitive, xs: tuple[float, ...]) -> list[float]:
    """d out / d input for each input, from one backward pass through the reference op."""
    Value = _reference_value_class()
    leaves = [Value(x) for x in xs]
    primitive.on_values(*leaves).backward()
    return [leaf.grad for leaf in leaves]


def _numeric_local_derivative(primitive: _Primitive, xs: tuple[float, ...], i: int) -> float:
    def moved(x_i: float) -> float:
        return primitive.on_floats(*(x_i if j == i else x for j, x in enumerate(xs)))

    return float(numeric_grad(moved, xs[i])[0])


def _as_local_derivatives(got: Any, call_text: str, count: int) -> tuple[float, ...]:
    example = "(d_da,)" if count == 1 else "(d_da, d_db)"
    if not isinstance(got, (tuple, list)):
        comma = " (with one input, mind the trailing comma)" if count == 1 else ""
        raise CheckFailure(
            f"{call_text} returned {type(got).__name__} {got!r}, but it should return a tuple with "
            f"one local derivative per input, e.g. `return {example}`{comma}.{_forgot_return(got)}"
        )
    if len(got) != count:
        raise CheckFailure(
            f"{call_text} returned {len(got)} number(s), {tuple(got)!r}, but the op has {count} "
            f"input(s): return one local derivative per input, e.g. `return {example}`."
        )
    return tuple(_as_number(g, f"{call_text}: local derivative {i}") for i, g in enumerate(got))


def check_local_derivatives(
    fn: Callable[..., tuple[float, ...]],
    op: str,
    *,
    seed: int = 0,
    trials: int = 4,
    points: Sequence[tuple[float, ...]] | None = None,
) -> None:
    """Check ``fn(*inputs) -> (d out/d input for each input)`` for the primitive ``op``.

    ``op`` is one of :data:`PRIMITIVES`: ``add sub mul neg exp log reciprocal``. ``fn`` takes
    the op's inputs as floats and returns a tuple with one float per input. Each is compared
    with the reference ``Value`` (one backward pass through the op) and with a central
    difference in float64, at ``trials`` random kink-free inputs (positive for log, away from
    0 for reciprocal), or at ``points``, a list of input tuples such as ``[(0.0, 3.0)]``.
    """
    by_hand = _by_the_engine(_reference_local_derivatives)
    with own_work(getattr(fn, "__name__", f"{op}_local"), fn, None, also=by_hand):
        if op not in PRIMITIVES:
            raise ValueError(f"unknown primitive {op!r}; use one of {', '.join(PRIMITIVES)}")
        primitive = PRIMITIVES[op]
        count = len(primitive.input_names)
        if points is None:
            rng = np.random.default_rng(seed)
            columns = [_rounded_draws(domain, rng, trials) for domain in primitive.domains]
            cases = list(zip(*columns))
        else:
            cases = [tuple(float(x) for x in point) for point in points]
            wrong = [point for point in cases if len(point) != count]
            if wrong:
                raise ValueError(f"{op} takes {count} input(s) per point, got {wrong[0]}")
        fn_name = getattr(fn, "__name__", op)
        for xs in cases:
            call_text = f"{fn_name}({', '.join(f'{x:g}' for x in xs)})"
            got = _as_local_derivatives(_call(fn, xs, call_text), call_text, count)
            expected = _reference_local_derivatives(primitive, xs)
            for i, name in enumerate(primitive.input_names):
                numeric = _numeric_local_derivative(primitive, xs, i)
                if _is_close(got[i], expected[i]):
                    continue
                hint = _first_matching(got[i], expected[i], primitive.mistakes(xs, i))
                raise _fail(
                    f"{call_text}: the local derivative for input {i} ({name}), "
                    f"d({primitive.formula})/d{name}, is wrong.",
                    expected[i], got[i], hint,
                    note=f"the reference Value gives {expected[i]:.10g}, a central difference {numeric:.10g}",
                )


# --- the sigmoid, backpropagated by hand ---------------------------------------------------------

# The nodes of y = 1 / (1 + exp(-z)) from the output down: the order of the backward pass.
SIGMOID_NODES = ("reciprocal", "add_one", "exp", "neg")

_SIGMOID_NODE_TEXT = {
    "reciprocal": "y = 1 / c",
    "add_one": "c = 1 + b",
    "exp": "b = exp(a)",
    "neg": "a = -z",
}
_GRADIENT_KINDS = ("upstream", "local", "downstream")


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    return math.exp(z) / (1.0 + math.exp(z))  # the same number, without overflow for z << 0


def _sigmoid_reference(z: float) -> dict[str, dict[str, float]]:
    """The expected table: downstream gradients from a reference Value graph, locals by formula."""
    Value = _reference_value_class()
    z_node = Value(z)
    a = -z_node
    b = a.exp()
    c = 1 + b
    y = 1 / c
    y.backward()
    downstream = {"reciprocal": c.grad, "add_one": b.grad, "exp": a.grad, "neg": z_node.grad}
    local = {"reciprocal": -1.0 / c.data**2, "add_one": 1.0, "exp": b.data, "neg": -1.0}
    table, upstream = {}, 1.0  # dy/dy
    for node in SIGMOID_NODES:
        table[node] = {"upstream": upstream, "local": local[node], "downstream": downstream[node]}
        upstream = downstream[node]
    return table


def _sigmoid_local_mistakes(node: str, z: float) -> list[tuple[float, str]]:
    a = -z
    b = math.exp(a)
    c = 1.0 + b
    y = 1.0 / c
    return {
        "reciprocal": [
            (1 / c**2, "the sign is missing: d(1/c)/dc = -1/c**2."),
            (-1 / c, "by the power rule d(c**-1)/dc = -c**-2 = -1/c**2: the exponent goes down by one."),
            (-1 / y**2, "the local derivative is evaluated at the node's input c = 1 + exp(-z), "
                        "not at its output y: -1/c**2 (which equals -y**2)."),
            (y, "that is the value 1/c; its derivative is -1/c**2."),
            (-1.0, "`-1 / c*c` is `(-1/c)*c = -1` (Python reads it left to right): write `-1 / c**2`."),
        ],
        "add_one": [
            (0.0, "the constant 1 has derivative 0, but c = 1 + b grows one for one with b: "
                  "the local derivative is 1."),
            (b, "d(1 + b)/db = 1, whatever b is."),
        ],
        "exp": [
            (math.exp(z), "evaluate exp's derivative at the node's own input a = -z: it is "
                          "exp(a) = exp(-z), the node's output b."),
            (-b, "the minus belongs to the neg node's local derivative; exp's own is exp(a) = b. "
                 "Counting it twice cancels it."),
            (a, "the local derivative of exp(a) is exp(a) itself, not a."),
        ],
        "neg": [
            (1.0, "a = -z falls as z grows: the local derivative is -1."),
        ],
    }[node]


def _check_table_shape(table: Any, call_text: str) -> None:
    if not isinstance(table, Mapping):
        raise CheckFailure(
            f"{call_text} returned {type(table).__name__}, but it should return a dict with one "
            f"entry per node: {', '.join(repr(n) for n in SIGMOID_NODES)}.{_forgot_return(table)}"
        )
    missing = [node for node in SIGMOID_NODES if node not in table]
    if missing:
        raise CheckFailure(
            f"{call_text} returned a dict without the node(s) {', '.join(repr(n) for n in missing)}; "
            f"it needs all of {', '.join(repr(n) for n in SIGMOID_NODES)}."
        )
    for node in SIGMOID_NODES:
        row = table[node]
        if not isinstance(row, Mapping) or any(kind not in row for kind in _GRADIENT_KINDS):
            raise CheckFailure(
                f"{call_text}: the entry for {node!r} should be a dict with the keys 'upstream', "
                f"'local' and 'downstream', but it is {row!r}."
            )


def _sigmoid_hint(node: str, kind: str, got: float, expected: float, z: float,
                  table: Mapping[str, Mapping[str, float]], previous: str | None) -> str | None:
    row = table[node]
    if kind == "local":
        return _first_matching(got, expected, _sigmoid_local_mistakes(node, z), atol=1e-12, rtol=1e-9)
    if kind == "upstream":
        if previous is None:
            mistakes = [(0.0, "the backward pass starts at the output with dy/dy = 1: the output "
                              "node's upstream gradient is 1.")]
        else:
            above = table[previous]
            mistakes = [
                (above["local"], f"that is the local derivative of {previous!r}; pass on its "
                                 "downstream gradient (upstream × local) instead."),
                (1.0, f"only the output starts at 1; this node's upstream gradient is the "
                      f"downstream gradient of the node it feeds, {previous!r}."),
                (above["upstream"], f"that is the upstream gradient of {previous!r}, passed on "
                                    "without multiplying by its local derivative."),
            ]
        return _first_matching(got, expected, mistakes, atol=1e-12, rtol=1e-9)
    mistakes = [
        (row["local"], "downstream = upstream × local: the upstream factor is missing."),
        (row["upstream"], "downstream = upstream × local: the local factor is missing."),
        (row["upstream"] + row["local"], "downstream = upstream × local: multiply, do not add."),
    ]
    return _first_matching(got, expected, mistakes, atol=1e-12, rtol=1e-9)


def check_sigmoid_by_hand(
    fn: Callable[[float], Mapping[str, Mapping[str, float]]],
    zs: Sequence[float] = (0.0, 1.5, -2.0),
) -> None:
    """Check a hand-written backward pass through ``y = 1 / (1 + exp(-z))`` at each ``z``.

    ``fn(z)`` returns ``{node: {"upstream": ..., "local": ..., "downstream": ...}}`` for the
    nodes of :data:`SIGMOID_NODES` (``a = -z``, ``b = exp(a)``, ``c = 1 + b``, ``y = 1/c``).
    The check walks them in backward order, from ``y`` down to ``z``, and compares each number
    with the reference ``Value`` graph of the same four ops, so the first message points at the
    first node that goes wrong. The last downstream gradient, dy/dz, is also compared with a
    central difference and with ``Value(z).sigmoid()``.
    """
    by_hand = _by_the_engine(_sigmoid_reference)
    with own_work(getattr(fn, "__name__", "sigmoid_by_hand"), fn, None, also=by_hand):
        fn_name = getattr(fn, "__name__", "the backward pass")
        for z in zs:
            z = float(z)
            call_text = f"{fn_name}({z:g})"
            table = _call(fn, (z,), call_text, may_use_local_functions=True)
            _check_table_shape(table, call_text)
            expected_table = _sigmoid_reference(z)
            previous = None
            for node in SIGMOID_NODES:
                for kind in _GRADIENT_KINDS:
                    what = f"{call_text}: {kind} gradient at node {node!r} ({_SIGMOID_NODE_TEXT[node]})"
                    got = _as_number(table[node][kind], what)
                    expected = expected_table[node][kind]
                    if not _is_close(got, expected, atol=1e-12, rtol=1e-9):
                        hint = _sigmoid_hint(node, kind, got, expected, z, table, previous)
                        raise _fail(f"{what} is wrong.", expected, got, hint)
                previous = node
            _check_sigmoid_result(float(table["neg"]["downstream"]), z, call_text)


def _check_sigmoid_result(dy_dz: float, z: float, call_text: str) -> None:
    Value = _reference_value_class()
    z_node = Value(z)
    z_node.sigmoid().backward()
    numeric = float(numeric_grad(_sigmoid, z)[0])
    for expected, source in ((numeric, "a central difference"), (z_node.grad, "Value(z).sigmoid().backward()")):
        if not _is_close(dy_dz, expected):
            raise _fail(f"{call_text}: dy/dz (the downstream gradient at 'neg') disagrees with {source}.",
                        expected, dy_dz, None)


# --- fan-out: one value used twice ---------------------------------------------------------------

_FAN_OUT_INPUTS = ("w1", "w2", "x")


def _fan_out_value(w1: float, w2: float, x: float) -> float:
    return w1 * x + w2 * x


def _fan_out_reference(w1: float, w2: float, x: float) -> dict[str, float]:
    Value = _reference_value_class()
    leaves = {"w1": Value(w1), "w2": Value(w2), "x": Value(x)}
    f = leaves["w1"] * leaves["x"] + leaves["w2"] * leaves["x"]
    f.backward()
    return {name: leaf.grad for name, leaf in leaves.items()}


def _fan_out_mistakes(name: str, w1: float, w2: float, x: float) -> list[tuple[float, str]]:
    started_at_f = "the backward pass starts with df/df = 1, not the value of f."
    f = _fan_out_value(w1, w2, x)
    if name == "x":
        return [
            (w2, "that is only the share through w2*x. x feeds two products, so df/dx is the sum "
                 "of both shares, w1 + w2. If you set x's gradient once per product, the second "
                 "assignment overwrote the first: add each share with += instead."),
            (w1, "that is only the share through w1*x; the branch through w2*x was dropped. x "
                 "feeds two products, so df/dx is the sum of both shares: w1 + w2."),
            (w1 * w2, "the shares of the two branches are added, not multiplied: df/dx = w1 + w2."),
            (2 * w1, "the share through w1*x was counted twice; the one through w2*x is w2."),
            (2 * w2, "the share through w2*x was counted twice; the one through w1*x is w1."),
            (f * (w1 + w2), started_at_f),
        ]
    weight = w1 if name == "w1" else w2
    return [
        (weight, f"d({name}*x)/d{name} is the other input of the product, x, not {name} itself."),
        (1.0, f"1 is the local derivative of +; d({name}*x)/d{name} = x."),
        (2 * x, f"{name} feeds only one product, so it gets one share: x."),
        (f * x, started_at_f),
    ]


def check_fan_out(
    fn: Callable[[float, float, float], Mapping[str, float]],
    *,
    seed: int = 0,
    trials: int = 3,
    points: Sequence[tuple[float, float, float]] | None = None,
) -> None:
    """Check ``fn(w1, w2, x) -> {"w1": df/dw1, "w2": df/dw2, "x": df/dx}`` for ``f = w1*x + w2*x``.

    Compared with the reference ``Value`` graph and with central differences, at ``trials``
    random points or at ``points``, a list of ``(w1, w2, x)`` such as ``[(2.0, 2.0, 1.0)]``.
    """
    with own_work(getattr(fn, "__name__", "fan_out_backward"), fn, None, also=_by_the_engine()):
        if points is None:
            rng = np.random.default_rng(seed)
            cases = list(zip(*(_rounded_draws("real", rng, trials) for _ in _FAN_OUT_INPUTS)))
        else:
            cases = [tuple(float(v) for v in point) for point in points]
            wrong = [point for point in cases if len(point) != 3]
            if wrong:
                raise ValueError(f"a fan-out point is (w1, w2, x), got {wrong[0]}")
        fn_name = getattr(fn, "__name__", "the backward pass")
        for w1, w2, x in cases:
            call_text = f"{fn_name}(w1={w1:g}, w2={w2:g}, x={x:g})"
            grads = _call(fn, (w1, w2, x), call_text, may_use_local_functions=True)
            if not isinstance(grads, Mapping) or any(name not in grads for name in _FAN_OUT_INPUTS):
                raise CheckFailure(
                    f"{call_text} returned {grads!r}, but it should return a dict with the keys "
                    f"'w1', 'w2' and 'x' (the gradient of f with respect to each).{_forgot_return(grads)}"
                )
            expected = _fan_out_reference(w1, w2, x)
            numeric = numeric_grad(_fan_out_value, w1, w2, x)
            for i, name in enumerate(_FAN_OUT_INPUTS):
                got = _as_number(grads[name], f"{call_text}: df/d{name}")
                if _is_close(got, expected[name]):
                    continue
                hint = _first_matching(got, expected[name], _fan_out_mistakes(name, w1, w2, x))
                raise _fail(
                    f"{call_text}: df/d{name} is wrong (f = w1*x + w2*x).",
                    expected[name], got, hint,
                    note=f"the reference Value gives {expected[name]:.10g}, a central difference "
                         f"{float(numeric[i]):.10g}",
                )
