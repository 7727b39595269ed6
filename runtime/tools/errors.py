"""The errors a tool raises for the model to read (each becomes an `is_error` result)."""

from __future__ import annotations

__all__ = ["ToolArgumentError", "ToolError"]


class ToolError(Exception):
    """A failure the model caused and can fix; becomes an `is_error` result with this message."""


class ToolArgumentError(ToolError):
    """An argument is missing, unknown, or of the wrong type or range."""
