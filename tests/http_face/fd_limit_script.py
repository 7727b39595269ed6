"""The server under a low limit on open files, for test_fd_exhaustion.py.

    python -m tests.http_face.fd_limit_script NOFILE LOG_INTERVAL   (from the repository)

Lowers RLIMIT_NOFILE to NOFILE, runs `open_server` (memory store) with the accept
loop's warnings LOG_INTERVAL seconds apart, and prints on stdout `port N` once it
listens, then `fd_exhausted True` or `fd_exhausted False` whenever
`RunningServer.statistics()` changes its mind. Logs go to stderr, one JSON object
per line (runtime.logs).
"""

from __future__ import annotations

import resource
import sys

import trio

from runtime.http import listener
from runtime.logs import setup_logging
from runtime.server import ServerConfig, open_server


async def main(log_interval: float) -> None:
    listener.LOG_INTERVAL = log_interval
    async with open_server(ServerConfig(port=0, store="memory")) as server:
        print(f"port {server.port}", flush=True)
        shown = False
        while True:
            # The statistics have no event to wait on; this is the reporter, not a test.
            exhausted = server.statistics().accept.fd_exhausted
            if exhausted != shown:
                print(f"fd_exhausted {exhausted}", flush=True)
                shown = exhausted
            await trio.sleep(0.02)


if __name__ == "__main__":
    nofile, interval = int(sys.argv[1]), float(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    setup_logging("info", "json")
    trio.run(main, interval)
