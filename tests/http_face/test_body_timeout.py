"""A JSON-RPC request whose body stalls is answered 408 once the body deadline
passes (runtime.http.jsonrpc.BODY_TIMEOUT, shortened here), and the connection closes."""

from __future__ import annotations

import json

import pytest
import trio

import runtime.http.jsonrpc as jsonrpc
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.http_face.wire import read_answer, request_head, wait_closed


async def test_a_stalled_body_gets_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonrpc, "BODY_TIMEOUT", 0.3)
    async with open_server(ServerConfig(port=0, store="memory", agent=scripted_agent())) as srv:
        stream = await trio.open_tcp_stream(srv.host, srv.port)
        try:
            await stream.send_all(request_head("POST", "/", Content_Type="application/json",
                                               Content_Length=100) + b'{"jsonrpc":')
            with trio.fail_after(5):
                answer = await read_answer(stream)
                await wait_closed(stream)
        finally:
            await stream.aclose()
    assert answer.status == 408
    assert json.loads(answer.body)["error"]["status"] == "DEADLINE_EXCEEDED"
    assert "0.3 s" in json.loads(answer.body)["error"]["message"]
