"""Checking helpers: engine."""

__all__: list[str] = []
