"""The grader's source scan (autodiff_ref.grading.static): what it flags, and that it never
flags an honest answer.

`tests/test_grading.py` runs the scan through nbgrader on whole submissions.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from autodiff_ref import graph
from autodiff_ref.grading.static import findings, parse_cell, reference_copies, refuse

from notebook_tools import COURSE_DIR, SOLUTIONS_DIR, is_solution_cell, nbgrader_metadata, notebook_paths, read_notebook

NOTEBOOKS = [path.parent.name for path in notebook_paths(SOLUTIONS_DIR)]
BACKWARD_PASS = "06_backward_pass"  # imports reference_topological_order and reference_gradcheck


def solution(assignment: str):
    return read_notebook(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb")


def handed_out(assignment: str):
    return read_notebook(COURSE_DIR / assignment / f"{assignment}.ipynb")


def with_answer(assignment: str, grade_id: str, source: str):
    notebook = solution(assignment)
    next(cell for cell in notebook.cells if nbgrader_metadata(cell).get("grade_id") == grade_id).source = source
    return notebook


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_no_solution_cell_of_the_course_is_flagged(assignment):
    """Every answer in solutions/, scanned against the learner notebook and the instructor's."""
    notebook = solution(assignment)
    assert any(is_solution_cell(cell) for cell in notebook.cells)
    assert findings(notebook, handed_out(assignment)) == []
    assert findings(notebook, notebook) == []


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_no_solution_of_the_course_is_taken_for_a_copy_of_the_reference(assignment):
    assert reference_copies(solution(assignment), handed_out(assignment)) == []


ATTACKS = {
    "exec": "exec(source)",
    "eval": "f = eval('lambda x: x')",
    "compile": "code = compile('1', 'x', 'eval')",
    "inspect": "source = inspect.getsource(reference_topological_order)",
    "importlib": "import importlib",
    "__import__": "ops = __import__('autodiff_ref.ops')",
    "threading": "import threading\nthreading.Thread(target=print).start()",
    "concurrent": "from concurrent.futures import ThreadPoolExecutor",
    "_thread": "import _thread",
    "multiprocessing": "import multiprocessing",
    "subprocess": "import subprocess",
    "os": "import os\nos.system('ls')",
    "ctypes": "import ctypes",
    "gc": "import gc",
    "sys": "sys.modules['autodiff_ref.ops'].Mul",
    "sqlite3": "import sqlite3",
    "open": "open('gradebook.db').read()",
    "files": "weights = np.load('answers.npy')",
    "autodiff_ref": "from autodiff_ref.graph import topological_order as mine",
    "reference_topological_order": "topological_order = reference_topological_order",
    "reference_gradcheck": "def gradcheck(*args, **kwargs):\n    return reference_gradcheck(*args, **kwargs)",
    "computed attribute": "name = '__glo' + 'bals__'\nspace = getattr(grad, name)",
    "__globals__": "space = grad.__globals__",
    "__code__": "def f():\n    pass\nf.__code__ = grad.__code__",
    "__subclasses__": "classes = object.__subclasses__()",
    "__builtins__": "b = __builtins__",
    "globals": "globals()['x'] = 1",
    "vars": "vars(Tensor)",
    "__dict__": "Tensor.__dict__",
    "f_back": "frame = error.__traceback__.tb_frame.f_back",
    "private": "Tensor._make",
    "get_ipython": "%run other_notebook.ipynb",
}


@pytest.mark.parametrize("construct", ATTACKS)
def test_each_construct_no_honest_answer_needs_is_flagged(construct):
    notebook = with_answer(BACKWARD_PASS, "topological_order", ATTACKS[construct])
    found = findings(notebook, handed_out(BACKWARD_PASS))
    assert construct in {finding.construct for finding in found}
    assert {finding.cell for finding in found} == {"topological_order"}
    assert all(str(finding).startswith("topological_order, line ") for finding in found)


# Further attacks of the same kinds: other routes to the same places.
VARIANTS = {
    "from importlib import import_module": "importlib",
    "import importlib.util as util": "importlib",
    "builtins_ = [].__class__.__base__": "__base__",
    "modules = plt.sys.modules": "sys",
    "load = getattr(np, 'lo' + 'ad')": "computed attribute",
    "space = object.__getattribute__(grad, '__globals__')": "__getattribute__",
    "space = getattr(grad, '__globals__')": "__globals__",
    "import asyncio": "asyncio",
    "from . import ops": ".",
    "loader = __loader__": "__loader__",
    "breakpoint()": "breakpoint",
    "!ls": "get_ipython",
    "def f(error):\n    return error.__traceback__.tb_frame.f_globals": "f_globals",
    "result = (lambda: 0).__code__.co_consts": "co_consts",
    "import pickle": "pickle",
}


@pytest.mark.parametrize("source", VARIANTS)
def test_other_routes_to_the_same_places_are_flagged_too(source):
    notebook = with_answer(BACKWARD_PASS, "topological_order", source)
    assert VARIANTS[source] in {finding.construct for finding in findings(notebook, handed_out(BACKWARD_PASS))}


HONEST = """
import numpy as np
from math import exp
from functools import reduce

class Square(Function):
    def __init__(self, power=2):
        super().__init__()
        self.power = power

    def __add__(self, other):
        return self.__mul__(other)

    def __repr__(self):
        return f"{type(self).__name__}({self.power})"

def total(values, io=None, code=0):
    grads = [getattr(value, "grad") for value in values]
    return np.sum(grads) + code + exp(0), io
"""


def test_ordinary_python_is_not_flagged():
    notebook = with_answer(BACKWARD_PASS, "topological_order", HONEST)
    assert findings(notebook, handed_out(BACKWARD_PASS)) == []


def test_a_cell_the_learner_added_is_scanned_too():
    notebook = solution(BACKWARD_PASS)
    added = notebook.cells[-1].copy()
    added.metadata = {}
    added.cell_type, added.source, added.outputs, added.execution_count = "code", "import threading", [], None
    notebook.cells.append(added)
    index = len(notebook.cells) - 1
    assert [str(f) for f in findings(notebook, handed_out(BACKWARD_PASS))] == [
        f"cell {index} (added), line 1: imports threading, which no answer here needs"]


def test_a_notebook_and_the_instructor_can_allow_a_construct():
    notebook = with_answer(BACKWARD_PASS, "topological_order", "import threading\nimport inspect")
    released = handed_out(BACKWARD_PASS)
    released.metadata["autodiff_grading"] = {"allow": ["threading"]}
    assert [finding.construct for finding in findings(notebook, released)] == ["inspect"]
    assert findings(notebook, released, allowed=frozenset({"inspect"})) == []
    # What the submission says it allows counts for nothing: only handed_out is read.
    notebook.metadata["autodiff_grading"] = {"allow": ["inspect"]}
    assert [finding.construct for finding in findings(notebook, handed_out(BACKWARD_PASS))] == ["threading", "inspect"]


def test_a_refused_cell_raises_an_error_naming_what_was_found_and_keeps_the_code_as_comments():
    notebook = with_answer(BACKWARD_PASS, "topological_order", "import threading\nx = 1")
    released = handed_out(BACKWARD_PASS)
    refuse(notebook, released, findings(notebook, released))
    cell = next(c for c in notebook.cells if nbgrader_metadata(c).get("grade_id") == "topological_order")
    tree = parse_cell(cell.source)
    assert [type(statement) for statement in tree.body] == [ast.Raise]  # the learner's code is only comments
    assert "line 1 imports threading" in cell.source and "# x = 1" in cell.source
    with pytest.raises(PermissionError, match="Not graded: this cell line 1 imports threading"):
        exec(compile(tree, "cell", "exec"), {})
    assert findings(notebook, released) == []  # the graded copy is clean


def test_a_hand_copied_reference_of_a_long_function_is_listed():
    source = inspect.getsource(graph.topological_order)
    renamed = source.replace("order", "result").replace("stack", "todo").replace("node", "item")
    copied = textwrap.dedent(renamed).replace('"""', "'''", 2)
    notebook = with_answer(BACKWARD_PASS, "topological_order", copied)
    assert reference_copies(notebook, handed_out(BACKWARD_PASS)) == [
        "topological_order: topological_result (line 1) is autodiff_ref.graph's topological_order with names changed"]
