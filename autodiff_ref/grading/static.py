"""Read the learner's code before it runs, and flag what no honest answer to this course needs.

Code in the grading kernel cannot be fully guarded from other code in the same kernel, so this
first line of defence runs outside it, on the source: each code cell the learner wrote (answer
cells, and cells they added) is parsed (IPython's transformer first, so magics become the
``get_ipython()`` calls they are) and every use of the following is a :class:`Finding`:

- running code from text: ``exec``, ``eval``, ``compile``, ``__import__``;
- reaching the interpreter: importing anything but the few modules an answer may use (NumPy, math,
  functools, itertools, collections, ...), or naming one of ``inspect``, ``sys``, ``os``,
  ``threading``, ``gc``, ``ctypes``, ... that a read-only cell imported; ``get_ipython`` (and so
  any magic); files (``open``, NumPy's ``load``/``save``);
- the escape hatches around such a list: ``globals()``, ``vars()``, ``locals()``,
  ``__builtins__``, ``getattr``/``setattr``/``delattr`` with a computed name, and attributes
  such as ``__globals__``, ``__code__``, ``__subclasses__``, ``__dict__`` or a frame's ``f_back``
  (defining and calling dunder methods such as ``__add__`` stays fine);
- ``autodiff_ref``'s private names (``Tensor._x``) and the reference implementation where the
  exercise asks to write it: a name that a read-only cell imported ``as reference...``, or that the
  notebook's metadata lists under ``autodiff_grading.reference_names``.

A notebook extends what is allowed in its metadata: ``"autodiff_grading": {"allow": ["inspect"]}``
(the names are a finding's ``construct``); the grader reads it from the handed-out notebook, never
from the submission. Every solution in ``solutions/`` passes with no finding.

:func:`findings` is the scan; :func:`refuse` replaces each flagged cell's code by an error naming
what was found, so the exercise scores 0 without the code ever running. :func:`reference_copies`
is for the audit: functions an answer copied from the reference implementation.
"""

from __future__ import annotations

import ast
import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nbformat import NotebookNode

# What an answer may import: enough for every exercise of the course, nothing that reaches the
# interpreter, other code or files.
ALLOWED_MODULES = frozenset({
    "numpy", "math", "cmath", "functools", "itertools", "collections", "dataclasses", "typing",
    "numbers", "abc", "enum", "random", "statistics", "fractions", "decimal", "heapq", "bisect", "copy",
    "time",
})
# Modules that hand out the interpreter, other threads or processes, or files: naming one that a
# read-only cell imported (01 imports inspect and sys), or reaching one as an attribute
# (``plt.sys``), is as good as importing it.
INTERPRETER_MODULES = frozenset({
    "inspect", "sys", "os", "importlib", "builtins", "threading", "_thread", "multiprocessing",
    "concurrent", "asyncio", "subprocess", "ctypes", "gc", "sqlite3", "pathlib", "io", "shutil",
    "pickle", "marshal", "types", "dis", "runpy", "signal", "socket", "tracemalloc", "faulthandler",
})
WHAT_THEY_DO = {
    "exec": "runs code from text", "eval": "runs code from text", "compile": "builds code from text",
    "__import__": "imports a module by name", "globals": "reaches the notebook's namespace",
    "vars": "reaches a namespace", "locals": "reaches a namespace", "__builtins__": "reaches the builtins",
    "open": "opens a file", "breakpoint": "starts the debugger",
    "get_ipython": "reaches the IPython shell (an IPython magic or ! command does too)",
}
# Attributes that hand out code, namespaces, frames or every class: what an escape needs.
INTROSPECTION_ATTRIBUTES = frozenset({
    "__globals__", "__code__", "__closure__", "__defaults__", "__kwdefaults__", "__builtins__",
    "__subclasses__", "__dict__", "__mro__", "__bases__", "__base__", "__func__", "__self__",
    "__wrapped__", "__loader__", "__spec__", "__getattribute__", "__import__", "__reduce__",
    "__reduce_ex__", "__traceback__", "f_back", "f_globals", "f_locals", "f_builtins", "f_code",
    "tb_frame", "tb_next", "gi_frame", "gi_code", "cr_frame", "ag_frame", "co_code", "co_consts",
})
NUMPY_FILE_FUNCTIONS = frozenset({
    "load", "loadtxt", "fromfile", "genfromtxt", "fromregex", "memmap", "save", "savez",
    "savez_compressed", "savetxt", "tofile", "DataSource",
})
ATTRIBUTE_BUILTINS = ("getattr", "setattr", "delattr", "hasattr")


@dataclass(frozen=True)
class Finding:
    """One construct in one cell. ``construct`` is what an allow-list names to permit it."""

    cell: str  # the cell's grade_id, or "cell N" for a cell the learner added
    line: int
    construct: str
    why: str

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: {self.why}"


def _grading_metadata(notebook: NotebookNode) -> dict[str, Any]:
    return notebook.metadata.get("autodiff_grading", {})


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def _fixed_ids(notebook: NotebookNode) -> set[str]:
    """grade_ids of the cells a learner may not change (the grader runs the course's version)."""
    return {
        _nbgrader(cell)["grade_id"] for cell in notebook.cells
        if _nbgrader(cell).get("locked") and not _nbgrader(cell).get("solution") and "grade_id" in _nbgrader(cell)
    }


def parse_cell(source: str) -> ast.Module | None:
    """A cell's code as Python sees it once IPython has turned magics into calls; None if it
    does not parse (it fails when it runs, and needs no finding)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(source)  # plain Python: line numbers as in the cell
    except SyntaxError:
        pass
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


@dataclass
class _Context:
    """What the notebook's read-only cells give the answers: names bound to ``autodiff_ref``,
    to modules, and to the reference implementation."""

    from_autodiff_ref: set[str]
    numpy_names: set[str]
    reference_names: set[str]


def _context(handed_out: NotebookNode) -> _Context:
    from_autodiff_ref, numpy_names = set(), {"numpy"}
    reference_names = set(_grading_metadata(handed_out).get("reference_names", []))
    fixed = _fixed_ids(handed_out)
    for cell in handed_out.cells:
        if cell.cell_type != "code" or _nbgrader(cell).get("grade_id") not in fixed:
            continue
        tree = parse_cell(cell.source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "autodiff_ref":
                bound = [alias.asname or alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                bound = [alias.asname or alias.name.split(".")[0] for alias in node.names]
                numpy_names |= {b for b, alias in zip(bound, node.names) if alias.name == "numpy"}
                bound = [b for b, alias in zip(bound, node.names) if alias.name.split(".")[0] == "autodiff_ref"]
            else:
                continue
            from_autodiff_ref |= set(bound)
            reference_names |= {name for name in bound if "reference" in name.lower()}
    return _Context(from_autodiff_ref, numpy_names, reference_names)


def _bound_in(tree: ast.AST) -> set[str]:
    """Every name the cell binds itself (assignments, parameters, functions, classes, imports):
    a learner's own variable called ``io`` or ``code`` is not the module."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _scan(tree: ast.Module, context: _Context) -> Iterator[tuple[int, str, str]]:
    """(line, construct, why) for every flagged construct in one cell."""
    own = _bound_in(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                modules = ["." * node.level + (node.module or "")]
            for module in modules:
                top = module.split(".")[0]
                if top not in ALLOWED_MODULES:
                    yield line, top or module, f"imports {module}, which no answer here needs"
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in own:
            if node.id in WHAT_THEY_DO:
                yield line, node.id, f"uses {node.id}, which {WHAT_THEY_DO[node.id]}"
            elif node.id in INTERPRETER_MODULES:
                yield line, node.id, f"uses the module {node.id}, which no answer here needs"
            elif node.id in INTROSPECTION_ATTRIBUTES:  # __loader__, __spec__: the cell's module globals
                yield line, node.id, f"uses {node.id}, which reaches the interpreter's internals"
            elif node.id in context.reference_names:
                yield line, node.id, (
                    f"uses {node.id}, the reference implementation: the exercise asks you to write it yourself")
        elif isinstance(node, ast.Attribute):
            root = _root_name(node.value)
            if node.attr in INTROSPECTION_ATTRIBUTES:
                yield line, node.attr, f"uses .{node.attr}, which reaches the interpreter's internals"
            elif node.attr in INTERPRETER_MODULES:
                yield line, node.attr, f"reaches the module {node.attr} through .{node.attr}"
            elif node.attr in NUMPY_FILE_FUNCTIONS and root in context.numpy_names:
                yield line, "files", f"uses {root}.{node.attr}, which reads or writes files"
            elif (node.attr.startswith("_") and not node.attr.startswith("__")
                  and root in context.from_autodiff_ref and root not in own):
                yield line, "private", f"uses {root}'s private name .{node.attr}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ATTRIBUTE_BUILTINS and node.func.id not in own and len(node.args) >= 2):
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                yield line, "computed attribute", f"uses {node.func.id} with a computed name"
            elif name.value in INTROSPECTION_ATTRIBUTES:
                yield line, name.value, f"uses {node.func.id}(..., {name.value!r}), which reaches the interpreter's internals"


def learner_cells(submitted: NotebookNode, handed_out: NotebookNode) -> Iterator[tuple[str, NotebookNode]]:
    """(label, cell) for every code cell whose code the learner wrote: answer cells, and
    cells they added. Read-only and test cells are left out: the grader runs the course's version."""
    fixed = _fixed_ids(handed_out)
    for index, cell in enumerate(submitted.cells):
        grade_id = _nbgrader(cell).get("grade_id")
        if cell.cell_type == "code" and grade_id not in fixed:
            yield grade_id or f"cell {index} (added)", cell


def findings(submitted: NotebookNode, handed_out: NotebookNode, allowed: frozenset[str] = frozenset()) -> list[Finding]:
    """What the learner's cells of ``submitted`` use that no honest answer needs.

    ``handed_out`` is the notebook as released (``course/``) or the instructor's version
    (``solutions/``): it tells which cells are the learner's, which names its read-only cells
    import, and (``metadata["autodiff_grading"]["allow"]``) what this notebook allows besides
    ``allowed``.
    """
    allowed = allowed | frozenset(_grading_metadata(handed_out).get("allow", []))
    context = _context(handed_out)
    found = []
    for label, cell in learner_cells(submitted, handed_out):
        tree = parse_cell(cell.source)
        if tree is None:
            continue
        flagged = {(line, construct, why) for line, construct, why in _scan(tree, context) if construct not in allowed}
        found += [Finding(label, line, construct, why) for line, construct, why in sorted(flagged)]
    return found


def refuse(submitted: NotebookNode, handed_out: NotebookNode, found: list[Finding]) -> None:
    """Replace each flagged cell's code in ``submitted`` (the copy being graded) by an error naming
    what was found, followed by the learner's code as comments: it never runs, so the exercise
    scores 0, and the feedback shows why."""
    by_cell: dict[str, list[Finding]] = {}
    for finding in found:
        by_cell.setdefault(finding.cell, []).append(finding)
    for label, cell in learner_cells(submitted, handed_out):
        if label not in by_cell:
            continue
        reasons = "; ".join(f"line {f.line} {f.why}" for f in by_cell[label])
        message = f"Not graded: this cell {reasons}. Write the answer without it."
        commented = "\n".join(f"# {line}" for line in cell.source.splitlines())
        cell.source = f"raise PermissionError({message!r})\n\n# Your code, not run:\n{commented}"


# --- copies of the reference implementation, for the audit ------------------------------------

# An answer this long that matches the reference after renaming is unlikely to be a coincidence;
# shorter ones (a local gradient, a one-line forward) are what any correct answer writes.
COPY_MIN_STATEMENTS = 8


class _Renamer(ast.NodeTransformer):
    """Names and parameters become v0, v1, ... in order of first use; docstrings and annotations go."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(id=self._rename(node.id), ctx=node.ctx)

    def visit_arg(self, node: ast.arg) -> ast.arg:
        return ast.arg(arg=self._rename(node.arg))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        # A copy pasted into a notebook loses its annotations (``Any`` is not imported there).
        if node.value is None:
            return ast.Pass()
        return self.generic_visit(ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = "f"
        node.decorator_list, node.returns = [], None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        return self.generic_visit(node)


def _shape(function: ast.FunctionDef) -> str:
    """The function's code with its names and docstring abstracted away."""
    return ast.dump(_Renamer().visit(copy.deepcopy(function)), annotate_fields=False)


def _statements(function: ast.FunctionDef) -> int:
    return sum(isinstance(node, ast.stmt) for node in ast.walk(function)) - 1


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef]:
    yield from (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


@functools.cache
def _reference_shapes() -> dict[str, str]:
    """shape -> the reference function's name, for every long function of the library."""
    package = Path(__file__).resolve().parent.parent
    shapes = {}
    for path in sorted(package.glob("*.py")):
        for function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            if _statements(function) >= COPY_MIN_STATEMENTS:
                shapes.setdefault(_shape(function), f"autodiff_ref.{path.stem}'s {function.name}")
    return shapes


def reference_copies(submitted: NotebookNode, handed_out: NotebookNode) -> list[str]:
    """One line per function in the learner's cells that is a long function of the reference
    implementation with only its names changed."""
    copies = []
    for label, cell in learner_cells(submitted, handed_out):
        tree = parse_cell(cell.source)
        for function in _functions(tree) if tree is not None else ():
            if _statements(function) < COPY_MIN_STATEMENTS:
                continue
            reference = _reference_shapes().get(_shape(function))
            if reference:
                copies.append(f"{label}: {function.name} (line {function.lineno}) is {reference} with names changed")
    return copies
