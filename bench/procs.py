"""Process helpers shared by the bench modes: ports, CPU time and memory from /proc,
TCP socket states from /proc/net, readiness polls, stopping a process group."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its living descendants (Linux /proc)."""
    if _stat(root) is None:
        return []
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                parent[int(d.name)] = int(st[1])
    out = []
    for pid in parent:
        p = pid
        while p not in (root, 0, 1) and p in parent:
            p = parent[p]
        if p == root:
            out.append(pid)
    return out


def cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds of one process."""
    st = _stat(pid)
    return None if st is None else (int(st[11]) + int(st[12])) / _TICK


def command_label(pid: int) -> str:
    """A short name for what a process runs: ``runtime server``, ``trivial_server.py``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if len(args) >= 3 and args[1] == "-m":
        return " ".join(args[2:4])
    if len(args) >= 2 and args[1] == "-c":
        return os.path.basename(args[0]) + " -c"
    if len(args) >= 2:
        return os.path.basename(args[1])
    return os.path.basename(args[0]) if args else "?"


def tree_cpu(root: int) -> dict[int, tuple[str, float]]:
    """pid -> (command label, user+sys CPU seconds) for ``root`` and its descendants."""
    out = {}
    for pid in tree_pids(root):
        cpu = cpu_seconds(pid)
        if cpu is not None:
            out[pid] = (command_label(pid), cpu)
    return out


def tree_cpu_seconds(root: int) -> float | None:
    """user+sys CPU seconds of ``root`` and all its descendants (Linux /proc)."""
    if _stat(root) is None:
        return None
    return sum(cpu for _, cpu in tree_cpu(root).values())


def cpu_by_command(before: dict[int, tuple[str, float]],
                   after: dict[int, tuple[str, float]]) -> dict[str, dict]:
    """CPU seconds spent between two `tree_cpu` samples, grouped by command label."""
    out: dict[str, dict] = {}
    for pid, (label, cpu) in after.items():
        start = before.get(pid, (label, 0.0))[1]
        row = out.setdefault(label, {"processes": 0, "cpu_s": 0.0})
        row["processes"] += 1
        row["cpu_s"] += cpu - start
    return out


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


def rss_kib(pid: int) -> int | None:
    """Resident set size of one process in KiB (VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("      | " + ln for ln in lines[-n:])


def http_status(port: int, path: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET ``path`` on loopback: (status, "") or (None, why it failed)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, ""
    except OSError as exc:
        return None, f"{exc.__class__.__name__}: {exc}"
    finally:
        conn.close()


def wait_http_ok(proc: subprocess.Popen, port: int, path: str, timeout: float,
                 logf: Path) -> float:
    """Poll GET ``path`` until it answers 200; seconds it took. RuntimeError with the
    reason (and the tail of ``logf``) if the process exits first or time runs out."""
    t0 = time.monotonic()
    last = "no answer"
    while time.monotonic() < t0 + timeout:
        rc = proc.poll()
        if rc is not None:
            last_line = tail(logf, 1).strip().lstrip("| ")
            raise RuntimeError(
                f"process exited with code {rc} before serving"
                + (f": {last_line}" if last_line else "")
                + f"\n{tail(logf)}"
            )
        status, why = http_status(port, path)
        if status == 200:
            return time.monotonic() - t0
        last = why or f"GET {path} -> HTTP {status}"
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout:.0f}s (last: {last})\n{tail(logf)}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc`` (started with start_new_session), then
    SIGKILL it if it has not exited after 8 s."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # children may outlive their parent
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def server_sockets(port: int) -> dict[str, int]:
    """States of the sockets whose local port is `port` (the server's side), counted."""
    counts: dict[str, int] = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                state = TCP_STATES.get(fields[3], fields[3])
                counts[state] = counts.get(state, 0) + 1
    return counts


def close_wait(port: int) -> int:
    """Server sockets in CLOSE-WAIT (state 08): the peer closed, the server has not."""
    return server_sockets(port).get("CLOSE_WAIT", 0)


def close_wait_peers(port: int) -> list[int]:
    """The client ports of the server sockets (local `port`) in CLOSE-WAIT."""
    peers = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and int(fields[1].rsplit(":", 1)[1], 16) == port \
                    and fields[3] == "08":
                peers.append(int(fields[2].rsplit(":", 1)[1], 16))
    return peers
