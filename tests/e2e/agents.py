"""Agents the end-to-end tests load into real worker processes by import path.

`python -m runtime worker --agent tests.e2e.agents:slow_echo` runs `slow_echo`.
"""

from __future__ import annotations

import logging

import trio

from actors.agent import AgentSpec, Emitter, TaskContext

__all__ = ["CHUNKS", "CHUNK_DELAY", "STEP_DELAY", "counter", "slow_echo"]

log = logging.getLogger(__name__)

CHUNKS = 6
CHUNK_DELAY = 0.05
"""Seconds between chunks: about 0.3 s per task, so a killed worker dies with
tasks half streamed, not between them."""


def pieces(text: str, n: int = CHUNKS) -> list[str]:
    """`text` in n pieces (some may be empty) that join back to it."""
    step = -(-len(text) // n) or 1
    return [text[i * step:(i + 1) * step] for i in range(n)]


async def run_slow_echo(ctx: TaskContext, emit: Emitter) -> None:
    # A fresh artifact id per attempt, as an agent that does not think about
    # retries writes it: what the server does with a dead attempt's partial
    # artifact is part of what the test checks.
    artifact_id = None
    chunks = pieces(ctx.text)
    for i, piece in enumerate(chunks):
        if i:
            await trio.sleep(CHUNK_DELAY)
        artifact_id = await emit.artifact_text(piece, artifact_id=artifact_id, name="echo",
                                               append=i > 0, last_chunk=i == len(chunks) - 1)
    await emit.complete()


slow_echo = AgentSpec(name="slow-echo", run=run_slow_echo,
                      description="Echoes the text back in six chunks, 50 ms apart.")


STEP_DELAY = 0.2
"""Seconds per step of `counter`."""


async def run_counter(ctx: TaskContext, emit: Emitter) -> None:
    # Says what it does like a real agent; logs the input of each attempt, which
    # must be the user's number on a retry too (not a status text such as "step 1/6").
    log.info("counter attempt", extra={"task_id": ctx.task_id, "input": ctx.text,
                                       "history_len": len(ctx.history)})
    await emit.working("thinking...")
    n = int(ctx.text)
    for i in range(1, n + 1):
        await emit.working(f"step {i}/{n}")
        await trio.sleep(STEP_DELAY)
    await emit.artifact_text(f"counted to {n}")
    await emit.complete()


counter = AgentSpec(name="counter", run=run_counter,
                    description="Counts to the number it is sent, one step per 0.2 s.")
