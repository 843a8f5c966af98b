"""Walking a computational graph.

A graph node is any object with an ``inputs`` attribute: the nodes it was computed from.
``Value`` (the scalar engine) and ``Tensor`` (the tensor engine) both qualify, so they share
this one traversal: the scalar engine's backward, the graph drawings and the notebooks' checks
use it. ``Tensor.backward`` gets the same guarantee more cheaply from the order in which tensors
were made (see ``autodiff_ref.tensor._backpropagate``).
"""

from __future__ import annotations

from typing import Any


def topological_order(root: Any) -> list[Any]:
    """Every node that ``root`` depends on, each listed after all of its inputs; ``root`` last.

    The walk is an explicit-stack depth-first search rather than a recursive one, so a chain of
    a hundred thousand operations does not hit Python's recursion limit. A node stays on the
    stack while its inputs are placed above it; when it is on top again, they all are, and it is
    placed. (The stack holds the nodes themselves, not (node, state) pairs: on a long chain
    those pairs would be tens of thousands of objects for the garbage collector to scan.)
    """
    order: list[Any] = []
    expanded: set[int] = set()
    placed: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        node = stack[-1]
        key = id(node)
        if key in expanded:  # on top again: every input is placed
            stack.pop()
            if key not in placed:  # a node pushed twice is placed once
                placed.add(key)
                order.append(node)
            continue
        expanded.add(key)
        for parent in node.inputs:
            if id(parent) not in expanded:
                stack.append(parent)
    return order
