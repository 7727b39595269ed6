"""``python -m bench idle-workers``: what idle workers cost the server.

One server ('python -m runtime server --store memory --local-workers 0') and
--workers idle workers connected to it over the worker link, spread over
--processes worker-host processes (bench/worker_host.py: many open_worker()
in one trio program each). Once every worker is registered (the
server's "worker link registered" log lines, and each host's own count) and a
settling pause has passed, it measures over --window seconds: the server's
RSS growth per worker, the server's CPU while the workers heartbeat, heartbeats
per second, and the hosts' memory per worker. Then --probe sequential
SendMessage requests check that the server still answers promptly with that
many workers attached. Table on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import (
    HOST,
    cpu_seconds,
    free_port,
    log,
    rss_kib,
    stop_group,
    system_busy_seconds,
    tail,
    tree_cpu_seconds,
    wait_http_ok,
)
from bench.report import environment
from bench.targets import A2A_1_0, BENCH_DIR, REPO_DIR

RESULTS_DIR = BENCH_DIR / "results"
REGISTERED = "worker link registered"
CLOSED = "worker link closed"


class Host:
    """One worker-host process and the lines it printed."""

    def __init__(self, index: int, argv: list[str], errf: Path) -> None:
        self.index = index
        self.errf = errf
        with open(errf, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=REPO_DIR, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # end of output

    def expect(self, kind: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"worker host {self.index}: no {kind} within {timeout:.0f}s"
                                   f"\n{tail(self.errf)}") from None
            if line == "":
                raise RuntimeError(f"worker host {self.index} exited (code "
                                   f"{self.proc.wait()}) before {kind}\n{tail(self.errf)}")
            if line.startswith(kind + " "):
                return json.loads(line[len(kind) + 1:])

    def stats(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write("STATS\n")
        self.proc.stdin.flush()
        return self.expect("STATS", 30)

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_group(self.proc)


def _count(logf: Path, needle: str) -> int:
    try:
        return logf.read_text(errors="replace").count(needle)
    except OSError:
        return 0


def _probe(port: int, n: int) -> dict:
    """``n`` sequential blocking SendMessage requests: latency in ms."""
    lat, errors = [], 0
    for i in range(n):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": {
            "message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                        "parts": [{"text": "hello world"}]}}})
        conn = http.client.HTTPConnection(HOST, port, timeout=15)
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/", body=body,
                         headers={"Content-Type": "application/json", **A2A_1_0})
            payload = conn.getresponse().read()
            state = json.loads(payload)["result"]["task"]["status"]["state"]
            if state != "TASK_STATE_COMPLETED":
                errors += 1
                continue
        except (OSError, ValueError, KeyError, TypeError):
            errors += 1
            continue
        finally:
            conn.close()
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"requests": n, "errors": errors,
            "p50_ms": statistics.median(lat) if lat else None,
            "max_ms": lat[-1] if lat else None}


def _sum(hosts_stats: list[dict], key: str) -> int:
    return sum(s[key] for s in hosts_stats)


def measure(args: argparse.Namespace, data_dir: Path) -> dict:
    port = free_port()
    url = f"http://{HOST}:{port}"
    logf = data_dir / "server.log"
    server_argv = [sys.executable, "-m", "runtime", "server", "--host", HOST,
                   "--port", str(port), "--store", "memory", "--local-workers", "0"]
    if args.lease_ttl:
        server_argv += ["--lease-ttl", str(args.lease_ttl)]
    res: dict = {"server_command": " ".join(server_argv[1:])}
    hosts: list[Host] = []
    with open(logf, "wb") as out:
        server = subprocess.Popen(server_argv, cwd=REPO_DIR, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_http_ok(server, port, "/.well-known/agent-card.json", 20, logf)
        time.sleep(1.0)
        cpu0, t0 = tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.baseline)
        res["server_idle_cpu_util"] = (tree_cpu_seconds(server.pid) - cpu0) / (
            time.monotonic() - t0)
        rss_before = res["server_rss_kib_before"] = rss_kib(server.pid)

        per = [args.workers // args.processes + (i < args.workers % args.processes)
               for i in range(args.processes)]
        log(f"idle-workers: server {url} (RSS {rss_before / 1024:.1f} MiB); starting "
            f"{args.workers} workers in {args.processes} processes ({'/'.join(map(str, per))})")
        t_start = time.monotonic()
        for i, k in enumerate(per):
            argv = [sys.executable, "-m", "bench.worker_host", "--server", url,
                    "--workers", str(k), "--prefix", f"idle-{i}-", "--seed", str(i * 100_000),
                    "--concurrency", str(args.concurrency)]
            if args.heartbeat_interval:
                argv += ["--heartbeat-interval", str(args.heartbeat_interval)]
            hosts.append(Host(i, argv, data_dir / f"host-{i}.log"))
        res["host_command"] = " ".join(hosts[0].proc.args[1:]) if hosts else None
        bases = [h.expect("BASE", 60) for h in hosts]
        readies = [h.expect("READY", args.register_timeout) for h in hosts]
        deadline = time.monotonic() + args.register_timeout
        while _count(logf, REGISTERED) < args.workers:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"only {_count(logf, REGISTERED)} of {args.workers} "
                                   f"registered on the server\n{tail(logf)}")
            time.sleep(0.2)
        res["registered_on_server"] = _count(logf, REGISTERED)
        res["register_all_s"] = time.monotonic() - t_start
        res["host_ready_s"] = [r["seconds"] for r in readies]
        log(f"idle-workers: {args.workers} registered in {res['register_all_s']:.1f}s; "
            f"settling {args.settle:g}s, then measuring {args.window:g}s")
        time.sleep(args.settle)

        closed0, reg0 = _count(logf, CLOSED), _count(logf, REGISTERED)
        rss_start = rss_kib(server.pid)
        s0 = [h.stats() for h in hosts]
        cpu0, sys0 = tree_cpu_seconds(server.pid), system_busy_seconds()
        hcpu0 = sum(cpu_seconds(h.proc.pid) or 0.0 for h in hosts)
        t0 = time.monotonic()
        time.sleep(args.window)
        cpu1, sys1 = tree_cpu_seconds(server.pid), system_busy_seconds()
        hcpu1 = sum(cpu_seconds(h.proc.pid) or 0.0 for h in hosts)
        window = time.monotonic() - t0
        s1 = [h.stats() for h in hosts]
        rss_end = rss_kib(server.pid)
        n = args.workers

        beats = _sum(s1, "heartbeats_sent") - _sum(s0, "heartbeats_sent")
        srv_cpu = cpu1 - cpu0
        host_cpu = hcpu1 - hcpu0
        hb_warn0 = sum(s["warnings"].get("actors.worker.heartbeat", 0) for s in s0)
        hb_warn1 = sum(s["warnings"].get("actors.worker.heartbeat", 0) for s in s1)
        host_rss = _sum(s1, "rss_kib")
        host_base = sum(b["rss_kib"] for b in bases)
        res.update({
            "window_s": window,
            "server_rss_kib_window_start": rss_start,
            "server_rss_kib_window_end": rss_end,
            "server_rss_kib_per_worker": (rss_end - rss_before) / n,
            "server_rss_growth_in_window_kib": rss_end - rss_start,
            "server_cpu_util": srv_cpu / window,
            "server_cpu_us_per_heartbeat": srv_cpu / beats * 1e6 if beats else None,
            "server_cpu_us_per_heartbeat_net_of_idle": (
                (srv_cpu - res["server_idle_cpu_util"] * window) / beats * 1e6 if beats else None),
            "heartbeats": beats,
            "heartbeats_per_s": beats / window,
            "heartbeat_failures": hb_warn1 - hb_warn0,
            "disconnects_in_window": _count(logf, CLOSED) - closed0,
            "registrations_in_window": _count(logf, REGISTERED) - reg0,
            "workers_connected": _sum(s1, "connected"),
            "worker_connects": _sum(s1, "connects"),
            "host_rss_kib": host_rss,
            "host_base_rss_kib": host_base,
            "host_rss_kib_per_worker": (host_rss - host_base) / n,
            "host_cpu_util": host_cpu / window,
            "host_cpu_us_per_heartbeat": host_cpu / beats * 1e6 if beats else None,
            "host_warnings": {k: sum(s["warnings"].get(k, 0) for s in s1)
                              for s in s1 for k in s["warnings"]},
        })
        if sys0 is not None and sys1 is not None:
            res["other_cpu_util"] = max(0.0, (sys1 - sys0) / window - res["server_cpu_util"]
                                        - res["host_cpu_util"])
        if args.probe:
            res["probe"] = _probe(port, args.probe)
        return res
    finally:
        for h in hosts:
            h.stop()
        stop_group(server)


def render(res: dict, args: argparse.Namespace) -> str:
    kib = 1024
    hb = args.heartbeat_interval or (args.lease_ttl or 90) / 3  # the server's default TTL: 90
    rows = [
        ("workers registered (server log)", f"{res['registered_on_server']:,}"),
        ("time to register all", f"{res['register_all_s']:.1f} s"),
        ("heartbeat interval", f"{hb:g} s" + ("" if args.heartbeat_interval
                                              else " (the server's: lease TTL / 3)")),
        ("server RSS before workers", f"{res['server_rss_kib_before'] / kib:.1f} MiB"),
        ("server RSS with workers (window end)",
         f"{res['server_rss_kib_window_end'] / kib:.1f} MiB"),
        ("server RSS per worker", f"{res['server_rss_kib_per_worker']:.1f} KiB"),
        ("server RSS growth during window",
         f"{res['server_rss_growth_in_window_kib'] / kib:+.2f} MiB"),
        ("server CPU, idle without workers", f"{res['server_idle_cpu_util']:.2%}"),
        ("server CPU during window", f"{res['server_cpu_util']:.2%}"),
        ("heartbeats per second", f"{res['heartbeats_per_s']:,.1f}"),
        ("server CPU per heartbeat", _us(res["server_cpu_us_per_heartbeat"])
         + f" ({_us(res['server_cpu_us_per_heartbeat_net_of_idle'])} net of idle)"),
        ("heartbeat failures / disconnects in window",
         f"{res['heartbeat_failures']} / {res['disconnects_in_window']}"),
        ("worker-host RSS per worker", f"{res['host_rss_kib_per_worker']:.1f} KiB"),
        ("worker-host CPU during window", f"{res['host_cpu_util']:.2%} "
         f"({_us(res['host_cpu_us_per_heartbeat'])} per heartbeat)"),
    ]
    if res.get("probe"):
        p = res["probe"]
        rows.append(("SendMessage with all attached (sequential)",
                     f"p50 {p['p50_ms']:.2f} ms, max {p['max_ms']:.2f} ms, "
                     f"{p['errors']} errors of {p['requests']}"))
    width = max(len(k) for k, _ in rows)
    out = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if (res.get("other_cpu_util") or 0) > 0.15:
        out.append(f"WARNING: other processes used {res['other_cpu_util']:.0%} of a CPU "
                   "during the window")
    return "\n".join(out)


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} us"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench idle-workers",
                                 description=__doc__.split("\n\n")[1])
    ap.add_argument("--workers", type=int, default=1000, help="idle workers (default 1000)")
    ap.add_argument("--processes", type=int, default=4,
                    help="worker-host processes they are spread over (default 4)")
    ap.add_argument("--window", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds between the last registration and the window (default 5)")
    ap.add_argument("--baseline", type=float, default=5.0,
                    help="seconds of the server's idle CPU measured before workers (default 5)")
    ap.add_argument("--heartbeat-interval", type=float, default=None,
                    help="seconds between a worker's heartbeats (default: what the server "
                    "says, a third of its lease TTL: 30 s)")
    ap.add_argument("--lease-ttl", type=float, default=None,
                    help="the server's --lease-ttl (default: the server's, 90 s)")
    ap.add_argument("--concurrency", type=int, default=1, help="slots per worker (default 1)")
    ap.add_argument("--register-timeout", type=float, default=180.0)
    ap.add_argument("--probe", type=int, default=20,
                    help="sequential SendMessage requests after the window (default 20; 0: none)")
    ap.add_argument("--keep-data", action="store_true", help="keep the logs' temp dir")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1 or args.processes < 1:
        print("--workers and --processes must be at least 1", file=sys.stderr)
        return 2
    args.processes = min(args.processes, args.workers)
    now = datetime.now(UTC)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-idle-workers-"))
    try:
        res = measure(args, data_dir)
    except RuntimeError as exc:
        log(f"idle-workers: FAILED - {exc}")
        return 1
    finally:
        if args.keep_data:
            log(f"logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print(f"Idle workers: {args.workers} on the worker link of one server "
          f"(memory store, --local-workers 0), {args.processes} worker-host processes, "
          f"{args.window:g}s window, {os.cpu_count()} CPUs")
    print(render(res, args))
    if not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"{now.strftime('%Y%m%dT%H%M%SZ')}-idle-workers.json"
        doc = {"timestamp": now.isoformat(), "benchmark": "idle workers on the worker link",
               "settings": {k: v for k, v in vars(args).items()},
               "environment": environment(), "results": res}
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nresults written to {out.relative_to(REPO_DIR)}")
    return 0
