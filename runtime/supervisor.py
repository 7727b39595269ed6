"""Supervisor: OTP supervision on trio (DESIGN principles 1, 2 and 7).

Every long-lived task runs as a child of a supervisor, so failure handling is a
property of the tree, not of ad-hoc flags: a child that exits is restarted (or not)
by its restart type, its siblings follow the strategy, and a child that keeps failing
makes the supervisor give up, which its parent sees as one failing child (escalation).

Each child runs in its own cancel scope. Once started, that scope is shielded from
the supervisor's surroundings: only the supervisor cancels it, so shutdown happens in
reverse start order with a per-child timeout instead of everything at once. Trio
cannot abandon a task: a child that ignores cancellation past its timeout is logged
and left running in the supervisor's nursery until it ends, and `run()` returns only
after it has. Time comes from trio only and jitter from an injected `random.Random`,
so every schedule is exact on a mock clock. See docs/supervision.md.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import attrs
import trio

__all__ = [
    "ChildSpec",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "unwrap_single",
]

logger = logging.getLogger(__name__)

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RESTART_TYPES = ("permanent", "transient", "temporary")
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")


@attrs.frozen
class ChildSpec:
    """One child: how to start it and whether it comes back when it exits.

    `start` is awaited as `start(task_status=...)` and calls `task_status.started()` once
    it is ready to serve; the next child is started only then. `restart`: permanent
    (always restarted), transient (only after an error), temporary (never).
    """

    name: str
    start: Callable[..., Awaitable[None]]
    restart: RestartType = attrs.field(default="permanent",
                                       validator=attrs.validators.in_(RESTART_TYPES))
    shutdown_timeout: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))


@contextmanager
def unwrap_single() -> Iterator[None]:
    """Let an exception group of one exception out as that exception.

    For the `open_*` context managers: their nurseries wrap whatever fails inside
    (a child, or the caller's block) in a group; one failure should reach the
    caller as itself (`except LinkDown`, `except SupervisorGaveUp` then work)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class SupervisorGaveUp(Exception):
    """Too many restarts in too little time: retrying here would not help, so the
    parent decides. `__cause__` is the last error of the child that tipped it over
    (None if it returned normally)."""

    def __init__(self, supervisor: str, child: str, restarts: int, max_seconds: float) -> None:
        super().__init__(f"supervisor {supervisor!r} gave up: child {child!r} exited again "
                         f"after {restarts} restarts within {max_seconds} s")
        self.supervisor = supervisor  # the supervisor's name
        self.child = child  # the child's name
        self.restarts = restarts  # restarts made within the last max_seconds
        self.max_seconds = max_seconds

    def __reduce__(self) -> tuple[object, ...]:  # copy/pickle despite the custom __init__
        return (type(self), (self.supervisor, self.child, self.restarts, self.max_seconds),
                self.__dict__)


@attrs.frozen
class SupervisorStatistics:
    """A snapshot of the current (or last) run.

    `restarts` counts, per child, restarts caused by that child's own exit (siblings
    restarted alongside it by the strategy are not counted); `total_restarts` is their
    sum, what intensity is measured on. `lingering` names stopped children that outlived
    their shutdown timeout and still run.
    """

    restarts: Mapping[str, int]
    running: tuple[str, ...]
    total_restarts: int
    lingering: tuple[str, ...]


class Supervisor:
    """Starts `children` in order and keeps them running per `strategy`.

    More than `max_restarts` restarts within `max_seconds` -> stop everything and raise
    `SupervisorGaveUp`. Before restarting a child that exited for the n-th consecutive
    time it waits `min(backoff_max, backoff_base * backoff_factor ** (n - 1))`, scaled by
    `1 + jitter * rng.uniform(-1, 1)` so that many trees do not retry in lock-step; n
    starts again from 1 once the child had run `stable_after` seconds.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        backoff_base: float = 0.1,
        backoff_factor: float = 2.0,
        backoff_max: float = 30.0,
        jitter: float = 0.2,
        stable_after: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        if max_restarts < 0 or max_seconds <= 0 or not 0 <= jitter <= 1:
            raise ValueError("need max_restarts >= 0, max_seconds > 0, 0 <= jitter <= 1")
        self.name = name
        self.children = tuple(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.backoff_base = backoff_base
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.stable_after = stable_after
        self.rng = rng if rng is not None else random.Random()
        self._tree: _Tree | None = None

    def as_child(self, *, restart: RestartType = "permanent",
                 shutdown_timeout: float | None = None) -> ChildSpec:
        """This supervisor as a child of another. The default timeout covers stopping all
        of its children one after the other."""
        if shutdown_timeout is None:
            shutdown_timeout = sum(c.shutdown_timeout for c in self.children)
        return ChildSpec(self.name, self.run, restart, shutdown_timeout)

    def backoff_delay(self, failures: int) -> float:
        """The wait before restarting a child after its `failures`-th consecutive exit."""
        delay = min(self.backoff_max, self.backoff_base * self.backoff_factor ** (failures - 1))
        return delay * (1 + self.jitter * self.rng.uniform(-1, 1))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled, until no child is left to run, or until giving up.

        Ready (`task_status.started()`) once every child has started, in order. Raises one
        `SupervisorGaveUp`, never wrapped in an exception group.
        """
        gave_up: SupervisorGaveUp | None = None
        async with trio.open_nursery() as nursery:
            tree = self._tree = _Tree(self, nursery)
            try:
                gave_up = await tree.supervise(task_status)
            finally:
                await tree.stop_all()
        if gave_up is not None:
            raise gave_up

    def statistics(self) -> SupervisorStatistics:
        if self._tree is None:
            return SupervisorStatistics({c.name: 0 for c in self.children}, (), 0, ())
        return self._tree.statistics()


# --- one run of a supervisor -------------------------------------------------------------


@attrs.define(eq=False)
class _Child:
    spec: ChildSpec
    index: int
    instance: _Instance | None = None  # the latest incarnation, until its exit is handled
    pending: bool = True  # should run but does not yet: waits for `restart_at`
    restart_at: float = -math.inf
    started_at: float = -math.inf
    failures: int = 0  # consecutive exits, for backoff
    restarts: int = 0


@attrs.define(eq=False)
class _Instance:
    """One incarnation of a child, with its own scope so it can be stopped alone."""

    child: _Child
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    task: trio.lowlevel.Task | None = None
    ready: bool = False
    stopping: bool = False  # the supervisor stopped it: its exit is not a failure
    error: Exception | None = None


class _Readiness:
    """The `task_status` a child gets: marks it ready and, once it has moved into the
    supervisor's nursery, shields it so that only the supervisor stops it (in order)."""

    def __init__(self, inst: _Instance, status: trio.TaskStatus[None],
                 nursery: trio.Nursery) -> None:
        self._inst, self._status, self._nursery = inst, status, nursery

    def started(self, value: object = None) -> None:
        self._status.started()
        self._inst.ready = True
        # Not moved (start() was cancelled meanwhile): leave it cancellable, or it would hang.
        if self._inst.task is not None and self._inst.task.parent_nursery is self._nursery:
            self._inst.scope.shield = True


def _failure(exc: BaseException) -> Exception | None:
    """The part of `exc` that is a real failure: `trio.Cancelled` never is."""
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(trio.Cancelled)
        if isinstance(rest, Exception):
            return rest
    return None


class _Tree:
    """State of one `Supervisor.run`, so a restarted supervisor starts afresh."""

    def __init__(self, sup: Supervisor, nursery: trio.Nursery) -> None:
        self.sup = sup
        self.nursery = nursery
        self.children = [_Child(spec, i) for i, spec in enumerate(sup.children)]
        self.restart_times: deque[float] = deque()
        self.exits: list[_Instance] = []  # at most one per incarnation: bounded by the tree
        self.changed = trio.Event()
        self.lingering: set[_Instance] = set()
        self.gave_up: SupervisorGaveUp | None = None

    def _log(self, level: int, text: str, child: _Child | None = None,
             exc_info: BaseException | None = None, **fields: object) -> None:
        name = child.spec.name if child is not None else None
        extra = {"supervisor": self.sup.name, "child": name, **fields}
        logger.log(level, "supervisor %s: %s", self.sup.name, text, extra=extra,
                   exc_info=exc_info)

    async def supervise(self, task_status: trio.TaskStatus[None]) -> SupervisorGaveUp | None:
        ready = False
        while True:
            ordered = not ready or self.sup.strategy != "one_for_one"
            next_due = await self._start_due(ordered)
            if self.gave_up is not None:
                return self.gave_up
            if not ready and not any(c.pending for c in self.children):
                ready = True
                task_status.started()
            if not self.exits:
                if not any(c.pending or c.instance for c in self.children):
                    self._log(logging.INFO, "no child left to run")
                    return None
                with trio.move_on_at(next_due):
                    await self.changed.wait()
            self.changed = trio.Event()
            while self.exits:
                inst = self.exits.pop(0)
                if inst is inst.child.instance and not inst.stopping:
                    await self._on_exit(inst.child, inst.error)
                    if self.gave_up is not None:
                        return self.gave_up

    async def _start_due(self, ordered: bool) -> float:
        """Start children whose backoff is over, in order; the next deadline to wake at.

        `ordered`: a child waits for every earlier one (initial start, and the strategies
        where later children depend on earlier ones)."""
        next_due = math.inf
        for child in self.children:
            if not child.pending:
                continue
            if child.restart_at > trio.current_time():
                if ordered:
                    return child.restart_at
                next_due = min(next_due, child.restart_at)
                continue
            error = await self._start(child)
            if error is not None:
                await self._on_exit(child, error)
                return -math.inf  # the strategy changed the plan: scan again
        return next_due

    async def _start(self, child: _Child) -> Exception | None:
        inst = child.instance = _Instance(child)
        child.pending = False
        child.started_at = trio.current_time()
        self._log(logging.DEBUG, f"starting {child.spec.name}", child, restarts=child.restarts)
        try:
            await self.nursery.start(self._child_main, inst,
                                     name=f"{self.sup.name}/{child.spec.name}")
        except BaseException as exc:
            error = _failure(exc)
            if error is None:
                raise
            child.instance = None
            return error
        return None

    async def _child_main(self, inst: _Instance, *,
                          task_status: trio.TaskStatus[None]) -> None:
        inst.task = trio.lowlevel.current_task()
        readiness = _Readiness(inst, task_status, self.nursery)
        try:
            with inst.scope:
                try:
                    await inst.child.spec.start(task_status=readiness)
                except BaseException as exc:
                    error = _failure(exc) if inst.ready else None
                    if error is None:
                        raise  # before started(): nursery.start reports it to _start
                    inst.error = error
            if not inst.ready and not inst.scope.cancel_called:
                readiness.started()  # returned without started(): up, then done at once
        finally:
            inst.done.set()
            self.lingering.discard(inst)
            if inst.ready and not inst.stopping:
                self.exits.append(inst)
                self.changed.set()

    async def _on_exit(self, child: _Child, error: Exception | None) -> None:
        """Apply restart type, intensity, backoff and strategy to one child's exit."""
        sup, spec, now = self.sup, child.spec, trio.current_time()
        child.instance = None
        if spec.restart == "temporary" or (spec.restart == "transient" and error is None):
            child.pending = False
            self._log(logging.WARNING if error else logging.INFO,
                      f"{spec.name} exited; not restarted ({spec.restart})", child,
                      restarts=child.restarts, error=repr(error) if error else None,
                      exc_info=error)
            return
        self.restart_times.append(now)
        while self.restart_times[0] < now - sup.max_seconds:
            self.restart_times.popleft()
        if len(self.restart_times) > sup.max_restarts:
            restarts = len(self.restart_times) - 1
            self._log(logging.ERROR, f"giving up: {spec.name} exited too often", child,
                      restarts=restarts, error=repr(error) if error else None)
            await self.stop_all()
            self.gave_up = SupervisorGaveUp(sup.name, spec.name, restarts, sup.max_seconds)
            self.gave_up.__cause__ = error
            self.gave_up.__suppress_context__ = True
            return
        if now - child.started_at >= sup.stable_after:
            child.failures = 0
        child.failures += 1
        child.restarts += 1
        delay = sup.backoff_delay(child.failures)
        self._log(logging.WARNING, f"{spec.name} exited; restarting in {delay:.3f} s", child,
                  restarts=child.restarts, delay=delay, error=repr(error) if error else None,
                  exc_info=error)
        group = [child]
        if sup.strategy == "one_for_all":
            group = self.children
        elif sup.strategy == "rest_for_one":
            group = self.children[child.index:]
        for other in reversed(group):
            if other is child or other.instance is None:
                continue
            await self._stop(other.instance)
            other.instance = None
            # A temporary child is never restarted, not even for a sibling (as in OTP).
            other.pending = other.spec.restart != "temporary"
        restart_at = trio.current_time() + delay
        for other in group:
            if other is not child and other.pending:  # keep a longer backoff of its own
                other.restart_at = max(other.restart_at, restart_at)
        child.pending, child.restart_at = True, restart_at

    async def _stop(self, inst: _Instance) -> None:
        """Cancel one child and wait for it, at most its shutdown_timeout (shielded, so
        that a supervisor being cancelled still stops its children one by one)."""
        name, timeout = inst.child.spec.name, inst.child.spec.shutdown_timeout
        inst.stopping = True
        inst.scope.cancel()
        with trio.move_on_after(timeout, shield=True):
            await inst.done.wait()
        if not inst.done.is_set():
            self.lingering.add(inst)
            self._log(logging.ERROR, f"{name} did not stop within {timeout} s; it keeps "
                      "running in the nursery until it ends", inst.child)
        elif inst.error is not None:
            self._log(logging.WARNING, f"{name} failed while being stopped (not counted)",
                      inst.child, error=repr(inst.error))

    async def stop_all(self) -> None:
        """Stop every running child in reverse start order."""
        for child in reversed(self.children):
            inst = child.instance
            if inst is not None and not inst.done.is_set() and not inst.stopping:
                await self._stop(inst)

    def statistics(self) -> SupervisorStatistics:
        running = tuple(c.spec.name for c in self.children
                        if c.instance and c.instance.ready and not c.instance.done.is_set())
        restarts = {c.spec.name: c.restarts for c in self.children}
        return SupervisorStatistics(restarts, running, sum(restarts.values()),
                                    tuple(sorted(i.child.spec.name for i in self.lingering)))
