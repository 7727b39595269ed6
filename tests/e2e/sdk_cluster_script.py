"""Send many tasks round-robin over several server replicas with the official a2a-sdk client.

Run as a subprocess by tests/e2e/test_cluster.py (the SDK is asyncio-only):

    python tests/e2e/sdk_cluster_script.py URL,URL,URL COUNT CONCURRENCY

Task i goes to replica `i % len(URLS)` with its own contextId and text(i), in one
of three modes by `(i // len(URLS)) % 3`: a blocking message/send, a
message/stream, or a message/send with `returnImmediately` followed by GetTask
polls. Replicas may die under it. When a request fails (the replica's
connection broke or was refused) the client does what an A2A client must: it
looks the task up by its contextId on the next replica (ListTasks); if the
task exists it follows it there (a cut stream resubscribes with
SubscribeToTask, anything else polls GetTask), and only if no replica has it
is the message sent again.

Stdout carries one JSON object per line: `{"progress": "done", "i": i}` as each
task finishes, and a last line `{"report": {...}}` with, per task, the replicas
it went through, every stream event (a `cut` marker where a stream broke), how
often it was re-sent, and the task as GetTask returns it at the end.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import httpx
from a2a.client import ClientConfig, create_client
from a2a.types import (
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from sdk_stream_script import emit, event_summary, parts_text  # beside this script

STEP_TIMEOUT = 30.0
POLL = 0.1
MODES = ("blocking", "streaming", "immediate")
TERMINAL = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED,
            TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED}


def text(i: int) -> str:
    return f"cluster task {i:03d}: the quick brown fox jumps over the lazy dog"


def task_summary(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "context_id": t.context_id,
        "state": TaskState.Name(t.status.state),
        "artifacts": [{"artifact_id": a.artifact_id, "text": parts_text(a.parts)}
                      for a in t.artifacts],
        "history": [parts_text(m.parts) for m in t.history if m.role == Role.ROLE_USER],
    }


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class Cluster:
    """Two SDK clients per replica: one streaming, one not."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.streaming: list[Any] = []
        self.plain: list[Any] = []

    async def open(self, http: httpx.AsyncClient) -> None:
        for url in self.urls:
            for streaming, into in ((True, self.streaming), (False, self.plain)):
                config = ClientConfig(streaming=streaming, supported_protocol_bindings=["JSONRPC"],
                                      httpx_client=http)
                into.append(await create_client(url, client_config=config))

    async def aclose(self) -> None:
        for client in (*self.streaming, *self.plain):
            await client.close()


async def one(cluster: Cluster, i: int) -> dict[str, Any]:
    n = len(cluster.urls)
    replica = i % n
    mode = MODES[(i // n) % len(MODES)]
    context_id = f"cluster-{i:03d}-{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"i": i, "mode": mode, "context_id": context_id, "events": [],
                           "replicas": [], "resent": 0, "errors": []}
    task: Task | None = None
    while task is None:
        out["replicas"].append(replica)
        try:
            task = await send(cluster, replica, mode, i, context_id, out)
            break
        except Exception as exc:  # noqa: BLE001 - a dead replica; the report names it
            out["errors"].append(f"send via {replica}: {_error(exc)}")
            if mode == "streaming":
                out["events"].append({"kind": "cut", "replica": replica})
        replica = (replica + 1) % n
        found = await find(cluster, replica, context_id, out)
        if found is None:
            out["resent"] += 1
            continue
        out["replicas"].append(replica)
        task = await follow(cluster, replica, mode, found, out)
    final = await settle(cluster, (replica + 1) % n, task.id, out)
    out["final"] = task_summary(final)
    emit({"progress": "done", "i": i})
    return out


async def send(cluster: Cluster, replica: int, mode: str, i: int, context_id: str,
               out: dict[str, Any]) -> Task:
    msg = Message(message_id=str(uuid.uuid4()), context_id=context_id, role=Role.ROLE_USER,
                  parts=[Part(text=text(i))])
    if mode == "streaming":
        last: Task | None = None
        async for ev in cluster.streaming[replica].send_message(SendMessageRequest(message=msg)):
            summary = event_summary(ev)
            out["task_id"] = summary.get("task_id", out.get("task_id"))
            out["events"].append(summary)
        last = await cluster.plain[replica].get_task(GetTaskRequest(id=out["task_id"]))
        return last
    config = SendMessageConfiguration(return_immediately=mode == "immediate")
    async for ev in cluster.plain[replica].send_message(
            SendMessageRequest(message=msg, configuration=config)):
        if ev.WhichOneof("payload") == "task":
            out["task_id"] = ev.task.id
            return ev.task
    raise RuntimeError("message/send answered without a task")


async def find(cluster: Cluster, replica: int, context_id: str,
               out: dict[str, Any]) -> Task | None:
    """The task of `context_id` as the cluster knows it, asked through `replica` and
    then the others (one of them may be down too)."""
    n = len(cluster.urls)
    for k in range(n):
        r = (replica + k) % n
        try:
            page = await cluster.plain[r].list_tasks(ListTasksRequest(context_id=context_id))
        except Exception as exc:  # noqa: BLE001 - try the next replica
            out["errors"].append(f"list via {r}: {_error(exc)}")
            continue
        if len(page.tasks) > 1:
            out["errors"].append(f"{len(page.tasks)} tasks in context {context_id}")
        return page.tasks[0] if page.tasks else None
    raise RuntimeError(f"no replica answered ListTasks for {context_id}")


async def follow(cluster: Cluster, replica: int, mode: str, task: Task,
                 out: dict[str, Any]) -> Task:
    """Carry on with a task that exists. A cut stream resubscribes there; if the task
    ended meanwhile (SubscribeToTask refuses a terminal task) GetTask's answer is the
    snapshot the stream goes on from, as a client folding a stream would take it."""
    out["task_id"] = task.id
    if mode != "streaming":
        return task
    if task.status.state not in TERMINAL:
        try:
            async for ev in cluster.streaming[replica].subscribe(
                    SubscribeToTaskRequest(id=task.id)):
                out["events"].append(event_summary(ev))
            out["resubscribed"] = True
            return task
        except Exception as exc:  # noqa: BLE001 - ended meanwhile, or this replica died too
            out["errors"].append(f"subscribe via {replica}: {_error(exc)}")
    final = await settle(cluster, replica, task.id, out)
    out["events"].append(event_summary(StreamResponse(task=final)))
    return final


async def settle(cluster: Cluster, replica: int, task_id: str, out: dict[str, Any]) -> Task:
    """GetTask until the task is terminal, through any replica that answers."""
    n = len(cluster.urls)
    while True:
        try:
            task = await cluster.plain[replica].get_task(GetTaskRequest(id=task_id))
            if task.status.state in TERMINAL:
                return task
        except Exception as exc:  # noqa: BLE001 - the replica died; ask the next one
            out["errors"].append(f"get via {replica}: {_error(exc)}")
            replica = (replica + 1) % n
        await asyncio.sleep(POLL)


async def main(urls: list[str], count: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=4 * concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def gated(i: int) -> dict[str, Any]:
        async with gate:
            return await asyncio.wait_for(one(cluster, i), STEP_TIMEOUT)

    async with httpx.AsyncClient(timeout=STEP_TIMEOUT, limits=limits) as http:
        cluster = Cluster(urls)
        await cluster.open(http)
        results = await asyncio.gather(*(gated(i) for i in range(count)), return_exceptions=True)
        await cluster.aclose()
    tasks = [r if isinstance(r, dict) else {"i": i, "failed": _error(r)}
             for i, r in enumerate(results)]
    emit({"report": {"tasks": tasks}})


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main([u.rstrip("/") for u in sys.argv[1].split(",")], int(sys.argv[2]),
                     int(sys.argv[3])))
