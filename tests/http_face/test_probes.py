"""/healthz and /readyz: liveness while the process serves, readiness with its reasons."""

from __future__ import annotations

import errno

import httpx
import trio

from runtime.server import RunningServer

TIMEOUT = 10


async def test_healthy_and_ready_by_default(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert ready.headers["cache-control"] == "no-store"


async def test_not_ready_while_draining_or_out_of_file_descriptors(
        server: RunningServer, client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        await client.get("/healthz")  # the connection is accepted (an accept clears the state)
        server.accept.failed(OSError(errno.EMFILE, "Too many open files"))
        server.dispatcher.drain("the server is shutting down")
        ready = await client.get("/readyz")  # on the same keep-alive connection
        health = await client.get("/healthz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["reasons"][0].startswith("out of file descriptors")
    assert body["reasons"][1] == "draining: the server is shutting down"
    assert health.status_code == 200  # the process still serves: do not restart it
    server.accept.accepted()
