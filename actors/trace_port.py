"""Tracing as the actors see it: small ports, so that no actor imports OpenTelemetry.

The runtime layer (`runtime.observe.tracing`) supplies these callables when tracing
is on; when it is off they are None and an actor pays one `is None` test. The
trace context travels as a W3C `traceparent` string: the service records the one
of the request that queued a task with its dispatch state, the worker link carries
it in the grant, and the worker's session continues it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["NO_SPAN", "CurrentTraceparent", "SessionSpan", "StoreSpan", "span_or_nothing",
           "traced_session"]

CurrentTraceparent = Callable[[], str | None]
"""The `traceparent` of the span current in this task, None if there is none."""
StoreSpan = Callable[[str, str], AbstractContextManager[object]]
"""A span around one store operation: (operation, task id)."""
SessionSpan = Callable[[str, str, str | None], AbstractContextManager[object]]
"""The span of one agent session: (task id, attempt id, the grant's traceparent)."""

NO_SPAN: AbstractContextManager[object] = contextlib.nullcontext()
"""Reusable: entering it does nothing."""


def span_or_nothing(factory: StoreSpan | None, operation: str,
                    task_id: str) -> AbstractContextManager[object]:
    return NO_SPAN if factory is None else factory(operation, task_id)


def traced_session(span: SessionSpan | None, run: Any) -> AbstractContextManager[object]:
    """`span` around a session (`run`: its task_id, attempt_id and traceparent), if any."""
    return NO_SPAN if span is None else span(run.task_id, run.attempt_id, run.traceparent)
