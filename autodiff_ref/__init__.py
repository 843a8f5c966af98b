"""autodiff_ref: automatic differentiation from scratch, the reference package of autodiff-course.

* ``Tensor``, ``Function``, ``no_grad``, ``grad`` — the tensor engine (reverse mode);
  ``autodiff_ref.ops`` holds one ``Function`` per op, forward next to backward.
* ``autodiff_ref.scalar.Value`` — a scalar engine, the smallest complete reverse mode.
* ``autodiff_ref.forward`` — forward mode with dual numbers.
* ``autodiff_ref.gradcheck`` — numeric gradients by central differences, and ``gradcheck``.
* ``autodiff_ref.testing`` — the checks that the course notebooks' test cells call.
"""

from .tensor import Function, Tensor, grad, is_grad_enabled, no_grad
from . import ops
from . import forward


__all__ = ["Tensor", "Function", "no_grad", "is_grad_enabled", "grad", "ops", "forward"]
__version__ = "0.1.0"
