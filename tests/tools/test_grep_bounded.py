"""grep matches in a child process under a time limit: a catastrophic pattern (nested
repetition that backtracks exponentially) neither stalls the worker's event loop nor outlives
its call, and cancelling the call stops it at once."""

from __future__ import annotations

import trio

from runtime.tools import Grep, ToolLimits, Workspace
from tests.tools.conftest import call

CATASTROPHIC = r"(a+)+$"
LINE = "a" * 25 + "!"  # Python's re takes seconds to fail on this


class Ticker:
    """Ticks every 10 ms and records the longest gap between two ticks."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        last = trio.current_time()
        task_status.started()
        try:
            while True:
                await trio.sleep(0.01)
                self.worst = max(self.worst, trio.current_time() - last)
                last = trio.current_time()
        finally:  # cancelled: the gap since the last tick counts too
            self.worst = max(self.worst, trio.current_time() - last)


async def test_catastrophic_pattern_is_stopped_at_the_time_limit(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text(f"{LINE}\n")
    ticker = Ticker()
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        started = trio.current_time()
        result = await call(Grep(ToolLimits(grep_timeout=1.0)), {"pattern": CATASTROPHIC}, ws,
                            seconds=20)
        took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert result.is_error
    assert result.output == (
        "grep: the search for '(a+)+$' was stopped at its time limit of 1 s (ToolLimits."
        "grep_timeout); simplify the pattern (nested repetition such as '(a+)+' can take "
        "exponential time) or narrow 'path' or 'glob'")
    assert 1.0 <= took < 5.0
    assert ticker.worst < 0.5, f"the event loop stalled for {ticker.worst:.2f} s"


async def test_cancelling_a_catastrophic_grep_returns_promptly(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text(f"{LINE}\n")
    ticker = Ticker()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(ticker.run)
            with trio.move_on_after(1.0) as scope:
                await Grep().run({"pattern": CATASTROPHIC}, ws)
            late = trio.current_time() - scope.deadline
            nursery.cancel_scope.cancel()
        assert scope.cancelled_caught
        assert late < 0.5, f"the call returned {late:.2f} s after it was cancelled"
    assert ticker.worst < 0.5, f"the event loop stalled for {ticker.worst:.2f} s"


async def test_time_limit_and_results_of_a_normal_search(ws: Workspace) -> None:
    for i in range(50):
        (ws.root / f"f{i:02}.txt").write_text("x\n" * 100 + f"needle {i}\n")
    with trio.fail_after(20):
        result = await Grep(ToolLimits(grep_timeout=10)).run({"pattern": r"needle 4\d"}, ws)
    assert result.output.splitlines() == [f"f4{i}.txt:101:needle 4{i}" for i in range(10)]


async def test_grep_keeps_pythons_regex_syntax(ws: Workspace) -> None:
    (ws.root / "a.py").write_text("def f(x):\n    return x  # x\nfoo = foo\n")
    # lookahead and backreferences are Python re features a linear-time engine would lack
    result = await call(Grep(), {"pattern": r"^(\w+) = \1$"}, ws)
    assert result.output == "a.py:3:foo = foo"
    result = await call(Grep(), {"pattern": r"return (?=x)"}, ws)
    assert result.output == "a.py:2:    return x  # x"

