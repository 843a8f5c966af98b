"""Benchmarks for autodiff_ref: see ``python -m benchmarks --help``."""
