"""Agents for tests: each does what the user's text tells it to.

Commands (the message text): `echo ...` echoes; `wait` blocks until the test
sets the `gate` event (or the task is canceled); `sleep N` sleeps N seconds;
`ask` asks for input, and after the answer completes with it; `fail` raises;
`auth` asks to sign in, and after the answer completes; `reject` rejects; `reply`
answers with a direct message; `chunks N` streams N artifact chunks; `gated N`
streams N chunks, waits for the gate, then streams N more.
"""

from __future__ import annotations

import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from runtime.agents.echo import run_echo


class Controls:
    """Per-test handles on the scripted agent."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self._started: dict[str, trio.Event] = {}

    def mark_started(self, task_id: str) -> None:
        self.started.append(task_id)
        self._started.setdefault(task_id, trio.Event()).set()

    async def wait_started(self, task_id: str) -> None:
        """Until the agent has been called for this task."""
        await self._started.setdefault(task_id, trio.Event()).wait()


def scripted_agent(controls: Controls | None = None) -> AgentSpec:
    c = controls or Controls()

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        c.mark_started(ctx.task_id)
        cmd, _, arg = ctx.text.strip().partition(" ")
        try:
            if cmd == "wait":
                await c.gate.wait()
                await emit.complete("gate opened")
            elif cmd == "sleep":
                await trio.sleep(float(arg or "1"))
                await emit.complete("slept")
            elif cmd == "ask":
                if ctx.history:  # the answer to our question
                    await emit.artifact_text(f"answer: {ctx.text}")
                    await emit.complete()
                else:
                    await emit.input_required("what is your name?")
            elif cmd == "auth":
                if ctx.history:  # signed in
                    await emit.complete(f"signed in: {ctx.text}")
                else:
                    await emit.auth_required("sign in first")
            elif cmd == "fail":
                raise RuntimeError("scripted failure")
            elif cmd == "reject":
                await emit.reject("not doing that")
            elif cmd == "reply":
                await emit.reply(f"direct: {arg}")
            elif cmd == "gated":
                aid = None
                n = int(arg or "3")
                for i in range(2 * n):
                    if i == n:
                        await c.gate.wait()
                    aid = await emit.artifact_text(f"c{i}", artifact_id=aid, append=i > 0,
                                                   last_chunk=i == 2 * n - 1)
            elif cmd == "chunks":
                aid = None
                n = int(arg or "3")
                for i in range(n):
                    aid = await emit.artifact_text(f"c{i}", artifact_id=aid, append=i > 0,
                                                   last_chunk=i == n - 1)
            else:
                await run_echo(ctx, emit)
        except trio.Cancelled:
            c.cancelled.append(ctx.task_id)
            raise

    return AgentSpec(name="scripted", run=run, description="test agent")
