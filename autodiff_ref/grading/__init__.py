"""The course machinery: everything that grades, kept apart from the library.

* :mod:`autodiff_ref.grading.check` -- the ``autodiff-course`` command: ``check`` and
  ``progress`` for learners, ``audit`` for instructors.
* :mod:`autodiff_ref.grading.preprocessors` -- the nbgrader preprocessors that
  ``nbgrader_config.py`` puts in place (tampering, guarded execution) and the audit of a graded
  class.
* :mod:`autodiff_ref.grading.integrity` -- runs inside the grading kernel: puts back what a
  notebook replaced in the checks before each test cell.
* :mod:`autodiff_ref.grading.sandbox` -- starts each grading kernel inside bubblewrap, away from
  the course folder, with limits.

Nothing here is imported by ``import autodiff_ref``; the kernel imports only ``integrity``, so this
file stays free of imports (nbgrader would otherwise load in every graded kernel).
"""
