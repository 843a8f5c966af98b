"""autodiff_ref.testing.graphs: each check passes right code and fails wrong code with its message.

The node class, ``leaf``, ``op_node`` and ``OPS`` below mirror the ones notebook 01 gives its
learners; the "learner" functions are the usual right and wrong answers to its exercises.
"""

from __future__ import annotations

import inspect
import math
import sys

import pytest

from autodiff_ref.graph import topological_order as reference_order
from autodiff_ref.testing import CheckFailure
from autodiff_ref.testing.graphs import (
    as_values,
    check_evaluate,
    check_sigmoid_graph,
    check_topological_order,
    check_z_graph,
)

OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "neg": lambda x: -x,
    "exp": lambda x: math.exp(x),
    "reciprocal": lambda x: 1 / x,
}


class Node:
    def __init__(self, op, inputs=(), value=None, name=""):
        self.op, self.inputs, self.value, self.name = op, tuple(inputs), value, name


def leaf(value, name=""):
    return Node(None, (), float(value), name)


def op_node(op, *inputs, name=""):
    assert op in OPS and len(inputs) == len(inspect.signature(OPS[op]).parameters)
    return Node(op, inputs, None, name)


def fails(message: str):
    """pytest.raises for a CheckFailure whose message contains ``message`` (plain text)."""
    import re

    return pytest.raises(CheckFailure, match=re.escape(message))


# --- building the graph of z = (a - b) + c -------------------------------------------------------


def test_z_graph_passes_the_graph_as_written():
    check_z_graph(lambda a, b, c: op_node("add", op_node("sub", a, b), c), leaf)
    check_z_graph(lambda a, b, c: op_node("add", op_node("sub", a, b), c), leaf, seed=3)


def test_z_graph_accepts_the_commuted_add_with_a_note_once(capsys):
    def build_z(a, b, c):
        return op_node("add", c, op_node("sub", a, b))

    for seed in (0, 1, 2, 3):  # as when graded: the visible test, then the hidden seeds
        check_z_graph(build_z, leaf, seed=seed)
    assert capsys.readouterr().out.count("you built c + (a - b)") == 1


@pytest.mark.parametrize(
    "build_z, message",
    [
        (lambda a, b, c: None, "build_z(a, b, c) returned None: return the node z"),
        (lambda a, b, c: 3.0, "build_z(a, b, c) returned a float"),
        (lambda a, b, c: op_node("add", op_node("sub", b, a), c), "the sub node has inputs (b, a), so it computes b - a"),
        (lambda a, b, c: op_node("sub", a, op_node("sub", b, c)),
         "z should be the add node that computes (a - b) + c, but it is a sub node. Your graph computes the right "
         "number, but as a different expression"),
        (lambda a, b, c: op_node("add", op_node("add", a, b), c), "z.inputs[0] should be the sub node that computes a - b, but it is an add node."),
        (lambda a, b, c: op_node("add", a, op_node("sub", c, b)),
         "z.inputs[0] should be the sub node that computes a - b, but it is the leaf 'a'. Your graph computes the right number"),
        (lambda a, b, c: op_node("add", op_node("sub", leaf(a.value), b), c), "the sub node's first input is a new leaf with the value of the leaf a"),
        (lambda a, b, c: op_node("add", op_node("sub", a, b), a), "z.inputs[1] should be the leaf c, but it is the leaf 'a'"),
    ],
)
def test_z_graph_names_the_mistake(build_z, message):
    with fails(message):
        check_z_graph(build_z, leaf)


def test_an_unfinished_exercise_is_named():
    def build_z(a, b, c):
        raise NotImplementedError()

    with fails("build_z(a, b, c) raised NotImplementedError in `build_z`: that function is not written yet"):
        check_z_graph(build_z, leaf)

    def unfinished_order(root):
        raise NotImplementedError()

    def evaluate_with_unfinished_order(root):
        for node in unfinished_order(root):
            pass

    with fails("raised NotImplementedError in `unfinished_order`"):
        check_evaluate(evaluate_with_unfinished_order, leaf, op_node, OPS)


def test_an_error_in_learner_code_names_the_case():
    with fails("build_z(a, b, c) raised ValueError: unknown op"):
        check_z_graph(lambda a, b, c: op_node_checked("minus", a, b), leaf)


def test_looking_up_a_leaf_in_ops_gets_a_hint():
    def evaluate_leaves_too(root):
        for node in iterative_order(root):
            node.value = OPS[node.op](*(parent.value for parent in node.inputs))
        return root.value

    with fails("raised KeyError: None\n  Hint: a leaf has op None, which OPS does not know"):
        check_evaluate(evaluate_leaves_too, leaf, op_node, OPS)


def op_node_checked(op, *inputs):
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}")
    return op_node(op, *inputs)


# --- building the sigmoid ------------------------------------------------------------------------


def sigmoid_graph(x, one_first=True):
    e = op_node("exp", op_node("neg", x))
    one = leaf(1.0)
    return op_node("reciprocal", op_node("add", one, e) if one_first else op_node("add", e, one))


def test_sigmoid_graph_passes_either_order_of_the_add():
    check_sigmoid_graph(sigmoid_graph, leaf)
    check_sigmoid_graph(lambda x: sigmoid_graph(x, one_first=False), leaf, points=(-30.0, 30.0))


@pytest.mark.parametrize(
    "build_sigmoid, message",
    [
        (lambda x: op_node("div", leaf(1.0), op_node("add", leaf(1.0), op_node("exp", op_node("neg", x))))
         , "the root should be the reciprocal node that computes 1 / (1 + exp(-x)), but it is a div node. Your graph "
           "computes the right number, but as a different expression: build the graph of the expression exactly as "
           "written. Use the 'reciprocal' op"),
        (lambda x: op_node("reciprocal", op_node("add", leaf(1.0), op_node("exp", x))),
         "the exp node's input should be the neg node that computes -x, but it is the leaf 'x'. The four steps"),
        (lambda x: op_node("reciprocal", op_node("add", leaf(2.0), op_node("exp", op_node("neg", x)))),
         "neither of its inputs is a leaf with value 1"),
        (lambda x: op_node("reciprocal", op_node("add", leaf(1.0), op_node("exp", op_node("neg", leaf(x.value))))),
         "the neg node's input is a new leaf with the value of the leaf x"),
        (lambda x: op_node("exp", op_node("neg", x)), "the root should be the reciprocal node"),
    ],
)
def test_sigmoid_graph_names_the_mistake(build_sigmoid, message):
    with fails(message):
        check_sigmoid_graph(build_sigmoid, leaf)


# --- topological order ---------------------------------------------------------------------------


def iterative_order(root):
    """A right answer: explicit stack; inputs pushed in reverse, so the order differs from the reference."""
    order, placed, stack = [], set(), [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
        elif node not in placed:
            placed.add(node)
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.inputs) if parent not in placed)
    return order


def kahn_order(root):
    """Another right answer (Kahn's algorithm): a node goes out once all of its inputs have."""
    nodes = iterative_order(root)
    waiting = {id(n): len({id(p) for p in n.inputs}) for n in nodes}
    users = {}
    for n in nodes:
        for p in {id(p): p for p in n.inputs}.values():
            users.setdefault(id(p), []).append(n)
    ready = [n for n in nodes if not n.inputs][::-1]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for user in users.get(id(node), []):
            waiting[id(user)] -= 1
            if waiting[id(user)] == 0:
                ready.append(user)
    return order


def recursive_order(root):
    order, seen = [], set()

    def visit(node):
        if node in seen:
            return
        seen.add(node)
        for parent in node.inputs:
            visit(parent)
        order.append(node)

    visit(root)
    return order


def scans_for_ready_nodes(root):
    """A right answer that reads inputs often: again and again, place the first node whose inputs are placed."""
    nodes, order, placed = iterative_order(root)[::-1], [], set()  # root first: each scan goes far
    while len(order) < len(nodes):
        node = next(n for n in nodes if n not in placed and all(p in placed for p in n.inputs))
        order.append(node)
        placed.add(node)
    return order


def test_topological_order_accepts_any_valid_order():
    check_topological_order(iterative_order, leaf, op_node)
    check_topological_order(kahn_order, leaf, op_node, random_graphs=(5, 6))
    check_topological_order(scans_for_ready_nodes, leaf, op_node, deep=False)
    check_topological_order(iterative_order)  # with the checker's own nodes


def test_the_reference_order_instead_of_ones_own_fails():
    def calls_it(root):
        return list(reference_order(root))

    with fails("Your topological_order is autodiff_ref.graph.topological_order, the reference implementation, "
               "imported instead of written"):
        check_topological_order(reference_order, leaf, op_node)
    with fails("Your topological_order calls autodiff_ref.graph.topological_order, the reference "
               "implementation, from calls_it (line "):
        check_topological_order(calls_it, leaf, op_node)


def test_the_checkers_reference_values_instead_of_ones_own_evaluation_fail():
    def evaluate_with_reference_values(root):
        return as_values(root).data  # the checker's own reference, not an evaluation

    with fails("Your evaluate calls autodiff_ref.testing.graphs.as_values, the reference implementation"):
        check_evaluate(evaluate_with_reference_values, leaf, op_node, deep=False)


def test_a_recursive_order_passes_small_graphs_and_fails_the_deep_chain_with_advice():
    check_topological_order(recursive_order, leaf, op_node, deep=False)
    with fails("for a chain of 3,000 neg nodes hit Python's recursion limit (RecursionError)") as failure:
        check_topological_order(recursive_order, leaf, op_node)
    assert "`visit` (inside `recursive_order`) calls itself once per node" in str(failure.value)
    assert "explicit stack" in str(failure.value)
    # A notebook that raised the recursion limit gets a chain three times as deep as the limit.
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(2_000)
    try:
        with fails("for a chain of 6,000 neg nodes hit Python's recursion limit (RecursionError)"):
            check_topological_order(recursive_order, leaf, op_node)
    finally:
        sys.setrecursionlimit(before)


def without_visited_set(root):
    order, stack = [], [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.inputs)
    return order


def walks_every_path(root):
    """Places each node once, but expands a node again on every path that reaches it."""
    order, placed, stack = [], set(), [(root, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.inputs)
        elif node not in placed:
            placed.add(node)
            order.append(node)
    return order


def appends_before_inputs(root):
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            order.append(node)
            stack.extend(node.inputs)
    return order[::-1]  # reversed pre-order: right for trees, wrong for a diamond


@pytest.mark.parametrize(
    "order_fn, message",
    [
        (lambda root: None, "returned None: return the list of nodes"),
        (lambda root: 42, "returned a int; return a list of nodes"),
        (lambda root: [n.value for n in iterative_order(root)], "contains a float, 2.0, which is not a node of this graph"),
        (without_visited_set, "for y = x * x (x is both inputs) lists the leaf 'x' 2 times; every node must appear exactly once"),
        (walks_every_path, "for 16 diamonds stacked on each other read the inputs of the graph's 49 nodes 262,141 times: it "
                           "reaches a node once along every path from the root"),
        (lambda root: set(iterative_order(root)), "returned a set. It holds every node once, but Python walks a set in an "
                                                  "order of its own"),
        (lambda root: frozenset(iterative_order(root)), "\n  Hint: a set has no order; return a list"),
        (lambda root: iterative_order(root)[1:], "leaves out 1 of the graph's"),
        (lambda root: iterative_order(root)[::-1], "starts with the root, so the order is reversed"),
        (appends_before_inputs, "before its input"),
        (lambda root: [root], "leaves out 4 of the graph's 5 nodes: the leaf 'c', the leaf 'b', the leaf 'a' and 1 more. Every node"),
    ],
)
def test_topological_order_names_the_mistake(order_fn, message):
    with fails(message):
        check_topological_order(order_fn, leaf, op_node)


def test_a_node_before_its_input_is_named_with_both_positions():
    def swap_first_two_op_nodes(root):
        order = iterative_order(root)
        ops = [i for i, n in enumerate(order) if n.inputs]
        if len(ops) >= 2:
            i, j = ops[0], ops[1]
            order[i], order[j] = order[j], order[i]
        return order

    with fails("'z' (an add node) comes at position 2, before its input 'd' (a sub node) at position 4") as failure:
        check_topological_order(swap_first_two_op_nodes, leaf, op_node)
    assert "after all of its inputs" in str(failure.value)


# --- evaluating a graph --------------------------------------------------------------------------


def evaluate_walking(order_fn, table=OPS):
    """An evaluate that computes, with the functions of ``table``, the nodes that order_fn(root) lists, in that order."""

    def evaluate(root):
        for node in order_fn(root):
            if node.inputs:
                node.value = table[node.op](*(parent.value for parent in node.inputs))
        return root.value

    return evaluate


evaluate = evaluate_walking(iterative_order)


def test_evaluate_passes_right_code_and_agrees_with_the_reference_values():
    check_evaluate(evaluate, leaf, op_node, OPS)
    check_evaluate(evaluate, random_graphs=(7, 8))  # the checker's own nodes; no op counting
    check_evaluate(evaluate_walking(iterative_order, table=dict(OPS)), leaf, op_node, OPS)  # its own functions
    z = op_node("add", op_node("sub", leaf(3), leaf(2)), leaf(1))
    assert evaluate(z) == as_values(z).data == 2.0


def evaluate_recursively(root):
    def value(node):
        if node.inputs:
            node.value = OPS[node.op](*(value(parent) for parent in node.inputs))
        return node.value

    return value(root)


def evaluate_reusing_values(root):
    for node in iterative_order(root):
        if node.inputs and node.value is None:
            node.value = OPS[node.op](*(parent.value for parent in node.inputs))
    return root.value


def evaluate_with_swapped_inputs(root):
    for node in iterative_order(root):
        if node.inputs:
            node.value = OPS[node.op](*(parent.value for parent in reversed(node.inputs)))
    return root.value


def evaluate_root_only(root):
    values = {}
    for node in iterative_order(root):
        values[node] = node.value if not node.inputs else OPS[node.op](*(values[p] for p in node.inputs))
    return values[root]


def evaluate_with_values_in_one_list(root):
    for node in iterative_order(root):
        if node.inputs:
            node.value = OPS[node.op]([parent.value for parent in node.inputs])
    return root.value


def evaluate_computing_twice(root):
    for node in iterative_order(root):
        if node.inputs:
            values = [parent.value for parent in node.inputs]
            print(OPS[node.op](*values))
            node.value = OPS[node.op](*values)
    return root.value


def marks_seen_when_pushed(root):
    """A wrong order that passes the hand-made graphs: a node reached again later is not moved before its new user."""
    order, seen, stack = [], {root}, [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        stack.append((node, True))
        for parent in node.inputs:
            if parent not in seen:
                seen.add(parent)
                stack.append((parent, False))
    return order


NOT_TOPOLOGICAL = ("\n  Hint: an op node was computed while one of its inputs still had value None, so the nodes were "
                   "not walked in a topological order")


@pytest.mark.parametrize(
    "evaluate_fn, message",
    [
        (evaluate_with_swapped_inputs, "after evaluate(root) for (a - b) + c, 'd' (a sub node) has value -1, expected 1 "
                                       "(sub of its inputs' values 3, 2).\n  Hint: that is sub of the inputs in reverse order"),
        (evaluate_root_only, "'d' (a sub node) still has value None: evaluate must set .value of every op node"),
        (lambda root: (evaluate(root), None)[1], "returned None: return the root's value"),
        (lambda root: str(evaluate(root)), "returned '2.0'; it should return the root's value, 2"),
        (evaluate_recursively, "for y = (-e) * e with e = exp(x) (a diamond: e feeds two nodes) applied an op 4 times, but the "
                               "graph has 3 op nodes: a node that several others use was computed once for each use"),
        (evaluate_computing_twice, "for (a - b) + c applied an op 4 times, but the graph has 2 op nodes: some node was computed "
                                   "more than once"),
        (evaluate_reusing_values, "The first call was right, so evaluate kept a value from it"),
        (evaluate_with_values_in_one_list, "raised TypeError: <lambda>() missing 1 required positional argument: 'y'\n  Hint: "
                                           "OPS functions take the input values as separate arguments: OPS[node.op](*values)"),
        (evaluate_walking(lambda root: iterative_order(root)[::-1]),
         "for (a - b) + c raised TypeError: unsupported operand type(s) for +: 'NoneType' and 'float'" + NOT_TOPOLOGICAL),
        (evaluate_walking(marks_seen_when_pushed), "(seed 1, 26 nodes) raised TypeError: must be real number, not NoneType"
                                                   + NOT_TOPOLOGICAL),
        (evaluate_walking(lambda root: iterative_order(root)[::-1], table=dict(OPS)),  # a table the check does not watch
         "for (a - b) + c raised TypeError: unsupported operand type(s) for +: 'NoneType' and 'float'" + NOT_TOPOLOGICAL),
    ],
)
def test_evaluate_names_the_mistake(evaluate_fn, message):
    with fails(message):
        check_evaluate(evaluate_fn, leaf, op_node, OPS)


def test_a_result_never_stored_is_not_blamed_on_the_order():
    def evaluate_with_a_helper_that_returns_nothing(root):
        def compute(node):
            OPS[node.op](*(parent.value for parent in node.inputs))

        for node in iterative_order(root):
            if node.inputs:
                node.value = compute(node)
        return root.value

    with fails("for (a - b) + c raised TypeError: unsupported operand type(s) for +: 'NoneType' and 'float'") as failure:
        check_evaluate(evaluate_with_a_helper_that_returns_nothing, leaf, op_node, OPS)
    assert "Hint" not in str(failure.value)


def test_evaluate_restores_the_op_table_even_when_it_fails():
    before = dict(OPS)
    with pytest.raises(CheckFailure):
        check_evaluate(evaluate_recursively, leaf, op_node, OPS)
    assert OPS == before


def test_a_recursive_evaluate_with_memory_fails_only_on_the_deep_chain():
    def evaluate_memo_recursive(root):
        done = set()

        def visit(node):
            if node in done:
                return
            done.add(node)
            for parent in node.inputs:
                visit(parent)
            if node.inputs:
                node.value = OPS[node.op](*(p.value for p in node.inputs))

        visit(root)
        return root.value

    # the message names the function that recursed, also when evaluate only called it
    for evaluate_fn, recursing in (
        (evaluate_memo_recursive, "`visit` (inside `evaluate_memo_recursive`)"),
        (evaluate_walking(recursive_order), "`visit` (inside `recursive_order`)"),
    ):
        check_evaluate(evaluate_fn, leaf, op_node, OPS, deep=False)
        with fails(f"evaluate(root) for a chain of 3,000 neg nodes hit Python's recursion limit (RecursionError): "
                   f"{recursing} calls itself once per node"):
            check_evaluate(evaluate_fn, leaf, op_node, OPS)


# --- as_values -----------------------------------------------------------------------------------


def test_as_values_rebuilds_the_graph_with_reference_values():
    x = leaf(0.0, "x")
    s = sigmoid_graph(x)
    value = as_values(s)
    assert value.data == 0.5
    assert len(reference_order(value)) == len(reference_order(s))
    assert any(getattr(v, "label", "") == "x" for v in reference_order(value))
    with pytest.raises(TypeError, match="not a float"):
        as_values(1.5)
    with fails("'bad' (a pow node) has op 'pow', which is not one of the notebook's ops"):
        as_values(Node("pow", (x, x), name="bad"))
