"""Turning rounds into rows, rows into tables, and targets' checks into PASS/FAIL."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.targets import BASELINE, REPO_DIR, js_sdk_version

# The column of req/s ratios shown besides the baseline's when that target ran.
SECOND_BASELINE = "sdk-js"


def ratio_key(baseline: str) -> str:
    return "ratio_vs_" + baseline.replace("-", "_")


RATIO_KEY = ratio_key(BASELINE)


def combine_rounds(rounds: list[dict]) -> dict:
    """One row per target (and number of clients) from its rounds: medians, so drift
    in the machine's speed during a run (seen here: later targets slower) hits every
    target alike."""
    ok = [r for r in rounds if not r.get("skipped")]
    if not ok:
        return rounds[-1]
    if len(ok) == 1:
        return ok[0]
    med = statistics.median
    row = dict(ok[len(ok) // 2])
    row["rps"] = med(r["rps"] for r in ok)
    row["latency_ms"] = {
        k: med(r["latency_ms"][k] for r in ok if r["latency_ms"].get(k) is not None)
        for k in ok[0]["latency_ms"]
        if any(r["latency_ms"].get(k) is not None for r in ok)
    }
    for key in ("server_cpu_ms_per_req", "server_cpu_util", "loadgen_cpu_util", "other_cpu_util",
                "db_cpu_ms_per_req", "db_cpu_util"):
        values = [r[key] for r in ok if r.get(key) is not None]
        row[key] = med(values) if values else None
    if all(r.get("cpu_by_command") for r in ok):
        row["cpu_by_command"] = {
            label: {
                "processes": split["processes"],
                "ms_per_req": med(
                    r["cpu_by_command"].get(label, {}).get("ms_per_req") or 0.0 for r in ok
                ),
            }
            for label, split in ok[0]["cpu_by_command"].items()
        }
    row["errors"] = sum(r["errors"] for r in ok)
    row["rounds"] = [
        {
            "rps": r["rps"],
            "p50": r["latency_ms"].get("p50"),
            "p99": r["latency_ms"].get("p99"),
            "server_cpu_ms_per_req": r.get("server_cpu_ms_per_req"),
            "db_cpu_ms_per_req": r.get("db_cpu_ms_per_req"),
        }
        for r in ok
    ]
    return row


def add_ratios(rows: list[dict], baselines: tuple[str, ...] = (BASELINE, SECOND_BASELINE)) -> None:
    """req/s relative to each baseline at the same number of clients
    (``ratio_vs_<baseline>``, None where that baseline was not measured)."""
    for baseline in baselines:
        base = {
            r["clients"]: r["rps"]
            for r in rows
            if r["target"] == baseline and not r.get("skipped") and r.get("rps")
        }
        for r in rows:
            if not r.get("skipped"):
                b = base.get(r["clients"])
                r[ratio_key(baseline)] = r["rps"] / b if b else None


def _cell(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _grid(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = []
    for i, row in enumerate([head, *body]):
        cells = [
            str(c).ljust(w) if j == 0 else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_table(rows: list[dict], profiled: bool) -> str:
    """One table for rows measured at one number of clients, with its notes."""
    second = any(r.get(ratio_key(SECOND_BASELINE)) is not None for r in rows)
    head = [
        "target", "req/s", "p50 ms", "p99 ms", "errors", f"vs {BASELINE}",
        *([f"vs {SECOND_BASELINE}"] if second else []),
        "srv CPU ms/req", "srv CPU", "loadgen CPU",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.get("skipped"):
            body.append([r["target"], "skipped"] + [""] * (len(head) - 2))
            continue
        lat = r.get("latency_ms", {})
        ratios = [r.get(RATIO_KEY)] + ([r.get(ratio_key(SECOND_BASELINE))] if second else [])
        name = r["target"] + (" (profiled)" if r.get("profile") else "")
        body.append(
            [
                name,
                _cell(r["rps"], ",.0f"),
                _cell(lat.get("p50"), ".2f"),
                _cell(lat.get("p99"), ".2f"),
                str(r["errors"]),
                *("-" if x is None else f"{x:.2f}x" for x in ratios),
                _cell(r.get("server_cpu_ms_per_req"), ".3f"),
                "-" if r.get("server_cpu_util") is None else f"{r['server_cpu_util']:.0%}",
                f"{r['loadgen_cpu_util']:.0%}",
            ]
        )
    notes = []
    for r in rows:
        if r.get("skipped"):
            notes.append(f"* {r['target']}: SKIPPED - {r['reason']}")
            continue
        if r.get("note"):
            notes.append(f"* {r['target']}: {r['note']}")
        if r.get("protocol") != "1.0":
            notes.append(f"* {r['target']}: spoke A2A {r['protocol']} ({r['method']})")
        split = r.get("cpu_by_command") or {}
        nproc = sum(v["processes"] for v in split.values())
        if nproc > 1:
            parts = ", ".join(
                f"{label} x{v['processes']} {v['ms_per_req']:.3f}"
                for label, v in split.items() if v.get("ms_per_req") is not None
            )
            notes.append(f"* {r['target']}: srv CPU summed over {nproc} processes "
                         f"(ms/req: {parts})")
        if r.get("db_cpu_ms_per_req") is not None:
            notes.append(
                f"* {r['target']}: PostgreSQL backends of its database (not in srv CPU): "
                f"{r['db_cpu_ms_per_req']:.3f} ms/req, {r['db_cpu_util']:.0%} of a CPU, "
                f"{r.get('db_backends', '?')} connections"
            )
        split_ok = r.get("requests_ok_by_endpoint") or {}
        if len(split_ok) > 1:
            notes.append(f"* {r['target']}: good responses by replica (one round): " + ", ".join(
                f"{ep} {n:,}" for ep, n in sorted(split_ok.items())))
        if (r.get("other_cpu_util") or 0) > 0.15:
            notes.append(
                f"* {r['target']}: WARNING other processes used {r['other_cpu_util']:.0%} of a "
                "CPU during the window; its figures are noisy"
            )
        if r.get("errors") or r.get("errors_incl_warmup"):
            notes.append(f"* {r['target']}: errors {r['error_reasons']}")
        if r.get("profile"):
            notes.append(f"* {r['target']}: profile {r['profile'].get('file')}")
    if profiled:
        notes.append("* profiled targets ran under py-spy: their figures are perturbed")
    return "\n".join(_grid(head, body) + ([""] + notes if notes else []))


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cmd_out(argv: list[str]) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO_DIR)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _postgres_version() -> str | None:
    """server_version of the PostgreSQL the ``{database_url}`` targets use, if reachable."""
    from bench import pgdb

    try:
        [rows] = pgdb._run(pgdb.admin_url(), "SHOW server_version",
                           ("SHOW server_version", ()))
    except pgdb.DatabaseError:
        return None
    return rows[0][0]


def environment() -> dict:
    cpu = None
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "a2a_sdk": _version("a2a-sdk"),
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "trio": _version("trio"),
        "hypercorn": _version("hypercorn"),
        "psycopg": _version("psycopg"),
        "sqlalchemy": _version("sqlalchemy"),
        "asyncpg": _version("asyncpg"),
        "postgresql": _postgres_version(),
        "node": _cmd_out(["node", "--version"]) if shutil.which("node") else None,
        "a2a_js_sdk": js_sdk_version(),
        "git_head": _cmd_out(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_cmd_out(["git", "status", "--porcelain"])),
    }
