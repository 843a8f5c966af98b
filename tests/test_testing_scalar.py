"""Tests for ``autodiff_ref.testing.scalar``: right engines pass, each usual mistake fails as meant.

``LearnerValue`` is a complete scalar engine written from scratch on the protocol, the way a
learner writes it in notebook 03 (it is not the reference, so the checks are seen to accept an
independent implementation). Each broken engine below is a subclass that gets exactly one
thing wrong, and its test asserts the hint the learner would read.
"""

from __future__ import annotations

import inspect
import math
import sys

import pytest

from autodiff_ref.graph import topological_order
from autodiff_ref.scalar import Value as ReferenceValue
from autodiff_ref.testing import (
    SCALAR_OPS,
    CheckFailure,
    check_backward,
    check_expression,
    check_value_op,
    value_class_or_reference,
)


def written_copy(reference):
    """``reference`` as a learner who typed its module into a cell has it: the same code, but
    compiled here (one line lower), so it is not the reference that the checks turn away."""
    module = sys.modules[reference.__module__]
    namespace = {"__name__": "learners_copy", "__package__": module.__package__}
    exec(compile("\n" + inspect.getsource(module), __file__, "exec"), namespace)
    return namespace[reference.__name__]


Value = written_copy(ReferenceValue)  # the reference engine, typed in by hand


class LearnerValue:
    """A scalar engine on the reference protocol, each op's local gradients beside its forward."""

    def __init__(self, data, inputs=(), local_grads=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self.inputs = tuple(inputs)
        self.local_grads = tuple(local_grads)
        self.op = op

    def node(self, data, inputs, local_grads, op):
        return type(self)(data, inputs, local_grads, op)

    def wrap(self, other):
        return other if isinstance(other, LearnerValue) else type(self)(other)

    def __add__(self, other):
        other = self.wrap(other)
        return self.node(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __sub__(self, other):
        other = self.wrap(other)
        return self.node(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __mul__(self, other):
        other = self.wrap(other)
        return self.node(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __truediv__(self, other):
        other = self.wrap(other)
        return self.node(
            self.data / other.data, (self, other), (1 / other.data, -self.data / other.data**2), "/"
        )

    def __pow__(self, n):
        return self.node(self.data**n, (self,), (n * self.data ** (n - 1),), f"**{n}")

    def __neg__(self):
        return self.node(-self.data, (self,), (-1.0,), "neg")

    def __radd__(self, other):
        return self.wrap(other) + self

    def __rsub__(self, other):
        return self.wrap(other) - self

    def __rmul__(self, other):
        return self.wrap(other) * self

    def __rtruediv__(self, other):
        return self.wrap(other) / self

    def exp(self):
        e = math.exp(self.data)
        return self.node(e, (self,), (e,), "exp")

    def log(self):
        return self.node(math.log(self.data), (self,), (1 / self.data,), "log")

    def tanh(self):
        t = math.tanh(self.data)
        return self.node(t, (self,), (1 - t * t,), "tanh")

    def relu(self):
        return self.node(max(self.data, 0.0), (self,), (1.0 if self.data > 0 else 0.0,), "relu")

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        return self.node(s, (self,), (s * (1 - s),), "sigmoid")

    def backward(self):
        ledger = {id(self): 1.0}
        for node in reversed(topological_order(self)):
            upstream = ledger[id(node)]
            node.grad += upstream
            for node_input, local in zip(node.inputs, node.local_grads):
                ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + upstream * local


def fails_with(ValueClass, op_name, *phrases):
    """Run the check for ``op_name`` ("backward" for check_backward) and return its message."""
    with pytest.raises(CheckFailure) as failure:
        if op_name == "backward":
            check_backward(ValueClass)
        else:
            check_value_op(ValueClass, op_name)
    message = str(failure.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    return message


# --- right engines pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("op_name", list(SCALAR_OPS))
@pytest.mark.parametrize("ValueClass", [Value, LearnerValue], ids=["reference", "learner"])
def test_right_ops_pass(ValueClass, op_name):
    check_value_op(ValueClass, op_name)
    check_value_op(ValueClass, op_name, seed=7, trials=6)


@pytest.mark.parametrize("ValueClass", [Value, LearnerValue], ids=["reference", "learner"])
def test_right_backward_passes(ValueClass):
    check_backward(ValueClass)


@pytest.mark.parametrize(
    "op_name, points",
    [
        ("tanh", [(-4.0,), (0.0,), (3.5,)]),  # saturated and at the centre
        ("relu", [(-1e-3,), (1e-3,), (-50.0,), (50.0,)]),  # close to the kink, not on it
        ("pow", [(1.7, 0.0), (-2.5, 1.0), (0.8, -0.5)]),
        ("exp", [(-20.0,), (0.0,), (5.0,)]),
        ("mul", [(0.0, 3.0), (-2.5, 1e3)]),
    ],
)
def test_edge_points_pass_on_the_reference(op_name, points):
    check_value_op(Value, op_name, points=points)


def test_an_op_built_from_other_ops_passes():
    """a - b written as a + (-b): its derivative is followed through the graph it builds."""

    class ComposedSub(LearnerValue):
        def __sub__(self, other):
            return self + (-self.wrap(other))

    check_value_op(ComposedSub, "sub")


NEURON = ("tanh(w1*x1 + w2*x2 + b)", lambda w1, w2, x1, x2, b: (w1 * x1 + w2 * x2 + b).tanh(),
          {"w1": 0.7, "w2": -1.3, "x1": 2.0, "x2": 0.5, "b": 0.1})


@pytest.mark.parametrize("ValueClass", [Value, LearnerValue], ids=["reference", "learner"])
def test_right_engines_pass_check_expression(ValueClass):
    check_expression(ValueClass, *NEURON)
    check_expression(
        ValueClass, "every op, x used four times",
        lambda x, y: ((x * y + (-x).exp()) / (x ** 2 + 1) - y.log() + (x - 2).relu() * x.sigmoid()).tanh(),
        {"x": 0.8, "y": 1.7},
    )


def test_check_expression_names_a_wrong_leaf():
    class SwappedMul(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            return self.node(self.data * other.data, (self, other), (self.data, other.data), "*")

    message = fails_with_expression(SwappedMul, *NEURON)
    assert "✗ w1.grad" in message and "✓ b.grad" in message


def test_check_expression_blames_the_ops_when_backward_is_right():
    class TanhNoSquare(LearnerValue):
        def tanh(self):
            t = math.tanh(self.data)
            return self.node(t, (self,), (1 - t,), "tanh")

    message = fails_with_expression(TanhNoSquare, *NEURON)
    assert "an op stored a wrong local gradient" in message


def test_check_expression_spots_overwritten_gradients():
    class Overwrites(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in reversed(topological_order(self)):
                upstream = ledger[id(node)]
                node.grad += upstream
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = upstream * local

    message = fails_with_expression(Overwrites, "w*x + x.tanh()", lambda w, x: w * x + x.tanh(), {"w": 1.5, "x": 0.4})
    assert "overwritten instead of summed" in message


def fails_with_expression(ValueClass, text, build, leaf_data):
    with pytest.raises(CheckFailure) as failure:
        check_expression(ValueClass, text, build, leaf_data)
    return str(failure.value)


def test_value_class_or_reference(capsys):
    assert value_class_or_reference(LearnerValue) is LearnerValue
    assert "✓" in capsys.readouterr().out

    class SwappedMul(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            return self.node(self.data * other.data, (self, other), (self.data, other.data), "*")

    assert value_class_or_reference(SwappedMul) is ReferenceValue
    printed = capsys.readouterr().out
    assert "SwappedMul does not pass every check yet (mul:" in printed
    assert "reference autodiff_ref.scalar.Value" in printed


def test_unfinished_work_is_named():
    class Unfinished(LearnerValue):
        def exp(self):
            raise NotImplementedError()

        def backward(self):
            raise NotImplementedError()

    fails_with(Unfinished, "exp", "exp: a.exp() with a = ", "raised NotImplementedError: it is not written yet")
    fails_with(Unfinished, "backward", "backward() raised NotImplementedError", "replace `raise NotImplementedError()`")
    message = fails_with_expression(Unfinished, "x.exp()", lambda x: x.exp(), {"x": 1.0})
    assert "an op in x.exp() with x = 1 raised NotImplementedError" in message


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown op 'cos'"):
        check_value_op(Value, "cos")
    with pytest.raises(ValueError, match="mul takes 2 operand"):
        check_value_op(Value, "mul", points=[(1.0,)])
    with pytest.raises(ValueError, match="positive base"):
        check_value_op(Value, "pow", points=[(-2.0, 0.5)])


# --- one usual mistake per op ---------------------------------------------------------------------


def test_mul_with_swapped_operands():
    class SwappedMul(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            return self.node(self.data * other.data, (self, other), (self.data, other.data), "*")

    fails_with(SwappedMul, "mul", "mul: out.local_grads[0] (d out / d a)", "expected", "got",
               "operands are swapped")


def test_add_with_the_rule_of_mul():
    class AddLikeMul(LearnerValue):
        def __add__(self, other):
            other = self.wrap(other)
            return self.node(self.data + other.data, (self, other), (other.data, self.data), "+")

    fails_with(AddLikeMul, "add", "add:", "for + both local gradients are 1")


def test_sub_with_the_wrong_sign_for_b():
    class SubSign(LearnerValue):
        def __sub__(self, other):
            other = self.wrap(other)
            return self.node(self.data - other.data, (self, other), (1.0, 1.0), "-")

    fails_with(SubSign, "sub", "out.local_grads[1] (d out / d b)", "-1 for b")


def test_div_missing_the_numerator():
    class DivForgetsA(LearnerValue):
        def __truediv__(self, other):
            other = self.wrap(other)
            return self.node(self.data / other.data, (self, other), (1 / other.data, -1 / other.data**2), "/")

    fails_with(DivForgetsA, "div", "d out / d b", "the factor a is missing")


def test_pow_with_the_exponent_not_lowered():
    class PowNotLowered(LearnerValue):
        def __pow__(self, n):
            return self.node(self.data**n, (self,), (n * self.data**n,), "**")

    fails_with(PowNotLowered, "pow", "pow:", "a ** 2", "n * x**(n-1), not n * x**n")


def test_pow_without_the_factor_n():
    class PowWithoutN(LearnerValue):
        def __pow__(self, n):
            return self.node(self.data**n, (self,), (self.data ** (n - 1),), "**")

    fails_with(PowWithoutN, "pow", "the factor n is missing")


def test_neg_with_the_wrong_sign():
    class NegPlusOne(LearnerValue):
        def __neg__(self):
            return self.node(-self.data, (self,), (1.0,), "neg")

    fails_with(NegPlusOne, "neg", "neg:", "local gradient is -1")


def test_exp_with_its_input_as_local_gradient():
    class ExpOfInput(LearnerValue):
        def exp(self):
            return self.node(math.exp(self.data), (self,), (self.data,), "exp")

    fails_with(ExpOfInput, "exp", "exp:", "its output exp(a), not its input a")


def test_log_with_log_as_local_gradient():
    class LogOfLog(LearnerValue):
        def log(self):
            return self.node(math.log(self.data), (self,), (math.log(self.data),), "log")

    fails_with(LogOfLog, "log", "log:", "1/a, not log(a)")


def test_tanh_with_the_square_added():
    class TanhPlusSquare(LearnerValue):
        def tanh(self):
            t = math.tanh(self.data)
            return self.node(t, (self,), (1 + t**2,), "tanh")

    fails_with(TanhPlusSquare, "tanh", "tanh:", "the square is added, but it is subtracted")


def test_tanh_without_the_square():
    class TanhNoSquare(LearnerValue):
        def tanh(self):
            t = math.tanh(self.data)
            return self.node(t, (self,), (1 - t,), "tanh")

    fails_with(TanhNoSquare, "tanh", "tanh:", "1 - tanh(a)**2, not 1 - tanh(a)")


def test_tanh_of_the_input_instead_of_the_output():
    class TanhOfInput(LearnerValue):
        def tanh(self):
            return self.node(math.tanh(self.data), (self,), (1 - self.data**2,), "tanh")

    fails_with(TanhOfInput, "tanh", "use the output t = tanh(a)")


def test_relu_at_the_wrong_side():
    class ReluBackwards(LearnerValue):
        def relu(self):
            return self.node(max(self.data, 0.0), (self,), (0.0 if self.data > 0 else 1.0,), "relu")

    fails_with(ReluBackwards, "relu", "relu:", "relu at the wrong side")


def test_sigmoid_missing_one_minus_s():
    class SigmoidHalf(LearnerValue):
        def sigmoid(self):
            s = 1 / (1 + math.exp(-self.data))
            return self.node(s, (self,), (s,), "sigmoid")

    fails_with(SigmoidHalf, "sigmoid", "sigmoid:", "the factor (1 - s) is missing")


def test_wrong_forward_value():
    class AddSubtracts(LearnerValue):
        def __add__(self, other):
            other = self.wrap(other)
            return self.node(self.data - other.data, (self, other), (1.0, 1.0), "+")

    fails_with(AddSubtracts, "add", "add: the value (out.data) of a + b", "expected", "got")


def test_forgot_to_record_an_input():
    class MulForgetsOther(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            return self.node(self.data * other.data, (self,), (other.data,), "*")

    fails_with(MulForgetsOther, "mul", "b is not in the graph of a * b", "forgot to record an input")


def test_a_value_stored_as_local_gradient():
    class MulStoresValues(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            return self.node(self.data * other.data, (self, other), (other, self), "*")

    fails_with(MulStoresValues, "mul", "out.local_grads[0] is a MulStoresValues", "other.data rather than other")


def test_one_local_gradient_too_few():
    class AddOneGradient(LearnerValue):
        def __add__(self, other):
            other = self.wrap(other)
            return self.node(self.data + other.data, (self, other), (1.0,), "+")

    fails_with(AddOneGradient, "add", "out.inputs holds 2 node(s) but out.local_grads holds 1",
               "one local gradient per input")


def test_a_number_recorded_as_input():
    class ExpRecordsFloat(LearnerValue):
        def exp(self):
            e = math.exp(self.data)
            return self.node(e, (self.data,), (e,), "exp")

    fails_with(ExpRecordsFloat, "exp", "out.inputs[0] is float", "wrap a Python number in a Value")


def test_op_returning_a_float():
    class ExpReturnsFloat(LearnerValue):
        def exp(self):
            return math.exp(self.data)

    fails_with(ExpReturnsFloat, "exp", "a.exp() with a = ", "returned float", "new Value(")


def test_number_on_the_left_without_reflected_op():
    class NoReflectedMul(LearnerValue):
        __rmul__ = None  # Python then raises TypeError for 2.5 * a

    fails_with(NoReflectedMul, "mul", "raised TypeError", "__rmul__")


class NotebookValue(LearnerValue):
    """LearnerValue with the guard of the notebook's Value: a bare number as local_grads is named."""

    def __init__(self, data, inputs=(), local_grads=(), op=""):
        if not isinstance(local_grads, (tuple, list)):
            raise TypeError(f"op {op!r}: local_grads is a {type(local_grads).__name__}, not a tuple; "
                            "give one number per input, e.g. (g,) for one input (mind the comma)")
        super().__init__(data, inputs, local_grads, op)


class StoresAsGiven(LearnerValue):
    """LearnerValue that keeps inputs and local_grads as given, with no tuple() around them."""

    def __init__(self, data, inputs=(), local_grads=(), op=""):
        super().__init__(data)
        self.inputs, self.local_grads = inputs, local_grads


def pow_without_the_comma(Base):
    class PowWithoutComma(Base):
        def __pow__(self, n):
            return type(self)(self.data**n, (self,), (n * self.data ** (n - 1)), "**")  # (g), not (g,)

    return PowWithoutComma


class MulWithoutAsValue(LearnerValue):
    def __mul__(self, other):
        return self.node(self.data * other.data, (self, other), (other.data, self.data), "*")


@pytest.mark.parametrize(
    "ValueClass, op_name, phrases",
    [
        # The comma forgotten, whichever way the class meets the bare number: the notebook's
        # Value says so itself; the others get the hint. None of them is about as_value.
        (pow_without_the_comma(NotebookValue), "pow", ["raised TypeError", "(mind the comma)"]),
        (pow_without_the_comma(Value), "pow", ["has no len()", "(g,), with the comma"]),
        (pow_without_the_comma(LearnerValue), "pow", ["is not iterable", "(g,), with the comma"]),
        (pow_without_the_comma(StoresAsGiven), "pow", ["out.local_grads is float", "(g,), with the comma"]),
        (MulWithoutAsValue, "mul", ["a * ", "raised AttributeError", "Hint: wrap a Python number in a "
                                    "Value (as_value)"]),
    ],
    ids=["comma, notebook's Value", "comma, reference's Value", "comma, tuple()", "comma, stored as given",
         "mul without as_value"],
)
def test_an_op_that_raises_gets_the_hint_that_fits(ValueClass, op_name, phrases):
    message = fails_with(ValueClass, op_name, *phrases)
    if "comma" in phrases[-1]:
        assert "as_value" not in message


def test_an_error_inside_an_op_is_reported_with_the_case():
    class BrokenLog(LearnerValue):
        def log(self):
            return self.node(math.log(-self.data), (self,), (1 / self.data,), "log")

    fails_with(BrokenLog, "log", "log: computing a.log() with a = ", "raised ValueError")


# --- one usual mistake per backward ---------------------------------------------------------------


def test_backward_that_overwrites_gradients():
    class Overwrites(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in reversed(topological_order(self)):
                upstream = ledger[id(node)]
                node.grad += upstream
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = upstream * local

    fails_with(Overwrites, "backward", "out = x + x", "expected 2, got 1",
               "overwritten instead of summed")


def test_backward_that_overwrites_grad_directly():
    """The micrograd-style slip: ``input.grad = ...`` on the nodes themselves."""

    class OverwritesGrad(LearnerValue):
        def backward(self):
            self.grad = 1.0
            for node in reversed(topological_order(self)):
                for node_input, local in zip(node.inputs, node.local_grads):
                    node_input.grad = node.grad * local

    fails_with(OverwritesGrad, "backward", "overwritten instead of summed")


def test_backward_without_a_seed():
    class Unseeded(LearnerValue):
        def backward(self):
            for node in reversed(topological_order(self)):
                for node_input, local in zip(node.inputs, node.local_grads):
                    node_input.grad += node.grad * local

    fails_with(Unseeded, "backward", "seed the root with 1.0")


def test_backward_that_visits_inputs_first():
    class InputsFirst(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in topological_order(self):
                upstream = ledger.get(id(node), 0.0)
                node.grad += upstream
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + upstream * local

    fails_with(InputsFirst, "backward", "reversed(topological_order(root))")


def test_backward_without_the_upstream_factor():
    """Right wherever the upstream gradient is 1 (x + x, w1*x + w2*x), wrong past the first node."""

    class NoUpstream(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in reversed(topological_order(self)):
                node.grad += ledger[id(node)]
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + local

    hint = "multiply each input's local gradient by the node's upstream gradient (its .grad"
    message = fails_with(NoUpstream, "backward", "a diamond", hint)
    assert "reversed(topological_order(root))" not in message
    assert hint in fails_with_expression(NoUpstream, *NEURON)


def walks_inputs_first(self):
    ledger = {self: 1.0}
    for node in topological_order(self):
        node.grad += ledger[node]
        for node_input, local in zip(node.inputs, node.local_grads):
            ledger[node_input] = ledger.get(node_input, 0.0) + ledger[node] * local


def walks_inputs_first_by_id(self):
    ledger = {id(self): 1.0}
    for node in topological_order(self):
        node.grad += ledger[id(node)]
        for node_input, local in zip(node.inputs, node.local_grads):
            ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + ledger[id(node)] * local


def adds_to_a_missing_entry(self):
    ledger = {self: 1.0}
    for node in reversed(topological_order(self)):
        node.grad += ledger[node]
        for node_input, local in zip(node.inputs, node.local_grads):
            ledger[node_input] += ledger[node] * local


def reads_an_unseeded_root(self):
    ledger = {}
    for node in reversed(topological_order(self)):
        node.grad += ledger[node]
        for node_input, local in zip(node.inputs, node.local_grads):
            ledger[node_input] = ledger.get(node_input, 0.0) + ledger[node] * local


@pytest.mark.parametrize(
    "backward, hint",
    [
        (walks_inputs_first, "read from the ledger before any of its uses sent it a share: walk "
                             "reversed(topological_order(root))"),
        (walks_inputs_first_by_id, "walk reversed(topological_order(root))"),
        (adds_to_a_missing_entry, "write ledger.get(node_input, 0.0) + share"),
        (reads_an_unseeded_root, "the root has no entry in the ledger: seed it"),
    ],
    ids=["inputs first", "inputs first, keyed by id", "+= on a first share", "no seed"],
)
def test_backward_that_reads_a_missing_ledger_entry(backward, hint):
    MissingEntry = type("MissingEntry", (LearnerValue,), {"backward": backward})
    message = fails_with(MissingEntry, "backward", "out = x + x", "raised KeyError", hint)
    if backward is reads_an_unseeded_root:
        assert "walk reversed" not in message


def test_backward_that_follows_every_path_separately():
    """Pushes each share down at once, so h passes on its gradient before it is complete."""

    class EveryPath(LearnerValue):
        def backward(self):
            self.grad = 1.0
            stack = [self]
            while stack:
                node = stack.pop()
                for node_input, local in zip(node.inputs, node.local_grads):
                    node_input.grad += node.grad * local
                    stack.append(node_input)

    fails_with(EveryPath, "backward", "a diamond", "it must collect both shares before")


def test_recursive_backward_on_a_long_chain():
    class Recursive(LearnerValue):
        def backward(self):
            ledger = {}
            order = []

            def visit(node):
                if id(node) in ledger:
                    return
                ledger[id(node)] = 0.0
                for node_input in node.inputs:
                    visit(node_input)
                order.append(node)

            visit(self)
            ledger[id(self)] = 1.0
            for node in reversed(order):
                node.grad += ledger[id(node)]
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] += ledger[id(node)] * local

    fails_with(Recursive, "backward", "a chain of 3,000 ops", "RecursionError", "explicit stack")
    # A notebook that raised the recursion limit gets a chain three times as deep as the limit.
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(2_000)
    try:
        fails_with(Recursive, "backward", "a chain of 6,000 ops", "RecursionError", "explicit stack")
    finally:
        sys.setrecursionlimit(before)


def test_backward_that_sets_grad_instead_of_adding():
    class SetsGrad(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in reversed(topological_order(self)):
                node.grad = ledger[id(node)]
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + node.grad * local

    fails_with(SetsGrad, "backward", "a second backward()", "expected 4, got 2",
               "replaced .grad instead of adding to it")


def test_backward_that_collects_in_grad():
    """Correct once, but a second call mixes in the previous call's intermediate gradients."""

    class CollectsInGrad(LearnerValue):
        def backward(self):
            self.grad = 1.0
            for node in reversed(topological_order(self)):
                for node_input, local in zip(node.inputs, node.local_grads):
                    node_input.grad += node.grad * local

    fails_with(CollectsInGrad, "backward", "should double every leaf's grad", "a fresh dict (a ledger)")


def test_backward_that_leaves_the_root_grad_at_zero():
    class RootUntouched(LearnerValue):
        def backward(self):
            ledger = {id(self): 1.0}
            for node in reversed(topological_order(self)):
                upstream = ledger[id(node)]
                if node is not self:
                    node.grad += upstream
                for node_input, local in zip(node.inputs, node.local_grads):
                    ledger[id(node_input)] = ledger.get(id(node_input), 0.0) + upstream * local

    fails_with(RootUntouched, "backward", "out.grad (d out / d out) is wrong", "the seed of the walk")


def test_a_constructor_without_the_protocol_signature():
    class OwnConstructor(LearnerValue):
        def __init__(self, data, children=()):
            super().__init__(data)

    fails_with(OwnConstructor, "backward", "could not build", "keep the signature as given")


# --- the reference engine instead of the learner's own ---------------------------------------------


def test_the_reference_value_instead_of_ones_own_fails():
    with pytest.raises(CheckFailure, match="^Your Value is autodiff_ref.scalar.Value, the reference implementation, "
                                           "imported instead of written"):
        check_value_op(ReferenceValue, "mul")

    class InheritsBackward(ReferenceValue):
        pass

    with pytest.raises(CheckFailure, match="^Your InheritsBackward subclasses autodiff_ref.scalar.Value and "
                                           "inherits its backward, the reference implementation"):
        check_backward(InheritsBackward)

    class TakesOverMul(LearnerValue):
        __mul__ = ReferenceValue.__mul__

    with pytest.raises(CheckFailure, match=r"^Your TakesOverMul.__mul__ is autodiff_ref.scalar.Value.__mul__, "
                                           "the reference implementation, taken over"):
        check_value_op(TakesOverMul, "mul")


def test_a_backward_that_runs_the_reference_engine_fails():
    class BackwardByTheReference(LearnerValue):
        def backward(self):
            """Rebuild the graph from reference Values and copy their gradients back."""
            copies = {}
            for node in topological_order(self):  # the reference walk is a building block here: allowed
                copies[id(node)] = ReferenceValue(node.data, tuple(copies[id(p)] for p in node.inputs),
                                                  node.local_grads)
            copies[id(self)].backward()
            for node in topological_order(self):
                node.grad += copies[id(node)].grad

    with pytest.raises(CheckFailure) as failure:
        check_backward(BackwardByTheReference)
    assert str(failure.value).startswith(
        "Your BackwardByTheReference calls autodiff_ref.scalar.Value.backward, the reference implementation, "
        "from BackwardByTheReference.backward (line "
    )
    with pytest.raises(CheckFailure, match="calls autodiff_ref.scalar.Value.backward"):
        check_expression(BackwardByTheReference, *NEURON)


def test_an_op_that_calls_the_reference_op_fails_and_other_ops_are_checked_alone():
    class MulByTheReference(LearnerValue):
        def __mul__(self, other):
            other = self.wrap(other)
            out = ReferenceValue.__mul__(ReferenceValue(self.data), ReferenceValue(other.data))
            return self.node(out.data, (self, other), (other.data, self.data), "*")

    with pytest.raises(CheckFailure, match=r"^Your MulByTheReference calls autodiff_ref.scalar.Value.__mul__, "
                                           r"the reference implementation, from .*MulByTheReference.__mul__ \(line"):
        check_value_op(MulByTheReference, "mul")
    check_value_op(MulByTheReference, "add")  # only the op being checked must be the learner's own
