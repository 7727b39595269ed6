"""The built-in offline provider: deterministic, no network, no model.

By default it answers every turn with the last user message, streamed a word at
a time, so a worker runs out of the box and the agent loop can be tested
without an LLM. Tests can script it: each scripted turn is a list of events
(text, tool calls) and exceptions, played in order for successive turns; once
the script is used up it echoes again. Tokens are counted as whitespace-separated
words, so usage figures are exact and predictable.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence

import attrs

from runtime.providers.base import (
    STOP_END_TURN,
    STOP_MAX_TOKENS,
    STOP_TOOL_USE,
    ChatMessage,
    Done,
    ProviderEvent,
    TextDelta,
    ToolCallEvent,
    ToolSpec,
    UnknownModelError,
    Usage,
)
from runtime.providers.retry import RetryPolicy, retrying

__all__ = ["EchoProvider", "EchoRequest", "ScriptedTurn"]

ScriptedTurn = Sequence[ProviderEvent | BaseException]
"""One scripted turn: events to stream, and exceptions to raise where they stand.
Without a trailing `Done`, `Usage` and `Done` are added (`tool_use` if it called a tool)."""

_NO_RETRY = RetryPolicy(max_retries=0)
_NO_RNG = random.Random(0)  # never drawn from: nothing is retried
_WORDS = re.compile(r"\s*\S+\s*|\s+")


def count_words(text: str) -> int:
    return len(text.split())


@attrs.frozen
class EchoRequest:
    """A turn the provider was asked for, recorded for tests."""

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...]
    max_tokens: int | None


class EchoProvider:
    """Echoes the last user message; see the module docstring.

    `max_tokens` cuts the echo after that many words (stop reason `max_tokens`).
    """

    def __init__(self, *, name: str = "echo", models: Sequence[str] = ("echo",),
                 script: Iterable[ScriptedTurn] = ()) -> None:
        self.name = name
        self.models = list(models)
        self._script = deque(list(turn) for turn in script)
        self.requests: list[EchoRequest] = []

    def add_turn(self, turn: ScriptedTurn) -> None:
        """Script the next unscripted turn."""
        self._script.append(list(turn))

    async def list_models(self) -> list[str]:
        return list(self.models)

    async def aclose(self) -> None:
        return None

    def stream_chat(self, *, model: str, messages: Sequence[ChatMessage],
                    tools: Sequence[ToolSpec] = (),
                    max_tokens: int | None = None) -> AsyncIterator[ProviderEvent]:
        self.requests.append(EchoRequest(model, tuple(messages), tuple(tools), max_tokens))
        input_tokens = sum(count_words(m.content) for m in messages)
        turn = self._script.popleft() if self._script else None
        return retrying(lambda: self._play(model, turn, messages, input_tokens, max_tokens),
                        policy=_NO_RETRY, rng=_NO_RNG, provider=self.name)

    async def _play(self, model: str, turn: list[ProviderEvent | BaseException] | None,
                    messages: Sequence[ChatMessage], input_tokens: int,
                    max_tokens: int | None) -> AsyncIterator[ProviderEvent]:
        if model not in self.models:
            raise UnknownModelError(f"provider {self.name!r}: model {model!r} is not served "
                                    f"(it serves {', '.join(self.models)})", status=404)
        stop = None
        if turn is None:
            turn, stop = _echo_turn(messages, max_tokens)
        output = 0
        called = False
        for item in turn:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, TextDelta):
                output += count_words(item.text)
            called = called or isinstance(item, ToolCallEvent)
            yield item
            if isinstance(item, Done):
                return
        yield Usage(input_tokens, output)
        yield Done(stop or (STOP_TOOL_USE if called else STOP_END_TURN))


def _echo_turn(messages: Sequence[ChatMessage],
               max_tokens: int | None) -> tuple[list[ProviderEvent | BaseException], str | None]:
    """The echo of the last user message, cut at `max_tokens` words; its stop reason."""
    text = next((m.content for m in reversed(messages) if m.role == "user"), "")
    pieces: list[str] = _WORDS.findall(text)
    if max_tokens is not None and count_words(text) > max_tokens:
        return [TextDelta(p) for p in pieces[:max_tokens]], STOP_MAX_TOKENS
    return [TextDelta(p) for p in pieces], None
