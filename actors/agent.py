"""The agent API: how your own logic serves A2A tasks.

An agent is an async callable ``agent(ctx, emit)``. `ctx` (`TaskContext`) says
what was asked; `emit` (`Emitter`) is how the agent answers: status updates,
artifacts (text, file, data; streamed in chunks with append / last-chunk), a
direct reply, or ending the task as input-required, rejected or failed.

The server runs each call under supervision in its own cancel scope: CancelTask
cancels the scope, and the task ends canceled. Returning without ending the task
completes it; raising fails it with the error's message. Remote workers run
agents through this same API.

The emitter checks the task lifecycle (`protocol.states`) where the agent
emits: a status the task's state does not allow (e.g. `submitted` while
working) raises `IllegalEmission` in the agent and sends nothing. Left to the
server, such an event would be refused far from its cause, after the agent
had moved on.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
import trio

from protocol.ids import new_uuid
from protocol.models import (
    AgentSkill,
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.states import IllegalTransition, check_transition, ends_stream, is_terminal

__all__ = [
    "Agent",
    "AgentProtocolError",
    "AgentSpec",
    "Emitter",
    "EventSink",
    "IllegalEmission",
    "TaskContext",
]


class AgentProtocolError(RuntimeError):
    """The agent used the emitter in a way the task lifecycle does not allow."""


class IllegalEmission(AgentProtocolError, IllegalTransition):
    """A status the lifecycle does not allow from the task's state, refused by the
    emitter before anything was sent. Both an `AgentProtocolError` and an
    `IllegalTransition`, so that an agent may catch it as either."""

    def __init__(self, old: TaskState, new: TaskState, task_id: str) -> None:
        IllegalTransition.__init__(self, old, new)
        self.task_id = task_id
        self.args = (f"{self.args[0]} (task {task_id}): not emitted",)


@attrs.frozen
class TaskContext:
    """What the agent is asked to do."""

    task_id: str
    context_id: str
    message: Message
    """The user message that started or continued this task."""
    history: Sequence[Message]
    """Earlier messages of this task, oldest first (not including `message`)."""
    task: Task
    """The task as it stood when the agent was started, as a claim grant carries it
    (bounded in size): without its history (see `history` and `message`), and its
    artifacts without their parts (ids, names and metadata only; the metadata's
    `trio-a2a/contentLeftOut` says how much was left out)."""
    metadata: dict[str, Any] = attrs.field(factory=dict)
    """Request metadata sent with the message."""
    accepted_output_modes: Sequence[str] = ()
    """The output modes the client accepts (`acceptedOutputModes` of the send's
    configuration; a continuation's own replace them); () if none were named."""
    principal: str = ""
    """Who sent the task ("" when auth is off). Both reach workers in the claim grant."""
    context: Sequence[Message] = ()
    """The conversation of earlier tasks in the same contextId, oldest first: each
    task's messages, then its text artifacts as one agent message (cut to 64 KiB of
    text). A note in front says if older messages had to be left out. Filled only for
    workers that ask for it when registering (`open_worker(context_history=True)`)."""

    @property
    def text(self) -> str:
        """All text parts of the user message, joined by newlines."""
        return "\n".join(p.text for p in self.message.parts if p.text is not None)


class EventSink(Protocol):
    """Where an emitter's events go (the store in-process, the worker link remotely)."""

    async def emit(self, event: StreamResponse, *, final: bool) -> None: ...


class Emitter:
    """The agent's handle to answer its task. Every method writes one or two events."""

    def __init__(self, sink: EventSink, *, task_id: str, context_id: str,
                 state: TaskState | None = None) -> None:
        """`state` is the task's state when the agent starts (a worker passes its
        grant's): every status is checked against the lifecycle from there. None:
        unknown, so the first status is not checked (the server still is)."""
        self._sink = sink
        self.task_id = task_id
        self.context_id = context_id
        self._start = state
        self._state: TaskState | None = None
        self._replied = False

    @property
    def ended(self) -> bool:
        """True once the agent ended the task (terminal or interrupted state)."""
        return self._state is not None and ends_stream(self._state)

    @property
    def state(self) -> TaskState | None:
        """The last state this emitter reported (None before any status)."""
        return self._state

    def _check_open(self) -> None:
        if self.ended:
            assert self._state is not None
            raise AgentProtocolError(
                f"task {self.task_id} already ended as {self._state.value}; "
                "nothing more can be emitted"
            )

    def _check_move(self, state: TaskState) -> None:
        """`IllegalEmission` unless the lifecycle allows the task to move to `state`."""
        current = self._state if self._state is not None else self._start
        if current is None:
            return
        try:
            check_transition(current, state)
        except IllegalTransition:
            raise IllegalEmission(current, state, self.task_id) from None

    def _agent_message(self, content: str | Sequence[Part] | Message) -> Message:
        if isinstance(content, Message):
            return content.model_copy(
                update={"task_id": self.task_id, "context_id": self.context_id}
            )
        parts = [Part(text=content)] if isinstance(content, str) else list(content)
        return Message(
            message_id=new_uuid(),
            role=Role.AGENT,
            parts=parts,
            task_id=self.task_id,
            context_id=self.context_id,
        )

    async def status(
        self,
        state: TaskState,
        message: str | Sequence[Part] | Message | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Move the task to `state`, optionally with an agent message;
        `IllegalEmission` (nothing sent) if the lifecycle does not allow it."""
        self._check_open()
        self._check_move(state)
        status = TaskStatus(
            state=state, message=None if message is None else self._agent_message(message)
        )
        event = StreamResponse(
            status_update=TaskStatusUpdateEvent(
                task_id=self.task_id, context_id=self.context_id, status=status, metadata=metadata
            )
        )
        self._state = state
        await self._sink.emit(event, final=ends_stream(state))

    async def working(self, message: str | Sequence[Part] | None = None) -> None:
        """Report the task working. Without a message while it already is, there is
        nothing new to say: no event (the worker reports `working` before the agent
        starts, and agents often say it again first thing)."""
        if message is None and self._state is TaskState.WORKING:
            await trio.lowlevel.checkpoint_if_cancelled()  # still a cancellation point
            return
        await self.status(TaskState.WORKING, message)

    async def complete(self, message: str | Sequence[Part] | None = None) -> None:
        await self.status(TaskState.COMPLETED, message)

    async def fail(self, message: str | Sequence[Part] | None = None) -> None:
        await self.status(TaskState.FAILED, message)

    async def reject(self, message: str | Sequence[Part] | None = None) -> None:
        await self.status(TaskState.REJECTED, message)

    async def input_required(self, message: str | Sequence[Part] | None = None) -> None:
        """Pause the task until the client sends another message to it."""
        await self.status(TaskState.INPUT_REQUIRED, message)

    async def auth_required(self, message: str | Sequence[Part] | None = None) -> None:
        await self.status(TaskState.AUTH_REQUIRED, message)

    async def reply(self, content: str | Sequence[Part] | Message) -> None:
        """Answer with one agent message and complete the task.

        A blocking SendMessage whose task ended this way (no artifacts) returns
        the message itself instead of the task.
        """
        self._check_open()
        self._check_move(TaskState.COMPLETED)
        msg = self._agent_message(content)
        self._replied = True
        await self._sink.emit(StreamResponse(message=msg), final=False)
        await self.status(TaskState.COMPLETED)

    async def artifact(
        self,
        parts: Sequence[Part],
        *,
        artifact_id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        append: bool = False,
        last_chunk: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Add an artifact, or a chunk of one (`append=True` extends `artifact_id`).

        Returns the artifact id, to pass back when appending further chunks.
        """
        self._check_open()
        if self._state is not None and is_terminal(self._state):
            raise AgentProtocolError("artifacts cannot follow the end of a task")
        art = Artifact(
            artifact_id=artifact_id or new_uuid(),
            name=name,
            description=description,
            parts=list(parts),
            metadata=metadata,
        )
        await self._sink.emit(
            StreamResponse(
                artifact_update=TaskArtifactUpdateEvent(
                    task_id=self.task_id,
                    context_id=self.context_id,
                    artifact=art,
                    append=append or None,
                    last_chunk=last_chunk or None,
                )
            ),
            final=False,
        )
        return art.artifact_id

    async def artifact_text(self, text: str, **kw: Any) -> str:
        """A text/plain artifact or chunk; see `artifact` for the keywords."""
        return await self.artifact([Part(text=text, media_type="text/plain")], **kw)

    async def artifact_file(
        self,
        content: bytes | None = None,
        *,
        url: str | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        **kw: Any,
    ) -> str:
        """A file artifact, by content (bytes) or by reference (url)."""
        if (content is None) == (url is None):
            raise ValueError("give exactly one of content or url")
        if content is not None:
            part = Part(
                raw=base64.b64encode(content).decode("ascii"),
                media_type=media_type,
                filename=filename,
            )
        else:
            part = Part(url=url, media_type=media_type, filename=filename)
        return await self.artifact([part], **kw)

    async def artifact_data(
        self, value: Any, *, media_type: str = "application/json", **kw: Any
    ) -> str:
        """A structured-data artifact (any JSON value)."""
        return await self.artifact([Part(data=value, media_type=media_type)], **kw)


Agent = Callable[[TaskContext, Emitter], Awaitable[None]]
"""An agent: ``async def agent(ctx: TaskContext, emit: Emitter) -> None``."""


@attrs.frozen
class AgentSpec:
    """An agent and how the agent card describes it."""

    name: str
    run: Agent
    description: str = ""
    skills: Sequence[AgentSkill] = ()
    input_modes: Sequence[str] = ("text/plain",)
    output_modes: Sequence[str] = ("text/plain",)
    version: str = "0.1.0"
    context_history: bool = False
    """The agent reads `TaskContext.context` (the earlier tasks of the context):
    workers running it ask the server to send that with each claim."""

    def card_skills(self) -> list[AgentSkill]:
        """The skills an agent card lists for this agent: its own, or one named after it."""
        if self.skills:
            return list(self.skills)
        return [AgentSkill(id=self.name, name=self.name,
                           description=self.description or self.name, tags=[self.name])]
