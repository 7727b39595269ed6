"""A worker pointed at a URL with no worker link stops with a message naming the URL.

Before, the server answered the WebSocket handshake with HTTP 500 (and logged a
RuntimeError), and the worker retried it forever.
"""

from __future__ import annotations

import pytest
import trio

from runtime.server import ServerConfig, open_server
from runtime.worker import WorkerRejected, open_worker


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_worker_at_a_wrong_path_stops_naming_the_url(
        transport: str, caplog: pytest.LogCaptureFixture) -> None:
    async with open_server(ServerConfig(port=0, store="memory", local_workers=0)) as srv:
        wrong = f"{srv.url}/a2a/v2"
        with trio.fail_after(10), pytest.raises(WorkerRejected) as refused:
            async with open_worker(wrong, token=None, transport=transport) as worker:
                await worker.wait_registered()
    assert "is not a worker link (HTTP 404)" in str(refused.value)
    assert "/a2a/v2/worker/" in str(refused.value) and "--server" in str(refused.value)
    # the server answered plainly: nothing logged as an error on its side
    assert not [r for r in caplog.records if r.levelname == "ERROR"
                and not r.name.startswith("runtime.worker")], caplog.text
