"""An accept loop that survives running out of file descriptors, and says so once
per interval.

trio's `serve_listeners` answers EMFILE, ENFILE, ENOMEM and ENOBUFS from `accept()`
by logging the error at ERROR level with its traceback and trying again 100 ms
later: a server at its descriptor limit wrote ten tracebacks a second (733 in one
incident) for as long as its connections stayed open. `PatientListener` wraps the
`SocketListener` and handles those errors itself, so trio never sees them:

* it waits before the next attempt, from 10 ms doubling up to 1 s (new connections
  wait in the kernel's backlog meanwhile, and are taken as soon as it works again);
* `AcceptMonitor` logs one warning when the trouble starts, one per `log_interval`
  while it lasts (with how many attempts failed), and one line when a connection
  is accepted again; and it keeps the state, which `statistics()` hands to
  whoever reports the server's readiness (`RunningServer.statistics()`).

Any other error from `accept()` propagates as before.
"""

from __future__ import annotations

import errno
import logging
import math
import socket

import attrs
import trio

__all__ = ["AcceptMonitor", "AcceptStatistics", "PatientListener", "listen_socket"]

log = logging.getLogger(__name__)

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""accept() errors that say the process or the system is out of something, not
that the listener is broken (the same set trio's serve_listeners retries)."""
LOG_INTERVAL = 10.0
"""Seconds between warnings while accept() keeps failing."""
FIRST_WAIT = 0.01
MAX_WAIT = 1.0
"""The wait before the next accept() after a failure doubles up to this, which is
how long a server that has descriptors again may take to notice."""


@attrs.frozen
class AcceptStatistics:
    """The accept loop's state, for a readiness check."""

    fd_exhausted: bool
    """accept() is failing for lack of file descriptors (or of kernel memory:
    `error` says which); connections wait in the backlog."""
    error: str | None
    """The errno name of the current failure (EMFILE, ENFILE, ENOMEM, ENOBUFS)."""
    since: float | None
    """When the current failure started (trio time)."""
    failed_accepts: int
    """accept() calls that failed so, over the server's life."""
    episodes: int
    """How many times accepting has stopped working."""


class AcceptMonitor:
    """What the accept loop went through; outlives a restart of the HTTP listener."""

    def __init__(self, log_interval: float | None = None) -> None:
        self.log_interval = LOG_INTERVAL if log_interval is None else log_interval
        self._error: str | None = None
        self._since: float | None = None
        self._failed = 0
        self._episodes = 0
        self._last_line = -math.inf
        self._unreported = 0  # failures since the last line
        self._episode_failures = 0

    def failed(self, exc: OSError) -> None:
        now = trio.current_time()
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self._failed += 1
        self._unreported += 1
        self._episode_failures += 1
        if self._error is None:
            self._error, self._since = name, now
            self._episodes += 1
            log.warning("cannot accept connections: %s (%s); they wait in the backlog",
                        name, exc.strerror, extra={"errno": name, "failed_accepts": 1})
        elif now - self._last_line >= self.log_interval:
            log.warning("still cannot accept connections: %s; %d more failed attempt(s) in %.1f s",
                        name, self._unreported, now - self._last_line,
                        extra={"errno": name, "failed_accepts": self._unreported,
                               "seconds": round(now - self._since, 3)})
        else:
            return
        self._last_line = now
        self._unreported = 0

    def accepted(self) -> None:
        if self._error is None:
            return
        seconds = trio.current_time() - (self._since or 0.0)
        log.info("accepting connections again after %.1f s of %s", seconds, self._error,
                 extra={"errno": self._error, "seconds": round(seconds, 3),
                        "failed_accepts": self._episode_failures})
        self._error = self._since = None
        self._episode_failures = self._unreported = 0
        self._last_line = -math.inf

    def statistics(self) -> AcceptStatistics:
        return AcceptStatistics(fd_exhausted=self._error is not None, error=self._error,
                                since=self._since, failed_accepts=self._failed,
                                episodes=self._episodes)


class PatientListener(trio.abc.Listener[trio.SocketStream]):
    """A `SocketListener` whose accept() waits out EMFILE and the like."""

    def __init__(self, inner: trio.abc.Listener[trio.SocketStream],
                 monitor: AcceptMonitor) -> None:
        self._inner = inner
        self._monitor = monitor

    async def accept(self) -> trio.SocketStream:
        wait = FIRST_WAIT
        while True:
            try:
                stream = await self._inner.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                self._monitor.failed(exc)
                await trio.sleep(wait)
                wait = min(wait * 2, MAX_WAIT)
            else:
                self._monitor.accepted()
                return stream

    async def aclose(self) -> None:
        await self._inner.aclose()


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on host:port; OSError naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock
