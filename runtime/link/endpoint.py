"""The server's end of the worker link over WebSocket: ``GET /worker/ws``.

One connection carries every frame of docs/worker-link.md. The handshake needs
``Authorization: Bearer <worker token>``; worker tokens are their own set
(`ServerConfig.worker_tokens`), a client token is refused here (401) and a
worker token is not a client token on the A2A endpoints. With no worker tokens
configured the endpoint is open only if the server says so (`remote_open`:
client auth is off, or `--open-worker-link`; a warning is logged once per
server), and a client token is still refused; otherwise it is closed to every
remote worker, so that client auth never leaves the link open to anyone. The
embedded workers are not affected: their in-process link has no handshake.

After the upgrade the worker's first frame must be ``register`` (anything before
it is answered ``UNKNOWN_WORKER``; the link stays open, as for every bad frame).
Registering connects the worker to the dispatcher; from then on the connection
does two things at once: it answers each frame the worker sends, in order, with
one ack (heartbeat, claim, output, status, release), and it forwards the
dispatcher's pushes (offers and cancellations) as ``offer`` / ``cancel`` frames,
whose acks it reads and drops. A malformed frame gets an error ack and the link
carries on. When the connection ends the worker is unregistered; its leases run
until they expire (a reconnecting worker heartbeats them back).

Output is deduplicated per attempt: the highest ``seq`` applied is stored with
the task (`DispatchState.output_seq`, in the same write as the frame's events,
so it survives a server restart), a resent ``seq`` is acked without being
applied, and a frame beyond a gap is not applied (its ack's ``ackedThrough``
says where to resume).
Claims resent by the worker that won them get the same grant back.

A server that stops gracefully hands its remote workers over (`go_away`): each
gets a ``goaway`` push and reconnects to another replica at once, its sessions
running on; new handshakes are refused meanwhile (HTTP 503), so a worker behind
a load balancer is not taken in again.

This module is the endpoint (auth, the connections, the grants kept for resent
claims) and the framing of a socket; serving each frame is
`runtime.link.connection.LinkConnection` (re-exported here with `PushSink`), what a
grant carries is runtime.link.grants, and frames become events in runtime.link.frames.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from actors.dispatcher import Dispatcher
from actors.task_store import ServerTaskStore
from actors.trace_port import SessionSpan
from protocol import worker_link as wl
from protocol.security_errors import SignatureRequiredError
from runtime.http.auth import TokenAuth
from runtime.http.signing_settings import SigningSettings
from runtime.link.connection import LinkConnection, PushSink

__all__ = ["WS_PATH", "LinkConnection", "LinkSocket", "PushSink", "WorkerLinkEndpoint"]

log = logging.getLogger(__name__)

WS_PATH = "/worker/ws"


class LinkSocket(Protocol):
    """One frame per message, both ways."""

    async def receive(self) -> str | bytes:
        """The next frame; `trio.EndOfChannel` once the worker has gone."""
        ...

    async def send(self, data: str) -> None: ...


class WorkerLinkEndpoint:
    """Link state shared by all connections of one server: auth, seq marks, grants."""

    def __init__(self, dispatcher: Dispatcher, store: ServerTaskStore, *,
                 worker_auth: TokenAuth, client_auth: TokenAuth | None = None,
                 remote_open: bool = True,
                 identities: Callable[[str | None], Awaitable[str | None]] | None = None,
                 signing: SigningSettings | None = None) -> None:
        self.dispatcher = dispatcher
        self._signing = signing
        self.store = store
        self._worker_auth = worker_auth
        self._client_auth = client_auth
        self._identities = identities
        self._remote_open = remote_open or worker_auth.enabled
        self.unauthorized = (
            "a valid worker token, or a credential whose roles grant 'worker.link', is "
            "required (Authorization: Bearer <token>)" if identities is not None else
            "a valid worker token is required (Authorization: Bearer <token>)"
            if self._remote_open else
            "this server takes no remote workers: client auth is on and no worker tokens "
            "are set (start it with --worker-tokens-file, or --open-worker-link)")
        """Why a handshake is refused: the message of its UNAUTHORIZED error ack."""
        if not self._remote_open and identities is None:
            log.warning("worker link closed to remote workers: client tokens but no worker "
                        "tokens (give --worker-tokens-file, or --open-worker-link)",
                        extra={"path": WS_PATH})
        self._warned_open = False
        self.grants: dict[tuple[str, str], wl.ClaimReply] = {}
        """(worker id, task id) -> the grant, answered again to a resent claim."""
        self.http_links: Any = None
        """The HTTP binding's links (`runtime.link.http.WorkerHttpLinks`), once mounted."""
        self.frame_span: SessionSpan | None = None
        """Tracing on: the span of each output, status and release frame (`LinkState`)."""
        self.connections: set[LinkConnection] = set()
        """The open WebSocket and HTTP-binding connections."""
        self.going_away: str | None = None
        """Why this server hands its workers over (it is stopping), or None."""

    def _remote_workers(self) -> list[_SocketConnection]:
        return [c for c in self.connections
                if c.worker_id is not None and isinstance(c, _SocketConnection)]

    async def go_away(self, reason: str) -> int:
        """Refuse new handshakes and tell every registered remote worker to move to
        another server (a ``goaway`` push); how many were told. A worker that ignores
        the push (an older one) is cut off when the server stops, and reconnects
        after its backoff."""
        self.going_away = reason
        told = self._remote_workers()
        async with trio.open_nursery() as nursery:
            for conn in told:
                nursery.start_soon(conn.go_away, reason)
        return len(told)

    async def wait_workers_gone(self, *, poll: float = 0.005) -> None:
        """Until no registered remote worker is connected (after `go_away`)."""
        while self._remote_workers():  # noqa: ASYNC110
            await trio.sleep(poll)

    async def wait_pushes_sent(self, *, poll: float = 0.005) -> None:
        """Until every open connection has sent the pushes queued for it (at shutdown:
        the drain reaches remote workers before their links close)."""
        while any(c.pushes_pending for c in self.connections):  # noqa: ASYNC110
            await trio.sleep(poll)

    def close_worker(self, worker_id: str) -> int:
        """Close the worker's open connections (an operator's disconnect); how many.
        Its leases run on until they expire or it reconnects and renews them."""
        closed = 0
        for conn in list(self.connections):
            if conn.worker_id == worker_id and conn.nursery is not None:
                conn.nursery.cancel_scope.cancel()
                closed += 1
        return closed

    async def authenticate(self, authorization: str | None) -> str | None:
        """The worker principal of a handshake, or None to refuse it: a worker token, or
        (when `identities` is given) a credential whose roles grant `worker.link`."""
        if self._worker_auth.enabled and authorization:
            found = self._worker_auth.principal(authorization)
            if found is not None:
                return found
        if self._identities is not None and authorization:
            found = await self._identities(authorization)
            if found is not None:
                return found
        if not self._remote_open:
            return None
        client = self._client_auth
        if client is not None and client.enabled and authorization:
            if client.principal(authorization) is not None:
                return None  # a client token never acts as a worker
        if not self._worker_auth.enabled and not self._warned_open:
            self._warned_open = True
            log.warning("no worker tokens configured: the worker link accepts any connection",
                        extra={"path": WS_PATH})
        return self._worker_auth.principal(authorization)

    def signature_refusal(self, principal: str, signed_by: str | None) -> str | None:
        """Why `principal`'s link request must be refused for its signature (a worker
        bound to a `required` signing key must sign with it, as on every binding:
        `SigningSettings.check_caller`), or None. `signed_by`: the key that signed the
        request (the handshake, each HTTP-link request), None if unsigned."""
        if self._signing is None:
            return None
        try:
            self._signing.check_caller(principal, signed_by)
        except SignatureRequiredError as err:
            log.warning("worker link refused: signature required",
                        extra={"principal": principal, "signed_by": signed_by})
            return (f"{err.reason}: {err.message} (worker --signing-key KEY_ID:SECRET, "
                    "TRIO_A2A_WORKER_SIGNING_KEY)")
        return None

    def forget(self, task_id: str, attempt_id: str) -> None:
        """The attempt is over (released or stale): drop its grant."""
        for key, grant in list(self.grants.items()):
            if key[1] == task_id and grant.attempt_id == attempt_id:
                del self.grants[key]

    async def serve(self, socket: LinkSocket, *, principal: str, peer: str = "") -> None:
        """Speak the link on an accepted connection until it ends (`socket.receive`
        raising `trio.EndOfChannel`, or cancellation)."""
        conn = _SocketConnection(self, socket, principal)
        log.info("worker link connected", extra={"principal": principal, "peer": peer})
        self.connections.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                conn.nursery = nursery
                while True:
                    try:
                        data = await socket.receive()
                    except trio.EndOfChannel:
                        nursery.cancel_scope.cancel()  # stop forwarding pushes
                        break
                    reply = await conn.answer(data)
                    if reply is not None:
                        await conn.send(reply)
        finally:
            self.connections.discard(conn)
            conn.disconnect()
            log.info("worker link closed", extra={"principal": principal, "peer": peer,
                                                  "worker_id": conn.worker_id})


class _SocketConnection(LinkConnection):
    """A `LinkConnection` speaking frames on a `LinkSocket` (WebSocket, HTTP binding)."""

    def __init__(self, endpoint: WorkerLinkEndpoint, socket: LinkSocket, principal: str) -> None:
        super().__init__(endpoint, self._send_push, principal)
        self.socket = socket
        self._send_lock = trio.Lock()
        self._push_ids = itertools.count(1)

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self.socket.send(text)

    async def _send_push(self, op: str, body: wl.LinkModel) -> None:
        await self.send(wl.encode_frame(op, body, f"s-{next(self._push_ids)}"))

    async def go_away(self, reason: str) -> None:
        """Push ``goaway``; a connection already closing is left to close."""
        with contextlib.suppress(Exception):
            await self._send_push("goaway", wl.GoAwayBody(reason=reason))

    async def answer(self, data: str | bytes) -> str | None:
        """The ack for one received frame (None for an ack: acks are never acked)."""
        try:
            frame = wl.decode_frame(data)
        except wl.LinkProtocolError as exc:
            if exc.op == wl.ACK:
                return None
            log.info("bad worker-link frame", extra={"worker_id": self.worker_id,
                                                     "code": exc.code, "error": exc.message})
            return exc.to_ack()
        if frame.is_ack:
            if not frame.ok and frame.error is not None:
                log.info("worker refused a push", extra={"worker_id": self.worker_id,
                                                         "frame_id": frame.id,
                                                         "code": frame.error.code})
            return None
        try:
            return wl.ack(frame.id, await self.handle(frame.op, frame.body))
        except wl.LinkRefusedError as exc:
            return wl.error_ack(frame.id, exc.code, exc.message)
