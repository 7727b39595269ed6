"""The benchmark's target table.

A target is a server started in its own subprocess on 127.0.0.1 with a free
port, plus what the load generator must send to it. To benchmark another mode
of trio-a2a, add a row to ``TARGETS`` (or pass ``--add-target`` on the command
line, see ``python -m bench --help``).

Placeholders in ``argv`` items: ``{python}`` (this interpreter), ``{port}``,
``{host}``, ``{data_dir}`` (a fresh temporary directory per run, removed
afterwards), ``{database_url}`` (a fresh PostgreSQL database per run, dropped
afterwards: bench/pgdb.py), ``{ports}`` (all the ports of a target with
``replicas`` > 1, comma-separated; ``{port}`` is the first), ``{bench}`` (this
directory) and ``{repo}`` (the repo root).

A target may carry ``checks``: goals the report marks PASS or FAIL (for
example "p50 <= 2 ms at 1 client" or "req/s at 16 clients >= sdk-js's"),
evaluated by bench/checks.py.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.remote_target import worker_names

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
JS_DIR = BENCH_DIR / "js"

A2A_1_0 = {"A2A-Version": "1.0"}
CHECK_METRICS = ("p50", "p99", "ratio", "cpu_ratio", "p99_ratio")


@dataclass(frozen=True)
class Check:
    """A goal for one target at one number of clients, marked PASS/FAIL in the report.

    ``metric`` is one of:

    * ``"p50"``, ``"p99"``: latency in ms, must be <= ``limit``;
    * ``"ratio"``: req/s over ``baseline``'s req/s, must be >= ``limit``;
    * ``"cpu_ratio"``: server CPU per request over ``baseline``'s, must be <= ``limit``;
    * ``"p99_ratio"``: p99 over ``baseline``'s p99, must be <= ``limit``.

    The ratios compare with ``baseline`` measured at the same number of clients in the
    same run; ``baseline`` None means the bench's baseline, sdk-python.
    """

    label: str
    clients: int
    metric: str
    limit: float
    baseline: str | None = None

    def __post_init__(self) -> None:
        if self.metric not in CHECK_METRICS:
            raise ValueError(f"Check {self.label!r}: unknown metric {self.metric!r}")


def _issue14(rps_vs_js: float, *extra: Check, note: str = "") -> tuple[Check, ...]:
    """The performance goals of a trio-a2a target at 16 clients: req/s at least
    ``rps_vs_js`` x sdk-js's and p99 no worse than sdk-js's, plus ``extra``."""
    return (
        Check(f"req/s at 16 clients >= {rps_vs_js:.1f}x sdk-js's{note}", clients=16,
              metric="ratio", limit=rps_vs_js, baseline="sdk-js"),
        *extra,
        Check("p99 at 16 clients <= sdk-js's", clients=16, metric="p99_ratio",
              limit=1.0, baseline="sdk-js"),
    )


@dataclass
class Target:
    name: str
    argv: list[str]
    description: str
    method: str = "SendMessage"
    protocol: str = "1.0"  # "1.0" (SendMessage, ROLE_USER) or "0.3" (message/send, kind)
    headers: dict[str, str] = field(default_factory=lambda: dict(A2A_1_0))
    path: str = "/"
    ready_path: str = "/.well-known/agent-card.json"
    ready_timeout: float = 20.0
    # Run after ready_path answers 200, with (host, port, seconds left): None when
    # the target is ready, else why not. For targets whose HTTP side comes up
    # before the rest (e.g. remote workers registering).
    ready_check: Callable[[str, int, float], str | None] | None = None
    # Returns None when the target can run, else the reason to skip it. May do
    # one-time setup (e.g. npm install).
    prepare: Callable[[], str | None] | None = None
    # Ours: profiled with py-spy when --profile is given.
    ours: bool = False
    note: str = ""
    checks: tuple[Check, ...] = ()
    # Servers listening on as many ports (``{ports}``): the load generator spreads its
    # clients over them round-robin, the bench waits for and smoke-tests each.
    replicas: int = 1

    @property
    def uses_database(self) -> bool:
        return any("{database_url}" in a for a in self.argv)


def _cmd(line: str) -> list[str]:
    """Split a command line on spaces; placeholders are filled in per argument afterwards."""
    return line.split()


def _need_modules(*mods: str) -> Callable[[], str | None]:
    def check() -> str | None:
        missing = [m for m in mods if importlib.util.find_spec(m) is None]
        return f"python module(s) not installed: {', '.join(missing)}" if missing else None

    return check


def _uvicorn_note() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn 1 worker, --loop auto -> {loop}, --http auto -> {http}"


def _prepare_js() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return "node/npm not found on PATH (install Node.js >= 20 to run the sdk-js target)"
    try:
        ver = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
        major = int(ver.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return f"cannot run node --version: {exc}"
    if major < 20:
        return f"node {ver.stdout.strip()} is too old; @a2a-js/sdk 1.x needs node >= 20"
    if not (JS_DIR / "node_modules" / "@a2a-js" / "sdk" / "package.json").exists():
        cmd = "ci" if (JS_DIR / "package-lock.json").exists() else "install"
        print(f"[bench] sdk-js: running `npm {cmd}` in {JS_DIR} (first use) ...", flush=True)
        proc = subprocess.run(
            [npm, cmd, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return f"`npm {cmd}` failed: " + " | ".join(tail)
    return None


def _routed_send(host: str, port: int, worker: str, timeout: float) -> str | None:
    """One blocking SendMessage routed to the worker named ``worker``; None if it
    came back completed with the echo."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                    "parts": [{"text": "hello world"}],
                    "metadata": {"trio-a2a/worker": worker}}}})
    conn = http.client.HTTPConnection(host, port, timeout=max(timeout, 0.1))
    try:
        conn.request("POST", "/", body=body,
                     headers={"Content-Type": "application/json", **A2A_1_0})
        resp = conn.getresponse()
        payload = resp.read()
    except OSError as exc:
        return f"SendMessage routed to {worker}: {exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
    try:
        state = json.loads(payload)["result"]["task"]["status"]["state"]
    except (ValueError, KeyError, TypeError):
        return f"SendMessage routed to {worker}: HTTP {resp.status} {payload[:200]!r}"
    return None if state == "TASK_STATE_COMPLETED" else f"routed to {worker}: task {state}"


def _workers_answer(names: list[str]) -> Callable[[str, int, float], str | None]:
    """Ready when every named worker has run a task: one SendMessage routed to each
    by name. A worker that has not registered yet leaves its task queued, so the
    request waits for it (up to the time left)."""

    def check(host: str, port: int, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        for name in names:
            err = _routed_send(host, port, name, deadline - time.monotonic())
            if err:
                return err
        return None

    return check


def js_sdk_version() -> str | None:
    import json

    try:
        pkg = JS_DIR / "node_modules" / "@a2a-js" / "sdk" / "package.json"
        return json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            name="loadgen-ceiling",
            argv=_cmd("{python} {bench}/trivial_server.py --host {host} --port {port}"),
            description="bare asyncio Protocol returning a canned completed task: "
            "what the load generator can push, not a real server",
        ),
        Target(
            name="sdk-python",
            argv=_cmd("{python} {bench}/ref_sdk_server.py --host {host} --port {port}"),
            description="official a2a-sdk 1.3 (DefaultRequestHandler, InMemoryTaskStore, "
            "create_jsonrpc_routes on Starlette/uvicorn), echo AgentExecutor",
            prepare=_need_modules("a2a", "uvicorn", "starlette"),
            note=_uvicorn_note(),
        ),
        Target(
            name="sdk-python-uvloop",
            argv=_cmd(
                "{python} {bench}/ref_sdk_server.py --host {host} --port {port}"
                " --loop uvloop --http httptools"
            ),
            description="as sdk-python, forcing uvicorn --loop uvloop --http httptools "
            "(needs `pip install uvloop httptools`)",
            prepare=_need_modules("a2a", "uvicorn", "starlette", "uvloop", "httptools"),
        ),
        Target(
            name="sdk-js",
            argv=_cmd("node {bench}/js/server.mjs --host {host} --port {port}"),
            description="official @a2a-js/sdk 1.3 (DefaultRequestHandler, InMemoryTaskStore, "
            "express jsonRpcHandler), echo AgentExecutor; A2A 1.0 SendMessage",
            prepare=_prepare_js,
        ),
        Target(
            name="http-floor",
            argv=_cmd("{python} {bench}/http_floor_server.py --host {host} --port {port}"),
            description="hypercorn's trio worker as trio-a2a runs it, with a plain ASGI "
            "handler answering a canned result: the HTTP layer alone, no A2A work",
            ours=True,
        ),
        Target(
            name="trio-memory",
            argv=_cmd("{python} -m runtime server --host {host} --port {port} --store memory"),
            description="trio-a2a server, in-memory task store",
            ours=True,
            checks=_issue14(1.0, Check(
                "srv CPU/req at 16 clients <= 2x http-floor's", clients=16,
                metric="cpu_ratio", limit=2.0, baseline="http-floor")),
        ),
        Target(
            name="trio-sqlite",
            # --sqlite-synchronous normal is the server's default (runtime/flags/server.py),
            # given explicitly so that TRIO_A2A_SQLITE_SYNCHRONOUS cannot change the target.
            argv=_cmd(
                "{python} -m runtime server --host {host} --port {port}"
                " --store sqlite --data-dir {data_dir} --sqlite-synchronous normal"
            ),
            description="trio-a2a server, durable sqlite task store (WAL, synchronous=normal, "
            "the server's default) in a fresh temp dir",
            ours=True,
            checks=_issue14(0.8, note=" (synchronous=normal, the default)"),
        ),
        Target(
            name="trio-remote4",
            argv=_cmd(
                "{python} {bench}/remote_target.py --host {host} --port {port}"
                " --workers 4 --concurrency 16"
            ),
            description="trio-a2a server with --local-workers 0 (memory store) and 4 "
            "`python -m runtime worker --concurrency 16` processes on the worker link; "
            "CPU summed over all 5 processes",
            ours=True,
            ready_timeout=30.0,
            ready_check=_workers_answer(worker_names(4)),
            checks=_issue14(0.5, Check("p50 at 1 client <= 2 ms", clients=1,
                                       metric="p50", limit=2.0)),
        ),
        Target(
            name="sdk-python-pg",
            argv=_cmd(
                "{python} {bench}/ref_sdk_server.py --host {host} --port {port}"
                " --database-url {database_url} --pool-size 16 --max-overflow 0"
            ),
            description="as sdk-python, with the SDK's DatabaseTaskStore on PostgreSQL "
            "(SQLAlchemy async + asyncpg, a2a-sdk[postgresql]) in a fresh database",
            prepare=_need_modules("a2a", "uvicorn", "starlette", "sqlalchemy", "asyncpg"),
            # SQLAlchemy's default pool (5 + 10 overflow) closes an overflow connection
            # whenever it is returned, so at 16 clients it opens connections all the
            # time (about 18 instead of 13.5 ms of CPU per request here): a fixed pool
            # of one connection per client is the fair setting.
            note=_uvicorn_note() + "; SQLAlchemy pool 16 + 0 overflow",
        ),
        Target(
            name="trio-postgres",
            argv=_cmd(
                "{python} -m runtime server --host {host} --port {port}"
                " --store postgres --database-url {database_url}"
            ),
            description="trio-a2a server, PostgreSQL task store in a fresh database",
            ours=True,
            note="pool of 10 connections (default)",
            checks=(
                Check("req/s at 16 clients >= 2x sdk-python-pg's", clients=16,
                      metric="ratio", limit=2.0, baseline="sdk-python-pg"),
            ),
        ),
        Target(
            name="trio-postgres2",
            argv=_cmd(
                "{python} {bench}/replicas_target.py --host {host} --ports {ports}"
                " -- --store postgres --database-url {database_url}"
            ),
            description="two trio-a2a server replicas on one fresh PostgreSQL database, "
            "each with its embedded worker; the load generator's clients alternate "
            "between them; CPU summed over both",
            ours=True,
            replicas=2,
            note="2 replicas, pool of 10 connections each (default)",
        ),
    ]
}

DEFAULT_TARGETS = [
    "loadgen-ceiling", "sdk-python", "sdk-js", "trio-memory", "trio-sqlite", "trio-remote4",
]
BASELINE = "sdk-python"
