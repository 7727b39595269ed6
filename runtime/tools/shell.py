"""run_shell: a command under /bin/sh in the workspace, in its own process group.

The command is a session leader (`start_new_session=True`), so everything it
starts shares one process group, and stopping it means signalling that group:
SIGTERM, then SIGKILL to whatever is still alive after `ToolLimits.kill_grace`.
That happens in every way a call can end: the command finished (background
jobs it left behind are stopped too), it timed out, or the trio scope around the
call was cancelled (CancelTask), where the stopping runs shielded so the call
does not return before the group is gone.

Not a sandbox: the command can read and write anything the worker's user can.
Only its working directory is the workspace, and its environment holds only the
variables named in `ToolLimits.shell_env`, so API keys in the worker's
environment do not reach it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from typing import Any

import trio

from runtime.tools.base import BaseTool, ToolError, ToolLimits, ToolResult
from runtime.tools.output import HeadTailBuffer
from runtime.tools.workspace import Workspace

__all__ = ["RunShell", "live_group_members", "stop_process_group"]

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
_POLL = 0.02
_KILL_WAIT = 5.0


def live_group_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are still running (zombies do not count).

    Reads /proc where there is one: an orphaned zombie stays in its group until
    init reaps it, and `killpg(pgid, 0)` would count it as alive.
    """
    try:
        names = os.listdir("/proc")
    except FileNotFoundError:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def stop_process_group(proc: trio.Process, grace: float) -> bool:
    """SIGTERM the group led by `proc`, SIGKILL it if anything is alive after `grace` seconds,
    and reap the leader. True if anything was still running. Shielded: it must finish even when
    the caller is being cancelled, or processes would outlive their task."""
    pgid = proc.pid
    with trio.CancelScope(shield=True):
        if proc.returncode is not None and not live_group_members(pgid):
            return False
        _signal_group(pgid, signal.SIGTERM)
        deadline = trio.current_time() + grace
        with trio.move_on_at(deadline):
            await proc.wait()
        if await _wait_group_empty(pgid, deadline):
            return True
        log.warning("process group survived SIGTERM; sending SIGKILL",
                    extra={"pgid": pgid, "pids": live_group_members(pgid), "grace": grace})
        _signal_group(pgid, signal.SIGKILL)
        await proc.wait()
        # SIGKILL is delivered, not yet acted on, when kill() returns: wait until the group
        # is really gone, so that "the call returned" means "nothing runs any more".
        if not await _wait_group_empty(pgid, trio.current_time() + _KILL_WAIT):
            log.error("process group still alive after SIGKILL", extra={
                "pgid": pgid, "pids": live_group_members(pgid)})
        return True


async def _wait_group_empty(pgid: int, deadline: float) -> bool:
    """Poll until no live process is left in the group (True) or the deadline (False).
    Polling: there is no event for a process that is not our child exiting."""
    while True:
        if not live_group_members(pgid):
            return True
        if trio.current_time() >= deadline:
            return False
        await trio.sleep(_POLL)


class RunShell(BaseTool):
    name = "run_shell"
    read_only = False

    def __init__(self, limits: ToolLimits | None = None) -> None:
        super().__init__(limits)
        lim = self.limits
        self.description = (
            "Run a shell command (/bin/sh -c) with the workspace as its working directory. "
            "stdout and stderr come back together, followed by the exit code. Output beyond "
            f"{lim.shell_max_bytes} bytes keeps its start and end with a '[truncated N bytes]' "
            f"marker between them. The command is killed after `timeout` seconds (default "
            f"{lim.shell_timeout:g}); background processes are stopped when it exits.")
        self.parameters = {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run"},
                "timeout": {"type": "integer", "minimum": 1,
                            "maximum": int(lim.shell_max_timeout),
                            "description": f"Seconds before it is killed (default "
                                           f"{lim.shell_timeout:g})"},
            },
            "required": ["command"],
            "additionalProperties": False,
        }

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        command: str = args["command"]
        if not command.strip():
            raise ToolError("command is empty")
        timeout = args.get("timeout", self.limits.shell_timeout)
        env = {k: os.environ[k] for k in self.limits.shell_env if k in os.environ}
        out = HeadTailBuffer(self.limits.shell_max_bytes)
        try:
            proc = await trio.lowlevel.open_process(
                [SHELL, "-c", command], cwd=ws.root, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ToolError(f"could not start {SHELL}: {exc.strerror or exc}") from None
        log.debug("run_shell started", extra={"pid": proc.pid, "timeout": timeout})
        assert proc.stdout is not None
        timed_out = False
        try:
            async with trio.open_nursery() as nursery:
                eof = trio.Event()
                nursery.start_soon(self._pump, proc.stdout, out, eof)
                with trio.move_on_after(timeout) as deadline:
                    await proc.wait()
                timed_out = deadline.cancelled_caught
                background = await stop_process_group(proc, self.limits.kill_grace)
                # Output still in the pipe is read; a process that escaped the group and holds
                # the pipe open is not waited for.
                with trio.move_on_after(self.limits.kill_grace):
                    await eof.wait()
                nursery.cancel_scope.cancel()
        finally:
            await stop_process_group(proc, self.limits.kill_grace)
            with trio.CancelScope(shield=True):
                await proc.stdout.aclose()
        text = out.text()
        sep = "" if not text or text.endswith("\n") else "\n"
        if timed_out:
            return ToolResult(f"{text}{sep}[timed out after {timeout:g} s; the command and its "
                              "process group were killed]", is_error=True)
        code = proc.returncode
        status = f"[exit code {code}]" if code >= 0 else f"[killed by {_signal_name(-code)}]"
        if background and code >= 0:
            status += " [background processes it left running were stopped]"
        return ToolResult(f"{text}{sep}{status}")

    @staticmethod
    async def _pump(stream: trio.abc.ReceiveStream, out: HeadTailBuffer, eof: trio.Event
                    ) -> None:
        while data := await stream.receive_some(65536):
            out.write(data)
        eof.set()
