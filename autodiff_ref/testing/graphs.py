"""Checking helpers: graphs."""

__all__: list[str] = []
