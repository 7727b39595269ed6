"""PushOwnership: which push configs this replica delivers, and for how long.

Several server replicas on one database must not all post the same events, and a
config whose replica died must not wait for it to come back. So each config is
delivered by one replica at a time: the one holding its claim (`PushClaim`: owner,
expiry, a fresh token per claim), stored with the config and taken with one
conditional update (`TaskBackend.claim_push_config`) that wins only if nobody holds
the config or its claim expired. While a replica lives:

* it renews every claim it holds every `renew_interval` (a third of `ttl` by
  default) in one call; a claim whose token no longer holds (another replica took
  it) is lost, and its delivery loop is cancelled (`lose`);
* if renewals fail (the database is unreachable) its claims run out on its own
  clock too: once one has expired the loop is cancelled, since another replica may
  have taken over;
* the delivery cursor moves only under the claim's token (`advance`, a fenced
  `set_push_delivered`): a replica that lost a config without noticing yet (paused
  past the expiry) is refused there, and its loop stops. So at most the event it
  had in flight is posted by both, never a run of events;
* it looks for configs to take over (free, or with an expired claim, that may have
  more to deliver; `list_claimable_push`) when the change feed reports other
  replicas' writes to their tasks (a replica that stops gracefully releases its
  claims in a statement that reports their tasks, so they are taken over at once)
  and every `rescan_interval` as the bound on a takeover after a crash: within
  `ttl + rescan_interval` of the owner's last renewal.

On a store one process owns (memory, SQLite) nobody else competes: the process
frees every claim at start, whatever replica took it, and claims what it delivers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import attrs
import trio

from actors.store_port import PushClaim
from actors.task_commit import backend_down
from actors.task_store import ServerTaskStore

__all__ = ["PushOwnership", "OwnershipStatistics"]

log = logging.getLogger("actors.push_delivery")  # push delivery's log: one place to look

Key = tuple[str, str]
CLAIM_BATCH = 1000
"""Configs listed (and claimed) per look; a start takes them all, page by page."""


@attrs.frozen
class OwnershipStatistics:
    held: int
    """Configs this replica holds the claim of."""
    taken: int
    """Claims taken (at start, by watch or rescan, or over from another replica)."""
    lost: int
    """Claims lost to another replica (or to expiry while renewals failed)."""


def _token() -> str:
    return uuid.uuid4().hex


class PushOwnership:
    """The claims of one replica; see the module docstring.

    `owner` is the replica id; `ttl` (seconds) how long a claim lasts unrenewed;
    `renew_interval` and `rescan_interval` default to a third of it. `token` makes
    each claim's token (unique; injected for tests).
    """

    def __init__(self, store: ServerTaskStore, *, owner: str, ttl: float,
                 renew_interval: float | None = None, rescan_interval: float | None = None,
                 token: Callable[[], str] = _token) -> None:
        if ttl <= 0:
            raise ValueError(f"push claim ttl must be > 0, got {ttl}")
        self._store = store
        self.owner = owner
        self._ttl = ttl
        self._renew_interval = renew_interval if renew_interval is not None else ttl / 3
        self._rescan_interval = rescan_interval if rescan_interval is not None else ttl / 3
        self._token = token
        self._held: dict[Key, PushClaim] = {}
        self.closing = False
        """Set by a graceful stop: nothing more is claimed."""
        self._taken = 0
        self._lost = 0

    def statistics(self) -> OwnershipStatistics:
        return OwnershipStatistics(held=len(self._held), taken=self._taken, lost=self._lost)

    def holds(self, key: Key) -> bool:
        """Whether this replica holds the config's claim and, by its own clock, the claim
        has not expired (renewals failing): a loop posts nothing under a lapsed claim."""
        claim = self._held.get(key)
        return claim is not None and claim.expires_at >= self._store.now()

    def give_up(self, key: Key) -> None:
        """Stop counting the claim as held (lost, or lapsed), without releasing it."""
        if self._held.pop(key, None) is not None:
            self._lost += 1

    # --- claims -----------------------------------------------------------------------

    async def claim(self, key: Key) -> bool:
        """Hold the config (True at once if held already); False if another replica does,
        or it is gone."""
        if key in self._held:
            return True
        if self.closing:
            return False
        now = self._store.now()
        claim = await self._store.backend.claim_push_config(
            key[0], key[1], owner=self.owner, token=self._token(), now=now,
            expires_at=now + self._ttl)
        if claim is None or self.closing:
            if claim is not None:
                await self._store.backend.release_push_claims([claim])
            return False
        self._held[key] = claim
        self._taken += 1
        return True

    async def advance(self, key: Key, seq: int) -> bool:
        """Record delivery progress under the config's claim; False if the claim is lost
        (the caller stops delivering)."""
        claim = self._held.get(key)
        if claim is None:
            return False
        if await self._store.backend.set_push_delivered(key[0], key[1], seq, token=claim.token):
            return True
        if self._held.get(key) is claim:
            self.give_up(key)
        log.info("push config taken over by another replica; stopping its delivery here",
                 extra={"task_id": key[0], "config_id": key[1], "replica_id": self.owner})
        return False

    async def drop(self, key: Key) -> None:
        """The config has nothing more to deliver (or is gone): release its claim."""
        claim = self._held.pop(key, None)
        if claim is not None:
            await self._store.backend.release_push_claims([claim])

    async def release_all(self) -> None:
        """Graceful stop: release every claim in one call (others take over at once)."""
        self.closing = True
        claims, self._held = list(self._held.values()), {}
        if not claims:
            return
        try:
            await self._store.backend.release_push_claims(claims, hand_over=True)
        except Exception as exc:
            if not backend_down(exc):
                raise
            log.warning("cannot release push claims; other replicas take the configs over "
                        "when they expire", extra={"configs": len(claims), "error": repr(exc)})
            return
        log.info("released push configs for another replica to deliver",
                 extra={"configs": len(claims), "replica_id": self.owner})

    # --- start, renewals, takeover ----------------------------------------------------

    async def take_claimable(self) -> list[Key]:
        """At start: free the claims of this replica's previous incarnation (on a store
        one process owns: every claim), then claim every config that may have more to
        deliver, page by page. The keys claimed."""
        backend = self._store.backend
        self._held.clear()  # a restarted run: the previous run's loops (and claims) are gone
        freed = await backend.release_push_claims_of(self.owner if self._store.shared else None)
        if freed:
            log.info("freed push claims of a previous run", extra={"configs": freed})
        taken: list[Key] = []
        while True:
            found = await self._claim_found(None)
            taken.extend(found[0])
            if found[1] < CLAIM_BATCH or self.closing:
                return taken

    async def _claim_found(self, task_ids: list[str] | None) -> tuple[list[Key], int]:
        """Claim the claimable configs (of `task_ids`); (keys claimed, how many listed)."""
        records = await self._store.backend.list_claimable_push(
            self._store.now(), task_ids=task_ids, limit=CLAIM_BATCH)
        taken = []
        for record in records:
            key = (record.task_id, record.config_id)
            if key not in self._held and await self.claim(key):
                taken.append(key)
        return taken, len(records)

    async def run(self, start: Callable[[Key], None], lose: Callable[[Key], None], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew held claims, and (on a shared store) take over configs as they become
        claimable, calling `start` for each taken and `lose` for each lost."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renew_forever, lose)
            if self._store.shared:
                await nursery.start(self._take_over_forever, start)
            task_status.started()

    async def _renew_forever(self, lose: Callable[[Key], None]) -> None:
        while True:
            await trio.sleep(self._renew_interval)
            if not self._held:
                continue
            claims = list(self._held.values())
            now = self._store.now()
            expires_at = now + self._ttl
            # a slow answer is still worth waiting for until the first claim would lapse
            patience = max(self._renew_interval, min(c.expires_at for c in claims) - now)
            renewed: list[PushClaim] | None = None
            try:
                with trio.move_on_after(patience):
                    renewed = await self._store.backend.renew_push_claims(claims, expires_at)
            except Exception as exc:
                if not backend_down(exc):
                    raise
                log.warning("cannot renew push claims", extra={"configs": len(claims),
                                                               "error": repr(exc)})
            if renewed is None:
                self._lose_expired(lose)
                continue
            kept = {(c.task_id, c.config_id): c for c in renewed}
            for old in claims:
                key = (old.task_id, old.config_id)
                if self._held.get(key) is not old:
                    continue  # released or lost meanwhile
                fresh = kept.get(key)
                if fresh is not None and fresh.token == old.token:
                    self._held[key] = fresh
                else:
                    self._lose(key, lose, "push config taken over by another replica")

    def _lose_expired(self, lose: Callable[[Key], None]) -> None:
        """Renewals failed: stop delivering what may have been taken over meanwhile."""
        now = self._store.now()
        for key, claim in list(self._held.items()):
            if claim.expires_at < now:
                self._lose(key, lose, "push claim expired while renewals failed")

    def _lose(self, key: Key, lose: Callable[[Key], None], why: str) -> None:
        self.give_up(key)
        log.info(why, extra={"task_id": key[0], "config_id": key[1],
                             "replica_id": self.owner})
        lose(key)

    async def _take_over_forever(self, start: Callable[[Key], None], *,
                                 task_status: trio.TaskStatus[None]) -> None:
        """Look for configs to take over: those of the tasks other replicas write to
        (a released claim reports its task too), and all of them every rescan."""
        with self._store.remote_changes() as changes:
            task_status.started()
            next_scan = trio.current_time() + self._rescan_interval
            while not self.closing:
                task_ids: list[str] | None = None
                with trio.move_on_at(next_scan):
                    batch = await changes.wait()
                    task_ids = None if batch.missed else [c.task_id for c in batch.changes]
                if task_ids is None:
                    next_scan = trio.current_time() + self._rescan_interval
                try:
                    taken, _ = await self._claim_found(task_ids)
                except Exception as exc:
                    if not backend_down(exc):
                        raise
                    log.warning("cannot look for push configs to take over",
                                extra={"error": repr(exc)})
                    continue
                for key in taken:
                    log.info("took over a push config", extra={
                        "task_id": key[0], "config_id": key[1], "replica_id": self.owner})
                    start(key)
