"""Per-request figures of the A2A client: latency, and token usage when the agent reports it.

Each call the client makes leaves one `RequestMetrics` record: how long until the
first response byte (a unary call) or the first stream event, how long until the
end, and the tokens the agent reported. Agents report usage in event metadata under
``"trio-a2a/usage": {"provider", "model", "input", "output"}`` (the same key the
worker's sessions read), so the figures of a chain of agents add up the same way
everywhere. Records are plain data and export as JSON for benchmarks and reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from protocol.models import Message, Role, StreamResponse, Task

__all__ = ["USAGE_KEY", "RequestMetrics", "Usage", "metrics_to_json"]

USAGE_KEY = "trio-a2a/usage"


@attrs.define
class Usage:
    """Tokens summed over the usage entries seen; provider and model as last named."""

    input_tokens: int = 0
    output_tokens: int = 0
    provider: str | None = None
    model: str | None = None
    seen: bool = False

    def add(self, metadata: Mapping[str, Any] | None) -> None:
        """Count the usage entry of one metadata map, if it has one."""
        usage = (metadata or {}).get(USAGE_KEY)
        if not isinstance(usage, Mapping):
            return
        self.seen = True
        self.provider = str(usage.get("provider") or self.provider or "") or None
        self.model = str(usage.get("model") or self.model or "") or None
        for key, attr in (("input", "input_tokens"), ("output", "output_tokens")):
            value = usage.get(key)
            # protobuf-based agents send every number as a double (7 -> 7.0)
            if (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
                    and float(value).is_integer()):
                setattr(self, attr, getattr(self, attr) + int(value))

    def add_event(self, event: StreamResponse) -> None:
        """Usage carried by one incremental stream event (not a task snapshot)."""
        if (up := event.artifact_update) is not None:
            self.add(up.metadata)
            self.add(up.artifact.metadata)
        elif event.status_update is not None:
            self.add(event.status_update.metadata)
        elif event.message is not None:
            self.add(event.message.metadata)

    def add_result(self, result: Task | Message) -> None:
        """Usage in a whole task or message.

        A task-level entry is the agent's total and wins; otherwise the entries of
        its artifacts, status message and agent messages are summed.
        """
        if isinstance(result, Message):
            self.add(result.metadata)
            return
        if (result.metadata or {}).get(USAGE_KEY) is not None:
            self.add(result.metadata)
            return
        for artifact in result.artifacts or ():
            self.add(artifact.metadata)
        if result.status.message is not None:
            self.add(result.status.message.metadata)
        for message in result.history or ():
            if message.role is Role.AGENT:
                self.add(message.metadata)


@attrs.frozen
class RequestMetrics:
    """One request: what was called, how long it took, what it cost.

    Times are seconds on trio's clock from the moment the request was sent:
    `first_s` to the response head (unary) or the first stream event, `total_s` to
    the end. `error` is None for success, else a short description.
    """

    method: str
    """The 1.0 method name (SendMessage, ...), whatever the wire said."""
    protocol: str
    url: str
    first_s: float | None
    total_s: float
    events: int = 0
    error: str | None = None
    error_code: int | None = None
    task_id: str | None = None
    state: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    provider: str | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with `ok` spelled out."""
        return {**attrs.asdict(self), "ok": self.ok}


def metrics_to_json(metrics: Iterable[RequestMetrics], *, indent: int | None = 2) -> str:
    """The records as a JSON array, one object per request in the order made."""
    return json.dumps([m.to_dict() for m in metrics], indent=indent)
