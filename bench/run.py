"""Orchestrator for ``python -m bench``: start each target, load it, report."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.loadgen import Shape
from bench.targets import (
    BASELINE,
    BENCH_DIR,
    DEFAULT_TARGETS,
    REPO_DIR,
    TARGETS,
    Target,
    js_sdk_version,
)

RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- process CPU


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def tree_cpu_seconds(root: int) -> float | None:
    """user+sys CPU seconds of ``root`` and all its descendants (Linux /proc)."""
    if _stat(root) is None:
        return None
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                parent[int(d.name)] = int(st[1])
    total = 0.0
    for pid in parent:
        p = pid
        while p not in (root, 0, 1) and p in parent:
            p = parent[p]
        if p == root:
            st = _stat(pid)
            if st is not None:
                total += (int(st[11]) + int(st[12])) / _TICK
    return total


def system_busy_seconds() -> float | None:
    """CPU seconds spent non-idle by the whole machine so far (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    vals = [int(x) for x in fields[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    busy = sum(vals[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _TICK


# ---------------------------------------------------------------- one target


class Skip(Exception):
    pass


def _fmt_argv(target: Target, port: int, data_dir: str) -> list[str]:
    subs = {
        "python": sys.executable,
        "port": str(port),
        "host": HOST,
        "data_dir": data_dir,
        "bench": str(BENCH_DIR),
        "repo": str(REPO_DIR),
    }
    return [a.format(**subs) for a in target.argv]


def _tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("      | " + ln for ln in lines[-n:])


def _wait_ready(proc: subprocess.Popen, port: int, target: Target, logf: Path) -> float:
    t0 = time.monotonic()
    deadline = t0 + target.ready_timeout
    last = "no answer"
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            last_line = _tail(logf, 1).strip().lstrip("| ")
            raise Skip(
                f"process exited with code {rc} before serving"
                + (f": {last_line}" if last_line else "")
                + f"\n{_tail(logf)}"
            )
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", target.ready_path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.monotonic() - t0
            last = f"GET {target.ready_path} -> HTTP {resp.status}"
        except OSError as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.1)
    raise Skip(f"not ready after {target.ready_timeout:.0f}s (last: {last})\n{_tail(logf)}")


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


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _pin(cpus: set[int] | None):
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_target(target: Target, args: argparse.Namespace, stamp: str) -> dict:
    res: dict = {
        "target": target.name,
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
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix=f"bench-{target.name}-")
    logf = Path(data_dir) / "server.log"
    argv = _fmt_argv(target, port, data_dir)
    res["command"] = shlex.join(argv)
    ncpu = os.cpu_count() or 1
    server_cpus = {0} if args.pin and ncpu > 1 else None
    loadgen_cpus = set(range(1, ncpu)) if args.pin and ncpu > 1 else None
    proc = None
    spy = None
    try:
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
        res["startup_s"] = round(_wait_ready(proc, port, target, logf), 3)
        try:
            _smoke(port, target)
        except Skip as exc:
            raise Skip(f"{exc}\n{_tail(logf)}") from None
        lg_argv = [
            sys.executable, "-m", "bench.loadgen",
            "--host", HOST, "--port", str(port), "--path", target.path,
            "--method", target.method, "--protocol", target.protocol,
            "--clients", str(args.clients),
            "--duration", str(args.duration), "--warmup", str(args.warmup),
        ]  # fmt: skip
        for k, v in target.headers.items():
            lg_argv += ["--header", f"{k}: {v}"]
        log(
            f"{target.name}: port {port}, loading {args.clients} clients for "
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
        result = None
        assert lg.stdout is not None
        for line in lg.stdout:
            line = line.strip()
            if line == "MEASURE_START":
                cpu0 = tree_cpu_seconds(proc.pid)
                sys0 = system_busy_seconds()
                if args.profile and target.ours:
                    spy = _start_profile(target, proc.pid, args, stamp)
            elif line == "MEASURE_END":
                cpu1 = tree_cpu_seconds(proc.pid)
                sys1 = system_busy_seconds()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        lg.wait()
        if result is None:
            raise Skip(f"load generator failed (exit code {lg.returncode})")
        res.update(result)
        if cpu0 is not None and cpu1 is not None:
            res["server_cpu_util"] = (cpu1 - cpu0) / args.duration
            res["server_cpu_ms_per_req"] = (
                (cpu1 - cpu0) / result["requests_ok"] * 1000 if result["requests_ok"] else None
            )
            if sys0 is not None and sys1 is not None:
                # Whatever else ran on the machine during the window: noise.
                res["other_cpu_util"] = max(
                    0.0,
                    (sys1 - sys0) / args.duration
                    - res["server_cpu_util"]
                    - result["loadgen_cpu_util"],
                )
        if proc.poll() is not None:
            res["note"] = (res["note"] + "; " if res["note"] else "") + (
                f"server exited during the run (code {proc.returncode})"
            )
        if spy is not None:
            res["profile"] = _finish_profile(spy)
        return res
    finally:
        if spy is not None and spy[0].poll() is None:
            spy[0].kill()
            spy[0].wait()
        if proc is not None:
            _stop(proc)
        if args.keep_data:
            res["data_dir"] = data_dir
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------- profiling


_PROFILE_EXT = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "txt"}


def _start_profile(target: Target, pid: int, args: argparse.Namespace, stamp: str):
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        log("--profile: py-spy not found (pip install py-spy); running without profiler")
        return None
    out = RESULTS_DIR / f"{stamp}-{target.name}.{_PROFILE_EXT[args.profile_format]}"
    cmd = [
        pyspy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", str(args.profile_rate),
        "--duration", str(max(1, math.ceil(args.duration))),
        "--format", args.profile_format, "--output", str(out),
    ]  # fmt: skip
    log(f"{target.name}: profiling with py-spy -> {out}")
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    return p, out


def _finish_profile(spy) -> dict:
    p, out = spy
    try:
        text, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        text, _ = p.communicate()
    ok = p.returncode == 0 and out.exists()
    if not ok:
        log(f"py-spy failed (exit {p.returncode}): {text.strip()[-300:]}")
    return {"file": str(out) if ok else None, "py_spy_output": text.strip()[-300:]}


# ---------------------------------------------------------------- reporting


def combine_rounds(rounds: list[dict]) -> dict:
    """One row per target from its rounds: medians, so drift in the machine's speed
    during a run (seen here: later targets slower) hits every target alike."""
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
    for key in ("server_cpu_ms_per_req", "server_cpu_util", "loadgen_cpu_util", "other_cpu_util"):
        values = [r[key] for r in ok if r.get(key) is not None]
        row[key] = med(values) if values else None
    row["errors"] = sum(r["errors"] for r in ok)
    row["rounds"] = [
        {
            "rps": r["rps"],
            "p50": r["latency_ms"].get("p50"),
            "server_cpu_ms_per_req": r.get("server_cpu_ms_per_req"),
        }
        for r in ok
    ]
    return row


def _cell(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_table(rows: list[dict], baseline_rps: float | None, profiled: bool) -> str:
    head = [
        "target", "req/s", "p50 ms", "p99 ms", "errors", f"vs {BASELINE}",
        "srv CPU ms/req", "srv CPU", "loadgen CPU",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.get("skipped"):
            body.append([r["target"], "skipped", "", "", "", "", "", "", ""])
            continue
        lat = r.get("latency_ms", {})
        ratio = r["rps"] / baseline_rps if baseline_rps else None
        name = r["target"] + (" (profiled)" if r.get("profile") else "")
        body.append(
            [
                name,
                _cell(r["rps"], ",.0f"),
                _cell(lat.get("p50"), ".2f"),
                _cell(lat.get("p99"), ".2f"),
                str(r["errors"]),
                "-" if ratio is None else f"{ratio:.2f}x",
                _cell(r.get("server_cpu_ms_per_req"), ".3f"),
                "-" if r.get("server_cpu_util") is None else f"{r['server_cpu_util']:.0%}",
                f"{r['loadgen_cpu_util']:.0%}",
            ]
        )
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
    notes = []
    for r in rows:
        if r.get("skipped"):
            notes.append(f"* {r['target']}: SKIPPED - {r['reason']}")
            continue
        if r.get("note"):
            notes.append(f"* {r['target']}: {r['note']}")
        if r.get("protocol") != "1.0":
            notes.append(f"* {r['target']}: spoke A2A {r['protocol']} ({r['method']})")
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
    return "\n".join(lines + ([""] + notes if notes else []))


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
        "node": _cmd_out(["node", "--version"]) if shutil.which("node") else None,
        "a2a_js_sdk": js_sdk_version(),
        "git_head": _cmd_out(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_cmd_out(["git", "status", "--porcelain"])),
    }


# ---------------------------------------------------------------- CLI


def _parse_added(spec: str) -> Target:
    name, sep, cmd = spec.partition("=")
    if not sep or not name.strip() or not cmd.strip():
        raise argparse.ArgumentTypeError(f"--add-target wants NAME=COMMAND, got {spec!r}")
    return Target(
        name=name.strip(),
        argv=shlex.split(cmd),
        description=f"ad-hoc target: {cmd.strip()}",
        ours=True,
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Blocking SendMessage (JSON-RPC, A2A 1.0) throughput and latency, "
        "side by side for several A2A servers. Each server runs in its own "
        "subprocess on 127.0.0.1; the load generator runs in another.",
    )
    ap.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="comma-separated target names, or 'all' (default: %(default)s). See --list.",
    )
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    ap.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per target (default 10)"
    )
    ap.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run the target list this many times, interleaved, and report medians "
        "(default 3): the machine's speed drifts during a run, and interleaving spreads "
        "that drift over every target",
    )
    ap.add_argument(
        "--add-target",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        type=_parse_added,
        help="extra target run after the selected ones: a server command line with "
        "{python} {port} {host} {data_dir} {bench} {repo} placeholders; it must serve "
        "/.well-known/agent-card.json and A2A 1.0 JSON-RPC on POST /. Repeatable.",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="record our (trio-a2a) targets with py-spy during the measured window",
    )
    ap.add_argument("--profile-format", choices=sorted(_PROFILE_EXT), default="speedscope")
    ap.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to CPU 0 and the load generator to the other CPUs",
    )
    ap.add_argument("--keep-data", action="store_true", help="keep each target's temp dir")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table = dict(TARGETS)
    for t in args.add_target:
        table[t.name] = t
    if args.list:
        for t in table.values():
            print(f"{t.name:18} {t.description}")
            print(f"{'':18} $ {' '.join(t.argv)}")
        return 0
    names = (
        list(table)
        if args.targets == "all"
        else [n.strip() for n in args.targets.split(",") if n.strip()]
    )
    names += [t.name for t in args.add_target if t.name not in names]
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"unknown target(s): {', '.join(unknown)}; known: {', '.join(table)}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.profile and not shutil.which("py-spy"):
        log("--profile: py-spy is not installed (pip install py-spy); profiling disabled")
        args.profile = False

    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if args.profile or not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            log(f"round {round_no} of {args.rounds}")
        for name in names:
            target = replace(table[name])
            log(f"{name}: {target.description}")
            try:
                row = run_target(target, args, stamp)
            except Skip as exc:
                log(f"{name}: SKIPPED - {exc}")
                row = {"target": name, "skipped": True, "reason": str(exc).splitlines()[0],
                       "detail": str(exc)}  # fmt: skip
            except KeyboardInterrupt:
                log("interrupted")
                return 130
            else:
                lat = row["latency_ms"]
                log(
                    f"{name}: {row['rps']:,.0f} req/s, p50 {_cell(lat['p50'], '.2f')} ms, "
                    f"p99 {_cell(lat['p99'], '.2f')} ms, errors {row['errors']}"
                )
            runs[name].append(row)
    rows = [combine_rounds(runs[name]) for name in names]

    base = next((r for r in rows if r["target"] == BASELINE and not r.get("skipped")), None)
    baseline_rps = base["rps"] if base and base["rps"] else None
    for r in rows:
        if not r.get("skipped"):
            r["ratio_vs_" + BASELINE.replace("-", "_")] = (
                r["rps"] / baseline_rps if baseline_rps else None
            )
    print()
    print(
        f"A2A blocking SendMessage, JSON-RPC, {args.clients} clients, "
        f"{args.duration:g}s measured after {args.warmup:g}s warmup, "
        + (f"median of {args.rounds} interleaved rounds, " if args.rounds > 1 else "")
        + f"{os.cpu_count()} CPUs shared by server and load generator"
        + (" (pinned)" if args.pin else "")
    )
    print(render_table(rows, baseline_rps, args.profile))
    if not args.no_save:
        out = RESULTS_DIR / f"{stamp}.json"
        doc = {
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
        }
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nresults written to {out.relative_to(REPO_DIR)}")
    return 0
