"""Walking a computational graph.

A graph node is any object with an ``inputs`` attribute: the nodes it was computed from.
``Value`` (the scalar engine) and ``Tensor`` (the tensor engine) both qualify, so they share
this one traversal.
"""

from __future__ import annotations

from typing import Any


def topological_order(root: Any) -> list[Any]:
    """Every node that ``root`` depends on, each listed after all of its inputs; ``root`` last.

    The walk is an explicit-stack depth-first search rather than a recursive one, so a chain of
    a hundred thousand operations does not hit Python's recursion limit.
    """
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))  # revisit once every input has been placed
        for parent in node.inputs:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
