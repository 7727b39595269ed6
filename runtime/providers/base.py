"""The one interface every LLM provider speaks, and the errors it raises.

A provider streams one chat turn: the conversation and tool definitions go in,
events come out (text deltas, complete tool calls, usage, then `Done`). The agent
loop never sees a provider's wire format, so OpenAI-compatible servers, Anthropic
and the offline echo provider are interchangeable behind `Provider`.

Errors are sorted by what the caller should do about them: `ProviderAuthError` and
`UnknownModelError` fail the task with a clear message (retrying cannot help),
`ProviderStreamBroken` fails it while keeping the text already streamed, and any
other `ProviderError` says through `retryable` whether trying later could work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

__all__ = [
    "INVALID_ARGUMENTS_KEY",
    "STOP_END_TURN",
    "STOP_MAX_TOKENS",
    "STOP_TOOL_USE",
    "ChatMessage",
    "Done",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderEvent",
    "ProviderStreamBroken",
    "Role",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolSpec",
    "UnknownModelError",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]

INVALID_ARGUMENTS_KEY = "__invalid_json_arguments__"
"""A tool call whose arguments were not a JSON object carries the raw text under this
key (and nothing else), so the agent loop can tell the model instead of failing."""

# Normalised `Done.stop_reason` values; any other reason a server gives passes through.
STOP_END_TURN = "end_turn"
STOP_TOOL_USE = "tool_use"
STOP_MAX_TOKENS = "max_tokens"


@attrs.frozen
class ToolSpec:
    """A tool the model may call; `parameters` is its JSON Schema (an object schema)."""

    name: str
    description: str
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object",
                                                              "properties": {}})


@attrs.frozen
class ToolCall:
    """One call the model asked for, with its arguments parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)

    @property
    def invalid_arguments(self) -> str | None:
        """The raw argument text when it was not a JSON object, else None."""
        if set(self.arguments) == {INVALID_ARGUMENTS_KEY}:
            raw = self.arguments[INVALID_ARGUMENTS_KEY]
            return raw if isinstance(raw, str) else None
        return None


@attrs.frozen
class ChatMessage:
    """One message of the conversation.

    `assistant` messages may carry the `tool_calls` the model made; each call is
    answered by a `tool` message with its `tool_call_id`, the result as `content`,
    and `is_error` when the tool failed or was refused (providers that can say so,
    like Anthropic, pass it on; the model sees the text either way).
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=tuple)
    tool_call_id: str | None = None
    is_error: bool = False


@attrs.frozen
class TextDelta:
    """The next piece of the model's answer text."""

    text: str


@attrs.frozen
class ToolCallEvent:
    """A tool call, emitted once its arguments are complete."""

    call: ToolCall


@attrs.frozen
class Usage:
    """Tokens of the turn. `input_tokens` counts all input, cached or not."""

    input_tokens: int = 0
    output_tokens: int = 0


@attrs.frozen
class Done:
    """The turn ended; always the last event of a successful stream.

    `stop_reason` is normalised to `end_turn`, `tool_use` or `max_tokens` where
    the server's reason means one of those; other reasons pass through as given.
    """

    stop_reason: str


ProviderEvent = TextDelta | ToolCallEvent | Usage | Done


class ProviderError(Exception):
    """A provider call failed. `retryable`: whether trying later could succeed.

    `status` is the HTTP status when there was one; `retry_after` the wait (seconds)
    the server asked for. Messages name the provider and never contain a key.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """The server refused the credentials (401/403): a configuration error."""


class UnknownModelError(ProviderError):
    """The server does not serve the requested model (404 / model_not_found)."""


class ProviderStreamBroken(ProviderError):
    """The stream was cut after events had been delivered; it is not replayed.

    `partial_text` is the answer text streamed before the cut, so the task can fail
    and still keep what the user already saw.
    """

    def __init__(self, message: str, *, partial_text: str, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=False)
        self.partial_text = partial_text


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. `name` is the configured provider name, not the model.

    `stream_chat` is an async generator: iterate it inside
    `contextlib.aclosing(...)` so an abandoned stream closes its connection at once.
    It raises `ProviderError` (or a subclass); retries of 429/5xx happen inside it,
    only before the first event, so a half-streamed answer is never replayed.
    """

    name: str

    async def list_models(self) -> list[str]:
        """The model ids this provider serves."""
        ...

    def stream_chat(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        max_tokens: int | None = None,
    ) -> AsyncIterator[ProviderEvent]:
        """Stream one assistant turn."""
        ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...
