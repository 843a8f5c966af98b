"""Checking helpers: tensor."""

__all__: list[str] = []
