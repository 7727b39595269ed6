"""Send many streaming tasks at once with the official a2a-sdk client (asyncio).

Run as a subprocess by the end-to-end tests (the SDK is asyncio-only):

    python tests/e2e/sdk_stream_script.py URL COUNT

Task i sends `text(i)` with message/stream (A2A 1.0, JSON-RPC). Stdout carries
one JSON object per line: `{"progress": "sent", "i": i, "task_id": ...}` when a
task's first event arrives, and a last line `{"report": {...}}` holding, per
task, every event of its stream and the task as GetTask returns it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx
from a2a.client import ClientConfig, create_client
from a2a.types import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)

STREAM_TIMEOUT = 40.0


def text(i: int) -> str:
    return f"task {i:03d}: the quick brown fox jumps over the lazy dog"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parts_text(parts: Any) -> str:
    return "".join(p.text for p in parts if p.WhichOneof("content") == "text")


def event_summary(ev: StreamResponse) -> dict[str, Any]:
    kind = ev.WhichOneof("payload")
    out: dict[str, Any] = {"kind": kind}
    if kind == "task":
        out.update(task_id=ev.task.id, state=TaskState.Name(ev.task.status.state),
                   artifacts=[{"artifact_id": a.artifact_id, "text": parts_text(a.parts)}
                              for a in ev.task.artifacts])
    elif kind == "status_update":
        u = ev.status_update
        out.update(task_id=u.task_id, state=TaskState.Name(u.status.state),
                   status_text=parts_text(u.status.message.parts))
    elif kind == "artifact_update":
        a = ev.artifact_update
        out.update(task_id=a.task_id, artifact_id=a.artifact.artifact_id,
                   text=parts_text(a.artifact.parts), append=a.append,
                   last_chunk=a.last_chunk)
    return out


def task_summary(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "state": TaskState.Name(t.status.state),
        "artifacts": [{"artifact_id": a.artifact_id, "text": parts_text(a.parts)}
                      for a in t.artifacts],
        "history": [parts_text(m.parts) for m in t.history],
    }


async def one(client: Any, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"i": i, "events": []}
    msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text(i))])
    try:
        async for ev in client.send_message(SendMessageRequest(message=msg)):
            summary = event_summary(ev)
            if not out["events"]:
                out["task_id"] = summary.get("task_id")
                emit({"progress": "sent", "i": i, "task_id": out["task_id"]})
            out["events"].append(summary)
    except Exception as exc:  # noqa: BLE001 - the report names it
        out["stream_error"] = f"{type(exc).__name__}: {exc}"[:500]
    if out.get("task_id"):
        try:
            task = await client.get_task(GetTaskRequest(id=out["task_id"]))
            out["final"] = task_summary(task)
        except Exception as exc:  # noqa: BLE001 - the report names it
            out["get_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return out


async def main(url: str, count: int) -> None:
    limits = httpx.Limits(max_connections=count + 8, max_keepalive_connections=count + 8)
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT, limits=limits) as http:
        config = ClientConfig(streaming=True, supported_protocol_bindings=["JSONRPC"],
                              httpx_client=http)
        client = await create_client(url, client_config=config)
        tasks = await asyncio.wait_for(
            asyncio.gather(*(one(client, i) for i in range(count))), STREAM_TIMEOUT)
        await client.close()
    emit({"report": {"tasks": tasks}})


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1].rstrip("/"), int(sys.argv[2])))
