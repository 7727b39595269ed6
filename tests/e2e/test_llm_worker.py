"""End to end: `python -m runtime worker --provider openai ...` against a fake
OpenAI-compatible server on loopback, scripted to call read_file then write_file.

Under `safe` the write is refused and the model is told so; under `all` the file
is written; under `ask` the task pauses input-required and the client approves
the call with a second message. The server's completion log line carries the
provider, model, tool-call count and tokens the worker reported.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from runtime.server import ServerConfig, open_server
from tests.conftest import Rpc, user_message
from tests.providers.fake_http import Received, Reply, open_fake_server, sse

ROOT = Path(__file__).resolve().parents[2]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                            "model": "m", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    body["usage"] = usage
    return sse(body)


def turn(*deltas: dict[str, Any], finish: str) -> Reply:
    return Reply(chunks=[chunk({"role": "assistant"}), *(chunk(d) for d in deltas),
                         chunk({}, finish=finish),
                         chunk(usage={"prompt_tokens": 10, "completion_tokens": 3,
                                      "total_tokens": 13}), sse("[DONE]")])


def call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)}}]}


class Model:
    """read_file, then write_file, then a final answer: by how many tool results it has seen."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, req: Received) -> Reply:
        if req.path.endswith("/models"):
            return Reply.json({"data": [{"id": "m"}]})
        body = req.json()
        self.requests.append(body)
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return turn(call("c1", "read_file", {"path": "notes.txt"}), finish="tool_calls")
        if len(results) == 1:
            return turn(call("c2", "write_file", {"path": "out.txt", "content": "hi"}),
                        finish="tool_calls")
        return turn({"content": "done"}, finish="stop")

    def tool_result(self, call_id: str) -> str:
        for body in reversed(self.requests):
            for m in body["messages"]:
                if m["role"] == "tool" and m.get("tool_call_id") == call_id:
                    return str(m["content"])
        raise AssertionError(f"no result for {call_id}")


@asynccontextmanager
async def world(policy: str, tmp_path: Path) -> AsyncIterator[tuple[Rpc, Model, Path]]:
    model = Model()
    workspace = tmp_path / "ws"
    async with open_fake_server(model) as fake, \
            open_server(ServerConfig(port=0, store="memory", local_workers=0)) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=15) as client, \
            trio.open_nursery() as nursery:
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "runtime", "worker", "--server", srv.url,
               "--provider", "openai", "--base-url", f"{fake.url}/v1", "--model", "m",
               "--approve", policy, "--workspace", str(workspace), "--log-level", "warning",
               # kept, so the tests can see what the model wrote (cleanup: its own tests)
               "--workspace-cleanup", "never"]
        proc = await nursery.start(partial(trio.run_process, cmd, env=env, cwd=str(ROOT),
                                           check=False))
        try:
            while srv.dispatcher.statistics().workers == 0:  # noqa: ASYNC110
                await trio.sleep(0.05)
            yield Rpc(client, "1.0"), model, workspace
        finally:
            proc.kill()
            nursery.cancel_scope.cancel()


async def send(rpc: Rpc, text: str, **kw: Any) -> dict[str, Any]:
    return (await rpc.call("SendMessage", {"message": user_message(text, **kw)}))["task"]


def written(workspace: Path) -> list[str]:
    return [p.read_text() for p in workspace.rglob("out.txt")]


async def test_safe_refuses_the_write(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with world("safe", tmp_path) as (rpc, model, workspace):
            task = await send(rpc, "copy the notes")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "refused" in model.tool_result("c2") and "'safe'" in model.tool_result("c2")
    assert "notes.txt" in model.tool_result("c1")  # read ran (the file is missing)
    assert written(workspace) == []
    assert model.requests[0]["model"] == "m" and model.requests[0]["stream"] is True


async def test_all_writes_the_file(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with world("all", tmp_path) as (rpc, model, workspace):
            task = await send(rpc, "copy the notes")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert written(workspace) == ["hi"]


async def test_ask_is_approved_by_a_second_message(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(40):
        async with world("ask", tmp_path) as (rpc, model, workspace):
            paused = await send(rpc, "copy the notes")
            assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert written(workspace) == []
            done = await send(rpc, "approve", taskId=paused["id"],
                              contextId=paused["contextId"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert written(workspace) == ["hi"]
    (report,) = [r for r in caplog.records if r.getMessage() == "task released over the link"
                 and getattr(r, "outcome", None) == "completed"]
    assert (report.provider, report.model) == ("openai", "m")  # type: ignore[attr-defined]
    # The whole task's figures, over both runs: the read (approved at once: read-only)
    # and the approved write; three model turns of 10 + 3 tokens each.
    assert report.tool_calls_count == 2  # type: ignore[attr-defined]
    assert report.tokens_input == 30 and report.tokens_output == 9  # type: ignore[attr-defined]
