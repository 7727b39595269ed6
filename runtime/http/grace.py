"""A stopping server's client calls: new ones refused, in-flight ones given a grace.

`GracefulCalls` sits in front of the whole ASGI app and counts the A2A client calls
in flight (a response of ``text/event-stream`` makes one a stream). `stop(grace)`:

* every new client request gets ``503`` with ``Retry-After`` and ``Connection:
  close`` (a load balancer or client retries it on another replica); the probes,
  `/metrics`, the worker link and the admin API are served on, so workers finish their tasks
  and operators can watch;
* the calls in flight get up to `grace` seconds: a blocking send returns when its
  task ends or pauses, a stream when its task does;
* then `CallRelease.release()` lets go of the rest, never failing their task (it
  goes on, on another replica or after the restart): a blocking send answers with
  the task as it stands, a stream ends with `FINAL_FRAME`.

`FINAL_FRAME` is an SSE comment: every SSE parser skips comments, so no A2A client
mistakes it for an event (a data event would have to be a task event or a JSON-RPC
response, and no task event means "this server stops" without failing or pausing
the task), while a person or a log reading the stream sees why it ended. A
``retry:`` field is left out: some parsers dispatch an empty data event for a block
holding only it, which JSON parsing then fails on. The stream ends cleanly, after
the `id:` of the last event sent; a client resumes with SubscribeToTask
(``Last-Event-ID``) against any replica.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextvars import ContextVar
from typing import Any

import attrs
import trio

from actors.release import CallRelease
from runtime.http.common import ASGIApp

__all__ = ["FINAL_FRAME", "GracefulCalls", "current_release"]

log = logging.getLogger(__name__)

FINAL_FRAME = (b": the server is shutting down; the task goes on: subscribe to it again "
               b"(Last-Event-ID) to follow it\n\n")
RETRY_AFTER = "1"
"""Seconds a refused client waits: another replica takes the retry at once."""
CLOSE_WAIT = 2.0
"""Seconds released calls get to write their last response before the listener stops."""
_EXEMPT = frozenset({"healthz", "readyz", "metrics", "worker", "admin", "ui"})
"""First path segments served on while stopping."""

_current: ContextVar[CallRelease | None] = ContextVar("trio_a2a_release", default=None)


def current_release() -> CallRelease:
    """The release of the client call being served (one never released outside one)."""
    return _current.get() or CallRelease()


@attrs.define(eq=False)
class _Call:
    stream: bool = False


class GracefulCalls:
    """The ASGI app `app` with the graceful stop of its client calls (module docstring)."""

    def __init__(self, app: ASGIApp, release: CallRelease) -> None:
        self.app = app
        self.release = release
        self.stopping = False
        self.refused = 0
        self._calls: set[_Call] = set()
        self._changed = trio.Event()
        self._grace = trio.CancelScope()

    def hurry(self) -> None:
        """End the grace now (a second SIGTERM): the calls in flight are let go of."""
        self._grace.cancel()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.split("/", 2)[1:2] in ([e] for e in _EXEMPT):
            await self.app(scope, receive, send)
            return
        if self.stopping:
            await self._refuse(scope, send)
            return
        call = _Call()

        async def watched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                call.stream = any(k.lower() == b"content-type"
                                  and v.startswith(b"text/event-stream")
                                  for k, v in message.get("headers", ()))
            await send(message)

        self._calls.add(call)
        token = _current.set(self.release)
        try:
            await self.app(scope, receive, watched)
        finally:
            _current.reset(token)
            self._calls.discard(call)
            self._changed.set()

    async def _refuse(self, scope: dict[str, Any], send: Any) -> None:
        self.refused += 1
        body = json.dumps({"error": {
            "code": 503, "status": "UNAVAILABLE",
            "message": "the server is shutting down: retry the request on another replica",
        }}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"retry-after", RETRY_AFTER.encode()),
                   (b"content-length", str(len(body)).encode())]
        if scope.get("http_version", "1.1") in ("1.0", "1.1"):  # HTTP/2 forbids the header
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _until_idle(self) -> None:
        while self._calls:
            self._changed = trio.Event()
            await self._changed.wait()

    async def stop(self, grace: float) -> dict[str, int]:
        """Refuse new calls, give those in flight `grace` seconds, release the rest;
        how many of each, for the server's last log line."""
        self.stopping = True
        in_flight = set(self._calls)
        with self._grace:
            self._grace.deadline = trio.current_time() + grace
            await self._until_idle()
        left = set(self._calls)
        self.release.release()
        with trio.move_on_after(CLOSE_WAIT):
            await self._until_idle()
        done = Counter(("streams" if c.stream else "requests") + "_finished"
                       for c in in_flight - left)
        done.update(("streams_closed" if c.stream else "requests_answered") for c in left)
        counts = {k: done[k] for k in ("requests_finished", "streams_finished",
                                       "requests_answered", "streams_closed")}
        return {**counts, "requests_refused": self.refused}
