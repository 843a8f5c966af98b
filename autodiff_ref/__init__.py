"""autodiff_ref: automatic differentiation from scratch, the reference package of autodiff-course.

* ``Tensor``, ``Function``, ``no_grad``, ``grad`` — the tensor engine (reverse mode);
  ``zeros``, ``ones``, ``randn``, ``rand`` make tensors, and ``where``, ``concatenate``,
  ``stack``, ``split``, ``maximum``, ``minimum`` are the ops that take several;
  ``autodiff_ref.ops`` holds one ``Function`` per op, forward next to backward.
* ``autodiff_ref.scalar.Value`` — a scalar engine, the smallest complete reverse mode.
* ``autodiff_ref.forward`` — forward mode with dual numbers.
* ``autodiff_ref.gradcheck`` — numeric gradients by central differences, and ``gradcheck``.
* ``autodiff_ref.nn``, ``autodiff_ref.optim``, ``autodiff_ref.data`` — a small training stack.
* ``autodiff_ref.testing`` — the checks that the course notebooks' test cells call.
* ``autodiff_ref.grading`` — the course machinery: ``autodiff-course check``, nbgrader's
  preprocessors, the audit.

``import autodiff_ref`` loads the tensor engine, ``ops`` and ``forward``; import the other
modules by name (``from autodiff_ref.scalar import Value``). docs/library.md is the guide.
"""

from .tensor import Function, Tensor, enable_grad, grad, is_grad_enabled, no_grad, ones, rand, randn, zeros
from . import ops
from .ops import concatenate, maximum, minimum, split, stack, where
from . import forward


__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "grad", "ops", "forward",
    "zeros", "ones", "randn", "rand", "where", "concatenate", "stack", "split", "maximum", "minimum",
]
__version__ = "0.1.0"
