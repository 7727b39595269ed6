"""The built-in echo provider: deterministic, offline, scriptable."""

from __future__ import annotations

import pytest
import trio

from runtime.providers import (
    ChatMessage,
    Done,
    EchoProvider,
    Provider,
    ProviderError,
    ProviderStreamBroken,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    UnknownModelError,
    Usage,
)
from tests.providers.fake_http import collect


async def test_echoes_the_last_user_message_word_by_word() -> None:
    p = EchoProvider()
    assert isinstance(p, Provider)
    messages = [ChatMessage("system", "be nice"), ChatMessage("user", "first one"),
                ChatMessage("assistant", "ok"), ChatMessage("user", "hello  big world")]
    with trio.fail_after(5):
        events = await collect(p.stream_chat(model="echo", messages=messages))
        assert await p.list_models() == ["echo"]
    assert events == [TextDelta("hello  "), TextDelta("big "), TextDelta("world"),
                      Usage(input_tokens=8, output_tokens=3), Done("end_turn")]
    assert p.requests[0].messages == tuple(messages)


async def test_max_tokens_cuts_the_echo() -> None:
    p = EchoProvider()
    with trio.fail_after(5):
        events = await collect(p.stream_chat(model="echo", messages=[
            ChatMessage("user", "one two three four")], max_tokens=2))
    assert events == [TextDelta("one "), TextDelta("two "), Usage(4, 2), Done("max_tokens")]


async def test_scripted_turns_then_echo() -> None:
    call = ToolCall("c1", "read_file", {"path": "a.txt"})
    p = EchoProvider(script=[[TextDelta("Reading."), ToolCallEvent(call)]])
    tools = [ToolSpec("read_file", "Read a file")]
    with trio.fail_after(5):
        first = await collect(p.stream_chat(model="echo", messages=[ChatMessage("user", "go")],
                                            tools=tools))
        second = await collect(p.stream_chat(model="echo", messages=[
            ChatMessage("user", "go"), ChatMessage("assistant", "Reading.", (call,)),
            ChatMessage("tool", "contents", tool_call_id="c1")]))
    assert first == [TextDelta("Reading."), ToolCallEvent(call), Usage(1, 1), Done("tool_use")]
    assert second == [TextDelta("go"), Usage(3, 1), Done("end_turn")]
    assert p.requests[0].tools == tuple(tools)


async def test_scripted_failures() -> None:
    p = EchoProvider(script=[[ProviderError("down", status=503, retryable=True)],
                             [TextDelta("half"), ProviderError("cut", retryable=True)]])
    messages = [ChatMessage("user", "x")]
    with trio.fail_after(5):
        with pytest.raises(ProviderError, match="down") as exc:
            await collect(p.stream_chat(model="echo", messages=messages))
        assert type(exc.value) is ProviderError
        with pytest.raises(ProviderStreamBroken) as broken:
            await collect(p.stream_chat(model="echo", messages=messages))
    assert broken.value.partial_text == "half"


async def test_unknown_model() -> None:
    p = EchoProvider(models=["echo", "echo-2"])
    with trio.fail_after(5), pytest.raises(UnknownModelError, match="echo, echo-2"):
        await collect(p.stream_chat(model="gpt", messages=[ChatMessage("user", "x")]))
