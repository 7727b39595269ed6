"""The supervisor on virtual time: exact start/stop orders and restart times.

Children record `(trio.current_time(), event, name)`; events at the same virtual time
are only compared in order when one causes the other (ordered start via
`nursery.start`, stops one after another, a failure and the restarts it triggers).
Jitter is 0 except in the backoff test, which uses a seeded `random.Random`; all other
times are sums of binary fractions, so `==` on floats is exact. (With jitter the delays are
compared exactly, from the log; the clock's jumps add their own rounding, so those start
times are compared to 1e-9 s.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Literal

import attrs
import pytest
import trio
import trio.testing

from runtime.supervisor import (
    ChildSpec,
    RestartType,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    SupervisorStatistics,
)

TIMEOUT = 600  # virtual seconds

Event = tuple[float, str, str]


class Boom(Exception):
    pass


@attrs.frozen
class Run:
    """What one incarnation of a test child does."""

    ready_after: float = 0.0  # before task_status.started()
    then: Literal["forever", "fail", "return", "fail_early"] = "forever"
    after: float = 0.0  # time from ready to fail/return
    stop_takes: float = 0.0  # shielded cleanup when cancelled: ignores its shutdown timeout
    stop_fails: bool = False  # its cleanup raises when cancelled
    shield_startup: bool = False  # cannot be cancelled before it is ready


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, what: str, name: str) -> None:
        self.events.append((trio.current_time(), what, name))

    def child(self, name: str, *runs: Run, restart: RestartType = "permanent",
              shutdown_timeout: float = 5.0) -> ChildSpec:
        """A child whose n-th start does `runs[n]` (the last one repeats)."""
        plan = list(runs) or [Run()]
        starts = 0

        async def start(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal starts
            run = plan[min(starts, len(plan) - 1)]
            starts += 1
            self.add("start", name)
            try:
                with trio.CancelScope(shield=run.shield_startup):
                    await trio.sleep(run.ready_after)
                if run.then == "fail_early":
                    self.add("fail", name)
                    raise Boom(name)
                task_status.started()
                self.add("up", name)
                if run.then == "forever":
                    await trio.sleep_forever()
                await trio.sleep(run.after)
                self.add("fail" if run.then == "fail" else "exit", name)
                if run.then == "fail":
                    raise Boom(name)
            except trio.Cancelled:
                self.add("stop", name)
                if run.stop_takes:
                    with trio.CancelScope(shield=True):
                        await trio.sleep(run.stop_takes)
                    self.add("stopped", name)
                if run.stop_fails:
                    raise Boom(f"{name} while stopping") from None
                raise

        return ChildSpec(name, start, restart, shutdown_timeout)


def up(t: float, *names: str) -> list[Event]:
    """Ordered start: each child starts once the previous one is up."""
    return [e for n in names for e in ((t, "start", n), (t, "up", n))]


def stops(t: float, *names: str) -> list[Event]:
    return [(t, "stop", n) for n in names]


def sup(name: str, children: Sequence[ChildSpec], **kw: object) -> Supervisor:
    kw = {"backoff_base": 0.5, "jitter": 0.0, "rng": random.Random(0), **kw}
    return Supervisor(name, children, **kw)  # type: ignore[arg-type]


async def run_until(s: Supervisor, cancel_at: float) -> float:
    """Run `s`, cancel it at virtual time `cancel_at`; the time it became ready."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(s.run)
            ready_at = trio.current_time()
            await trio.sleep_until(cancel_at)
            nursery.cancel_scope.cancel()
    return ready_at


async def run_to_give_up(s: Supervisor) -> SupervisorGaveUp:
    with trio.fail_after(TIMEOUT), pytest.raises(SupervisorGaveUp) as info:
        await s.run()
    assert type(info.value) is SupervisorGaveUp  # one exception, never a group
    return info.value


# --- ordered start -------------------------------------------------------------------------


async def test_each_child_starts_only_after_the_previous_one_is_ready(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a", Run(ready_after=1)), rec.child("b", Run(ready_after=2)),
                  rec.child("c")])
    assert await run_until(s, cancel_at=5) == 3
    assert rec.events == [(0, "start", "a"), (1, "up", "a"), (1, "start", "b"), (3, "up", "b"),
                          *up(3, "c"), *stops(5, "c", "b", "a")]
    assert s.statistics() == SupervisorStatistics({"a": 0, "b": 0, "c": 0}, (), 0, ())


async def test_statistics_while_running(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(then="fail", after=1), Run())])
    assert s.statistics() == SupervisorStatistics({"a": 0, "b": 0}, (), 0, ())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(s.run)
            assert s.statistics() == SupervisorStatistics({"a": 0, "b": 0}, ("a", "b"), 0, ())
            await trio.sleep_until(1.25)  # b failed at 1, restarts at 1.5
            assert s.statistics() == SupervisorStatistics({"a": 0, "b": 1}, ("a",), 1, ())
            await trio.sleep_until(2)
            assert s.statistics() == SupervisorStatistics({"a": 0, "b": 1}, ("a", "b"), 1, ())
            nursery.cancel_scope.cancel()


# --- every strategy x every restart type ----------------------------------------------------

RESTARTED_AT_1_5 = {
    # b exits at 1; the backoff is 0.5 s.
    "one_for_one": up(1.5, "b"),
    "one_for_all": [*stops(1, "c", "a"), *up(1.5, "a", "b", "c")],
    "rest_for_one": [*stops(1, "c"), *up(1.5, "b", "c")],
}


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@pytest.mark.parametrize(("restart", "how", "restarted"), [
    ("permanent", "fail", True),
    ("permanent", "return", True),  # permanent comes back even after a normal return
    ("transient", "fail", True),
    ("transient", "return", False),  # transient: a normal return is final
    ("temporary", "fail", False),  # temporary: never restarted
    ("temporary", "return", False),
])
async def test_strategy_and_restart_type(
        autojump_clock: trio.testing.MockClock, strategy: Strategy, restart: RestartType,
        how: Literal["fail", "return"], restarted: bool) -> None:
    rec = Recorder()
    b = rec.child("b", Run(then=how, after=1), Run(), restart=restart)
    s = sup("s", [rec.child("a"), b, rec.child("c")], strategy=strategy)
    await run_until(s, cancel_at=10)
    exit_event = (1, "fail" if how == "fail" else "exit", "b")
    if restarted:
        tail = [*RESTARTED_AT_1_5[strategy], *stops(10, "c", "b", "a")]
    else:  # the siblings are not touched either
        tail = stops(10, "c", "a")
    assert rec.events == [*up(0, "a", "b", "c"), exit_event, *tail]
    stats = s.statistics()
    assert stats.restarts == {"a": 0, "b": int(restarted), "c": 0}
    assert stats.total_restarts == int(restarted)


@pytest.mark.parametrize(("strategy", "order"), [("one_for_all", ["t", "b"]),
                                                 ("rest_for_one", ["b", "t"])])
async def test_temporary_sibling_stopped_by_a_group_restart_stays_stopped(
        autojump_clock: trio.testing.MockClock, strategy: Strategy, order: list[str]) -> None:
    rec = Recorder()
    children = {"t": rec.child("t", restart="temporary"),
                "b": rec.child("b", Run(then="fail", after=1), Run())}
    s = sup("s", [children[n] for n in order], strategy=strategy)
    await run_until(s, cancel_at=10)
    assert rec.events == [*up(0, *order), (1, "fail", "b"), *stops(1, "t"), *up(1.5, "b"),
                          *stops(10, "b")]


async def test_supervisor_returns_once_no_child_is_left_to_run(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()

    async def no_readiness(*, task_status: trio.TaskStatus[None]) -> None:
        rec.add("ran", "quick")  # returns without started(): counted as up, then done

    s = sup("s", [ChildSpec("quick", no_readiness, "temporary"),
                  rec.child("t1", Run(then="return", after=1), restart="temporary"),
                  rec.child("t2", Run(then="return", after=2), restart="transient")])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(s.run)
            assert trio.current_time() == 0
    assert trio.current_time() == 2
    assert rec.events == [(0, "ran", "quick"), *up(0, "t1", "t2"), (1, "exit", "t1"),
                          (2, "exit", "t2")]
    assert s.statistics().total_restarts == 0


# --- failing before started() --------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "expected"), [
    ("one_for_one", [*up(0.5, "b", "c")]),
    ("one_for_all", [*stops(0, "a"), *up(0.5, "a", "b", "c")]),
    ("rest_for_one", [*up(0.5, "b", "c")]),
])
async def test_child_failing_before_started_is_a_failure(
        autojump_clock: trio.testing.MockClock, strategy: Strategy,
        expected: list[Event]) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(then="fail_early"), Run()),
                  rec.child("c")], strategy=strategy)
    assert await run_until(s, cancel_at=10) == 0.5  # ready once every child is up
    assert rec.events == [*up(0, "a"), (0, "start", "b"), (0, "fail", "b"), *expected,
                          *stops(10, "c", "b", "a")]
    assert s.statistics().restarts == {"a": 0, "b": 1, "c": 0}


async def test_temporary_child_failing_before_started_is_skipped(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(then="fail_early"), restart="temporary"),
                  rec.child("c")])
    assert await run_until(s, cancel_at=10) == 0
    assert rec.events == [*up(0, "a"), (0, "start", "b"), (0, "fail", "b"), *up(0, "c"),
                          *stops(10, "c", "a")]


async def test_failures_before_started_count_towards_intensity(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(then="fail_early")), rec.child("c")],
            max_restarts=1)
    gave_up = await run_to_give_up(s)
    assert (gave_up.supervisor, gave_up.child, gave_up.restarts) == ("s", "b", 1)
    assert trio.current_time() == 0.5
    assert rec.events == [*up(0, "a"), (0, "start", "b"), (0, "fail", "b"),
                          (0.5, "start", "b"), (0.5, "fail", "b"), *stops(0.5, "a")]


# --- backoff --------------------------------------------------------------------------------


async def test_backoff_sequence_with_seeded_jitter(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.supervisor")
    rec = Recorder()
    s = Supervisor("s", [rec.child("c", Run(then="fail"))], max_restarts=100, max_seconds=1,
                   backoff_base=0.1, backoff_factor=2, backoff_max=1.0, jitter=0.2,
                   rng=random.Random(1234))
    await run_until(s, cancel_at=8)

    rng = random.Random(1234)  # the same draws, by the documented formula
    delays = [min(1.0, 0.1 * 2 ** (n - 1)) * (1 + 0.2 * rng.uniform(-1, 1)) for n in range(1, 12)]
    logged = [r for r in caplog.records if hasattr(r, "delay")]
    assert [r.delay for r in logged] == delays[:len(logged)]  # exact: the same float ops
    assert [(r.supervisor, r.child, r.restarts, r.error) for r in logged[:2]] == [
        ("s", "c", 1, "Boom('c')"), ("s", "c", 2, "Boom('c')")]
    # 0.1, 0.2, 0.4, 0.8, then capped at 1.0; each +-20%
    assert [round(d, 6) for d in delays[:6]] == [0.118658, 0.195259, 0.321199, 0.931512,
                                                 1.175708, 1.032891]
    starts, t = [0.0], 0.0
    for d in delays:
        t += d
        if t < 8:
            starts.append(t)
    assert len(logged) == len(starts)  # every start failed and was rescheduled
    assert [e[0] for e in rec.events if e[1] == "start"] == pytest.approx(starts, abs=1e-9)


async def test_backoff_resets_after_a_stable_period(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.supervisor")
    rec = Recorder()
    s = sup("s", [rec.child("c", Run(then="fail"), Run(then="fail"),
                            Run(then="fail", after=10),  # stable: the count starts over
                            Run(then="fail", after=9),  # not stable: it goes on
                            Run())],
            backoff_base=1, max_restarts=100, stable_after=10)
    await run_until(s, cancel_at=30)
    assert [e[0] for e in rec.events if e[1] == "start"] == [0, 1, 3, 14, 25]
    assert [e[0] for e in rec.events if e[1] == "fail"] == [0, 1, 13, 23]
    assert [r.delay for r in caplog.records if hasattr(r, "delay")] == [1, 2, 1, 2]


# --- intensity and escalation ---------------------------------------------------------------


async def test_too_many_restarts_gives_up_with_one_exception(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(then="fail", after=1)), rec.child("c")],
            max_restarts=2, max_seconds=5)
    gave_up = await run_to_give_up(s)
    assert trio.current_time() == 4.5
    assert (gave_up.supervisor, gave_up.child, gave_up.restarts) == ("s", "b", 2)
    assert type(gave_up.__cause__) is Boom
    assert rec.events == [*up(0, "a", "b", "c"),
                          (1, "fail", "b"), *up(1.5, "b"),  # restart 1, after 0.5 s
                          (2.5, "fail", "b"), *up(3.5, "b"),  # restart 2, after 1 s
                          (4.5, "fail", "b"),  # a third within 5 s: too many
                          *stops(4.5, "c", "a")]
    assert s.statistics() == SupervisorStatistics({"a": 0, "b": 2, "c": 0}, (), 2, ())


@pytest.mark.parametrize(("max_seconds", "gives_up_at"), [(4.5, 8.5), (4.4, None)])
async def test_intensity_window_includes_its_boundary(
        autojump_clock: trio.testing.MockClock, max_seconds: float,
        gives_up_at: float | None) -> None:
    rec = Recorder()  # fails every 4 s of running; after a stable run the backoff is 0.5 s
    s = sup("s", [rec.child("c", Run(then="fail", after=4))], max_restarts=1,
            max_seconds=max_seconds, stable_after=1)
    if gives_up_at is None:
        await run_until(s, cancel_at=20)
        assert [e[0] for e in rec.events if e[1] == "start"] == [0, 4.5, 9, 13.5, 18]
    else:
        await run_to_give_up(s)
        assert trio.current_time() == gives_up_at  # failures at 4 and 8.5: 4.5 s apart


async def test_escalation_to_the_parent_supervisor(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    inner = sup("inner", [rec.child("b1"), rec.child("b2", Run(then="fail", after=1))],
                max_restarts=1, max_seconds=100)
    outer = sup("outer", [rec.child("x"), inner.as_child(), rec.child("y")],
                strategy="rest_for_one", backoff_base=1, max_restarts=1, max_seconds=100)
    gave_up = await run_to_give_up(outer)
    assert trio.current_time() == 6
    assert rec.events == [
        *up(0, "x", "b1", "b2", "y"),
        (1, "fail", "b2"), *up(1.5, "b2"),  # inner restarts b2 once
        (2.5, "fail", "b2"), *stops(2.5, "b1"),  # then gives up: a failure of the outer's child
        *stops(2.5, "y"),  # rest_for_one: y goes, inner and y come back after 1 s
        *up(3.5, "b1", "b2", "y"),
        (4.5, "fail", "b2"), *up(5, "b2"), (6, "fail", "b2"), *stops(6, "b1"),
        *stops(6, "y", "x"),  # the outer gives up too
    ]
    assert (gave_up.supervisor, gave_up.child, gave_up.restarts) == ("outer", "inner", 1)
    cause = gave_up.__cause__
    assert type(cause) is SupervisorGaveUp
    assert (cause.supervisor, cause.child, cause.restarts) == ("inner", "b2", 1)
    assert type(cause.__cause__) is Boom
    assert outer.statistics().restarts == {"x": 0, "inner": 1, "y": 0}


# --- shutdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_cancelling_the_supervisor_stops_children_in_reverse_without_restarts(
        autojump_clock: trio.testing.MockClock, strategy: Strategy) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b"), rec.child("c")], strategy=strategy)
    await run_until(s, cancel_at=5)
    assert rec.events == [*up(0, "a", "b", "c"), *stops(5, "c", "b", "a")]
    assert s.statistics().total_restarts == 0


async def test_cancelling_the_supervisor_while_a_child_starts(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    s = sup("s", [rec.child("a"), rec.child("b", Run(ready_after=10)), rec.child("c")])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.run)
            await trio.sleep_until(5)
            nursery.cancel_scope.cancel()
    assert rec.events == [*up(0, "a"), (0, "start", "b"), *stops(5, "b", "a")]
    assert s.statistics().total_restarts == 0


async def test_child_ready_after_the_supervisor_was_cancelled_is_still_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()  # b's startup cannot be interrupted; it reports ready at 2
    s = sup("s", [rec.child("a"), rec.child("b", Run(ready_after=2, shield_startup=True))])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.run)
            await trio.sleep_until(1)
            nursery.cancel_scope.cancel()
    assert trio.current_time() == 2
    assert rec.events == [*up(0, "a"), (0, "start", "b"), (2, "up", "b"), *stops(2, "b", "a")]
    assert s.statistics().total_restarts == 0


async def test_error_while_being_stopped_is_not_a_failure(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.supervisor")
    rec = Recorder()
    s = sup("s", [rec.child("a", Run(stop_fails=True)),
                  rec.child("b", Run(then="fail", after=1), Run())], strategy="one_for_all")
    await run_until(s, cancel_at=10)
    assert rec.events == [*up(0, "a", "b"), (1, "fail", "b"), *stops(1, "a"),
                          *up(1.5, "a", "b"), *stops(10, "b", "a")]
    assert s.statistics().restarts == {"a": 0, "b": 1}
    assert [(r.child, r.getMessage()) for r in caplog.records if r.child == "a"] == [
        ("a", "supervisor s: a failed while being stopped (not counted)")] * 2


async def test_cancelling_a_tree_stops_it_depth_first_in_reverse(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    inner = sup("inner", [rec.child("b1"), rec.child("b2")])
    outer = sup("outer", [rec.child("x"), inner.as_child(), rec.child("y")],
                strategy="one_for_all")
    await run_until(outer, cancel_at=5)
    assert rec.events == [*up(0, "x", "b1", "b2", "y"), *stops(5, "y", "b2", "b1", "x")]
    assert outer.statistics().total_restarts == inner.statistics().total_restarts == 0


async def test_child_ignoring_its_shutdown_timeout_is_logged_and_left_behind(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="runtime.supervisor")
    rec = Recorder()
    s = sup("s", [rec.child("s1", Run(stop_takes=8), shutdown_timeout=2),
                  rec.child("b", Run(then="fail", after=1), Run())], strategy="one_for_all")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(s.run)
            await trio.sleep_until(5)
            assert s.statistics().lingering == ("s1",)  # the old s1, still cleaning up
            assert s.statistics().running == ("s1", "b")  # the new ones
            await trio.sleep_until(10)
            assert s.statistics().lingering == ()
            await trio.sleep_until(20)
            nursery.cancel_scope.cancel()
    assert trio.current_time() == 28  # run() ends only when the lingering s1 has
    assert rec.events == [
        *up(0, "s1", "b"), (1, "fail", "b"),
        *stops(1, "s1"),  # gets 2 s, takes 8
        *up(3.5, "s1", "b"),  # the supervisor went on at 3, then backed off 0.5 s
        (9, "stopped", "s1"),
        *stops(20, "b", "s1"), (28, "stopped", "s1"),
    ]
    errors = [(r.levelno, r.supervisor, r.child) for r in caplog.records]
    assert errors == [(logging.ERROR, "s", "s1")] * 2
    assert "did not stop within 2 s" in caplog.records[0].getMessage()


# --- construction --------------------------------------------------------------------------


def test_invalid_configuration_is_refused() -> None:
    async def noop(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    with pytest.raises(ValueError, match="unique"):
        Supervisor("s", [ChildSpec("a", noop), ChildSpec("a", noop)])
    with pytest.raises(ValueError, match="strategy"):
        Supervisor("s", [], strategy="all_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ChildSpec("a", noop, restart="sometimes")  # type: ignore[arg-type]
    inner = Supervisor("inner", [ChildSpec("a", noop, shutdown_timeout=1),
                                 ChildSpec("b", noop, shutdown_timeout=2)])
    assert inner.as_child(restart="transient") == ChildSpec("inner", inner.run, "transient", 3)
