"""Checking helpers: scalar."""

__all__: list[str] = []
