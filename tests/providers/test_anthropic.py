"""The Anthropic provider against a fake Messages API server on loopback."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

from runtime.providers import (
    AnthropicProvider,
    ChatMessage,
    Done,
    ProviderAuthError,
    ProviderError,
    ProviderStreamBroken,
    RetryPolicy,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    UnknownModelError,
    Usage,
)
from tests.providers.fake_http import Received, Reply, collect, open_fake_server, replies, sse

KEY = "sk-ant-test-abcdef"
HELLO = [ChatMessage("user", "hello")]


def ev(kind: str, **data: Any) -> bytes:
    return sse({"type": kind, **data}, event=kind)


def start(input_tokens: int = 10, **cache: int) -> bytes:
    return ev("message_start", message={
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x",
        "stop_reason": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1, **cache}})


def text_block(index: int, *pieces: str) -> list[bytes]:
    return [ev("content_block_start", index=index, content_block={"type": "text", "text": ""}),
            *(ev("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
              for p in pieces),
            ev("content_block_stop", index=index)]


def stop(reason: str, output_tokens: int) -> list[bytes]:
    return [ev("message_delta", delta={"stop_reason": reason, "stop_sequence": None},
               usage={"output_tokens": output_tokens}),
            ev("message_stop")]


def text_stream(*pieces: str) -> list[bytes]:
    return [start(), ev("ping"), *text_block(0, *pieces), *stop("end_turn", 3)]


def provider(url: str, **kw: Any) -> AnthropicProvider:
    kw.setdefault("rng", random.Random(3))
    return AnthropicProvider(base_url=url, api_key=KEY, **kw)


async def test_streams_text_with_usage_and_shapes_the_request() -> None:
    stream = [start(7, cache_read_input_tokens=100, cache_creation_input_tokens=20),
              ev("ping"), *text_block(0, "Hi", " there"), *stop("end_turn", 4)]
    history = [ChatMessage("system", "You are terse."), ChatMessage("user", "list and read"),
               ChatMessage("assistant", "Sure.", (ToolCall("tu_1", "list_dir", {}),
                                                  ToolCall("tu_2", "read_file", {"path": "x"}))),
               ChatMessage("tool", "a\nb", tool_call_id="tu_1"),
               ChatMessage("tool", "refused by policy", tool_call_id="tu_2", is_error=True),
               ChatMessage("user", "thanks"), ChatMessage("system", "Answer in English.")]
    tools = [ToolSpec("list_dir", "List a directory")]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = provider(srv.url + "/v1/")  # a trailing /v1 is tolerated
            events = await collect(p.stream_chat(model="claude-x", messages=history, tools=tools))
            await p.aclose()
    assert events == [TextDelta("Hi"), TextDelta(" there"), Usage(127, 4), Done("end_turn")]
    [req] = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.headers["x-api-key"] == KEY and req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.json() == {
        "model": "claude-x", "stream": True, "max_tokens": 4096,
        "system": "You are terse.\n\nAnswer in English.",
        "tools": [{"name": "list_dir", "description": "List a directory",
                   "input_schema": {"type": "object", "properties": {}}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list and read"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "tu_1", "name": "list_dir", "input": {}},
                {"type": "tool_use", "id": "tu_2", "name": "read_file", "input": {"path": "x"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "a\nb"},
                {"type": "tool_result", "tool_use_id": "tu_2", "content": "refused by policy",
                 "is_error": True},
                {"type": "text", "text": "thanks"}]}]}


async def test_tool_use_with_input_split_across_deltas() -> None:
    def tool(index: int, id: str, name: str, *parts: str) -> list[bytes]:
        return [ev("content_block_start", index=index, content_block={
                    "type": "tool_use", "id": id, "name": name, "input": {}}),
                *(ev("content_block_delta", index=index,
                     delta={"type": "input_json_delta", "partial_json": p}) for p in parts),
                ev("content_block_stop", index=index)]

    stream = [start(), *text_block(0, "Reading."),
              *tool(1, "toolu_1", "read_file", "", '{"pa', 'th": "a', '.txt"}'),
              *tool(2, "toolu_2", "list_dir"),
              *tool(3, "toolu_3", "grep", '{"pattern": '),
              *stop("tool_use", 30)]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = provider(srv.url, default_max_tokens=100)
            events = await collect(p.stream_chat(model="claude-x", messages=HELLO,
                                                 max_tokens=None))
            await p.aclose()
    assert events == [
        TextDelta("Reading."),
        ToolCallEvent(ToolCall("toolu_1", "read_file", {"path": "a.txt"})),
        ToolCallEvent(ToolCall("toolu_2", "list_dir", {})),
        ToolCallEvent(ToolCall("toolu_3", "grep",
                               {"__invalid_json_arguments__": '{"pattern": '})),
        Usage(10, 30), Done("tool_use")]
    assert srv.requests[0].json()["max_tokens"] == 100


async def test_unauthorized() -> None:
    body = {"type": "error", "error": {"type": "authentication_error",
                                       "message": "invalid x-api-key"}}
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json(body, 401))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderAuthError, match="invalid x-api-key") as exc:
                await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert exc.value.status == 401 and len(srv.requests) == 1


async def test_unknown_model() -> None:
    body = {"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json(body, 404))) as srv:
            p = provider(srv.url)
            with pytest.raises(UnknownModelError, match="model: nope"):
                await collect(p.stream_chat(model="nope", messages=HELLO))
            await p.aclose()
    assert len(srv.requests) == 1


async def test_overloaded_529_waits_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with trio.fail_after(60):
        async with open_fake_server(replies(Reply.json(body, 529, [("retry-after", "4")]),
                                            Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url)
            events = await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert events[0] == TextDelta("ok")
    first, second = srv.requests
    assert second.at - first.at == 4.0


async def test_error_event_before_output_is_retried(autojump_clock: trio.testing.MockClock
                                                    ) -> None:
    overloaded = Reply(chunks=[start(), ev("error", error={"type": "overloaded_error",
                                                           "message": "Overloaded"})])
    policy = RetryPolicy(base=2.0, jitter=0.0)
    with trio.fail_after(60):
        async with open_fake_server(replies(overloaded, Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url, retry=policy)
            events = await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert events[-1] == Done("end_turn")
    first, second = srv.requests
    assert second.at - first.at == 2.0


async def test_error_event_after_output_breaks_the_stream() -> None:
    stream = [start(), ev("content_block_start", index=0, content_block={"type": "text",
                                                                          "text": ""}),
              ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Part"}),
              ev("error", error={"type": "overloaded_error", "message": "Overloaded"})]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderStreamBroken, match="overloaded_error") as exc:
                await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert exc.value.partial_text == "Part" and len(srv.requests) == 1


async def test_disconnect_mid_stream_keeps_partial_text() -> None:
    stream = [start(), ev("content_block_start", index=0, content_block={"type": "text",
                                                                          "text": ""}),
              ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Once "}),
              ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "upon"})]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream, cut=True))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderStreamBroken) as exc:
                await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert exc.value.partial_text == "Once upon" and len(srv.requests) == 1


async def test_5xx_exhausts_retries(autojump_clock: trio.testing.MockClock) -> None:
    body = {"type": "error", "error": {"type": "api_error", "message": "Internal"}}
    with trio.fail_after(60):
        async with open_fake_server(replies(Reply.json(body, 500))) as srv:
            p = provider(srv.url, retry=RetryPolicy(max_retries=1))
            with pytest.raises(ProviderError, match="Internal") as exc:
                await collect(p.stream_chat(model="claude-x", messages=HELLO))
            await p.aclose()
    assert exc.value.retryable and len(srv.requests) == 2


async def test_list_models_follows_pages() -> None:
    async def handler(req: Received) -> Reply:
        assert (req.method, req.path) == ("GET", "/v1/models")
        assert req.headers["x-api-key"] == KEY
        if "after_id" not in req.target:
            return Reply.json({"data": [{"id": "claude-a", "type": "model"}],
                               "has_more": True, "first_id": "claude-a", "last_id": "claude-a"})
        assert "after_id=claude-a" in req.target
        return Reply.json({"data": [{"id": "claude-b", "type": "model"}], "has_more": False,
                           "first_id": "claude-b", "last_id": "claude-b"})

    with trio.fail_after(10):
        async with open_fake_server(handler) as srv:
            p = provider(srv.url)
            assert await p.list_models() == ["claude-a", "claude-b"]
            await p.aclose()
    assert len(srv.requests) == 2
