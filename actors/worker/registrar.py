"""Registrar: makes the server know this worker, on every connection.

It sends ``register`` with the worker's id, name, hostname, capabilities,
concurrency, agent names and the models of each configured provider (from an
injected `list_models()`; if that fails, the worker registers without models and
a warning is logged). A failed attempt (link down, no ack, INTERNAL) is retried
with exponential backoff and jitter from a seeded RNG, so that many workers
coming back after an outage do not hit the server in lock-step. A refusal that
retrying cannot fix (UNAUTHORIZED, INVALID_FRAME, UNSUPPORTED_VERSION,
UNKNOWN_OP) raises `RegistrationRefused`: a configuration error.

Once registered it attaches the connection to the `LinkSlot` (sessions' output
flows again) and reports ready. When the registration is lost (the heartbeat
reply says `unknownWorker`, or a session's write is answered UNKNOWN_WORKER) it
registers again on the same connection.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs
import trio

from actors.worker.link_port import Backoff, Link, LinkDown, LinkSlot
from protocol.models import AgentSkill
from protocol.worker_link import (
    INTERNAL,
    UNKNOWN_WORKER,
    LinkRefusedError,
    RegisterBody,
    RegisterReply,
)

__all__ = ["ListModels", "Registrar", "RegistrationRefused", "WorkerIdentity"]

log = logging.getLogger(__name__)

ListModels = Callable[[], Awaitable[Mapping[str, Sequence[str]]]]
"""Lists the model ids of each configured provider: ``{provider: [model, ...]}``."""

_RETRIABLE = frozenset({INTERNAL, UNKNOWN_WORKER})


class RegistrationRefused(Exception):
    """The server refused the registration for a reason retrying cannot fix."""

    def __init__(self, refusal: LinkRefusedError) -> None:
        super().__init__(f"the server refused to register this worker: {refusal}")
        self.code = refusal.code


@attrs.frozen
class WorkerIdentity:
    """What the worker tells the server about itself."""

    worker_id: str
    name: str
    hostname: str
    agents: tuple[str, ...]
    max_concurrent_tasks: int = 1
    capabilities: tuple[str, ...] = ()
    context_history: bool = False
    """Ask for the earlier tasks of each claimed task's context (LLM conversations)."""
    skills: tuple[AgentSkill, ...] = ()
    """The skills of the agents it runs, for the server's agent card."""


async def _no_models() -> Mapping[str, Sequence[str]]:
    return {}


class Registrar:
    """Registers the worker on one connection; see the module docstring."""

    def __init__(
        self,
        link: Link,
        slot: LinkSlot,
        identity: WorkerIdentity,
        *,
        list_models: ListModels = _no_models,
        retry: Backoff = Backoff(),
        rng: random.Random | None = None,
        ack_timeout: float = 30.0,
        models_timeout: float = 10.0,
    ) -> None:
        self._link = link
        self._slot = slot
        self.identity = identity
        self._list_models = list_models
        self._retry = retry
        self._rng = rng if rng is not None else random.Random()
        self._ack_timeout = ack_timeout
        self._models_timeout = models_timeout
        self.reply: RegisterReply | None = None
        self.registrations = 0
        self.attempts: list[float] = []
        """When each `register` frame was sent (trio time)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, attach the link, report ready; register again whenever the
        registration is lost. Detaches the link when it stops."""
        ready = False
        try:
            while True:
                reply = await self.register()
                self._slot.attach(self._link, reply)
                if not ready:
                    ready = True
                    task_status.started()
                await self._slot.wait_registration_lost()
                log.info("registration lost; registering again",
                         extra={"worker_id": self.identity.worker_id})
        finally:
            self._slot.detach(self._link)

    def reregister(self) -> None:
        """The server does not know this worker (any more): register again."""
        self._slot.registration_lost(self._link)

    async def _models(self) -> dict[str, list[str]]:
        try:
            with trio.fail_after(self._models_timeout):
                listed = await self._list_models()
            return {str(p): [str(m) for m in models] for p, models in listed.items()}
        except Exception as exc:
            log.warning("could not list models; registering without them: %r", exc,
                        extra={"worker_id": self.identity.worker_id, "error": repr(exc)})
            return {}

    async def register(self) -> RegisterReply:
        """One registration, retried with backoff until the server acknowledges it."""
        ident = self.identity
        body = RegisterBody(worker_id=ident.worker_id, name=ident.name, hostname=ident.hostname,
                            capabilities=list(ident.capabilities),
                            max_concurrent_tasks=ident.max_concurrent_tasks,
                            agents=list(ident.agents), models=await self._models(),
                            context_history=ident.context_history or None,
                            skills=list(ident.skills) or None)
        failures = 0
        while True:
            self.attempts.append(trio.current_time())
            try:
                with trio.fail_after(self._ack_timeout):
                    reply = await self._link.request("register", body)
                assert isinstance(reply, RegisterReply)
                self.reply = reply
                self.registrations += 1
                log.info("worker registered", extra={
                    "worker_id": ident.worker_id, "heartbeat_interval": reply.heartbeat_interval,
                    "lease_ttl": reply.lease_ttl, "server_version": reply.server_version})
                return reply
            except LinkRefusedError as exc:
                if exc.code not in _RETRIABLE:
                    raise RegistrationRefused(exc) from exc
                why = str(exc)
            except (LinkDown, trio.TooSlowError) as exc:
                why = str(exc) or "no ack"
            failures += 1
            delay = self._retry.delay(failures, self._rng)
            log.warning("registration failed (%s); retrying in %.3f s", why, delay,
                        extra={"worker_id": ident.worker_id, "attempt": failures,
                               "delay": delay})
            await trio.sleep(delay)
