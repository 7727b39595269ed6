"""The agent of ``python -m bench subscribers``: streams once released.

`gated` (``--agent bench.stream_agent:gated``) behaves like a streaming agent
whose output is held back until the benchmark says go, so that every subscriber
can be connected before the first event flows. A message whose text is
``stream N [SECONDS]`` makes a task that waits at the gate (the file named by
the ``BENCH_GATE`` environment variable appearing), then emits N events: a
working status with a message, N - 2 chunks of one text artifact (SECONDS, 0 by
default, before each: the pace of a model's output), the completion. Any
other text is echoed at once (the control client's blocking SendMessage).

All waiting tasks share one poller per gate path: 1,000 tasks polling the file
each would be load the control client's latency measures.
"""

from __future__ import annotations

import os

import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from runtime.agents.echo import run_echo

__all__ = ["gated", "wait_gate"]

POLL = 0.05
"""Seconds between looks at the gate file."""


class _Gate:
    def __init__(self) -> None:
        self.open = False
        self.polling = False
        self.changed = trio.Event()


_gates: dict[str, _Gate] = {}


async def wait_gate(path: str) -> None:
    """Return once `path` exists. One waiter polls; the rest wait on an event, and
    one of them takes over if the poller is cancelled."""
    gate = _gates.setdefault(path, _Gate())
    while not gate.open:
        if gate.polling:
            await gate.changed.wait()
            continue
        gate.polling = True
        try:
            # Another process opens the gate: a file is the simplest signal between
            # them, and one stat() per POLL is no load.
            while not os.path.exists(path):  # noqa: ASYNC240, ASYNC110
                await trio.sleep(POLL)
            gate.open = True
        finally:
            gate.polling = False
            gate.changed.set()
            gate.changed = trio.Event()


async def run_gated(ctx: TaskContext, emit: Emitter) -> None:
    words = ctx.text.split()
    if len(words) not in (2, 3) or words[0] != "stream" or not words[1].isdigit():
        await run_echo(ctx, emit)
        return
    n = max(int(words[1]), 2)
    interval = float(words[2]) if len(words) == 3 else 0.0
    await wait_gate(os.environ.get("BENCH_GATE", "/nonexistent/bench-gate"))
    await emit.working("streaming")
    artifact_id = None
    chunks = n - 2
    for i in range(chunks):
        await trio.sleep(interval)
        artifact_id = await emit.artifact_text(
            f"chunk {i} ", artifact_id=artifact_id, name="stream", append=i > 0,
            last_chunk=i == chunks - 1)
    await emit.complete()


gated = AgentSpec(
    name="gated-stream",
    run=run_gated,
    description="Benchmark agent: 'stream N' waits for the gate, then streams N events; "
    "anything else is echoed.",
)


def _install_memory_probe() -> None:
    """With BENCH_TRACEMALLOC=DIR, trace allocations from import on and write a
    snapshot to DIR/<n>.snap on each SIGUSR2: the per-subscriber memory profile of
    `python -m bench subscribers --tracemalloc`, without touching the server."""
    out = os.environ.get("BENCH_TRACEMALLOC")
    if not out:
        return
    import signal
    import tracemalloc

    tracemalloc.start(8)
    count = [0]

    def dump(_sig: int, _frame: object) -> None:
        count[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(out, f"{count[0]}.snap"))

    signal.signal(signal.SIGUSR2, dump)


_install_memory_probe()
