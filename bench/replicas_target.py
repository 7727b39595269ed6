"""Launcher of a multi-replica target: N trio-a2a servers, one per port, as one
process tree for the bench.

    python bench/replicas_target.py --ports 8000,8001 -- --store postgres --database-url URL

runs

    python -m runtime server --host H --port 8000 --store postgres --database-url URL
    python -m runtime server --host H --port 8001 --store postgres --database-url URL

(the arguments after ``--`` go to every replica) with their output on this
process's stdout/stderr. The bench measures CPU over the whole tree (this launcher
only waits), waits for each port's agent card, and its load generator spreads the
clients over the ports round-robin: the load split of a load balancer, without one.
If any replica exits, the others are stopped and the launcher exits with its code;
SIGTERM/SIGINT stop them all.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ports", required=True, help="comma-separated, one replica per port")
    ap.add_argument("server_args", nargs=argparse.REMAINDER,
                    help="after --: arguments for every `python -m runtime server`")
    args = ap.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",") if p.strip()]
    extra = args.server_args[1:] if args.server_args[:1] == ["--"] else args.server_args
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    children: list[subprocess.Popen] = []
    try:
        for port in ports:
            children.append(subprocess.Popen(
                [sys.executable, "-m", "runtime", "server", "--host", args.host,
                 "--port", str(port), *extra],
                stdin=subprocess.DEVNULL))
        while True:
            for port, child in zip(ports, children, strict=True):
                rc = child.poll()
                if rc is not None:
                    print(f"replicas_target: the replica on port {port} exited with code {rc}",
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
