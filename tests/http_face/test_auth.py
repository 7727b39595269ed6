"""Bearer-token auth: 401 without a valid token, and principals never see each other's tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from runtime.http.auth import TokenAuth, load_tokens, parse_token_lines
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import Rpc, user_message

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", tokens=TOKENS, agent=scripted_agent())
    async with open_server(config) as srv:
        yield srv


def rpc_for(client: httpx.AsyncClient, token: str | None) -> Rpc:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Rpc(client, "1.0", headers=headers)


async def test_requests_without_valid_token_get_401(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        with trio.fail_after(10):
            body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
                            {"Authorization": "tok-alice"}]:
                r = await c.post("/", json=body, headers={"A2A-Version": "1.0", **headers})
                assert r.status_code == 401, headers
                assert r.headers["www-authenticate"].startswith("Bearer")
            card = await c.get("/.well-known/agent-card.json")  # the card stays public
            assert card.status_code == 200


async def test_card_declares_bearer_scheme(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        card = (await c.get("/.well-known/agent-card.json")).json()
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert card["securitySchemes"]["bearer"]["type"] == "http"  # 0.3 readers
    assert card["securityRequirements"] == [{"schemes": {"bearer": {"list": []}}}]
    assert card["security"] == [{"bearer": []}]
    assert card["capabilities"]["extendedAgentCard"] is True


async def test_principals_are_isolated(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        alice, bob = rpc_for(c, "tok-alice"), rpc_for(c, "tok-bob")
        with trio.fail_after(10):
            task = (await alice.call("SendMessage", {"message": user_message("ask")}))["task"]
            assert (await alice.call("GetTask", {"id": task["id"]}))["id"] == task["id"]
            for method, params in [
                ("GetTask", {"id": task["id"]}),
                ("CancelTask", {"id": task["id"]}),
                ("SendMessage", {"message": user_message("x", taskId=task["id"])}),
                ("CreateTaskPushNotificationConfig", {"taskId": task["id"],
                                                      "url": "https://example.com/h"}),
                ("ListTaskPushNotificationConfigs", {"taskId": task["id"]}),
            ]:
                err = await bob.error(method, params)
                assert err["code"] == -32001, method
            err = await bob.stream_error("SubscribeToTask", {"id": task["id"]})
            assert err["code"] == -32001
            assert (await bob.call("ListTasks", {}))["tasks"] == []
            assert [t["id"] for t in (await alice.call("ListTasks", {}))["tasks"]] == [task["id"]]
            # alice's task is untouched by bob's attempts
            still = await alice.call("GetTask", {"id": task["id"]})
            assert still["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"


async def test_extended_card_needs_auth_and_is_served(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as c:
        card = await rpc_for(c, "tok-alice").call("GetExtendedAgentCard", {})
        assert card["name"] == "scripted"
        v03 = Rpc(c, None, headers={"Authorization": "Bearer tok-bob"})
        card03 = await v03.call("agent/getAuthenticatedExtendedCard", {})
        assert card03["url"].startswith(secured.url)


async def test_extended_card_not_configured_without_auth(rpc: Rpc) -> None:
    err = await rpc.error("GetExtendedAgentCard", {})
    assert err["code"] == -32007


def test_token_parsing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "tokens"
    f.write_text("# team tokens\nalice:aaa\n\n  # indented comment\nbob: bbb \n")
    tokens = load_tokens(f, "carol:ccc,dave:ddd")
    assert tokens == {"aaa": "alice", "bbb": "bob", "ccc": "carol", "ddd": "dave"}
    with pytest.raises(ValueError, match="entry 1"):
        parse_token_lines(["alice:"], source="x")
    with pytest.raises(ValueError, match="cannot read token file"):
        load_tokens(tmp_path / "missing", None)
    auth = TokenAuth(tokens)
    assert auth.principal("Bearer aaa") == "alice"
    assert auth.principal("bearer  ddd ") == "dave"
    assert auth.principal("Bearer nope") is None
    assert auth.principal(None) is None
    assert TokenAuth({}).principal(None) == ""


def test_bare_tokens_and_files_without_tokens_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "tokens"
    f.write_text("# team tokens\nalice:aaa\nloose-token\n")
    with pytest.raises(ValueError) as info:
        load_tokens(f, None)
    assert str(info.value) == f"{f} line 3: expected 'principal:token' (no ':' found)"
    with pytest.raises(ValueError, match=r"^TRIO_A2A_TOKENS entry 2: expected 'principal:token' "
                       r"\(no ':' found\)$"):
        load_tokens(None, "carol:ccc,loose-token")
    for text in ("", "\n  \n# only comments\n"):
        f.write_text(text)
        with pytest.raises(ValueError) as info:
            load_tokens(f, None)
        assert str(info.value) == (f"{f} holds no tokens: expected one 'principal:token' per "
                                   "line (blank lines and '#' comments are skipped)")
    assert load_tokens(None, "") == {}  # an empty variable: auth off, as documented
