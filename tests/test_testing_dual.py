"""Tests for ``autodiff_ref.testing.dual``: right answers pass, each usual mistake fails as meant.

``LearnerDual`` and the functions after it are forward mode written from scratch the way a
learner writes it in notebook 04 (not the reference, so the checks are seen to accept an
independent implementation). Each broken version gets exactly one thing wrong, and its test
asserts the hint the learner would read, besides the case and expected-against-got lines.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest

from autodiff_ref import forward
from autodiff_ref.testing import (
    CheckFailure,
    check_derivative,
    check_dual_arithmetic,
    check_dual_function,
    check_jacobian_forward,
)
from autodiff_ref.testing.core import HIDDEN_TESTS_NOTE


def written_copy(module) -> SimpleNamespace:
    """``module`` as a learner who typed it into a cell has it: the same code, but compiled here
    (one line lower), so it is not the reference that the checks turn away."""
    namespace = {"__name__": "learners_copy", "__package__": module.__package__}
    exec(compile("\n" + inspect.getsource(module), __file__, "exec"), namespace)
    return SimpleNamespace(**namespace)


typed_in = written_copy(forward)  # the reference forward mode, typed in by hand


class LearnerDual:
    """value + tangent·ε with ε² = 0; value and tangent are floats or arrays of one shape."""

    __array_ufunc__ = None  # so that `array * Dual` and `W @ Dual` use the methods below

    def __init__(self, value, tangent):
        self.value = value
        self.tangent = tangent

    @staticmethod
    def lift(x):
        return x if isinstance(x, LearnerDual) else LearnerDual(x, 0.0)

    def __add__(self, other):
        other = self.lift(other)
        return LearnerDual(self.value + other.value, self.tangent + other.tangent)

    def __neg__(self):
        return LearnerDual(-self.value, -self.tangent)

    def __sub__(self, other):
        return self + -self.lift(other)

    def __rsub__(self, other):
        return self.lift(other) - self

    def __mul__(self, other):
        other = self.lift(other)
        return LearnerDual(
            self.value * other.value, self.value * other.tangent + self.tangent * other.value
        )

    def __truediv__(self, other):
        other = self.lift(other)
        return LearnerDual(
            self.value / other.value,
            (self.tangent * other.value - self.value * other.tangent) / other.value**2,
        )

    def __rtruediv__(self, other):
        return self.lift(other) / self

    def __pow__(self, exponent):
        if isinstance(exponent, LearnerDual):
            value = self.value**exponent.value
            return LearnerDual(
                value,
                exponent.value * self.value ** (exponent.value - 1) * self.tangent
                + value * np.log(self.value) * exponent.tangent,
            )
        return LearnerDual(self.value**exponent, exponent * self.value ** (exponent - 1) * self.tangent)

    def __rpow__(self, base):
        return self.lift(base) ** self

    def __rmatmul__(self, matrix):
        return LearnerDual(matrix @ self.value, matrix @ self.tangent)

    __radd__ = __add__
    __rmul__ = __mul__


class ArrayDual(LearnerDual):
    """The same Dual, but it keeps its own float arrays of what it is given (0-d for a number)."""

    def __init__(self, value, tangent):
        self.value = np.array(value, dtype=float)
        self.tangent = np.broadcast_to(np.asarray(tangent, dtype=float), self.value.shape).copy()


def learner_exp(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.exp(x.value), np.exp(x.value) * x.tangent)
    return np.exp(x)


def learner_sin(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.sin(x.value), np.cos(x.value) * x.tangent)
    return np.sin(x)


def learner_log(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.log(x.value), x.tangent / x.value)
    return np.log(x)


def learner_derivative(f):
    def f_prime(x):
        out = f(LearnerDual(x, np.ones_like(x, dtype=float)))
        return out.tangent if isinstance(out, LearnerDual) else np.zeros_like(x, dtype=float)

    return f_prime


def learner_jacobian(f, x):
    columns = [f(LearnerDual(x, unit)).tangent for unit in np.eye(len(x))]
    return np.stack(columns, axis=1)


def failure(check, *args, **kwargs) -> str:
    """The message of the CheckFailure that ``check(*args, **kwargs)`` must raise."""
    with pytest.raises(CheckFailure) as raised:
        check(*args, **kwargs)
    return str(raised.value)


# --- right answers pass -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)])
def test_learner_and_reference_arithmetic_pass(shape, capsys):
    check_dual_arithmetic(LearnerDual, shape=shape, seed=1)
    check_dual_arithmetic(typed_in.Dual, shape=shape, seed=2)
    check_dual_arithmetic(ArrayDual, shape=shape, seed=3)
    assert capsys.readouterr().out.count("✓") == 3


@pytest.mark.parametrize("ops", [("+",), ("*",), ("-", "neg"), ("/",), ("**",)])
def test_one_group_of_ops_at_a_time(ops, capsys):
    check_dual_arithmetic(LearnerDual, ops)
    assert "✓" in capsys.readouterr().out


def test_unknown_op_is_a_usage_error():
    with pytest.raises(ValueError, match="unknown ops"):
        check_dual_arithmetic(LearnerDual, ("%",))


@pytest.mark.parametrize("shape", [(), (3,)])
@pytest.mark.parametrize("name, function", [("exp", learner_exp), ("sin", learner_sin), ("log", learner_log)])
def test_learner_functions_pass(name, function, shape):
    check_dual_function(function, name, LearnerDual, shape=shape, seed=4)


@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos", "tanh", "sqrt"])
def test_reference_functions_pass(name):
    check_dual_function(getattr(typed_in, name), name, typed_in.Dual)
    check_dual_function(getattr(typed_in, name), name, typed_in.Dual, shape=(2, 2), seed=5)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_derivatives_pass(shape):
    check_derivative(learner_derivative, shape=shape)
    check_derivative(typed_in.derivative, shape=shape, seed=6)


def test_jacobians_pass(capsys):
    check_jacobian_forward(learner_jacobian)
    check_jacobian_forward(typed_in.jacobian_forward, seed=7)
    assert capsys.readouterr().out.count("✓") == 2


def test_each_check_says_when_hidden_checks_run_at_grading_once_per_cell(capsys):
    # This test function stands for a test cell of the learner's copy: no hidden tests in it.
    check_dual_arithmetic(LearnerDual, ("+",), hidden=True)
    check_dual_function(learner_exp, "exp", LearnerDual, hidden=True)
    check_derivative(learner_derivative, hidden=True)
    check_jacobian_forward(learner_jacobian, hidden=True)
    first, note, *others = capsys.readouterr().out.splitlines()
    assert first.startswith("✓ Dual +") and note == HIDDEN_TESTS_NOTE
    assert [line.split()[:2] for line in others] == [["✓", "exp"], ["✓", "derivative:"], ["✓", "jacobian_forward:"]]


def test_without_hidden_siblings_a_check_says_nothing_of_them(capsys):
    check_dual_arithmetic(LearnerDual, ("+",))
    assert HIDDEN_TESTS_NOTE not in capsys.readouterr().out


def test_a_scalar_derivative_is_accepted_where_every_element_has_it():
    def constant_aware(f):
        f_prime = learner_derivative(f)
        return lambda x: 0.0 if not isinstance(f(LearnerDual(x, 1.0)), LearnerDual) else f_prime(x)

    check_derivative(constant_aware, shape=(3,))


# --- arithmetic mistakes ------------------------------------------------------------------------


class ConstantWithTangentOne(LearnerDual):
    @staticmethod
    def lift(x):
        return x if isinstance(x, LearnerDual) else LearnerDual(x, 1.0)


class ProductMissingATerm(LearnerDual):
    def __mul__(self, other):
        other = self.lift(other)
        return LearnerDual(self.value * other.value, self.tangent * other.value)

    __rmul__ = __mul__


class ProductWithNumberKeepsTangent(LearnerDual):
    def __mul__(self, other):
        if isinstance(other, LearnerDual):
            return super().__mul__(other)
        return LearnerDual(self.value * other, self.tangent)

    __rmul__ = __mul__


class ProductWithoutLift(LearnerDual):
    def __mul__(self, other):
        return LearnerDual(self.value * other.value, self.value * other.tangent + self.tangent * other.value)

    __rmul__ = __mul__


class SumInPlace(LearnerDual):
    def __add__(self, other):
        other = self.lift(other)
        self.value, self.tangent = self.value + other.value, self.tangent + other.tangent
        return self

    __radd__ = __add__


class ProductOfTangents(LearnerDual):
    def __mul__(self, other):
        other = self.lift(other)
        return LearnerDual(self.value * other.value, self.tangent * other.tangent)

    __rmul__ = __mul__


class SumKeepsOneTangent(LearnerDual):
    def __add__(self, other):
        other = self.lift(other)
        return LearnerDual(self.value + other.value, self.tangent)

    __radd__ = __add__


class DifferenceAddsTangents(LearnerDual):
    def __sub__(self, other):
        other = self.lift(other)
        return LearnerDual(self.value - other.value, self.tangent + other.tangent)


class ReflectedSubtractionSwapped(LearnerDual):
    def __rsub__(self, other):
        return self - other


class NegationKeepsTangent(LearnerDual):
    def __neg__(self):
        return LearnerDual(-self.value, self.tangent)


class QuotientSignFlipped(LearnerDual):
    def __truediv__(self, other):
        other = self.lift(other)
        return LearnerDual(
            self.value / other.value,
            (self.value * other.tangent - self.tangent * other.value) / other.value**2,
        )


class QuotientDenominatorNotSquared(LearnerDual):
    def __truediv__(self, other):
        other = self.lift(other)
        return LearnerDual(
            self.value / other.value,
            (self.tangent * other.value - self.value * other.tangent) / other.value,
        )


class PowerExponentNotLowered(LearnerDual):
    def __pow__(self, exponent):
        if isinstance(exponent, LearnerDual):
            return super().__pow__(exponent)
        return LearnerDual(self.value**exponent, exponent * self.value**exponent * self.tangent)


class PowerWithoutChainRule(LearnerDual):
    def __pow__(self, exponent):
        if isinstance(exponent, LearnerDual):
            return super().__pow__(exponent)
        return LearnerDual(self.value**exponent, exponent * self.value ** (exponent - 1))


class PowerRuleForNumberBase(LearnerDual):
    def __rpow__(self, base):
        return LearnerDual(base**self.value, self.value * base ** (self.value - 1) * self.tangent)


class PowerMissingExponentTerm(LearnerDual):
    def __pow__(self, exponent):
        if isinstance(exponent, LearnerDual):
            return LearnerDual(
                self.value**exponent.value,
                exponent.value * self.value ** (exponent.value - 1) * self.tangent,
            )
        return super().__pow__(exponent)


class PowerLiftsNumberExponent(LearnerDual):
    def __pow__(self, exponent):
        with np.errstate(invalid="ignore"):  # the x ** y rule takes log(x.value): nan for x < 0
            return super().__pow__(self.lift(exponent))


class PowerLiftsNumberExponentWithMath(LearnerDual):
    """The x ** y rule for a lifted number exponent, on Python floats with the math module."""

    def __pow__(self, exponent):
        exponent = self.lift(exponent)
        value = self.value**exponent.value
        return LearnerDual(value, exponent.value * self.value ** (exponent.value - 1) * self.tangent
                           + value * math.log(self.value) * exponent.tangent)


class NoReflectedAdd(LearnerDual):
    def __radd__(self, other):
        return NotImplemented


class MultiplicationNotWritten(LearnerDual):
    def __mul__(self, other):
        raise NotImplementedError()

    __rmul__ = __mul__


class SumReturnsPlainNumber(LearnerDual):
    def __add__(self, other):
        return self.value + self.lift(other).value

    __radd__ = __add__


class LiftWrapsDuals(LearnerDual):
    """lift without its isinstance test: a Dual operand ends up inside another Dual."""

    @staticmethod
    def lift(x):
        return LiftWrapsDuals(x, 0.0)


class NegationKeepsTangentSubtractionUsesIt(LearnerDual):
    """The notebook's tip, __sub__ as x + (−y), on top of a __neg__ that forgets the tangent."""

    def __neg__(self):
        return NegationKeepsTangentSubtractionUsesIt(-self.value, self.tangent)

    def __sub__(self, other):
        return self + -self.lift(other)


class SubtractionCallsItself(LearnerDual):
    def __sub__(self, other):
        return self - self.lift(other)


class TangentAsSingleNumber(LearnerDual):
    def __neg__(self):
        return LearnerDual(-self.value, -float(np.sum(self.tangent)))


@pytest.mark.parametrize(
    "dual_class, ops, shape, expected_words",
    [
        (ConstantWithTangentOne, ("*",), (), ["`x * k`", "tangent is 0, not 1"]),
        (ProductMissingATerm, ("*",), (), ["`x * y`", "product rule has two terms", "One term is missing"]),
        (ProductOfTangents, ("*",), (), ["`x * y`", "coefficient of ε²"]),
        (ProductWithNumberKeepsTangent, ("*",), (), ["`x * k`", "multiply the tangent by k as well"]),
        (ProductWithoutLift, ("*",), (), ["`x * k`", "raised AttributeError", "has no .value", "Dual.lift"]),
        (SumInPlace, ("+",), (), ["`x + y`", "changed its input x in place", "return a new Dual", "`x + y + x`"]),
        (SumKeepsOneTangent, ("+",), (), ["`x + y`", "add both tangents"]),
        (DifferenceAddsTangents, ("-",), (), ["`x - y`", "subtract the tangents too"]),
        (ReflectedSubtractionSwapped, ("-",), (), ["The value of `k - x`", "this computed x − k", "RIGHT operand"]),
        (NegationKeepsTangent, ("neg",), (), ["`-x`", "negate the tangent too"]),
        (QuotientSignFlipped, ("/",), (), ["`x / y`", "sign is flipped"]),
        (QuotientDenominatorNotSquared, ("/",), (), ["`x / y`", "square of the denominator"]),
        (PowerExponentNotLowered, ("**",), (), ["`x ** 3`", "lowers the exponent by one"]),
        (PowerWithoutChainRule, ("**",), (), ["`x ** 3`", "not multiplied by x.tangent"]),
        (PowerRuleForNumberBase, ("**",), (), ["`k ** x`", "exponent varies", "log(k)"]),
        (PowerMissingExponentTerm, ("**",), (), ["`x ** y`", "exponent's part is missing"]),
        (PowerLiftsNumberExponent, ("**",), (), ["`x ** 3` with x = Dual(-", "got nan", "log of a negative base", "k·x.value^(k−1)"]),
        (PowerLiftsNumberExponentWithMath, ("**",), (), ["`x ** 3` with x = Dual(-", "math domain error", "power rule"]),
        (NoReflectedAdd, ("+",), (), ["`k + x` with", "raised TypeError", "reflected method"]),
        (MultiplicationNotWritten, ("*",), (), ["`x * y`", "raised NotImplementedError in `", "__mul__`", "not written yet"]),
        (SumReturnsPlainNumber, ("+",), (), ["`x + y`", "not a dual number", "return a Dual(value, tangent)"]),
        (TangentAsSingleNumber, ("neg",), (3,), ["`-x`", "each element needs its own tangent"]),
        (LiftWrapsDuals, ("+",), (), ["`x + y`", "value is itself a Dual", "Dual.lift", "x itself"]),
        (LiftWrapsDuals, ("+",), (3,), ["`x + y`", "value is itself a Dual", "Dual.lift"]),
        (NegationKeepsTangentSubtractionUsesIt, ("-", "neg"), (), ["The tangent (ε part) of `-x`", "negate the tangent too"]),
        (SubtractionCallsItself, ("-", "neg"), (), ["`x - y`", "raised RecursionError", "call each other without end", "Dual.lift"]),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_arithmetic_mistakes_get_their_hint(dual_class, ops, shape, expected_words):
    message = failure(check_dual_arithmetic, dual_class, ops, shape=shape)
    for words in expected_words:
        assert words in message, f"{words!r} missing from:\n{message}"


def test_a_failure_shows_inputs_that_can_be_pasted_and_expected_against_got():
    message = failure(check_dual_arithmetic, ProductMissingATerm, ("*",))
    first_line = message.splitlines()[0]
    assert "x = Dual(" in first_line and "y = Dual(" in first_line
    assert "expected" in message and "got" in message
    x_source = first_line.split("x = ")[1].split(", y = ")[0]
    y_source = first_line.split("y = ")[1].split(" is wrong")[0]
    x, y = eval(x_source, {"Dual": forward.Dual}), eval(y_source, {"Dual": forward.Dual})
    expected = (x * y).tangent
    assert f"expected {expected:.6g}" in message


def test_arithmetic_failure_on_arrays_names_the_worst_element():
    message = failure(check_dual_arithmetic, ProductMissingATerm, ("*",), shape=(4,))
    assert "np.array([" in message and "worst is element [" in message


# --- elementary-function mistakes ---------------------------------------------------------------


def exp_without_chain_rule(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.exp(x.value), np.exp(x.value))
    return np.exp(x)


def sin_with_wrong_sign(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.sin(x.value), -np.cos(x.value) * x.tangent)
    return np.sin(x)


def sin_of_the_tangent(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.sin(x.value), np.sin(x.tangent))
    return np.sin(x)


def sin_without_derivative(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.sin(x.value), np.sin(x.value) * x.tangent)
    return np.sin(x)


def log_always_dual(x):
    return learner_log(x if isinstance(x, LearnerDual) else LearnerDual(x, 0.0))


def exp_only_for_duals(x):
    return LearnerDual(np.exp(x.value), np.exp(x.value) * x.tangent)


def sin_in_place(x):
    if isinstance(x, LearnerDual):
        x.value, x.tangent = np.sin(x.value), np.cos(x.value) * x.tangent
        return x
    return np.sin(x)


def log_times_value(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.log(x.value), x.tangent * x.value)
    return np.log(x)


def sqrt_without_half(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(np.sqrt(x.value), x.tangent / np.sqrt(x.value))
    return np.sqrt(x)


def exp_with_math_module(x):
    if isinstance(x, LearnerDual):
        return LearnerDual(math.exp(x.value), math.exp(x.value) * x.tangent)
    return math.exp(x)


@pytest.mark.parametrize(
    "function, name, shape, expected_words",
    [
        (exp_without_chain_rule, "exp", (), ["`exp(x)` with x = Dual(", "not multiplied by x.tangent"]),
        (sin_with_wrong_sign, "sin", (), ["`sin(x)`", "wrong sign"]),
        (sin_of_the_tangent, "sin", (), ["`sin(x)`", "sin(x.tangent)"]),
        (sin_without_derivative, "sin", (), ["`sin(x)`", "needs the derivative sin'(x.value)"]),
        (log_always_dual, "log", (), ["`log(", "(a plain number) returned a Dual", "isinstance"]),
        (exp_with_math_module, "exp", (3,), ["`exp(np.array([", "raised TypeError", "use np.exp, np.log"]),
        (exp_only_for_duals, "exp", (), ["`exp(", "(a plain number) raised AttributeError", "isinstance", "return np.exp(x)"]),
        (log_times_value, "log", (), ["`log(x)` with x = Dual(", "multiplied by x.value", "x.tangent / x.value"]),
        (sqrt_without_half, "sqrt", (), ["`sqrt(x)` with x = Dual(", "factor 1/2 is missing"]),
        (sin_in_place, "sin", (3,), ["`sin(x)` with x = Dual(", "changed its input x in place", "`sin(x) + x`"]),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_function_mistakes_get_their_hint(function, name, shape, expected_words):
    message = failure(check_dual_function, function, name, LearnerDual, shape=shape)
    for words in expected_words:
        assert words in message, f"{words!r} missing from:\n{message}"


def test_a_missing_chain_rule_shows_only_with_a_tangent_other_than_1():
    message = failure(check_dual_function, exp_without_chain_rule, "exp", LearnerDual)
    tangent = float(message.split("x = Dual(")[1].split(", ")[1].split(")")[0])
    assert tangent != 1.0


def test_unknown_function_is_a_usage_error():
    with pytest.raises(ValueError, match="unknown function"):
        check_dual_function(learner_exp, "erf", LearnerDual)


# --- derivative mistakes ----------------------------------------------------------------------


def derivative_returns_value(f):
    return lambda x: f(LearnerDual(x, 1.0)).value


def derivative_seeded_with_zero(f):
    return lambda x: f(LearnerDual(x, 0.0)).tangent


def derivative_seeded_with_two(f):
    return lambda x: f(LearnerDual(x, 2.0)).tangent


def derivative_returns_dual(f):
    return lambda x: f(LearnerDual(x, 1.0))


def derivative_ignores_constants(f):
    return lambda x: f(LearnerDual(x, 1.0)).tangent


def derivative_none_for_constants(f):
    def f_prime(x):
        out = f(LearnerDual(x, 1.0))
        return out.tangent if isinstance(out, LearnerDual) else None

    return f_prime


def derivative_by_differences(f):
    return lambda x: (f(x + 1e-6) - f(x - 1e-6)) / 2e-6


def derivative_as_float(f):
    """Right for a number x, but float(...) turns an array of derivatives into an error."""

    def f_prime(x):
        out = f(LearnerDual(x, np.ones_like(x, dtype=float)))
        return float(out.tangent) if isinstance(out, LearnerDual) else 0.0

    return f_prime


def test_a_derivative_that_returns_float_fails_on_arrays():
    check_derivative(derivative_as_float)  # a number x: float(...) does no harm
    message = failure(check_derivative, derivative_as_float, shape=(3,))
    for words in ["(np.array([", "raised TypeError", "float(...)", "work on arrays"]:
        assert words in message, f"{words!r} missing from:\n{message}"


def test_exp_with_the_math_module_fails_on_an_array_input():
    message = failure(check_dual_function, exp_with_math_module, "exp", LearnerDual, shape=(3,), seed=1)
    assert "(a plain array) raised TypeError" in message and "use np.exp" in message


def derivative_not_a_factory(f):
    return f(LearnerDual(1.0, 1.0)).tangent


@pytest.mark.parametrize(
    "derivative_fn, expected_words",
    [
        (derivative_returns_value, ["`derivative(lambda x: 3 * x * x - 2 * x + 1)(", "that is f(x), the value"]),
        (derivative_seeded_with_zero, ["called with tangent 0", "seed x with tangent 1"]),
        (derivative_seeded_with_two, ["called with tangent 2", "seed x with tangent 1"]),
        (derivative_returns_dual, ["returned a Dual", "tangent (the ε part)"]),
        (derivative_ignores_constants, ["`derivative(lambda x: 4.0)(", "raised AttributeError", "derivative is 0"]),
        (derivative_none_for_constants, ["`derivative(lambda x: 4.0)(", "got nan", "derivative is 0", "return 0"]),
        (derivative_by_differences, ["never called f with a dual number"]),
        (derivative_not_a_factory, ["not a function", "returns a new function"]),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_derivative_mistakes_get_their_hint(derivative_fn, expected_words):
    message = failure(check_derivative, derivative_fn)
    for words in expected_words:
        assert words in message, f"{words!r} missing from:\n{message}"


# --- jacobian mistakes ------------------------------------------------------------------------


def jacobian_by_rows(f, x):
    return np.stack([f(LearnerDual(x, unit)).tangent for unit in np.eye(len(x))], axis=0)


def jacobian_transposed_when_square(f, x):
    jacobian = learner_jacobian(f, x)
    return jacobian.T if jacobian.shape[0] == jacobian.shape[1] else jacobian


def jacobian_same_seed(f, x):
    return np.stack([f(LearnerDual(x, np.eye(len(x))[0])).tangent for _ in range(len(x))], axis=1)


def jacobian_seed_not_reset(f, x):
    unit, columns = np.zeros(len(x)), []
    for j in range(len(x)):
        unit[j] = 1.0  # the 1 of the pass before stays
        columns.append(f(LearnerDual(x, unit)).tangent)
    return np.stack(columns, axis=1)


def jacobian_one_pass(f, x):
    return f(LearnerDual(x, np.ones(len(x)))).tangent


def jacobian_by_differences(f, x):
    return np.stack([(f(x + 1e-6 * unit) - f(x - 1e-6 * unit)) / 2e-6 for unit in np.eye(len(x))], axis=1)


def jacobian_two_passes_per_column(f, x):
    columns = []
    for unit in np.eye(len(x)):
        f(LearnerDual(x, unit))
        columns.append(f(LearnerDual(x, unit)).tangent)
    return np.stack(columns, axis=1)


@pytest.mark.parametrize(
    "jacobian_fn, expected_words",
    [
        (jacobian_by_rows, ["`jacobian_forward(lambda x: A @ x, np.array([", "A = np.array([[", "has shape (2, 3), expected shape (3, 2)", "shape is transposed"]),
        (jacobian_transposed_when_square, ["(A @ x) * (A @ x)", "the result is transposed"]),
        (jacobian_same_seed, ["seeded with the same tangent"]),
        (jacobian_seed_not_reset, ["called with the tangents np.array([1.0, 0.0]), np.array([1.0, 1.0]);", "needs the unit vector e_j", "set back to 0"]),
        (jacobian_one_pass, ["single vector"]),
        (jacobian_by_differences, ["never called f with a dual number"]),
        (jacobian_two_passes_per_column, ["times for 2 inputs", "one forward pass per input"]),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_jacobian_mistakes_get_their_hint(jacobian_fn, expected_words):
    message = failure(check_jacobian_forward, jacobian_fn)
    for words in expected_words:
        assert words in message, f"{words!r} missing from:\n{message}"


# --- a right derivative or Jacobian on a wrong Dual class -------------------------------------


def test_a_wrong_dual_class_is_blamed_rather_than_a_right_derivative():
    def derivative_on_broken_duals(f):
        def f_prime(x):
            out = f(ProductMissingATerm(x, 1.0))
            return out.tangent if isinstance(out, LearnerDual) else 0.0

        return f_prime

    message = failure(check_derivative, derivative_on_broken_duals)
    assert "comes from the Dual class" in message and "Dual tests above" in message


def test_a_wrong_dual_class_is_blamed_rather_than_a_right_jacobian():
    def jacobian_on_broken_duals(f, x):
        return np.stack([f(ProductMissingATerm(x, unit)).tangent for unit in np.eye(len(x))], axis=1)

    message = failure(check_jacobian_forward, jacobian_on_broken_duals)
    assert "comes from the Dual class" in message


def test_a_name_from_a_later_cell_gets_a_hint():
    class PowerThroughUndefinedExp(LearnerDual):
        def __pow__(self, exponent):
            return undefined_exp(exponent * undefined_log(self))  # noqa: F821 -- the mistake under test

    message = failure(check_dual_arithmetic, PowerThroughUndefinedExp, ("**",))
    assert "raised NameError" in message and "defined in a later cell" in message


# --- the reference instead of the learner's own ----------------------------------------------------


def test_the_reference_dual_instead_of_ones_own_fails():
    with pytest.raises(CheckFailure, match="^Your Dual is autodiff_ref.forward.Dual, the reference implementation"):
        check_dual_arithmetic(forward.Dual, ("*",))

    class Dual(forward.Dual):
        pass

    with pytest.raises(CheckFailure, match="^Your Dual subclasses autodiff_ref.forward.Dual and inherits its "
                                           "__mul__, the reference implementation.*Write a class of your own, "
                                           "with your own __mul__"):
        check_dual_arithmetic(Dual, ("*",))

    class MulByTheReference(LearnerDual):
        def __mul__(self, other):
            other = other if isinstance(other, LearnerDual) else LearnerDual(other, 0.0)
            out = forward.Dual.__mul__(forward.Dual(self.value, self.tangent), forward.Dual(other.value, other.tangent))
            return LearnerDual(out.value, out.tangent)

        __rmul__ = __mul__

    with pytest.raises(CheckFailure, match=r"^Your MulByTheReference calls autodiff_ref.forward.Dual.__mul__, the "
                                           r"reference implementation, from MulByTheReference.__mul__ \(line"):
        check_dual_arithmetic(MulByTheReference, ("*",))
    check_dual_arithmetic(MulByTheReference, ("+", "/"))  # only the ops being checked must be its own


def test_the_reference_functions_instead_of_ones_own_fail():
    with pytest.raises(CheckFailure, match="^Your exp is autodiff_ref.forward.exp, the reference implementation"):
        check_dual_function(forward.exp, "exp", LearnerDual)

    def exp(x):
        if isinstance(x, LearnerDual):
            out = forward.exp(forward.Dual(x.value, x.tangent))
            return LearnerDual(out.value, out.tangent)
        return np.exp(x)

    with pytest.raises(CheckFailure, match=r"^Your exp calls autodiff_ref.forward.exp, the reference "
                                           r"implementation, from exp \(line"):
        check_dual_function(exp, "exp", LearnerDual)
    with pytest.raises(CheckFailure, match="^Your derivative is autodiff_ref.forward.derivative, the reference"):
        check_derivative(forward.derivative)
    with pytest.raises(CheckFailure, match="^Your derivative calls autodiff_ref.forward.derivative, the reference"):
        check_derivative(lambda f: forward.derivative(f))
    with pytest.raises(CheckFailure, match="^Your jacobian_forward calls autodiff_ref.forward.jacobian_forward"):
        check_jacobian_forward(lambda f, x: forward.jacobian_forward(f, x))
