"""run_shell: output, exit codes, caps, timeout, and the process group dying with the call.

These run real processes, so they use real time (small timeouts and grace periods).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from runtime.tools import RunShell, ToolLimits, ToolResult, Workspace, live_group_members
from tests.tools.conftest import call

FAST = ToolLimits(kill_grace=0.3)


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for init to reap it (it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def test_output_and_exit_code(ws: Workspace) -> None:
    result = await call(RunShell(FAST), {"command": "echo out; echo err >&2; exit 3"}, ws)
    assert result == ToolResult("out\nerr\n[exit code 3]")  # non-zero exit is not a tool error
    result = await call(RunShell(FAST), {"command": "printf 'no newline'"}, ws)
    assert result.output == "no newline\n[exit code 0]"
    result = await call(RunShell(FAST), {"command": "no-such-command-xyz"}, ws)
    assert "[exit code 127]" in result.output
    result = await call(RunShell(FAST), {"command": "kill -9 $$"}, ws)
    assert result.output == "[killed by SIGKILL]"
    result = await call(RunShell(FAST), {"command": "   "}, ws)
    assert result == ToolResult("run_shell: command is empty", is_error=True)


async def test_environment_is_scrubbed(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    command = 'echo "${OPENAI_API_KEY-unset} $LANG"; cat'  # cat: stdin is /dev/null
    result = await call(RunShell(FAST), {"command": command}, ws)
    assert result.output == "unset C.UTF-8\n[exit code 0]"


async def test_output_is_capped_head_and_tail(ws: Workspace) -> None:
    tool = RunShell(ToolLimits(shell_max_bytes=100))
    command = "seq 1 2000; echo LAST"  # 8893 bytes + 5
    result = await call(tool, {"command": command}, ws)
    head, rest = result.output.split("\n[truncated ", 1)
    assert head == "\n".join(str(i) for i in range(1, 21))  # the first 50 bytes
    dropped, tail = rest.split(" bytes]\n", 1)
    assert int(dropped) == 8898 - 100
    assert tail.endswith("1999\n2000\nLAST\n[exit code 0]") and len(tail.encode()) == 50 + 13


async def test_everything_in_the_pipe_is_read_after_exit(ws: Workspace) -> None:
    result = await call(RunShell(), {"command": "head -c 300000 /dev/zero | tr '\\0' a"}, ws)
    assert result.output.endswith("[exit code 0]")
    assert "[truncated 267232 bytes]" in result.output  # 300000 - 32 KiB


async def test_timeout_kills_the_group(ws: Workspace) -> None:
    tool = RunShell(FAST)
    command = "echo before; sleep 30 & echo $! > bg.pid; sleep 30"
    start = trio.current_time()
    result = await call(tool, {"command": command, "timeout": 1}, ws)
    elapsed = trio.current_time() - start
    assert result == ToolResult(
        "before\n[timed out after 1 s; the command and its process group were killed]",
        is_error=True)
    assert 1 <= elapsed < 1 + 2 * FAST.kill_grace + 1
    assert gone(int((ws.root / "bg.pid").read_text()))


async def test_background_jobs_are_stopped_when_the_command_exits(ws: Workspace) -> None:
    result = await call(RunShell(FAST), {"command": "sleep 30 & echo $!"}, ws, seconds=5)
    pid = int(result.output.split("\n")[0])
    assert result.output == (f"{pid}\n[exit code 0] [background processes it left running "
                             "were stopped]")
    assert gone(pid)


@pytest.mark.parametrize("ignores_term", [False, True], ids=["sigterm", "sigkill"])
async def test_cancelling_the_call_kills_the_whole_process_group(
        ws: Workspace, ignores_term: bool, caplog: pytest.LogCaptureFixture) -> None:
    """The agent loop's scope is cancelled (CancelTask) while a command runs: when the call
    returns, the shell and its grandchild are gone, escalating to SIGKILL if TERM is ignored."""
    fifo = ws.root / "pids.fifo"
    os.mkfifo(fifo)
    trap = "trap '' TERM; " if ignores_term else ""
    command = f'{trap}sleep 30 & echo "$$ $!" > pids.fifo; wait'
    results: list[ToolResult] = []
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            results.append(await RunShell(FAST).run({"command": command}, ws))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            text = await trio.to_thread.run_sync(fifo.read_text, abandon_on_cancel=True)
            shell, grandchild = map(int, text.split())
            assert not gone(shell) and not gone(grandchild)
            assert sorted(live_group_members(shell)) == sorted([shell, grandchild])
            start = trio.current_time()
            scope.cancel()
        took = trio.current_time() - start
    assert results == []  # cancelled, no result
    assert gone(shell) and gone(grandchild)
    assert live_group_members(shell) == []
    escalated = [r for r in caplog.records if r.getMessage().startswith(
        "process group survived SIGTERM")]
    if ignores_term:
        assert took >= FAST.kill_grace  # TERM was ignored: SIGKILL after the grace period
        assert [r.pgid for r in escalated] == [shell]
    else:
        assert escalated == []
