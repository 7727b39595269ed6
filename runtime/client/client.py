"""A small trio A2A client: reads the agent card, then speaks 1.0 or 0.3 JSON-RPC as it says.

Whatever generation the agent speaks, results come back as the canonical 1.0
models (`protocol.models`), so callers (the CLI, a worker relaying a task to
another agent) handle one shape; 0.3 requests and answers go through the
`protocol.v03` translation. The generation and endpoint come from the card the
way the official SDK picks them: among JSON-RPC interfaces, 1.0 first, else 0.3.
Each request leaves a `RequestMetrics` record in `client.metrics`.

Failures raise the typed errors of `runtime.client.errors`, each naming the URL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import httpx
import pydantic
import trio
from opentelemetry.propagate import inject

from protocol import models, v03
from protocol.jsonrpc import format_validation_error
from protocol.models import (
    AgentCard,
    ListTasksResponse,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskState,
)
from runtime.client.card import CARD_PATHS, Protocol, card_urls, fetch_card, select_interface
from runtime.client.card_verify import CardKeys, verify_card
from runtime.client.errors import (
    A2AClientError,
    A2AConnectionError,
    A2AHTTPError,
    A2AResponseError,
    A2ARpcError,
    A2AUnsupportedError,
    connection_error,
    jsonrpc_error_member,
    status_error,
)
from runtime.client.metrics import USAGE_KEY, RequestMetrics, Usage, metrics_to_json
from runtime.client.signing import HmacAuth, HmacKey
from runtime.client.stream import EventStream

# One import for users: the client, its stream, its errors and its metrics.
__all__ = [
    "CARD_PATHS",
    "USAGE_KEY",
    "A2AClient",
    "A2AClientError",
    "A2AConnectionError",
    "A2AHTTPError",
    "A2AResponseError",
    "A2ARpcError",
    "A2AUnsupportedError",
    "EventStream",
    "Protocol",
    "RequestMetrics",
    "metrics_to_json",
    "open_a2a_client",
    "select_interface",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 600.0
DEFAULT_MAX_METRICS = 10_000


@attrs.frozen
class _Method:
    """How one 1.0 method travels in 0.3 (None: it has no 0.3 form) and how results parse."""

    v03_name: str | None
    to_v03: Callable[[Any], dict[str, Any]] | None
    parse_v10: Callable[[Any], Any]
    parse_v03: Callable[[Any], Any] | None


_METHODS: dict[str, _Method] = {
    "SendMessage": _Method("message/send", v03.send_params_to_v03,
                           models.SendMessageResponse.model_validate,
                           v03.send_response_from_v03),
    "SendStreamingMessage": _Method("message/stream", v03.send_params_to_v03,
                                    StreamResponse.model_validate, v03.stream_response_from_v03),
    "GetTask": _Method("tasks/get", v03.task_query_to_v03, Task.model_validate,
                       v03.task_from_v03),
    "CancelTask": _Method("tasks/cancel", v03.task_id_to_v03, Task.model_validate,
                          v03.task_from_v03),
    "SubscribeToTask": _Method("tasks/resubscribe", v03.task_id_to_v03,
                               StreamResponse.model_validate, v03.stream_response_from_v03),
    "ListTasks": _Method(None, None, ListTasksResponse.model_validate, None),
}


class A2AClient:
    """Talks to one agent; made by `open_a2a_client`."""

    def __init__(self, http: httpx.AsyncClient, *, card: AgentCard, card_url: str,
                 protocol: str, rpc_url: str, headers: Mapping[str, str], timeout: float,
                 wait_timeout: float | None, max_metrics: int | None = None) -> None:
        self._http = http
        self._card = card
        self.card_url = card_url
        self.protocol = protocol
        """"1.0" or "0.3": the generation this client speaks to the agent."""
        self.rpc_url = rpc_url
        self._auth = dict(headers)
        self._timeout = timeout
        self._wait_timeout = wait_timeout
        self._ids = itertools.count(1)
        self._max_metrics = max_metrics
        self.metrics: list[RequestMetrics] = []
        """One record per request made, in order (the card read first); only the last
        `max_metrics` are kept, so a long-lived client does not grow without bound."""

    @property
    def agent_card(self) -> AgentCard:
        """The card read when the client was opened (or last refreshed)."""
        return self._card

    async def card(self, *, refresh: bool = False) -> AgentCard:
        """The agent card, in 1.0 form; `refresh` reads it again (the endpoint stays)."""
        if refresh:
            self._card, _ = await fetch_card(self._http, (self.card_url,), self._auth,
                                              self.metrics)
        return self._card

    def metrics_json(self, *, indent: int | None = 2) -> str:
        """`metrics` as a JSON array."""
        return metrics_to_json(self.metrics, indent=indent)

    # --- the A2A operations -------------------------------------------------------------

    async def send(self, message: Message | str, *, blocking: bool = True,
                   metadata: dict[str, Any] | None = None, context_id: str | None = None,
                   task_id: str | None = None,
                   history_length: int | None = None) -> Task | Message:
        """Send a message (text becomes a user message with one text part).

        Returns the task, once it ended or was interrupted unless `blocking` is
        False, or the agent's direct reply.
        """
        request = self._send_request(message, metadata, context_id, task_id, history_length,
                                     return_immediately=not blocking)
        result = await self._call("SendMessage", request, wait=blocking)
        out = result.task or result.message
        if out is None:
            raise A2AResponseError(f"SendMessage at {self.rpc_url} returned neither a task nor "
                                   "a message", url=self.rpc_url)
        return out

    def send_stream(self, message: Message | str, *, metadata: dict[str, Any] | None = None,
                    context_id: str | None = None, task_id: str | None = None,
                    history_length: int | None = None) -> EventStream:
        """Send a message and stream the answer as 1.0 `StreamResponse`s.

        ``async with client.send_stream(m) as events: async for ev in events: ...``;
        a bare ``async for`` works too, but only ``async with`` closes the connection
        at once if you stop early.
        """
        request = self._send_request(message, metadata, context_id, task_id, history_length)
        return self._stream("SendStreamingMessage", request)

    async def get_task(self, task_id: str, history_length: int | None = None) -> Task:
        """The task as the agent has it now."""
        request = models.GetTaskRequest(id=task_id, history_length=history_length)
        return await self._call("GetTask", request)

    async def list_tasks(self, *, context_id: str | None = None,
                         status: TaskState | str | None = None, page_size: int | None = None,
                         page_token: str | None = None, history_length: int | None = None,
                         include_artifacts: bool | None = None) -> ListTasksResponse:
        """One page of the tasks the caller may see, newest first (A2A 1.0 only)."""
        if self.protocol != "1.0":
            raise A2AUnsupportedError(
                f"listing tasks needs A2A 1.0, but the agent at {self.rpc_url} speaks "
                f"{self.protocol} (0.3 JSON-RPC has no tasks/list method)", url=self.rpc_url)
        request = models.ListTasksRequest(
            context_id=context_id, status=None if status is None else TaskState(status),
            page_size=page_size, page_token=page_token, history_length=history_length,
            include_artifacts=include_artifacts)
        return await self._call("ListTasks", request)

    async def cancel(self, task_id: str, *, metadata: dict[str, Any] | None = None) -> Task:
        """Ask the agent to cancel a task; the task as it stands after the request."""
        return await self._call("CancelTask",
                                models.CancelTaskRequest(id=task_id, metadata=metadata))

    def subscribe(self, task_id: str, *, last_event_id: str | None = None) -> EventStream:
        """Stream a task's events, the task first (use it like `send_stream`).

        `last_event_id` resumes after that SSE event id (`EventStream.last_event_id`)
        on servers that keep an event log, as trio-a2a does.
        """
        headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        return self._stream("SubscribeToTask", models.SubscribeToTaskRequest(id=task_id),
                            headers)

    # --- plumbing shared with EventStream -----------------------------------------------

    def _send_request(self, message: Message | str, metadata: dict[str, Any] | None,
                      context_id: str | None, task_id: str | None, history_length: int | None,
                      return_immediately: bool | None = None) -> models.SendMessageRequest:
        if isinstance(message, str):
            message = Message(message_id=str(uuid.uuid4()), role=Role.USER,
                              parts=[Part(text=message)])
        ids = {k: v for k, v in (("context_id", context_id), ("task_id", task_id)) if v}
        if ids:
            message = message.model_copy(update=ids)
        config = None
        if return_immediately is not None or history_length is not None:
            config = models.SendMessageConfiguration(return_immediately=return_immediately,
                                                     history_length=history_length)
        return models.SendMessageRequest(message=message, configuration=config,
                                         metadata=metadata)

    def _body(self, method: str, request: models.A2AModel) -> bytes:
        """The JSON-RPC request body for a 1.0 request, in this client's generation."""
        spec = _METHODS[method]
        if self.protocol == "1.0":
            wire, params = method, models.dump(request)
        else:
            assert spec.v03_name is not None and spec.to_v03 is not None
            wire, params = spec.v03_name, spec.to_v03(request)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": wire, "params": params}
        return json.dumps(body, separators=(",", ":")).encode()

    def _headers(self, *, stream: bool = False) -> dict[str, str]:
        headers = {**self._auth, "Content-Type": "application/json",
                   "A2A-Version": self.protocol,
                   "Accept": "text/event-stream" if stream else "application/json"}
        # The W3C `traceparent` of the caller's current span (a traced session relaying
        # to another agent), so the remote server continues the trace; nothing if none.
        inject(headers)
        return headers

    def _parse_result(self, method: str, result: Any) -> Any:
        """The 1.0 model of a JSON-RPC result; A2AResponseError if it is malformed."""
        spec = _METHODS[method]
        parse = spec.parse_v10 if self.protocol == "1.0" else spec.parse_v03
        assert parse is not None
        try:
            return parse(result)
        except pydantic.ValidationError as exc:
            why = format_validation_error(exc, "result")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = str(exc)
        raise A2AResponseError(f"{method} at {self.rpc_url} returned a malformed result: {why}",
                               url=self.rpc_url)

    def _rpc_error(self, method: str, error: Any) -> A2AClientError:
        """The exception for a JSON-RPC `error` member."""
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return A2AResponseError(f"{method} at {self.rpc_url} returned a malformed error: "
                                    f"{json.dumps(error)[:200]}", url=self.rpc_url)
        return A2ARpcError(url=self.rpc_url, method=method, code=error["code"],
                           message=str(error.get("message") or ""), data=error.get("data"))

    def _decode(self, method: str, payload: bytes | str) -> Any:
        """The `result` of a JSON-RPC response body; its `error`, raised."""
        try:
            obj = json.loads(payload)
        except ValueError as exc:
            raise A2AResponseError(f"{method} at {self.rpc_url} returned invalid JSON: {exc}",
                                   url=self.rpc_url) from None
        if not isinstance(obj, dict) or ("result" not in obj and "error" not in obj):
            text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            raise A2AResponseError(f"{method} at {self.rpc_url} returned no JSON-RPC response: "
                                   f"{text[:200]}", url=self.rpc_url)
        if "error" in obj:
            raise self._rpc_error(method, obj["error"])
        return obj["result"]

    def _record(self, method: str, start: float, first: float | None, events: int,
                error: BaseException | None, result: Task | Message | None,
                usage: Usage) -> None:
        task = result if isinstance(result, Task) else None
        metric = RequestMetrics(
            method=method, protocol=self.protocol, url=self.rpc_url, first_s=first,
            total_s=trio.current_time() - start, events=events,
            error=None if error is None else (str(error) or type(error).__name__),
            error_code=error.code if isinstance(error, A2ARpcError) else None,
            task_id=task.id if task else None, state=task.status.state.value if task else None,
            input_tokens=usage.input_tokens if usage.seen else None,
            output_tokens=usage.output_tokens if usage.seen else None,
            provider=usage.provider, model=usage.model)
        self.metrics.append(metric)
        if self._max_metrics is not None and len(self.metrics) > self._max_metrics:
            del self.metrics[: len(self.metrics) - self._max_metrics]
        log.debug("a2a request done", extra={
            "a2a_method": method, "a2a_url": self.rpc_url, "a2a_protocol": self.protocol,
            "latency_s": round(metric.total_s, 6), "a2a_error": metric.error})

    async def _call(self, method: str, request: models.A2AModel, *, wait: bool = False) -> Any:
        body = self._body(method, request)
        read = self._wait_timeout if wait else self._timeout
        start = trio.current_time()
        first: float | None = None
        out: Task | Message | None = None
        usage = Usage()
        error: BaseException | None = None
        try:
            try:
                response = await self._http.post(
                    self.rpc_url, content=body, headers=self._headers(),
                    timeout=httpx.Timeout(self._timeout, read=read))
            except httpx.HTTPError as exc:
                raise connection_error(exc, self.rpc_url, read) from None
            first = trio.current_time() - start
            if response.status_code != 200:
                rpc = jsonrpc_error_member(response.content)
                if rpc is not None:
                    raise self._rpc_error(method, rpc)
                raise status_error(response, response.content)
            result = self._parse_result(method, self._decode(method, response.content))
            out = result if isinstance(result, Task) else None
            if isinstance(result, models.SendMessageResponse):
                out = result.task or result.message
            if out is not None:
                usage.add_result(out)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._record(method, start, first, 0 if error else 1, error, out, usage)

    def _stream(self, method: str, request: models.A2AModel,
                headers: Mapping[str, str] | None = None) -> EventStream:
        http_request = self._http.build_request(
            "POST", self.rpc_url, content=self._body(method, request),
            headers={**self._headers(stream=True), **(headers or {})},
            timeout=httpx.Timeout(self._timeout, read=self._wait_timeout))
        return EventStream(self, method, http_request, self._http)


# --- opening ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_a2a_client(url: str, *, token: str | None = None,
                          # per-request HTTP bounds kept by the client, not a deadline
                          # on opening it: trio.fail_after cannot express them
                          timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
                          wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
                          protocol: Protocol = "auto",
                          http_client: httpx.AsyncClient | None = None,
                          max_metrics: int | None = DEFAULT_MAX_METRICS,
                          card_keys: CardKeys | None = None,
                          signing_key: HmacKey | None = None,
                          ) -> AsyncIterator[A2AClient]:
    """A client for the agent at `url` (its base URL, or its card's URL).

    Reads the card first (``/.well-known/agent-card.json``, else the older
    ``agent.json``) and takes the generation and JSON-RPC URL from it; `protocol`
    forces "1.0" or "0.3". `timeout` bounds connecting and each plain request;
    `wait_timeout` bounds a blocking send and each quiet gap in a stream (None: no
    bound), since an agent may work for minutes. `token` is sent as a bearer token.
    A `http_client` you pass (to share its pool, or a mock transport) is left open.
    `max_metrics` is how many request records `client.metrics` keeps (None: all).
    With `card_keys` the card must carry a signature by one of them (else
    A2AResponseError). With `signing_key` every request is HMAC-signed
    (`runtime.client.signing`).
    """
    if protocol not in ("auto", "1.0", "0.3"):
        raise ValueError(f"protocol must be 'auto', '1.0' or '0.3', not {protocol!r}")
    urls = card_urls(url)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with contextlib.AsyncExitStack() as stack:
        if http_client is None:
            http_client = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(timeout)))
        if signing_key is not None:
            http_client.auth = HmacAuth(signing_key)
        metrics: list[RequestMetrics] = []
        verify = (lambda data, at: verify_card(data, card_keys, at)) if card_keys else None
        card, card_url = await fetch_card(http_client, urls, auth, metrics, verify)
        try:
            generation, rpc_url = select_interface(card, protocol)
        except ValueError as exc:
            raise A2AUnsupportedError(f"{card_url}: {exc}", url=card_url) from None
        client = A2AClient(http_client, card=card, card_url=card_url, protocol=generation,
                           rpc_url=rpc_url, headers=auth, timeout=timeout,
                           wait_timeout=wait_timeout, max_metrics=max_metrics)
        client.metrics.extend(metrics)
        log.debug("a2a client ready", extra={
            "a2a_url": rpc_url, "a2a_protocol": generation, "card_url": card_url})
        yield client
