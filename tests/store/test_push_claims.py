"""Push delivery claims at the `TaskBackend` port: one contract for memory, SQLite and
PostgreSQL (the `backend` fixture of test_backends runs each test on all three).

A claim is ownership of one push config's delivery: taken with one conditional
update when the config is free or its claim expired, renewed while its token
holds, released on a graceful stop, and the token fences the delivery cursor.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
import trio

from actors.store_port import PushClaim, TaskBackend
from protocol.models import TaskState
from runtime.store import open_sqlite_backend
from runtime.store.postgres import open_postgres_backend
from runtime.store.postgres_feed import CHANNEL
from runtime.store.sqlite import SCHEMA_VERSION
from tests.store import test_backends
from tests.store.test_backends import T0, TIMEOUT, advance, create, make_push

backend = test_backends.backend
"""The fixture of the backend suite: each test runs on memory, SQLite and PostgreSQL."""

TTL = 30.0


async def claim(backend: TaskBackend, owner: str, token: str, *, now: float = T0,
                task_id: str = "t1", config_id: str = "p") -> PushClaim | None:
    return await backend.claim_push_config(task_id, config_id, owner=owner, token=token,
                                           now=now, expires_at=now + TTL)


async def delivered(backend: TaskBackend, task_id: str = "t1", config_id: str = "p") -> int:
    record = await backend.get_push_config(task_id, config_id)
    assert record is not None
    return record.delivered_seq


async def keys(backend: TaskBackend, now: float = T0, **kwargs: object) -> list[tuple[str, str]]:
    return [(r.task_id, r.config_id)
            for r in await backend.list_claimable_push(now, **kwargs)]  # type: ignore[arg-type]


async def test_one_claim_holds_a_config_until_it_expires(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1", events=3)])
        await backend.put_push_config(make_push("t1", "p"))
        assert await backend.get_push_claim("t1", "p") is None
        first = await claim(backend, "a", "tok-a")
        assert first == PushClaim(task_id="t1", config_id="p", owner="a", token="tok-a",
                                  expires_at=T0 + TTL)
        assert await backend.get_push_claim("t1", "p") == first
        # held: nobody else gets it, not even the same owner under a new token
        assert await claim(backend, "b", "tok-b", now=T0 + 1) is None
        assert await claim(backend, "a", "tok-a2", now=T0 + 1) is None
        assert await claim(backend, "b", "tok-b", now=T0 + TTL) is None  # not before it passed
        # expired: the next claim wins, under its own token
        taken = await claim(backend, "b", "tok-b", now=T0 + TTL + 0.5)
        assert taken is not None and taken.owner == "b" and taken.token == "tok-b"
        assert taken.expires_at == T0 + TTL + 0.5 + TTL
        assert await backend.get_push_claim("t1", "p") == taken
        assert await claim(backend, "c", "tok-c", now=T0 + TTL + 1) is None


async def test_an_unknown_config_cannot_be_claimed(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1")])
        assert await claim(backend, "a", "tok") is None
        assert await backend.get_push_claim("t1", "p") is None


async def test_the_token_fences_the_delivery_cursor(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1", events=9)])
        await backend.put_push_config(make_push("t1", "p"))
        old = await claim(backend, "a", "tok-a")
        assert old is not None
        assert await backend.set_push_delivered("t1", "p", 2, token="tok-a") is True
        assert await delivered(backend) == 2
        new = await claim(backend, "b", "tok-b", now=T0 + TTL + 1)  # a's claim ran out
        assert new is not None
        # the stale owner moves nothing, the new one does
        assert await backend.set_push_delivered("t1", "p", 5, token="tok-a") is False
        assert await delivered(backend) == 2
        assert await backend.set_push_delivered("t1", "p", 4, token="tok-b") is True
        assert await delivered(backend) == 4
        assert await backend.set_push_delivered("t1", "p", 3, token="tok-b") is True  # no step back
        assert await delivered(backend) == 4
        # unfenced progress (no token) is as before claims existed
        assert await backend.set_push_delivered("t1", "p", 6) is True
        assert await delivered(backend) == 6
        assert await backend.set_push_delivered("t1", "nope", 7) is False
        assert await backend.set_push_delivered("t1", "nope", 7, token="tok-b") is False


async def test_renewal_extends_only_claims_whose_token_holds(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1"), create("t2")])
        for task_id in ("t1", "t2"):
            await backend.put_push_config(make_push(task_id, "p"))
        one = await claim(backend, "a", "a1", task_id="t1")
        two = await claim(backend, "a", "a2", task_id="t2")
        assert one is not None and two is not None
        assert await backend.renew_push_claims([], T0 + 100) == []
        # past its expiry but nobody took it: the token still holds, it renews
        renewed = await backend.renew_push_claims([one, two], T0 + TTL + 5)
        assert sorted(renewed, key=lambda c: c.task_id) == [
            PushClaim(task_id="t1", config_id="p", owner="a", token="a1",
                      expires_at=T0 + TTL + 5),
            PushClaim(task_id="t2", config_id="p", owner="a", token="a2",
                      expires_at=T0 + TTL + 5)]
        assert (await backend.get_push_claim("t2", "p")).expires_at == T0 + TTL + 5  # type: ignore[union-attr]
        assert await claim(backend, "b", "b2", now=T0 + TTL + 1, task_id="t2") is None
        taken = await claim(backend, "b", "b2", now=T0 + TTL + 6, task_id="t2")
        assert taken is not None
        # a lost t2: its renewal extends t1 only, and leaves b's claim as it was
        renewed = await backend.renew_push_claims([one, two], T0 + 200)
        assert [(c.task_id, c.token) for c in renewed] == [("t1", "a1")]
        assert await backend.get_push_claim("t2", "p") == taken


async def test_release_frees_a_config_at_once_and_is_idempotent(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1")])
        await backend.put_push_config(make_push("t1", "p"))
        held = await claim(backend, "a", "tok-a")
        assert held is not None
        await backend.release_push_claims([held], hand_over=True)
        assert await backend.get_push_claim("t1", "p") is None
        await backend.release_push_claims([held])  # again: nothing happens
        await backend.release_push_claims([])
        assert await backend.set_push_delivered("t1", "p", 1, token="tok-a") is False
        # long before a's claim would have expired, b takes it
        taken = await claim(backend, "b", "tok-b", now=T0 + 1)
        assert taken is not None
        await backend.release_push_claims([held])  # a's stale release leaves b's claim
        assert await backend.get_push_claim("t1", "p") == taken
        assert await backend.renew_push_claims([held], T0 + 99) == []


async def test_release_of_one_owner_or_of_all(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create(t) for t in ("t1", "t2", "t3")])
        for task_id in ("t1", "t2", "t3"):
            await backend.put_push_config(make_push(task_id, "p"))
        await claim(backend, "a", "a1", task_id="t1")
        await claim(backend, "a", "a2", task_id="t2")
        await claim(backend, "b", "b3", task_id="t3")
        assert await backend.release_push_claims_of("nobody") == 0
        assert await backend.release_push_claims_of("a") == 2
        assert await backend.get_push_claim("t1", "p") is None
        assert await backend.get_push_claim("t2", "p") is None
        assert (await backend.get_push_claim("t3", "p")).owner == "b"  # type: ignore[union-attr]
        assert await backend.release_push_claims_of(None) == 1
        assert await backend.get_push_claim("t3", "p") is None


async def test_a_replaced_config_keeps_its_claim_a_recreated_one_does_not(
        backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1", events=4)])
        await backend.put_push_config(make_push("t1", "p"))
        held = await claim(backend, "a", "tok-a")
        await backend.put_push_config(make_push("t1", "p", delivered=1))  # replaced
        assert await backend.get_push_claim("t1", "p") == held
        assert await backend.delete_push_config("t1", "p") is True
        assert await backend.get_push_claim("t1", "p") is None
        await backend.put_push_config(make_push("t1", "p"))  # created again
        assert await backend.get_push_claim("t1", "p") is None
        assert await backend.set_push_delivered("t1", "p", 3, token="tok-a") is False
        assert await delivered(backend) == 0
        assert await claim(backend, "b", "tok-b", now=T0 + 1) is not None


async def test_claimable_configs(backend: TaskBackend) -> None:
    """Free or expired, and with something (possibly) left to deliver: the task is not
    finished, or the config is behind it."""
    with trio.fail_after(TIMEOUT):
        await backend.commit([
            create("live", events=2),
            create("paused", state=TaskState.INPUT_REQUIRED, events=2),
            create("done", state=TaskState.COMPLETED, events=3),
        ])
        await backend.put_push_config(make_push("live", "free"))
        await backend.put_push_config(make_push("live", "held"))
        await backend.put_push_config(make_push("paused", "p"))
        await backend.put_push_config(make_push("done", "behind", delivered=2))
        await backend.put_push_config(make_push("done", "through", delivered=3))
        await backend.put_push_config(make_push("orphan", "x"))  # no task row
        assert await claim(backend, "a", "tok", task_id="live", config_id="held") is not None
        everything = [("live", "free"), ("paused", "p"), ("done", "behind")]
        assert await keys(backend) == everything
        assert await keys(backend, limit=2) == everything[:2]
        assert await keys(backend, task_ids=["done", "nothing"]) == [("done", "behind")]
        assert await keys(backend, task_ids=[]) == []
        # once the claim has expired, the held config is claimable again
        assert await keys(backend, T0 + TTL + 1, task_ids=["live"]) == [
            ("live", "free"), ("live", "held")]
        # delivered through: finished with
        await backend.set_push_delivered("done", "behind", 3)
        assert await keys(backend, task_ids=["done"]) == []
        # the live task finishes with its configs behind: still claimable
        live = await backend.get_task("live")
        assert live is not None
        await backend.commit([advance(live, TaskState.COMPLETED)])
        assert await keys(backend, task_ids=["live"]) == [("live", "free")]


async def test_sqlite_migrates_a_v3_file_to_claims(tmp_path: Path) -> None:
    """A file of schema v3 (no claim columns) opens; its configs are unclaimed and can
    be claimed."""
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "tasks.sqlite3"
        async with open_sqlite_backend(path) as db:
            await db.commit([create("t1", events=2)])
            await db.put_push_config(make_push("t1", "p", delivered=1))
        conn = sqlite3.connect(path)
        for column in ("claim_owner", "claim_token", "claim_expires"):
            conn.execute(f"ALTER TABLE push_configs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
        conn.close()
        async with open_sqlite_backend(path) as db:
            assert await db.get_push_claim("t1", "p") is None
            assert [r.config_id for r in await db.list_claimable_push(T0)] == ["p"]
            assert await claim(db, "a", "tok") is not None
            assert await db.set_push_delivered("t1", "p", 2, token="tok") is True
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        conn.close()


async def test_postgres_release_tells_the_other_replicas(postgres_url: str) -> None:
    """Handing claims over is one statement that also notifies the configs' tasks on the
    change feed's channel, with the task's current version: other replicas look at once.
    A release of a config that is done with says nothing."""
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(postgres_url) as pg:
            await pg.commit([create("t1", events=3)])
            await pg.put_push_config(make_push("t1", "p"))
            held = await claim(pg, "a", "tok-a")
            assert held is not None
            listener = psycopg.connect(postgres_url, autocommit=True)
            try:
                listener.execute(f"LISTEN {CHANNEL}")
                await pg.release_push_claims([held], hand_over=True)
                # nothing released: nothing said
                await pg.release_push_claims([held], hand_over=True)
                again = await claim(pg, "a", "tok-a2")
                assert again is not None
                await pg.release_push_claims([again])  # done with, not handed over: quiet
                assert await pg.get_push_claim("t1", "p") is None
                notes = [n.payload for n in listener.notifies(timeout=1.0, stop_after=2)]
            finally:
                listener.close()
        assert notes == [f"1 3 {pg.origin} t1"]


@pytest.mark.parametrize("owner", ["a", None])
async def test_release_of_nothing_held(backend: TaskBackend, owner: str | None) -> None:
    with trio.fail_after(TIMEOUT):
        assert await backend.release_push_claims_of(owner) == 0
