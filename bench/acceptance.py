"""``python -m bench all``: every performance target of the runtime in one run.

1. Throughput: blocking SendMessage at 1 and 16 clients for the two official SDK
   servers, http-floor and the trio-a2a targets (the main bench, whose options
   pass through: ``--rounds``, ``--duration``, ``--warmup``, ``--pin``, ...).
2. SSE subscribers: ``python -m bench subscribers`` at ``--subscribers-scale``
   (1000x10, i.e. 10,000 streams, unless shrunk for a quick run).
3. Start-up: ``python -m bench startup`` (process time of the CLI commands).

Then a summary of the figures side by side and one table with every check, and
everything as JSON in ``bench/results/<timestamp>-all.json``. Like the other
modes it reports and exits 0 whatever the verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import startup, subscribers
from bench.checks import figure, render_check_table, tally, verdict_entry
from bench.cli import build_parser
from bench.procs import log
from bench.report import environment
from bench.run import (
    RESULTS_DIR,
    UsageError,
    measure_rows,
    render_tables,
    select_targets,
    target_checks,
    throughput_doc,
)
from bench.targets import REPO_DIR

__all__ = ["ALL_TARGETS", "main", "render_summary", "subscriber_verdicts"]

ALL_TARGETS = ("sdk-python", "sdk-js", "http-floor", "trio-memory", "trio-sqlite",
               "trio-remote4")
PARTS = ("throughput", "subscribers", "startup")


def _scale(spec: str) -> tuple[int, int]:
    tasks, sep, subs = spec.lower().partition("x")
    try:
        t, s = int(tasks), int(subs)
    except ValueError:
        t = s = 0
    if not sep or t < 1 or s < 1:
        raise argparse.ArgumentTypeError(
            f"--subscribers-scale wants TASKSxSUBSCRIBERS such as 1000x10, got {spec!r}")
    return t, s


def _parts(spec: str) -> set[str]:
    parts = {p.strip() for p in spec.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--skip takes some of {','.join(PARTS)}, got {','.join(sorted(unknown))}")
    return parts


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def render_summary(rows: list[dict]) -> str:
    """The figures the targets are judged by, one line per target: req/s, its ratios,
    CPU per request and p99 at 16 clients, p50 at 1 client."""
    by = {(r["target"], r["clients"]): r for r in rows if not r.get("skipped")}

    def fig(target: str, clients: int, name: str) -> float | None:
        row = by.get((target, clients))
        return figure(row, name) if row is not None else None

    head = ["target", "req/s @16", "vs sdk-python", "vs sdk-js", "srv CPU ms/req @16",
            "vs http-floor", "p99 ms @16", "vs sdk-js p99", "p50 ms @1"]
    body = []
    for target in dict.fromkeys(r["target"] for r in rows):
        rps, cpu = fig(target, 16, "rps"), fig(target, 16, "cpu")
        p99, p50 = fig(target, 16, "p99"), fig(target, 1, "p50")
        body.append([
            target, "-" if rps is None else f"{rps:,.0f}",
            _ratio(rps, fig("sdk-python", 16, "rps")), _ratio(rps, fig("sdk-js", 16, "rps")),
            "-" if cpu is None else f"{cpu:.3f}", _ratio(cpu, fig("http-floor", 16, "cpu")),
            "-" if p99 is None else f"{p99:.2f}", _ratio(p99, fig("sdk-js", 16, "p99")),
            "-" if p50 is None else f"{p50:.2f}",
        ])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = []
    for i, r in enumerate([head, *body]):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def subscriber_verdicts(res: dict | None, sargs: argparse.Namespace,
                        error: str | None = None) -> list[dict]:
    """The subscribers mode's three verdicts in the checks' shape (n/a with the
    reason when the mode could not run)."""
    streams = sargs.tasks * sargs.subscribers
    target = f"sse-subscribers ({streams:,} = {sargs.tasks} x {sargs.subscribers})"
    if res is None:
        names = [f"<= {subscribers.KIB_LIMIT:g} KiB RSS per subscriber",
                 "every subscriber received every event",
                 f"control p99 during <= {subscribers.P99_RATIO_LIMIT:g}x before"]
        return [verdict_entry(target, n, None, f"not measured: {error}") for n in names]
    return [verdict_entry(target, name, ok, detail)
            for name, ok, detail in subscribers.checks(res, sargs)]


def _run_subscribers(sargs: argparse.Namespace) -> tuple[dict | None, list[dict]]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    try:
        res = subscribers.measure(sargs, data_dir)
    except Exception as exc:  # a part that fails leaves its checks n/a, not the run
        log(f"subscribers: failed: {exc!r}")
        return None, subscriber_verdicts(None, sargs, f"{exc.__class__.__name__}: {exc}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    res["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("\nSSE subscribers on one server process:")
    print(subscribers.render(res, subscribers.checks(res, sargs)))
    res["checks"] = subscriber_verdicts(res, sargs)
    return res, res["checks"]


def build_all_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench all", description=__doc__, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other option goes to the throughput part (python -m bench --help), "
        "e.g. --rounds 1 --duration 5 --warmup 1; its defaults here are --targets "
        f"{','.join(ALL_TARGETS)} --clients 1,16.")
    p.add_argument("--subscribers-scale", type=_scale, default=(1000, 10),
                   metavar="TASKSxSUBSCRIBERS",
                   help="size of the SSE part (default 1000x10: 10,000 streams)")
    p.add_argument("--subscribers-args", default="", metavar="'OPTIONS'",
                   help="more options for the SSE part, given with '=': "
                   "--subscribers-args='--control-seconds 3' (python -m bench subscribers --help)")
    p.add_argument("--skip", type=_parts, default=set(), metavar="PART[,PART]",
                   help=f"leave parts out ({','.join(PARTS)}); their checks are n/a")
    startup.add_arguments(p, prefix="startup-")
    return p


def main(argv: list[str] | None = None) -> int:
    args, rest = build_all_parser().parse_known_args(argv)
    bench_args = build_parser().parse_args(
        ["--targets", ",".join(ALL_TARGETS), "--clients", "1,16", *rest])
    tasks, per_task = args.subscribers_scale
    sub_parser = subscribers.build_parser()
    sargs = sub_parser.parse_args(["--tasks", str(tasks), "--subscribers", str(per_task),
                                   *shlex.split(args.subscribers_args)])
    try:
        table, names = select_targets(bench_args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    doc: dict = {"timestamp": now.isoformat(), "benchmark": "every performance target",
                 "settings": {"skip": sorted(args.skip), "subscribers": vars(sargs),
                              "startup_runs": args.startup_runs}}
    entries: list[dict] = []
    rows: list[dict] = []
    try:
        if "throughput" not in args.skip:
            rows = measure_rows(bench_args, table, names, stamp)
            tput_checks = target_checks(table, names, rows)
            print(render_tables(bench_args, rows))
            doc["throughput"] = throughput_doc(bench_args, now, names, rows, tput_checks)
            entries += tput_checks
        else:
            entries += target_checks(table, names, [])
        if "subscribers" not in args.skip:
            doc["subscribers"], verdicts = _run_subscribers(sargs)
            entries += verdicts
        else:
            entries += subscriber_verdicts(None, sargs, "skipped (--skip)")
        if "startup" not in args.skip:
            res = startup.measure(args.startup_runs, args.startup_warmup, args.startup_timeout)
            res["checks"] = startup.checks(res)
            print("\n" + startup.render(res))
            doc["startup"] = res
            entries += res["checks"]
        else:
            entries += startup.checks(None)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if rows:
        print("\nFigures side by side (medians; ratios against the named target, same run):")
        print(render_summary(rows))
    print(f"\nAll checks ({tally(entries)}):")
    print(render_check_table(entries))
    doc["checks"] = entries
    if not bench_args.no_save:
        doc["environment"] = doc.get("throughput", {}).pop("environment", None) or environment()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"{stamp}-all.json"
        out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"\nresults written to {out.relative_to(REPO_DIR)}")
    return 0
