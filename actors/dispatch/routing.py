"""Where a task may run and in what order it waits: routing and the queue.

`route_from_metadata` reads a request's routing options (priority, required
capabilities, a named worker or agent) into the `Route` the store keeps in each
task's `DispatchState`: that is the durable part. `TaskQueue` is this process's
index of the tasks waiting for a claim, best first (highest priority, then
earliest arrival): it holds nothing the store does not, and is rebuilt from the
store when the dispatcher starts.

A task taken out by a claim keeps its place (its arrival number) while the
claim's lease lasts: if the lease is lost and the task is queued again, it goes
back where it stood, not behind everything submitted while it ran, so a dead
worker's task is picked up next rather than after the whole backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors.store_port import Route

__all__ = ["ROUTE_KEYS", "QueueEntry", "TaskQueue", "route_from_metadata"]

ROUTE_KEYS = ("trio-a2a/priority", "trio-a2a/capabilities", "trio-a2a/worker", "trio-a2a/agent")

QueueEntry = tuple[int, int, Route]
"""(-priority, arrival number, route): entries sort best first."""


def route_from_metadata(*sources: dict[str, Any] | None,
                        names: Sequence[str] = ()) -> Route:
    """Read routing options from message or request metadata (first source wins).

    A value of the wrong kind raises ValueError naming the key, prefixed with its
    source's name from `names` (e.g. "params.message.metadata") when given.
    """
    found: dict[str, tuple[Any, str]] = {}
    for i, source in enumerate(sources):
        for key in ROUTE_KEYS:
            if source and key in source and key not in found:
                found[key] = (source[key], names[i] if i < len(names) else "metadata")

    def bad(key: str, want: str) -> ValueError:
        value, where = found[key]
        return ValueError(f"{where}[{key!r}] must be {want}, not {value!r}")

    caps: Any = found.get("trio-a2a/capabilities", (None,))[0]
    if caps is None:
        caps = ()
    elif isinstance(caps, str):
        caps = (caps,)
    elif not (isinstance(caps, list | tuple) and all(isinstance(c, str) for c in caps)):
        raise bad("trio-a2a/capabilities", "a string or a list of strings")
    priority: Any = found.get("trio-a2a/priority", (0,))[0]
    if isinstance(priority, str) and priority.strip().lstrip("+-").isdigit():
        priority = int(priority)  # ProtoJSON writes integers as strings too
    elif isinstance(priority, float) and priority.is_integer():
        priority = int(priority)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise bad("trio-a2a/priority", "an integer")
    names_of: dict[str, str | None] = {}
    for key, what in (("trio-a2a/worker", "a worker id or name"),
                      ("trio-a2a/agent", "an agent name")):
        value = found.get(key, (None,))[0]
        if value is not None and not (isinstance(value, str) and value):
            raise bad(key, f"{what} (a non-empty string)")
        names_of[key] = value
    return Route(priority=priority, capabilities=tuple(caps),
                 worker=names_of["trio-a2a/worker"], agent=names_of["trio-a2a/agent"])


class TaskQueue:
    """The tasks waiting for a claim in this process, by priority then arrival.

    A task is in it at most once; putting it again with `put` (a continuation)
    gives it a new arrival number, `put_back` (a retry) the one it had when it
    was claimed.
    """

    def __init__(self) -> None:
        self._entries: dict[str, QueueEntry] = {}
        self._places: dict[str, int] = {}
        """task id -> arrival number of a task taken by a claim whose lease lasts:
        where a retry goes back to. At most one per lease held."""
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._entries

    def put(self, task_id: str, route: Route) -> None:
        """Queue a task (again) behind everything of its priority."""
        self._arrivals += 1
        self._places.pop(task_id, None)
        self._entries[task_id] = (-route.priority, self._arrivals, route)

    def put_back(self, task_id: str, route: Route) -> None:
        """Queue a retried task in the place it had when claimed (see `hold_place`);
        behind everything of its priority if it has none (`put`)."""
        arrival = self._places.pop(task_id, None)
        if arrival is None:
            self.put(task_id, route)
        else:
            self._entries[task_id] = (-route.priority, arrival, route)

    def hold_place(self, task_id: str, arrival: int | None = None) -> None:
        """Keep the task's place for a `put_back` while a claim runs it: `arrival`
        from its taken entry, or a new one (a task found leased at start)."""
        if arrival is None:
            self._arrivals += 1
            arrival = self._arrivals
        self._places[task_id] = arrival

    def release_place(self, task_id: str) -> None:
        """The task's claim ended for good (released, or the task ended): no retry
        will need its place."""
        self._places.pop(task_id, None)

    def route(self, task_id: str) -> Route | None:
        """The queued task's route; None if it is not queued."""
        entry = self._entries.get(task_id)
        return None if entry is None else entry[2]

    def take(self, task_id: str) -> QueueEntry | None:
        """Take the task out of the queue; its entry, for `restore`, or None."""
        return self._entries.pop(task_id, None)

    def restore(self, task_id: str, entry: QueueEntry) -> None:
        """Put a taken entry back in its old place (a claim that failed to commit)."""
        self._places.pop(task_id, None)
        self._entries[task_id] = entry

    def mark(self) -> int:
        """How many tasks have been put so far: for `queued_before`."""
        return self._arrivals

    def queued_before(self, mark: int) -> list[str]:
        """The queued tasks put no later than `mark` (and not put again since)."""
        return [task_id for task_id, (_, arrival, _) in self._entries.items()
                if arrival <= mark]

    def in_order(self) -> list[tuple[str, Route]]:
        """A snapshot of the queue, best first."""
        ordered = sorted(self._entries.items(), key=lambda kv: kv[1][:2])
        return [(task_id, route) for task_id, (_, _, route) in ordered]

    def best(self, accepts: Callable[[Route], bool]) -> str | None:
        """The best queued task whose route `accepts` takes, or None."""
        best: tuple[int, int] | None = None
        chosen = None
        for task_id, (neg_priority, arrival, route) in self._entries.items():
            if accepts(route) and (best is None or (neg_priority, arrival) < best):
                best, chosen = (neg_priority, arrival), task_id
        return chosen

    def depth_by_agent(self) -> dict[str, int]:
        """Queued tasks by the agent their route asks for ("" for any agent)."""
        depths: dict[str, int] = {}
        for _, _, route in self._entries.values():
            key = route.agent or ""
            depths[key] = depths.get(key, 0) + 1
        return depths

    def count(self, accepts: Callable[[Route], bool]) -> int:
        """How many queued tasks `accepts` takes."""
        return sum(1 for _, _, route in self._entries.values() if accepts(route))
