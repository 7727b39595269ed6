"""The worker link's HTTP binding (GET /worker/link + POST /worker/link/{op}) on loopback.

Real servers and real HTTP, real time (short). The stream cut is injected by a
TCP proxy between worker and server that closes the connections carrying the
link's event stream, exactly what a worker sees when a server or a proxy drops
it. Server-side moments (a link closed) are awaited through its log records.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.store_port import TaskRecord
from actors.worker import Backoff, LinkDown
from protocol import worker_link as wl
from protocol.sse import SSEDecoder, SSEEvent
from runtime.agents.echo import split_chunks
from runtime.cli import build_parser
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import WorkerConfig, WorkerRejected, open_worker
from runtime.worker.http_link import http_link_url, open_http_link
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message, wait_state

WORKER_TOKENS = {"wtok": "worker-a", "wtok-b": "worker-b"}
CLIENT_TOKENS = {"ctok": "alice"}
FAST_RECONNECT = Backoff(base=0.05, factor=2.0, max=0.5, jitter=0.2)


def config(**kw: Any) -> ServerConfig:
    return ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENT_TOKENS,
                        worker_tokens=WORKER_TOKENS, **kw)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- helpers: server log records, a cutting proxy, a bare HTTP link -----------------------


class LogWatch(logging.Handler):
    """Records of one logger; `wait_for` wakes on each new record (no polling)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()
        self._changed = trio.Event()

    def count(self, message: str) -> int:
        return sum(r.getMessage() == message for r in self.records)

    async def wait_for(self, message: str, n: int = 1) -> None:
        """Until `message` has been logged `n` times."""
        while self.count(message) < n:
            await self._changed.wait()


@pytest.fixture
def link_log() -> Iterator[LogWatch]:
    logger = logging.getLogger("runtime.link.http")
    watch, level = LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


class CutProxy:
    """A TCP proxy on loopback; `cut_streams()` closes the connections carrying a
    ``GET /worker/link`` (both sides see the stream end), the rest keep flowing."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.link_streams = 0
        self._streams: list[trio.CancelScope] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1"))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started()

    def cut_streams(self) -> int:
        cut = len(self._streams)
        for scope in self._streams:
            scope.cancel()
        self._streams.clear()
        return cut

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.target_port) as up:
            with trio.CancelScope() as scope:
                first = await client.receive_some(65536)
                if first.startswith(b"GET /worker/link"):
                    self.link_streams += 1
                    self._streams.append(scope)
                await up.send_all(first)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, up, nursery.cancel_scope)
                    nursery.start_soon(self._pump, up, client, nursery.cancel_scope)

    @staticmethod
    async def _pump(src: trio.SocketStream, dst: trio.SocketStream,
                    done: trio.CancelScope) -> None:
        try:
            async for data in src:
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()


class RawStream:
    """The bare event stream of one link: events in order, comments counted."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.decoder = SSEDecoder()
        self._chunks = response.aiter_bytes()
        self._ready: list[SSEEvent] = []

    async def next_event(self) -> SSEEvent:
        while not self._ready:
            self._ready.extend(self.decoder.feed(await anext(self._chunks)))
        return self._ready.pop(0)

    async def wait_comments(self, n: int) -> None:
        while self.decoder.comments < n:
            self._ready.extend(self.decoder.feed(await anext(self._chunks)))


@asynccontextmanager
async def raw_link(client: httpx.AsyncClient,
                   token: str = "wtok") -> AsyncIterator[tuple[str, RawStream]]:
    async with client.stream("GET", "/worker/link", headers=bearer(token)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = RawStream(response)
        first = await stream.next_event()
        assert first.event == "link"
        yield json.loads(first.data)["linkId"], stream


def register_frame(frame_id: str = "w-1", worker_id: str = "wrk-raw") -> str:
    return wl.encode_frame("register", wl.RegisterBody(
        worker_id=worker_id, name="raw", hostname="localhost", max_concurrent_tasks=1,
        agents=["echo"]), frame_id)


async def post(client: httpx.AsyncClient, op: str, text: str | bytes, link_id: str | None, *,
               token: str = "wtok") -> httpx.Response:
    headers = bearer(token)
    if link_id is not None:
        headers["Worker-Link"] = link_id
    return await client.post(f"/worker/link/{op}", content=text, headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    frame = response.json()
    assert frame["op"] == "ack" and frame["ok"] is False, frame
    return {"id": frame["id"], **frame["error"]}


def send(text: str, **configuration: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"message": user_message(text)}
    if configuration:
        params["configuration"] = configuration
    return params


def chunk_texts(record: TaskRecord) -> list[str]:
    return [p.text or "" for a in record.task.artifacts or () for p in a.parts]


# --- a worker over HTTP against the real server ---------------------------------------------


@asynccontextmanager
async def http_worker(controls: Controls, *, agent: AgentSpec | None = None,
                      heartbeat_interval: float | None = None, via_proxy: bool = False,
                      **server: Any) -> AsyncIterator[tuple[RunningServer, Rpc, Any, CutProxy]]:
    cfg = WorkerConfig(heartbeat_interval=heartbeat_interval, reconnect=FAST_RECONNECT, seed=7)
    async with open_server(config(**server)) as srv, trio.open_nursery() as nursery, \
            httpx.AsyncClient(base_url=srv.url, timeout=10, headers=bearer("ctok")) as client:
        proxy = CutProxy(srv.port)
        await nursery.start(proxy.run)
        url = proxy.url if via_proxy else srv.url
        async with open_worker(url, token="wtok", agent=agent or scripted_agent(controls),
                               concurrency=2, name="http-1", config=cfg,
                               transport="http") as worker:
            await worker.wait_registered()
            yield srv, Rpc(client, "1.0"), worker, proxy
        nursery.cancel_scope.cancel()


async def test_http_worker_runs_tasks_sent_by_a_client(link_log: LogWatch) -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with http_worker(controls) as (srv, rpc, worker, _):
            task = (await rpc.call("SendMessage", send("echo hello over http")))["task"]
            events = results(await rpc.stream("SendStreamingMessage", send("chunks 3")))
            stats = worker.statistics()
            assert srv.dispatcher.statistics().workers == 1
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    # the echo agent's chunks (the worker may coalesce them while a POST is in flight)
    assert "".join(p["text"] for p in task["artifacts"][0]["parts"]) == \
        "".join(split_chunks("echo hello over http")) == "echo hello over http"
    chunks = "".join(p["text"] for ev in events if "artifactUpdate" in ev
                     for p in ev["artifactUpdate"]["artifact"]["parts"])
    assert chunks.startswith("c0") and "c2" in chunks
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert (stats.connects, stats.registrations, stats.started) == (1, 1, 2)
    assert link_log.count("http worker link opened") == 1  # the HTTP binding, not /worker/ws


async def test_cancel_reaches_the_session_as_a_push() -> None:
    controls = Controls()
    with trio.fail_after(20):
        # heartbeats every 60 s: a cancellation within 5 s can only be the pushed one
        async with http_worker(controls, heartbeat_interval=60.0) as (srv, rpc, _, _):
            task = (await rpc.call("SendMessage", send("wait", returnImmediately=True)))["task"]
            await controls.wait_started(task["id"])
            with trio.fail_after(5):
                canceled = await rpc.call("CancelTask", {"id": task["id"]})
                await wait_state(srv, task["id"], "TASK_STATE_CANCELED")
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert controls.cancelled == [task["id"]]


def paced_agent(gates: list[trio.Event]) -> AgentSpec:
    """Streams 'one', 'two', 'three' into one artifact, each after the previous gate."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        aid = None
        for i, word in enumerate(["one", "two", "three"]):
            if i:
                await gates[i - 1].wait()
            aid = await emit.artifact_text(word, artifact_id=aid, append=i > 0,
                                           last_chunk=i == 2)
        await emit.complete()

    return AgentSpec(name="paced", run=run, description="test agent")


async def test_a_cut_stream_reconnects_with_no_loss_and_no_duplicate(link_log: LogWatch) -> None:
    gates = [trio.Event(), trio.Event()]
    with trio.fail_after(20):
        async with http_worker(Controls(), agent=paced_agent(gates),
                               via_proxy=True) as (srv, rpc, worker, proxy):
            task_id = (await rpc.call("SendMessage", send("go", returnImmediately=True))
                       )["task"]["id"]
            await srv.store.wait_record(task_id, lambda r: chunk_texts(r) == ["one"])
            assert proxy.cut_streams() == 1
            await link_log.wait_for("http worker link closed")  # the server saw it end
            assert srv.dispatcher.statistics().workers == 0  # unregistered, as for a WebSocket
            gates[0].set()  # 'two' is produced while the worker reconnects
            await srv.store.wait_record(task_id, lambda r: chunk_texts(r) == ["one", "two"])
            gates[1].set()
            await wait_state(srv, task_id, "TASK_STATE_COMPLETED")
            stored = await srv.store.read_events(task_id, 0, 1000)
            record = await srv.store.get_task(task_id)
            assert record is not None
            final = chunk_texts(record)
            stats = worker.statistics()
            assert srv.dispatcher.statistics().workers == 1
    updates = [ev.event.artifact_update for ev in stored if ev.event.artifact_update is not None]
    streamed = [(p.text, u.append) for u in updates[:3] for p in u.artifact.parts]
    assert streamed == [("one", None), ("two", True), ("three", True)]  # each once, in order
    # after them at most the release's copy of the whole artifact, never a chunk again
    assert [[p.text for p in u.artifact.parts] for u in updates[3:]] in (
        [], [["one", "two", "three"]])
    assert final == ["one", "two", "three"]
    assert proxy.link_streams == 2
    assert (stats.connects, stats.registrations) == (2, 2)


async def test_a_closed_link_is_link_down_for_the_worker(link_log: LogWatch) -> None:
    async with open_server(config()) as srv, trio.open_nursery() as nursery:
        proxy = CutProxy(srv.port)
        await nursery.start(proxy.run)
        with trio.fail_after(10):
            async with open_http_link(proxy.url, token="wtok") as link:
                reply = await link.request("register", wl.RegisterBody(
                    worker_id="wrk-x", name="x", hostname="h", max_concurrent_tasks=1,
                    agents=["echo"]))
                assert isinstance(reply, wl.RegisterReply) and reply.worker_id == "wrk-x"
                proxy.cut_streams()
                await link_log.wait_for("http worker link closed")
                heartbeat = wl.HeartbeatBody(worker_id="wrk-x", agent="echo", status="idle",
                                             active_tasks=0)
                with pytest.raises(LinkDown, match=f"UNKNOWN_LINK.*{link.link_id}"):
                    await link.request("heartbeat", heartbeat)
                with pytest.raises(LinkDown, match="UNKNOWN_LINK"):  # and it stays down
                    await link.request("heartbeat", heartbeat)
                with pytest.raises(LinkDown, match="UNKNOWN_LINK"):
                    await link.serve()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("token", ["wrong", None])
async def test_a_bad_token_stops_the_worker(token: str | None) -> None:
    async with open_server(config()) as srv:
        with trio.fail_after(10), pytest.raises(WorkerRejected, match="HTTP 401"):
            async with open_worker(srv.url, token=token, transport="http") as worker:
                await worker.wait_registered()


async def test_a_client_token_is_refused_as_a_worker() -> None:
    async with open_server(config()) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        with trio.fail_after(10):
            r = await client.get("/worker/link", headers=bearer("ctok"))
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            assert error_of(r)["code"] == wl.UNAUTHORIZED
            async with raw_link(client) as (link_id, _):
                r = await post(client, "register", register_frame(), link_id, token="ctok")
                assert r.status_code == 401 and error_of(r)["code"] == wl.UNAUTHORIZED
            with pytest.raises(WorkerRejected, match="HTTP 401: a valid worker token"):
                async with open_worker(srv.url, token="ctok", transport="http") as worker:
                    await worker.wait_registered()
            assert srv.dispatcher.statistics().workers == 0


async def test_unknown_or_missing_link_id_is_a_precise_error() -> None:
    async with open_server(config()) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        with trio.fail_after(10):
            r = await post(client, "register", register_frame(), "no-such-link")
            assert r.status_code == 404
            err = error_of(r)
            assert err["code"] == wl.UNKNOWN_LINK and "'no-such-link'" in err["message"]
            r = await post(client, "register", register_frame(), None)
            assert r.status_code == 400
            err = error_of(r)
            assert err["code"] == wl.INVALID_FRAME and err["message"].startswith("Worker-Link:")
            async with raw_link(client, token="wtok-b") as (link_id, _):
                # another worker principal cannot use this link
                r = await post(client, "register", register_frame(), link_id)
                assert r.status_code == 404 and error_of(r)["code"] == wl.UNKNOWN_LINK
                r = await post(client, "register", register_frame(), link_id, token="wtok-b")
                assert r.status_code == 200


async def test_the_op_in_the_path_must_match_the_frame() -> None:
    heartbeat = wl.encode_frame("heartbeat", wl.HeartbeatBody(
        worker_id="wrk-raw", agent="echo", status="idle", active_tasks=0), "w-2")
    async with open_server(config()) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        with trio.fail_after(10):
            async with raw_link(client) as (link_id, _):
                assert (await post(client, "register", register_frame(), link_id)).json()["ok"]
                r = await post(client, "claim", heartbeat, link_id)
                assert r.status_code == 400
                assert error_of(r) == {
                    "id": "w-2", "code": wl.INVALID_FRAME,
                    "message": "op: the frame's op 'heartbeat' does not match the path "
                               "/worker/link/claim"}
                r = await post(client, "offer", heartbeat, link_id)
                assert r.status_code == 404 and error_of(r)["code"] == wl.UNKNOWN_OP
                assert "'offer' is not an op a worker sends" in error_of(r)["message"]
                r = await post(client, "heartbeat", "not json", link_id)
                assert r.status_code == 400
                assert error_of(r)["id"] is None and error_of(r)["code"] == wl.INVALID_FRAME
                bad = json.dumps({"v": 1, "op": "claim", "id": "w-3", "body": {}})
                r = await post(client, "claim", bad, link_id)
                assert r.status_code == 400
                err = error_of(r)
                assert err["id"] == "w-3" and "workerId" in err["message"]
                r = await post(client, "heartbeat", heartbeat, link_id)  # the link stayed up
                assert r.status_code == 200
                assert r.json() == {"v": 1, "op": "ack", "id": "w-2", "ok": True, "body": {
                    "renewed": [], "lost": [], "cancel": [], "drain": False,
                    "unknownWorker": False, "queued": 0}}


async def test_stream_carries_the_link_id_pushes_and_keepalives(link_log: LogWatch) -> None:
    async with open_server(config(keepalive=0.2)) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        rpc = Rpc(client, "1.0", headers=bearer("ctok"))
        with trio.fail_after(10):
            async with raw_link(client) as (link_id, stream):
                assert len(link_id) >= 16  # unguessable
                r = await post(client, "register", register_frame(), link_id)
                assert r.status_code == 200 and r.json()["body"]["workerId"] == "wrk-raw"
                task = (await rpc.call("SendMessage", send("hi", returnImmediately=True)))["task"]
                push = await stream.next_event()
                assert (push.event, push.id) == ("offer", "s-1")
                frame = wl.decode_frame(push.data)
                assert isinstance(frame.body, wl.OfferBody) and frame.body.task_id == task["id"]
                ack = wl.ack("s-1")  # optional over HTTP: accepted, nothing answers it
                r = await post(client, "ack", ack, link_id)
                assert r.status_code == 204
                await stream.wait_comments(2)  # idle: keep-alive comments, ~every 0.2 s
                assert srv.dispatcher.statistics().workers == 1
            await link_log.wait_for("http worker link closed")  # the stream ended
            assert srv.dispatcher.statistics().workers == 0
            r = await post(client, "heartbeat", register_frame("w-9"), link_id)
            assert r.status_code == 404 and error_of(r)["code"] == wl.UNKNOWN_LINK


def test_http_link_url() -> None:
    assert http_link_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/worker/link"
    assert http_link_url("https://a2a.example/base/") == "https://a2a.example/base/worker/link"
    assert http_link_url("http://h:1/worker/link") == "http://h:1/worker/link"
    with pytest.raises(ValueError, match="http"):
        http_link_url("ws://h:1")


def test_cli_transport_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args(["worker"]).transport == "websocket"
    assert build_parser().parse_args(["worker", "--transport", "http"]).transport == "http"
    monkeypatch.setenv("TRIO_A2A_TRANSPORT", "http")
    assert build_parser().parse_args(["worker"]).transport == "http"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--transport", "carrier-pigeon"])


async def test_open_worker_refuses_an_unknown_transport() -> None:
    with pytest.raises(ValueError, match="transport must be"):
        async with open_worker("http://127.0.0.1:1", token="t",
                               transport="smtp"):  # type: ignore[arg-type]
            pass
