"""Benchmarks for autodiff_ref: see ``python -m benchmarks --help``."""

import os


def pin_blas_threads(threads: int) -> None:
    """Tell every BLAS library NumPy may load to use ``threads`` threads; effective only before
    NumPy is imported, which is why this package's top level does not import it."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[name] = str(threads)
