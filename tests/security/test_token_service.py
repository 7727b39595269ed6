"""The built-in token service on a real server: log in with an API key, use the access
token, refresh (rotating), reuse of a spent refresh token revokes the family, log out,
verify; on JSON-RPC (both generations) and HTTP+JSON; revocations survive a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from runtime.http.auth import TokenEntry
from runtime.http.revocations import open_revocations
from runtime.http.token_service import TokenService, TokenServiceSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message

SETTINGS = TokenServiceSettings(secret="t" * 40)
ENTRIES = {"key-alice": TokenEntry("alice", ("operator",), "acme"),
           "key-watch": TokenEntry("watch", ("observer",), "acme")}
NS = "trio-a2a/tokens."


def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(port=0, store="sqlite", data_dir=tmp_path, agent=scripted_agent(),
                        tokens={t: e.principal for t, e in ENTRIES.items()},
                        security=SecurityConfig(token_entries=ENTRIES,
                                                token_service=SETTINGS))


async def rpc(c: httpx.AsyncClient, method: str, params: dict, token: str | None = None,
              version: str | None = "1.0") -> dict:
    headers = {"A2A-Version": version} if version else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                "params": params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_login_use_refresh_reuse_logout_verify(tmp_path: Path) -> None:
    async with open_server(config(tmp_path)) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(30):
            bad = await rpc(c, NS + "login", {"apiKey": "nope"})
            assert bad["error"]["code"] == -32043 and "nope" not in str(bad)
            first = (await rpc(c, NS + "login", {"apiKey": "key-alice"}))["result"]
            assert first["tokenType"] == "Bearer" and first["expiresIn"] == 900
            access = first["accessToken"]
            sent = await rpc(c, "SendMessage", {"message": user_message("ask")}, access)
            task_id = sent["result"]["task"]["id"]
            # the token speaks for the API key's identity: same principal and tenant
            got = await rpc(c, "GetTask", {"id": task_id}, "key-alice")
            assert got["result"]["id"] == task_id
            # refresh rotates: a new pair, the old refresh token spent
            second = (await rpc(c, NS + "refresh",
                                {"refreshToken": first["refreshToken"]}))["result"]
            assert second["refreshToken"] != first["refreshToken"]
            assert "result" in await rpc(c, "GetTask", {"id": task_id}, second["accessToken"])
            # an access token is not a refresh token, nor the reverse
            wrong = await rpc(c, NS + "refresh", {"refreshToken": second["accessToken"]})
            assert wrong["error"]["code"] == -32043
            r = await c.get("/tasks", headers={"Authorization":
                                               f"Bearer {second['refreshToken']}"})
            assert r.status_code == 401
            # reuse of the spent refresh token revokes the whole family
            reuse = await rpc(c, NS + "refresh", {"refreshToken": first["refreshToken"]})
            assert reuse["error"]["code"] == -32043
            for token in (access, second["accessToken"]):
                r = await c.get("/tasks", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 401
            again = await rpc(c, NS + "refresh", {"refreshToken": second["refreshToken"]})
            assert again["error"]["code"] == -32043
            # verify needs token.verify; it tells the status
            fresh = (await rpc(c, NS + "login", {"apiKey": "key-alice"}))["result"]
            r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": NS + "verify",
                                        "params": {"token": fresh["accessToken"]}})
            assert r.status_code == 401
            status = (await rpc(c, NS + "verify", {"token": fresh["accessToken"]},
                                "key-watch"))["result"]
            assert status == {"active": True, "tokenType": "access", "principal": "alice",
                              "tenant": "acme", "roles": ["operator"],
                              "expiresAt": status["expiresAt"]}
            dead = await rpc(c, NS + "verify", {"token": access}, "key-watch")
            assert dead["result"] == {"active": False}
            # log out (0.3 JSON-RPC: the same methods) revokes the session
            out = await rpc(c, NS + "logout", {"refreshToken": fresh["refreshToken"]},
                            fresh["accessToken"], version=None)
            assert out["result"] == {"revoked": True}
            r = await c.get("/tasks", headers={"Authorization":
                                               f"Bearer {fresh['accessToken']}"})
            assert r.status_code == 401
            # an observer may not log others out (token.manage), nor can anyone unauthenticated
            watch = (await rpc(c, NS + "login", {"apiKey": "key-watch"}))["result"]
            denied = await rpc(c, NS + "logout", {"refreshToken": watch["refreshToken"]},
                               watch["accessToken"])
            assert denied["error"]["code"] == -32040
            r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": NS + "logout",
                                        "params": {}})
            assert r.status_code == 401
            # a batch that mixes a public method with others needs auth
            r = await c.post("/", headers={"A2A-Version": "1.0"}, json=[
                {"jsonrpc": "2.0", "id": 1, "method": NS + "login",
                 "params": {"apiKey": "key-alice"}},
                {"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {}}])
            assert r.status_code == 401
        surviving = second["accessToken"]
    # revocations are durable: after a restart the revoked family stays revoked
    async with open_server(config(tmp_path)) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(10):
            r = await c.get("/tasks", headers={"Authorization": f"Bearer {surviving}"})
            assert r.status_code == 401
            reuse = await rpc(c, NS + "refresh", {"refreshToken": first["refreshToken"]})
            assert reuse["error"]["code"] == -32043


async def test_over_http_json(tmp_path: Path) -> None:
    async with open_server(config(tmp_path)) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        with trio.fail_after(20):
            r = await c.post("/tokens:login", json={"apiKey": "wrong"})
            assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
            r = await c.post("/tokens:login", json={})
            assert r.status_code == 400 and "apiKey" in r.text
            r = await c.post("/tokens:login", content=b"{not json")
            assert r.status_code == 400
            pair = (await c.post("/tokens:login", json={"apiKey": "key-alice"})).json()
            auth = {"Authorization": f"Bearer {pair['accessToken']}", "A2A-Version": "1.0"}
            assert (await c.get("/tasks", headers=auth)).status_code == 200
            new = (await c.post("/tokens:refresh",
                                json={"refreshToken": pair["refreshToken"]})).json()
            assert "accessToken" in new
            r = await c.post("/tokens:verify", json={"token": new["accessToken"]})
            assert r.status_code == 401  # verify needs a caller
            r = await c.post("/tokens:verify", json={"token": new["accessToken"]},
                             headers={"Authorization": "Bearer key-watch"})
            assert r.json()["active"] is True
            r = await c.post("/tokens:logout", json={"refreshToken": new["refreshToken"]},
                             headers={"Authorization": f"Bearer {new['accessToken']}"})
            assert r.json() == {"revoked": True}
            r = await c.get("/tasks", headers={**auth, "Authorization":
                                               f"Bearer {new['accessToken']}"})
            assert r.status_code == 401


async def test_expired_tokens_are_refused() -> None:
    async with open_revocations(None) as revocations:
        past = TokenService(SETTINGS, revocations,
                            lambda k: None, clock=lambda: 1_000_000.0)
        now = TokenService(SETTINGS, revocations, lambda k: None)
        from protocol.identity import Identity
        pair = past._issue(Identity("alice"), "fam")
        assert await past.identify(pair["accessToken"]) is None  # expired long ago
        fresh = now._issue(Identity("alice"), "fam2")
        who = await now.identify(fresh["accessToken"])
        assert who is not None and who.principal == "alice" and who.via == "token-service"
        other = TokenService(TokenServiceSettings(secret="o" * 40), revocations,
                             lambda k: None)
        assert await other.identify(fresh["accessToken"]) is None  # another service's


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenServiceSettings(secret="short")
    with pytest.raises(ValueError, match="lifetimes"):
        TokenServiceSettings(secret="t" * 40, access_ttl=100, refresh_ttl=10)
