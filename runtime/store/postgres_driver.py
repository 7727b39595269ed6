"""One libpq connection driven from trio through psycopg's generator protocol.

psycopg's `AsyncConnection` needs asyncio. Its sans-IO core does not: the
`psycopg.generators` functions run libpq's non-blocking protocol and yield
whenever the socket must become readable or writable. `_drive` answers those
yields with `trio.lowlevel.wait_readable/wait_writable`, so every query runs on
the trio thread with no worker-thread hand-off (docs/deployment.md has the
measurements against a thread pool of sync connections).

Parameters go out and values come back in PostgreSQL's text format; the callers
cast in SQL and convert the few column types they read. Statements are prepared
once per connection and reused.

A connection interrupted mid-protocol (cancelled, or the socket failed) is
closed on the spot: its state is unknown, and the server rolls back whatever
transaction it had open when the socket goes away.

A connection that LISTENs (the change feed, postgres_feed) keeps the
notifications it receives, also those libpq reads while a statement runs on it
(psycopg's generators would otherwise drop them), and `wait_notifies` waits for
them on trio's socket wait like any query.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

import attrs
import psycopg
import trio
from psycopg import generators, pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.waiting import Ready, Wait

__all__ = ["PgConnection", "Result", "display_url"]

RV = TypeVar("RV")
Param = str | int | float | None

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)


@attrs.frozen
class Result:
    """Rows of a statement, each value PostgreSQL's text form or None."""

    rows: list[tuple[str | None, ...]]
    rowcount: int
    """Rows the statement returned or changed."""


def display_url(conninfo: str) -> str:
    """`conninfo` as a postgresql:// URL without its password, for messages and logs."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparseable database URL>"
    user = params.get("user")
    host = str(params.get("host") or "")
    port = params.get("port")
    netloc = f"{user}@" if user else ""
    if host and not host.startswith("/") and "," not in host:
        netloc += f"[{host}]" if ":" in host else host
        netloc += f":{port}" if port else ""
    url = f"postgresql://{netloc}/{params.get('dbname') or ''}"
    if host.startswith("/") or "," in host:
        url += f"?host={host}"
    return url


def _encode(value: Param) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value).encode()  # shortest text that round-trips exactly
    return str(value).encode()


async def _wait_either(fileno: int) -> Ready:
    """Wait until the socket is readable or writable (libpq's flush may need both)."""
    ready: list[Ready] = []
    async with trio.open_nursery() as nursery:
        async def wait(fn: Any, flag: Ready) -> None:
            await fn(fileno)
            ready.append(flag)
            nursery.cancel_scope.cancel()

        nursery.start_soon(wait, trio.lowlevel.wait_readable, Ready.R)
        nursery.start_soon(wait, trio.lowlevel.wait_writable, Ready.W)
    return ready[0]


async def _drive(gen: Generator[Wait, Ready, RV], fileno: int) -> RV:
    """Run a psycopg protocol generator to completion, waiting on `fileno` in trio."""
    try:
        wait = next(gen)
        while True:
            if wait == Wait.R:
                await trio.lowlevel.wait_readable(fileno)
                ready = Ready.R
            elif wait == Wait.W:
                await trio.lowlevel.wait_writable(fileno)
                ready = Ready.W
            else:
                ready = await _wait_either(fileno)
            wait = gen.send(ready)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _resolve(conninfo: str) -> str:
    """Resolve a single host name in trio and pass its addresses as `hostaddr`, because
    libpq would otherwise resolve it with a blocking getaddrinfo on the trio thread."""
    params = conninfo_to_dict(conninfo)
    host = str(params.get("host") or "")
    if not host or host.startswith("/") or "," in host or params.get("hostaddr"):
        return conninfo
    try:
        ipaddress.ip_address(host)
        return conninfo
    except ValueError:
        pass
    port = int(params.get("port") or 5432)
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    # One host entry per address, so libpq still tries each in turn (::1, then 127.0.0.1).
    return make_conninfo(conninfo, host=",".join([host] * len(addresses)),
                         hostaddr=",".join(addresses))


class PgConnection:
    """A libpq connection used by one trio task at a time (callers hold a lock or pool)."""

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self._pgconn = pgconn
        self._fileno = pgconn.socket
        self._prepared: dict[str, bytes] = {}
        self._closed = False
        self._notifies: list[pq.PGnotify] = []
        pgconn.notify_handler = self._notifies.append  # see the module docstring

    @classmethod
    async def connect(cls, conninfo: str) -> PgConnection:
        """Open a connection; psycopg.OperationalError names libpq's reason on failure."""
        conninfo = await _resolve(conninfo)
        gen = generators.connect(conninfo)
        try:
            fileno, wait = next(gen)
            while True:
                if wait == Wait.R:
                    await trio.lowlevel.wait_readable(fileno)
                    ready = Ready.R
                else:
                    await trio.lowlevel.wait_writable(fileno)
                    ready = Ready.W
                fileno, wait = gen.send(ready)
        except StopIteration as done:
            return cls(done.value)
        except BaseException:
            gen.close()  # finishes the half-open PGconn
            raise

    @property
    def broken(self) -> bool:
        """True once the connection is closed or libpq has seen it fail."""
        return self._closed or self._pgconn.status != pq.ConnStatus.OK

    @property
    def idle(self) -> bool:
        """Not inside a transaction (nothing to roll back before reuse)."""
        return self._pgconn.transaction_status == pq.TransactionStatus.IDLE

    @property
    def backend_pid(self) -> int:
        return self._pgconn.backend_pid

    def poll_alive(self) -> bool:
        """Read whatever the server sent while the connection sat idle (a termination
        notice, EOF) without blocking; False if that shows the connection is gone."""
        if self.broken:
            return False
        try:
            self._pgconn.consume_input()
        except psycopg.OperationalError:
            self.close()
            return False
        return not self.broken

    async def execute(self, sql: str, params: Sequence[Param] = ()) -> Result:
        """Run one statement with `$n` parameters, prepared on first use."""
        name = self._prepared.get(sql)
        if name is None:
            name = f"s{len(self._prepared)}".encode()
            self._pgconn.send_prepare(name, sql.encode())
            self._check(await self._run())
            self._prepared[sql] = name
        self._pgconn.send_query_prepared(name, [_encode(p) for p in params])
        return self._check(await self._run())

    async def script(self, sql: str) -> None:
        """Run statements without parameters (BEGIN, COMMIT, DDL) over the simple protocol."""
        self._pgconn.send_query(sql.encode())
        self._check(await self._run())

    async def _run(self) -> list[pq.abc.PGresult]:
        try:
            return await _drive(generators.execute(self._pgconn), self._fileno)
        except BaseException:
            self.close()  # mid-protocol: its state is unknown
            raise

    def _check(self, results: list[pq.abc.PGresult]) -> Result:
        rows: list[tuple[str | None, ...]] = []
        count = 0
        for res in results:
            if res.status not in _OK:
                if self._pgconn.status != pq.ConnStatus.OK:
                    self.close()
                raise psycopg.errors.error_from_result(res, encoding="utf-8")
            for row in range(res.ntuples):
                rows.append(tuple(_text(res.get_value(row, col)) for col in range(res.nfields)))
            count = res.command_tuples or res.ntuples
        return Result(rows=rows, rowcount=count)

    async def wait_notifies(self) -> list[tuple[str, str]]:
        """(channel, payload) of the notifications received since the last call, in
        the order they came, waiting until there is one. `psycopg.OperationalError`
        (and the connection closed) if it is lost meanwhile."""
        while not self._notifies:
            await trio.lowlevel.wait_readable(self._fileno)
            try:
                self._pgconn.consume_input()
            except psycopg.OperationalError:
                self.close()
                raise
            while (notify := self._pgconn.notifies()) is not None:
                self._notifies.append(notify)
            if self.broken:
                self.close()
                raise psycopg.OperationalError("the server closed the connection")
        got = [(n.relname.decode(), n.extra.decode()) for n in self._notifies]
        self._notifies.clear()
        return got

    def close(self) -> None:
        """Close at once (idempotent); the server rolls back an open transaction."""
        if self._closed:
            return
        self._closed = True
        if self._fileno >= 0:
            trio.lowlevel.notify_closing(self._fileno)
        self._pgconn.finish()


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()
