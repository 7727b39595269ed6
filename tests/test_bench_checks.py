"""The bench's PASS/FAIL verdicts as pure functions of measured rows (bench/checks.py),
the performance goals wired to the targets, and the start-up mode's measurement of a
child's process time. No figure is asserted: the rows here are made up."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from bench import startup
from bench.acceptance import _scale, render_summary, subscriber_verdicts
from bench.checks import METRICS, evaluate_checks, render_check_table, tally
from bench.report import add_ratios
from bench.targets import CHECK_METRICS, TARGETS, Check

REPO = Path(__file__).resolve().parent.parent


def row(target: str, clients: int = 16, rps: float = 1000.0, cpu: float | None = 1.0,
        p50: float = 5.0, p99: float = 10.0, **extra: object) -> dict:
    return {"target": target, "clients": clients, "rps": rps, "server_cpu_ms_per_req": cpu,
            "latency_ms": {"p50": p50, "p99": p99}, "errors": 0, **extra}


def verdicts(checks: dict, rows: list[dict]) -> list[str]:
    return [e["verdict"] for e in evaluate_checks(checks, rows)]


def test_ratio_against_a_named_baseline_is_at_least_the_limit() -> None:
    check = Check("x", clients=16, metric="ratio", limit=0.8, baseline="sdk-js")
    base = row("sdk-js", rps=1000.0)
    assert verdicts({"t": [check]}, [base, row("t", rps=800.0)]) == ["PASS"]
    assert verdicts({"t": [check]}, [base, row("t", rps=799.0)]) == ["FAIL"]
    [entry] = evaluate_checks({"t": [check]}, [base, row("t", rps=900.0)])
    assert entry["value"] == pytest.approx(0.9)
    assert entry["baseline"] == "sdk-js" and "0.90x sdk-js's" in entry["measured"]


def test_ratio_without_baseline_compares_with_sdk_python() -> None:
    check = Check("x", clients=16, metric="ratio", limit=1.0)
    rows = [row("sdk-python", rps=100.0), row("sdk-js", rps=10_000.0), row("t", rps=150.0)]
    [entry] = evaluate_checks({"t": [check]}, rows)
    assert entry["baseline"] == "sdk-python" and entry["verdict"] == "PASS"


def test_cpu_per_request_ratio_is_at_most_the_limit() -> None:
    check = Check("x", clients=16, metric="cpu_ratio", limit=2.0, baseline="http-floor")
    floor = row("http-floor", cpu=0.5)
    assert verdicts({"t": [check]}, [floor, row("t", cpu=1.0)]) == ["PASS"]
    assert verdicts({"t": [check]}, [floor, row("t", cpu=1.01)]) == ["FAIL"]


def test_p99_ratio_no_worse_than_the_baseline() -> None:
    check = Check("x", clients=16, metric="p99_ratio", limit=1.0, baseline="sdk-js")
    base = row("sdk-js", p99=20.0)
    assert verdicts({"t": [check]}, [base, row("t", p99=20.0)]) == ["PASS"]
    assert verdicts({"t": [check]}, [base, row("t", p99=20.5)]) == ["FAIL"]


def test_absolute_latency_at_its_number_of_clients() -> None:
    check = Check("p50 <= 2 ms", clients=1, metric="p50", limit=2.0)
    assert verdicts({"t": [check]}, [row("t", clients=1, p50=1.9),
                                     row("t", clients=16, p50=50.0)]) == ["PASS"]
    assert verdicts({"t": [check]}, [row("t", clients=1, p50=2.1)]) == ["FAIL"]


def test_not_measured_is_neither_pass_nor_fail() -> None:
    ratio = Check("x", clients=16, metric="ratio", limit=1.0, baseline="sdk-js")
    cpu = Check("y", clients=16, metric="cpu_ratio", limit=2.0, baseline="http-floor")
    skipped = {"target": "sdk-js", "clients": 16, "skipped": True, "reason": "no node"}
    entries = evaluate_checks({"t": [ratio, cpu]},
                              [skipped, row("http-floor", cpu=None), row("t")])
    assert [e["verdict"] for e in entries] == ["n/a", "n/a"]
    assert entries[0]["measured"] == "sdk-js not measured at 16 clients"
    [entry] = evaluate_checks({"t": [ratio]}, [row("sdk-js")])
    assert entry["verdict"] == "n/a" and "t not measured" in entry["measured"]
    [entry] = evaluate_checks({"t": [Check("p50", 1, "p50", 2.0)]}, [])
    assert entry["measured"] == "t not measured at 1 client"


def test_unknown_metric_is_refused_when_the_check_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown metric 'rps'"):
        Check("x", clients=16, metric="rps", limit=1.0)
    assert set(METRICS) == set(CHECK_METRICS)  # every metric a Check takes is evaluated


def issue_rows(**trio: dict) -> list[dict]:
    """Rows where every trio target meets its goal exactly, with overrides."""
    rows = [row("sdk-js", rps=1000.0, cpu=1.0, p99=10.0), row("http-floor", cpu=0.5),
            row("sdk-python", rps=200.0)]
    meets = {"trio-memory": {"rps": 1000.0, "cpu": 1.0},
             "trio-sqlite": {"rps": 800.0},
             "trio-remote4": {"rps": 500.0}}
    for name, fields in meets.items():
        rows.append(row(name, **{"p99": 10.0, **fields, **trio.get(name, {})}))
    rows.append(row("trio-remote4", clients=1, **trio.get("trio-remote4@1", {"p50": 2.0})))
    return rows


def issue_checks() -> dict:
    return {n: TARGETS[n].checks for n in ("trio-memory", "trio-sqlite", "trio-remote4")}


def test_the_performance_goals_pass_at_their_limits() -> None:
    entries = evaluate_checks(issue_checks(), issue_rows())
    assert len(entries) == 8
    assert {e["verdict"] for e in entries} == {"PASS"}
    assert {e.get("baseline") for e in entries} == {"sdk-js", "http-floor", None}


@pytest.mark.parametrize(("override", "failing"), [
    ({"trio-memory": {"rps": 999.0}}, ("trio-memory", "ratio")),
    ({"trio-memory": {"cpu": 1.01}}, ("trio-memory", "cpu_ratio")),
    ({"trio-sqlite": {"rps": 799.0}}, ("trio-sqlite", "ratio")),
    ({"trio-sqlite": {"p99": 10.1}}, ("trio-sqlite", "p99_ratio")),
    ({"trio-remote4": {"rps": 499.0}}, ("trio-remote4", "ratio")),
    ({"trio-remote4@1": {"p50": 2.01}}, ("trio-remote4", "p50")),
])
def test_each_performance_goal_fails_alone_past_its_limit(override: dict,
                                                          failing: tuple) -> None:
    entries = evaluate_checks(issue_checks(), issue_rows(**override))
    assert [(e["target"], e["metric"]) for e in entries if e["verdict"] == "FAIL"] == [failing]


def test_sqlite_target_is_durable_with_synchronous_normal() -> None:
    argv = " ".join(TARGETS["trio-sqlite"].argv)
    assert "--store sqlite" in argv and "--sqlite-synchronous normal" in argv
    assert "synchronous=normal" in TARGETS["trio-sqlite"].checks[0].label


def test_ratios_against_both_baselines() -> None:
    rows = [row("sdk-python", rps=100.0), row("sdk-js", rps=400.0), row("t", rps=200.0),
            row("t", clients=1, rps=50.0)]
    add_ratios(rows)
    t16 = rows[2]
    assert t16["ratio_vs_sdk_python"] == 2.0 and t16["ratio_vs_sdk_js"] == 0.5
    assert rows[3]["ratio_vs_sdk_js"] is None


def test_check_table_and_summary_name_every_target() -> None:
    entries = evaluate_checks(issue_checks(), issue_rows(**{"trio-memory": {"rps": 10.0}}))
    table = render_check_table(entries)
    assert table.count("\n") == len(entries) + 1
    assert "FAIL  trio-memory" in table and "PASS  trio-remote4" in table
    assert tally(entries) == "7 PASS, 1 FAIL"
    summary = render_summary(issue_rows())
    for name in ("sdk-js", "http-floor", "trio-memory", "trio-sqlite", "trio-remote4"):
        assert name in summary
    memory = next(ln for ln in summary.splitlines() if ln.startswith("trio-memory"))
    assert "5.00x" in memory and "2.00x" in memory  # vs sdk-python req/s, vs floor CPU


def test_subscriber_verdicts_carry_the_scale_and_na_when_not_run() -> None:
    sargs = argparse.Namespace(tasks=200, subscribers=10, events=20)
    missing = subscriber_verdicts(None, sargs, "skipped (--skip)")
    assert [e["verdict"] for e in missing] == ["n/a"] * 3
    assert missing[0]["target"] == "sse-subscribers (2,000 = 200 x 10)"
    res = {"rss_before_kib": 1000, "rss_after_kib": 1000 + 2000 * 8, "streams": 2000,
           "good": 2000, "events": 2000 * 20, "control_before": {"p99_ms": 10.0},
           "control_during": {"p99_ms": 25.0}}
    assert [e["verdict"] for e in subscriber_verdicts(res, sargs)] == ["PASS", "PASS", "FAIL"]


def test_subscriber_scale_names_the_flag_on_bad_input() -> None:
    assert _scale("200x10") == (200, 10)
    for bad in ("200", "x10", "0x10", "ax1"):
        with pytest.raises(argparse.ArgumentTypeError, match="--subscribers-scale"):
            _scale(bad)


def test_startup_checks_from_measured_commands() -> None:
    ok = {"rc": 0, "cpu_s": 0.2, "wall_s": 0.3, "output": "usage"}
    slow = {**ok, "cpu_s": 0.4}
    broken = {**ok, "rc": 1, "output": "Traceback"}
    cmds = [startup.Command("fast", ("-c", "pass"), 0.3),
            startup.Command("slow", ("-c", "pass"), 0.3),
            startup.Command("broken", ("-c", "pass"), 0.5),
            startup.Command("info", ("-c", "pass"))]
    res = {"commands": [startup.summarize(cmds[0], [ok, slow, ok]),
                        startup.summarize(cmds[1], [slow, slow, ok]),
                        startup.summarize(cmds[2], [broken]),
                        startup.summarize(cmds[3], [ok])]}
    entries = startup.checks(res)
    assert [e["verdict"] for e in entries] == ["PASS", "FAIL", "n/a"]
    assert "exit code 1" in entries[2]["measured"]
    assert [e["verdict"] for e in startup.checks(None)] == ["n/a", "n/a"]
    assert "median CPU s" in startup.render(res | {"runs": 3, "warmup": 0})


def test_process_time_is_the_childs_cpu() -> None:
    burn = ("import time\nwhile time.process_time() < 0.2: pass\nprint('done')")
    run = startup.process_time([sys.executable, "-c", burn], cwd=REPO, timeout=60)
    assert run["rc"] == 0 and run["output"].strip() == "done"
    assert run["cpu_s"] >= 0.2


def test_startup_measures_send_against_a_server_it_starts() -> None:
    send = next(c for c in startup.COMMANDS if c.needs_server)
    res = startup.measure(1, 0, 60.0, commands=(send,))
    [cmd] = res["commands"]
    assert cmd["failed"] == 0, cmd["problems"]
    assert cmd["median_cpu_s"] is not None and res["server_url"].startswith("http://")
