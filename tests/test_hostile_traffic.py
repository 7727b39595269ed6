"""The hardening issue's acceptance check, bounded: hostile traffic against a real
server process on loopback.

One run of the fuzzer `bench/hostile.py` (what ``python -m bench hostile
--requests 100000`` runs at length): a fresh ``python -m runtime server`` with
SQLite and tokens, honest tasks stored first, then 1,500 seeded, mutated requests
(both JSON-RPC generations, REST, broken framing, early closes, pipelines, SSE
closed early, the card, WebSocket handshakes, ...) and four incomplete request
heads. Each acceptance condition is its own test over that one run, so a failure
names the condition; its message is the whole report, with the seed and the case
indices (``python -m bench hostile --seed 20261207 --replay N`` runs a case again).

Every part is bounded: the server start (30 s), the traffic (``max_seconds``), each
answer (``deadline``), the incomplete heads (``head_hold``), the CLOSE-WAIT settle.
"""

from __future__ import annotations

import pytest

from bench.hostile import render, run_hostile
from bench.hostile_run import HostileOptions

pytestmark = pytest.mark.slow

OPTIONS = HostileOptions(requests=1500, seed=20261207, deadline=10.0, settle=5.0,
                         head_hold=30.0, max_seconds=45.0, progress=False)


@pytest.fixture(scope="module")
def report() -> dict:
    return run_hostile(OPTIONS)


def test_no_server_errors(report: dict) -> None:
    assert report["conditions"]["no server errors"], render(report)


def test_no_stuck_connections(report: dict) -> None:
    assert report["conditions"]["no stuck connections"], render(report)


def test_no_server_socket_left_in_close_wait(report: dict) -> None:
    assert report["conditions"]["no server sockets in CLOSE-WAIT"], render(report)


def test_honest_tasks_unchanged(report: dict) -> None:
    assert report["conditions"]["honest tasks unchanged"], render(report)


def test_server_up_throughout(report: dict) -> None:
    assert report["conditions"]["server up throughout"], render(report)


def test_every_request_was_sent(report: dict) -> None:
    assert report["requests"] >= OPTIONS.requests, render(report)
