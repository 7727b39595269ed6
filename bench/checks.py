"""Target checks: goals on the combined throughput rows, judged PASS, FAIL or n/a.

Pure functions of the rows (no I/O), so the verdicts can be unit-tested and the other
modes (subscribers, startup) can put theirs in the same table: every verdict is a dict
with ``target``, ``check``, ``verdict`` and ``measured`` (the figure in words).

A check compares one figure of one target at one number of clients either with an
absolute limit or with the same figure of another target measured in the same run
(``Check.baseline``): the second form is what survives a slow or noisy machine.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.targets import BASELINE, Check

# metric -> (figure of a row, "ge" when bigger is better, unit, ratio against a baseline?)
METRICS: dict[str, tuple[str, str, str, bool]] = {
    "p50": ("p50", "le", "ms", False),
    "p99": ("p99", "le", "ms", False),
    "ratio": ("rps", "ge", "req/s", True),
    "cpu_ratio": ("cpu", "le", "ms/req", True),
    "p99_ratio": ("p99", "le", "ms", True),
}


def figure(row: dict, name: str) -> float | None:
    """One figure of a combined row: ``rps``, ``cpu`` (server CPU ms per good
    response), ``p50`` or ``p99`` (ms); None when the row does not have it."""
    if name == "rps":
        return row.get("rps") or None
    if name == "cpu":
        return row.get("server_cpu_ms_per_req")
    return (row.get("latency_ms") or {}).get(name)


def _at(clients: int) -> str:
    return f"at {clients} client{'s' * (clients != 1)}"


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if unit == "req/s" else f"{value:.2f} {unit}"


def evaluate_one(target: str, check: Check, by_key: dict[tuple[str, int], dict]) -> dict:
    """The verdict of one check, from rows keyed by (target, clients)."""
    fig, direction, unit, relative = METRICS[check.metric]
    row = by_key.get((target, check.clients))
    entry: dict = {"target": target, "check": check.label, "clients": check.clients,
                   "metric": check.metric, "limit": check.limit, "value": None,
                   "measured_row": row is not None}
    own = figure(row, fig) if row is not None else None
    if relative:
        baseline = check.baseline or BASELINE
        entry["baseline"] = baseline
        base_row = by_key.get((baseline, check.clients))
        base = figure(base_row, fig) if base_row is not None else None
        entry["figure"], entry["baseline_figure"] = own, base
        if row is None:
            text = f"{target} not measured {_at(check.clients)}"
        elif own is None:
            text = f"{target} has no {fig} figure {_at(check.clients)}"
        elif base is None:
            text = f"{baseline} not measured {_at(check.clients)}"
        else:
            entry["value"] = own / base
            text = (f"{_fmt(own, unit)} = {entry['value']:.2f}x {baseline}'s "
                    f"{_fmt(base, unit)}")
    else:
        entry["value"] = own
        if row is None:
            text = f"{target} not measured {_at(check.clients)}"
        elif own is None:
            text = f"{target} has no {fig} figure"
        else:
            text = f"{fig} {_fmt(own, unit)}"
    value = entry["value"]
    if value is None:
        entry["verdict"] = "n/a"
    elif direction == "ge":
        entry["verdict"] = "PASS" if value >= check.limit else "FAIL"
    else:
        entry["verdict"] = "PASS" if value <= check.limit else "FAIL"
    entry["measured"] = text
    return entry


def evaluate_checks(checks: dict[str, Iterable[Check]], rows: list[dict]) -> list[dict]:
    """Each target's checks against the combined rows (skipped rows count as not
    measured), in the order given."""
    by_key = {(r["target"], r["clients"]): r for r in rows if not r.get("skipped")}
    return [evaluate_one(target, check, by_key)
            for target, target_checks in checks.items() for check in target_checks]


def verdict_entry(target: str, check: str, ok: bool | None, measured: str,
                  **extra: object) -> dict:
    """A verdict from another mode (subscribers, startup) in the checks' shape;
    ``ok`` None means it could not be measured."""
    verdict = "n/a" if ok is None else "PASS" if ok else "FAIL"
    return {"target": target, "check": check, "verdict": verdict, "measured": measured,
            **extra}


def tally(entries: list[dict]) -> str:
    counts = {v: sum(e["verdict"] == v for e in entries) for v in ("PASS", "FAIL", "n/a")}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no checks"


def render_check_table(entries: list[dict]) -> str:
    """One line per verdict: verdict, target, check, what was measured."""
    head = ["", "target", "check", "measured"]
    body = [[e["verdict"], e["target"], e["check"], e["measured"]] for e in entries]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(3)]
    lines = []
    for i, r in enumerate([head, *body]):
        cells = [c.ljust(w) for c, w in zip(r[:3], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, r[3]]).rstrip())
        if i == 0:
            lines.append("  " + "  ".join(["-" * w for w in widths] + ["-" * 8]))
    return "\n".join(lines)
