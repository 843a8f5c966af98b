"""Checking helpers: dual."""

__all__: list[str] = []
