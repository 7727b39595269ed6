"""The OpenAI-compatible provider against a fake Chat Completions server on loopback."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest
import trio
import trio.testing

from runtime.providers import (
    INVALID_ARGUMENTS_KEY,
    ChatMessage,
    Done,
    OpenAICompatProvider,
    ProviderAuthError,
    ProviderError,
    ProviderStreamBroken,
    RetryPolicy,
    TextDelta,
    Timeouts,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    UnknownModelError,
    Usage,
)
from tests.providers.fake_http import Received, Reply, collect, open_fake_server, replies, sse

KEY = "sk-test-0123456789"
HELLO = [ChatMessage("user", "hello")]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                            "created": 0, "model": "m", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    body["usage"] = usage
    return sse(body)


def text_stream(*pieces: str, usage: tuple[int, int] = (5, 2)) -> list[bytes]:
    return [chunk({"role": "assistant", "content": ""}),
            *(chunk({"content": p}) for p in pieces),
            chunk({}, finish="stop"),
            chunk(usage={"prompt_tokens": usage[0], "completion_tokens": usage[1],
                         "total_tokens": sum(usage)}),
            sse("[DONE]")]


def provider(url: str, **kw: Any) -> OpenAICompatProvider:
    kw.setdefault("retry", RetryPolicy(max_retries=3, base=1.0, jitter=0.2))
    kw.setdefault("rng", random.Random(7))
    return OpenAICompatProvider(base_url=f"{url}/v1", api_key=KEY, **kw)


async def test_streams_text_usage_and_done() -> None:
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=text_stream("Hel", "lo", "!")))) as srv:
            p = provider(srv.url, max_tokens_field="max_completion_tokens")
            tools = [ToolSpec("read_file", "Read a file", {"type": "object", "properties": {
                "path": {"type": "string"}}, "required": ["path"]})]
            history = [ChatMessage("system", "be brief"), ChatMessage("user", "read a"),
                       ChatMessage("assistant", "", (ToolCall("c1", "read_file", {"path": "a"}),)),
                       ChatMessage("tool", "contents", tool_call_id="c1"),
                       ChatMessage("user", "hello")]
            events = await collect(p.stream_chat(model="m", messages=history, tools=tools,
                                                 max_tokens=50))
            await p.aclose()
    assert events == [TextDelta("Hel"), TextDelta("lo"), TextDelta("!"), Usage(5, 2),
                      Done("end_turn")]
    [req] = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert body["tools"] == [{"type": "function", "function": {
        "name": "read_file", "description": "Read a file", "parameters": tools[0].parameters}}]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "read a"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "a"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "contents"},
        {"role": "user", "content": "hello"}]


async def test_tool_call_arguments_split_across_chunks() -> None:
    def call(index: int, args: str, **first: str) -> dict[str, Any]:
        fn: dict[str, str] = {"arguments": args}
        if "name" in first:
            fn["name"] = first["name"]
        part: dict[str, Any] = {"index": index, "function": fn}
        if "id" in first:
            part.update(id=first["id"], type="function")
        return {"tool_calls": [part]}

    stream = [chunk({"role": "assistant", "content": "Let me look."}),
              chunk(call(0, "", id="call_a", name="read_file")),
              chunk(call(0, '{"pa')),
              chunk(call(1, '{"path": ', id="call_b", name="write_file")),
              chunk(call(0, 'th": "a.txt"}')),
              chunk(call(1, '"b.txt", "content": "x\\ny"}')),
              chunk(call(2, "{not json", id="call_c", name="grep")),
              chunk(call(3, "", id="call_d", name="list_dir")),
              chunk({}, finish="tool_calls"),
              chunk(usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
              sse("[DONE]")]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = provider(srv.url)
            events = await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert events == [
        TextDelta("Let me look."),
        ToolCallEvent(ToolCall("call_a", "read_file", {"path": "a.txt"})),
        ToolCallEvent(ToolCall("call_b", "write_file", {"path": "b.txt", "content": "x\ny"})),
        ToolCallEvent(ToolCall("call_c", "grep", {INVALID_ARGUMENTS_KEY: "{not json"})),
        ToolCallEvent(ToolCall("call_d", "list_dir", {})),
        Usage(9, 4), Done("tool_use")]
    assert events[3].call.invalid_arguments == "{not json"
    assert events[1].call.invalid_arguments is None


async def test_tool_calls_without_ids_and_a_stop_finish_reason() -> None:
    """Some local servers omit ids, send arguments as an object and finish with "stop"."""
    stream = [chunk({"tool_calls": [{"index": 0, "function": {"name": "glob",
                                                             "arguments": {"pattern": "*.py"}}}]}),
              chunk({}, finish="stop"), sse("[DONE]")]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = OpenAICompatProvider(base_url=srv.url, include_usage=False)
            events = await collect(p.stream_chat(model="llama", messages=HELLO))
            await p.aclose()
    assert events == [ToolCallEvent(ToolCall("call_0", "glob", {"pattern": "*.py"})),
                      Done("tool_use")]
    [req] = srv.requests
    assert "authorization" not in req.headers and "stream_options" not in req.json()


async def test_unauthorized_is_an_auth_error_without_the_key() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json(body, 401))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderAuthError) as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert exc.value.status == 401 and not exc.value.retryable
    assert KEY not in str(exc.value) and "Incorrect API key provided: ***" in str(exc.value)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("status,body", [
    (404, {"error": {"message": "The model `nope` does not exist", "type": "NotFoundError"}}),
    (400, {"error": {"message": "bad", "code": "model_not_found"}}),
    (404, {"error": "model \"nope\" not found, try pulling it first"}),
])
async def test_unknown_model(status: int, body: dict[str, Any]) -> None:
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json(body, status))) as srv:
            p = provider(srv.url)
            with pytest.raises(UnknownModelError, match="'nope' is not served"):
                await collect(p.stream_chat(model="nope", messages=HELLO))
            await p.aclose()
    assert len(srv.requests) == 1


async def test_other_client_errors_are_not_retried() -> None:
    body = {"error": {"message": "messages: field required", "type": "invalid_request_error"}}
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json(body, 400))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderError, match="messages: field required") as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert type(exc.value) is ProviderError and exc.value.status == 400
    assert not exc.value.retryable and len(srv.requests) == 1


async def test_429_waits_retry_after_then_succeeds(autojump_clock: trio.testing.MockClock
                                                   ) -> None:
    limited = Reply.json({"error": {"message": "slow down", "type": "rate_limit_error"}}, 429,
                         headers=[("retry-after", "2")])
    with trio.fail_after(60):
        async with open_fake_server(replies(limited, Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url)
            events = await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert events[0] == TextDelta("ok")
    first, second = srv.requests
    assert second.at - first.at == 2.0


async def test_retry_after_as_an_http_date(autojump_clock: trio.testing.MockClock) -> None:
    limited = Reply.json({"error": {"message": "busy"}}, 503, headers=[
        ("date", "Wed, 21 Oct 2026 07:28:00 GMT"),
        ("retry-after", "Wed, 21 Oct 2026 07:28:03 GMT")])
    with trio.fail_after(60):
        async with open_fake_server(replies(limited, Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url)
            await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    first, second = srv.requests
    assert second.at - first.at == 3.0


async def test_5xx_retried_with_seeded_backoff(autojump_clock: trio.testing.MockClock) -> None:
    broken = Reply.json({"error": {"message": "boom", "type": "server_error"}}, 500)
    policy = RetryPolicy(max_retries=3, base=1.0, factor=2.0, jitter=0.2)
    with trio.fail_after(60):
        async with open_fake_server(replies(broken, broken,
                                            Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url, retry=policy, rng=random.Random(42))
            events = await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert events[-1] == Done("end_turn")
    rng = random.Random(42)
    expected = [policy.backoff(1, rng), policy.backoff(2, rng)]
    at = [r.at for r in srv.requests]
    assert [b - a for a, b in zip(at, at[1:], strict=False)] == pytest.approx(expected,
                                                                              abs=1e-9)
    assert 0.8 <= expected[0] <= 1.2 and 1.6 <= expected[1] <= 2.4


async def test_gives_up_after_max_retries(autojump_clock: trio.testing.MockClock) -> None:
    broken = Reply.json({"error": {"message": "overloaded"}}, 503)
    with trio.fail_after(60):
        async with open_fake_server(replies(broken)) as srv:
            p = provider(srv.url, retry=RetryPolicy(max_retries=2))
            with pytest.raises(ProviderError, match="overloaded .gave up after 3 attempts") as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert exc.value.status == 503 and exc.value.retryable
    assert len(srv.requests) == 3


async def test_a_long_retry_after_is_not_waited_for(autojump_clock: trio.testing.MockClock
                                                    ) -> None:
    quota = Reply.json({"error": {"message": "daily quota"}}, 429,
                       headers=[("retry-after", "3600")])
    with trio.fail_after(60):
        async with open_fake_server(replies(quota)) as srv:
            p = provider(srv.url)
            start = trio.current_time()
            with pytest.raises(ProviderError) as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            assert trio.current_time() == start
            await p.aclose()
    assert exc.value.retry_after == 3600 and len(srv.requests) == 1


async def test_insufficient_quota_is_not_retried() -> None:
    quota = Reply.json({"error": {"message": "You exceeded your quota",
                                  "code": "insufficient_quota"}}, 429)
    with trio.fail_after(10):
        async with open_fake_server(replies(quota)) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderError, match="quota") as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert not exc.value.retryable and len(srv.requests) == 1


async def test_disconnect_mid_stream_keeps_partial_text() -> None:
    cut = Reply(chunks=[chunk({"content": "The answer "}), chunk({"content": "is"})], cut=True)
    with trio.fail_after(10):
        async with open_fake_server(replies(cut, Reply(chunks=text_stream("never")))) as srv:
            p = provider(srv.url)
            seen: list[Any] = []
            with pytest.raises(ProviderStreamBroken) as exc:
                async for event in p.stream_chat(model="m", messages=HELLO):
                    seen.append(event)
            await p.aclose()
    assert seen == [TextDelta("The answer "), TextDelta("is")]
    assert exc.value.partial_text == "The answer is" and not exc.value.retryable
    assert len(srv.requests) == 1  # never replayed


async def test_disconnect_before_any_output_is_retried(autojump_clock: trio.testing.MockClock
                                                       ) -> None:
    cut = Reply(chunks=[chunk({"role": "assistant", "content": ""})], cut=True)
    with trio.fail_after(60):
        async with open_fake_server(replies(cut, Reply(chunks=text_stream("ok")))) as srv:
            p = provider(srv.url)
            events = await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert events[0] == TextDelta("ok") and len(srv.requests) == 2


async def test_a_clean_end_without_a_finish_is_broken() -> None:
    truncated = Reply(chunks=[chunk({"content": "half"})])  # ends cleanly, no finish, no [DONE]
    with trio.fail_after(10):
        async with open_fake_server(replies(truncated)) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderStreamBroken, match="ended before the turn finished") as e:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert e.value.partial_text == "half"


async def test_read_timeout_mid_stream(autojump_clock: trio.testing.MockClock) -> None:
    stalled = Reply(chunks=[chunk({"content": "thinking"})], hang=True)
    with trio.fail_after(60):
        async with open_fake_server(replies(stalled)) as srv:
            p = provider(srv.url, timeouts=Timeouts(read=5.0))
            with pytest.raises(ProviderStreamBroken, match="read timeout") as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            failed_at = trio.current_time()
            await p.aclose()
    assert exc.value.partial_text == "thinking"
    assert failed_at - srv.requests[0].at == pytest.approx(5.0)


async def test_error_chunk_mid_stream() -> None:
    stream = [chunk({"content": "par"}),
              sse({"error": {"message": "upstream died", "code": 502}})]
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply(chunks=stream))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderStreamBroken, match="upstream died") as exc:
                await collect(p.stream_chat(model="m", messages=HELLO))
            await p.aclose()
    assert exc.value.partial_text == "par"


async def test_connection_refused_is_retryable(autojump_clock: trio.testing.MockClock) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    p = provider(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=1))
    with trio.fail_after(60), pytest.raises(ProviderError, match="cannot connect") as exc:
        await collect(p.stream_chat(model="m", messages=HELLO))
    await p.aclose()
    assert exc.value.retryable and exc.value.status is None


async def test_list_models() -> None:
    async def handler(req: Received) -> Reply:
        assert (req.method, req.path) == ("GET", "/v1/models")
        return Reply.json({"object": "list", "data": [
            {"id": "gpt-x", "object": "model"}, {"id": "llama3.2:1b", "object": "model"}]})

    with trio.fail_after(10):
        async with open_fake_server(handler) as srv:
            p = provider(srv.url)
            assert await p.list_models() == ["gpt-x", "llama3.2:1b"]
            await p.aclose()
    assert srv.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_list_models_auth_failure() -> None:
    with trio.fail_after(10):
        async with open_fake_server(replies(Reply.json({"error": "no"}, 403))) as srv:
            p = provider(srv.url)
            with pytest.raises(ProviderAuthError):
                await p.list_models()
            await p.aclose()


async def test_cancellation_is_not_turned_into_an_error(autojump_clock: trio.testing.MockClock
                                                        ) -> None:
    stalled = Reply(chunks=[chunk({"content": "a"})], hang=True)
    with trio.fail_after(60):
        async with open_fake_server(replies(stalled)) as srv:
            p = provider(srv.url)
            seen: list[Any] = []
            with trio.move_on_after(3) as scope:
                async with contextlib.aclosing(p.stream_chat(model="m", messages=HELLO)) as s:
                    async for event in s:
                        seen.append(event)
            await p.aclose()
    assert scope.cancelled_caught and seen == [TextDelta("a")]
    assert len(srv.requests) == 1
