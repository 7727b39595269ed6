"""Anthropic Messages API, streamed, with tool use.

The conversation is reshaped to what the API requires: system messages become
the top-level `system`, tool results become `tool_result` blocks of a user turn,
and consecutive messages of one role are merged into one turn. Streamed
`tool_use` blocks collect their `input_json_delta` pieces and are emitted as one
`ToolCallEvent` at `content_block_stop`. Usage is reported once, at
`message_stop`, with `input_tokens` including cache reads and writes (as OpenAI
counts prompt tokens). An `error` event (e.g. overloaded) before any output is
retried like a 529 response.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs

from runtime.providers.base import (
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
    UnknownModelError,
    Usage,
)
from runtime.providers.http import HttpProvider
from runtime.providers.openai_compat import parse_tool_arguments
from runtime.providers.retry import retrying

__all__ = ["AnthropicProvider"]

DEFAULT_VERSION = "2023-06-01"
_STOP_REASONS = {"end_turn": STOP_END_TURN, "tool_use": STOP_TOOL_USE,
                 "max_tokens": STOP_MAX_TOKENS}
_RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error",
                               "timeout_error"})
_MAX_MODEL_PAGES = 50


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                                 "content": message.content}
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content:  # the API refuses empty text blocks
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": call.arguments})
    return blocks


def encode_messages(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Messages API form."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            if m.content:
                system.append(m.content)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


@attrs.define
class _Turn:
    """Folds the events of one streamed message into provider events."""

    blocks: dict[int, dict[str, Any]] = attrs.field(factory=dict)  # open tool_use blocks
    usage: dict[str, int] = attrs.field(factory=dict)
    stop_reason: str | None = None

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int):
                    self.usage[key] = value  # message_delta counts are cumulative

    def total_usage(self) -> Usage:
        u = self.usage
        return Usage(u.get("input_tokens", 0) + u.get("cache_creation_input_tokens", 0)
                     + u.get("cache_read_input_tokens", 0), u.get("output_tokens", 0))

    def feed(self, kind: str, data: Mapping[str, Any]) -> list[ProviderEvent]:
        if kind == "message_start":
            self.add_usage((data.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.blocks[data.get("index", 0)] = {"id": block.get("id", ""),
                                                     "name": block.get("name", ""),
                                                     "input": block.get("input"), "json": []}
            elif block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta":
                block = self.blocks.get(data.get("index", 0))
                if block is not None:
                    block["json"].append(delta.get("partial_json") or "")
        elif kind == "content_block_stop":
            block = self.blocks.pop(data.get("index", 0), None)
            if block is not None:
                raw = "".join(block["json"])
                if raw.strip() or not isinstance(block["input"], dict):
                    arguments = parse_tool_arguments(raw)
                else:
                    arguments = block["input"]
                return [ToolCallEvent(ToolCall(block["id"], block["name"], arguments))]
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.add_usage(data.get("usage"))
        elif kind == "message_stop":
            reason = self.stop_reason or STOP_END_TURN
            return [self.total_usage(), Done(_STOP_REASONS.get(reason, reason))]
        return []  # ping, thinking and signature deltas, unknown future events


class AnthropicProvider(HttpProvider):
    """The Messages API at `base_url` (without `/v1`).

    The API requires an output limit: `default_max_tokens` is used when a turn
    gives none. Other keyword arguments (timeouts, retry, rng, client) go to
    `HttpProvider`.
    """

    def __init__(self, *, api_key: str, name: str = "anthropic",
                 base_url: str = "https://api.anthropic.com",
                 anthropic_version: str = DEFAULT_VERSION, default_max_tokens: int = 4096,
                 extra_headers: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        base_url = base_url.rstrip("/")
        base_url = base_url.removesuffix("/v1")
        super().__init__(name=name, base_url=base_url, scrub=(api_key,), **kwargs)
        self._headers = {**(extra_headers or {}), "x-api-key": api_key,
                         "anthropic-version": anthropic_version}
        self.default_max_tokens = default_max_tokens

    async def list_models(self) -> list[str]:
        models: list[str] = []
        params = {"limit": "1000"}
        for _ in range(_MAX_MODEL_PAGES):
            data = await self.get_json(f"{self.base_url}/v1/models", headers=self._headers,
                                       params=params)
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise self._error(ProviderError, f"{self.base_url}/v1/models did not list "
                                  "models")
            models.extend(str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e)
            if not data.get("has_more") or not data.get("last_id"):
                break
            params = {"limit": "1000", "after_id": str(data["last_id"])}
        return models

    def build_request(self, *, model: str, messages: Sequence[ChatMessage],
                      tools: Sequence[ToolSpec] = (),
                      max_tokens: int | None = None) -> dict[str, Any]:
        """The request body for one streamed turn."""
        system, turns = encode_messages(messages)
        body: dict[str, Any] = {"model": model, "messages": turns, "stream": True,
                                "max_tokens": max_tokens or self.default_max_tokens}
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [{"name": t.name, "description": t.description,
                              "input_schema": t.parameters} for t in tools]
        return body

    def stream_chat(self, *, model: str, messages: Sequence[ChatMessage],
                    tools: Sequence[ToolSpec] = (),
                    max_tokens: int | None = None) -> AsyncIterator[ProviderEvent]:
        body = self.build_request(model=model, messages=messages, tools=tools,
                                  max_tokens=max_tokens)
        return retrying(lambda: self._attempt(body, model), policy=self.retry, rng=self._rng,
                        provider=self.name)

    def _stream_error(self, data: Mapping[str, Any], model: str) -> ProviderError:
        error = data.get("error") or {}
        kind = str(error.get("type", "")) if isinstance(error, dict) else ""
        message = error.get("message", error) if isinstance(error, dict) else error
        if kind == "not_found_error":
            return self._error(UnknownModelError, f"model {model!r} is not served: {message}")
        return self._error(ProviderError, f"error in stream ({kind or 'unknown'}): {message}",
                           retryable=kind in _RETRYABLE_ERRORS)

    async def _attempt(self, body: dict[str, Any], model: str) -> AsyncIterator[ProviderEvent]:
        url = f"{self.base_url}/v1/messages"
        turn = _Turn()
        stopped = False
        async with contextlib.aclosing(self.open_sse(url, body=body, headers=self._headers,
                                                     model=model)) as stream:
            async for sse in stream:
                if stopped:
                    continue
                data = self.parse_data(sse)
                if not isinstance(data, dict):
                    continue
                kind = str(data.get("type") or sse.event)
                if kind == "error":
                    raise self._stream_error(data, model)
                for event in turn.feed(kind, data):
                    yield event
                stopped = kind == "message_stop"
        if not stopped:
            raise self._error(ProviderError, f"the stream from {url} ended before "
                              "message_stop", retryable=True)
