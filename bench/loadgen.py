"""Closed-loop HTTP/1.1 load generator for blocking A2A ``SendMessage``.

Runs in its own process (``python -m bench.loadgen ...``), started by
``python -m bench`` once per target. Each simulated client owns one keep-alive
TCP connection and sends one request at a time (closed loop), so the offered
load is ``--clients`` requests in flight. Requests are pre-built byte strings
(only the JSON-RPC id and the messageId change), written with raw asyncio
streams; responses are parsed just enough (status line, Content-Length or
chunked body) and then checked: HTTP 200, a JSON-RPC ``result`` whose task is
completed and echoes the text. Anything else is counted as an error.

``--url`` takes several base URLs, comma-separated (``http://127.0.0.1:8000,
http://127.0.0.1:8001``): client i talks to URL i mod n, the even split of a
round-robin load balancer over replicas. The result counts good responses per URL.

Protocol on stdout (read by the orchestrator):

* ``MEASURE_START`` when the warmup ends and the measured window begins,
* ``MEASURE_END`` when the window closes,
* ``RESULT <json>`` as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TEXT = "hello world"


@dataclass
class Shape:
    """How to build a request and recognise a good response for one protocol version."""

    method: str
    headers: dict[str, str]
    protocol: str  # "1.0" or "0.3"

    def body(self, rpc_id: int, message_id: str) -> bytes:
        if self.protocol == "0.3":
            msg = (
                '{"kind":"message","messageId":"' + message_id + '","role":"user",'
                '"parts":[{"kind":"text","text":"' + TEXT + '"}]}'
            )
        else:
            msg = (
                '{"messageId":"' + message_id + '","role":"ROLE_USER",'
                '"parts":[{"text":"' + TEXT + '"}]}'
            )
        return (
            '{"jsonrpc":"2.0","id":' + str(rpc_id) + ',"method":"' + self.method + '",'
            '"params":{"message":' + msg + "}}"
        ).encode()

    def check(self, rpc_id: int, payload: bytes) -> str | None:
        """Return None if the response is a completed echo task, else an error tag."""
        try:
            obj = json.loads(payload)
        except ValueError:
            return "invalid JSON"
        if not isinstance(obj, dict):
            return "JSON-RPC response is not an object"
        if "error" in obj:
            err = obj["error"] or {}
            return f"JSON-RPC error {err.get('code')}: {str(err.get('message'))[:80]}"
        if obj.get("id") != rpc_id:
            return "JSON-RPC id mismatch"
        res = obj.get("result")
        try:
            if self.protocol == "0.3":
                task = res
                if task.get("kind") != "task":
                    return f"result kind {task.get('kind')!r}, expected task"
                want = "completed"
            else:
                task = res.get("task")
                if task is None:
                    return f"result has no task (keys {sorted(res)})"
                want = "TASK_STATE_COMPLETED"
            state = task["status"]["state"]
            if state != want:
                return f"task state {state}"
            texts = ["".join(p.get("text", "") for p in a["parts"]) for a in task["artifacts"]]
            if TEXT not in texts:
                return "artifact does not echo the text"
        except (AttributeError, KeyError, TypeError, IndexError):
            return "unexpected result shape"
        return None


@dataclass
class Stats:
    window_start: float = 0.0
    window_end: float = float("inf")
    stop: bool = False
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    errors_total: int = 0
    reasons: Counter = field(default_factory=Counter)
    connects: int = 0
    rpc_id: int = 0
    ok_by_target: Counter = field(default_factory=Counter)

    def record(self, t_done: float, latency: float, err: str | None, target: str = "") -> None:
        in_window = self.window_start <= t_done <= self.window_end
        if err is None:
            if in_window:
                self.ok += 1
                self.latencies.append(latency)
                self.ok_by_target[target] += 1
            return
        self.errors_total += 1
        self.reasons[err] += 1
        if in_window:
            self.errors += 1


class BadResponse(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 response; return (status, body, connection_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        status = int(head[9:12])
    except ValueError as exc:
        raise BadResponse(f"bad status line {head[:40]!r}") from exc
    lower = head.lower()
    close = b"\r\nconnection: close" in lower
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        j = lower.index(b"\r\n", i + 2)
        body = await reader.readexactly(int(lower[i + 17 : j]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        chunks = []
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        raise BadResponse("response without Content-Length or chunked body")
    return status, body, close


async def client(host: str, port: int, path: str, shape: Shape, stats: Stats) -> None:
    head_tpl = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in shape.headers.items())
        + "Content-Length: %d\r\n\r\n"
    )
    perf = time.perf_counter
    while not stats.stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            stats.record(perf(), 0.0, f"connect: {exc.__class__.__name__}")
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        try:
            while not stats.stop:
                stats.rpc_id += 1
                rpc_id = stats.rpc_id
                body = shape.body(rpc_id, str(uuid.uuid4()))
                req = (head_tpl % len(body)).encode() + body
                t0 = perf()
                writer.write(req)
                status, payload, close = await read_response(reader)
                t1 = perf()
                if status != 200:
                    err = f"HTTP {status}"
                else:
                    err = shape.check(rpc_id, payload)
                stats.record(t1, t1 - t0, err, f"{host}:{port}")
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            stats.record(perf(), 0.0, f"connection: {exc.__class__.__name__}")
        except BadResponse as exc:
            stats.record(perf(), 0.0, str(exc))
        finally:
            writer.close()


def pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run(args: argparse.Namespace) -> dict:
    shape = Shape(
        method=args.method,
        headers=dict(h.split(":", 1) for h in args.header),
        protocol=args.protocol,
    )
    shape.headers = {k.strip(): v.strip() for k, v in shape.headers.items()}
    stats = Stats()
    endpoints = parse_urls(args.url, args.path) if args.url else [
        (args.host, args.port, args.path)]
    t_start = time.perf_counter()
    stats.window_start = t_start + args.warmup
    stats.window_end = stats.window_start + args.duration
    tasks = [
        asyncio.create_task(client(*endpoints[i % len(endpoints)], shape, stats))
        for i in range(args.clients)
    ]
    await asyncio.sleep(max(0.0, stats.window_start - time.perf_counter()))
    cpu0 = cpu_seconds()
    print("MEASURE_START", flush=True)
    await asyncio.sleep(max(0.0, stats.window_end - time.perf_counter()))
    cpu1 = cpu_seconds()
    print("MEASURE_END", flush=True)
    stats.stop = True
    done, pending = await asyncio.wait(tasks, timeout=args.grace)
    for t in pending:
        t.cancel()
    if pending:
        stats.reasons[f"still waiting {args.grace}s after the window"] += len(pending)
        stats.errors += len(pending)
        await asyncio.wait(pending)
    lat = sorted(stats.latencies)
    ms = 1000.0
    return {
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "requests_ok": stats.ok,
        "errors": stats.errors,
        "errors_incl_warmup": stats.errors_total,
        "error_reasons": dict(stats.reasons.most_common(8)),
        "connections_opened": stats.connects,
        "requests_ok_by_endpoint": dict(stats.ok_by_target),
        "rps": stats.ok / args.duration,
        "latency_ms": {
            "mean": (sum(lat) / len(lat) * ms) if lat else None,
            "p50": pct(lat, 50) * ms if lat else None,
            "p90": pct(lat, 90) * ms if lat else None,
            "p99": pct(lat, 99) * ms if lat else None,
            "max": lat[-1] * ms if lat else None,
        },
        "loadgen_cpu_util": (cpu1 - cpu0) / args.duration,
        "loadgen_cpu_us_per_req": ((cpu1 - cpu0) / stats.ok * 1e6) if stats.ok else None,
    }


def parse_urls(spec: str, default_path: str) -> list[tuple[str, int, str]]:
    """``http://h:p[/path],...`` -> [(host, port, path)]; a URL without a path gets
    ``default_path``."""
    out = []
    for item in spec.split(","):
        if not item.strip():
            continue
        parts = urlsplit(item.strip())
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit(f"--url wants http://HOST:PORT[/PATH] items, got {item!r}")
        out.append((parts.hostname, parts.port or 80, parts.path or default_path))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="closed-loop A2A SendMessage load generator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument(
        "--url",
        default=None,
        help="base URLs, comma-separated, instead of --host/--port: clients are "
        "assigned to them round-robin (replicas without a load balancer)",
    )
    ap.add_argument("--method", default="SendMessage")
    ap.add_argument("--protocol", choices=["1.0", "0.3"], default="1.0")
    ap.add_argument(
        "--header", action="append", default=[], help="extra header 'Name: value' (repeatable)"
    )
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--grace", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(args))
    result["loadgen_loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
