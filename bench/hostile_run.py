"""The traffic loop of the hostile-traffic fuzzer (`bench.hostile`): send the
cases, `concurrency` at a time, and tally what came back.

Kept apart from the server's lifecycle so the loop can be pointed at any HTTP
server on loopback (`run_cases`): the suite checks the harness itself against a
well-behaved server that way, so a failure it reports is the server's, not the
harness's.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import trio

from bench.hostile_cases import Case, make_case
from bench.hostile_requests import Target
from bench.hostile_wire import Outcome, run_httpx, run_raw, stalled_head
from bench.procs import close_wait, log

__all__ = ["HostileOptions", "Tally", "request_excerpt", "run_cases"]

EXAMPLES = 5
"""Examples kept per failure group (the rest are counted)."""
PARK_AFTER = 0.5
"""Seconds a case waits for an answer before it gives its slot to the next case."""


@dataclass
class HostileOptions:
    """One run (the command's flags)."""

    requests: int = 100_000
    """HTTP requests to send (a pipelined or keep-alive case holds several)."""
    seed: int = 1
    concurrency: int = 16
    """Connections at work at a time."""
    parked: int = 256
    """More connections that have waited over PARK_AFTER seconds for an answer."""
    deadline: float = 10.0
    """Seconds an awaited answer (or a close) may take; after that: stuck."""
    settle: float = 10.0
    """Seconds the server gets after the run to close its CLOSE-WAIT sockets."""
    head_hold: float = 30.0
    """Seconds within which the server must close an incomplete request head."""
    head_probes: int = 4
    max_seconds: float = 3600.0
    """The whole run's time budget: no case starts after it."""
    max_body: int = 256 * 1024
    """The server's --max-body: small, so bodies over it are cheap to send."""
    kinds: tuple[str, ...] = ()
    repo: str = ""
    """Another checkout whose server to run (default: this one)."""
    server_args: tuple[str, ...] = ()
    """More flags for ``python -m runtime server`` (say ``--header-timeout=5``)."""
    replay: tuple[int, ...] = ()
    keep_data: bool = False
    progress: bool = True


@dataclass
class Tally:
    """What the run saw; failures grouped by what went wrong and where."""

    cases: int = 0
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    closed: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    """Connections that could not be made, by errno."""
    slowest: list = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    errors: dict = field(default_factory=dict)
    stuck: dict = field(default_factory=dict)
    head_probes: list[str] = field(default_factory=list)
    stopped_early: str = ""
    traffic_seconds: float = 0.0
    """From the first case to the last one's end (the probes may go on after it)."""
    close_wait_peak: int = 0
    """The most server sockets in CLOSE-WAIT seen during the run (sampled each second)."""

    def add(self, group: dict, key: str, case: Case, seed: int, detail: str) -> None:
        entry = group.setdefault(key, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES:
            entry["examples"].append({"index": case.index, "label": case.label[:300],
                                      "detail": detail[:400], "request": request_excerpt(case),
                                      "replay": f"--seed {seed} --replay {case.index}"})


def request_excerpt(case: Case, limit: int = 360) -> str:
    if case.http is not None:
        r = case.http
        data = f"{r.method} {r.path} {r.headers!r} ".encode() + r.body
    else:
        data = b"".join(s.data for s in case.steps)
    text = repr(data[:limit])
    return text + (f" ... ({len(data)} B)" if len(data) > limit else "")


def _key(case: Case, detail: str) -> str:
    return f"{case.kind}: {detail.split(':', 1)[0][:60]}"


async def run_cases(opts: HostileOptions, target: Target, tally: Tally,
                    exited: Callable[[], int | None] = lambda: None) -> None:
    """Send the cases: `concurrency` connections at work, and at most `parked` more
    that have waited over PARK_AFTER seconds for an answer (a stuck one waits out
    its deadline there without holding back the traffic). Stops early when
    `exited()` returns the server's exit code."""
    slots = trio.Semaphore(opts.concurrency)
    parked = trio.Semaphore(opts.parked)
    t0 = time.monotonic()
    budget_end = t0 + opts.max_seconds

    async def run_case(client: httpx.AsyncClient, case: Case) -> None:
        held = {"slot"}

        async def park_later() -> None:
            await trio.sleep(PARK_AFTER)
            await parked.acquire()
            held.add("parked")
            held.discard("slot")
            slots.release()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(park_later)
                if case.http is not None:
                    out = await run_httpx(client, case, target.port, opts.deadline)
                else:
                    out = await run_raw(case, target.port, opts.deadline)
                nursery.cancel_scope.cancel()
        finally:
            if "slot" in held:
                slots.release()
            if "parked" in held:
                parked.release()
        record(case, out)

    def record(case: Case, out: Outcome) -> None:
        tally.kinds[case.kind] += 1
        tally.statuses.update(out.statuses)
        if out.refused:
            tally.refused[out.refused] += 1
        if not out.stuck and out.statuses:
            tally.slowest = sorted([*tally.slowest, (round(out.seconds, 2), case.index,
                                                     case.label[:100])], reverse=True)[:5]
        for err in out.errors:
            tally.add(tally.errors, _key(case, err), case, opts.seed, err)
        if out.stuck:
            tally.add(tally.stuck, _key(case, out.stuck), case, opts.seed, out.stuck)
        if out.closed:
            tally.closed[case.kind] += 1
        if out.note:
            tally.notes[out.note.split(":")[0][:60]] += 1
        if opts.replay:
            log(f"case {case.index} [{case.kind}] {case.label}\n  sent: "
                f"{request_excerpt(case, 2000)}\n  statuses {out.statuses} closed "
                f"{out.closed} stuck {out.stuck!r} errors {out.errors} note {out.note!r}")

    async def produce(client: httpx.AsyncClient) -> None:
        try:
            await send_cases(client)
        finally:
            tally.traffic_seconds = time.monotonic() - t0

    async def send_cases(client: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as cases:
            indices = iter(opts.replay) if opts.replay else iter(range(10**9))
            for index in indices:
                if not opts.replay and tally.requests >= opts.requests:
                    return
                if exited() is not None:
                    tally.stopped_early = (f"the server exited (code {exited()}) "
                                           f"after {tally.requests} requests")
                    return
                if time.monotonic() > budget_end:
                    tally.stopped_early = (f"time budget of {opts.max_seconds:g} s spent after "
                                           f"{tally.requests} requests")
                    return
                case = make_case(opts.seed, index, target, opts.kinds)
                tally.cases += 1
                tally.requests += case.requests
                await slots.acquire()
                cases.start_soon(run_case, client, case)

    async def probe(dribble: bool) -> None:
        result = await stalled_head(target.port, opts.head_hold, dribble)
        tally.head_probes.append(result)

    async def progress() -> None:
        for n in itertools.count(1):
            await trio.sleep(1)
            tally.close_wait_peak = max(tally.close_wait_peak, close_wait(target.port))
            if opts.progress and n % 10 == 0:
                log(f"hostile: {tally.requests} requests in {time.monotonic() - t0:.0f} s, "
                    f"{sum(g['count'] for g in tally.errors.values())} server errors, "
                    f"{sum(g['count'] for g in tally.stuck.values())} stuck, "
                    f"{close_wait(target.port)} server sockets in CLOSE-WAIT")

    # one connection per case in flight at most, so the pool never makes a case wait
    most = opts.concurrency + opts.parked
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=opts.concurrency)
    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=opts.deadline) as client:
        async with trio.open_nursery() as outer:
            outer.start_soon(progress)
            async with trio.open_nursery() as nursery:
                for i in range(0 if opts.replay else opts.head_probes):
                    nursery.start_soon(probe, i % 2 == 1)
                nursery.start_soon(produce, client)
            outer.cancel_scope.cancel()
