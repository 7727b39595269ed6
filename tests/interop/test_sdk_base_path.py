"""The official a2a-sdk client finds and uses a trio-a2a server served under a base path.

The client is given only the base URL (``http://host:port/api/a2a/v1``): it reads
the card under it and then talks to the interface URLs the card names, in both
generations and both bindings (see test_sdk_client.py for how it runs).
"""

from __future__ import annotations

import pytest
import trio

from runtime.server import ServerConfig, open_server
from tests.interop.test_sdk_client import MODES, TEST_TIMEOUT, kinds, run_sdk

pytestmark = pytest.mark.interop

BASE = "/api/a2a/v1"


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_sdk_client_through_the_base_path(mode: str, binding: str) -> None:
    config = ServerConfig(port=0, store="memory", base_path=BASE)
    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(config) as srv:
            card = await run_sdk(srv.url + BASE, mode, binding, "card")
            report = await run_sdk(srv.url + BASE, mode, binding, "blocking", "via base path")
    expected = srv.url + BASE + ("/" if binding == "JSONRPC" else "")
    assert card["transport_url"] == expected
    events = report["events"]
    assert kinds(events) == ["task"], events
    assert events[0]["state"] == "TASK_STATE_COMPLETED"
    assert events[0]["artifact_text"] == "via base path"
