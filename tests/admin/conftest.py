"""The admin tests' server: remote workers only (so they can be disconnected)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from runtime.admin import AdminSettings
from runtime.server import RunningServer, ServerConfig, open_server
from tests.admin.helpers import TOKEN, Admin
from tests.agents import Controls, scripted_agent


@pytest.fixture
def admin_config(controls: Controls) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                        local_workers=0, admin=AdminSettings(token=TOKEN))


@pytest.fixture
async def admin_server(admin_config: ServerConfig) -> AsyncIterator[RunningServer]:
    async with open_server(admin_config) as srv:
        yield srv


@pytest.fixture
async def http(admin_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin_server.url, timeout=10) as c:
        yield c


@pytest.fixture(params=["rest", "rpc"])
def admin(request: pytest.FixtureRequest, http: httpx.AsyncClient) -> Admin:
    return Admin(http, request.param)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed once per session if missing (tests/admin/browser.py)."""
    from tests.admin.browser import ChromiumUnavailable, ensure_chromium

    try:
        return ensure_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(f"the dashboard tests need chromium: {exc}", pytrace=False)
