"""HMAC request signatures on the gRPC binding, in call metadata, on a real server on
loopback with grpcio's own client: a signed call passes (unary and streaming); a stale
timestamp, a replayed nonce, a tampered request and, where a key is required, an
unsigned call are refused as UNAUTHENTICATED saying why; the nonces are the server's
one store (a replay after a restart on SQLite is refused too).

Each client call runs in a thread (`trio.to_thread`), so the test's trio loop keeps
serving while it blocks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from a2a.types import a2a_pb2, a2a_pb2_grpc

from runtime.client.grpc_signing import SigningInterceptor, grpc_signature_metadata
from runtime.client.signing import HmacKey
from runtime.grpc.signing import method_path
from runtime.http.auth import TokenEntry
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

SECRET = b"k" * 40
ALICE_KEY = HmacKey("alice-key", SECRET)
SPARE_KEY = HmacKey("spare", b"s" * 40)
AUTH = (("authorization", "Bearer tok-alice"),)
BOB = (("authorization", "Bearer tok-bob"),)


def signing(required: bool = False) -> SigningSettings:
    return SigningSettings(keys={"alice-key": SECRET, "spare": b"s" * 40}, window=300.0,
                           required=required, principals={"alice-key": "alice"},
                           required_keys=frozenset({"alice-key"}))


def config(required: bool = False, **kw: Any) -> ServerConfig:
    kw.setdefault("store", "memory")
    security = SecurityConfig(request_signing=signing(required),
                              token_entries={"tok-alice": TokenEntry("alice"),
                                             "tok-bob": TokenEntry("bob")})
    return ServerConfig(port=0, grpc_port=0, agent=scripted_agent(), security=security,
                        tokens={"tok-alice": "alice", "tok-bob": "bob"},
                        worker_tokens={"w": "worker"}, **kw)


def send_request(text: str = "echo hi") -> a2a_pb2.SendMessageRequest:
    return a2a_pb2.SendMessageRequest(message=a2a_pb2.Message(
        message_id=str(uuid.uuid4()), role=a2a_pb2.ROLE_USER,
        parts=[a2a_pb2.Part(text=text)]))


def call(server: RunningServer, method: str, req: Any, metadata: Any = (),
         key: HmacKey | None = None, clock: Any = time.time, timeout: float = 10) -> Any:
    """One call in a fresh channel (signed by an interceptor when `key` is given);
    the RpcError if it fails."""
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
        if key is not None:
            channel = grpc.intercept_channel(channel, SigningInterceptor(key, clock=clock))
        stub = a2a_pb2_grpc.A2AServiceStub(channel)
        try:
            out = getattr(stub, method)(req, metadata=metadata, timeout=timeout)
            return list(out) if method == "SendStreamingMessage" else out
        except grpc.RpcError as exc:
            return exc


async def in_thread(*args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: call(*args, **kw))


def refused(out: Any, code: grpc.StatusCode, text: str) -> None:
    assert isinstance(out, grpc.RpcError), out
    assert out.code() == code, (out.code(), out.details())
    assert text in out.details(), out.details()


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with open_server(config()) as srv:
        yield srv


async def test_a_signed_call_passes(server: RunningServer) -> None:
    with trio.fail_after(30):
        sent = await in_thread(server, "SendMessage", send_request(), AUTH, ALICE_KEY)
        assert sent.task.status.state == a2a_pb2.TASK_STATE_COMPLETED, sent
        events = await in_thread(server, "SendStreamingMessage", send_request(), AUTH,
                                 ALICE_KEY)
        assert not isinstance(events, grpc.RpcError), events
        assert events[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
        listed = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                 ALICE_KEY)
        assert len(listed.tasks) == 2
        # the signature over the wire bytes: a request with map fields and a tenant too
        req = send_request()
        req.metadata.update({"b": 1, "a": "x"})
        req.message.metadata.update({"z": [1, 2], "y": {"k": True}})
        out = await in_thread(server, "SendMessage", req, AUTH, ALICE_KEY)
        assert out.task.id, out


async def test_stale_replayed_and_tampered_calls_are_refused(server: RunningServer) -> None:
    with trio.fail_after(30):
        stale = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                ALICE_KEY, clock=lambda: time.time() - 301)
        refused(stale, grpc.StatusCode.UNAUTHENTICATED, "outside the allowed window")
        ahead = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                ALICE_KEY, clock=lambda: time.time() + 301)
        refused(ahead, grpc.StatusCode.UNAUTHENTICATED, "outside the allowed window")
        # a captured call, replayed as is
        req = send_request()
        path = method_path("SendMessage")
        captured = [*AUTH, *grpc_signature_metadata(ALICE_KEY, path, req.SerializeToString())]
        first = await in_thread(server, "SendMessage", req, captured)
        assert first.task.id, first
        replay = await in_thread(server, "SendMessage", req, captured)
        refused(replay, grpc.StatusCode.UNAUTHENTICATED, "already used")
        # the same signature on another request (a fresh nonce, so only the body differs)
        signed = [*AUTH, *grpc_signature_metadata(ALICE_KEY, path, req.SerializeToString())]
        tampered = await in_thread(server, "SendMessage", send_request("echo other"), signed)
        refused(tampered, grpc.StatusCode.UNAUTHENTICATED, "does not match")
        # ... or on another rpc: the method path is signed
        moved = [*AUTH, *grpc_signature_metadata(
            ALICE_KEY, method_path("ListTasks"), b"")]
        other = await in_thread(server, "GetExtendedAgentCard",
                                a2a_pb2.GetExtendedAgentCardRequest(), moved)
        refused(other, grpc.StatusCode.UNAUTHENTICATED, "does not match")
        unknown = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                  HmacKey("nobody", SECRET))
        refused(unknown, grpc.StatusCode.UNAUTHENTICATED, "unknown key id")


async def test_a_required_key_must_sign(server: RunningServer) -> None:
    with trio.fail_after(30):
        unsigned = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH)
        refused(unsigned, grpc.StatusCode.UNAUTHENTICATED, "must be signed with its key")
        spare = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                SPARE_KEY)
        refused(spare, grpc.StatusCode.UNAUTHENTICATED, "must be signed with its key")
        # bob has no key of his own: unsigned is fine; alice's key signs for alice only
        bob = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), BOB)
        assert not isinstance(bob, grpc.RpcError), bob
        stolen = await in_thread(server, "ListTasks", a2a_pb2.ListTasksRequest(), BOB,
                                 ALICE_KEY)
        refused(stolen, grpc.StatusCode.UNAUTHENTICATED, "another principal")


async def test_signatures_required_of_every_call() -> None:
    async with open_server(config(required=True)) as srv:
        with trio.fail_after(30):
            unsigned = await in_thread(srv, "ListTasks", a2a_pb2.ListTasksRequest(), BOB)
            refused(unsigned, grpc.StatusCode.UNAUTHENTICATED, "missing header(s)")
            signed = await in_thread(srv, "ListTasks", a2a_pb2.ListTasksRequest(), BOB,
                                     SPARE_KEY)
            assert not isinstance(signed, grpc.RpcError), signed


async def test_signatures_are_ignored_when_signing_is_off() -> None:
    cfg = ServerConfig(port=0, grpc_port=0, store="memory", agent=scripted_agent())
    async with open_server(cfg) as srv:
        with trio.fail_after(30):
            out = await in_thread(srv, "ListTasks", a2a_pb2.ListTasksRequest(), (),
                                  HmacKey("nobody", SECRET))
            assert not isinstance(out, grpc.RpcError), out


async def test_a_replay_after_a_restart_on_sqlite_is_refused(tmp_path: Path) -> None:
    req = a2a_pb2.ListTasksRequest()
    captured = [*AUTH, *grpc_signature_metadata(ALICE_KEY, method_path("ListTasks"),
                                                req.SerializeToString())]
    with trio.fail_after(30):
        async with open_server(config(store="sqlite", data_dir=tmp_path)) as srv:
            first = await in_thread(srv, "ListTasks", req, captured)
            assert not isinstance(first, grpc.RpcError), first
        async with open_server(config(store="sqlite", data_dir=tmp_path)) as srv:
            replay = await in_thread(srv, "ListTasks", req, captured)
            refused(replay, grpc.StatusCode.UNAUTHENTICATED, "already used")


async def test_a_nonce_the_store_cannot_record_is_unavailable(tmp_path: Path) -> None:
    """The SQLite file held by another process past the busy timeout (5 s): a signed
    call is refused as UNAVAILABLE on gRPC and 503 on HTTP, never let through."""
    import sqlite3

    import httpx

    from runtime.client.signing import HmacAuth

    async with open_server(config(store="sqlite", data_dir=tmp_path)) as srv:
        other = sqlite3.connect(tmp_path / "tasks.sqlite3", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        outcome: dict[str, Any] = {}

        async def over_http() -> None:
            async with httpx.AsyncClient(base_url=srv.url, auth=HmacAuth(ALICE_KEY),
                                         timeout=30) as c:
                outcome["http"] = await c.post(
                    "/", json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}},
                    headers={"Authorization": "Bearer tok-alice", "A2A-Version": "1.0"})

        async def over_grpc() -> None:
            outcome["grpc"] = await in_thread(srv, "ListTasks", a2a_pb2.ListTasksRequest(),
                                              AUTH, ALICE_KEY, timeout=30)

        try:
            with trio.fail_after(60):  # one after the other: each waits out the timeout
                await over_grpc()
                await over_http()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert outcome["http"].status_code == 503, outcome["http"].text
        assert "cannot be checked now" in outcome["http"].text
        refused(outcome["grpc"], grpc.StatusCode.UNAVAILABLE, "cannot be checked now")
        with trio.fail_after(30):  # the file free again: signed calls pass
            ok = await in_thread(srv, "ListTasks", a2a_pb2.ListTasksRequest(), AUTH,
                                 ALICE_KEY)
            assert not isinstance(ok, grpc.RpcError), ok
