"""Orchestrator for ``python -m bench``: start each target, load it, report."""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import pgdb
from bench.checks import evaluate_checks, render_check_table, tally
from bench.cli import build_parser
from bench.loadgen import Shape
from bench.procs import (
    HOST,
    cpu_by_command,
    free_port,
    log,
    stop_group,
    system_busy_seconds,
    tail,
    tree_cpu,
    wait_http_ok,
)
from bench.profiling import RESULTS_DIR, finish_profile, start_profile
from bench.report import add_ratios, combine_rounds, environment, render_table
from bench.targets import BASELINE, BENCH_DIR, REPO_DIR, TARGETS, Target

# ---------------------------------------------------------------- one target


class Skip(Exception):
    pass


def _fmt_argv(target: Target, ports: list[int], data_dir: str,
              database_url: str = "") -> list[str]:
    subs = {
        "python": sys.executable,
        "port": str(ports[0]),
        "ports": ",".join(map(str, ports)),
        "host": HOST,
        "data_dir": data_dir,
        "database_url": database_url,
        "bench": str(BENCH_DIR),
        "repo": str(REPO_DIR),
    }
    return [a.format(**subs) for a in target.argv]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _wait_ready(proc: subprocess.Popen, ports: list[int], target: Target, logf: Path) -> float:
    t0 = time.monotonic()
    try:
        for port in ports:
            left = target.ready_timeout - (time.monotonic() - t0)
            wait_http_ok(proc, port, target.ready_path, max(left, 0.1), logf)
    except RuntimeError as exc:
        raise Skip(str(exc)) from None
    if target.ready_check is not None:
        left = target.ready_timeout - (time.monotonic() - t0)
        err = target.ready_check(HOST, ports[0], left)
        if err:
            raise Skip(f"not ready after {target.ready_timeout:.0f}s: {err}\n{tail(logf)}")
    return time.monotonic() - t0


def _db_cpu(name: str | None) -> dict[int, float] | None:
    return pgdb.backend_cpu(name) if name else None


def _smoke(port: int, target: Target) -> None:
    """One SendMessage through http.client, checked like the load generator does."""
    shape = Shape(target.method, target.headers, target.protocol)
    body = shape.body(1, str(uuid.uuid4()))
    conn = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={"Content-Type": "application/json", **target.headers},
        )
        resp = conn.getresponse()
        payload = resp.read()
    except OSError as exc:
        raise Skip(f"smoke SendMessage failed: {exc}") from exc
    finally:
        conn.close()
    err = f"HTTP {resp.status}" if resp.status != 200 else shape.check(1, payload)
    if err:
        raise Skip(f"smoke SendMessage rejected ({err}): {payload[:300]!r}")


def _pin(cpus: set[int] | None):
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_target(target: Target, args: argparse.Namespace, stamp: str, clients: int) -> dict:
    res: dict = {
        "target": target.name,
        "clients": clients,
        "description": target.description,
        "method": target.method,
        "protocol": target.protocol,
        "headers": target.headers,
        "note": target.note,
    }
    if target.prepare is not None:
        reason = target.prepare()
        if reason:
            raise Skip(reason)
    ports = _free_ports(max(1, target.replicas))
    port = ports[0]
    db_name = db_url = None
    data_dir = tempfile.mkdtemp(prefix=f"bench-{target.name}-")
    logf = Path(data_dir) / "server.log"
    ncpu = os.cpu_count() or 1
    server_cpus = {0} if args.pin and ncpu > 1 else None
    loadgen_cpus = set(range(1, ncpu)) if args.pin and ncpu > 1 else None
    proc = None
    spy = None
    try:
        if target.uses_database:
            try:
                db_name, db_url = pgdb.create_database(target.name)
            except pgdb.DatabaseError as exc:
                raise Skip(str(exc)) from None
            res["database"] = db_name
        argv = _fmt_argv(target, ports, data_dir, db_url or "")
        res["command"] = shlex.join(argv)
        with open(logf, "wb") as out:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                argv,
                cwd=REPO_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                preexec_fn=_pin(server_cpus),
            )
        res["startup_s"] = round(_wait_ready(proc, ports, target, logf), 3)
        try:
            for p in ports:
                _smoke(p, target)
        except Skip as exc:
            raise Skip(f"{exc}\n{tail(logf)}") from None
        lg_argv = [
            sys.executable, "-m", "bench.loadgen",
            "--host", HOST, "--port", str(port), "--path", target.path,
            "--method", target.method, "--protocol", target.protocol,
            "--clients", str(clients),
            "--duration", str(args.duration), "--warmup", str(args.warmup),
        ]  # fmt: skip
        if len(ports) > 1:
            lg_argv += ["--url", ",".join(f"http://{HOST}:{p}" for p in ports)]
        for k, v in target.headers.items():
            lg_argv += ["--header", f"{k}: {v}"]
        log(
            f"{target.name}: port {port}, loading {clients} clients for "
            f"{args.warmup:g}s warmup + {args.duration:g}s"
        )
        lg = subprocess.Popen(
            lg_argv,
            cwd=REPO_DIR,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_pin(loadgen_cpus),
        )
        cpu0 = cpu1 = sys0 = sys1 = None
        split0 = split1 = {}
        db0 = db1 = None
        result = None
        assert lg.stdout is not None
        for line in lg.stdout:
            line = line.strip()
            if line == "MEASURE_START":
                split0 = tree_cpu(proc.pid)
                cpu0 = sum(c for _, c in split0.values())
                sys0 = system_busy_seconds()
                db0 = _db_cpu(db_name)
                if args.profile and target.ours:
                    spy = start_profile(target, proc.pid, args, stamp)
            elif line == "MEASURE_END":
                split1 = tree_cpu(proc.pid)
                cpu1 = sum(c for _, c in split1.values())
                sys1 = system_busy_seconds()
                db1 = _db_cpu(db_name)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        lg.wait()
        if result is None:
            raise Skip(f"load generator failed (exit code {lg.returncode})")
        res.update(result)
        if cpu0 is not None and cpu1 is not None:
            res["server_cpu_util"] = (cpu1 - cpu0) / args.duration
            n_ok = result["requests_ok"]
            res["server_cpu_ms_per_req"] = (cpu1 - cpu0) / n_ok * 1000 if n_ok else None
            res["cpu_by_command"] = {
                label: {"processes": v["processes"],
                        "ms_per_req": v["cpu_s"] / n_ok * 1000 if n_ok else None}
                for label, v in cpu_by_command(split0, split1).items()
            }
            db_util = 0.0
            if db0 is not None and db1 is not None:
                # PostgreSQL backends serving this run's database (outside the
                # target's process tree); a backend started in the window counts
                # from 0, one that ended in it is missed.
                db_s = sum(cpu - db0.get(pid, 0.0) for pid, cpu in db1.items())
                db_util = db_s / args.duration
                res["db_cpu_util"] = db_util
                res["db_cpu_ms_per_req"] = db_s / n_ok * 1000 if n_ok else None
                res["db_backends"] = len(db1)
            if sys0 is not None and sys1 is not None:
                # Whatever else ran on the machine during the window: noise.
                res["other_cpu_util"] = max(
                    0.0,
                    (sys1 - sys0) / args.duration
                    - res["server_cpu_util"]
                    - result["loadgen_cpu_util"]
                    - db_util,
                )
        if proc.poll() is not None:
            res["note"] = (res["note"] + "; " if res["note"] else "") + (
                f"server exited during the run (code {proc.returncode})"
            )
        if spy is not None:
            res["profile"] = finish_profile(spy)
        return res
    finally:
        if spy is not None and spy[0].poll() is None:
            spy[0].kill()
            spy[0].wait()
        if proc is not None:
            stop_group(proc)
        if args.keep_data:
            res["data_dir"] = data_dir
            if db_name is not None:
                log(f"{target.name}: kept database {db_name}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            if db_name is not None:
                try:
                    pgdb.drop_database(db_name)
                except pgdb.DatabaseError as exc:
                    log(f"{target.name}: could not drop database {db_name}: {exc}")


MODES = {
    "idle-workers": ("bench.idle_workers", "main"),
    "replicas": ("bench.replica_latency", "replicas_main"),
    "subscribers": ("bench.subscribers", "main"),
    "hostile": ("bench.hostile", "main"),
    "startup": ("bench.startup", "main"),
    "all": ("bench.acceptance", "main"),
}


class UsageError(Exception):
    """A command line naming what does not exist: printed, exit code 2."""


def select_targets(args: argparse.Namespace) -> tuple[dict[str, Target], list[str]]:
    """The target table (with --add-target's) and the names --targets selects."""
    table = dict(TARGETS)
    for t in args.add_target:
        table[t.name] = t
    names = (
        list(table)
        if args.targets == "all"
        else [n.strip() for n in args.targets.split(",") if n.strip()]
    )
    names += [t.name for t in args.add_target if t.name not in names]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UsageError(f"unknown target(s): {', '.join(unknown)}; known: {', '.join(table)}")
    return table, names


def measure_rows(args: argparse.Namespace, table: dict[str, Target], names: list[str],
                 stamp: str) -> list[dict]:
    """Every target at every level, --rounds times interleaved; one combined row per
    target and level, with the ratios. KeyboardInterrupt goes to the caller."""
    if args.profile and not shutil.which("py-spy"):
        log("--profile: py-spy is not installed (pip install py-spy); profiling disabled")
        args.profile = False
    if args.profile or not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    levels: list[int] = args.clients
    runs: dict[tuple[str, int], list[dict]] = {(n, c): [] for c in levels for n in names}
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            log(f"round {round_no} of {args.rounds}")
        for clients in levels:
            for name in names:
                target = replace(table[name])
                log(f"{name} @ {clients} clients: {target.description}")
                try:
                    row = run_target(target, args, stamp, clients)
                except Skip as exc:
                    log(f"{name}: SKIPPED - {exc}")
                    row = {"target": name, "clients": clients, "skipped": True,
                           "reason": str(exc).splitlines()[0], "detail": str(exc)}  # fmt: skip
                else:
                    lat = row["latency_ms"]
                    log(
                        f"{name} @ {clients}: {row['rps']:,.0f} req/s, "
                        f"p50 {_cell(lat['p50'], '.2f')} ms, "
                        f"p99 {_cell(lat['p99'], '.2f')} ms, errors {row['errors']}"
                    )
                runs[(name, clients)].append(row)
    rows = [combine_rounds(runs[(n, c)]) for c in levels for n in names]
    add_ratios(rows)
    return rows


def target_checks(table: dict[str, Target], names: list[str], rows: list[dict]) -> list[dict]:
    return evaluate_checks({n: table[n].checks for n in names if table[n].checks}, rows)


def render_tables(args: argparse.Namespace, rows: list[dict]) -> str:
    """One table per number of clients, each under a line saying how it was measured."""
    out = []
    for clients in args.clients:
        out.append(
            f"\nA2A blocking SendMessage, JSON-RPC, {clients} client{'s' * (clients != 1)}, "
            f"{args.duration:g}s measured after {args.warmup:g}s warmup, "
            + (f"median of {args.rounds} interleaved rounds, " if args.rounds > 1 else "")
            + f"{os.cpu_count()} CPUs shared by server and load generator"
            + (" (pinned)" if args.pin else "")
        )
        out.append(render_table([r for r in rows if r["clients"] == clients], args.profile))
    return "\n".join(out)


def throughput_doc(args: argparse.Namespace, now: datetime, names: list[str],
                   rows: list[dict], checks: list[dict]) -> dict:
    """The JSON the throughput bench saves: settings, environment, rows, checks."""
    return {
        "timestamp": now.isoformat(),
        "benchmark": "A2A blocking SendMessage over JSON-RPC",
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "pinned": args.pin,
            "profiled": args.profile,
            "targets": names,
        },
        "environment": environment(),
        "baseline": BASELINE,
        "results": rows,
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in MODES:
        module, func = MODES[argv[0]]
        return getattr(importlib.import_module(module), func)(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        table, names = select_targets(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.list:
        for t in table.values():
            print(f"{t.name:18} {t.description}")
            print(f"{'':18} $ {' '.join(t.argv)}")
            for c in t.checks:
                print(f"{'':18} check: {c.label}")
        return 0
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    try:
        rows = measure_rows(args, table, names, stamp)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    checks = target_checks(table, names, rows)
    print(render_tables(args, rows))
    if checks:
        print(f"\nTarget checks ({tally(checks)}):")
        print(render_check_table(checks))
    if not args.no_save:
        out = RESULTS_DIR / f"{stamp}.json"
        doc = throughput_doc(args, now, names, rows, checks)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nresults written to {out.relative_to(REPO_DIR)}")
    return 0


def _cell(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)
