"""Checks for notebook 01, the computational graph: building graphs, a topological order, evaluation.

The notebook's graphs are made of nodes with four attributes:

* ``op``: the name of the operation that made the node, one of :data:`GRAPH_OPS` (``"add"``,
  ``"sub"``, ``"mul"``, ``"div"``, ``"neg"``, ``"exp"``, ``"reciprocal"``); ``None`` for a leaf;
* ``inputs``: the tuple of nodes the op was applied to, in argument order; ``()`` for a leaf;
* ``value``: a number, given for a leaf and filled in by ``evaluate`` for an op node;
* ``name``: an optional name, used in messages.

The notebook makes them with ``leaf(value, name="")`` and ``op_node(op, *inputs, name="")``; the
checks that build graphs take those two functions, so they test the learner's code on the
learner's own nodes. Every check compares with the reference package: the order with
:func:`autodiff_ref.graph.topological_order`, the values with the same graph rebuilt from
``autodiff_ref.scalar.Value`` (:func:`as_values`).

* :func:`check_z_graph` and :func:`check_sigmoid_graph` check the graph a builder returns, node by
  node, naming the first node that is not what the expression needs.
* :func:`check_topological_order` accepts any valid order and names the node that is missing,
  repeated or placed before one of its inputs; it tries a node used twice, diamonds, random
  graphs and a chain of 3,000 nodes or more (which a recursive walk cannot finish). On 16
  stacked diamonds, made of the checker's own nodes, it counts how often the walk reads the
  nodes' inputs.
* :func:`check_evaluate` checks the returned root value and every node's ``value``, that a second
  evaluation after a leaf changed recomputes, that a shared node is computed once, and a
  chain of 3,000 nodes or more.

A check passes silently or raises :class:`~autodiff_ref.testing.core.CheckFailure`.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections import Counter
from types import CodeType, GeneratorType
from typing import Any, Callable

import numpy as np

from ..graph import topological_order as reference_topological_order
from .core import ATOL, RTOL, CheckFailure, deep_chain_length, own_work, watched, where_raised

__all__ = [
    "GRAPH_OPS",
    "as_values",
    "check_z_graph",
    "check_sigmoid_graph",
    "check_topological_order",
    "check_evaluate",
]

# Each op of the notebook's graphs: its number of inputs, and the same op on reference Values.
GRAPH_OPS: dict[str, tuple[int, Callable[..., Any]]] = {
    "add": (2, lambda x, y: x + y),
    "sub": (2, lambda x, y: x - y),
    "mul": (2, lambda x, y: x * y),
    "div": (2, lambda x, y: x / y),
    "neg": (1, lambda x: -x),
    "exp": (1, lambda x: x.exp()),
    "reciprocal": (1, lambda x: x ** -1),  # one input, as in the notebook (1 / x would add a leaf)
}
NON_COMMUTATIVE = ("sub", "div")

Builder = Callable[..., Any]


# --- nodes: describing them, and a stand-in for the notebook's own ------------------------------


class _Node:
    """The notebook's node, for checks called without the notebook's constructors."""

    def __init__(self, op: str | None, inputs: tuple[Any, ...] = (), value: float | None = None, name: str = ""):
        self.op, self.inputs, self.value, self.name = op, tuple(inputs), value, name

    def __repr__(self) -> str:
        return f"Node({self.name or self.op!r})"


def _leaf(value: float, name: str = "") -> _Node:
    return _Node(None, (), value, name)


def _op_node(op: str, *inputs: Any, name: str = "") -> _Node:
    return _Node(op, inputs, None, name)


def _is_node(obj: Any) -> bool:
    return hasattr(obj, "inputs") and hasattr(obj, "op")


def _a(op: str) -> str:
    """``an add node``, ``a sub node``."""
    return f"{'an' if op[:1] in 'aeiou' else 'a'} {op} node"


def _describe(node: Any) -> str:
    """``'d' (a sub node)``, ``the leaf 'a'``, ``an exp node``, ``the leaf with value 1``."""
    name = getattr(node, "name", "")
    if not getattr(node, "inputs", ()):
        if name:
            return f"the leaf {name!r}"
        value = getattr(node, "value", None)
        return f"the leaf with value {value:g}" if isinstance(value, (int, float)) else "a leaf"
    op = str(node.op)  # a malformed node's op may be anything
    return f"{name!r} ({_a(op)})" if name else _a(op)


def _call(
    function: Callable[..., Any], *args: Any, what: str, explain: Callable[[Exception], str | None] | None = None
) -> Any:
    """``function(*args)``; whatever goes wrong becomes a CheckFailure that names the case.

    ``explain(error)`` may name the likely mistake behind an exception the learner's code raised.
    """
    try:
        return watched(function, *args)
    except CheckFailure:
        raise
    except RecursionError as error:
        raise CheckFailure(
            f"{what} hit Python's recursion limit (RecursionError): {_recursing_function(error)} calls "
            f"itself once per node, so it nests one call deeper for every node of a long chain, and "
            f"Python stops at about {_recursion_limit()} nested calls. Walk the graph with a loop and "
            "an explicit stack instead: a list of the nodes still to visit."
        ) from None
    except NotImplementedError as error:
        raise CheckFailure(
            f"{what} raised NotImplementedError in `{where_raised(error)}`: that function is not "
            "written yet. Replace `raise NotImplementedError()` with your code and run its cell again."
        ) from None
    except Exception as error:  # the learner's code failed on this case: say which case
        hint = explain(error) if explain else None
        raise CheckFailure(
            f"{what} raised {type(error).__name__}: {error}" + (f"\n  Hint: {hint}" if hint else "")
        ) from error


def _recursion_limit() -> str:
    import sys

    return f"{sys.getrecursionlimit():,}"


def _recursing_function(error: RecursionError) -> str:
    """Which function called itself into the limit, for a message: ``place`` (inside ``topological_order``).

    It is the one with the most frames in the traceback; the function the check called (say
    evaluate) may only have called it. Comprehensions and generator expressions are left out:
    a recursion through ``f(p) for p in ...`` has as many of those frames as of ``f``.
    """
    frames: Counter[CodeType] = Counter()
    entry = error.__traceback__
    while entry is not None:
        code = entry.tb_frame.f_code
        if not code.co_name.endswith(("comp>", "<genexpr>")):
            frames[code] += 1
        entry = entry.tb_next
    code = frames.most_common(1)[0][0]
    *outer, name = code.co_qualname.split(".<locals>.")
    return f"`{name}`" + (f" (inside `{outer[-1]}`)" if outer else "")


# --- the reference: the same graph built from autodiff_ref Values -------------------------------


def _to_values(root: Any) -> dict[int, Any]:
    """Every node of the graph behind ``root`` (by id) with its reference ``Value``."""
    from ..scalar import Value

    values: dict[int, Any] = {}
    for node in reference_topological_order(root):
        name = getattr(node, "name", "") or ""
        if not node.inputs:
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                raise CheckFailure(f"{_describe(node)} should hold a number in .value, but holds {node.value!r}.")
            values[id(node)] = Value(float(node.value), label=name)
            continue
        if node.op not in GRAPH_OPS:
            raise CheckFailure(
                f"{_describe(node)} has op {node.op!r}, which is not one of the notebook's ops "
                f"{sorted(GRAPH_OPS)}."
            )
        arity, apply = GRAPH_OPS[node.op]
        if len(node.inputs) != arity:
            raise CheckFailure(f"{_describe(node)} has {len(node.inputs)} inputs; {_a(node.op)} takes {arity}.")
        out = apply(*(values[id(parent)] for parent in node.inputs))
        out.label = name
        out.op = node.op  # the notebook's name for the op ("reciprocal", not "**-1"), for drawings
        values[id(node)] = out
    return values


def as_values(root: Any) -> Any:
    """The graph behind ``root`` rebuilt from ``autodiff_ref.scalar.Value``, computed; returns its root.

    Each leaf becomes a Value with the leaf's value and name; each op node the same op on the
    Values of its inputs, keeping the node's name and op name. So ``as_values(z).data`` is what ``z`` evaluates to, and
    ``autodiff_ref.viz.draw_graph(as_values(z))`` draws the graph.
    """
    if not _is_node(root):
        raise TypeError(f"as_values expects a node with .op and .inputs, not a {type(root).__name__}")
    return _to_values(root)[id(root)]


def _is_close(got: float, expected: float) -> bool:
    return abs(got - expected) <= ATOL + RTOL * abs(expected)


# --- building graphs ----------------------------------------------------------------------------


def _expect(node: Any, op: str, where: str, meaning: str, *, note: str = "") -> None:
    """``node`` must be an ``op`` node with the right number of inputs."""
    if not _is_node(node):
        raise CheckFailure(
            f"{where} should be the {op} node that computes {meaning}, but it is not a node: "
            f"{type(node).__name__} {node!r}. Make nodes with op_node(...) and leaf(...)."
        )
    if node.op != op:
        raise CheckFailure(
            f"{where} should be the {op} node that computes {meaning}, but it is {_describe(node)}.{note}"
        )
    arity = GRAPH_OPS[op][0]
    if len(node.inputs) != arity:
        raise CheckFailure(f"{where} is {_a(op)} with {len(node.inputs)} inputs; {op} takes {arity}.")


def _expect_same(node: Any, wanted: Any, where: str, wanted_text: str) -> None:
    if node is wanted:
        return
    if _is_node(node) and not node.inputs and getattr(node, "value", None) == getattr(wanted, "value", None):
        raise CheckFailure(
            f"{where} is a new leaf with the value of {wanted_text}, not {wanted_text} itself. Use the "
            f"nodes passed to the builder: a graph is connected to its inputs, and a copy cuts it off."
        )
    raise CheckFailure(f"{where} should be {wanted_text}, but it is {_describe(node) if _is_node(node) else repr(node)}.")


def _built(builder: Builder, args: tuple[Any, ...], call_text: str, returns: str) -> Any:
    root = _call(builder, *args, what=call_text)
    if root is None:
        raise CheckFailure(f"{call_text} returned None: return {returns}.")
    if not _is_node(root):
        raise CheckFailure(f"{call_text} returned a {type(root).__name__}, {root!r}; return {returns}.")
    return root


def _right_number_note(root: Any, expected: float) -> str:
    """Tell the learner when a wrongly shaped graph still computes the right number."""
    try:
        got = as_values(root).data
    except CheckFailure:
        return ""
    if _is_close(got, expected):
        return (
            " Your graph computes the right number, but as a different expression: build the "
            "graph of the expression exactly as written."
        )
    return ""


# The builders whose commuted add was noted already: the note is about the graph's shape, which is
# the same for every seed, so a test that tries several seeds prints it once.
_NOTED_COMMUTED: weakref.WeakSet[Builder] = weakref.WeakSet()


def check_z_graph(build_z: Builder, leaf: Builder = _leaf, *, seed: int = 0) -> None:
    """``build_z(a, b, c)`` must return the graph of ``z = (a - b) + c`` on the leaves it is given.

    The root is an add node whose inputs are a sub node with inputs ``(a, b)``, in that order,
    and the leaf ``c``. The add's two inputs may come in either order (addition commutes, and
    either graph is one of ``(a - b) + c``); a note says so, once per ``build_z`` however many
    seeds are tried. The value is compared with the reference ``Value`` engine.
    """
    from ..scalar import Value

    rng = np.random.default_rng(seed)
    numbers: list[float] = []
    while len({abs(v) for v in numbers}) < 3:  # distinct, so a mix-up of leaves shows in the value
        numbers = [round(float(v), 2) for v in rng.uniform(0.5, 3.0, size=3) * rng.choice([-1, 1], size=3)]
    a, b, c = (leaf(v, name) for v, name in zip(numbers, "abc"))
    z = _built(build_z, (a, b, c), "build_z(a, b, c)", "the node z, the add node at the top of the graph")
    expected = ((Value(numbers[0]) - Value(numbers[1])) + Value(numbers[2])).data
    note = _right_number_note(z, expected)
    _expect(z, "add", "z", "(a - b) + c", note=note)
    first, second = z.inputs
    swapped = first is c and _is_node(second) and second.op == "sub"
    difference = second if swapped else first
    _expect(difference, "sub", "z.inputs[1]" if swapped else "z.inputs[0]", "a - b", note=note)
    if difference.inputs == (b, a):
        raise CheckFailure(
            "the sub node has inputs (b, a), so it computes b - a. The order of inputs is the "
            "order of the arguments: for a - b the inputs are (a, b)."
        )
    _expect_same(difference.inputs[0], a, "the sub node's first input", "the leaf a")
    _expect_same(difference.inputs[1], b, "the sub node's second input", "the leaf b")
    _expect_same(z.inputs[0] if swapped else z.inputs[1], c, "z.inputs[1]", "the leaf c")
    got = as_values(z).data
    if not _is_close(got, expected):  # the structure is right, so only a broken leaf gets here
        raise CheckFailure(f"the graph evaluates to {got:.6g}, expected {expected:.6g} for a, b, c = {numbers}.")
    if swapped and build_z not in _NOTED_COMMUTED:
        _NOTED_COMMUTED.add(build_z)
        print(
            "Note: you built c + (a - b): the same number, since addition commutes. The graph of "
            "(a - b) + c as written has (a - b) as its first input."
        )


def check_sigmoid_graph(build_sigmoid: Builder, leaf: Builder = _leaf, *, points: tuple[float, ...] = (0.5, 0.0, -2.0, 4.0)) -> None:
    """``build_sigmoid(x)`` must return the graph of ``1 / (1 + exp(-x))`` in four steps.

    The root is a reciprocal node; its input an add node of a leaf holding 1 and an exp node (in
    either order); the exp node's input a neg node whose input is ``x`` itself. Checked at every
    x in ``points`` against ``Value.sigmoid`` of the reference engine.
    """
    from ..scalar import Value

    steps = " The four steps are neg, exp, add (of 1), reciprocal."
    for x_value in points:
        x = leaf(float(x_value), "x")
        call = f"build_sigmoid(x) with x.value = {x_value:g}"
        s = _built(build_sigmoid, (x,), call, "the reciprocal node at the top of the graph")
        expected = Value(float(x_value)).sigmoid().data
        note = _right_number_note(s, expected)
        if _is_node(s) and s.op == "div":
            note += " Use the 'reciprocal' op for 1 / (...), as the exercise asks."
        _expect(s, "reciprocal", "the root", "1 / (1 + exp(-x))", note=note + steps)
        total = s.inputs[0]
        _expect(total, "add", "the reciprocal node's input", "1 + exp(-x)", note=note + steps)
        ones = [p for p in total.inputs if _is_node(p) and not p.inputs and p.value == 1]
        others = [p for p in total.inputs if not any(p is one for one in ones)]
        if not ones:
            raise CheckFailure(
                "the add node should add a leaf holding 1 to exp(-x), but neither of its inputs "
                "is a leaf with value 1. Make the constant with leaf(1.0)." + note
            )
        if not others:
            raise CheckFailure("both inputs of the add node are leaves holding 1; one should be exp(-x).")
        exponential = others[0]
        _expect(exponential, "exp", "the add node's other input", "exp(-x)", note=note + steps)
        negation = exponential.inputs[0]
        _expect(negation, "neg", "the exp node's input", "-x", note=note + steps)
        _expect_same(negation.inputs[0], x, "the neg node's input", "the leaf x")
        got = as_values(s).data
        if not _is_close(got, expected):  # only a broken constant gets here
            raise CheckFailure(f"at x = {x_value:g} the graph evaluates to {got:.6g}, expected {expected:.6g}.")


# --- test graphs ----------------------------------------------------------------------------------


def _graph_z(leaf: Builder, op_node: Builder) -> tuple[Any, str]:
    a, b, c = leaf(3.0, "a"), leaf(2.0, "b"), leaf(1.0, "c")
    return op_node("add", op_node("sub", a, b, name="d"), c, name="z"), "(a - b) + c"


def _graph_twice(leaf: Builder, op_node: Builder) -> tuple[Any, str]:
    x = leaf(1.5, "x")
    return op_node("mul", x, x, name="y"), "y = x * x (x is both inputs)"


def _graph_diamond(leaf: Builder, op_node: Builder) -> tuple[Any, str]:
    e = op_node("exp", leaf(0.7, "x"), name="e")
    return op_node("mul", op_node("neg", e, name="n"), e, name="y"), "y = (-e) * e with e = exp(x) (a diamond: e feeds two nodes)"


def _graph_sigmoid(leaf: Builder, op_node: Builder) -> tuple[Any, str]:
    x = leaf(0.5, "x")
    total = op_node("add", leaf(1.0, "one"), op_node("exp", op_node("neg", x, name="n"), name="e"), name="t")
    return op_node("reciprocal", total, name="s"), "the sigmoid graph"


def _graph_shared_deep(leaf: Builder, op_node: Builder) -> tuple[Any, str]:
    """A node used at two depths: x feeds the first op and the last."""
    x, w = leaf(0.3, "x"), leaf(-1.2, "w")
    h = op_node("mul", x, w, name="h")
    for i in range(3):
        h = op_node("exp" if i % 2 else "neg", h, name=f"h{i}")
    return op_node("add", h, x, name="y"), "y = neg(exp(neg(x * w))) + x (x used at two depths)"


def _graph_stacked_diamonds(leaf: Builder, op_node: Builder, depth: int = 16) -> tuple[Any, str]:
    """Each level uses the one below twice, so a walk that does not skip visited nodes does 2**depth."""
    h = leaf(0.2, "x")
    for level in range(depth):
        h = op_node(
            "mul", op_node("neg", h, name=f"n{level}"), op_node("exp", h, name=f"e{level}"), name=f"y{level}"
        )
    return h, f"{depth} diamonds stacked on each other"


def _graph_chain(leaf: Builder, op_node: Builder, length: int | None = None) -> tuple[Any, str]:
    """A chain of ``length`` neg nodes, :func:`deep_chain_length` by default: too deep to recurse."""
    length = deep_chain_length() if length is None else length
    h = leaf(0.5, "x")
    for i in range(length):
        h = op_node("neg", h, name=f"n{i}")
    return h, f"a chain of {length:,} neg nodes"


def _graph_random(leaf: Builder, op_node: Builder, seed: int, size: int = 30) -> tuple[Any, str]:
    """A random graph: ops of every arity, inputs drawn from any earlier node, values kept small.

    Recent nodes are picked more often, so the graph is deep as well as wide. Each new node's
    value is computed as it is drawn, and a draw that would leave [-10, 10] is drawn again, so
    chains of exp and mul cannot overflow.
    """
    rng = np.random.default_rng(seed)
    compute = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "neg": operator.neg, "exp": math.exp}
    values = [round(float(v), 3) for v in rng.uniform(0.3, 1.2, size=4) * rng.choice([-1, 1], size=4)]
    nodes = [leaf(v, f"x{i}") for i, v in enumerate(values)]
    while len(nodes) < size:
        op = str(rng.choice(list(compute)))
        picks = [len(nodes) - 1 - min(int(rng.geometric(0.3)) - 1, len(nodes) - 1) for _ in range(GRAPH_OPS[op][0])]
        value = compute[op](*(values[p] for p in picks))
        if abs(value) <= 10.0:
            values.append(value)
            nodes.append(op_node(op, *(nodes[p] for p in picks), name=f"n{len(nodes)}"))
    root = op_node("add", nodes[-1], nodes[-2], name="root")
    return root, f"a random graph (seed {seed}, {len(reference_topological_order(root))} nodes)"


# --- a topological order --------------------------------------------------------------------------


class _InputReads:
    """Builds graphs of the checker's own nodes that count how often a walk reads their ``inputs``.

    A walk that skips visited nodes reads each node's inputs a few times. One that does not
    reaches a node once along every path from the root, and reads its inputs each time: on
    stacked diamonds, whose paths double with every diamond, that shows in the count even when
    the walk drops the repeated nodes before it returns.
    """

    def __init__(self) -> None:
        self.count = 0

    def leaf(self, value: float, name: str = "") -> _Node:
        return _CountedNode(self, None, (), value, name)

    def op_node(self, op: str, *inputs: Any, name: str = "") -> _Node:
        return _CountedNode(self, op, inputs, None, name)


class _CountedNode(_Node):
    """A node that adds one to its graph's count of reads each time its ``inputs`` are read."""

    def __init__(
        self, reads: _InputReads, op: str | None, inputs: tuple[Any, ...], value: float | None, name: str
    ) -> None:
        self._reads = reads
        super().__init__(op, inputs, value, name)

    @property
    def inputs(self) -> tuple[Any, ...]:
        self._reads.count += 1
        return self._inputs

    @inputs.setter
    def inputs(self, inputs: tuple[Any, ...]) -> None:
        self._inputs = inputs


def _check_order(order: Any, root: Any, what: str) -> None:
    """``order`` must hold each node ``root`` depends on exactly once, each after all its inputs."""
    call = f"topological_order(root) for {what}"
    if order is None:
        raise CheckFailure(f"{call} returned None: return the list of nodes.")
    returned_set = isinstance(order, (set, frozenset))  # the right nodes, in no order of the learner's
    try:
        order = list(order)
    except TypeError:
        raise CheckFailure(f"{call} returned a {type(order).__name__}; return a list of nodes.") from None
    expected = reference_topological_order(root)
    in_graph = {id(node) for node in expected}
    strangers = [item for item in order if id(item) not in in_graph]
    if strangers:
        item = strangers[0]
        kind = "a node of another graph" if _is_node(item) else f"a {type(item).__name__}, {item!r}"
        raise CheckFailure(
            f"{call} contains {kind}, which is not a node of this graph. Put the nodes themselves "
            "in the list (not their values or names)."
        )
    counts = Counter(id(node) for node in order)
    repeated = [node for node in expected if counts[id(node)] > 1]
    if repeated:
        node = repeated[0]
        raise CheckFailure(
            f"{call} lists {_describe(node)} {counts[id(node)]} times; every node must appear exactly "
            "once. A node used by several others is reached once through each of them: remember the "
            "nodes you have visited (a set) and skip them the next time."
        )
    missing = [node for node in expected if counts[id(node)] == 0]
    if missing:
        listed = ", ".join(_describe(node) for node in missing[:3])
        if len(missing) > 3:
            listed += f" and {len(missing) - 3} more"
        raise CheckFailure(
            f"{call} leaves out {len(missing)} of the graph's {len(expected)} nodes: {listed}. Every "
            "node the root depends on belongs in the order, the leaves and the root included."
        )
    position = {id(node): i for i, node in enumerate(order)}
    misplaced = _first_before_its_input(order, position)
    if misplaced is None:
        return
    i, node, parent = misplaced
    if returned_set:
        raise CheckFailure(
            f"{call} returned a set. It holds every node once, but Python walks a set in an order of "
            f"its own, and here {_describe(node)} comes before its input {_describe(parent)}.\n  Hint: "
            "a set has no order; return a list, appending each node once all of its inputs are in it."
        )
    if order[0] is root:
        raise CheckFailure(
            f"{call} starts with the root, so the order is reversed: inputs come first and the root "
            "last, so that walking the list front to back meets every input before its use."
        )
    raise CheckFailure(
        f"in {call}, {_describe(node)} comes at position {i}, before its input "
        f"{_describe(parent)} at position {position[id(parent)]}. Each node must come "
        "after all of its inputs: add a node to the list only once all of its inputs are in it."
    )


def _first_before_its_input(order: list[Any], position: dict[int, int]) -> tuple[int, Any, Any] | None:
    """The first node of ``order`` that comes before one of its inputs: its position, it, that input."""
    for i, node in enumerate(order):
        for parent in node.inputs:
            if position[id(parent)] > i:
                return i, node, parent
    return None


def _check_reads(reads: int, root: Any, what: str) -> None:
    """Fail a walk that read the nodes' inputs more often than any walk that skips visited nodes."""
    nodes = len(reference_topological_order(root))
    # Even a walk that scans every node for each node it places reads about nodes**2 inputs; one
    # that reaches a node once per path reads about 4 * 2**16 on 16 stacked diamonds, over ten times
    # this bound.
    if reads > 10 * nodes**2:
        raise CheckFailure(
            f"topological_order(root) for {what} read the inputs of the graph's {nodes} nodes "
            f"{reads:,} times: it reaches a node once along every path from the root, and the number "
            "of paths doubles with every diamond. Remember the nodes you have visited (a set) and skip "
            "a visited node as soon as you meet it again, not only when you place it."
        )


def check_topological_order(
    topological_order: Callable[[Any], Any],
    leaf: Builder = _leaf,
    op_node: Builder = _op_node,
    *,
    random_graphs: tuple[int, ...] = (0, 1, 2),
    deep: bool = True,
) -> None:
    """``topological_order(root)`` must list every node ``root`` depends on once, each after its inputs.

    Any valid order passes. The graphs, built with ``leaf`` and ``op_node``: a single leaf,
    ``(a - b) + c``, ``x * x``, a diamond, the sigmoid, a node used at two depths, 16 stacked
    diamonds, the random graphs with the given seeds, and (``deep``) a chain of 3,000 nodes or
    more (:func:`deep_chain_length`). The stacked diamonds are made of the checker's own nodes,
    which count how often their inputs are read: a walk that does not skip visited nodes reads
    them about 260,000 times there and fails on the count, even if it drops the repeats before
    it returns.
    """
    with own_work("topological_order", topological_order, reference_topological_order):
        single = leaf(2.0, "x")
        cases = [(single, "a graph that is a single leaf")]
        for build in (_graph_z, _graph_twice, _graph_diamond, _graph_sigmoid, _graph_shared_deep):
            cases.append(build(leaf, op_node))
        reads = _InputReads()  # only the stacked diamonds count reads: there, paths outnumber nodes
        cases.append(_graph_stacked_diamonds(reads.leaf, reads.op_node))
        cases += [_graph_random(leaf, op_node, seed) for seed in random_graphs]
        if deep:
            cases.append(_graph_chain(leaf, op_node))
        for root, what in cases:
            reads_before = reads.count
            order = _call(topological_order, root, what=f"topological_order(root) for {what}")
            walk_reads = reads.count - reads_before  # before the check's own walks add to the count
            _check_order(order, root, what)
            _check_reads(walk_reads, root, what)


# --- evaluating a graph ---------------------------------------------------------------------------


class _CountingOps:
    """Count the calls of the functions in the notebook's ``OPS`` while ``evaluate`` runs.

    Also note the first call given something other than its input values one by one: a None
    (an input not computed yet), or all the values in one list.
    """

    def __init__(self, ops: dict[str, Callable[..., Any]] | None) -> None:
        self.ops, self.calls, self.originals = ops, 0, dict(ops or {})
        self.calls_before_none: int | None = None  # how many ops ran before one got a None
        self.values_in_one_list = False

    def __enter__(self) -> _CountingOps:
        for name, function in self.originals.items():
            self.ops[name] = self._counted(function)
        return self

    def _counted(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            self._note_arguments(args)
            self.calls += 1
            return function(*args)

        return counted

    def _note_arguments(self, args: tuple[Any, ...]) -> None:
        """Keep the first sign that evaluate gave an op something other than its inputs' values."""
        if self.calls_before_none is not None or self.values_in_one_list:
            return
        if any(arg is None for arg in args):
            self.calls_before_none = self.calls
        elif len(args) == 1 and isinstance(args[0], (list, tuple, GeneratorType)):
            self.values_in_one_list = True

    def __exit__(self, *exc_info: Any) -> None:
        if self.ops is not None:
            self.ops.update(self.originals)


def _swapped_hint(node: Any, values: dict[int, Any], got: Any) -> str | None:
    if node.op not in NON_COMMUTATIVE or len(node.inputs) != 2:
        return None
    first, second = (values[id(p)].data for p in node.inputs)
    swapped = GRAPH_OPS[node.op][1](second, first)
    if isinstance(got, (int, float)) and _is_close(float(got), swapped):
        return f"that is {node.op} of the inputs in reverse order: apply the op to the input values in the order of node.inputs."
    return None


# What Python says when it computes with None, for an evaluate that does not call OPS: None + 1.0,
# -None, math.exp(None).
_ARITHMETIC_ON_NONE = ("unsupported operand type", "bad operand type", "must be real number")


def _met_an_uncomputed_input(error: Exception, counter: _CountingOps, order: list[Any]) -> bool:
    """Whether ``error`` came from computing an op node while one of its inputs was not computed yet."""
    if counter.calls_before_none is None:  # no op of OPS got a None: look at what Python said
        message = str(error)
        return isinstance(error, TypeError) and "NoneType" in message and any(
            text in message for text in _ARITHMETIC_ON_NONE
        )
    # When an op's result was not stored, its node holds None although it was computed: that is
    # not a matter of order. Here every op that ran before stored its value.
    stored = sum(1 for node in order if node.inputs and node.value is not None)
    return stored >= counter.calls_before_none


def _explain_evaluate_error(error: Exception, counter: _CountingOps, order: list[Any]) -> str | None:
    """The likely mistake behind an exception that evaluate raised, if one fits."""
    if isinstance(error, KeyError) and error.args[:1] == (None,):
        return (
            "a leaf has op None, which OPS does not know. Leave the leaves as they are (their value "
            "is given) and compute only the nodes that have inputs."
        )
    if counter.values_in_one_list:
        return (
            "OPS functions take the input values as separate arguments: OPS[node.op](*values), not "
            "OPS[node.op](values)."
        )
    if _met_an_uncomputed_input(error, counter, order):
        return (
            "an op node was computed while one of its inputs still had value None, so the nodes were "
            "not walked in a topological order (every input before the nodes that use it). Walk the "
            "list that topological_order(root) returns front to back, and check that your "
            "topological_order passes both of its tests; until it does, use reference_topological_order."
        )
    return None


def _op_computations_along_every_path(order: list[Any]) -> int:
    """How many ops an evaluation computes if it reaches a node once along every path from the root."""
    paths = {id(order[-1]): 1}
    for node in reversed(order):  # users before their inputs: a node's count is complete when reached
        for parent in node.inputs:
            paths[id(parent)] = paths.get(id(parent), 0) + paths[id(node)]
    return sum(paths[id(node)] for node in order if node.inputs)


def _check_evaluation(evaluate: Callable[[Any], Any], root: Any, what: str, ops: dict | None) -> None:
    call = f"evaluate(root) for {what}"
    order = reference_topological_order(root)
    with _CountingOps(ops) as counter:
        result = _call(
            evaluate, root, what=call, explain=lambda error: _explain_evaluate_error(error, counter, order)
        )
    values = _to_values(root)
    for node in order:  # the first wrong node, from the leaves up, is the one to fix
        if not node.inputs:
            continue
        got, expected = getattr(node, "value", None), values[id(node)].data
        if got is None:
            raise CheckFailure(
                f"after {call}, {_describe(node)} still has value None: evaluate must set .value of "
                "every op node, not only compute the root."
            )
        if isinstance(got, bool) or not isinstance(got, (int, float, np.floating)):
            raise CheckFailure(
                f"after {call}, {_describe(node)} has value {got!r} ({type(got).__name__}); it should be a number."
            )
        if not _is_close(float(got), expected):
            inputs = ", ".join(f"{values[id(p)].data:.6g}" for p in node.inputs)
            hint = _swapped_hint(node, values, got)
            raise CheckFailure(
                f"after {call}, {_describe(node)} has value {float(got):.6g}, expected {expected:.6g} "
                f"({node.op} of its inputs' values {inputs})." + (f"\n  Hint: {hint}" if hint else "")
            )
    if result is None:
        raise CheckFailure(f"{call} returned None: return the root's value once it is computed.")
    expected_root = values[id(root)].data
    if isinstance(result, bool) or not isinstance(result, (int, float, np.floating)) or not _is_close(float(result), expected_root):
        raise CheckFailure(f"{call} returned {result!r}; it should return the root's value, {expected_root:.6g}.")
    op_nodes = sum(1 for node in order if node.inputs)
    if counter.calls > op_nodes:
        once_per_use = counter.calls == _op_computations_along_every_path(order)
        raise CheckFailure(
            f"{call} applied an op {counter.calls:,} times, but the graph has {op_nodes:,} op nodes: "
            + ("a node that several others use was computed once for each use" if once_per_use
               else "some node was computed more than once")
            + ". Compute each node once, walking the nodes in topological order."
        )


def check_evaluate(
    evaluate: Callable[[Any], Any],
    leaf: Builder = _leaf,
    op_node: Builder = _op_node,
    ops: dict[str, Callable[..., Any]] | None = None,
    *,
    random_graphs: tuple[int, ...] = (0, 1, 2),
    deep: bool = True,
) -> None:
    """``evaluate(root)`` must set ``.value`` of every op node and return the root's value.

    Compared node by node with the same graph computed by ``autodiff_ref.scalar.Value``, on:
    ``(3 - 2) + 1``, ``x * x``, a diamond, the sigmoid, a node used at two depths, 16 stacked
    diamonds, random graphs with the given seeds, then the graph of ``(a - b) + c`` again after
    its leaves changed (a second call must recompute), and (``deep``) a chain of 3,000 nodes or
    more. When ``ops`` (the notebook's table of op functions) is given, its functions are counted
    during each call: a graph with n op nodes must cost at most n op calls, so shared nodes are
    computed once.
    """
    with own_work("evaluate", evaluate, None, also=(as_values,)):
        cases = [_graph_z(leaf, op_node)]
        for build in (_graph_twice, _graph_diamond, _graph_sigmoid, _graph_shared_deep, _graph_stacked_diamonds):
            cases.append(build(leaf, op_node))
        cases += [_graph_random(leaf, op_node, seed) for seed in random_graphs]
        for root, what in cases:
            _check_evaluation(evaluate, root, what, ops)

        root, what = _graph_z(leaf, op_node)
        _check_evaluation(evaluate, root, what, ops)
        a, b, c = root.inputs[0].inputs + (root.inputs[1],)
        a.value, b.value, c.value = 10.0, 4.0, -1.0
        again = f"{what}, called again after the leaves changed to a = 10, b = 4, c = -1"
        try:
            _check_evaluation(evaluate, root, again, ops)
        except CheckFailure as failure:
            raise CheckFailure(
                f"{failure}\n  The first call was right, so evaluate kept a value from it: recompute every "
                "op node on every call, even when it already holds a value."
            ) from None

        if deep:
            root, what = _graph_chain(leaf, op_node)
            _check_evaluation(evaluate, root, what, ops)
