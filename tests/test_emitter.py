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


async def test_a_status_the_lifecycle_forbids_is_refused_before_it_is_sent() -> None:
    from actors.agent import AgentProtocolError, IllegalEmission
    from protocol.models import TaskState
    from protocol.states import IllegalTransition

    class Sink:
        def __init__(self) -> None:
            self.events: list[object] = []

        async def emit(self, event: object, *, final: bool) -> None:
            self.events.append(event)

    sink = Sink()
    emit = Emitter(sink, task_id="t", context_id="c", state=TaskState.SUBMITTED)
    await emit.working()
    for state in (TaskState.SUBMITTED, TaskState.UNSPECIFIED):
        try:
            await emit.status(state)
        except IllegalEmission as exc:
            assert isinstance(exc, AgentProtocolError) and isinstance(exc, IllegalTransition)
            assert (exc.old, exc.new) == (TaskState.WORKING, state)
            assert "task t" in str(exc)
        else:
            raise AssertionError(f"{state} was emitted")
    assert len(sink.events) == 1 and emit.state is TaskState.WORKING
    # a continued task starts from where the client left it: working is allowed
    resumed = Emitter(sink, task_id="t", context_id="c", state=TaskState.INPUT_REQUIRED)
    await resumed.working()
    assert resumed.state is TaskState.WORKING
