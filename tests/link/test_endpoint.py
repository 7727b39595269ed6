"""The worker link over WebSocket against a real server on loopback (real time, short)."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket

from protocol import worker_link as wl
from protocol.models import (
    Artifact,
    Part,
    StreamResponse,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.server import RunningServer, ServerConfig, open_server
from tests.conftest import Rpc, user_message

WORKER_TOKENS = {"wtok": "worker-a"}
CLIENT_TOKENS = {"ctok": "alice"}


def config(**kw: Any) -> ServerConfig:
    return ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENT_TOKENS,
                        worker_tokens=WORKER_TOKENS, **kw)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with open_server(config()) as srv:
        yield srv


@pytest.fixture
async def rpc(server: RunningServer) -> AsyncIterator[Rpc]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield Rpc(c, "1.0", headers={"Authorization": "Bearer ctok"})


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http", "ws", 1) + "/worker/ws"


class LinkClient:
    """A bare worker: sends frames, matches acks by id, collects (and acks) pushes."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[str, str] = {}
        self._acks: dict[str | None, trio.MemorySendChannel[wl.Frame]] = {}
        self.push_send, self.pushes = trio.open_memory_channel[wl.Frame](100)
        self.null_send, self.null_acks = trio.open_memory_channel[wl.Frame](10)

    async def read(self) -> None:
        while True:
            frame = wl.decode_frame(await self.ws.get_message(), pending=self._pending)
            if not frame.is_ack:
                await self.push_send.send(frame)
                await self.ws.send_message(wl.ack(frame.id))
            elif frame.id is None:
                await self.null_send.send(frame)
            else:
                await self._acks.pop(frame.id).send(frame)

    async def raw(self, text: str, frame_id: str, op: str = "") -> wl.Frame:
        send, receive = trio.open_memory_channel[wl.Frame](1)
        self._acks[frame_id] = send
        if op:
            self._pending[frame_id] = op
        await self.ws.send_message(text)
        return await receive.receive()

    async def call(self, op: str, body: wl.LinkModel) -> wl.Frame:
        frame_id = f"w-{next(self._ids)}"
        return await self.raw(wl.encode_frame(op, body, frame_id), frame_id, op)

    async def ok(self, op: str, body: wl.LinkModel) -> Any:
        return wl.parse_reply(op, await self.call(op, body))

    async def refused(self, op: str, body: wl.LinkModel) -> wl.LinkError:
        frame = await self.call(op, body)
        assert frame.ok is False and frame.error is not None, frame
        return frame.error

    async def register(self, worker_id: str = "wrk-1") -> wl.RegisterReply:
        return await self.ok("register", wl.RegisterBody(
            worker_id=worker_id, name="test", hostname="localhost", max_concurrent_tasks=2,
            agents=["echo"], models={"fake": ["m1"]}))

    async def next_push(self, op: str) -> Any:
        frame = await self.pushes.receive()
        assert frame.op == op, frame
        return frame.body


@pytest.fixture
async def link(server: RunningServer) -> AsyncIterator[LinkClient]:
    async with trio_websocket.open_websocket_url(
        ws_url(server), extra_headers=[("Authorization", "Bearer wtok")]
    ) as ws, trio.open_nursery() as nursery:
        client = LinkClient(ws)
        nursery.start_soon(client.read)
        yield client
        nursery.cancel_scope.cancel()


async def send_task(rpc: Rpc, text: str = "hello") -> str:
    result = await rpc.call("SendMessage", {"message": user_message(text),
                                            "configuration": {"returnImmediately": True}})
    return result["task"]["id"]


async def claim_offered(link: LinkClient, rpc: Rpc) -> tuple[str, wl.ClaimReply]:
    task_id = await send_task(rpc)
    offer = await link.next_push("offer")
    assert offer.task_id == task_id
    grant = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id=task_id))
    assert grant.granted and grant.attempt_id and grant.task is not None
    return task_id, grant


def working(task_id: str, context_id: str) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id=context_id, status=TaskStatus(state=TaskState.WORKING)))


def chunk(task_id: str, context_id: str, text: str, *, append: bool) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id=context_id, append=append,
        artifact=Artifact(artifact_id="a-1", parts=[Part(text=text)])))


def output_frame(grant: wl.ClaimReply, seq: int, text: str) -> wl.OutputBody:
    """Output frame `seq` of the granted attempt: one text chunk of artifact a-1."""
    assert grant.task is not None and grant.attempt_id is not None
    task_id = grant.task.id
    return wl.OutputBody(task_id=task_id, attempt_id=grant.attempt_id, seq=seq,
                         events=[chunk(task_id, grant.task.context_id, text, append=seq > 1)])


async def test_task_runs_on_a_remote_worker(server: RunningServer, rpc: Rpc,
                                            link: LinkClient) -> None:
    with trio.fail_after(10):
        reg = await link.register()
        assert (reg.worker_id, reg.lease_ttl, reg.heartbeat_interval) == ("wrk-1", 90.0, 30.0)
        task_id, grant = await claim_offered(link, rpc)
        assert grant.task is not None and grant.task.id == task_id
        assert grant.message is not None and grant.message.parts[0].text == "hello"
        assert grant.history == []
        ctx = grant.task.context_id
        att = grant.attempt_id
        assert att is not None
        again = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id=task_id))
        assert again.attempt_id == att  # a resent claim gets the same grant
        out = await link.ok("output", wl.OutputBody(task_id=task_id, attempt_id=att, seq=1,
                                                    events=[working(task_id, ctx),
                                                            chunk(task_id, ctx, "hi",
                                                                  append=False)]))
        assert out.acked_through == 1
        hb = await link.ok("heartbeat", wl.HeartbeatBody(
            worker_id="wrk-1", agent="echo", status="processing", active_tasks=1,
            leases=[wl.LeaseRef(task_id=task_id, attempt_id=att)]))
        assert [r.task_id for r in hb.renewed] == [task_id] and not hb.lost and not hb.cancel
        assert await link.ok("status", wl.StatusBody(
            task_id=task_id, attempt_id=att, state="completed", provider="fake", model="m1",
            tool_calls_count=0, tokens_used=wl.TokenUsage(input=3, output=2))) == wl.EmptyReply()
        final = Artifact(artifact_id="a-2", name="result", parts=[Part(text="done")])
        rel = await link.ok("release", wl.ReleaseBody(task_id=task_id, attempt_id=att,
                                                      outcome="completed", artifacts=[final]))
        assert rel.already_released is False
        again_rel = await link.ok("release", wl.ReleaseBody(task_id=task_id, attempt_id=att,
                                                            outcome="completed"))
        assert again_rel.already_released is True
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [(a["artifactId"], a["parts"]) for a in task["artifacts"]] == [
        ("a-1", [{"text": "hi"}]), ("a-2", [{"text": "done"}])]
    assert server.dispatcher.statistics().leased == 0


async def test_output_seq_dedup_and_gap(rpc: Rpc, link: LinkClient) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        assert grant.task is not None and grant.attempt_id is not None

        assert (await link.ok("output", output_frame(grant, 1, "a"))).acked_through == 1
        assert (await link.ok("output", output_frame(grant, 2, "b"))).acked_through == 2
        # resent: dropped
        assert (await link.ok("output", output_frame(grant, 2, "b"))).acked_through == 2
        assert (await link.ok("output", output_frame(grant, 1, "a"))).acked_through == 2
        # beyond a gap: not applied
        assert (await link.ok("output", output_frame(grant, 4, "d"))).acked_through == 2
        assert (await link.ok("output", output_frame(grant, 3, "c"))).acked_through == 3
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["artifacts"][0]["parts"] == [{"text": "a"}, {"text": "b"}, {"text": "c"}]


async def test_stale_attempt_is_refused_after_the_lease_expires() -> None:
    async with open_server(config(lease_ttl=0.5, reap_interval=0.1)) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=10) as c, \
            trio_websocket.open_websocket_url(
                ws_url(server), extra_headers=[("Authorization", "Bearer wtok")]) as ws, \
            trio.open_nursery() as nursery:
        rpc = Rpc(c, "1.0", headers={"Authorization": "Bearer ctok"})
        link = LinkClient(ws)
        nursery.start_soon(link.read)
        with trio.fail_after(10):
            await link.register()
            task_id, grant = await claim_offered(link, rpc)
            assert grant.task is not None and grant.attempt_id is not None
            old = grant.attempt_id
            # A heartbeat that leaves the lease out (the worker lost track of it): the
            # lease is not renewed, so it expires and the reaper re-queues the task and
            # offers it again to this worker, which it heard from within a lease TTL.
            await trio.sleep(0.3)
            await link.ok("heartbeat", wl.HeartbeatBody(worker_id="wrk-1", agent="echo",
                                                        status="idle", active_tasks=0))
            assert (await link.next_push("offer")).task_id == task_id
            err = await link.refused("output", wl.OutputBody(
                task_id=task_id, attempt_id=old, seq=1,
                events=[working(task_id, grant.task.context_id)]))
            assert err.code == wl.STALE_ATTEMPT
            new = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id=task_id))
            assert new.granted and new.attempt_id != old
            for op, body in [
                ("release", wl.ReleaseBody(task_id=task_id, attempt_id=old, outcome="completed")),
                ("status", wl.StatusBody(task_id=task_id, attempt_id=old, state="working")),
            ]:
                assert (await link.refused(op, body)).code == wl.STALE_ATTEMPT
            rel = await link.ok("release", wl.ReleaseBody(
                task_id=task_id, attempt_id=new.attempt_id, outcome="failed", error="boom"))
            assert rel.already_released is False
            task = await rpc.call("GetTask", {"id": task_id})
        nursery.cancel_scope.cancel()
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    assert task["status"]["message"]["parts"] == [{"text": "boom"}]


async def test_cancel_task_reaches_the_worker(rpc: Rpc, link: LinkClient) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        canceled: dict[str, Any] = {}

        async def cancel() -> None:
            canceled.update(await rpc.call("CancelTask", {"id": task_id}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel)
            push = await link.next_push("cancel")
            assert (push.task_id, push.attempt_id) == (task_id, grant.attempt_id)
            rel = await link.ok("release", wl.ReleaseBody(
                task_id=task_id, attempt_id=push.attempt_id, outcome="canceled"))
            assert rel.already_released is False
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"


async def test_not_claimable_is_a_normal_answer(rpc: Rpc, link: LinkClient) -> None:
    with trio.fail_after(10):
        await link.register()
        reply = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id="nope"))
        assert (reply.granted, reply.reason) == (False, wl.NOT_CLAIMABLE)
        err = await link.refused("claim", wl.ClaimBody(worker_id="other", task_id="nope"))
        assert err.code == wl.UNKNOWN_WORKER


async def test_malformed_frames_get_error_acks_and_the_link_stays_up(
    link: LinkClient,
) -> None:
    heartbeat = wl.HeartbeatBody(worker_id="wrk-1", agent="echo", status="idle", active_tasks=0)
    with trio.fail_after(10):
        err = await link.refused("heartbeat", heartbeat)
        assert err.code == wl.UNKNOWN_WORKER  # before register
        await link.register()
        await link.ws.send_message("not json")
        bad = await link.null_acks.receive()
        assert bad.error is not None and bad.error.code == wl.INVALID_FRAME
        frame = await link.raw(json.dumps({"v": 1, "op": "claim", "id": "x1", "body": {}}), "x1")
        assert frame.error is not None and frame.error.code == wl.INVALID_FRAME
        assert "workerId" in frame.error.message
        frame = await link.raw(json.dumps({"v": 2, "op": "claim", "id": "x2", "body": {}}), "x2")
        assert frame.error is not None and frame.error.code == wl.UNSUPPORTED_VERSION
        offer = wl.encode_frame("offer", wl.OfferBody(task_id="t"), "x3")
        frame = await link.raw(offer, "x3")
        assert frame.error is not None and frame.error.code == wl.UNKNOWN_OP
        err = await link.refused("output", wl.OutputBody(
            task_id="t", attempt_id="a", seq=1, events=[working("other", "c")]))
        assert err.code == wl.INVALID_FRAME and "body.events[0]" in err.message
        reply = await link.ok("heartbeat", heartbeat)
        assert reply == wl.HeartbeatReply()


@pytest.mark.parametrize("headers", [[], [("Authorization", "Bearer wrong")],
                                     [("Authorization", "Bearer ctok")]])
async def test_handshake_needs_a_worker_token(server: RunningServer,
                                              headers: list[tuple[str, str]]) -> None:
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as info:
        async with trio_websocket.open_websocket_url(ws_url(server), extra_headers=headers):
            pass
    assert info.value.status_code == 401
    assert info.value.body is not None
    assert json.loads(info.value.body)["error"]["code"] == wl.UNAUTHORIZED


async def test_worker_token_is_not_a_client_token(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        with trio.fail_after(10):
            body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
            r = await c.post("/", json=body, headers={"A2A-Version": "1.0",
                                                      "Authorization": "Bearer wtok"})
            assert r.status_code == 401
            r = await c.get("/tasks", headers={"A2A-Version": "1.0",
                                               "Authorization": "Bearer wtok"})
            assert r.status_code == 401


def test_a_token_cannot_be_both() -> None:
    with pytest.raises(ValueError, match="both client and worker"):
        ServerConfig(tokens={"t": "a"}, worker_tokens={"t": "w"})


async def test_open_link_without_worker_tokens_still_refuses_client_tokens() -> None:
    cfg = ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENT_TOKENS,
                       open_worker_link=True)  # open on purpose: see test_link_auth.py
    async with open_server(cfg) as server:
        with trio.fail_after(10):
            async with trio_websocket.open_websocket_url(ws_url(server)) as ws:
                await ws.send_message(wl.encode_frame("register", wl.RegisterBody(
                    worker_id="w", name="n", hostname="h", max_concurrent_tasks=1,
                    agents=["echo"]), "w-1"))
                reply = wl.parse_reply("register", wl.decode_frame(
                    await ws.get_message(), pending={"w-1": "register"}))
                assert reply.worker_id == "w"
            with pytest.raises(trio_websocket.ConnectionRejected):
                async with trio_websocket.open_websocket_url(
                        ws_url(server), extra_headers=[("Authorization", "Bearer ctok")]):
                    pass


async def test_leases_survive_a_reconnect(server: RunningServer, rpc: Rpc) -> None:
    headers = [("Authorization", "Bearer wtok")]
    with trio.fail_after(10):
        async with trio_websocket.open_websocket_url(ws_url(server), extra_headers=headers) as ws, \
                trio.open_nursery() as nursery:
            first = LinkClient(ws)
            nursery.start_soon(first.read)
            await first.register()
            task_id, grant = await claim_offered(first, rpc)
            nursery.cancel_scope.cancel()
        async with trio_websocket.open_websocket_url(ws_url(server), extra_headers=headers) as ws, \
                trio.open_nursery() as nursery:
            second = LinkClient(ws)
            nursery.start_soon(second.read)
            await second.register()
            lease = wl.LeaseRef(task_id=task_id, attempt_id=grant.attempt_id or "")
            hb = await second.ok("heartbeat", wl.HeartbeatBody(
                worker_id="wrk-1", agent="echo", status="processing", active_tasks=1,
                leases=[lease]))
            assert [r.attempt_id for r in hb.renewed] == [grant.attempt_id]
            rel = await second.ok("release", wl.ReleaseBody(
                task_id=task_id, attempt_id=lease.attempt_id, outcome="input-required",
                message={"messageId": "q", "role": "ROLE_AGENT", "parts": [{"text": "why?"}]}))
            assert rel.already_released is False
            nursery.cancel_scope.cancel()
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert task["status"]["message"]["parts"] == [{"text": "why?"}]
    assert task["status"]["message"]["taskId"] == task_id


async def test_output_marks_survive_a_server_restart(tmp_path: Any) -> None:
    """A frame applied just before a restart and resent after it is not applied twice."""
    cfg = ServerConfig(port=0, store="sqlite", data_dir=str(tmp_path), local_workers=0,
                       tokens=CLIENT_TOKENS, worker_tokens=WORKER_TOKENS)

    @asynccontextmanager
    async def connected() -> AsyncIterator[tuple[Rpc, LinkClient]]:
        async with open_server(cfg) as server, \
                httpx.AsyncClient(base_url=server.url, timeout=10) as c, \
                trio_websocket.open_websocket_url(
                    ws_url(server), extra_headers=[("Authorization", "Bearer wtok")]) as ws, \
                trio.open_nursery() as nursery:
            link = LinkClient(ws)
            nursery.start_soon(link.read)
            await link.register()
            yield Rpc(c, "1.0", headers={"Authorization": "Bearer ctok"}), link
            nursery.cancel_scope.cancel()

    with trio.fail_after(20):
        async with connected() as (rpc, link):
            task_id, grant = await claim_offered(link, rpc)
            assert grant.task is not None and grant.attempt_id is not None

            assert (await link.ok("output", output_frame(grant, 1, "a"))).acked_through == 1
            assert (await link.ok("output", output_frame(grant, 2, "b"))).acked_through == 2
        async with connected() as (rpc, link):
            # the worker never saw the ack of seq 2: it resends it, then goes on
            assert (await link.ok("output", output_frame(grant, 2, "b"))).acked_through == 2
            assert (await link.ok("output", output_frame(grant, 3, "c"))).acked_through == 3
            task = await rpc.call("GetTask", {"id": task_id})
    assert task["artifacts"][0]["parts"] == [{"text": "a"}, {"text": "b"}, {"text": "c"}]


async def test_a_release_carries_the_last_output_frame_once(rpc: Rpc, link: LinkClient) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        assert grant.task is not None and grant.attempt_id is not None

        assert (await link.ok("output", output_frame(grant, 1, "a"))).acked_through == 1
        att = grant.attempt_id
        gap = wl.ReleaseBody(task_id=task_id, attempt_id=att, outcome="completed",
                             output=output_frame(grant, 3, "c"))
        err = await link.refused("release", gap)
        assert err.code == wl.INVALID_FRAME and "gap" in err.message
        release = wl.ReleaseBody(task_id=task_id, attempt_id=att, outcome="completed",
                                 output=output_frame(grant, 2, "b"))
        assert (await link.ok("release", release)).already_released is False
        assert (await link.ok("release", release)).already_released is True  # resent
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"] == [{"text": "a"}, {"text": "b"}]


async def test_a_release_and_its_next_output_frame_are_one_write(
    server: RunningServer, rpc: Rpc, link: LinkClient
) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        await trio.testing.wait_all_tasks_blocked()
        before = server.store.statistics().committed_writes
        release = wl.ReleaseBody(task_id=task_id, attempt_id=grant.attempt_id,
                                 outcome="completed", output=output_frame(grant, 1, "a"),
                                 artifacts=[Artifact(artifact_id="a-1", parts=[Part(text="a")])])
        assert (await link.ok("release", release)).already_released is False
        assert server.store.statistics().committed_writes == before + 1
        events = await server.store.read_events(task_id, 0)
    kinds = [("artifact" if e.event.artifact_update else e.event.status_update.status.state.value
              if e.event.status_update else "task") for e in events]
    assert kinds[-2:] == ["artifact", "TASK_STATE_COMPLETED"]  # the streamed artifact once
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_release_whose_frame_was_applied_adds_only_the_outcome(
    rpc: Rpc, link: LinkClient
) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        assert (await link.ok("output", output_frame(grant, 1, "a"))).acked_through == 1
        release = wl.ReleaseBody(task_id=task_id, attempt_id=grant.attempt_id,
                                 outcome="completed", output=output_frame(grant, 1, "a"))
        assert (await link.ok("release", release)).already_released is False
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"] == [{"text": "a"}]


async def test_a_release_with_a_bad_output_frame_is_refused_and_changes_nothing(
    rpc: Rpc, link: LinkClient
) -> None:
    with trio.fail_after(10):
        await link.register()
        task_id, grant = await claim_offered(link, rpc)
        before = await rpc.call("GetTask", {"id": task_id})
        frame = output_frame(grant, 1, "a")
        # (a frame that breaks the lifecycle ends the attempt instead: see
        # tests/test_illegal_emission.py)
        other = frame.model_copy(update={"events": [working("another-task",
                                                            grant.task.context_id)]})
        err = await link.refused("release", wl.ReleaseBody(
            task_id=task_id, attempt_id=grant.attempt_id, outcome="completed", output=other))
        assert err.code == wl.INVALID_FRAME and "another-task" in err.message
        after = await rpc.call("GetTask", {"id": task_id})
        assert after == before
        # the attempt still holds the task: the good frame and release go through
        release = wl.ReleaseBody(task_id=task_id, attempt_id=grant.attempt_id,
                                 outcome="completed", output=frame)
        assert (await link.ok("release", release)).already_released is False
        task = await rpc.call("GetTask", {"id": task_id})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"] == [{"text": "a"}]


async def test_a_worker_that_disconnects_is_unregistered(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with trio_websocket.open_websocket_url(
            ws_url(server), extra_headers=[("Authorization", "Bearer wtok")]
        ) as ws, trio.open_nursery() as nursery:
            client = LinkClient(ws)
            nursery.start_soon(client.read)
            await client.register()
            assert server.dispatcher.statistics().workers == 1
            nursery.cancel_scope.cancel()
        while server.dispatcher.statistics().workers:  # noqa: ASYNC110 (the server saw the close)
            await trio.sleep(0.01)


async def test_a_stopping_server_drains_its_workers_then_tells_them_to_go_away() -> None:
    """Drain first (a worker too old to know goaway stops claiming here), then goaway;
    this bare worker ignores it, and the server cuts it off after its handover time."""
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            got: list[wl.Frame] = []
            async with open_server(config(handover_timeout=0.5)) as server:
                ws = await trio_websocket.connect_websocket_url(
                    outer, ws_url(server), extra_headers=[("Authorization", "Bearer wtok")])
                client = LinkClient(ws)

                async def read() -> None:
                    with contextlib.suppress(trio_websocket.ConnectionClosed):
                        await client.read()

                outer.start_soon(read)
                await client.register()
                # a claim without a task id is a poll; nothing waits
                reply = await client.ok("claim", wl.ClaimBody(worker_id="wrk-1"))
                assert reply == wl.ClaimReply(granted=False, reason=wl.NOTHING_QUEUED)
            # the server is gone; what it pushed on its way out is in the channel
            while True:
                try:
                    got.append(client.pushes.receive_nowait())
                except trio.WouldBlock:
                    break
            outer.cancel_scope.cancel()
    assert [(f.op, f.body) for f in got] == [
        ("drain", wl.DrainBody(reason="the server is shutting down")),
        ("goaway", wl.GoAwayBody(reason="the server is shutting down"))]
