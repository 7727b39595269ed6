"""SessionStats: what a session's events say about its provider, tokens, tool calls and text.

Usage reaches the status frames through event metadata: an event whose metadata
(or its artifact's) holds ``"trio-a2a/usage": {"provider", "model", "input",
"output"}`` adds tokens and names the provider and model; ``"trio-a2a/toolCall":
{"name", "phase": "start"}`` counts a tool call. The text is kept only up to
`max_partial_chars`, for the partial output a failure reports: the output itself
went to the server as it was emitted, and a worker holds no copy of it.
"""

from __future__ import annotations

from typing import Any

import attrs

from protocol.models import StreamResponse
from protocol.worker_link import TokenUsage

__all__ = ["SessionStats", "TOOL_CALL_KEY", "USAGE_KEY"]

USAGE_KEY = "trio-a2a/usage"
TOOL_CALL_KEY = "trio-a2a/toolCall"


@attrs.define
class SessionStats:
    """What a session's events said about its provider, tool calls, tokens and text."""

    provider: str | None = None
    model: str | None = None
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    max_partial_chars: int = 16 * 1024
    _text: list[str] = attrs.field(factory=list)
    _chars: int = 0

    @property
    def partial_output(self) -> str:
        return "".join(self._text)

    @property
    def tokens_used(self) -> TokenUsage | None:
        if not (self.input_tokens or self.output_tokens):
            return None
        return TokenUsage(input=self.input_tokens, output=self.output_tokens)

    def observe(self, event: StreamResponse) -> None:
        metas: list[dict[str, Any] | None] = []
        if (up := event.artifact_update) is not None:
            metas += [up.metadata, up.artifact.metadata]
            for part in up.artifact.parts:
                if part.text is not None and self._chars < self.max_partial_chars:
                    piece = part.text[: self.max_partial_chars - self._chars]
                    self._text.append(piece)
                    self._chars += len(piece)
        elif event.status_update is not None:
            metas.append(event.status_update.metadata)
        elif event.message is not None:
            metas.append(event.message.metadata)
        for meta in metas:
            if meta:
                self._note(meta.get(USAGE_KEY), meta.get(TOOL_CALL_KEY))

    def _note(self, usage: Any, tool_call: Any) -> None:
        if isinstance(usage, dict):
            self.provider = str(usage.get("provider") or self.provider or "") or None
            self.model = str(usage.get("model") or self.model or "") or None
            for key, attr in (("input", "input_tokens"), ("output", "output_tokens"),
                              ("toolCalls", "tool_calls")):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    setattr(self, attr, getattr(self, attr) + value)
        if isinstance(tool_call, dict) and tool_call.get("phase") == "start":
            self.tool_calls += 1
