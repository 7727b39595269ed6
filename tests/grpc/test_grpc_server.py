"""The gRPC binding's edges with grpcio's own (threaded) client: metadata and errors
the SDK never sends, back-pressure, the card, the flags, start and stop.

Each client call runs in a thread (`trio.to_thread`), so the test's trio loop keeps
serving while it blocks.
"""

from __future__ import annotations

import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
import trio
from a2a.types import a2a_pb2, a2a_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.models import ListTasksRequest
from protocol.states import is_terminal
from runtime.cli import build_parser, server_config
from runtime.grpc.bridge import BridgeStatistics
from runtime.grpc.child import GrpcChild, grpc_url
from runtime.grpc.codec import STATUS_DETAILS_KEY
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent

CHUNK = 64 * 1024
CHUNKS = 100


def config(controls: Controls | None = None, **kw: Any) -> ServerConfig:
    kw.setdefault("agent", scripted_agent(controls or Controls()))
    kw.setdefault("grpc_port", 0)
    return ServerConfig(port=0, store="memory", **kw)


def request(text: str, **kw: Any) -> a2a_pb2.SendMessageRequest:
    return a2a_pb2.SendMessageRequest(message=a2a_pb2.Message(
        message_id=str(uuid.uuid4()), role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text=text)]),
        **kw)


def call(target: str, method: str, req: Any, metadata: Any = (), **options: Any) -> Any:
    """One unary call in a fresh channel; the RpcError if it fails."""
    with grpc.insecure_channel(target, options=list(options.items())) as channel:
        stub = a2a_pb2_grpc.A2AServiceStub(channel)
        try:
            out = getattr(stub, method)(req, metadata=metadata, timeout=10)
            return list(out) if method in ("SendStreamingMessage", "SubscribeToTask") else out
        except grpc.RpcError as exc:
            return exc


def error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    (raw,) = [v for k, v in exc.trailing_metadata() if k == STATUS_DETAILS_KEY]
    status = status_pb2.Status.FromString(raw)
    assert status.code == exc.code().value[0] and status.message == exc.details()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def wait_stats(server: RunningServer, done: Callable[[BridgeStatistics], bool]
                     ) -> BridgeStatistics:
    """The gRPC call statistics, once `done` holds for them (polled: they are counters)."""
    with trio.fail_after(10):
        while True:
            stats = server.grpc.monitor.statistics()
            if done(stats):
                return stats
            await trio.sleep(0.01)


def grpc_threads() -> set[str]:
    return {t.name for t in threading.enumerate()
            if t.name.startswith("grpc-call") or "_serve" in t.name}


async def test_the_card_lists_the_grpc_interface_at_1_0_only() -> None:
    async with open_server(config()) as server, httpx.AsyncClient() as http:
        card = (await http.get(server.url + "/.well-known/agent-card.json")).json()
    grpc_ifaces = [i for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"]
    assert grpc_ifaces == [{"url": f"127.0.0.1:{server.grpc.port}", "protocolBinding": "GRPC",
                            "protocolVersion": "1.0"}]
    # 0.3 clients would call the 0.3 service, which is not served: not offered to them
    assert all(i["transport"] != "GRPC" for i in card["additionalInterfaces"])


async def test_without_auth_the_extended_card_and_a_terminal_subscribe_are_refused() -> None:
    async with open_server(config()) as server:
        target = server.grpc.url
        card = await trio.to_thread.run_sync(call, target, "GetExtendedAgentCard",
                                             a2a_pb2.GetExtendedAgentCardRequest())
        done = await trio.to_thread.run_sync(call, target, "SendMessage", request("echo hi"))
        terminal = await trio.to_thread.run_sync(
            call, target, "SubscribeToTask", a2a_pb2.SubscribeToTaskRequest(id=done.task.id))
    assert card.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(card).reason == "EXTENDED_AGENT_CARD_NOT_CONFIGURED"
    assert terminal.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(terminal)
    assert (info.reason, dict(info.metadata)) == ("UNSUPPORTED_OPERATION",
                                                  {"taskId": done.task.id})


async def test_a_failed_grpc_child_restarts_on_the_same_port() -> None:
    async def crash() -> None:
        raise RuntimeError("injected failure of the gRPC child")

    async with open_server(config()) as server:
        port = server.grpc.port
        first = server.grpc.monitor.bridge
        first._nursery.start_soon(crash)  # noqa: SLF001 - fault injection at the seam
        with trio.fail_after(10):
            while True:  # the supervisor starts it again, after its backoff
                if server.grpc.monitor.bridge is not first:
                    break
                await trio.sleep(0.01)
        missing = await trio.to_thread.run_sync(call, f"127.0.0.1:{port}", "GetTask",
                                                a2a_pb2.GetTaskRequest(id="nope"))
        assert server.grpc.port == port
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_errors_carry_their_code_and_error_info() -> None:
    tokens = {"tok-a": "alice"}
    async with open_server(config(tokens=tokens, worker_tokens={"tok-w": "w1"})) as server:
        target = server.grpc.url
        bearer = (("authorization", "Bearer tok-a"),)

        async def run(method: str, req: Any, metadata: Any = bearer) -> Any:
            return await trio.to_thread.run_sync(call, target, method, req, metadata)

        old = await run("GetTask", a2a_pb2.GetTaskRequest(id="x"),
                        (*bearer, ("a2a-version", "0.3")))
        assert old.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(old).reason == "VERSION_NOT_SUPPORTED"
        assert "'0.3'" in old.details()

        missing = await run("GetTask", a2a_pb2.GetTaskRequest(id="nope"))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        info = error_info(missing)
        assert (info.reason, info.domain, dict(info.metadata)) == (
            "TASK_NOT_FOUND", "a2a-protocol.org", {"taskId": "nope"})

        no_parts = a2a_pb2.SendMessageRequest(message=a2a_pb2.Message(
            message_id="m", role=a2a_pb2.ROLE_USER))
        bad = await run("SendMessage", no_parts)
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(bad).reason == "INVALID_PARAMS"
        assert "message.parts" in bad.details()

        big = a2a_pb2.SendMessageRequest(message=a2a_pb2.Message(
            message_id="m", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text="x")] * 1001))
        over = await run("SendMessage", big)
        assert over.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "max-parts" in over.details() and "message.parts" in over.details()

        bad_id = await run("SubscribeToTask", a2a_pb2.SubscribeToTaskRequest(id="x"),
                           (*bearer, ("last-event-id", "abc")))
        assert bad_id.code() == grpc.StatusCode.INVALID_ARGUMENT

        twice = await run("GetTask", a2a_pb2.GetTaskRequest(id="x"),
                          (*bearer, ("authorization", "Bearer tok-a")))
        assert twice.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "2 Authorization headers" in twice.details()

        for metadata in ((), (("authorization", "Bearer tok-w"),),
                         (("authorization", "Basic dG9rLWE="),)):
            refused = await run("ListTasks", a2a_pb2.ListTasksRequest(), metadata)
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, metadata

        with grpc.insecure_channel(target) as channel:
            unknown = channel.unary_unary("/lf.a2a.v1.A2AService/NoSuchMethod")
            with pytest.raises(grpc.RpcError) as exc:
                await trio.to_thread.run_sync(lambda: unknown(b"", timeout=10))
        assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # nothing refused reached the store
        assert (await server.service.list_tasks(ListTasksRequest(), "alice")).total_size == 0


async def test_a_request_over_max_body_is_refused_by_grpc() -> None:
    async with open_server(config(max_body=4096)) as server:
        small = await trio.to_thread.run_sync(call, server.grpc.url, "SendMessage",
                                              request("echo " + "x" * 1000))
        big = await trio.to_thread.run_sync(call, server.grpc.url, "SendMessage",
                                            request("x" * 5000))
    assert small.task.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_bug_is_internal_and_shows_nothing(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    async with open_server(config()) as server:
        async def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("secret detail")

        monkeypatch.setattr(server.service, "get_task", broken)
        failed = await trio.to_thread.run_sync(call, server.grpc.url, "GetTask",
                                               a2a_pb2.GetTaskRequest(id="x"))
    assert failed.code() == grpc.StatusCode.INTERNAL
    assert failed.details() == "internal server error"
    assert error_info(failed).reason == "INTERNAL"
    (record,) = [r for r in caplog.records if r.getMessage() == "internal error in gRPC method"]
    assert record.method == "GetTask" and "secret detail" in caplog.text


async def test_a_deadline_cancels_the_calls_scope() -> None:
    controls = Controls()
    async with open_server(config(controls)) as server:
        with grpc.insecure_channel(server.grpc.url) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            with pytest.raises(grpc.RpcError) as exc:
                await trio.to_thread.run_sync(lambda: stub.SendMessage(request("wait"),
                                                                        timeout=0.5))
        assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stats = await wait_stats(server, lambda s: s.cancelled >= 1)
        assert stats.active == 0
        assert controls.started and not controls.cancelled  # the task itself runs on
        controls.gate.set()


def big_output_agent() -> AgentSpec:
    async def run(ctx: TaskContext, emit: Emitter) -> None:
        for i in range(CHUNKS):
            await emit.artifact_text(f"{i:04d}" + "x" * (CHUNK - 4))
        await emit.complete()

    return AgentSpec(name="big", run=run)


async def test_a_slow_reader_holds_its_call_not_memory_nor_the_task() -> None:
    async with open_server(config(agent=big_output_agent())) as server:
        # no BDP probing: the client's HTTP/2 window stays small, as a slow reader's does
        channel = grpc.insecure_channel(server.grpc.url, options=[("grpc.http2.bdp_probe", 0)])
        stream: Iterator[a2a_pb2.StreamResponse] = a2a_pb2_grpc.A2AServiceStub(
            channel).SendStreamingMessage(request("go"), timeout=30)
        try:
            first = await trio.to_thread.run_sync(next, stream)
            task_id = first.task.id
            # the agent is not held back: its whole output is in the store
            with trio.fail_after(10):
                record = await server.store.wait_record(task_id, lambda r: is_terminal(r.state))
            # while the call's channel is full and its task waits to hand over more
            stats = await wait_stats(server, lambda s: s.blocked == 1)
            assert stats.queued == stats.buffer == 8
            rest = await trio.to_thread.run_sync(list, stream)
        finally:
            channel.close()
    texts = [e.artifact_update.artifact.parts[0].text for e in rest
             if e.HasField("artifact_update")]
    assert [t[:4] for t in texts] == [f"{i:04d}" for i in range(CHUNKS)]
    assert rest[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert len(rest) == record.seq - 1  # every event after the task as created


async def test_streams_name_their_first_event_id() -> None:
    async with open_server(config()) as server:
        def read() -> tuple[Any, list[Any]]:
            with grpc.insecure_channel(server.grpc.url) as channel:
                stub = a2a_pb2_grpc.A2AServiceStub(channel)
                stream = stub.SendStreamingMessage(request("chunks 2"), timeout=10)
                events = list(stream)
                resumed = stub.SubscribeToTask(a2a_pb2.SubscribeToTaskRequest(
                    id=events[0].task.id), metadata=(("last-event-id", "2"),), timeout=10)
                return (dict(stream.initial_metadata()),
                        [dict(resumed.initial_metadata()), list(resumed)])

        head, (resumed_head, resumed) = await trio.to_thread.run_sync(read)
    assert head["a2a-event-id"] == "1"
    assert resumed_head["a2a-event-id"] == "3"
    assert [e.WhichOneof("payload") for e in resumed] == [
        "artifact_update", "artifact_update", "status_update"]


async def test_stopping_the_server_ends_open_streams_and_leaves_no_thread() -> None:
    before = grpc_threads()
    controls = Controls()
    outcome: dict[str, Any] = {}

    def hold_stream(target: str, opened: trio.Event, token: trio.lowlevel.TrioToken) -> None:
        with grpc.insecure_channel(target) as channel:
            stream = a2a_pb2_grpc.A2AServiceStub(channel).SendStreamingMessage(
                request("wait"), timeout=20)
            outcome["first"] = next(stream).WhichOneof("payload")
            trio.from_thread.run_sync(opened.set, trio_token=token)
            try:
                outcome["rest"] = list(stream)
            except grpc.RpcError as exc:
                outcome["code"] = exc.code()

    def hold_send(target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            try:
                outcome["sent"] = a2a_pb2_grpc.A2AServiceStub(channel).SendMessage(
                    request("wait"), timeout=20)
            except grpc.RpcError as exc:
                outcome["send_code"] = exc.code()

    async with trio.open_nursery() as nursery:
        async with open_server(config(controls)) as server:
            assert grpc_threads() - before  # the serving thread is up
            opened = trio.Event()
            nursery.start_soon(trio.to_thread.run_sync, hold_stream, server.grpc.url, opened,
                               trio.lowlevel.current_trio_token())
            nursery.start_soon(trio.to_thread.run_sync, hold_send, server.grpc.url)
            with trio.fail_after(10):
                await opened.wait()
            await wait_stats(server, lambda s: s.active == 2)  # both calls are in trio
        assert grpc_threads() == before  # stopped, and joined
    assert outcome["first"] == "task"
    assert outcome["code"] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    # a blocking send is answered with the task as it stands, not failed (runtime.http.grace)
    assert outcome["sent"].WhichOneof("payload") == "task", outcome


async def test_a_port_in_use_fails_the_start_naming_it() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"gRPC on 127.0.0.1:{port}"):
            async with open_server(config(grpc_port=port)):
                pass
    finally:
        taken.close()


def test_flags_turn_grpc_on() -> None:
    parser = build_parser()
    assert "--grpc-port" in parser._subparsers._group_actions[0].choices["server"].format_help()
    args = parser.parse_args(["server", "--grpc-port", "50051", "--grpc-host", "0.0.0.0"])
    cfg = server_config(args)
    assert (cfg.grpc_port, cfg.grpc_host) == (50051, "0.0.0.0")
    assert server_config(parser.parse_args(["server"])).grpc_port is None
    with pytest.raises(SystemExit):
        parser.parse_args(["server", "--grpc-port", "70000"])


async def test_reflection_describes_the_service() -> None:
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    async with open_server(config()) as server:
        def describe() -> tuple[list[str], list[str]]:
            with grpc.insecure_channel(server.grpc.url) as channel:
                db = ProtoReflectionDescriptorDatabase(channel)
                service = DescriptorPool(db).FindServiceByName("lf.a2a.v1.A2AService")
                return list(db.get_services()), [m.name for m in service.methods]

        services, methods = await trio.to_thread.run_sync(describe)
    assert "lf.a2a.v1.A2AService" in services
    assert {"SendMessage", "SendStreamingMessage", "SubscribeToTask",
            "GetExtendedAgentCard"} <= set(methods)


async def test_calls_that_end_normally_are_not_counted_as_cancelled() -> None:
    async with open_server(config()) as server:
        def calls() -> None:
            with grpc.insecure_channel(server.grpc.url) as channel:
                stub = a2a_pb2_grpc.A2AServiceStub(channel)
                for _ in range(10):
                    done = stub.SendMessage(request("echo hi"), timeout=10)
                    stub.GetTask(a2a_pb2.GetTaskRequest(id=done.task.id), timeout=10)
                    list(stub.SendStreamingMessage(request("chunks 2"), timeout=10))

        await trio.to_thread.run_sync(calls)
        stats = await wait_stats(server, lambda s: s.active == 0)
    assert (stats.started, stats.cancelled) == (30, 0)


def test_the_card_address_is_a_grpc_target() -> None:
    assert grpc_url("127.0.0.1", 50051, "http://127.0.0.1:8000") == "127.0.0.1:50051"
    assert grpc_url("::1", 50051, "http://[::1]:8000") == "[::1]:50051"
    # a wildcard address is no target: the public URL's host is
    assert grpc_url("0.0.0.0", 50051, "https://agents.example.com") == "agents.example.com:50051"
    assert grpc_url("::", 7, "http://[2001:db8::1]:80/a2a") == "[2001:db8::1]:7"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_grpc_listens_on_ipv6_loopback() -> None:
    async with open_server(config(grpc_host="::1")) as server:
        assert server.grpc.url == f"[::1]:{server.grpc.port}"
        missing = await trio.to_thread.run_sync(call, server.grpc.url, "GetTask",
                                                a2a_pb2.GetTaskRequest(id="nope"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_calls_beyond_grpc_max_calls_are_refused_not_queued() -> None:
    controls = Controls()
    async with open_server(config(controls, grpc_max_calls=1)) as server:
        def busy_then_one_more() -> Any:
            with grpc.insecure_channel(server.grpc.url) as channel:
                stub = a2a_pb2_grpc.A2AServiceStub(channel)
                stream = stub.SendStreamingMessage(request("wait"), timeout=10)
                next(stream)  # the one call allowed is open
                try:
                    return stub.GetTask(a2a_pb2.GetTaskRequest(id="x"), timeout=10)
                except grpc.RpcError as exc:
                    return exc
                finally:
                    stream.cancel()

        refused = await trio.to_thread.run_sync(busy_then_one_more)
        controls.gate.set()
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_without_the_grpc_extra_the_flag_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # `import grpc` fails as if not installed
    args = build_parser().parse_args(["server", "--grpc-port", "0"])
    with pytest.raises(ValueError, match=r"--grpc-port: .*pip install 'trio-a2a\[grpc\]'"):
        server_config(args)
    with pytest.raises(ValueError, match="grpc extra"):
        GrpcChild("127.0.0.1", 0, max_calls=1, max_message=1, keepalive=1.0, base_url="")
    assert server_config(build_parser().parse_args(["server"])).grpc_port is None
