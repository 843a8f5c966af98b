"""Checking helpers: derivatives."""

__all__: list[str] = []
