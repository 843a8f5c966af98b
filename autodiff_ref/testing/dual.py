"""Checking helpers for forward mode (notebook 04): a learner's dual numbers, elementary
functions on them, ``derivative`` and ``jacobian_forward``.

Every check runs the learner's code and the reference :mod:`autodiff_ref.forward` on the same
inputs, compares values with plain NumPy and tangents with the reference and with central
differences in float64, and fails with a message that names the case (the expression and its
inputs, written so they can be pasted into a cell), expected against got, and the likely mistake.

Inputs are random but rounded to two decimals, so a message shows them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import forward as reference
from .core import LATER_CELL_HINT, CheckFailure, assert_close, own_work, passed, random_array, watched, where_raised

__all__ = [
    "check_dual_arithmetic",
    "check_dual_function",
    "check_derivative",
    "check_jacobian_forward",
]

# Central differences in float64 with this step are good to about 1e-9; the tolerances leave
# room for that while catching any real mistake.
EPS = 1e-6
NUMERIC_ATOL = 1e-5
NUMERIC_RTOL = 1e-4

Rule = Callable[..., Any]  # (a, b, c, d) -> number: a wrong value or tangent, for a hint


# --- shared pieces ------------------------------------------------------------------------------


def _draw(shape: tuple[int, ...], rng: np.random.Generator, domain: str) -> Any:
    """A random input rounded to two decimals: a Python float for shape (), else an array.

    Values within 0.1 of 1 in magnitude are pushed away from it: a tangent of 1 would hide a
    missing chain-rule factor, and a base or constant of 1 would hide a missing log. Besides the
    domains of :func:`random_array`, ``"negative"`` draws from [-2, -0.5].
    """
    if domain == "negative":  # a base where a power rule that takes log(base) gives nan
        return -_draw(shape, rng, "positive")
    values = np.round(random_array(shape, rng, domain), 2)
    values = np.where(np.abs(np.abs(values) - 1.0) < 0.1, np.round(values * 1.3, 2), values)
    return float(values) if shape == () else values


def _show(number: Any) -> str:
    """A number or array as Python code that recreates it."""
    if np.ndim(number) > 0:
        return f"np.array({np.round(number, 6).tolist()})"
    return f"{float(number):g}"


def _show_dual(value: Any, tangent: Any) -> str:
    return f"Dual({_show(value)}, {_show(tangent)})"


def _is_dual(obj: Any) -> bool:
    """Duck typing: the learner's Dual and the reference Dual both qualify."""
    return hasattr(obj, "value") and hasattr(obj, "tangent")


def _snapshot(dual: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Copies of a Dual's value and tangent, to tell afterwards whether code changed it in place."""
    return (np.copy(dual.value), np.copy(dual.tangent)) if _is_dual(dual) else None


def _check_unchanged(description: str, name: str, dual: Any, before: tuple[np.ndarray, np.ndarray] | None, reuse: str) -> None:
    """Fail if the input Dual ``name`` differs from its snapshot ``before``, taken before ``description`` ran.

    Code that changes its input passes every check of its own result, but ``reuse`` (an
    expression that needs the input again afterwards) would compute with the changed input.
    """
    if before is None or (np.array_equal(dual.value, before[0]) and np.array_equal(dual.tangent, before[1])):
        return
    raise CheckFailure(
        f"{description} changed its input {name} in place.\n"
        f"  Hint: return a new Dual and leave {name} as it was: code such as `{reuse}` uses {name} again."
    )


def _error_hint(error: Exception, case_hint: str | None) -> str | None:
    """The likely cause of an exception from learner code: what the error itself proves first,
    then the case's own ``case_hint``, then a plain number used where a Dual was needed."""
    if isinstance(error, NameError):
        return LATER_CELL_HINT
    if isinstance(error, TypeError) and "can be converted to Python scalars" in str(error):
        return ("code for a single number (math.exp, math.log, float(...)) got an array: use "
                "np.exp, np.log and the other NumPy functions, which work on arrays.")
    if isinstance(error, RecursionError):
        return ("the Dual methods call each other without end. Two usual causes: Dual.lift wraps a "
                "Dual in another Dual (it must return x itself when x is already a Dual), or a "
                "method uses its own operator on two Duals (`-` inside __sub__, `/` inside "
                "__truediv__) instead of building Dual(value, tangent).")
    if isinstance(error, ValueError) and "math domain error" in str(error):
        return ("math.log got a number at or below 0, such as a negative base of a power. For a "
                "number exponent k use the power rule k·x.value^(k−1)·x.tangent, which needs no log.")
    if case_hint is not None:
        return case_hint
    plain = (int, float, np.number, np.ndarray)  # a number or an array where a Dual was needed
    if isinstance(error, AttributeError) and error.name in ("value", "tangent") and isinstance(error.obj, plain):
        return f"a plain number (or array) has no .{error.name}: turn it into a Dual with Dual.lift first."
    return None


def _call(description: str, function: Callable[..., Any], *args: Any, hint: str | None = None) -> Any:
    """Run learner code; turn any exception into a CheckFailure that names the case.

    ``hint`` explains what usually goes wrong in this case, for an error that does not tell.
    """
    try:
        return watched(function, *args)
    except CheckFailure:
        raise
    except NotImplementedError as error:
        raise CheckFailure(
            f"{description} raised NotImplementedError in `{where_raised(error)}`: that part is not "
            "written yet (replace `raise NotImplementedError()` with your code and run its cell again)."
        ) from error
    except Exception as error:  # anything else the learner's code raises is this case's failure
        message = f"{description} raised {type(error).__name__}: {error}"
        hint = _error_hint(error, hint)
        raise CheckFailure(message + (f"\n  Hint: {hint}" if hint else "")) from error


def _matching_hint(got: Any, candidates: list[tuple[Any, str]]) -> str | None:
    """The hint of the first wrong answer that ``got`` equals, if any."""
    try:
        got_array = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    for wrong, hint in candidates:
        try:
            wrong_array = np.broadcast_to(np.asarray(wrong, dtype=np.float64), got_array.shape)
        except ValueError:  # a wrong answer of another shape cannot be what the learner got
            continue
        if np.all(np.isfinite(wrong_array)) and np.allclose(got_array, wrong_array, rtol=1e-6, atol=1e-9):
            return hint
    return None


def _check_result(
    description: str,
    result: Any,
    expected_value: Any,
    expected_tangent: Any,
    numeric_tangent: Any,
    value_mistakes: list[tuple[Any, str]],
    tangent_mistakes: list[tuple[Any, str]],
    tangent_hint: str | None = None,
) -> None:
    """Compare a learner's Dual with the expected value and tangent, hinting at usual mistakes.

    ``tangent_hint``, judged from the result beforehand, goes before any of ``tangent_mistakes``.
    """
    if not _is_dual(result):
        raise CheckFailure(
            f"{description} returned {type(result).__name__} {result!r}, not a dual number.\n"
            "  Hint: return a Dual(value, tangent), so that the tangent travels on."
        )
    for part in ("value", "tangent"):
        if _is_dual(getattr(result, part)):
            raise CheckFailure(
                f"{description} returned a Dual whose {part} is itself a Dual: "
                f"{getattr(result, part)!r}.\n"
                "  Hint: a Dual inside a Dual usually comes from Dual.lift: it must return x itself "
                "when x is already a Dual, and make Dual(x, 0.0) only from a plain number or array."
            )
    assert_close(
        result.value, expected_value, f"The value of {description}",
        hint=_matching_hint(result.value, value_mistakes),
    )
    hint = tangent_hint or _matching_hint(result.tangent, tangent_mistakes)
    if np.ndim(result.tangent) == 0 and np.ndim(expected_tangent) > 0:
        hint = "the value is an array but the tangent is a single number: each element needs its own tangent."
    assert_close(result.tangent, expected_tangent, f"The tangent (ε part) of {description}", hint=hint)
    assert_close(
        result.tangent, numeric_tangent,
        f"The tangent of {description}, compared with central differences,",
        atol=NUMERIC_ATOL, rtol=NUMERIC_RTOL,
    )


# --- arithmetic ---------------------------------------------------------------------------------

_CONSTANT_HINT = (
    "a plain number k is a constant, k + 0·ε: its tangent is 0, not 1 "
    "(look at how the number is turned into a Dual)."
)
_CHAIN_HINT = (
    "the tangent is not multiplied by x.tangent. The chain rule says the ε part is "
    "f'(x.value) · x.tangent, and x.tangent is not always 1."
)
_REFLECTED_HINT = (
    "with a number on the left, Python calls the Dual's reflected method "
    "(__radd__, __rsub__, __rmul__, __rtruediv__, __rpow__), where self is the RIGHT operand."
)
_NEGATIVE_BASE_HINT = (
    "the tangent is nan where x.value < 0: the log of a negative base is nan, and nan times the "
    "exponent's zero tangent is still nan. For a number exponent k use the power rule "
    "k·x.value^(k−1)·x.tangent, which needs no log."
)


@dataclass(frozen=True)
class _ArithmeticCase:
    """One expression in x (a Dual), y (a Dual) or k (a plain number).

    ``apply(x, other)`` evaluates it (``other`` is y, k or unused); ``value_mistakes`` and
    ``tangent_mistakes`` list wrong answers as functions of x = a + bε and other = c + dε
    (for a number k: c = k and d = 0), each with the hint that explains it.
    """

    op: str
    expression: str
    apply: Callable[[Any, Any], Any]
    other: str  # "dual", "number" or "none"
    x_domain: str = "real"
    other_domain: str = "real"
    value_mistakes: tuple[tuple[Rule, str], ...] = ()
    tangent_mistakes: tuple[tuple[Rule, str], ...] = ()


_PRODUCT_RULE = (
    "the product rule has two terms: (a + bε)(c + dε) = ac + (ad + bc)ε, "
    "so the tangent of x * y is x.value·y.tangent + x.tangent·y.value."
)
_QUOTIENT_RULE = "the quotient rule: (a + bε)/(c + dε) = a/c + (b·c − a·d)/c² · ε"
_TANGENT_TIMES_K = ((lambda a, b, k, d: b, "multiply the tangent by k as well: (a + bε)·k = ak + (bk)ε."),)

ARITHMETIC_CASES: tuple[_ArithmeticCase, ...] = (
    _ArithmeticCase("+", "x + y", lambda x, y: x + y, "dual", tangent_mistakes=(
        (lambda a, b, c, d: b, "add both tangents: (a + bε) + (c + dε) = (a + c) + (b + d)ε."),
        (lambda a, b, c, d: d, "add both tangents: (a + bε) + (c + dε) = (a + c) + (b + d)ε."),
    )),
    _ArithmeticCase("+", "x + k", lambda x, k: x + k, "number"),
    _ArithmeticCase("+", "k + x", lambda x, k: k + x, "number"),
    # -x comes first: a __sub__ written with unary minus (as the notebook suggests) fails where
    # __neg__ does, and the hint should name __neg__.
    _ArithmeticCase("neg", "-x", lambda x, _: -x, "none", tangent_mistakes=(
        (lambda a, b, c, d: b, "negate the tangent too: −(a + bε) = −a − bε."),
    )),
    _ArithmeticCase("-", "x - y", lambda x, y: x - y, "dual", tangent_mistakes=(
        (lambda a, b, c, d: b + d, "subtract the tangents too: (a + bε) − (c + dε) = (a − c) + (b − d)ε."),
        (lambda a, b, c, d: d - b, "the operands are swapped: this is y − x."),
    )),
    _ArithmeticCase("-", "x - k", lambda x, k: x - k, "number"),
    _ArithmeticCase("-", "k - x", lambda x, k: k - x, "number",
        value_mistakes=((lambda a, b, k, d: a - k, "this computed x − k: " + _REFLECTED_HINT),),
        tangent_mistakes=((lambda a, b, k, d: b, "the tangent of k − x is −x.tangent: the minus applies to the tangent too."),),
    ),
    _ArithmeticCase("*", "x * y", lambda x, y: x * y, "dual", tangent_mistakes=(
        (lambda a, b, c, d: a * d, _PRODUCT_RULE + " One term is missing."),
        (lambda a, b, c, d: b * c, _PRODUCT_RULE + " One term is missing."),
        (lambda a, b, c, d: b * d, "the tangents were multiplied, but b·d is the coefficient of ε², which is 0. " + _PRODUCT_RULE),
    )),
    _ArithmeticCase("*", "x * k", lambda x, k: x * k, "number", tangent_mistakes=_TANGENT_TIMES_K),
    _ArithmeticCase("*", "k * x", lambda x, k: k * x, "number", tangent_mistakes=_TANGENT_TIMES_K),
    _ArithmeticCase("*", "x * x", lambda x, _: x * x, "none", tangent_mistakes=(
        (lambda a, b, c, d: a * b, _PRODUCT_RULE + " With y = x it gives 2·a·b; one term is missing."),
        (lambda a, b, c, d: b * b, "the tangents were multiplied, but b·b is the coefficient of ε², which is 0. " + _PRODUCT_RULE),
    )),
    _ArithmeticCase("/", "x / y", lambda x, y: x / y, "dual", tangent_mistakes=(
        (lambda a, b, c, d: (a * d - b * c) / c**2, "the sign is flipped: " + _QUOTIENT_RULE + "."),
        (lambda a, b, c, d: (b * c + a * d) / c**2, "the second term needs a minus: " + _QUOTIENT_RULE + "."),
        (lambda a, b, c, d: (b * c - a * d) / c, "divide by the square of the denominator, c², not by c: " + _QUOTIENT_RULE + "."),
        (lambda a, b, c, d: b / d, "the tangents were divided, but " + _QUOTIENT_RULE + "."),
    )),
    _ArithmeticCase("/", "x / k", lambda x, k: x / k, "number", tangent_mistakes=(
        (lambda a, b, k, d: b, "divide the tangent by k as well (a + bε)/k = a/k + (b/k)ε; "
                               "if you used the quotient rule, its denominator is k², not k."),
    )),
    _ArithmeticCase("/", "k / x", lambda x, k: k / x, "number",
        value_mistakes=((lambda a, b, k, d: a / k, "this computed x / k: " + _REFLECTED_HINT),),
        tangent_mistakes=(
            (lambda a, b, k, d: k * b / a**2, "the sign is flipped: the tangent of k / x is −k·x.tangent / x.value²."),
            (lambda a, b, k, d: -k * b / a, "divide by x.value², not by x.value: the tangent of k / x is −k·x.tangent / x.value²."),
        ),
    ),
    _ArithmeticCase("**", "x ** 3", lambda x, _: x ** 3, "none", x_domain="negative", tangent_mistakes=(
        (lambda a, b, c, d: 3 * a**3 * b, "the power rule lowers the exponent by one: d(xⁿ) = n·xⁿ⁻¹·dx."),
        (lambda a, b, c, d: a**2 * b, "the power rule has the factor n in front: d(xⁿ) = n·xⁿ⁻¹·dx."),
    )),
    _ArithmeticCase("**", "x ** -2", lambda x, _: x ** -2, "none", tangent_mistakes=(
        (lambda a, b, c, d: -2 * a**-2 * b, "the power rule lowers the exponent by one: d(xⁿ) = n·xⁿ⁻¹·dx."),
        (lambda a, b, c, d: a**-3 * b, "the power rule has the factor n in front: d(xⁿ) = n·xⁿ⁻¹·dx."),
    )),
    _ArithmeticCase("**", "x ** 0.5", lambda x, _: x ** 0.5, "none", x_domain="positive", tangent_mistakes=(
        (lambda a, b, c, d: 0.5 * a**0.5 * b, "the power rule lowers the exponent by one: d(xⁿ) = n·xⁿ⁻¹·dx."),
    )),
    _ArithmeticCase("**", "k ** x", lambda x, k: k ** x, "number", other_domain="positive",
        value_mistakes=((lambda a, b, k, d: a**k, "this computed x ** k: " + _REFLECTED_HINT),),
        tangent_mistakes=(
            (lambda a, b, k, d: a * k ** (a - 1) * b,
             "the power rule n·xⁿ⁻¹ is for a constant exponent; here the exponent varies: "
             "d(kˣ) = kˣ·log(k)·dx."),
            (lambda a, b, k, d: k**a * b, "a factor log(k) is missing: d(kˣ) = kˣ·log(k)·dx."),
        ),
    ),
    _ArithmeticCase("**", "x ** y", lambda x, y: x ** y, "dual", x_domain="positive", tangent_mistakes=(
        (lambda a, b, c, d: c * a ** (c - 1) * b,
         "the exponent's part is missing: d(xʸ) = y·xʸ⁻¹·dx + xʸ·log(x)·dy."),
        (lambda a, b, c, d: a**c * np.log(a) * d,
         "the base's part is missing: d(xʸ) = y·xʸ⁻¹·dx + xʸ·log(x)·dy."),
    )),
)

ARITHMETIC_OPS = ("+", "-", "neg", "*", "/", "**")
# The methods of the reference Dual that implement each op: the learner's class may not use them.
_DUAL_METHODS = {
    "+": ("__add__", "__radd__"),
    "-": ("__sub__", "__rsub__"),
    "neg": ("__neg__",),
    "*": ("__mul__", "__rmul__"),
    "/": ("__truediv__", "__rtruediv__"),
    "**": ("__pow__", "__rpow__"),
}


def _dual_methods(ops: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(method for op in ops for method in _DUAL_METHODS[op])


def check_dual_arithmetic(
    dual_class: type,
    ops: tuple[str, ...] | list[str] = ARITHMETIC_OPS,
    *,
    shape: tuple[int, ...] = (),
    seed: int = 0,
    hidden: bool = False,
) -> None:
    """Check a learner's dual-number class on ``+ - * / **`` and unary ``-``.

    ``ops`` picks the operators (``"neg"`` is unary minus; ``"**"`` covers a number exponent,
    ``x ** 3`` on a negative base among them, a number base and a Dual exponent). For each,
    expressions in x, y (Duals) and k (a plain number on either side) are evaluated on inputs of
    ``shape`` (``()``: Python floats; else NumPy arrays, elementwise). The value must match plain NumPy, the tangent the reference
    ``autodiff_ref.forward.Dual`` and central differences. ``dual_class(value, tangent)`` must
    build a Dual with attributes ``.value`` and ``.tangent``.
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    unknown = [op for op in ops if op not in ARITHMETIC_OPS]
    if unknown:
        raise ValueError(f"unknown ops {unknown}: choose from {ARITHMETIC_OPS}")
    with own_work(getattr(dual_class, "__name__", "Dual"), dual_class, reference.Dual, methods=_dual_methods(ops)):
        rng = np.random.default_rng(seed)
        cases = [case for case in ARITHMETIC_CASES if case.op in ops]
        for case in cases:
            a, b = _draw(shape, rng, case.x_domain), _draw(shape, rng, "real")
            c = _draw(shape if case.other == "dual" else (), rng, case.other_domain)
            d = _draw(shape, rng, "real") if case.other == "dual" else 0.0
            _check_arithmetic_case(dual_class, case, a, b, c, d)
        names = ", ".join("unary -" if op == "neg" else op for op in ops)
        where = "" if shape == () else f" on arrays of shape {shape}"
        passed(f"Dual {names}: {len(cases)} expressions{where} match the reference and central differences",
               hidden=hidden)


def _check_arithmetic_case(dual_class: type, case: _ArithmeticCase, a: Any, b: Any, c: Any, d: Any) -> None:
    inputs = f"x = {_show_dual(a, b)}"
    if case.other == "dual":
        inputs += f", y = {_show_dual(c, d)}"
    elif case.other == "number":
        inputs += f", k = {_show(c)}"
    description = f"`{case.expression}` with {inputs}"

    def learner_operand(value: Any, tangent: Any) -> Any:
        return _call(f"Dual({_show(value)}, {_show(tangent)})", dual_class, value, tangent)

    x = learner_operand(a, b)
    other = learner_operand(c, d) if case.other == "dual" else c
    operands = {"x": x, "y": other} if case.other == "dual" else {"x": x}
    before = {name: _snapshot(operand) for name, operand in operands.items()}
    hint = _REFLECTED_HINT if case.expression.startswith("k ") else None
    result = _call(description, case.apply, x, other, hint=hint)
    for name, operand in operands.items():
        _check_unchanged(description, name, operand, before[name], f"{case.expression} + {name}")

    expected = case.apply(reference.Dual(a, b), reference.Dual(c, d) if case.other == "dual" else c)
    numeric = (
        case.apply(a + EPS * b, c + EPS * d) - case.apply(a - EPS * b, c - EPS * d)
    ) / (2 * EPS)

    # The wrong answers, in float64 so that a negative base with a fractional power gives nan
    # (never a match) rather than a complex number.
    a64, b64, c64, d64 = (np.asarray(v, dtype=np.float64) for v in (a, b, c, d))
    with np.errstate(all="ignore"):
        value_mistakes = [(rule(a64, b64, c64, d64), hint) for rule, hint in case.value_mistakes]
        tangent_mistakes = [(rule(a64, b64, c64, d64), hint) for rule, hint in case.tangent_mistakes]
    if case.other == "number":  # the constant lifted with tangent 1 instead of 0
        lifted = case.apply(reference.Dual(a, b), reference.Dual(c, 1.0))
        tangent_mistakes.insert(0, (lifted.tangent, _CONSTANT_HINT))
    if case.other != "dual":  # a single dual input: the chain-rule factor x.tangent left out
        unit_tangent = np.ones(np.shape(b)) if np.ndim(b) else 1.0
        tangent_mistakes.append((case.apply(reference.Dual(a, unit_tangent), c).tangent, _CHAIN_HINT))
    number_exponent = case.op == "**" and case.other == "none"
    log_of_negative = number_exponent and _is_dual(result) and _nan_only_where_negative(result.tangent, a)
    _check_result(description, result, expected.value, expected.tangent, numeric, value_mistakes, tangent_mistakes,
                  tangent_hint=_NEGATIVE_BASE_HINT if log_of_negative else None)


def _nan_only_where_negative(numbers: Any, base: Any) -> bool:
    """Whether ``numbers`` are nan somewhere, and only where ``base`` is negative: the mark of a log(base)."""
    try:
        nan = np.isnan(np.asarray(numbers, dtype=np.float64))
    except (TypeError, ValueError):
        return False
    negative = np.asarray(base) < 0
    return nan.shape == negative.shape and bool(nan.any()) and not np.any(nan & ~negative)


# --- elementary functions -----------------------------------------------------------------------

# name -> domain of its random inputs (log and sqrt need positive ones)
ELEMENTARY_DOMAINS = {"exp": "real", "log": "positive", "sin": "real", "cos": "real", "tanh": "unit", "sqrt": "positive"}


# Mistakes particular to one function: (wrong tangent as a function of x = a + bε, hint).
_FUNCTION_MISTAKES: dict[str, tuple[tuple[Callable[[Any, Any], Any], str], ...]] = {
    "log": ((lambda a, b: a * b, "the tangent was multiplied by x.value; the derivative of log x is "
             "1/x, so divide: x.tangent / x.value."),),
    "sqrt": ((lambda a, b: b / np.sqrt(a), "a factor 1/2 is missing: the derivative of √x is "
              "1 / (2√x)."),),
}


def check_dual_function(
    function: Callable[[Any], Any],
    name: str,
    dual_class: type,
    *,
    shape: tuple[int, ...] = (),
    seed: int = 0,
    hidden: bool = False,
) -> None:
    """Check a learner's elementary function ``name`` (exp, log, sin, cos, tanh, sqrt) on Duals.

    ``function`` must return ``np.<name>`` of a plain number or array, and for a Dual
    ``x = a + bε`` the Dual ``f(a) + f'(a)·b·ε``. Tangents are compared with the reference
    ``autodiff_ref.forward.<name>`` and with central differences, with ``b = 1`` and with
    ``b != 1`` (which is where a forgotten chain-rule factor shows). ``shape`` as in
    :func:`check_dual_arithmetic`.
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    if name not in ELEMENTARY_DOMAINS:
        raise ValueError(f"unknown function {name!r}: choose from {sorted(ELEMENTARY_DOMAINS)}")
    with own_work(getattr(function, "__name__", name), function, getattr(reference, name)):
        plain, domain = getattr(np, name), ELEMENTARY_DOMAINS[name]
        rng = np.random.default_rng(seed)

        a = _draw(shape, rng, domain)
        description = f"`{name}({_show(a)})` (a plain {'number' if shape == () else 'array'})"
        plain_hint = f"make a Dual only when the input is a Dual (isinstance); else return np.{name}(x)."
        result = _call(description, function, a, hint=plain_hint)
        if _is_dual(result):
            raise CheckFailure(
                f"{description} returned a Dual; for a plain input it should return a plain "
                f"{'number' if shape == () else 'array'}, like np.{name}.\n"
                f"  Hint: {plain_hint}"
            )
        assert_close(result, plain(a), f"The result of {description}")

        unit_tangent = np.ones(shape) if shape else 1.0
        for b in (unit_tangent, _draw(shape, rng, "real")):  # a tangent other than 1 shows a missing chain rule
            a = _draw(shape, rng, domain)
            description = f"`{name}(x)` with x = {_show_dual(a, b)}"
            x = _call(f"Dual({_show(a)}, {_show(b)})", dual_class, a, b)
            before = _snapshot(x)
            result = _call(description, function, x)
            _check_unchanged(description, "x", x, before, f"{name}(x) + x")
            expected = getattr(reference, name)(reference.Dual(a, b))
            numeric = (plain(a + EPS * b) - plain(a - EPS * b)) / (2 * EPS)
            with np.errstate(all="ignore"):
                tangent_mistakes = [
                    (getattr(reference, name)(reference.Dual(a, unit_tangent)).tangent, _CHAIN_HINT),
                    (plain(b), f"the tangent is {name}(x.tangent), but it should be {name}'(x.value) · x.tangent."),
                    (plain(a) * b, f"the tangent uses {name}(x.value), but it needs the derivative {name}'(x.value)."),
                ]
                tangent_mistakes += [(wrong(a, b), hint) for wrong, hint in _FUNCTION_MISTAKES.get(name, ())]
                value_mistakes = [(plain(b), f"the value should be {name}(x.value), not {name}(x.tangent).")]
            _check_result(description, result, expected.value, expected.tangent, numeric, value_mistakes, tangent_mistakes)
        where = "numbers" if shape == () else f"arrays of shape {shape}"
        passed(f"{name} on plain {where} and on Duals (tangent 1 and not 1) matches the reference and central differences",
               hidden=hidden)


# --- derivative -------------------------------------------------------------------------------

# (source shown to the learner, the function): only + - * / and numbers, so they run on any
# Dual class that has arithmetic, on the reference Dual and on plain floats alike.
DERIVATIVE_CASES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("lambda x: 3 * x * x - 2 * x + 1", lambda x: 3 * x * x - 2 * x + 1),
    ("lambda x: x * x * x", lambda x: x * x * x),
    ("lambda x: 1 / (1 + x * x)", lambda x: 1 / (1 + x * x)),
    ("lambda x: (x - 1) / (x * x + 1)", lambda x: (x - 1) / (x * x + 1)),
    ("lambda x: x", lambda x: x),
    ("lambda x: 4.0", lambda x: 4.0),
)


class _CallLog:
    """Wraps f and records the tangents of the dual numbers it is called with."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.dual_calls = 0
        self.seeds: list[np.ndarray] = []
        self.dual_class: type | None = None

    def __call__(self, x: Any) -> Any:
        if _is_dual(x):
            self.dual_calls += 1
            self.dual_class = type(x)
            self.seeds.append(np.array(x.tangent, dtype=np.float64, copy=True))
        return self.function(x)


_DUAL_CLASS_HINT = (
    "this is what your Dual's arithmetic gives for this f, so this function does its part; the "
    "wrong tangent comes from the Dual class. Make the Dual tests above pass first."
)


def _tangent_with(dual_class: type | None, f: Callable[[Any], Any], x: Any, tangent: Any) -> Any:
    """f's output tangent on ``dual_class(x, tangent)``, or nan if that class cannot compute it."""
    if dual_class is None or dual_class is reference.Dual:
        return np.nan  # nothing to blame on a learner's class
    try:
        out = f(dual_class(x, tangent))
        return np.asarray(out.tangent if _is_dual(out) else 0.0, dtype=np.float64)
    except Exception:  # the learner's class fails on f: then it is not what produced the result
        return np.nan


def check_derivative(
    derivative_fn: Callable[[Callable], Callable], *, shape: tuple[int, ...] = (), seed: int = 0, hidden: bool = False
) -> None:
    """Check a learner's ``derivative(f)``, which returns the function x -> f'(x).

    The functions use only arithmetic, so they run on whatever Dual class ``derivative``
    builds. For ``shape != ()`` x is an array and f acts elementwise, so f'(x) is an array of
    that shape (a single number is accepted where every element has the same derivative).
    Cases include x used more than once, the identity, and a constant function that returns a
    plain number (its derivative is 0). Results are compared with the reference
    ``autodiff_ref.forward.derivative`` and with central differences.
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    with own_work("derivative", derivative_fn, reference.derivative):
        rng = np.random.default_rng(seed)
        for source, f in DERIVATIVE_CASES:
            x = _draw(shape, rng, "real")
            description = f"`derivative({source})({_show(x)})`"
            constant = source == "lambda x: 4.0"
            constant_hint = (
                "this f returns the plain number 4.0, whatever x is: not a Dual. A constant's "
                "derivative is 0, so when f's output has no tangent, return 0 (an array of zeros "
                "shaped like x for an array x)."
            )
            logged = _CallLog(f)
            derivative_of_f = _call(f"`derivative({source})`", derivative_fn, logged)
            if not callable(derivative_of_f):
                raise CheckFailure(
                    f"`derivative({source})` returned {type(derivative_of_f).__name__}, not a function.\n"
                    "  Hint: derivative(f) returns a new function of x (define one inside and return it)."
                )
            got = _call(description, derivative_of_f, x, hint=constant_hint if constant else None)
            if _is_dual(got):
                raise CheckFailure(
                    f"{description} returned a Dual ({got!r}); it should return the derivative itself.\n"
                    "  Hint: f'(x) is the tangent (the ε part) of f's output."
                )
            if logged.dual_calls == 0:
                raise CheckFailure(
                    f"{description} never called f with a dual number.\n"
                    "  Hint: forward mode evaluates f once on Dual(x, 1.0) and reads off the tangent."
                )
            if np.ndim(got) == 0 and shape != ():
                got = np.full(shape, got, dtype=np.float64) if np.isscalar(got) else got
            expected = np.broadcast_to(reference.derivative(f)(x), np.shape(x))
            numeric = np.broadcast_to((np.asarray(f(x + EPS)) - np.asarray(f(x - EPS))) / (2 * EPS), np.shape(x))
            wrong = [(f(x), "that is f(x), the value; the derivative is the tangent (ε part) of f's output.")]
            first_seed = logged.seeds[0]
            if not np.allclose(first_seed, 1.0):
                wrong.insert(0, (expected * first_seed, f"f was called with tangent {_show(first_seed)}; "
                                 "seed x with tangent 1 (an array of ones for an array x)."))
            wrong.insert(0, (_tangent_with(logged.dual_class, f, x, np.ones(np.shape(x))), _DUAL_CLASS_HINT))
            # Whatever a constant f's derivative gets wrong (4.0, None, a tangent), the cause is the
            # branch for an output without a tangent.
            hint = constant_hint if constant else _matching_hint(got, wrong)
            assert_close(got, expected, f"The result of {description}", hint=hint)
            assert_close(got, numeric, f"The result of {description}, compared with central differences,",
                         atol=NUMERIC_ATOL, rtol=NUMERIC_RTOL)
        where = "numbers" if shape == () else f"arrays of shape {shape}"
        passed(f"derivative: {len(DERIVATIVE_CASES)} functions on {where} match the reference and central differences",
               hidden=hidden)


# --- jacobian_forward -------------------------------------------------------------------------


@dataclass(frozen=True)
class _JacobianCase:
    source: str  # the function as the learner reads it, in terms of the matrices below
    make: Callable[[np.random.Generator], tuple[Callable[[Any], Any], dict[str, np.ndarray], int]]


def _matrix(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    return np.round(rng.uniform(-1.0, 1.0, size=(rows, columns)), 2)


def _jacobian_cases() -> tuple[_JacobianCase, ...]:
    def linear(rng):  # the Jacobian is A itself: 3 outputs, 2 inputs, so a transpose shows in the shape
        A = _matrix(rng, 3, 2)
        return (lambda x: A @ x), {"A": A}, 2

    def product(rng):  # 2 outputs, 4 inputs, x used twice
        A, B = _matrix(rng, 2, 4), _matrix(rng, 2, 4)
        return (lambda x: (A @ x) * (B @ x)), {"A": A, "B": B}, 4

    def squash(rng):  # square, so a transpose shows only in the values
        A = _matrix(rng, 3, 3)
        return (lambda x: 1 / (1 + (A @ x) * (A @ x))), {"A": A}, 3

    def elementwise(rng):  # a diagonal Jacobian
        return (lambda x: x * x - 3 * x), {}, 3

    def one_output(rng):
        w = _matrix(rng, 1, 3)
        return (lambda x: (w @ x) * (w @ x) + w @ x), {"w": w}, 3

    def one_input(rng):
        A = _matrix(rng, 3, 1)
        return (lambda x: (A @ x) / (2 + x * x)), {"A": A}, 1

    return (
        _JacobianCase("lambda x: A @ x", linear),
        _JacobianCase("lambda x: (A @ x) * (B @ x)", product),
        _JacobianCase("lambda x: 1 / (1 + (A @ x) * (A @ x))", squash),
        _JacobianCase("lambda x: x * x - 3 * x", elementwise),
        _JacobianCase("lambda x: (w @ x) * (w @ x) + w @ x", one_output),
        _JacobianCase("lambda x: (A @ x) / (2 + x * x)", one_input),
    )


def _numeric_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Column j = (f(x + eps e_j) - f(x - eps e_j)) / 2 eps."""
    columns = []
    for j in range(x.size):
        step = np.zeros_like(x)
        step[j] = EPS
        columns.append((np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * EPS))
    return np.stack(columns, axis=1)


def _is_unit_vector(seed: np.ndarray) -> bool:
    """Whether ``seed`` is some e_j: one 1, zeros elsewhere."""
    return seed.ndim == 1 and np.count_nonzero(seed) == 1 and np.sum(seed) == 1.0


def _seed_hint(seeds: list[np.ndarray], n: int) -> str | None:
    """A hint naming the tangents f was seeded with, if some are neither a unit vector e_j nor 0
    (a pass with tangent 0, say to learn the output size, does no harm)."""
    if all(_is_unit_vector(seed) or not np.any(seed) for seed in seeds):
        return None
    hint = (f"f was called with the tangents {', '.join(_show(seed) for seed in seeds)}; the pass for "
            f"column j needs the unit vector e_j: 1 in place j and 0 elsewhere (np.eye({n})[j]).")
    if len(seeds) > 1 and all(_is_unit_vector(later - earlier) for earlier, later in zip(seeds, seeds[1:])):
        hint += (" Each seed keeps the 1s of the ones before: an array changed in place needs its 1 "
                 "set back to 0 before the next pass, or make a new one for every pass.")
    return hint


def _jacobian_hint(got: Any, expected: np.ndarray, seeds: list[np.ndarray]) -> str | None:
    """The usual mistake behind a wrong Jacobian, judged from its shape, values and the seeds used."""
    m, n = expected.shape
    shape = np.shape(got)
    if shape == (n, m) and m != n:
        return ("the shape is transposed: a Jacobian has one ROW per output (m) and one COLUMN per "
                "input (n); the pass seeded with e_j gives column j.")
    if n == 1 and shape == (m,):
        return f"a Jacobian is 2-D even for one input: one column, shape ({m}, 1)."
    if shape in {(m,), (n,)}:
        return "this is a single vector: the full Jacobian needs one forward pass per input, one column each."
    if shape != (m, n):
        return f"f maps {n} inputs to {m} outputs, so its Jacobian has shape (m, n) = ({m}, {n})."
    if len(seeds) > 1 and all(np.allclose(seed, seeds[0]) for seed in seeds):
        return f"every pass was seeded with the same tangent {_show(seeds[0])}; the pass for column j needs e_j."
    seed_hint = _seed_hint(seeds, n)
    if seed_hint is not None:
        return seed_hint
    if m == n:
        return _matching_hint(got, [(
            expected.T,
            "the result is transposed: row i belongs to output i and column j to input j; the "
            "tangent of the pass seeded with e_j is column j, not row j.",
        )])
    return None


def check_jacobian_forward(
    jacobian_fn: Callable[[Callable, np.ndarray], Any], *, seed: int = 0, hidden: bool = False
) -> None:
    """Check a learner's ``jacobian_forward(f, x)``: the (m, n) Jacobian of f: R^n -> R^m.

    The functions use matrices, ``@``, elementwise arithmetic and plain numbers, with square
    and non-square Jacobians, one output, one input, and x used twice. The result must match
    the reference ``autodiff_ref.forward.jacobian_forward`` and a numeric Jacobian (central
    differences), and f must have been evaluated on dual numbers, once per input (one more
    pass is allowed).
    ``hidden=True`` in a test cell with hidden tests: see :func:`passed`.
    """
    with own_work("jacobian_forward", jacobian_fn, reference.jacobian_forward):
        rng = np.random.default_rng(seed)
        for case in _jacobian_cases():
            f, matrices, n = case.make(rng)
            x = np.asarray(_draw((n,), rng, "real"))
            given = "".join(f", {name} = {_show(matrix)}" for name, matrix in matrices.items())
            description = f"`jacobian_forward({case.source}, {_show(x)})`{given}"
            logged = _CallLog(f)
            got = _call(description, jacobian_fn, logged, x.copy())
            if logged.dual_calls == 0:
                raise CheckFailure(
                    f"{description} never called f with a dual number.\n"
                    "  Hint: forward mode builds column j from one pass of f on Dual(x, e_j), "
                    "where e_j is the j-th unit vector."
                )
            if logged.dual_calls > n + 1:  # one extra pass, say to learn the output size, is fine
                raise CheckFailure(
                    f"{description} called f on dual numbers {logged.dual_calls} times for {n} inputs.\n"
                    "  Hint: one forward pass per input is enough: the pass seeded with e_j gives column j."
                )
            expected = reference.jacobian_forward(f, x)
            hint = _jacobian_hint(got, expected, logged.seeds)
            if hint is None and np.shape(got) == expected.shape:
                with_learner_dual = [_tangent_with(logged.dual_class, f, x, unit) for unit in np.eye(n)]
                if not any(np.isnan(column).any() or np.shape(column) != (expected.shape[0],) for column in with_learner_dual):
                    hint = _matching_hint(got, [(np.stack(with_learner_dual, axis=1), _DUAL_CLASS_HINT)])
            assert_close(got, expected, f"The Jacobian from {description}", hint=hint)
            assert_close(got, _numeric_jacobian(f, x), f"The Jacobian from {description}, compared with central differences,",
                         atol=NUMERIC_ATOL, rtol=NUMERIC_RTOL)
        passed("jacobian_forward: 6 functions (square, wide, tall, one input, one output) match the reference "
               "and central differences", hidden=hidden)
