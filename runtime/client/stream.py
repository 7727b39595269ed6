"""One streaming call of the A2A client (SendStreamingMessage / SubscribeToTask) over SSE.

An `EventStream` is both an async iterator of 1.0 `StreamResponse`s and an async
context manager that closes the connection on exit, whatever happened: trio code
must not leave a response open when the consumer stops early or is cancelled.
It is a class rather than an async generator for that reason too (a generator
abandoned mid-stream is only closed by the garbage collector).

While reading, it folds the events into `task` (the latest task snapshot), keeps
`last_event_id` for resuming, and at the end leaves one metrics record on the
client. 0.3 agents mark the last status update `final`; the stream stops there
even if the server keeps the connection open.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Any, Protocol

import httpx
import trio

from protocol.models import Message, StreamResponse, Task, TaskState, TaskStatus
from protocol.sse import SSEDecoder
from protocol.states import IllegalTransition, apply_event
from runtime.client.errors import (
    A2AClientError,
    A2AConnectionError,
    connection_error,
    jsonrpc_error_member,
    status_error,
)
from runtime.client.metrics import Usage

__all__ = ["EventStream", "StreamOwner"]

CLOSE_TIMEOUT = 5.0


class StreamOwner(Protocol):
    """What a stream needs of the client that opened it (`A2AClient`)."""

    protocol: str

    def _rpc_error(self, method: str, error: Any) -> A2AClientError: ...

    def _decode(self, method: str, payload: bytes | str) -> Any: ...

    def _parse_result(self, method: str, result: Any) -> Any: ...

    def _record(self, method: str, start: float, first: float | None, events: int,
                error: BaseException | None, result: Task | Message | None,
                usage: Usage) -> None: ...
"""Seconds a close may take; it is shielded from cancellation, so it needs a bound."""


def _fold(task: Task | None, event: StreamResponse) -> Task | None:
    """The snapshot after `event`; lenient, since this is the agent's story, not ours."""
    if event.task is not None:
        return event.task
    if task is None:  # no Task event first (some 0.3 agents): start one from the event
        if (st := event.status_update) is not None:
            return Task(id=st.task_id, context_id=st.context_id, status=st.status)
        if (art := event.artifact_update) is not None:
            return Task(id=art.task_id, context_id=art.context_id,
                        status=TaskStatus(state=TaskState.WORKING), artifacts=[art.artifact])
        return None
    try:
        return apply_event(task, event)
    except (IllegalTransition, ValueError):
        if event.status_update is not None and event.status_update.task_id == task.id:
            return task.model_copy(update={"status": event.status_update.status})
        return task


class EventStream:
    """The events of one streaming call; see the module docstring."""

    def __init__(self, client: StreamOwner, method: str, request: httpx.Request,
                 http: httpx.AsyncClient) -> None:
        self._client = client
        self._method = method
        self._request = request
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: Any = None  # the response's byte iterator
        self._decoder = SSEDecoder()
        self._pending: deque[tuple[StreamResponse, str | None]] = deque()
        self._started = False
        self._done = False  # no more events will be read
        self._recorded = False
        self._start = 0.0
        self._first: float | None = None
        self._usage = Usage()
        self.events = 0
        """Events handed to the consumer so far."""
        self.task: Task | None = None
        """The task as the events handed out so far describe it (None until one names it)."""
        self.message: Message | None = None
        """The agent's direct reply, when the stream is a single message."""
        self.last_event_id: str | None = None
        """The SSE id of the last event handed out, to resume after with
        `subscribe(task_id, last_event_id=...)`."""

    @property
    def result(self) -> Task | Message | None:
        """What the stream has said so far: the task snapshot or the direct reply."""
        return self.task if self.task is not None else self.message

    async def __aenter__(self) -> EventStream:
        await self._guard(self._open())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._finish(exc)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamResponse:
        if not self._pending and not self._done:
            await self._guard(self._fill())
        if self._pending:
            event, event_id = self._pending.popleft()
            self._take(event, event_id)
            return event
        await self._finish(None)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop reading and close the connection (idempotent)."""
        await self._finish(None)

    # --- reading ------------------------------------------------------------------------

    async def _guard(self, step: Any) -> None:
        try:
            await step
        except BaseException as exc:
            await self._finish(exc)
            raise

    @property
    def _url(self) -> str:
        return str(self._request.url)

    async def _open(self) -> None:
        if self._started:
            return
        self._started = True
        self._start = trio.current_time()
        timeout = self._request.extensions.get("timeout", {}).get("read")
        try:
            response = await self._http.send(self._request, stream=True)
        except httpx.HTTPError as exc:
            raise connection_error(exc, self._url, timeout) from None
        self._response = response
        ctype = response.headers.get("content-type", "")
        if response.status_code == 200 and ctype.startswith("text/event-stream"):
            self._chunks = response.aiter_bytes()
            return
        # Refused before streaming (a plain JSON-RPC error), or a server that
        # answered with one JSON result instead of a stream.
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise connection_error(exc, self._url, timeout) from None
        if response.status_code != 200:
            rpc = jsonrpc_error_member(body)
            if rpc is not None:
                raise self._client._rpc_error(self._method, rpc)
            raise status_error(response, body)
        self._add(self._client._decode(self._method, body))
        self._done = True

    async def _fill(self) -> None:
        if not self._started:
            await self._open()
        timeout = self._request.extensions.get("timeout", {}).get("read")
        while not self._pending and not self._done:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._done = True
                if self._decoder.close():
                    raise A2AConnectionError(
                        f"the stream from {self._url} ended in the middle of an event",
                        url=self._url) from None
                return
            except httpx.HTTPError as exc:
                raise connection_error(exc, self._url, timeout) from None
            for sse in self._decoder.feed(chunk):
                if self._done:  # a 0.3 `final` event came before: nothing after it counts
                    break
                self._add(self._client._decode(self._method, sse.data), sse.id)

    def _add(self, result: Any, event_id: str | None = None) -> None:
        """Queue one received result (as its 1.0 event) for the consumer."""
        event = self._client._parse_result(self._method, result)
        if self._first is None:
            self._first = trio.current_time() - self._start
        self._pending.append((event, event_id))
        if (self._client.protocol == "0.3" and isinstance(result, dict)
                and result.get("kind") == "status-update" and result.get("final") is True):
            self._done = True

    def _take(self, event: StreamResponse, event_id: str | None) -> None:
        """The consumer gets `event`: what the stream says now includes it."""
        self.events += 1
        if event_id is not None:
            self.last_event_id = event_id
        self._usage.add_event(event)
        if event.message is not None and self.task is None:
            self.message = event.message
        self.task = _fold(self.task, event)

    async def _finish(self, error: BaseException | None) -> None:
        self._done = True
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            scope.shield = True
            if self._chunks is not None:
                await self._chunks.aclose()
            if self._response is not None:
                await self._response.aclose()
        self._chunks = self._response = None
        if self._recorded or not self._started:
            return
        self._recorded = True
        usage = self._usage
        if not usage.seen and self.result is not None:
            usage = Usage()
            usage.add_result(self.result)
        self._client._record(self._method, self._start, self._first, self.events, error,
                             self.result, usage)
