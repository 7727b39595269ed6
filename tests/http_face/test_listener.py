"""The accept loop out of file descriptors (runtime.http.listener), on virtual time:
backoff at exact times, one warning per interval and no traceback, the state a
readiness check reads, and recovery."""

from __future__ import annotations

import errno
import logging
from typing import Any

import pytest
import trio
import trio.testing

from runtime.http.listener import AcceptMonitor, PatientListener


class FailingListener(trio.abc.Listener[Any]):
    """accept() fails with `error` until `until` (virtual seconds), then succeeds."""

    def __init__(self, until: float, error: int = errno.EMFILE) -> None:
        self.until = until
        self.error = error
        self.attempts: list[float] = []

    async def accept(self) -> Any:
        await trio.lowlevel.checkpoint()
        self.attempts.append(trio.current_time())
        if trio.current_time() < self.until:
            raise OSError(self.error, "Too many open files")
        return "a stream"

    async def aclose(self) -> None:
        pass


class Lines(logging.Handler):
    """The records of a logger, each with the virtual time it was written at."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((trio.current_time(), record))


async def test_out_of_descriptors_backs_off_and_logs_once_per_interval(
        autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = Lines()
    logger = logging.getLogger("runtime.http.listener")
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(lines)
    try:
        await accept_through_25_seconds_of_emfile(lines)
    finally:
        logger.removeHandler(lines)


async def accept_through_25_seconds_of_emfile(lines: Lines) -> None:
    inner = FailingListener(until=25.0)
    monitor = AcceptMonitor(log_interval=10.0)
    listener = PatientListener(inner, monitor)
    seen: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            seen.append(await listener.accept())

        nursery.start_soon(accept)
        await trio.sleep(5)
        during = monitor.statistics()
    assert seen == ["a stream"]
    # waits of 10 ms doubling to 1 s: attempts at 0, .01, .03, .07, .15, .31, .63, 1.27,
    # then every second, until the one at 25.27 works
    expected = [0.0, 0.01, 0.03, 0.07, 0.15, 0.31, 0.63] + [1.27 + i for i in range(25)]
    assert inner.attempts == pytest.approx(expected)
    assert [(r.levelname, round(t, 2)) for t, r in lines.records] == [
        ("WARNING", 0.0), ("WARNING", 10.27), ("WARNING", 20.27), ("INFO", 25.27)]
    records = [r for _, r in lines.records]
    assert all(r.exc_info is None for r in records)
    assert [r.failed_accepts for r in records] == [1, 16, 10, 31]  # type: ignore[attr-defined]
    assert {r.errno for r in records} == {"EMFILE"}  # type: ignore[attr-defined]
    assert during.fd_exhausted and during.error == "EMFILE" and during.since == 0.0
    after = monitor.statistics()
    assert not after.fd_exhausted and after.error is None and after.since is None
    assert (after.failed_accepts, after.episodes) == (31, 1)


async def test_other_accept_errors_propagate(autojump_clock: trio.testing.MockClock) -> None:
    listener = PatientListener(FailingListener(until=1.0, error=errno.EBADF), AcceptMonitor())
    with pytest.raises(OSError) as info:
        await listener.accept()
    assert info.value.errno == errno.EBADF
