"""PushDelivery: posts each task's events to its push notification configs.

One delivery loop per (task id, config id) reads the task's event log from its
own cursor with `ServerTaskStore.wait_events`, like any other subscriber: the
store only wakes it and never waits on it, so a slow or dead receiver cannot
slow a task down. Events go out strictly in order; the next one is posted only
after the previous one was acknowledged (2xx) or given up on.

Progress is stored per config (`TaskBackend.set_push_delivered`) after every
event, so after a restart `run` resumes each config where it stood: delivery is
at-least-once across restarts (an event acknowledged just before a crash may be
sent again) and exactly-once while the process lives. "At least once" holds
within `max_attempts`: an event the receiver keeps refusing is logged and
skipped, so one dead receiver cannot wedge its config forever.

With several replicas on one database, each config is delivered by the one
replica holding its claim (`actors.push_claims`): a loop starts by claiming its
config (and ends at once if another replica holds it), records progress under
the claim's token, and is cancelled when the claim is lost. Another replica
takes a config over, from its stored cursor, when the owner releases it on a
graceful stop (`hand_over`) or when its claim expires after a crash. Exactly-once
holds while the owner lives; across a crash or a takeover, at most the event in
flight is posted again.

Retry rules (one attempt = one POST):

* 2xx: acknowledged.
* `PushSendError` (network error, timeout), 408, 429 and 5xx: retried with
  exponential backoff and jitter, `base * factor**(n-1)` capped at `cap`, times
  a factor in [0.5, 1) from the injected RNG ("equal jitter"). On 429 and 503
  a `Retry-After` (seconds) replaces the backoff, capped at `cap`.
* any other status (3xx: redirects are not followed; 4xx: the receiver rejects
  this request) and `PushSendError(permanent=True)` (e.g. a refused private
  address): the same request would fail again, so the event is given up at once.

The config is re-read before every POST: a replaced config takes effect at the
next attempt, a deleted one ends its loop (noticed at the next event).
"""

from __future__ import annotations

import logging
import random
from typing import Protocol, runtime_checkable

import attrs
import trio

from actors.push_claims import PushOwnership
from actors.store_port import PushConfigRecord, StoredEvent
from actors.task_store import ServerTaskStore

__all__ = [
    "PushDelivery",
    "PushReply",
    "PushSendError",
    "PushSender",
    "PushStatistics",
]

log = logging.getLogger(__name__)

_Key = tuple[str, str]
_RETRYABLE = frozenset({408, 429})
_RETRY_AFTER = frozenset({429, 503})


class PushSendError(Exception):
    """The POST did not get an HTTP status: network error, timeout, refused destination.

    `permanent` marks failures that retrying cannot fix (a refused address).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@attrs.frozen
class PushReply:
    """What the receiver answered."""

    status: int
    retry_after: float | None = None
    """Seconds from a `Retry-After` header (seconds form), if any."""


@runtime_checkable
class PushSender(Protocol):
    """The port to the network. PushDelivery owns it and closes it when `run` ends."""

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PushReply:
        """POST `body`; raise `PushSendError` if no HTTP status was obtained."""
        ...

    async def aclose(self) -> None: ...


@attrs.frozen
class PushStatistics:
    active_loops: int
    """Configs with a running delivery loop."""
    in_flight: int
    """POSTs currently waiting for an answer."""
    delivered: int
    """Events acknowledged with 2xx."""
    failed_attempts: int
    """POSTs that got no 2xx."""
    dropped_events: int
    """Events given up after the retry rules ran out."""
    loop_restarts: int
    """Loops restarted after an unexpected error (e.g. the backend failed)."""
    claims_held: int = 0
    """Configs this replica holds the delivery claim of (`actors.push_claims`)."""
    claims_lost: int = 0
    """Claims another replica took over while this one had them."""


class _Lost(Exception):
    """The config's claim was lost: another replica delivers it now."""


@attrs.define(eq=False)
class _Loop:
    rewatch: bool = False
    """Set by `watch` while the loop runs: re-read the config before ending."""
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    busy: bool = False
    """A POST and the progress it earns are under way (`stop` lets them finish)."""
    stopping: bool = False

    def stop(self) -> None:
        """Cancel the loop, once its event in flight (if any) is posted and recorded."""
        self.stopping = True
        if not self.busy:
            self.scope.cancel()


class PushDelivery:
    """Delivers push notifications; see the module docstring.

    `max_in_flight` bounds concurrent POSTs over all configs (sockets and memory
    stay bounded however many configs exist). Delivery loops themselves are one
    trio task per live config: an idle loop is one parked task. `replica_id` names
    this replica in the claims; `claim_ttl` is how long a claim lasts unrenewed
    (renewed, and other replicas' expired ones looked for, every third of it unless
    `renew_interval` / `rescan_interval` say otherwise).
    """

    def __init__(
        self,
        store: ServerTaskStore,
        sender: PushSender,
        *,
        max_attempts: int = 8,
        max_in_flight: int = 64,
        backoff_base: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        replica_id: str = "local",
        claim_ttl: float = 30.0,
        renew_interval: float | None = None,
        rescan_interval: float | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._sender = sender
        self._max_attempts = max_attempts
        self._limiter = trio.CapacityLimiter(max_in_flight)
        self._base = backoff_base
        self._factor = backoff_factor
        self._cap = backoff_cap
        self._rng = rng if rng is not None else random.Random()
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._early: dict[_Key, None] = {}
        self._loops: dict[_Key, _Loop] = {}
        self._delivered = 0
        self._failed_attempts = 0
        self._dropped = 0
        self._restarts = 0
        self._loop_ended = trio.Event()
        self.ownership = PushOwnership(store, owner=replica_id, ttl=claim_ttl,
                                       renew_interval=renew_interval,
                                       rescan_interval=rescan_interval)

    def statistics(self) -> PushStatistics:
        return PushStatistics(
            active_loops=len(self._loops),
            in_flight=self._limiter.borrowed_tokens,
            delivered=self._delivered,
            failed_attempts=self._failed_attempts,
            dropped_events=self._dropped,
            loop_restarts=self._restarts,
            claims_held=self.ownership.statistics().held,
            claims_lost=self.ownership.statistics().lost,
        )

    # --- lifecycle ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Claim and resume stored configs, then serve `watch` (and, on a shared store,
        take over other replicas' configs) until cancelled; closes the sender."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                resumed = await self.ownership.take_claimable()
                if resumed:
                    log.info("resuming push delivery", extra={"configs": len(resumed)})
                for key in resumed:
                    self._start(key)
                for key in self._early:
                    self._start(key)
                self._early.clear()
                await nursery.start(self.ownership.run, self._start, self._lose)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._closed = True
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 5):
                await self._sender.aclose()

    async def hand_over(self, grace: float = 5.0) -> None:
        """Graceful stop: claim nothing more, let the POSTs in flight finish and record
        their progress (for at most `grace` seconds), stop every loop and release
        their claims, so that another replica delivers the rest at once."""
        self.ownership.closing = True
        for loop in self._loops.values():
            loop.stop()
        with trio.move_on_after(grace):
            while self._loops:
                await self._loop_ended.wait()
        for loop in self._loops.values():
            loop.scope.cancel()
        with trio.move_on_after(grace):
            while self._loops:
                await self._loop_ended.wait()
        with trio.move_on_after(grace):  # else they expire: taken over after the TTL
            await self.ownership.release_all()

    def _lose(self, key: _Key) -> None:
        loop = self._loops.get(key)
        if loop is not None:
            loop.scope.cancel()

    def watch(self, record: PushConfigRecord) -> None:
        """Start delivering to a new or replaced config. Never blocks, never drops.

        Before `run` has started the config is remembered and started with it;
        after `run` ended it is ignored (its progress is stored: the next run
        resumes it).
        """
        key = (record.task_id, record.config_id)
        if self._nursery is None:
            if not self._closed:
                self._early[key] = None
            return
        if not self.ownership.closing:
            self._start(key)

    def _start(self, key: _Key) -> None:
        loop = self._loops.get(key)
        if loop is not None:
            loop.rewatch = True
            return
        assert self._nursery is not None
        loop = self._loops[key] = _Loop()
        self._nursery.start_soon(self._supervise, key, loop, name=f"push {key[0]}/{key[1]}")

    # --- one config -----------------------------------------------------------------

    async def _supervise(self, key: _Key, loop: _Loop) -> None:
        """Claim the config and run its loop; restart it from stored progress if it fails
        unexpectedly; release the claim when there is nothing more to deliver."""
        failures = 0
        done = False
        try:
            with loop.scope:
                while True:
                    loop.rewatch = False
                    try:
                        # (not claimed: another replica delivers it, or this one's
                        # takeover just claimed it and starts it again: nothing to drop)
                        if await self.ownership.claim(key):
                            await self._deliver_all(key, loop)
                            done = True
                    except _Lost:
                        return
                    except Exception as exc:
                        failures += 1
                        self._restarts += 1
                        delay = self._backoff(failures)
                        log.error("push delivery loop failed; restarting",
                                  extra={"task_id": key[0], "config_id": key[1],
                                         "error": repr(exc), "restart_in": delay},
                                  exc_info=True)
                        await trio.sleep(delay)
                        continue
                    failures = 0
                    if not loop.rewatch:
                        break
                    done = False
            if done:
                await self.ownership.drop(key)
        finally:  # a cancelled loop's claim stays held: `hand_over` releases it
            del self._loops[key]
            self._loop_ended.set()
            self._loop_ended = trio.Event()

    async def _deliver_all(self, key: _Key, loop: _Loop) -> None:
        """Deliver until the config is deleted or the task ended and everything went out."""
        task_id, config_id = key
        record = await self._store.get_push_config(task_id, config_id)
        if record is None:
            return
        cursor = record.delivered_seq
        while True:
            try:
                events = await self._store.wait_events(task_id, cursor)
            except KeyError:
                log.warning("push config of an unknown task", extra={"task_id": task_id,
                                                                     "config_id": config_id})
                return
            if not events:
                return
            for stored in events:
                if stored.seq <= cursor:
                    continue
                done = await self._deliver_one(key, stored, loop)
                if done is None:
                    return
                cursor = max(cursor, done)

    async def _deliver_one(self, key: _Key, stored: StoredEvent, loop: _Loop) -> int | None:
        """Post one event under the retry rules; the new cursor, or None if the config is
        gone. `_Lost` if another replica took the config over meanwhile."""
        task_id, config_id = key
        body = stored.event.model_dump_json(by_alias=True, exclude_none=True).encode()
        status: int | None = None
        error = ""
        url = ""
        for attempt in range(1, self._max_attempts + 1):
            record = await self._store.get_push_config(task_id, config_id)
            if record is None:
                return None
            if record.delivered_seq >= stored.seq:
                return record.delivered_seq  # replaced "from now on", or delivered elsewhere
            if not self.ownership.holds(key):
                log.info("push claim lapsed; stopping delivery here",
                         extra={"task_id": task_id, "config_id": config_id})
                self.ownership.give_up(key)
                raise _Lost
            url = record.config.url
            retry_after: float | None = None
            try:
                async with self._limiter:
                    loop.busy = True
                    try:
                        reply = await self._sender.post(url, body, _headers(record))
                    finally:
                        loop.busy = False
            except PushSendError as exc:
                status, error = None, str(exc)
                retryable = not exc.permanent
            else:
                status, error = reply.status, ""
                if 200 <= status < 300:
                    self._delivered += 1
                    await self._advance(key, stored.seq, loop)
                    return stored.seq
                retryable = status in _RETRYABLE or status >= 500
                if status in _RETRY_AFTER and reply.retry_after is not None:
                    retry_after = min(max(reply.retry_after, 0.0), self._cap)
            self._failed_attempts += 1
            if loop.stopping:  # a graceful stop waited for this POST, not for its retries
                loop.scope.cancel()
                await trio.lowlevel.checkpoint()
            if not retryable or attempt == self._max_attempts:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.info("push delivery attempt failed; retrying",
                     extra={"task_id": task_id, "config_id": config_id, "seq": stored.seq,
                            "url": url, "status": status, "error": error, "attempt": attempt,
                            "retry_in": delay})
            await trio.sleep(delay)
        self._dropped += 1
        log.error("push notification dropped",
                  extra={"task_id": task_id, "config_id": config_id, "seq": stored.seq,
                         "url": url, "status": status, "error": error, "attempts": attempt})
        # Record it as done: after a restart, resend what follows, not this again.
        await self._advance(key, stored.seq, loop)
        return stored.seq

    async def _advance(self, key: _Key, seq: int, loop: _Loop) -> None:
        """Move the cursor under the claim (shielded from `stop`, which waits for it);
        `_Lost` if the claim no longer holds."""
        loop.busy = True
        try:
            with trio.CancelScope(shield=loop.stopping):
                held = await self.ownership.advance(key, seq)
        finally:
            loop.busy = False
        if loop.stopping:
            loop.scope.cancel()
        if not held:
            raise _Lost

    def _backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based), with equal jitter."""
        delay = min(self._cap, self._base * self._factor ** (attempt - 1))
        return delay * (0.5 + 0.5 * self._rng.random())


def _headers(record: PushConfigRecord) -> dict[str, str]:
    """Headers as the a2a-sdk sends them: token header and `Authorization: <scheme> <creds>`."""
    config = record.config
    headers = {"Content-Type": "application/json"}
    if config.token:
        headers["X-A2A-Notification-Token"] = config.token
    auth = config.authentication
    if auth is not None and auth.scheme:
        headers["Authorization"] = f"{auth.scheme} {auth.credentials}" if auth.credentials \
            else auth.scheme
    return headers
