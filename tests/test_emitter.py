"""The agent API's Emitter against a recording sink (no server)."""

from __future__ import annotations

from actors.agent import Emitter


async def test_working_said_again_without_a_message_adds_no_event() -> None:
    class Sink:
        def __init__(self) -> None:
            self.events: list[object] = []

        async def emit(self, event: object, *, final: bool) -> None:
            self.events.append(event)

    sink = Sink()
    emit = Emitter(sink, task_id="t", context_id="c")
    await emit.working()
    await emit.working()  # nothing new
    await emit.working("now reading the file")  # a message is news
    await emit.working()
    assert len(sink.events) == 2
