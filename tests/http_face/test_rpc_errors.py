"""Bad input on the JSON-RPC endpoint: precise errors, nothing crashes, nothing stored changes."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from runtime.server import RunningServer, ServerConfig, open_server
from tests.conftest import Rpc, user_message

H10 = {"A2A-Version": "1.0", "Content-Type": "application/json"}


async def post(client: httpx.AsyncClient, body: bytes | str, headers: dict[str, str] | None = None
               ) -> httpx.Response:
    return await client.post("/", content=body, headers=headers if headers is not None else H10)


async def assert_store_intact(rpc: Rpc, task_id: str) -> None:
    task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    listed = await rpc.call("ListTasks", {})
    assert [t["id"] for t in listed["tasks"]] == [task_id]


@pytest.fixture
async def seeded(rpc: Rpc) -> str:
    result = await rpc.call("SendMessage", {"message": user_message("echo keep me")})
    return result["task"]["id"]


async def test_malformed_json(client: httpx.AsyncClient, rpc: Rpc, seeded: str) -> None:
    with trio.fail_after(10):
        r = await post(client, b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert r.status_code == 200
        body = r.json()
        assert body["error"]["code"] == -32700
        assert body["id"] is None
        await assert_store_intact(rpc, seeded)


async def test_non_json_content_type(client: httpx.AsyncClient, rpc: Rpc, seeded: str) -> None:
    with trio.fail_after(10):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "GetTask",
                           "params": {"id": seeded}})
        r = await post(client, body, {"A2A-Version": "1.0", "Content-Type": "text/plain"})
        err = r.json()["error"]
        assert err["code"] == -32005
        assert "text/plain" in err["message"]
        await assert_store_intact(rpc, seeded)


@pytest.mark.parametrize("params, field", [
    ({"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}}, "params.message.messageId"),
    ({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{}]}},
     "params.message.parts[0]"),
    ({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a", "url": "b"}]}},
     "params.message.parts[0]"),
    ({"message": {"messageId": "m", "role": "ROLE_BOSS", "parts": [{"text": "x"}]}},
     "params.message.role"),
    ({"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}}, "message.parts"),
    ({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"raw": "not base64!"}]}},
     "params.message.parts[0].raw"),
    ({}, "params.message"),
])
async def test_bad_params_name_the_field(rpc: Rpc, seeded: str, params: dict[str, object],
                                         field: str) -> None:
    with trio.fail_after(10):
        err = await rpc.error("SendMessage", params)
        assert err["code"] == -32602
        assert field in err["message"], err["message"]
        assert err["data"][0]["reason"] == "INVALID_PARAMS"
        await assert_store_intact(rpc, seeded)


async def test_unknown_method(rpc: Rpc, rpc03: Rpc) -> None:
    with trio.fail_after(10):
        err = await rpc.error("tasks/explode", {})
        assert err["code"] == -32601
        # a 0.3 name sent as 1.0 says which header to use
        hint = await rpc.error("message/send", {})
        assert hint["code"] == -32601 and "omit the A2A-Version header" in hint["message"]
        hint03 = await rpc03.error("SendMessage", {})
        assert hint03["code"] == -32601 and "A2A-Version: 1.0" in hint03["message"]


async def test_unsupported_version(client: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": {"id": "x"}})
        r = await post(client, body, {"A2A-Version": "2.5", "Content-Type": "application/json"})
        err = r.json()
        assert err["id"] == 7
        assert err["error"]["code"] == -32009
        assert "2.5" in err["error"]["message"]
        r = await client.post("/?A2A-Version=9.9", content=body,
                              headers={"Content-Type": "application/json"})
        assert r.json()["error"]["code"] == -32009
        r = await client.post("/?A2A-Version=1.0", content=body,
                              headers={"Content-Type": "application/json"})
        assert r.json()["error"]["code"] == -32001  # 1.0 via query, task unknown


async def test_body_over_limit_is_413() -> None:
    config = ServerConfig(port=0, store="memory", max_body=2048)
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(10):
            big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
                "message": user_message("x" * 5000)}})
            r = await post(c, big)
            assert r.status_code == 413
            assert "2048" in r.json()["error"]["message"]
            ok = await post(c, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "SendMessage",
                                           "params": {"message": user_message("small")}}))
            assert ok.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_batch(client: httpx.AsyncClient, seeded: str) -> None:
    with trio.fail_after(10):
        batch = [
            {"jsonrpc": "2.0", "id": "a", "method": "GetTask", "params": {"id": seeded}},
            {"jsonrpc": "2.0", "method": "GetTask", "params": {"id": seeded}},  # notification
            {"jsonrpc": "2.0", "id": "b", "method": "Nope"},
            {"jsonrpc": "1.0", "id": "c", "method": "GetTask"},
            {"jsonrpc": "2.0", "id": "d", "method": "SendStreamingMessage",
             "params": {"message": user_message("x")}},
        ]
        r = await post(client, json.dumps(batch))
        out = r.json()
        assert [o["id"] for o in out] == ["a", "b", "c", "d"]
        assert out[0]["result"]["id"] == seeded
        assert out[1]["error"]["code"] == -32601
        assert out[2]["error"]["code"] == -32600
        assert out[3]["error"]["code"] == -32600
        empty = await post(client, "[]")
        assert empty.json()["error"]["code"] == -32600
        only_notes = await post(client, json.dumps([batch[1], batch[1]]))
        assert only_notes.status_code == 204 and only_notes.content == b""


async def test_notification_gets_no_response(client: httpx.AsyncClient, rpc: Rpc) -> None:
    with trio.fail_after(10):
        note = {"jsonrpc": "2.0", "method": "SendMessage",
                "params": {"message": user_message("echo quiet")}}
        r = await post(client, json.dumps(note))
        assert r.status_code == 204 and r.content == b""
        listed = await rpc.call("ListTasks", {})
        assert listed["totalSize"] == 1  # the notification still did its work


async def test_errors_in_0_3_have_no_error_info(rpc03: Rpc) -> None:
    with trio.fail_after(10):
        err = await rpc03.error("tasks/get", {"id": "missing"})
    assert err["code"] == -32001
    assert "data" not in err


async def test_server_survives_garbage(server: RunningServer, client: httpx.AsyncClient,
                                       rpc: Rpc) -> None:
    with trio.fail_after(20):
        for body in [b"\xff\xfe", b"null", b"42", b'"x"', b"{}", b'{"jsonrpc":"2.0"}',
                     b'{"jsonrpc":"2.0","id":{},"method":"GetTask"}',
                     b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}',
                     b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":5}}',
                     b"[" * 100000]:
            r = await post(client, body)
            assert r.status_code in (200, 413), body
            assert "error" in r.json()
        ok = await rpc.call("SendMessage", {"message": user_message("echo still alive")})
        assert ok["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_chunked_body_over_limit_is_413() -> None:
    """Without a Content-Length the limit is enforced while the body streams in."""
    config = ServerConfig(port=0, store="memory", max_body=1024)
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 512

        with trio.fail_after(10):
            r = await c.post("/", content=chunks(), headers=H10)
            assert r.status_code == 413
            assert "1024" in r.json()["error"]["message"]


async def test_a_body_sent_in_pieces_is_read_whole(server: RunningServer) -> None:
    """A body with a Content-Length that arrives in several writes, slowly, is read
    up to its length and answered once; the connection then serves the next request."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "SendMessage",
                       "params": {"message": user_message("echo in pieces")}}).encode()
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nA2A-Version: 1.0\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(server.host, server.port)
        async with stream:
            for request_id in (7, 8):
                piece = body.replace(b'"id": 7', f'"id": {request_id}'.encode())
                await stream.send_all(head + piece[:10])
                await trio.sleep(0.05)
                await stream.send_all(piece[10:40])
                await trio.sleep(0.05)
                await stream.send_all(piece[40:])
                reply = b""
                while b"\r\n\r\n" not in reply:
                    reply += await stream.receive_some(65536)
                header, _, rest = reply.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(rest) < length:
                    rest += await stream.receive_some(65536)
                assert header.startswith(b"HTTP/1.1 200")
                answer = json.loads(rest)
                assert answer["id"] == request_id
                assert answer["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("where", ["message", "request"])
async def test_bad_routing_metadata_is_32602_naming_the_key(rpc: Rpc, seeded: str,
                                                            where: str) -> None:
    metadata = {"trio-a2a/capabilities": 5}
    params: dict[str, object] = {"message": user_message("echo routed")}
    if where == "message":
        params["message"] = {**params["message"], "metadata": metadata}  # type: ignore[dict-item]
    else:
        params["metadata"] = metadata
    with trio.fail_after(10):
        err = await rpc.error("SendMessage", params)
        assert err["code"] == -32602
        path = "params.message.metadata" if where == "message" else "params.metadata"
        assert f"{path}['trio-a2a/capabilities'] must be a string or a list of strings" \
            in err["message"]
        await assert_store_intact(rpc, seeded)
