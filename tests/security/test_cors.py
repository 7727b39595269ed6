"""CORS: off by default; when configured, preflights are answered and the allowed
origins' responses carry Access-Control-Allow-Origin, on every path."""

from __future__ import annotations

import httpx
import pytest
import trio

from runtime.http.cors import CorsSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server

APP = "https://app.test"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}


async def test_off_by_default() -> None:
    async with open_server(ServerConfig(port=0, store="memory")) as srv, \
            httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(10):
            r = await c.options("/", headers=PREFLIGHT)
            assert "access-control-allow-origin" not in r.headers
            r = await c.post("/", json=LIST, headers={"Origin": APP, "A2A-Version": "1.0"})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_configured_origins_methods_and_headers() -> None:
    cors = CorsSettings(origins=(APP,), methods=("GET", "POST"),
                        headers=("Authorization", "Content-Type", "A2A-Version"))
    config = ServerConfig(port=0, store="memory", security=SecurityConfig(cors=cors))
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(10):
            for path in ("/", "/tasks", "/v1/message:send", "/.well-known/agent-card.json"):
                r = await c.options(path, headers=PREFLIGHT)
                assert r.status_code == 204, path
                assert r.headers["access-control-allow-origin"] == APP
                assert r.headers["access-control-allow-methods"] == "GET, POST"
                assert r.headers["access-control-allow-headers"] == (
                    "Authorization, Content-Type, A2A-Version")
                assert r.headers["access-control-max-age"] == "600"
            r = await c.options("/", headers={**PREFLIGHT, "Origin": "https://evil.test"})
            assert r.status_code == 204 and "access-control-allow-origin" not in r.headers
            r = await c.post("/", json=LIST, headers={"Origin": APP, "A2A-Version": "1.0"})
            assert r.headers["access-control-allow-origin"] == APP
            assert r.headers["vary"] == "Origin"
            r = await c.get("/tasks", headers={"Origin": "https://evil.test",
                                               "A2A-Version": "1.0"})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            card = await c.get("/.well-known/agent-card.json", headers={"Origin": APP})
            assert card.headers["access-control-allow-origin"] == APP


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one allowed origin"):
        CorsSettings(origins=())
    with pytest.raises(ValueError, match="credentials"):
        CorsSettings(origins=("*",), allow_credentials=True)
