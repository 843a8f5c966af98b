"""Tests for ``autodiff_ref.testing.derivatives``: right answers pass, each usual mistake fails as meant.

The right answers are written the way a learner writes them in notebook 02; each wrong one gets
exactly one thing wrong, and its test asserts the hint the learner would read.
"""

from __future__ import annotations

import math
import re

import pytest

from autodiff_ref.testing import (
    DIFFERENCE_TEST_FUNCTIONS,
    PRIMITIVES,
    SIGMOID_NODES,
    CheckFailure,
    central_difference_or_reference,
    check_central_difference,
    check_fan_out,
    check_local_derivatives,
    check_sigmoid_by_hand,
)


def fails_with(*fragments: str):
    """pytest.raises(CheckFailure) whose message holds every fragment, in order."""
    return pytest.raises(CheckFailure, match="(?s)" + ".*".join(re.escape(f) for f in fragments))


# --- central differences -------------------------------------------------------------------------


def central_difference(f, x, eps=1e-5):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


def test_central_difference_passes_at_random_and_edge_points():
    check_central_difference(central_difference)
    check_central_difference(central_difference, seed=7, trials=4)
    check_central_difference(
        central_difference, points=[("sin", 0.0), ("exp", 10.0), ("cubic", -3.0), ("log", 0.25)]
    )


def test_central_difference_accepts_a_rearranged_formula():
    def rearranged(f, x, eps=1e-5):
        return 0.5 / eps * (f(x + eps) - f(x - eps))

    check_central_difference(rearranged)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda f, x, eps: (f(x + eps) - f(x)) / eps, "forward difference"),
        (lambda f, x, eps: (f(x) - f(x - eps)) / eps, "backward difference"),
        (lambda f, x, eps: (f(x + eps) - f(x - eps)) / eps, "divide by 2 * eps"),
        (lambda f, x, eps: (f(x - eps) - f(x + eps)) / (2 * eps), "the sign is flipped"),
        (lambda f, x, eps: (f(x + eps) - f(x - eps)) / 2 * eps, "write `/ (2 * eps)`"),
        (lambda f, x, eps: f(x + eps) - f(x - eps) / (2 * eps), "put the numerator in parentheses"),
        (lambda f, x, eps: (f(x + eps / 2) - f(x - eps / 2)) / eps, "steps eps/2 to each side"),
        (lambda f, x, eps: (f(x + 1e-6) - f(x - 1e-6)) / 2e-6, "use the eps argument"),
        (lambda f, x, eps: (f(x - 2 * eps) - 8 * f(x - eps) + 8 * f(x + eps) - f(x + 2 * eps)) / (12 * eps),
         "that is the five-point formula"),
    ],
    ids=["forward", "backward", "over_eps", "sign", "precedence_2eps", "precedence_numerator",
         "half_step", "fixed_step", "five_point"],
)
def test_central_difference_mistakes_get_their_hint(wrong, hint):
    with fails_with("is wrong", "expected", "got", "the exact derivative", "Hint:", hint):
        check_central_difference(wrong)


def test_central_difference_message_names_function_point_and_step():
    def forward(f, x, eps):
        return (f(x + eps) - f(x)) / eps

    with fails_with("forward(f, 1.5, 0.1) with f(x) = x**3 - 2*x is wrong", "expected 4.76, got 5.21",
                    "the exact derivative 3*x**2 - 2 is 4.75"):
        check_central_difference(forward, points=[("cubic", 1.5)])


def test_central_difference_hints_where_the_five_point_formula_leaves_logs_domain():
    def forward(f, x, eps):
        return (f(x + eps) - f(x)) / eps

    # x - 2*eps < 0 here: the checker's five-point comparison must not crash on log.
    with fails_with("forward(f, 0.15, 0.1) with f(x) = log(x) is wrong", "Hint:", "forward difference"):
        check_central_difference(forward, points=[("log", 0.15)])


def test_central_difference_unwritten_or_not_a_number():
    def unwritten(f, x, eps):
        raise NotImplementedError()

    with fails_with("not written yet", "raise NotImplementedError()"):
        check_central_difference(unwritten)
    with fails_with("should be a number", "NoneType", "Hint: did you forget `return`?"):
        check_central_difference(lambda f, x, eps: None)


def test_central_difference_rejects_bad_points():
    with pytest.raises(ValueError, match="unknown test function"):
        check_central_difference(central_difference, points=[("tan", 1.0)])
    with pytest.raises(ValueError, match="log needs x > 0.1"):
        check_central_difference(central_difference, points=[("log", 0.05)])


def test_central_difference_or_reference(capsys):
    assert central_difference_or_reference(central_difference) is central_difference
    assert capsys.readouterr().out == ""

    def unwritten(f, x, eps):
        raise NotImplementedError()

    fallback = central_difference_or_reference(unwritten)
    assert "use the reference" in capsys.readouterr().out
    for test in DIFFERENCE_TEST_FUNCTIONS.values():
        assert fallback(test.f, 1.2, 1e-3) == pytest.approx(central_difference(test.f, 1.2, 1e-3), rel=1e-12)


# --- local derivatives ---------------------------------------------------------------------------

RIGHT_LOCAL_DERIVATIVES = {
    "add": lambda a, b: (1.0, 1.0),
    "sub": lambda a, b: (1.0, -1.0),
    "mul": lambda a, b: (b, a),
    "neg": lambda a: (-1.0,),
    "exp": lambda a: (math.exp(a),),
    "log": lambda a: (1 / a,),
    "reciprocal": lambda a: (-1 / a**2,),
}


def test_every_primitive_has_a_right_answer_here():
    assert set(RIGHT_LOCAL_DERIVATIVES) == set(PRIMITIVES)


@pytest.mark.parametrize("op", sorted(PRIMITIVES))
def test_right_local_derivatives_pass(op):
    check_local_derivatives(RIGHT_LOCAL_DERIVATIVES[op], op)
    check_local_derivatives(RIGHT_LOCAL_DERIVATIVES[op], op, seed=5, trials=6)


def test_local_derivatives_at_edge_points():
    check_local_derivatives(RIGHT_LOCAL_DERIVATIVES["mul"], "mul", points=[(0.0, 3.0), (-2.5, 1e3)])
    check_local_derivatives(RIGHT_LOCAL_DERIVATIVES["reciprocal"], "reciprocal", points=[(-0.3,), (50.0,)])
    check_local_derivatives(RIGHT_LOCAL_DERIVATIVES["exp"], "exp", points=[(5.0,), (-4.0,)])


def test_local_derivatives_accept_a_list():
    check_local_derivatives(lambda a, b: [b, a], "mul")


@pytest.mark.parametrize(
    "op, wrong, hint",
    [
        ("add", lambda a, b: (b, a), "that is the rule for a * b"),
        ("add", lambda a, b: (1.0, 0.0), "the local derivative is 1, not 0"),
        ("sub", lambda a, b: (1.0, 1.0), "d(a - b)/db = -1"),
        ("mul", lambda a, b: (a, b), "the inputs are swapped"),
        ("mul", lambda a, b: (1.0, 1.0), "1 is the local derivative of a + b"),
        ("neg", lambda a: (1.0,), "-a falls as a grows"),
        ("exp", lambda a: (a,), "is exp(a) itself, not a"),
        ("exp", lambda a: (1.0,), "is exp(a) itself, not 1"),
        ("exp", lambda a: (math.exp(-a),), "not exp(-a)"),
        ("log", lambda a: (math.log(a),), "not log(a)"),
        ("reciprocal", lambda a: (1 / a**2,), "the sign is missing"),
        ("reciprocal", lambda a: (-1 / a,), "the exponent goes down by one"),
        ("reciprocal", lambda a: (1 / a,), "that is the value 1/a"),
        ("reciprocal", lambda a: (-1 / a*a,), "`-1 / a*a` is `(-1/a)*a = -1`"),
    ],
)
def test_local_derivative_mistakes_get_their_hint(op, wrong, hint):
    with fails_with("is wrong", "expected", "got", "the reference Value gives", "a central difference",
                    "Hint:", hint):
        check_local_derivatives(wrong, op)


def test_local_derivative_message_names_the_input():
    with fails_with("mul_local(2, -3): the local derivative for input 0 (a), d(a * b)/da, is wrong.",
                    "expected -3, got 2"):
        def mul_local(a, b):
            return (a, b)

        check_local_derivatives(mul_local, "mul", points=[(2.0, -3.0)])


def test_local_derivatives_shape_of_the_answer():
    with fails_with("should return a tuple", "`return (d_da,)`", "trailing comma"):
        check_local_derivatives(lambda a: -1.0, "neg")
    with fails_with("returned 1 number(s)", "the op has 2 input(s)"):
        check_local_derivatives(lambda a, b: (1.0,), "add")
    with fails_with("should be a number", "str"):
        check_local_derivatives(lambda a: ("-1",), "neg")
    with fails_with("returned NoneType None", "should return a tuple", "Hint: did you forget `return`?"):
        check_local_derivatives(lambda a: None, "neg")


def test_local_derivatives_unwritten_and_unknown_op():
    def exp_local(a):
        raise NotImplementedError()

    with fails_with("exp_local(", "not written yet"):
        check_local_derivatives(exp_local, "exp")
    with pytest.raises(ValueError, match="unknown primitive 'tan'"):
        check_local_derivatives(lambda a: (1.0,), "tan")
    with pytest.raises(ValueError, match="takes 2 input"):
        check_local_derivatives(RIGHT_LOCAL_DERIVATIVES["add"], "add", points=[(1.0,)])


# --- the sigmoid by hand -------------------------------------------------------------------------


def right_locals(z, a, b, c, y):
    return {"reciprocal": -1 / c**2, "add_one": 1.0, "exp": b, "neg": -1.0}


def make_sigmoid_by_hand(
    locals_of=right_locals,
    start=1.0,
    combine=lambda upstream, local: upstream * local,
    pass_on=lambda node, upstream, local, downstream: downstream,
):
    """A hand backward pass through y = 1/(1 + exp(-z)); each argument can plant one slip."""

    def sigmoid_by_hand(z):
        a = -z
        b = math.exp(a)
        c = 1 + b
        y = 1 / c
        local = locals_of(z, a, b, c, y)
        table, upstream = {}, start
        for node in SIGMOID_NODES:
            downstream = combine(upstream, local[node])
            table[node] = {"upstream": upstream, "local": local[node], "downstream": downstream}
            upstream = pass_on(node, upstream, local[node], downstream)
        return table

    return sigmoid_by_hand


def test_sigmoid_by_hand_passes_and_gives_a_quarter_at_zero():
    right = make_sigmoid_by_hand()
    check_sigmoid_by_hand(right)
    check_sigmoid_by_hand(right, zs=(3.0, -4.0, 8.0, -0.5, -30.0))
    assert right(0.0)["neg"]["downstream"] == pytest.approx(0.25)


def test_sigmoid_by_hand_accepts_locals_written_with_the_output():
    def with_output(z, a, b, c, y):
        return {"reciprocal": -y * y, "add_one": 1, "exp": math.exp(a), "neg": -1}

    check_sigmoid_by_hand(make_sigmoid_by_hand(locals_of=with_output))


def with_local(node, wrong):
    def locals_of(z, a, b, c, y):
        return {**right_locals(z, a, b, c, y), node: wrong(z, a, b, c, y)}

    return make_sigmoid_by_hand(locals_of=locals_of)


@pytest.mark.parametrize(
    "by_hand, where, hint",
    [
        (make_sigmoid_by_hand(start=0.0), "upstream gradient at node 'reciprocal'", "dy/dy = 1"),
        (with_local("reciprocal", lambda z, a, b, c, y: 1 / c**2), "local gradient at node 'reciprocal'",
         "the sign is missing"),
        (with_local("reciprocal", lambda z, a, b, c, y: -1 / y**2), "local gradient at node 'reciprocal'",
         "not at its output y"),
        (with_local("reciprocal", lambda z, a, b, c, y: -1 / c*c), "local gradient at node 'reciprocal'",
         "write `-1 / c**2`"),
        (with_local("add_one", lambda z, a, b, c, y: 0.0), "local gradient at node 'add_one'",
         "grows one for one with b"),
        (with_local("exp", lambda z, a, b, c, y: math.exp(z)), "local gradient at node 'exp'",
         "the node's own input a = -z"),
        (with_local("exp", lambda z, a, b, c, y: -b), "local gradient at node 'exp'",
         "the minus belongs to the neg node"),
        (with_local("neg", lambda z, a, b, c, y: 1.0), "local gradient at node 'neg'",
         "the local derivative is -1"),
        (make_sigmoid_by_hand(pass_on=lambda node, up, local, down: local), "upstream gradient at node 'exp'",
         "pass on its downstream gradient"),
        (make_sigmoid_by_hand(pass_on=lambda node, up, local, down: up if node == "exp" else down),
         "upstream gradient at node 'neg'", "without multiplying"),
        (make_sigmoid_by_hand(pass_on=lambda node, up, local, down: 1.0), "upstream gradient at node 'add_one'",
         "only the output starts at 1"),
        (make_sigmoid_by_hand(combine=lambda up, local: local), "downstream gradient at node 'add_one'",
         "the upstream factor is missing"),
        (make_sigmoid_by_hand(combine=lambda up, local: up), "downstream gradient at node 'reciprocal'",
         "the local factor is missing"),
        (make_sigmoid_by_hand(combine=lambda up, local: up + local), "downstream gradient at node 'reciprocal'",
         "multiply, do not add"),
    ],
)
def test_sigmoid_by_hand_mistakes_point_at_the_first_wrong_node(by_hand, where, hint):
    with fails_with("sigmoid_by_hand(", f"): {where}", "is wrong", "expected", "got", "Hint:", hint):
        check_sigmoid_by_hand(by_hand)


def test_sigmoid_by_hand_hidden_values_of_z_catch_a_tuned_answer():
    def tuned_to_zero(z):
        return make_sigmoid_by_hand()(0.0)  # right at z = 0 only

    check_sigmoid_by_hand(tuned_to_zero, zs=(0.0,))
    with fails_with("tuned_to_zero(1.5)", "is wrong"):
        check_sigmoid_by_hand(tuned_to_zero)


def test_sigmoid_by_hand_shape_of_the_answer():
    right = make_sigmoid_by_hand()

    def without_exp(z):
        table = right(z)
        del table["exp"]
        return table

    def without_local(z):
        table = right(z)
        del table["neg"]["local"]
        return table

    with fails_with("should return a dict with one entry per node"):
        check_sigmoid_by_hand(lambda z: [1.0, 2.0])
    with fails_with("returned NoneType", "Hint: did you forget `return`?"):
        check_sigmoid_by_hand(lambda z: None)
    with fails_with("without the node(s) 'exp'"):
        check_sigmoid_by_hand(without_exp)
    with fails_with("the entry for 'neg' should be a dict with the keys 'upstream', 'local' and 'downstream'"):
        check_sigmoid_by_hand(without_local)


def test_sigmoid_by_hand_with_a_tuple_from_a_local_function():
    def tuple_locals(z, a, b, c, y):
        return {**right_locals(z, a, b, c, y), "reciprocal": (-1 / c**2,)}

    with fails_with("local gradient at node 'reciprocal'", "should be a number", "take the number out with [0]"):
        check_sigmoid_by_hand(make_sigmoid_by_hand(locals_of=tuple_locals, combine=lambda up, local: 1.0))
    # upstream * (-1 / c**2,) crashes before the tuple is stored.
    with fails_with("sigmoid_by_hand(0) raised TypeError", "Hint: that is arithmetic on a tuple",
                    "take the number out with [0]"):
        check_sigmoid_by_hand(make_sigmoid_by_hand(locals_of=tuple_locals))

    def numbers_out_of_tuples(z, a, b, c, y):
        return {**right_locals(z, a, b, c, y), "reciprocal": (-1 / c**2,)[0]}

    check_sigmoid_by_hand(make_sigmoid_by_hand(locals_of=numbers_out_of_tuples))


def test_fan_out_with_a_tuple_from_a_local_function():
    def fan_out_backward(w1, w2, x):
        grad = {"w1": 0.0, "w2": 0.0, "x": 0.0}
        grad["w1"] += RIGHT_LOCAL_DERIVATIVES["mul"](w1, x)  # the tuple (x, w1), not its [0]
        return grad

    with fails_with("fan_out_backward(w1=", "raised TypeError", "Hint: that is arithmetic on a tuple",
                    "take the number out with [0]"):
        check_fan_out(fan_out_backward)


def test_a_crash_on_a_tuple_in_central_difference_gets_no_local_function_hint():
    def central_difference(f, x, eps):
        return (f(x + eps) - f(x - eps),) / (2 * eps)  # a stray comma, not a local derivative

    with pytest.raises(CheckFailure) as failure:
        check_central_difference(central_difference)
    assert "raised TypeError: unsupported operand type(s) for /: 'tuple'" in str(failure.value)
    assert "Hint" not in str(failure.value)


def test_sigmoid_by_hand_unwritten():
    def sigmoid_by_hand(z):
        raise NotImplementedError()

    with fails_with("sigmoid_by_hand(0) raised NotImplementedError", "not written yet"):
        check_sigmoid_by_hand(sigmoid_by_hand)


# --- fan-out -------------------------------------------------------------------------------------


def fan_out_backward(w1, w2, x):
    grad = {"w1": 0.0, "w2": 0.0, "x": 0.0}
    # f = p + q: both products get the upstream 1; each product passes upstream × the other input.
    grad["w1"] += 1.0 * x
    grad["x"] += 1.0 * w1
    grad["w2"] += 1.0 * x
    grad["x"] += 1.0 * w2
    return grad


def test_fan_out_passes_at_random_and_edge_points():
    check_fan_out(fan_out_backward)
    check_fan_out(fan_out_backward, seed=4, trials=5)
    check_fan_out(fan_out_backward, points=[(2.0, 2.0, 1.0), (1.5, -1.5, 0.7), (0.3, 0.8, 0.0)])


def fan_out_variant(grad_x=None, grad_w1=None):
    def fan_out_backward(w1, w2, x):
        grad = {"w1": x, "w2": x, "x": w1 + w2}
        if grad_x:
            grad["x"] = grad_x(w1, w2, x)
        if grad_w1:
            grad["w1"] = grad_w1(w1, w2, x)
        return grad

    return fan_out_backward


@pytest.mark.parametrize(
    "wrong, which, hint",
    [
        (fan_out_variant(grad_x=lambda w1, w2, x: w2), "x", "the second assignment overwrote the first"),
        (fan_out_variant(grad_x=lambda w1, w2, x: w1), "x", "the branch through w2*x was dropped"),
        (fan_out_variant(grad_x=lambda w1, w2, x: w1 * w2), "x", "added, not multiplied"),
        (fan_out_variant(grad_w1=lambda w1, w2, x: w1), "w1", "the other input of the product, x"),
        (fan_out_variant(grad_w1=lambda w1, w2, x: 1.0), "w1", "1 is the local derivative of +"),
        (fan_out_variant(grad_w1=lambda w1, w2, x: (w1 * x + w2 * x) * x), "w1",
         "the backward pass starts with df/df = 1, not the value of f"),
        (fan_out_variant(grad_x=lambda w1, w2, x: (w1 * x + w2 * x) * (w1 + w2)), "x",
         "the backward pass starts with df/df = 1, not the value of f"),
    ],
)
def test_fan_out_mistakes_get_their_hint(wrong, which, hint):
    with fails_with(f"df/d{which} is wrong", "expected", "got", "the reference Value gives",
                    "a central difference", "Hint:", hint):
        check_fan_out(wrong)


def test_fan_out_with_equal_weights_still_names_the_lost_branch():
    with fails_with("df/dx is wrong", "expected 4, got 2", "Hint: that is only the share"):
        check_fan_out(fan_out_variant(grad_x=lambda w1, w2, x: w2), points=[(2.0, 2.0, 1.0)])


def test_fan_out_shape_of_the_answer_and_unwritten():
    with fails_with("should return a dict with the keys 'w1', 'w2' and 'x'"):
        check_fan_out(lambda w1, w2, x: (x, x, w1 + w2))
    with fails_with("returned None", "Hint: did you forget `return`?"):
        check_fan_out(lambda w1, w2, x: None)

    def fan_out_unwritten(w1, w2, x):
        raise NotImplementedError()

    with fails_with("fan_out_unwritten(w1=", "not written yet"):
        check_fan_out(fan_out_unwritten)


# --- the reference instead of the learner's own ----------------------------------------------------


def test_central_difference_by_the_reference_fails():
    from autodiff_ref.gradcheck import numeric_grad

    def by_numeric_grad(f, x, eps=1e-5):
        return float(numeric_grad(f, x, eps=eps)[0])

    with fails_with("Your central_difference calls autodiff_ref.gradcheck.numeric_grad, the reference "
                    "implementation, from by_numeric_grad (line "):
        check_central_difference(by_numeric_grad)


def test_derivatives_by_hand_from_the_reference_engine_fail():
    from autodiff_ref.scalar import Value

    def mul_local(a, b):
        x, y = Value(a), Value(b)
        (x * y).backward()
        return x.grad, y.grad

    def fan_out_backward(w1, w2, x):
        leaves = {"w1": Value(w1), "w2": Value(w2), "x": Value(x)}
        (leaves["w1"] * leaves["x"] + leaves["w2"] * leaves["x"]).backward()
        return {name: leaf.grad for name, leaf in leaves.items()}

    with fails_with("Your mul_local calls autodiff_ref.scalar.Value.backward, the reference implementation, "
                    "from mul_local (line "):
        check_local_derivatives(mul_local, "mul")
    with fails_with("Your fan_out_backward calls autodiff_ref.scalar.Value.backward"):
        check_fan_out(fan_out_backward)
    check_local_derivatives(lambda a, b: (Value(b).data, Value(a).data), "mul")  # Values without backward: fine
