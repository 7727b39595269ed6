"""A2AService: every A2A operation on the canonical (1.0) models.

Bindings (JSON-RPC of either generation, HTTP+JSON) translate their wire shapes
into these calls and render what comes back; the semantics live here once:
blocking and non-blocking send, continuing a task, history length, list filters
and cursors, cancellation, subscriptions and push configs. Each call takes the
caller's principal; a task is visible only to the principal that created it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import attrs
import trio

from actors.dispatcher import RunRequest, route_from_metadata
from actors.event_feed import EventFeed
from actors.push_configs import PushConfigs, PushWatcher
from actors.release import CallRelease
from actors.store_port import DispatchState, StoredEvent, TaskQuery, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from protocol.ids import new_uuid
from protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    parse_timestamp,
)
from protocol.states import IllegalTransition, ends_stream, is_interrupted, is_terminal

__all__ = ["A2AService", "Dispatcher", "SendOutcome", "ServiceSettings"]

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Where accepted tasks go to be run: the dispatcher's queue (actors.dispatcher)."""

    async def submit(self, req: RunRequest) -> None: ...

    async def cancel(self, task_id: str) -> bool: ...


@attrs.frozen
class ServiceSettings:
    push_notifications: bool = True
    allow_private_push_urls: bool = False
    """Allow webhook URLs on loopback/private/link-local addresses (tests, closed networks)."""
    cancel_timeout: float = 10.0
    """How long CancelTask waits for a running agent to wind down."""
    default_page_size: int = 50
    keepalive: float = 15.0
    """Seconds of silence after which a stream gets a keep-alive (SSE comment)."""
    traceparent: Callable[[], str | None] | None = None  # tracing on: kept for the worker
    release: CallRelease = attrs.field(factory=CallRelease, eq=False)
    """A stopping server's end of the grace: blocking sends answer with the task as it is."""


@attrs.frozen
class SendOutcome:
    """The result of SendMessage: the task, or the agent's direct reply."""

    record: TaskRecord
    message: Message | None = None


def encode_cursor(cursor: tuple[float, str]) -> str:
    raw = json.dumps([cursor[0], cursor[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, task_id = json.loads(raw)
        return float(at), str(task_id)
    except (ValueError, TypeError) as exc:
        raise InvalidParamsError(f"pageToken {token!r} is not a token this server issued") from exc


def shape_task(task: Task, history_length: int | None, *, include_artifacts: bool = True) -> Task:
    """Apply historyLength (None: all, 0: none, n: the last n) and includeArtifacts."""
    update: dict[str, object] = {}
    if history_length is not None and task.history is not None:
        update["history"] = task.history[-history_length:] if history_length > 0 else None
    if not include_artifacts:
        update["artifacts"] = None
    return task.model_copy(update=update) if update else task


class A2AService:
    def __init__(
        self,
        store: ServerTaskStore,
        dispatcher: Dispatcher,
        *,
        push: PushWatcher | None = None,
        settings: ServiceSettings = ServiceSettings(),
        new_id: Callable[[], str] = new_uuid,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self.settings = settings
        self._new_id = new_id
        self.push_configs = PushConfigs(
            store, push, enabled=settings.push_notifications,
            allow_private=settings.allow_private_push_urls,
            default_page_size=settings.default_page_size, visible=self._visible,
        )

    @property
    def store(self) -> ServerTaskStore:
        return self._store

    # --- lookup -------------------------------------------------------------------

    async def _visible(self, task_id: str, principal: str) -> TaskRecord:
        record = await self._store.get_task(task_id)
        if record is None or record.owner != principal:
            raise TaskNotFoundError(f"task {task_id!r} not found", metadata={"taskId": task_id})
        return record

    # --- send -----------------------------------------------------------------------

    async def _accept(self, req: SendMessageRequest, principal: str,
                      new_task_id: str | None = None) -> TaskRecord:
        """Create or continue the task a message addresses, and dispatch it; a new
        task gets `new_task_id` if given (a 0.1 client's own id, `actors.client_ids`)."""
        msg = req.message
        if not msg.parts:
            raise InvalidParamsError("message.parts: a message needs at least one part")
        cfg = req.configuration
        push_cfg = cfg.task_push_notification_config if cfg else None
        if push_cfg is not None:
            self.push_configs.require_enabled()
        trace_parent = self.settings.traceparent() if self.settings.traceparent else None
        if msg.task_id:
            record = await self._visible(msg.task_id, principal)
            task = record.task
            if msg.context_id and msg.context_id != task.context_id:
                raise InvalidParamsError(
                    f"message.contextId {msg.context_id!r} does not match the context "
                    f"{task.context_id!r} of task {task.id!r}"
                )
            if is_terminal(task.status.state):
                raise UnsupportedOperationError(
                    f"task {task.id!r} is {task.status.state.value} and accepts no more "
                    "messages; send without taskId to start a new task",
                    metadata={"taskId": task.id},
                )
            if not is_interrupted(task.status.state):
                raise UnsupportedOperationError(
                    f"task {task.id!r} is still {task.status.state.value}; it accepts a new "
                    "message once it asks for input",
                    metadata={"taskId": task.id},
                )
            msg = msg.model_copy(update={"context_id": task.context_id})
            resumed = StreamResponse(
                status_update=TaskStatusUpdateEvent(
                    task_id=task.id,
                    context_id=task.context_id,
                    status=TaskStatus(state=TaskState.SUBMITTED),
                )
            )
            try:
                record = await self._store.write(task.id, (resumed,), add_history=(msg,))
            except IllegalTransition as exc:  # ended concurrently
                raise UnsupportedOperationError(f"task {task.id!r} cannot continue: {exc}") from exc
            if push_cfg is not None:
                await self.push_configs.put(record, push_cfg, principal, from_seq=record.seq - 1)
        else:
            task_id = new_task_id or self._new_id()
            context_id = msg.context_id or self._new_id()
            msg = msg.model_copy(update={"task_id": task_id, "context_id": context_id})
            task = Task(
                id=task_id,
                context_id=context_id,
                status=TaskStatus(state=TaskState.SUBMITTED),
                history=[msg],
            )
            configs = ()
            if push_cfg is not None:
                configs = (self.push_configs.record(task_id, push_cfg, principal, delivered_seq=0),)
            try:
                route = route_from_metadata(msg.metadata, req.metadata,
                                            names=("params.message.metadata", "params.metadata"))
            except ValueError as exc:
                raise InvalidParamsError(str(exc)) from None
            dispatch = DispatchState(
                route=route, request_metadata=dict(req.metadata) if req.metadata else None,
                accepted_output_modes=tuple(cfg.accepted_output_modes or ()) if cfg else (),
                trace_parent=trace_parent,
            )
            record = await self._store.create_task(task, owner=principal, push_configs=configs,
                                                   dispatch=dispatch)
            for c in configs:
                self.push_configs.watch(c)
        await self._dispatcher.submit(
            RunRequest(
                task_id=record.task_id,
                metadata=dict(req.metadata or {}),
                accepted_output_modes=tuple(cfg.accepted_output_modes or ()) if cfg else (),
                principal=principal, trace_parent=trace_parent,
            )
        )
        return record

    async def send_message(self, req: SendMessageRequest, principal: str = "",
                           new_task_id: str | None = None) -> SendOutcome:
        """SendMessage: waits for a terminal or interrupted state unless returnImmediately."""
        record = await self._accept(req, principal, new_task_id)
        cfg = req.configuration
        history_length = cfg.history_length if cfg else None
        if not (cfg and cfg.return_immediately):
            record = await self.settings.release.wait_record(
                self._store, record.task_id, lambda r: ends_stream(r.state))
            reply = _direct_reply(record.task)
            if reply is not None:
                return SendOutcome(record=record, message=reply)
        task = shape_task(record.task, history_length)
        if task is not record.task:
            record = attrs.evolve(record, task=task)
        return SendOutcome(record=record)

    async def send_streaming(
        self, req: SendMessageRequest, principal: str = "", new_task_id: str | None = None
    ) -> tuple[StoredEvent, AsyncIterator[StoredEvent | None]]:
        """SendStreamingMessage: the task as first event, then its live events."""
        record = await self._accept(req, principal, new_task_id)
        first = StoredEvent(
            task_id=record.task_id, seq=record.seq, event=StreamResponse(task=record.task)
        )
        return first, self.follow(record.task_id, record.seq)

    # --- tasks ----------------------------------------------------------------------

    async def get_task(self, req: GetTaskRequest, principal: str = "") -> Task:
        record = await self._visible(req.id, principal)
        return shape_task(record.task, req.history_length)

    async def list_tasks(self, req: ListTasksRequest, principal: str = "") -> ListTasksResponse:
        page_size = req.page_size or self.settings.default_page_size
        query = TaskQuery(
            owner=principal,
            context_id=req.context_id or None,
            state=req.status if req.status not in (None, TaskState.UNSPECIFIED) else None,
            status_after=(
                parse_timestamp(req.status_timestamp_after) if req.status_timestamp_after else None
            ),
            page_size=page_size,
            cursor=decode_cursor(req.page_token) if req.page_token else None,
        )
        page = await self._store.list_tasks(query)
        tasks = [
            shape_task(r.task, req.history_length, include_artifacts=bool(req.include_artifacts))
            for r in page.records
        ]
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=encode_cursor(page.next_cursor) if page.next_cursor else "",
            page_size=page_size,
            total_size=page.total_size,
        )

    async def cancel_task(self, req: CancelTaskRequest, principal: str = "") -> Task:
        record = await self._visible(req.id, principal)
        if is_terminal(record.state):
            raise TaskNotCancelableError(
                f"task {req.id!r} is {record.state.value} and cannot be canceled",
                metadata={"taskId": req.id},
            )
        event = StreamResponse(
            status_update=TaskStatusUpdateEvent(
                task_id=req.id,
                context_id=record.task.context_id,
                status=TaskStatus(state=TaskState.CANCELED),
            )
        )
        check: Callable[[TaskRecord], None] | None = _unleased
        for tries_left in reversed(range(3)):
            if await self._dispatcher.cancel(req.id):
                with trio.move_on_after(self.settings.cancel_timeout):
                    record = await self._store.wait_record(req.id,
                                                           lambda r: is_terminal(r.state))
                    return record.task
                log.warning("agent did not stop within the cancel timeout",
                            extra={"task_id": req.id})
                check = None  # end it all the same
            elif not tries_left:
                check = None  # the dispatcher keeps saying no worker holds it: believe it
            try:
                record = await self._store.write(req.id, (event,), check=check)
            except _Leased:
                continue  # a worker (of another replica) claimed it meanwhile: ask it
            except IllegalTransition:
                record = await self._visible(req.id, principal)
                if record.state is not TaskState.CANCELED:
                    raise TaskNotCancelableError(
                        f"task {req.id!r} ended as {record.state.value} before it could be "
                        "canceled", metadata={"taskId": req.id}) from None
            return record.task
        raise AssertionError("unreachable")

    async def subscribe(
        self, task_id: str, principal: str = "", *, last_event_id: int | None = None,
        through_pauses: bool = True,
    ) -> tuple[StoredEvent | None, AsyncIterator[StoredEvent | None]]:
        """SubscribeToTask: the current task first, then live events.

        The stream ends when the task reaches a terminal state; an `input-required`
        or `auth-required` task is followed through its pause (A2A 1.0.1 §3.1.6).
        `through_pauses=False` ends it at a pause too, as 0.3's `final` flag does.
        With `last_event_id` (SSE resume) there is no snapshot: the log is replayed
        from after that id, which also works on a task that has ended since.
        """
        record = await self._visible(task_id, principal)
        if last_event_id is not None:
            if last_event_id > record.seq:  # perhaps written by a replica not heard yet
                record = await self._store.get_task_fresh(task_id) or record
            if last_event_id < 0 or last_event_id > record.seq:
                raise InvalidParamsError(
                    f"Last-Event-ID {last_event_id} is not an event of task {task_id!r} "
                    f"(its log ends at {record.seq})"
                )
            return None, self.follow(task_id, last_event_id, through_pauses=through_pauses)
        if is_terminal(record.state):
            raise UnsupportedOperationError(
                f"task {task_id!r} is {record.state.value}; there is nothing to subscribe to",
                metadata={"taskId": task_id},
            )
        first = StoredEvent(task_id=task_id, seq=record.seq, event=StreamResponse(task=record.task))
        if not through_pauses and ends_stream(record.state):
            return first, _empty()
        return first, self.follow(task_id, record.seq, through_pauses=through_pauses)

    def follow(self, task_id: str, after_seq: int, *, through_pauses: bool = False
               ) -> EventFeed:
        """Committed events after `after_seq` until the task ends (or, unless
        `through_pauses`, pauses for input or auth): an `EventFeed`, which yields
        None after every `settings.keepalive` seconds without an event, so a stream
        can send a keep-alive, and hands a stream each commit's events at once."""
        return EventFeed(self._store, task_id, after_seq, keepalive=self.settings.keepalive,
                         through_pauses=through_pauses)

    # --- push configs (actors.push_configs) ---------------------------------------------

    async def create_push_config(
        self, cfg: TaskPushNotificationConfig, principal: str = ""
    ) -> TaskPushNotificationConfig:
        return await self.push_configs.create(cfg, principal)

    async def get_push_config(
        self, req: GetTaskPushNotificationConfigRequest, principal: str = ""
    ) -> TaskPushNotificationConfig:
        return await self.push_configs.get(req, principal)

    async def list_push_configs(
        self, req: ListTaskPushNotificationConfigsRequest, principal: str = ""
    ) -> ListTaskPushNotificationConfigsResponse:
        return await self.push_configs.list(req, principal)

    async def delete_push_config(
        self, req: DeleteTaskPushNotificationConfigRequest, principal: str = ""
    ) -> None:
        await self.push_configs.delete(req, principal)


class _Leased(Exception):
    """A worker holds the task: cancelling it is asked of the worker."""


def _unleased(record: TaskRecord) -> None:
    """Refuse to end a task canceled while a worker holds it (one of another replica's
    may have claimed it since the dispatcher looked)."""
    if record.dispatch.lease is not None:
        raise _Leased


def _direct_reply(task: Task) -> Message | None:
    """The agent's reply if the task ended with `Emitter.reply` (see actors.agent)."""
    if (
        task.status.state is TaskState.COMPLETED
        and task.status.message is None
        and not task.artifacts
        and task.history
        and task.history[-1].role is Role.AGENT
    ):
        return task.history[-1]
    return None


async def _empty() -> AsyncIterator[StoredEvent | None]:
    return
    yield
