"""The machinery of `python -m bench subscribers` at a tiny size: the gated agent,
the SSE load generator's checks and the report, end to end with real processes
(the figures themselves are the benchmark's business, not a test's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.sub_clients import Stream, check
from protocol.models import StreamResponse, Task, TaskState, TaskStatus, TaskStatusUpdateEvent
from runtime.http.rpc_methods import _Rendered

REPO = Path(__file__).resolve().parent.parent


def test_check_names_what_is_wrong() -> None:
    st = Stream("t")
    st.first_is_task, st.ids, st.completed = True, [3, 4, 5, 6], True
    assert check(st, 3) == ""
    assert "not 4" in check(st, 4)
    st.ids = [3, 4, 6, 7]
    assert "gap" in check(st, 3)
    st.ids, st.completed = [3, 4, 5, 6], False
    assert "completed" in check(st, 3)


def test_an_event_is_rendered_once_for_all_subscribers() -> None:
    calls: list[StreamResponse] = []

    def render(event: StreamResponse) -> bytes:
        calls.append(event)
        return event.model_dump_json().encode()

    rendered = _Rendered(render, size=2)
    events = [StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=f"t{i}", context_id="c", status=TaskStatus(state=TaskState.WORKING)))
        for i in range(3)]
    first = rendered(events[0])
    assert rendered(events[0]) is first and len(calls) == 1
    rendered(events[1])
    rendered(events[2])  # pushes the oldest out
    assert rendered(events[0]) == first and len(calls) == 4


def test_a_stream_snapshot_is_not_kept() -> None:
    """Each stream's first event is its own task snapshot: caching it would only keep
    one snapshot per subscriber alive."""
    rendered = _Rendered(lambda event: event.model_dump_json().encode())
    snapshot = StreamResponse(task=Task(id="t", context_id="c",
                                        status=TaskStatus(state=TaskState.WORKING)))
    assert rendered(snapshot) == snapshot.model_dump_json().encode()
    assert rendered._cache == {}


def test_subscribers_mode_end_to_end() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "subscribers", "--tasks", "4", "--subscribers", "3",
         "--events", "5", "--processes", "2", "--control-seconds", "0.3", "--settle", "0.2",
         "--no-save"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    assert "PASS  every subscriber received every event: 12/12 streams good, 60/60" in out.stdout
    assert "RSS per subscriber" in out.stdout
