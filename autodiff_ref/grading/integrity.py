"""Put back what a notebook's own code replaced in the checking machinery, before each test runs.

A test cell is only as honest as the functions it calls. Code in a learner's cell can replace
them: ``np.allclose = lambda *a, **k: True``, ``autodiff_ref.testing.check_function = print``, a
new ``__code__`` for a checking helper, or an IPython input transformer that rewrites the next
cell. The grader (:class:`autodiff_ref.grading.preprocessors.GuardedExecute`) runs this module in the
notebook's kernel: :func:`snapshot` once before the first cell, :func:`restore` before each test
cell. ``restore`` puts every replaced function, class and hook back as it was at the start and
returns what it had to put back, so the test runs against the real checks and the instructor
learns what was replaced.

The notebook's code cannot switch this off by replacing a function of this module:
:func:`snapshot` returns a :class:`Guard` whose ``restore`` and ``record`` are closures over what it
saved, and :func:`install` puts that guard in ``builtins`` under a name the grader makes up for each
run (``GuardedExecute`` reaches it there, never through this module's attributes). The guard's own
functions are part of what is saved, so replacing their code is undone too.

What is guarded: the callables (functions, classes, modules) in every module of ``autodiff_ref``,
NumPy, ``builtins``, ``math``, ``operator`` and ``sys``; the code and defaults of those functions, and
the methods of every class defined in ``autodiff_ref``; and the IPython shell's input and AST
transformers, event callbacks and exception hooks. Data (counters, flags, arrays) is left alone,
and so is everything the notebook defines itself. A learner who sets out to defeat the kernel
can still do it -- nothing running in the same process can prevent that -- but each such edit has
to be deliberate, and the grading note shows every one this module undid.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_GUARDED_MODULE_PREFIXES = ("autodiff_ref", "numpy")
_GUARDED_MODULES = ("builtins", "math", "operator", "sys")
# Rebound by ipykernel for every cell it runs, not by the notebook.
_SET_BY_THE_KERNEL = {
    ("builtins", "input"), ("builtins", "raw_input"), ("sys", "excepthook"), ("sys", "displayhook"),
}
_FUNCTION_PARTS = ("__code__", "__defaults__", "__kwdefaults__")
# Attributes a notebook could set on the shell instance to hide errors or rewrite cells.
_SHELL_METHODS = (
    "showtraceback", "_showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
    "run_ast_nodes", "run_code", "transform_cell", "transform_ast", "should_run_async",
)
_SHELL_LISTS = ("input_transformers_cleanup", "input_transformers_post", "ast_transformers")
_JUPYTER_PACKAGES = ("IPython", "ipykernel", "matplotlib", "matplotlib_inline", "ipywidgets", "comm")

# Bound once, so that a notebook replacing a builtin cannot change how restore() works.
_getattr, _setattr, _delattr, _isinstance = getattr, setattr, delattr, isinstance
_list, _vars, _callable = list, vars, callable

_MISSING = object()


def _is_guarded(value: Any) -> bool:
    return _callable(value) or _isinstance(value, types.ModuleType)


def _guarded_modules() -> list[types.ModuleType]:
    modules = [sys.modules[name] for name in _GUARDED_MODULES if name in sys.modules]
    for name, module in _list(sys.modules.items()):
        if name.split(".")[0] in _GUARDED_MODULE_PREFIXES and _isinstance(module, types.ModuleType):
            modules.append(module)
    return modules


def _own_classes(module: types.ModuleType) -> list[type]:
    """Classes that ``module`` defines (not the ones it imports), when it is part of autodiff_ref."""
    if not module.__name__.startswith("autodiff_ref"):
        return []
    return [
        value for value in _vars(module).values()
        if _isinstance(value, type) and value.__module__ == module.__name__
    ]


def _shell_classes(shell: Any) -> list[type]:
    return [cls for cls in type(shell).__mro__ if cls.__module__.split(".")[0] in ("IPython", "ipykernel")]


class Guard:
    """What :func:`snapshot` saved, and the two functions that use it (closures over it, so that
    neither the saved state nor the code that puts it back is an attribute a notebook can swap)."""

    __slots__ = ("restore", "record")

    def __init__(self, restore: Any, record: Any) -> None:
        self.restore, self.record = restore, record


def install(name: str) -> None:
    """Take a :func:`snapshot` and make it reachable as ``builtins.<name>``.

    The grader calls this once, before the notebook's first cell, with a name it made up for this
    run; it then calls ``<name>.restore()`` and ``<name>.record(...)``.
    """
    import builtins

    _setattr(builtins, name, snapshot())


def snapshot() -> Guard:
    """Remember the guarded functions, classes and hooks as they are now (before any learner code)."""
    import autodiff_ref.testing  # noqa: F401 -- the checks the tests call: guard them too
    import numpy.testing  # noqa: F401 -- loaded lazily by NumPy, so perhaps not yet

    shell = _shell()
    modules = _guarded_modules()
    classes = [cls for module in modules for cls in _own_classes(module)]
    classes += _shell_classes(shell) if shell is not None else []
    owners = {module.__name__: module for module in modules}
    owners.update({f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes})

    entries = {
        (label, name): value
        for label, owner in owners.items()
        for name, value in _list(_vars(owner).items())
        if _is_guarded(value) and (label, name) not in _SET_BY_THE_KERNEL
    }
    functions = {}
    for value in entries.values():
        function = _getattr(value, "__func__", value)  # the function inside a staticmethod or classmethod
        if _isinstance(function, types.FunctionType):
            functions[function] = tuple(_getattr(function, part) for part in _FUNCTION_PARTS)
    shell_state = _shell_state(shell)
    # Names that the notebook's read-only cells bound to guarded objects (``check_function``,
    # ``np``), with those objects: a learner's cell that rebinds one cannot swap out a test's helper.
    bound_by_fixed_cells: dict[str, Any] = {}

    # Held by the closure, not looked up in this module or in builtins when restore() runs.
    get, put, namespace_of, pair_up, parts_of = _getattr, _setattr, _vars, zip, _FUNCTION_PARTS

    def restore() -> list[str]:
        """Put back everything changed since the snapshot; the names of what was put back."""
        changed = []
        # Module attributes first, then function code: then the helpers called below are the real ones.
        for (label, name), value in entries.items():
            owner = owners[label]
            if namespace_of(owner).get(name) is not value:
                put(owner, name, value)
                changed.append(f"{label}.{name}")
        for function, parts in functions.items():
            for part, value in pair_up(parts_of, parts):
                if get(function, part) is not value:
                    put(function, part, value)
                    changed.append(f"{function.__module__}.{function.__qualname__}.{part}")
        changed += _restore_shell(shell_state)
        changed += _restore_bindings(bound_by_fixed_cells)
        return sorted(set(changed))

    def record(names: list[str]) -> None:
        """Remember what ``names`` are bound to in the notebook now, where they name guarded objects.

        The grader calls this after each read-only cell, with the names that cell binds.
        """
        namespace = _user_namespace()
        for name in names:
            value = namespace.get(name, _MISSING)
            if value is not _MISSING and _is_guarded(value) and _defined_in_guarded_module(value):
                bound_by_fixed_cells[name] = value

    for function in (restore, record):  # their code is guarded like the module functions they call
        functions[function] = tuple(_getattr(function, part) for part in _FUNCTION_PARTS)
    return Guard(restore, record)


def _defined_in_guarded_module(value: Any) -> bool:
    module = value.__name__ if _isinstance(value, types.ModuleType) else _getattr(value, "__module__", None)
    return _isinstance(module, str) and module.split(".")[0] in _GUARDED_MODULE_PREFIXES


def _restore_bindings(bound_by_fixed_cells: dict[str, Any]) -> list[str]:
    namespace, changed = _user_namespace(), []
    for name, value in bound_by_fixed_cells.items():
        if namespace.get(name, _MISSING) is not value:
            namespace[name] = value
            changed.append(f"the notebook's name {name}")
    return changed


def _user_namespace() -> dict[str, Any]:
    shell = _shell()
    return shell.user_ns if shell is not None else _vars(sys.modules["__main__"])


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _shell_state(shell: Any) -> dict[str, Any] | None:
    if shell is None:
        return None
    return {
        "shell": shell,
        "methods": {name: shell.__dict__.get(name) for name in _SHELL_METHODS},
        "lists": {name: _list(_getattr(shell, name, [])) for name in _SHELL_LISTS},
        "events": {event: _list(callbacks) for event, callbacks in shell.events.callbacks.items()},
        "custom_exceptions": shell.custom_exceptions,
    }


def _added_by_jupyter(hook: Any) -> bool:
    """Whether a hook added after the snapshot comes from Jupyter itself (``%matplotlib inline``
    registers one), rather than from the notebook's code."""
    module = _getattr(hook, "__module__", None) or type(hook).__module__
    return module.split(".")[0] in _JUPYTER_PACKAGES


def _keep_original_hooks(hooks: list, original: list) -> bool:
    """Drop the hooks the notebook added to ``hooks`` since the snapshot; whether any were dropped."""
    kept = [hook for hook in hooks if hook in original or _added_by_jupyter(hook)]
    if len(kept) == len(hooks) and all(hook in kept for hook in original):
        return False
    hooks[:] = original + [hook for hook in kept if hook not in original]
    return True


def _restore_shell(state: dict[str, Any] | None) -> list[str]:
    if state is None:
        return []
    shell, changed = state["shell"], []
    for name, original in state["methods"].items():
        if shell.__dict__.get(name) is not original:
            if original is None:
                _delattr(shell, name)
            else:
                _setattr(shell, name, original)
            changed.append(f"the IPython shell's {name}")
    for name, original in state["lists"].items():
        current = _getattr(shell, name, None)
        if current is not None and _keep_original_hooks(current, original):
            changed.append(f"the IPython shell's {name}")
    for event, original in state["events"].items():
        if _keep_original_hooks(shell.events.callbacks[event], original):
            changed.append(f"the IPython {event} callbacks")
    if shell.custom_exceptions != state["custom_exceptions"]:
        shell.set_custom_exc((), None)
        changed.append("the IPython shell's custom exception handler")
    return changed
