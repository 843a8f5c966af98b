"""Checking helpers: training."""

__all__: list[str] = []
