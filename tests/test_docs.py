"""Keep the documentation true: the programmer's guide and the README's Python examples run.

* ``docs/library.md`` is a doctest session from top to bottom (every ``>>>`` line in its
  ```` ```python ```` blocks, one shared namespace); it must pass with ELLIPSIS and
  NORMALIZE_WHITESPACE, as ``python -m doctest -o ELLIPSIS -o NORMALIZE_WHITESPACE
  docs/library.md`` runs it.
* Every ```` ```python ```` block of ``README.md`` is plain code; each runs in a fresh namespace.
  A block that shows an op of ``autodiff_ref.ops`` (``class Mul(Function): ...``) must also be
  that op's actual source, since the README says that is what ``ops.py`` holds.
"""

from __future__ import annotations

import contextlib
import doctest
import inspect
import io
import re
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # the guide draws a graph; never open a window

from autodiff_ref import Function, ops  # noqa: E402
from autodiff_ref.ops import unbroadcast  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "library.md"
README = ROOT / "README.md"

# Names a README snippet may use without importing them: the op example quotes a class from
# ops.py, where Function, unbroadcast and np are already in scope.
SNIPPET_NAMES = {"np": np, "Function": Function, "unbroadcast": unbroadcast}


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) for every ```python fenced block of a markdown file."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if start is None and stripped.startswith("```python"):
            start = number
        elif start is not None and stripped == "```":
            blocks.append((start, "\n".join(lines[start:number - 1]) + "\n"))
            start = None
    assert start is None, f"{path.name}: the ```python block opened at line {start} is never closed"
    return blocks


def test_library_guide_doctests():
    assert GUIDE.is_file(), f"missing {GUIDE}"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        result = doctest.testfile(
            str(GUIDE),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            report=True,
        )
    assert result.attempted > 0, "docs/library.md has no doctest examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed:\n{report.getvalue()}"


def test_library_guide_blocks_are_doctests():
    """Every ```python block of the guide is a session that doctest runs, with a blank line
    before its closing fence (else the fence would be read as expected output)."""
    for line, code in python_blocks(GUIDE):
        first = next((text for text in code.splitlines() if text.strip()), "")
        assert first.startswith(">>> "), f"docs/library.md:{line}: a python block that is not a doctest session"
        assert code.endswith("\n\n"), f"docs/library.md:{line}: add a blank line before the closing ```"


README_BLOCKS = python_blocks(README)


@pytest.mark.parametrize("line, code", README_BLOCKS, ids=[f"README.md:{line}" for line, _ in README_BLOCKS])
def test_readme_python_block_runs(line, code):
    namespace = {"__name__": f"readme_block_{line}", **SNIPPET_NAMES}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, f"README.md:{line}", "exec"), namespace)

    # A class named after an op of ops.py claims to be that op: it must be its source, word for word.
    for name, value in namespace.items():
        op = getattr(ops, name, None)
        if isinstance(value, type) and value.__module__ == namespace["__name__"] and isinstance(op, type):
            shown = re.search(rf"^class {name}\b.*?(?=^\S|\Z)", code, re.M | re.S).group(0)
            assert shown.strip() == textwrap.dedent(inspect.getsource(op)).strip(), (
                f"README.md:{line} shows class {name}, which differs from autodiff_ref.ops.{name}"
            )


def test_readme_taste_prints_the_derivatives_it_promises():
    """The "taste" example says both derivatives of x^3 at 2 are 12 (3 x^2 and 6 x)."""
    tastes = [(line, code) for line, code in README_BLOCKS if "grad(f)" in code]
    assert tastes, "README.md no longer has the example that prints grad(f)"
    line, code = tastes[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_taste"})
    assert output.getvalue().count("[12.]") == 2, output.getvalue()
