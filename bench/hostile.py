"""``python -m bench hostile``: hostile traffic against a real server, and the
acceptance check of the hardening issue.

It starts ``python -m runtime server`` on loopback (fresh SQLite data dir, client
and worker tokens set so the auth paths run), stores a few honest tasks for one
principal and a few for the fuzzing principal, then sends ``--requests`` seeded,
mutated requests over raw sockets and httpx, ``--concurrency`` connections at a
time (the cases: `bench.hostile_cases`). Beside them a few connections send an
incomplete request head and stop, to see that the server gives up on them.

It passes when the four conditions of the issue hold: no server error (HTTP 5xx,
or JSON-RPC -32603), no stuck connection (no answer and no close within
``--deadline``; an incomplete head still open after ``--head-hold``), no server
socket left in CLOSE-WAIT once the run is over (after at most ``--settle``
seconds), and the honest tasks unchanged (GetTask, push configs, the owner's task
list); and a fifth that the others take for granted: the server up throughout (no
listener crash or restart, no refused connection, no accept failing with EMFILE,
still answering at the end). Exit code 0, else 1 with the reasons. Every loop is
bounded in count and in time (``--max-seconds``).

`run_hostile(HostileOptions(...))` does the same from Python (the suite's bounded
test). Failures name the seed and the case index: ``--replay INDEX`` runs just
those cases again, on a fresh server, and prints what went and came back.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import trio

from bench.hostile_cases import KINDS
from bench.hostile_run import PARK_AFTER, HostileOptions, Tally, run_cases
from bench.hostile_seed import Honest, seed_tasks, start_server, still_answers
from bench.procs import close_wait, close_wait_peers, rss_kib, server_sockets, stop_group
from bench.targets import BENCH_DIR

__all__ = ["HostileOptions", "main", "run_hostile"]

RESULTS_DIR = BENCH_DIR / "results"
HTTP_RESTART = "http exited; restarting"
"""The supervisor's warning when the server's HTTP listener died and is started again."""


def _settle(port: int, seconds: float) -> tuple[int, float]:
    """Wait (at most `seconds`) for the server's CLOSE-WAIT sockets to go; (left, waited)."""
    t0 = time.monotonic()
    left = close_wait(port)
    while left and time.monotonic() - t0 < seconds:
        time.sleep(0.25)
        left = close_wait(port)
    return left, time.monotonic() - t0


def run_hostile(opts: HostileOptions) -> dict:
    """Start a server, run the traffic, check it; the report as a dict (``passed``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    server = start_server(data_dir, opts.max_body, Path(opts.repo) if opts.repo else None,
                          opts.server_args)
    tally = Tally()
    report: dict = {"seed": opts.seed, "options": asdict(opts), "data_dir": str(data_dir)}
    try:
        honest: Honest = seed_tasks(server)
        rss_before = rss_kib(server.proc.pid)
        t0 = time.monotonic()
        trio.run(run_cases, opts, server.target, tally, server.proc.poll)
        seconds = time.monotonic() - t0
        left, waited = _settle(server.target.port, opts.settle)
        sockets = server_sockets(server.target.port)
        report["close_wait_peers"] = close_wait_peers(server.target.port)
        answers = still_answers(server)
        changed = honest.changes(server) if not answers else ["not checked: " + answers]
        rss_after = rss_kib(server.proc.pid)
        exit_code = server.proc.poll()
    finally:
        stop_group(server.proc)
    stuck = sum(g["count"] for g in tally.stuck.values())
    head_kept = [p for p in tally.head_probes if not p.startswith("closed")]
    errors = sum(g["count"] for g in tally.errors.values())
    restarts = server.log_count(HTTP_RESTART)
    emfile = server.log_count("EMFILE")
    refused = tally.refused.get("ECONNREFUSED", 0)
    # a listener that crashed dropped its connections: none stuck or left in
    # CLOSE-WAIT is then no evidence
    intact = not (restarts or refused or exit_code is not None)
    up = intact and not (answers or emfile)
    conditions = {
        "no server errors": not errors,
        "no stuck connections": not stuck and not head_kept and intact,
        "no server sockets in CLOSE-WAIT": not left and intact,
        "honest tasks unchanged": not changed,
        "server up throughout": up,
    }
    reasons = []
    if errors:
        reasons.append(f"{errors} server errors (HTTP 5xx or JSON-RPC -32603)")
    if stuck or head_kept:
        reasons.append(f"{stuck + len(head_kept)} stuck connections")
    if left:
        reasons.append(f"{left} server sockets in CLOSE-WAIT {waited:.1f} s after the run")
    if not intact:
        reasons.append("stuck connections and CLOSE-WAIT not fully judged: the listener "
                       "crashed or the server exited, which drops every connection")
    if changed:
        reasons.append(f"honest tasks changed: {'; '.join(changed)[:600]}")
    if answers:
        reasons.append(f"server no longer answers: {answers}")
    if restarts or refused:
        reasons.append(f"the server's HTTP listener crashed: {restarts} restarts in its log, "
                       f"{refused} connections refused")
    if emfile:
        reasons.append(f"the server ran out of file descriptors: {emfile} accepts failed "
                       "with EMFILE (its log)")
    if exit_code is not None:
        reasons.append(f"server exited with code {exit_code} during the run")
    if tally.stopped_early:
        reasons.append(tally.stopped_early)
    report.update({
        "passed": not reasons, "conditions": conditions, "reasons": reasons,
        "seconds": round(seconds, 1),
        "cases": tally.cases, "requests": tally.requests,
        "traffic_seconds": round(tally.traffic_seconds, 1),
        "requests_per_second": round(tally.requests / max(tally.traffic_seconds, 1e-9), 1),
        "statuses": dict(sorted(tally.statuses.items())), "kinds": dict(tally.kinds),
        "server_errors": tally.errors, "stuck": tally.stuck, "head_probes": tally.head_probes,
        "close_wait": left, "close_wait_settle_s": round(waited, 1), "server_sockets": sockets,
        "close_wait_peak": tally.close_wait_peak,
        "closed_without_every_answer": dict(tally.closed), "notes": dict(tally.notes),
        "connect_failures": dict(tally.refused), "http_restarts": restarts,
        "accept_emfile": emfile, "slowest_answers": tally.slowest,
        "asgi_errors_in_log": server.log_count("Error in ASGI Framework"),
        "honest_tasks": len(honest.tasks), "honest_changes": changed,
        "rss_kib_before": rss_before, "rss_kib_after": rss_after,
        "server_log_tracebacks": server.log_count("Traceback"),
    })
    if not opts.keep_data:
        server.remove_data()
    return report


def render(r: dict) -> str:
    """The report for people: figures, failures grouped with examples, the verdict."""
    lines = [f"hostile traffic, seed {r['seed']}: {r['requests']} requests in {r['cases']} "
             f"connections/cases, {r['traffic_seconds']} s ({r['requests_per_second']} req/s; "
             f"{r['seconds']} s with the incomplete-head probes)",
             "statuses: " + ", ".join(f"{k}: {v}" for k, v in r["statuses"].items()),
             "kinds: " + ", ".join(f"{k}: {v}" for k, v in r["kinds"].items()),
             f"closed by the server before every answer: {r['closed_without_every_answer']}",
             f"server RSS: {r['rss_kib_before']} KiB before, {r['rss_kib_after']} KiB after; "
             f"tracebacks in its log: {r['server_log_tracebacks']} (ASGI errors "
             f"{r['asgi_errors_in_log']}); HTTP listener restarts: {r['http_restarts']}; "
             f"accepts failed with EMFILE: {r['accept_emfile']}",
             f"connections not made: {r['connect_failures']} (EADDRNOTAVAIL: no local port "
             "left, as the server holds closed connections)",
             "slowest answers (s, case): " + "; ".join(
                 f"{sec} #{i}" for sec, i, _ in r["slowest_answers"]),
             f"server sockets after the run: {r['server_sockets']} (CLOSE-WAIT at most "
             f"{r['close_wait_peak']} during it)"
             + (f"; CLOSE-WAIT client ports: {r['close_wait_peers']}"
                if r.get("close_wait_peers") else ""),
             f"incomplete-head probes: {r['head_probes']}"]
    for title, group in (("server errors", r["server_errors"]), ("stuck", r["stuck"])):
        for key, g in sorted(group.items(), key=lambda kv: -kv[1]["count"]):
            lines.append(f"{title} x{g['count']}: {key}")
            for ex in g["examples"][:2]:
                lines.append(f"    #{ex['index']} {ex['label'][:160]}\n      {ex['detail'][:200]}"
                             f"\n      sent {ex['request'][:200]}\n      {ex['replay']}")
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in r["conditions"].items()]
    lines += [f"reason: {why}" for why in r["reasons"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = HostileOptions()
    ap = argparse.ArgumentParser(prog="python -m bench hostile", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=d.requests)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--concurrency", type=int, default=d.concurrency,
                    help="connections at work at a time")
    ap.add_argument("--parked", type=int, default=d.parked,
                    help=f"more connections that have waited over {PARK_AFTER} s for an answer")
    ap.add_argument("--deadline", type=float, default=d.deadline,
                    help="seconds an awaited answer may take before the connection is stuck")
    ap.add_argument("--settle", type=float, default=d.settle,
                    help="seconds CLOSE-WAIT sockets get to go after the run")
    ap.add_argument("--head-hold", type=float, default=d.head_hold,
                    help="seconds after which an incomplete request head must be closed")
    ap.add_argument("--head-probes", type=int, default=d.head_probes)
    ap.add_argument("--max-seconds", type=float, default=d.max_seconds)
    ap.add_argument("--max-body", type=int, default=d.max_body)
    ap.add_argument("--kinds", default="",
                    help=f"only these kinds: {', '.join(k for k, _ in KINDS)}")
    ap.add_argument("--repo", default="",
                    help="run the server of another checkout (to check a branch's fixes)")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="one more flag for the server, e.g. --server-arg=--header-timeout=5")
    ap.add_argument("--replay", default="", help="case indices to run again, comma-separated")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--no-save", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.kinds.split(",")) - {k for k, _ in KINDS} - {""}
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    opts = HostileOptions(
        requests=args.requests, seed=args.seed, concurrency=args.concurrency,
        parked=args.parked, deadline=args.deadline, settle=args.settle, head_hold=args.head_hold,
        head_probes=args.head_probes, max_seconds=args.max_seconds, max_body=args.max_body,
        kinds=tuple(k for k in args.kinds.split(",") if k), keep_data=args.keep_data,
        repo=args.repo, server_args=tuple(args.server_arg),
        replay=tuple(int(i) for i in args.replay.split(",") if i.strip()))
    report = run_hostile(opts)
    print(render(report))
    if not args.no_save and not opts.replay:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS_DIR / f"{stamp}-hostile.json"
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nresults written to {out}")
    return 0 if report["passed"] else 1


