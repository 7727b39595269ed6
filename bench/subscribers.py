"""``python -m bench subscribers``: many SSE subscribers on one server process.

1. Starts ``python -m runtime server`` (memory store, or ``--store sqlite``) with
   the agent ``bench.stream_agent:gated``, and opens --tasks tasks ("stream N",
   non-blocking): each is claimed and waits at the gate, working.
2. Runs the control client (blocking SendMessage of echo tasks at --control-rate
   per second, one keep-alive connection) for --control-seconds: the "before" p99.
3. Measures the server's RSS, starts --processes load generators
   (`bench.sub_clients`) that open --subscribers SubscribeToTask streams per task,
   waits until every stream has its snapshot, settles, measures the RSS again.
4. Opens the gate (each task streams --events events) with the control client
   running again, until every stream has ended: the "during" p99.
5. Checks every stream got every event in order, prints the table and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
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
    tail,
    wait_http_ok,
)

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
AGENT = "bench.stream_agent:gated"
KIB_LIMIT = 16.0
P99_RATIO_LIMIT = 2.0


def _send(conn: http.client.HTTPConnection, text: str, *, wait: bool) -> dict:
    params: dict = {"message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                                "parts": [{"text": text}]}}
    if not wait:
        params["configuration"] = {"returnImmediately": True}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params})
    conn.request("POST", "/", body=body, headers={"Content-Type": "application/json",
                                                  "A2A-Version": "1.0"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    if resp.status != 200 or "result" not in out:
        raise RuntimeError(f"SendMessage: HTTP {resp.status} {out}")
    return out["result"]["task"]


class Control(threading.Thread):
    """Blocking SendMessage at a steady rate on one keep-alive connection."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, 1.0 / rate
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        due = time.monotonic()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                task = _send(conn, "control", wait=True)
                if task["status"]["state"] != "TASK_STATE_COMPLETED":
                    raise RuntimeError(task["status"]["state"])
                self.latencies.append(time.monotonic() - t0)
            except (OSError, RuntimeError, KeyError, ValueError):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            due += self.interval
            self.stop.wait(max(0.0, due - time.monotonic()))
        conn.close()


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def _control(port: int, rate: float, until: threading.Event | None, seconds: float) -> Control:
    c = Control(port, rate)
    c.start()
    if until is None:
        time.sleep(seconds)
    else:
        until.wait()
    c.stop.set()
    c.join()
    return c


def _read_lines(proc: subprocess.Popen, kind: str, out: list[dict]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(kind + " "):
            out.append(json.loads(line[len(kind) + 1:]))
            return


def _snapshot(args: argparse.Namespace, server: subprocess.Popen, data_dir: Path,
              n: int) -> None:
    """Have the server dump its tracemalloc snapshot n (bench.stream_agent's probe)."""
    if not args.tracemalloc:
        return
    server.send_signal(signal.SIGUSR2)
    path = data_dir / f"{n}.snap"
    for _ in range(600):
        if path.exists():
            time.sleep(2)  # written to the end
            return
        time.sleep(0.1)
    raise RuntimeError("no tracemalloc snapshot from the server")


def _compare(data_dir: Path, top: int) -> list[str]:
    import tracemalloc

    a = tracemalloc.Snapshot.load(str(data_dir / "1.snap"))
    b = tracemalloc.Snapshot.load(str(data_dir / "2.snap"))
    stats = b.compare_to(a, "lineno")
    total = sum(st.size_diff for st in stats)
    lines = [f"total {total / 1024:+.0f} KiB"]
    for st in stats[:top]:
        fr = st.traceback[0]
        lines.append(f"{st.size_diff / 1024:+8.0f} KiB {st.count_diff:+7d} blocks  "
                     f"{fr.filename}:{fr.lineno}")
    return lines


def measure(args: argparse.Namespace, data_dir: Path) -> dict:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the children
    port = free_port()
    gate = data_dir / "gate"
    logf = data_dir / "server.log"
    argv = [sys.executable, "-m", "runtime", "server", "--host", HOST, "--port", str(port),
            "--store", args.store, "--data-dir", str(data_dir / "store"), "--agent", AGENT,
            "--max-concurrent-tasks", str(args.tasks + 64), "--log-level", "warning"]
    env = {**os.environ, "BENCH_GATE": str(gate)}
    if args.tracemalloc:
        env["BENCH_TRACEMALLOC"] = str(data_dir)
    res: dict = {"command": " ".join(argv), "args": vars(args)}
    with open(logf, "w") as lf:
        server = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    loadgens: list[subprocess.Popen] = []
    try:
        wait_http_ok(server, port, "/.well-known/agent-card.json",
                     120 if args.tracemalloc else 20, logf)
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        t0 = time.monotonic()
        ids = [_send(conn, f"stream {args.events} {args.interval}", wait=False)["id"]
               for _ in range(args.tasks)]
        conn.close()
        res["open_tasks_s"] = time.monotonic() - t0
        (data_dir / "tasks.txt").write_text("\n".join(ids) + "\n")
        log(f"{len(ids)} tasks open in {res['open_tasks_s']:.1f}s; control before")
        before = _control(port, args.control_rate, None, args.control_seconds)
        time.sleep(args.settle)
        res["rss_before_kib"] = rss_kib(server.pid)
        _snapshot(args, server, data_dir, 1)
        streams = args.tasks * args.subscribers
        log(f"opening {streams} streams from {args.processes} process(es)")
        opened: list[dict] = []
        readers = []
        for i in range(args.processes):
            p = subprocess.Popen(
                [sys.executable, "-m", "bench.sub_clients", "--port", str(port),
                 "--tasks", str(data_dir / "tasks.txt"), "--subscribers",
                 str(args.subscribers), "--events", str(args.events), "--index", str(i),
                 "--of", str(args.processes)],
                stdout=subprocess.PIPE, text=True, start_new_session=True)
            loadgens.append(p)
            t = threading.Thread(target=_read_lines, args=(p, "OPEN", opened))
            t.start()
            readers.append(t)
        for t in readers:
            t.join(args.max_seconds)
        if len(opened) != args.processes:
            raise RuntimeError("a load generator did not open its streams")
        res["open"] = opened
        res["open_failed"] = sum(o["failed"] for o in opened)
        res["open_streams_s"] = max(o["seconds"] for o in opened)
        log(f"streams open in {res['open_streams_s']:.1f}s; settling {args.settle}s")
        time.sleep(args.settle)
        res["rss_after_kib"] = rss_kib(server.pid)
        if args.tracemalloc:
            _snapshot(args, server, data_dir, 2)
            res["tracemalloc_top"] = _compare(data_dir, args.tracemalloc)
        done: list[dict] = []
        all_done = threading.Event()

        def collect() -> None:
            ts = [threading.Thread(target=_read_lines, args=(p, "DONE", done))
                  for p in loadgens]
            for t in ts:
                t.start()
            for t in ts:
                t.join(args.max_seconds)
            all_done.set()

        threading.Thread(target=collect, daemon=True).start()
        log("releasing the tasks; control during")
        t0 = time.monotonic()
        cpu0 = cpu_seconds(server.pid) or 0.0
        gate.write_text("go\n")
        during = _control(port, args.control_rate, all_done, 0)
        res["stream_s"] = time.monotonic() - t0
        res["stream_cpu_s"] = (cpu_seconds(server.pid) or 0.0) - cpu0
        res["rss_end_kib"] = rss_kib(server.pid)
        res["done"] = done
        res["streams"] = streams
        res["good"] = sum(d["good"] for d in done)
        res["events"] = sum(d["events"] for d in done)
        bad: dict[str, int] = {}
        for d in done:
            for k, v in d["bad"].items():
                bad[k] = bad.get(k, 0) + v
        res["bad"] = bad
        for name, c in (("before", before), ("during", during)):
            res[f"control_{name}"] = {"n": len(c.latencies), "errors": c.errors,
                                      "p50_ms": _p(c.latencies, 0.5),
                                      "p99_ms": _p(c.latencies, 0.99)}
    except BaseException:
        log(tail(logf, 20))
        raise
    finally:
        for p in loadgens:
            stop_group(p)
        stop_group(server)
    return res


def checks(res: dict, args: argparse.Namespace) -> list[tuple[str, bool, str]]:
    kib = (res["rss_after_kib"] - res["rss_before_kib"]) / res["streams"]
    res["kib_per_subscriber"] = kib
    b, d = res["control_before"]["p99_ms"], res["control_during"]["p99_ms"]
    ratio = d / b if b and d else float("inf")
    res["p99_ratio"] = ratio
    expected = res["streams"] * args.events
    return [
        (f"<= {KIB_LIMIT:g} KiB RSS per subscriber", kib <= KIB_LIMIT, f"{kib:.1f} KiB"),
        ("every subscriber received every event",
         res["good"] == res["streams"] and res["events"] == expected,
         f"{res['good']}/{res['streams']} streams good, {res['events']}/{expected} events"),
        (f"control p99 during <= {P99_RATIO_LIMIT:g}x before", ratio <= P99_RATIO_LIMIT,
         f"{ratio:.2f}x"),
    ]


def render(res: dict, verdicts: list[tuple[str, bool, str]]) -> str:
    cb, cd = res["control_before"], res["control_during"]
    rows = [
        ("subscribers", f"{res['streams']} ({res['args']['tasks']} tasks x "
                        f"{res['args']['subscribers']}), store {res['args']['store']}"),
        ("events per task", f"{res['args']['events']}, "
                            f"{res['args']['interval']:g} s before each chunk"),
        ("server RSS before streams", f"{res['rss_before_kib'] / 1024:.1f} MiB"),
        ("server RSS with streams", f"{res['rss_after_kib'] / 1024:.1f} MiB"),
        ("server RSS after streaming", f"{res['rss_end_kib'] / 1024:.1f} MiB"),
        ("RSS per subscriber", f"{res['kib_per_subscriber']:.2f} KiB"),
        ("streams opened in", f"{res['open_streams_s']:.1f} s "
                              f"({res['open_failed']} failed to open)"),
        ("events delivered", f"{res['events']} in {res['stream_s']:.1f} s "
                             f"({res['events'] / max(res['stream_s'], 1e-9):.0f}/s)"),
        ("server CPU while streaming", f"{res['stream_cpu_s']:.1f} s, "
                                       f"{res['stream_cpu_s'] / max(res['events'], 1) * 1e6:.0f}"
                                       " µs per event delivered"),
        ("bad streams", json.dumps(res["bad"]) if res["bad"] else "none"),
        ("control before p50/p99", f"{cb['p50_ms']:.1f} / {cb['p99_ms']:.1f} ms "
                                   f"(n={cb['n']}, errors {cb['errors']})"),
        ("control during p50/p99", f"{cd['p50_ms']:.1f} / {cd['p99_ms']:.1f} ms "
                                   f"(n={cd['n']}, errors {cd['errors']})"),
        ("load average at the end", res.get("loadavg", "")),
    ]
    out = [f"{k:28} {v}" for k, v in rows]
    out.append("")
    out += [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in verdicts]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench subscribers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--subscribers", type=int, default=10, help="streams per task")
    p.add_argument("--events", type=int, default=20, help="events each task streams (>= 2)")
    p.add_argument("--interval", type=float, default=0.0,
                   help="seconds before each artifact chunk of a task (0: at once)")
    p.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    p.add_argument("--processes", type=int, default=2, help="load generator processes")
    p.add_argument("--control-rate", type=float, default=20.0, help="control requests/s")
    p.add_argument("--control-seconds", type=float, default=10.0,
                   help="length of the 'before' control window")
    p.add_argument("--settle", type=float, default=3.0, help="seconds before an RSS reading")
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                   help="trace the server's allocations and print the N biggest growths "
                   "while the streams open (slows the server: not for the figures)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.events < 2:
        raise SystemExit("--events must be at least 2 (working, completed)")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    try:
        res = measure(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    res["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    verdicts = checks(res, args)
    res["checks"] = [{"check": n, "pass": ok, "value": v} for n, ok, v in verdicts]
    print(render(res, verdicts))
    if res.get("tracemalloc_top"):
        print("\nserver allocations grown while the streams opened (tracemalloc):")
        print("\n".join(res["tracemalloc_top"]))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"{stamp}-subscribers.json"
        path.write_text(json.dumps(res, indent=1, default=str))
        log(f"results in {path}")
    return 0
