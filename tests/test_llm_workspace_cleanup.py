"""An LLM task's workspace is removed when the task ends, or kept as configured:
through the real server, with a scripted provider writing a real file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import trio

from runtime.agents.llm_config import ConfigError, settings_from
from runtime.providers.base import TextDelta, ToolCall, ToolCallEvent
from runtime.providers.echo import EchoProvider
from runtime.tools.workspace import Workspace, WorkspaceCleanup, task_dir_name
from tests.test_llm_agent import WRITE, send, serving


async def wait_removed(path: Path) -> None:
    """Until `path` is gone: the agent removes it as its session ends, which may be a
    moment after the client was told the task ended."""
    while await trio.Path(path).exists():  # noqa: ASYNC110
        await trio.sleep(0.01)


def workspace(tmp_path: Path, task_id: str) -> Path:
    return tmp_path / "work" / task_dir_name(task_id)


def step_limit_script() -> list[list[object]]:
    return [[WRITE], *([ToolCallEvent(ToolCall(f"l{i}", "list_dir", {"path": "."}))]
                       for i in range(3))]


async def test_removed_when_the_task_completes_by_default(tmp_path: Path) -> None:
    provider = EchoProvider(script=[[WRITE], [TextDelta("done")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all") as rpc:
            task = await send(rpc, "write it")
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"
            await wait_removed(workspace(tmp_path, task["id"]))
    assert list((tmp_path / "work").iterdir()) == []


async def test_removed_when_the_task_fails_by_default(tmp_path: Path) -> None:
    provider = EchoProvider(script=step_limit_script())
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all", max_steps=2) as rpc:
            task = await send(rpc, "loop")
            assert task["status"]["state"] == "TASK_STATE_FAILED"
            await wait_removed(workspace(tmp_path, task["id"]))


async def test_keep_failed_keeps_a_failed_tasks_files_and_removes_a_completed_ones(
        tmp_path: Path) -> None:
    provider = EchoProvider(script=[*step_limit_script()[:2], [WRITE], [TextDelta("ok")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all", max_steps=2,
                           cleanup=WorkspaceCleanup.KEEP_FAILED) as rpc:
            failed = await send(rpc, "loop")
            assert failed["status"]["state"] == "TASK_STATE_FAILED"
            done = await send(rpc, "write it")
            assert done["status"]["state"] == "TASK_STATE_COMPLETED"
            await wait_removed(workspace(tmp_path, done["id"]))
    # the failed task's session ended before the second task started (one slot each turn)
    assert (workspace(tmp_path, failed["id"]) / "out.txt").read_text() == "written"


async def test_a_paused_task_keeps_its_workspace_until_it_ends(tmp_path: Path) -> None:
    ask = ToolCallEvent(ToolCall("q1", "ask_user", {"question": "Which branch?"}))
    provider = EchoProvider(script=[[WRITE, ask], [TextDelta("using main")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all") as rpc:
            paused = await send(rpc, "deploy")
            assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            ws = workspace(tmp_path, paused["id"])
            assert (ws / "out.txt").read_text() == "written"
            done = await send(rpc, "main", taskId=paused["id"], contextId=paused["contextId"])
            assert done["status"]["state"] == "TASK_STATE_COMPLETED"
            await wait_removed(ws)


def test_the_setting_comes_from_flags_or_the_file() -> None:
    args = argparse.Namespace(provider="echo", workspace_cleanup=None)
    assert settings_from(args).workspace_cleanup is WorkspaceCleanup.ALWAYS  # type: ignore[union-attr]
    from_file = settings_from(args, {"agent": {"workspace_cleanup": "keep-failed"}})
    assert from_file is not None and from_file.workspace_cleanup is WorkspaceCleanup.KEEP_FAILED
    args.workspace_cleanup = "never"
    assert settings_from(args).workspace_cleanup is WorkspaceCleanup.NEVER  # type: ignore[union-attr]
    args.workspace_cleanup = "sometimes"
    with pytest.raises(ConfigError, match="--workspace-cleanup: 'sometimes' is not one of "
                                          "always, keep-failed, never"):
        settings_from(args)


async def test_discard_removes_a_tree_and_never_follows_a_link(tmp_path: Path) -> None:
    base = tmp_path / "work"
    ws = Workspace.for_task(base, "t-1")
    (ws.root / "deep" / "er").mkdir(parents=True)
    (ws.root / "deep" / "er" / "f.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (ws.root / "link").symlink_to(outside)
    linked = Workspace.for_task(base, "t-2")
    os.rmdir(linked.root)
    linked.root.symlink_to(outside)  # the root itself replaced by a link
    with trio.fail_after(10):
        ws.discard()
        linked.discard()
        assert not ws.root.exists() and not linked.root.is_symlink()  # moved aside at once
        while os.listdir(base):  # noqa: ASYNC110
            await trio.sleep(0.01)  # the thread deletes what was moved aside
    assert (outside / "keep.txt").read_text() == "mine"
