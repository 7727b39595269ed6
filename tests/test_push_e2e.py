"""Push notifications over real sockets, plus HttpxPushSender at its seams.

The smoke test runs the real server and a real webhook receiver (hypercorn on
127.0.0.1, port 0) on the real clock. The sender tests use httpx's
`MockTransport` and an injected resolver: no network, no DNS.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from actors.push_delivery import PushSendError
from runtime.http.push_sender import HttpxPushSender, parse_retry_after
from runtime.server import ServerConfig, open_server

TIMEOUT = 20
A2A = {"A2A-Version": "1.0"}


# --- a webhook receiver -------------------------------------------------------------------


@attrs.frozen
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    """A minimal ASGI app that records every POST and answers 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._arrived = trio.Event()

    async def wait_for(self, n: int) -> list[Received]:
        while len(self.received) < n:
            await self._arrived.wait()
        return self.received

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(headers, json.loads(body)))
        self._arrived.set()
        self._arrived = trio.Event()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def open_receiver() -> AsyncIterator[tuple[str, Receiver]]:
    app = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    config = HyperConfig()
    config.accesslog = None
    config.graceful_timeout = 0
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker_serve(
                wrap_app(app, config.wsgi_max_body_size, None), config, sockets=sockets,
                task_status=task_status))
            yield f"http://127.0.0.1:{port}/hook", app
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


def send_message(text: str, push_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
        "params": {
            "message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                        "parts": [{"text": text}]},
            "configuration": {"taskPushNotificationConfig": push_config},
        },
    }


# --- the real-socket smoke test -------------------------------------------------------------


async def test_push_notifications_reach_a_real_webhook() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_receiver() as (hook_url, receiver), httpx.AsyncClient() as http:
            push_config = {"url": hook_url, "token": "tok-123",
                           "authentication": {"scheme": "Bearer", "credentials": "xyz"}}
            config = ServerConfig(port=0, store="memory", allow_private_push_urls=True)
            async with open_server(config) as server:
                reply = await http.post(server.url + "/", headers=A2A,
                                        json=send_message("hello push world", push_config))
                task = reply.json()["result"]["task"]
                assert task["status"]["state"] == "TASK_STATE_COMPLETED"
                received = await receiver.wait_for(6)
                await trio.sleep(0.2)  # nothing more arrives
                assert len(receiver.received) == 6

                kinds = [next(iter(r.body)) for r in received]
                assert kinds == ["task", "statusUpdate", "artifactUpdate", "artifactUpdate",
                                 "artifactUpdate", "statusUpdate"]
                assert received[0].body["task"]["id"] == task["id"]
                states = [r.body["statusUpdate"]["status"]["state"]
                          for r in received if "statusUpdate" in r.body]
                assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
                chunks = "".join(r.body["artifactUpdate"]["artifact"]["parts"][0]["text"]
                                 for r in received if "artifactUpdate" in r.body)
                assert chunks == "hello push world"
                for r in received:
                    assert r.headers["content-type"] == "application/json"
                    assert r.headers["x-a2a-notification-token"] == "tok-123"
                    assert r.headers["authorization"] == "Bearer xyz"
                record = await server.store.get_push_config(task["id"], task["id"])
                assert record is not None and record.delivered_seq == 6

            # the default server refuses a webhook on loopback when the config is created
            strict = ServerConfig(port=0, store="memory")
            async with open_server(strict) as server:
                reply = await http.post(server.url + "/", headers=A2A,
                                        json=send_message("hi", push_config))
                error = reply.json()["error"]
                assert error["code"] == -32602
                assert "127.0.0.1" in error["message"]
            assert len(receiver.received) == 6


# --- HttpxPushSender at its seams (no sockets) -----------------------------------------------


class Recorder:
    def __init__(self, response: httpx.Response | Exception) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


@asynccontextmanager
async def open_sender(response: httpx.Response | Exception, table: dict[str, list[str]],
                      ) -> AsyncIterator[tuple[HttpxPushSender, Recorder]]:
    recorder = Recorder(response)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        yield HttpxPushSender(client=client, resolver=resolver(table)), recorder


async def test_sender_pins_the_checked_address_and_keeps_the_name() -> None:
    with trio.fail_after(TIMEOUT):
        answer = httpx.Response(429, headers={"Retry-After": "12"})
        async with open_sender(answer, {"hooks.example": ["93.184.216.34"]}) as (sender, rec):
            reply = await sender.post("https://hooks.example:8443/a?b=1", b"{}",
                                      {"X-A2A-Notification-Token": "t"})
        assert (reply.status, reply.retry_after) == (429, 12.0)
        [request] = rec.requests
        assert str(request.url) == "https://93.184.216.34:8443/a?b=1"
        assert request.headers["host"] == "hooks.example:8443"
        assert request.extensions["sni_hostname"] == "hooks.example"
        assert request.headers["x-a2a-notification-token"] == "t"


@pytest.mark.parametrize("url, table", [
    ("http://127.0.0.1/hook", {}),
    ("http://[::1]/hook", {}),
    ("http://169.254.169.254/latest", {}),
    ("http://10.1.2.3/hook", {}),
    ("http://mixed.example/hook", {"mixed.example": ["93.184.216.34", "192.168.1.5"]}),
    ("http://mapped.example/hook", {"mapped.example": ["::ffff:127.0.0.1"]}),
])
async def test_sender_refuses_non_public_destinations(url: str, table: dict[str, list[str]],
                                                      ) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_sender(httpx.Response(200), table) as (sender, rec):
            with pytest.raises(PushSendError, match="allow-private-push-urls") as info:
                await sender.post(url, b"{}", {})
        assert info.value.permanent
        assert rec.requests == []


async def test_sender_refuses_localhost_by_name() -> None:
    """The default resolver (getaddrinfo; localhost needs no network)."""
    with trio.fail_after(TIMEOUT):
        async with HttpxPushSender() as sender:
            with pytest.raises(PushSendError, match="non-public address") as info:
                await sender.post("http://localhost:9/hook", b"{}", {})
        assert info.value.permanent


async def test_sender_allows_private_when_told_and_maps_errors() -> None:
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(httpx.Response(302, headers={"Location": "http://10.0.0.1/"}))
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            sender = HttpxPushSender(client=client, allow_private=True)
            reply = await sender.post("http://127.0.0.1:9/hook", b"{}", {})
            assert reply.status == 302  # redirects are answers, never followed
            assert len(recorder.requests) == 1
            recorder.response = httpx.ConnectError("refused")
            with pytest.raises(PushSendError, match="ConnectError") as info:
                await sender.post("http://127.0.0.1:9/hook", b"{}", {})
            assert not info.value.permanent
            await sender.aclose()  # not its client: left open for its owner
            assert not client.is_closed


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None
