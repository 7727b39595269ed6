"""Errors of the worker process that more than one of its transports raise."""

from __future__ import annotations

__all__ = ["WorkerRejected"]


class WorkerRejected(Exception):
    """The server refused this worker (bad token, or a protocol it does not speak)."""
