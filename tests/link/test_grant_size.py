"""A claim grant stays well below the worker's 16 MiB message limit, whatever came before.

A grant carries the task, the run's message and history and (for workers that
ask) the earlier tasks of its context. It used to carry the task's artifacts and
every earlier task's whole answer, so after a turn that produced more than 16
MiB of output (which output frames carry in pieces) the next grant could not
reach the worker: the WebSocket closed with 1009 and the claim looped.

Real server and real worker over /worker/ws on loopback for a continued task and
for a later task of the context; `build_grant` alone for a grant whose every
part is large.
"""

from __future__ import annotations

import httpx
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.dispatcher import Claim
from actors.store_port import DispatchState, TaskRecord
from protocol import worker_link as wl
from protocol.models import Artifact, Message, Part, Role, Task, TaskState, TaskStatus
from runtime.link.grant_bound import CONTENT_LEFT_OUT, CONTEXT_ANSWER_CHARS, GRANT_BYTES
from runtime.link.grants import build_grant
from tests.conftest import user_message
from tests.link.test_large_output import MIB, finished, remote

TIMEOUT = 60
BIG = 17 * MIB  # over the WebSocket's message limit on its own


def text(message: Message) -> str:
    return "".join(p.text or "" for p in message.parts)


async def big_output(emit: Emitter) -> None:
    """17 MiB of text in 1 MiB chunks of one artifact."""
    for i in range(BIG // MIB):
        await emit.artifact_text("a" * MIB, artifact_id="out", append=i > 0,
                                 last_chunk=i == BIG // MIB - 1)


async def send(client: httpx.AsyncClient, text: str, **message: str) -> dict[str, object]:
    r = await client.post("/", json={
        "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
        "params": {"message": user_message(text, **message),
                   "configuration": {"returnImmediately": True}}},
        headers={"A2A-Version": "1.0"})
    assert r.status_code == 200, r.text
    task = r.json()["result"]["task"]
    assert isinstance(task, dict)
    return task


async def test_a_later_task_of_a_context_with_a_huge_answer_runs() -> None:
    seen: list[TaskContext] = []

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        if ctx.text == "write a lot":
            await big_output(emit)
        else:
            seen.append(ctx)
            await emit.complete("read it")

    agent = AgentSpec(name="talker", run=run, context_history=True)
    with trio.fail_after(TIMEOUT):
        async with remote(agent) as server, \
                httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            first = await send(client, "write a lot")
            assert (await finished(server, str(first["id"]))).state is TaskState.COMPLETED
            second = await send(client, "what did you write?", contextId=str(first["contextId"]))
            record = await finished(server, str(second["id"]))
    assert record.state is TaskState.COMPLETED and record.dispatch.attempts == 1
    (ctx,) = seen
    assert [text(m) for m in ctx.context][0] == "write a lot"
    answer = text(ctx.context[-1])
    assert answer.startswith("a" * CONTEXT_ANSWER_CHARS)
    assert f"{BIG - CONTEXT_ANSWER_CHARS} more characters" in answer, answer[-200:]
    assert len(answer) < CONTEXT_ANSWER_CHARS + 200


async def test_a_task_continued_after_a_huge_turn_runs() -> None:
    seen: list[TaskContext] = []

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        if not ctx.history:
            await big_output(emit)
            await emit.input_required("more?")
        else:
            seen.append(ctx)
            await emit.complete("fine")

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="pauser", run=run)) as server, \
                httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            task = await send(client, "go")
            task_id = str(task["id"])
            await server.store.wait_record(task_id, lambda r: r.state is TaskState.INPUT_REQUIRED)
            await send(client, "yes", taskId=task_id)
            record = await finished(server, task_id)
    assert record.state is TaskState.COMPLETED and record.dispatch.attempts == 2
    (ctx,) = seen
    assert ctx.text == "yes" and [text(m) for m in ctx.history][0] == "go"
    (artifact,) = ctx.task.artifacts or ()
    assert artifact.artifact_id == "out" and artifact.parts == []
    # the task on the server keeps all of it; the grant says how much it left out
    (stored,) = record.task.artifacts or ()
    assert sum(len(p.text or "") for p in stored.parts) == BIG
    assert artifact.metadata == {CONTENT_LEFT_OUT: {"parts": len(stored.parts), "bytes": BIG}}


def _msg(message_id: str, body: str, role: Role = Role.USER) -> Message:
    return Message(message_id=message_id, role=role, parts=[Part(text=body)],
                   task_id="t", context_id="c")


def test_every_part_of_a_grant_is_bounded() -> None:
    message = _msg("run", "m" * (8 * MIB))  # the run's input: carried whole
    history = [_msg(f"h{i}", f"{i:02d}" * (MIB // 2)) for i in range(24)]  # 24 MiB
    task = Task(id="t", context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
                history=[*history, message],
                artifacts=[Artifact(artifact_id="out", parts=[Part(text="z" * (40 * MIB))])])
    record = TaskRecord(task=task, owner="alice", seq=9, created_at=0.0, status_at=0.0,
                        dispatch=DispatchState(run_input=(24, "run")))
    claim = Claim(task_id="t", attempt_id="att-1", lease_expires_at=1.0, record=record)
    context = [_msg(f"c{i}", "c" * MIB, Role.AGENT) for i in range(20)]  # 20 MiB

    grant = build_grant(claim, context)
    size = len(wl.ack("w-1", grant))
    assert size <= GRANT_BYTES < 16 * MIB, size
    assert grant.message == message
    assert grant.task is not None and grant.task.history is None
    assert grant.task.artifacts is not None and grant.task.artifacts[0].parts == []
    history_out = grant.history or []
    # the newest history is kept, with a note in front saying how much is not
    kept = [m.message_id for m in history_out[1:]]
    assert kept == [f"h{i}" for i in range(24 - len(kept), 24)] and 0 < len(kept) < 24
    assert f"{24 - len(kept)} earlier messages" in text(history_out[0])
    # the context gets what is left: none of it fits beside 8 MiB of message and
    # the history, which come first; a note says so
    assert grant.context is not None and len(grant.context) == 1
    assert "20 earlier messages" in text(grant.context[0])
