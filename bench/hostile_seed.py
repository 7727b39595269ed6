"""The server side of the hostile-traffic fuzzer (`bench.hostile`): start the
server under test, store the honest tasks, and tell afterwards whether they are
exactly as they were and whether the server still answers.

The honest tasks belong to a principal ("owner") whose token the fuzzer only ever
sends beside a second Authorization header: no request of the run may act as the
owner, so nothing of the owner's may change. Some are completed, and some ask
for a capability no worker has, so they stay queued and a cancel would move
them: a request that manages to act as the owner shows up as a change. The
fuzzing principal gets tasks of its own, which the traffic may read, cancel and
subscribe to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.hostile_payloads import NOT_A_WORKER, Pool
from bench.hostile_requests import Target
from bench.procs import HOST, tail
from bench.targets import REPO_DIR

LISTENING = re.compile(r"trio-a2a server on http://127\.0\.0\.1:(\d+)")
TOKENS = {"owner": "hostile-owner-token", "fuzz": "hostile-fuzz-token"}
WORKER_TOKEN = "hostile-worker-token"


@dataclass
class Server:
    proc: subprocess.Popen
    data_dir: Path
    logf: Path
    target: Target

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.target.port}"

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=15,
                            headers={"Authorization": f"Bearer {TOKENS[who]}"})

    def log_count(self, needle: str) -> int:
        try:
            return self.logf.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def remove_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_server(data_dir: Path, max_body: int, repo: Path | None = None,
                 extra: tuple[str, ...] = (), timeout: float = 30.0) -> Server:
    """``python -m runtime server --port 0`` on a fresh SQLite dir, with client and
    worker tokens; back once it says where it listens. `repo`: the checkout whose
    server runs (default: this one), to check another branch's fixes; nothing is
    written into it."""
    tokens = data_dir / "tokens"
    tokens.write_text("".join(f"{p}:{t}\n" for p, t in TOKENS.items()))
    workers = data_dir / "worker-tokens"
    workers.write_text(f"worker:{WORKER_TOKEN}\n")
    logf = data_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_A2A_")}
    env["PYTHONUNBUFFERED"] = "1"
    if repo is not None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    argv = [sys.executable, "-m", "runtime", "server", "--host", HOST, "--port", "0",
            "--store", "sqlite", "--data-dir", str(data_dir / "data"),
            "--tokens-file", str(tokens), "--worker-tokens-file", str(workers),
            "--max-body", str(max_body), "--log-level", "warning", *extra]
    with open(logf, "wb") as out:
        proc = subprocess.Popen(argv, cwd=repo or REPO_DIR, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = LISTENING.search(logf.read_text(errors="replace"))
        if found:
            pool = Pool((), (), (), max_body)
            target = Target(int(found.group(1)), TOKENS["fuzz"], TOKENS["owner"],
                            WORKER_TOKEN, pool)
            return Server(proc, data_dir, logf, target)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}\n{tail(logf)}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start within {timeout:g} s\n{tail(logf)}")


def _rpc(client: httpx.Client, method: str, params: dict, version: str = "1.0") -> dict:
    headers = {"A2A-Version": "1.0"} if version == "1.0" else {}
    r = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                    headers=headers)
    r.raise_for_status()
    out = r.json()
    if "result" not in out:
        raise RuntimeError(f"{method}: {out}")
    return out["result"]


def _send(client: httpx.Client, text: str, *, version: str, queued: bool) -> str:
    if version == "1.0":
        msg = {"messageId": f"seed-{text}", "role": "ROLE_USER", "parts": [{"text": text}]}
        conf = {"returnImmediately": True} if queued else {}
        method = "SendMessage"
    else:
        msg = {"kind": "message", "messageId": f"seed-{text}", "role": "user",
               "parts": [{"kind": "text", "text": text}]}
        conf = {"blocking": False} if queued else {}
        method = "message/send"
    if queued:
        msg["metadata"] = {"trio-a2a/capabilities": [NOT_A_WORKER]}
    result = _rpc(client, method, {"message": msg, "configuration": conf}, version)
    task = result.get("task", result)
    return task["id"]


def _snapshot(client: httpx.Client, task_id: str) -> dict:
    return {"task": _rpc(client, "GetTask", {"id": task_id, "historyLength": 1000}),
            "push": _rpc(client, "ListTaskPushNotificationConfigs", {"taskId": task_id})}


def _owner_ids(client: httpx.Client, pages: int = 100) -> set[str]:
    """The ids of every task the client's principal has (at most `pages` pages)."""
    ids: set[str] = set()
    params: dict = {"pageSize": 100}
    for _ in range(pages):
        page = _rpc(client, "ListTasks", params)
        ids |= {t["id"] for t in page["tasks"]}
        if not page.get("nextPageToken"):
            break
        params = {"pageSize": 100, "pageToken": page["nextPageToken"]}
    return ids


@dataclass
class Honest:
    """The owner's tasks as stored before the run."""

    tasks: dict[str, dict] = field(default_factory=dict)

    def changes(self, server: Server) -> list[str]:
        out = []
        with server.client("owner") as c:
            ids = _owner_ids(c)
            extra = ids - set(self.tasks)
            if extra:
                out.append(f"the owner has {len(extra)} tasks it never created "
                           f"(e.g. {sorted(extra)[:3]})")
            for task_id, before in self.tasks.items():
                now = _snapshot(c, task_id)
                if now != before:
                    state = (before["task"]["status"]["state"], now["task"]["status"]["state"])
                    out.append(f"task {task_id}: {state[0]} -> {state[1]}" if state[0] != state[1]
                               else f"task {task_id} differs: {_diff(before, now)}")
        return out


def _diff(a: dict, b: dict) -> str:
    sa, sb = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
    i = next((n for n, (x, y) in enumerate(zip(sa, sb, strict=False)) if x != y), 0)
    return f"...{sa[max(0, i - 40):i + 60]}... became ...{sb[max(0, i - 40):i + 60]}..."


def seed_tasks(server: Server) -> Honest:
    """Store the honest tasks and the fuzzer's own; fill in the target's pool and card."""
    honest = Honest()
    with server.client("owner") as c:
        ids = [_send(c, f"honest-{i}", version=v, queued=q) for i, (v, q) in enumerate(
            [("1.0", False), ("1.0", False), ("0.3", False), ("1.0", True), ("0.3", True)])]
        for task_id in ids:
            honest.tasks[task_id] = _snapshot(c, task_id)
        if _owner_ids(c) != set(ids):
            raise RuntimeError("the owner's task list is not the tasks just stored")
    with server.client("fuzz") as c:
        done = tuple(_send(c, f"own-{i}", version=v, queued=False)
                     for i, v in enumerate(["1.0", "0.3", "1.0", "0.3"]))
        queued = tuple(_send(c, f"own-q{i}", version=v, queued=True)
                       for i, v in enumerate(["1.0", "0.3", "1.0", "0.3"]))
        card = c.get("/.well-known/agent-card.json")
    t = server.target
    server.target = Target(t.port, t.token, t.owner_token, t.worker_token,
                           Pool(done, queued, tuple(honest.tasks), t.pool.max_body),
                           card.headers.get("etag", '"none"'),
                           card.headers.get("last-modified", t.card_modified))
    return honest


def still_answers(server: Server) -> str:
    """'' when the card and a blocking SendMessage are answered; else what failed."""
    if server.proc.poll() is not None:
        return f"the server exited with code {server.proc.returncode}"
    try:
        with server.client("fuzz") as c:
            c.timeout = httpx.Timeout(10)
            r = c.get("/.well-known/agent-card.json")
            if r.status_code != 200:
                return f"card: HTTP {r.status_code}"
            task = _rpc(c, "SendMessage", {"message": {
                "messageId": f"after-{time.monotonic_ns()}", "role": "ROLE_USER",
                "parts": [{"text": "still there?"}]}})["task"]
            if task["status"]["state"] != "TASK_STATE_COMPLETED":
                return f"SendMessage ended {task['status']['state']}"
    except (httpx.HTTPError, RuntimeError, KeyError) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return ""
