"""OpenAI-compatible Chat Completions, streamed: OpenAI, Ollama, vLLM, llama.cpp
server, LM Studio, OpenRouter and anything else that speaks `/chat/completions`.

The request asks for `stream: true` with `stream_options.include_usage`, so the
last chunk carries token counts. Tool calls arrive as deltas keyed by `index`,
their `arguments` string split across chunks; they are assembled and parsed once
the choice finishes. Arguments that are not a JSON object do not fail the turn:
the call is emitted with the raw text under `INVALID_ARGUMENTS_KEY`, so the agent
loop can tell the model and let it try again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs

from runtime.providers.base import (
    INVALID_ARGUMENTS_KEY,
    STOP_END_TURN,
    STOP_MAX_TOKENS,
    STOP_TOOL_USE,
    ChatMessage,
    Done,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    Usage,
)
from runtime.providers.http import HttpProvider
from runtime.providers.retry import retrying

__all__ = ["OpenAICompatProvider", "parse_tool_arguments"]

log = logging.getLogger(__name__)

_STOP_REASONS = {"stop": STOP_END_TURN, "length": STOP_MAX_TOKENS,
                 "tool_calls": STOP_TOOL_USE, "function_call": STOP_TOOL_USE}
_RETRYABLE_ERROR_TYPES = frozenset({"server_error", "rate_limit_error", "overloaded_error",
                                    "timeout", "rate_limit_exceeded"})


def parse_tool_arguments(raw: str) -> dict[str, Any]:
    """Arguments text -> dict; empty means no arguments; anything else that is not a
    JSON object is kept verbatim under `INVALID_ARGUMENTS_KEY`."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {INVALID_ARGUMENTS_KEY: raw}
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS_KEY: raw}


def encode_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation in Chat Completions form."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "",
                        "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name,
                              "arguments": c.invalid_arguments or json.dumps(c.arguments)}}
                for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


@attrs.define
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


@attrs.define
class _Turn:
    """Folds chunks of one streamed choice into provider events."""

    provider: str
    calls: dict[int, _PendingCall] = attrs.field(factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    made_calls: bool = False

    def feed(self, chunk: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(int(usage.get("prompt_tokens") or 0),
                               int(usage.get("completion_tokens") or 0))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n=1 is all we ask for
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
            for position, part in enumerate(delta.get("tool_calls") or ()):
                self._add_call_part(part, position)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                events.extend(self.flush_calls())
        return events

    def _add_call_part(self, part: Mapping[str, Any], position: int) -> None:
        index = part.get("index", position)
        call = self.calls.setdefault(index, _PendingCall())
        if part.get("id") and not call.id:
            call.id = str(part["id"])
        function = part.get("function") or {}
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        args = function.get("arguments")
        if isinstance(args, str):
            call.arguments.append(args)
        elif isinstance(args, dict):  # some servers send the object whole
            call.arguments.append(json.dumps(args))

    def flush_calls(self) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for index in sorted(self.calls):
            pending = self.calls[index]
            raw = "".join(pending.arguments)
            arguments = parse_tool_arguments(raw)
            if INVALID_ARGUMENTS_KEY in arguments:
                log.warning("tool call arguments are not a JSON object",
                            extra={"provider": self.provider, "tool": pending.name,
                                   "arguments_length": len(raw)})
            call = ToolCall(pending.id or f"call_{index}", pending.name, arguments)
            events.append(ToolCallEvent(call))
            self.made_calls = True
        self.calls.clear()
        return events

    def finish(self) -> list[ProviderEvent]:
        events = self.flush_calls()
        if self.usage is not None:
            events.append(self.usage)
        reason = _STOP_REASONS.get(self.finish_reason or "stop", self.finish_reason or "")
        if reason == STOP_END_TURN and self.made_calls:
            reason = STOP_TOOL_USE  # some servers say "stop" after tool calls
        events.append(Done(reason))
        return events


class OpenAICompatProvider(HttpProvider):
    """Chat Completions over HTTP; `api_key` is optional (local servers need none).

    `max_tokens_field` names the request field for the output limit: OpenAI's
    reasoning models want `max_completion_tokens`, most other servers `max_tokens`.
    `extra_headers` are sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    Other keyword arguments (timeouts, retry, rng, client) go to `HttpProvider`.
    """

    def __init__(self, *, name: str = "openai", base_url: str = "https://api.openai.com/v1",
                 api_key: str | None = None, extra_headers: Mapping[str, str] | None = None,
                 include_usage: bool = True, max_tokens_field: str = "max_tokens",
                 **kwargs: Any) -> None:
        super().__init__(name=name, base_url=base_url, scrub=(api_key or "",), **kwargs)
        self._headers = dict(extra_headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.include_usage = include_usage
        self.max_tokens_field = max_tokens_field

    async def list_models(self) -> list[str]:
        data = await self.get_json(f"{self.base_url}/models", headers=self._headers)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise self._error(ProviderError, f"{self.base_url}/models did not list models")
        return [str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e]

    def build_request(self, *, model: str, messages: Sequence[ChatMessage],
                      tools: Sequence[ToolSpec] = (),
                      max_tokens: int | None = None) -> dict[str, Any]:
        """The request body for one streamed turn."""
        body: dict[str, Any] = {"model": model, "messages": encode_messages(messages),
                                "stream": True}
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools]
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        return body

    def stream_chat(self, *, model: str, messages: Sequence[ChatMessage],
                    tools: Sequence[ToolSpec] = (),
                    max_tokens: int | None = None) -> AsyncIterator[ProviderEvent]:
        body = self.build_request(model=model, messages=messages, tools=tools,
                                  max_tokens=max_tokens)
        return retrying(lambda: self._attempt(body, model), policy=self.retry, rng=self._rng,
                        provider=self.name)

    def _stream_error(self, error: Any) -> ProviderError:
        if not isinstance(error, dict):
            return self._error(ProviderError, f"error in stream: {error}")
        code = error.get("code")
        kind = str(error.get("type") or "")
        status = code if isinstance(code, int) else None
        retryable = (status is not None and (status == 429 or status >= 500)) or (
            kind in _RETRYABLE_ERROR_TYPES or code in _RETRYABLE_ERROR_TYPES)
        return self._error(ProviderError, f"error in stream: {error.get('message', error)}",
                           status=status, retryable=retryable)

    async def _attempt(self, body: dict[str, Any], model: str) -> AsyncIterator[ProviderEvent]:
        url = f"{self.base_url}/chat/completions"
        turn = _Turn(self.name)
        done = False
        async with contextlib.aclosing(self.open_sse(url, body=body, headers=self._headers,
                                                     model=model)) as stream:
            async for sse in stream:
                if done:
                    continue  # read to the end so the connection can be reused
                if sse.data.strip() == "[DONE]":
                    done = True
                    continue
                chunk = self.parse_data(sse)
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    raise self._stream_error(chunk["error"])
                for event in turn.feed(chunk):
                    yield event
        if not done and turn.finish_reason is None:
            raise self._error(ProviderError, f"the stream from {url} ended before the turn "
                              "finished", retryable=True)
        for event in turn.finish():
            yield event
