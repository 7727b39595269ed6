"""``python -m bench startup``: the process time of the CLI's short commands.

A command such as ``python -m runtime send URL text`` is mostly start-up: the
interpreter, then every module the command imports. What it costs is the CPU time
(user + sys) of the child process, read with ``wait4`` (so it includes any child
of its own that it waited for), not the wall time, which on a shared machine
mostly measures the neighbours. Every command runs ``--runs`` times, the commands
interleaved (run 1 of each, run 2 of each, ...) after ``--warmup`` unmeasured
rounds that also leave the bytecode caches written; the report gives the median
and the minimum per command.

``send`` talks to a ``python -m runtime server --store memory`` the bench starts
on a free loopback port; every run must exit 0 and print the echoed text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.checks import render_check_table, tally, verdict_entry
from bench.procs import HOST, free_port, log, stop_group, wait_http_ok
from bench.targets import REPO_DIR

__all__ = ["COMMANDS", "Command", "checks", "main", "measure", "process_time", "render"]

RESULTS = Path(__file__).resolve().parent / "results"
SEND_TEXT = "hello startup"


@dataclass(frozen=True)
class Command:
    """A command line measured by the mode; ``limit`` in seconds of process time
    (median), None for a figure shown for information only."""

    label: str
    argv: tuple[str, ...]  # after the interpreter; "{url}" is the started server
    limit: float | None = None
    expect: str | None = None  # text its stdout must contain

    @property
    def needs_server(self) -> bool:
        return "{url}" in self.argv


COMMANDS: tuple[Command, ...] = (
    Command("python -m runtime --help", ("-m", "runtime", "--help"), 0.3),
    Command("python -m runtime send URL text", ("-m", "runtime", "send", "{url}", SEND_TEXT),
            0.5, expect=SEND_TEXT),
    Command("python -m runtime server --help", ("-m", "runtime", "server", "--help")),
    Command("python -m runtime worker --help", ("-m", "runtime", "worker", "--help")),
    Command("python -c pass (the interpreter alone)", ("-c", "pass")),
)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def process_time(argv: list[str], *, cwd: Path, timeout: float) -> dict:
    """Run ``argv`` to its end: its exit code, its user+sys CPU seconds (``wait4``),
    its wall seconds and the tail of its output. Killed after ``timeout`` seconds."""
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        text = out.read().decode(errors="replace")
    return {"rc": proc.returncode, "cpu_s": usage.ru_utime + usage.ru_stime,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "wall_s": wall,
            "output": text[-400:]}


def _argv(cmd: Command, url: str) -> list[str]:
    return [sys.executable, *(a.format(url=url) for a in cmd.argv)]


def _problem(cmd: Command, run: dict) -> str | None:
    if run["rc"] != 0:
        return f"exit code {run['rc']}: {run['output'].strip()[-200:]!r}"
    if cmd.expect and cmd.expect not in run["output"]:
        return f"output lacks {cmd.expect!r}: {run['output'].strip()[-200:]!r}"
    return None


def summarize(cmd: Command, runs: list[dict]) -> dict:
    """Median, min and max process time of the good runs, and why others failed."""
    problems = [p for p in (_problem(cmd, r) for r in runs) if p]
    good = [r for r in runs if _problem(cmd, r) is None]
    cpu = [r["cpu_s"] for r in good]
    return {
        "command": cmd.label,
        "argv": list(cmd.argv),
        "limit_s": cmd.limit,
        "runs": len(runs),
        "failed": len(runs) - len(good),
        "problems": problems[:3],
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu) if cpu else None,
        "min_cpu_s": min(cpu) if cpu else None,
        "max_cpu_s": max(cpu) if cpu else None,
        "median_wall_s": statistics.median(r["wall_s"] for r in good) if good else None,
    }


def measure(runs: int, warmup: int, timeout: float,
            commands: tuple[Command, ...] = COMMANDS) -> dict:
    """Every command ``warmup`` + ``runs`` times, interleaved, from the repo root."""
    server = None
    url = ""
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        if any(c.needs_server for c in commands):
            port = free_port()
            url = f"http://{HOST}:{port}"
            logf = tmp / "server.log"
            with open(logf, "wb") as lf:
                server = subprocess.Popen(
                    [sys.executable, "-m", "runtime", "server", "--host", HOST, "--port",
                     str(port), "--store", "memory", "--log-level", "warning"],
                    cwd=REPO_DIR, stdout=lf, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            wait_http_ok(server, port, "/.well-known/agent-card.json", 30, logf)
        samples: dict[str, list[dict]] = {c.label: [] for c in commands}
        for i in range(warmup + runs):
            log(f"startup: warmup round {i + 1} of {warmup}" if i < warmup
                else f"startup: round {i - warmup + 1} of {runs}")
            for cmd in commands:
                run = process_time(_argv(cmd, url), cwd=REPO_DIR, timeout=timeout)
                if i >= warmup:
                    samples[cmd.label].append(run)
    finally:
        if server is not None:
            stop_group(server)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"runs": runs, "warmup": warmup, "python": sys.executable, "server_url": url,
            "commands": [summarize(c, samples[c.label]) for c in commands]}


def _label(command: str, limit: float) -> str:
    return f"`{command}` < {limit:g} s process time (median)"


def checks(res: dict | None) -> list[dict]:
    """PASS when a command's median process time is under its limit; n/a when no
    run of it succeeded, or for every limit when nothing was measured (None)."""
    if res is None:
        return [verdict_entry("cli", _label(c.label, c.limit), None, "not measured")
                for c in COMMANDS if c.limit is not None]
    out = []
    for c in res["commands"]:
        if c["limit_s"] is None:
            continue
        label = _label(c["command"], c["limit_s"])
        if c["median_cpu_s"] is None:
            out.append(verdict_entry("cli", label, None,
                                     f"no good run: {'; '.join(c['problems'])}"))
            continue
        measured = (f"median {c['median_cpu_s']:.3f} s, min {c['min_cpu_s']:.3f} s "
                    f"of {c['runs'] - c['failed']} run(s)")
        out.append(verdict_entry("cli", label, c["median_cpu_s"] < c["limit_s"], measured,
                                 value=c["median_cpu_s"], limit=c["limit_s"]))
    return out


def render(res: dict) -> str:
    head = ["command", "median CPU s", "min", "max", "median wall s", "limit", "failed"]
    body = []
    for c in res["commands"]:
        nums = [c["median_cpu_s"], c["min_cpu_s"], c["max_cpu_s"], c["median_wall_s"]]
        body.append([c["command"], *("-" if x is None else f"{x:.3f}" for x in nums),
                     "-" if c["limit_s"] is None else f"< {c['limit_s']:g}",
                     f"{c['failed']}/{c['runs']}"])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [f"CLI process time (user+sys CPU of the child), {res['runs']} run(s) each after "
             f"{res['warmup']} warmup round(s):"]
    for i, r in enumerate([head, *body]):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for c in res["commands"]:
        for p in c["problems"]:
            lines.append(f"* {c['command']}: {p}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}runs", type=int, default=10,
                   help="measured runs of each command (default 10)")
    p.add_argument(f"--{prefix}warmup", type=int, default=1,
                   help="unmeasured rounds first (default 1)")
    p.add_argument(f"--{prefix}timeout", type=float, default=60.0,
                   help="seconds before a run is killed (default 60)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be at least 1 and --warmup at least 0")
    res = measure(args.runs, args.warmup, args.timeout)
    verdicts = checks(res)
    res["checks"] = verdicts
    print(render(res))
    print(f"\nChecks ({tally(verdicts)}):")
    print(render_check_table(verdicts))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"{stamp}-startup.json"
        path.write_text(json.dumps(res, indent=1) + "\n")
        print(f"\nresults written to {path.relative_to(REPO_DIR)}")
    return 0
