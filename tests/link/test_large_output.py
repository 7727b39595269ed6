"""Large output over the WebSocket link: bounded frames, and a cap that fails a task once.

Real server and real worker on loopback (`open_server` + `open_worker` over
/worker/ws, whose messages are limited to 16 MiB). Output past that limit
used to be unreleasable: the release frame carried the assembled artifact
again, the worker looped on close 1009, the lease expired and the task ran
again from scratch. Now every frame stays below the limit (large chunks and
files go in pieces, and the release never repeats what output frames carried),
and output beyond `max_output_bytes` fails the task with a reason, once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
import trio
import trio_websocket

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.store_port import TaskRecord
from protocol import worker_link as wl
from protocol.models import TaskState
from runtime.cli import server_config
from runtime.flags import build_parser
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import open_worker
from tests.conftest import user_message
from tests.link.test_endpoint import LinkClient, output_frame, ws_url

MIB = 1 << 20
TIMEOUT = 60


def text_of(record: TaskRecord, artifact_id: str) -> str:
    return "".join(p.text or "" for a in record.task.artifacts or ()
                   if a.artifact_id == artifact_id for p in a.parts)


async def submit(url: str, text: str = "go") -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.post("/", json={
            "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message(text),
                       "configuration": {"returnImmediately": True}}},
            headers={"A2A-Version": "1.0"})
        assert r.status_code == 200, r.text
        return str(r.json()["result"]["task"]["id"])


async def finished(server: RunningServer, task_id: str) -> TaskRecord:
    return await server.store.wait_record(
        task_id, lambda r: r.state in (TaskState.COMPLETED, TaskState.FAILED))


@asynccontextmanager
async def remote(agent: AgentSpec, transport: Literal["websocket", "http"] = "websocket",
                 **config: Any) -> AsyncIterator[RunningServer]:
    """A server whose only worker is `agent` on a real link (WebSocket by default)."""
    cfg = ServerConfig(port=0, store="memory", local_workers=0, **config)
    async with open_server(cfg) as server, \
            open_worker(server.url, token=None, agent=agent, name="remote",
                        transport=transport) as worker:
        await worker.wait_registered()
        yield server


def big_text() -> tuple[str, list[str]]:
    """20 MiB of text: one 17 MiB chunk (over the 16 MiB message limit), then 3 x 1 MiB."""
    chunks = ["a" * (17 * MIB), *(chr(ord("b") + i) * MIB for i in range(3))]
    return "".join(chunks), chunks


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_twenty_mib_of_text_completes_whole(transport: Literal["websocket", "http"],
                                                  ) -> None:
    """Over the WebSocket (16 MiB messages) and the HTTP binding (10 MiB request bodies)."""
    expected, chunks = big_text()

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        for i, chunk in enumerate(chunks):
            await emit.artifact_text(chunk, artifact_id="out", append=i > 0,
                                     last_chunk=i == len(chunks) - 1)

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="big", run=run), transport) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
    assert record.state is TaskState.COMPLETED
    assert record.dispatch.attempts == 1
    assert text_of(record, "out") == expected


async def test_a_file_over_the_message_limit_arrives_in_pieces() -> None:
    content = bytes(range(256)) * (17 * MIB // 256 + 7)  # 17 MiB and a bit

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        await emit.artifact_file(content, filename="blob.bin",
                                 media_type="application/octet-stream", artifact_id="file")

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="file", run=run)) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
    assert record.state is TaskState.COMPLETED and record.dispatch.attempts == 1
    (artifact,) = record.task.artifacts or ()
    assert len(artifact.parts) > 1  # in pieces, each a file part of the same file
    assert {(p.filename, p.media_type) for p in artifact.parts} == {
        ("blob.bin", "application/octet-stream")}
    got = b"".join(base64.b64decode(p.raw or "") for p in artifact.parts)
    assert hashlib.sha256(got).digest() == hashlib.sha256(content).digest()


async def test_output_over_the_cap_fails_the_task_once_and_the_worker_stops_early() -> None:
    emitted: list[int] = []

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        for i in range(64):  # 4 MiB in all, against a cap of 1 MiB
            await emit.artifact_text("x" * (64 * 1024), artifact_id="out", append=i > 0)
            emitted.append(i)
            await trio.sleep(0.001)

    cap = MIB
    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="chatty", run=run), max_output_bytes=cap,
                          lease_ttl=1.5, reap_interval=0.1) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
            await trio.sleep(3)  # two lease TTLs: nothing runs it again
            later = await server.store.get_task(task_id)
            events = await server.store.read_events(task_id, 0, 1000)
    assert record.state is TaskState.FAILED
    assert later is not None and later.state is TaskState.FAILED
    assert later.dispatch.attempts == 1 and later.seq == record.seq
    message = record.task.status.message
    assert message is not None
    reason = message.parts[0].text or ""
    assert f"{cap} bytes" in reason and "--max-output-bytes" in reason, reason
    failures = [e for e in events if e.event.status_update is not None
                and e.event.status_update.status.state is TaskState.FAILED]
    assert len(failures) == 1
    assert len(text_of(record, "out")) <= cap
    assert len(emitted) < 20  # the worker stopped the agent, not the end of its output


async def test_an_event_too_large_for_a_frame_that_cannot_be_cut_fails_the_task_once() -> None:
    async def run(ctx: TaskContext, emit: Emitter) -> None:
        await emit.artifact_text("fine", artifact_id="before")
        await emit.artifact_data({"rows": ["z" * 1000] * (6 * 1024)})  # 6 MiB: one data part

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="data", run=run)) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
    assert record.state is TaskState.FAILED and record.dispatch.attempts == 1
    message = record.task.status.message
    assert message is not None
    assert "does not fit in a worker-link frame" in (message.parts[0].text or "")
    assert text_of(record, "before") == "fine"


async def test_the_server_enforces_the_cap_on_a_worker_that_does_not() -> None:
    cap = MIB
    cfg = ServerConfig(port=0, store="memory", local_workers=0, max_output_bytes=cap,
                       lease_ttl=1.5, reap_interval=0.1)
    with trio.fail_after(TIMEOUT):
        async with open_server(cfg) as server, \
                trio_websocket.open_websocket_url(ws_url(server)) as ws, \
                trio.open_nursery() as nursery:
            link = LinkClient(ws)
            nursery.start_soon(link.read)
            reg = await link.register()
            assert reg.max_output_bytes == cap  # told, so that it can stop early
            task_id = await submit(server.url)
            grant = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id=task_id))
            assert grant.granted
            piece = "y" * (600 * 1024)
            assert (await link.ok("output", output_frame(grant, 1, piece))).acked_through == 1
            refused = await link.refused("output", output_frame(grant, 2, piece))
            assert refused.code == wl.STALE_ATTEMPT
            assert f"{cap} bytes" in refused.message, refused.message
            record = await server.store.get_task(task_id)
            await trio.sleep(3)
            later = await server.store.get_task(task_id)
            nursery.cancel_scope.cancel()
    assert record is not None and record.state is TaskState.FAILED
    assert later is not None and later.state is TaskState.FAILED
    assert later.dispatch.attempts == 1 and later.seq == record.seq
    assert record.dispatch.lease is None
    message = record.task.status.message
    assert message is not None and "--max-output-bytes" in (message.parts[0].text or "")
    assert text_of(record, "a-1") == piece  # the frame over the cap was not applied


def test_the_output_cap_flag_its_variable_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_A2A_MAX_OUTPUT_BYTES", raising=False)
    monkeypatch.delenv("TRIO_A2A_TOKENS", raising=False)

    def parsed(*args: str) -> ServerConfig:
        return server_config(build_parser().parse_args(["server", *args]))

    assert parsed().max_output_bytes == ServerConfig().max_output_bytes == 64 * MIB
    assert parsed("--max-output-bytes", "1000").max_output_bytes == 1000
    assert parsed("--max-output-bytes", "0").max_output_bytes is None  # no cap
    monkeypatch.setenv("TRIO_A2A_MAX_OUTPUT_BYTES", "2048")
    assert parsed().max_output_bytes == 2048
    with pytest.raises(ValueError, match="--max-output-bytes must be 0"):
        parsed("--max-output-bytes", "-1")
