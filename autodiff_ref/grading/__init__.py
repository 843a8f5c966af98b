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
* :mod:`autodiff_ref.grading.fork_server` and :mod:`autodiff_ref.grading.forked_kernels` --
  ``check``'s kernels, forked from a process that has done the course's imports once.

Nothing here is imported by ``import autodiff_ref``; the kernel imports only ``integrity``, so this
file stays free of imports (nbgrader would otherwise load in every graded kernel).
"""

# The BLAS threads of every kernel the course starts, graded or checked, unless the environment
# names a number: grading runs one student per core and ``progress`` one notebook per core, so a
# second BLAS thread would only wait for a core another kernel holds; and check's numbers then
# come out as in grading.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
