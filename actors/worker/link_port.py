"""The worker's port to the server: the `Link` protocol and what sits on it.

A `Link` is one connection to the server (WebSocket or the HTTP binding, see
`runtime.worker.process`): `request(op, body)` sends one frame and returns the reply
model of its ack, raising `LinkRefusedError` for an error ack and `LinkDown`
when the connection is gone (the frame may or may not have arrived: resend it
once the link is back). `pushes` carries what the server pushes: offers,
cancellations and drain requests. The actors of the connection subtree
(Registrar, Heartbeat, TaskClaimer) hold the connection's `Link` and die with it.

Sessions outlive connections, so they reach the server through the `LinkSlot`:
the current *registered* connection, attached by the Registrar after each
successful `register` and detached when that connection goes away or the server
forgets the worker. `deliver` sends one frame through the slot until it is
acknowledged, waiting out outages; this is how output, status and release
frames survive a reconnect.
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

import attrs
import trio

from actors.trace_port import CurrentTraceparent
from protocol.worker_link import (
    INTERNAL,
    STALE_ATTEMPT,
    UNKNOWN_TASK,
    UNKNOWN_WORKER,
    CancelBody,
    DrainBody,
    GoAwayBody,
    LinkModel,
    LinkRefusedError,
    OfferBody,
    RegisterReply,
)

__all__ = [
    "AttemptLost",
    "Backoff",
    "Link",
    "LinkDown",
    "LinkSlot",
    "Push",
    "deliver",
]

log = logging.getLogger(__name__)

Push = OfferBody | CancelBody | DrainBody | GoAwayBody
"""A frame the server pushes to the worker."""


class LinkDown(Exception):
    """The connection to the server is gone (or not there yet). A request that
    raised this may or may not have reached the server: send it again later."""


class AttemptLost(Exception):
    """The server refused a write for the attempt (STALE_ATTEMPT, UNKNOWN_TASK):
    another attempt owns the task now, so the session stops without releasing."""


class Link(Protocol):
    """One connection to the server."""

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        """Offers, cancellations, drain and go-away notices, in arrival order (already acked)."""
        ...

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        """Send one frame and return its ack's reply model.

        Raises `LinkRefusedError` for an error ack, `LinkDown` when the connection
        is gone before the ack arrived.
        """
        ...


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter: the wait before the n-th consecutive retry
    is ``min(max, base * factor ** (n - 1)) * (1 + jitter * rng.uniform(-1, 1))``,
    the same rule as the supervisor's, with an injected seeded `random.Random`."""

    base: float = 0.5
    factor: float = 2.0
    max: float = 30.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random) -> float:
        delay = min(self.max, self.base * self.factor ** (max(failures, 1) - 1))
        return delay * (1 + self.jitter * rng.uniform(-1, 1))


_TRACED_OPS = frozenset({"status", "output", "release"})


class LinkSlot:
    """The worker's current registered connection, for actors that outlive it.
    `traceparent` (tracing on) stamps a session's status, output and release frames
    with its trace context, so the server handles them in the session's trace."""

    def __init__(self, traceparent: CurrentTraceparent | None = None) -> None:
        self._traceparent = traceparent
        self._link: Link | None = None
        self._registration: RegisterReply | None = None
        self._up = trio.Event()
        self._lost = trio.Event()
        self.attaches = 0

    @property
    def link(self) -> Link | None:
        return self._link

    @property
    def registration(self) -> RegisterReply | None:
        """The reply of the last successful registration (kept while detached)."""
        return self._registration

    @property
    def is_up(self) -> bool:
        return self._link is not None

    def attach(self, link: Link, registration: RegisterReply) -> None:
        """`link` is connected and registered: requests flow through it now."""
        self._link = link
        self._registration = registration
        self._lost = trio.Event()
        self.attaches += 1
        self._up.set()

    def detach(self, link: Link | None = None) -> bool:
        """Stop using `link` (None: whatever is attached). True if it was attached."""
        if self._link is None or (link is not None and link is not self._link):
            return False
        self._link = None
        self._up = trio.Event()
        return True

    def registration_lost(self, link: Link) -> None:
        """`link` failed or the server forgot the worker: detach it, and have the
        Registrar (waiting in `wait_registration_lost`) register again."""
        if self.detach(link):
            self._lost.set()

    async def wait_registration_lost(self) -> None:
        """Until the registration of the attached link is lost."""
        await self._lost.wait()

    async def wait_up(self) -> None:
        """Until a registered connection is attached."""
        while self._link is None:
            await self._up.wait()

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        """`Link.request` on the current connection. `LinkDown` if there is none, if
        it fails, or if the server no longer knows the worker (UNKNOWN_WORKER):
        in each case the Registrar registers again and `wait_up` returns once done."""
        link = self._link
        if link is None:
            raise LinkDown("not connected to the server")
        if self._traceparent is not None and op in _TRACED_OPS:
            body = body.model_copy(update={"traceparent": self._traceparent()})
        try:
            return await link.request(op, body)
        except LinkDown:
            self.registration_lost(link)
            raise
        except LinkRefusedError as exc:
            if exc.code != UNKNOWN_WORKER:
                raise
            self.registration_lost(link)
            raise LinkDown(f"the server does not know this worker: {exc.message}") from exc


async def deliver(
    slot: LinkSlot,
    op: str,
    body: LinkModel,
    *,
    what: dict[str, object],
    ack_timeout: float,
    retry: Backoff,
    rng: random.Random,
) -> LinkModel:
    """Send `body` through `slot` until the server acknowledges it; its reply.

    Every worker op is safe to resend, so: while the link is down, wait for it
    (one warning per outage); with no ack within `ack_timeout`, send again; after
    an INTERNAL refusal, back off and send again. STALE_ATTEMPT and UNKNOWN_TASK
    raise `AttemptLost`; any other refusal is a bug on one side and propagates.
    `what` names the frame in logs (task id, attempt id, ...).
    """
    failures = 0
    down_since: float | None = None
    while True:
        try:
            with trio.move_on_after(ack_timeout) as timer:
                reply = await slot.request(op, body)
            if timer.cancelled_caught:
                log.warning("no ack within %s s; sending the %s frame again", ack_timeout, op,
                            extra={"op": op, **what})
                continue
        except LinkDown as exc:
            if down_since is None:
                down_since = trio.current_time()
                log.warning("link down (%s); holding the %s frame until it is back", exc, op,
                            extra={"op": op, **what})
            await slot.wait_up()
            continue
        except LinkRefusedError as exc:
            if exc.code in (STALE_ATTEMPT, UNKNOWN_TASK):
                raise AttemptLost(f"{op} refused: {exc}") from exc
            if exc.code != INTERNAL:
                raise
            failures += 1
            delay = retry.delay(failures, rng)
            log.warning("server failed the %s frame; retrying in %.3f s", op, delay,
                        extra={"op": op, "error": exc.message, **what})
            await trio.sleep(delay)
            continue
        if down_since is not None:
            log.info("link back after %.3f s; %s delivered", trio.current_time() - down_since,
                     op, extra={"op": op, **what})
        return reply
