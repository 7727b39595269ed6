"""Launcher of the remote-worker target: one server with no local worker plus N
worker processes on its worker link, as one process tree for the bench.

    python bench/remote_target.py --port 8000 --workers 4 --concurrency 16

runs

    python -m runtime server --host H --port P --store memory --local-workers 0
    python -m runtime worker --server http://H:P --concurrency 16 --name bench-w1
    ... (one per worker, named bench-w1 .. bench-wN)

with their output on this process's stdout/stderr. The bench measures CPU over
the whole tree (this launcher only waits). Workers are started once the server
accepts TCP connections; readiness (every worker registered) is checked by the
bench with one SendMessage routed to each worker by name (`trio-a2a/worker`).
If any child exits, the others are stopped and the launcher exits with its code;
SIGTERM/SIGINT stop them all.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time

WORKER_NAME = "bench-w{}"


def worker_names(n: int) -> list[str]:
    return [WORKER_NAME.format(i) for i in range(1, n + 1)]


def _wait_port(host: str, port: int, server: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16, help="tasks per worker")
    ap.add_argument("--store", default="memory", choices=("memory", "sqlite"))
    ap.add_argument("--data-dir", default=None, help="for --store sqlite")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    py = sys.executable
    server_argv = [py, "-m", "runtime", "server", "--host", args.host, "--port", str(args.port),
                   "--store", args.store, "--local-workers", "0"]
    if args.data_dir:
        server_argv += ["--data-dir", args.data_dir]
    url = f"http://{args.host}:{args.port}"
    children: list[subprocess.Popen] = []
    try:
        server = subprocess.Popen(server_argv, stdin=subprocess.DEVNULL)
        children.append(server)
        if not _wait_port(args.host, args.port, server, 20.0):
            print("remote_target: the server did not listen within 20 s", file=sys.stderr)
            return server.poll() or 1
        for name in worker_names(args.workers):
            children.append(subprocess.Popen(
                [py, "-m", "runtime", "worker", "--server", url,
                 "--concurrency", str(args.concurrency), "--name", name],
                stdin=subprocess.DEVNULL))
        while True:
            for child in children:
                rc = child.poll()
                if rc is not None:
                    print(f"remote_target: {' '.join(child.args[2:4])} exited with code {rc}",
                          file=sys.stderr, flush=True)
                    return rc or 1
            time.sleep(0.2)
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=6)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


if __name__ == "__main__":
    sys.exit(main())
