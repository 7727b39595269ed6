"""The static token file: roles and tenant per token, and every mistake an error at
start naming the file and line (never auth silently off, never the token)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from runtime.cli import server_config
from runtime.flags import build_parser
from runtime.http.auth import TokenEntry, load_token_entries, load_tokens
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message


def test_attributes_give_roles_and_tenant(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops\nalice:tok-a roles=admin,observer tenant=acme\nbob:tok-b\n"
                 "carol:tok-c   tenant=globex\n")
    assert load_token_entries(f, None) == {
        "tok-a": TokenEntry("alice", ("admin", "observer"), "acme"),
        "tok-b": TokenEntry("bob"),
        "tok-c": TokenEntry("carol", None, "globex"),
    }
    assert load_tokens(f, None) == {"tok-a": "alice", "tok-b": "bob", "tok-c": "carol"}


@pytest.mark.parametrize(("text", "error"), [
    ("", "holds no tokens"),
    ("# only a comment\n\n", "holds no tokens"),
    ("alice:tok-a\nbroken-line-secret\n", "line 2: expected 'principal:token'"),
    ("alice:tok-a colour=red\n", "line 1: unknown attribute 'colour'"),
    ("alice:tok-a tenant=a tenant=b\n", "line 1: attribute 'tenant' given twice"),
    ("alice:tok-a roles=\n", "line 1: roles must not be empty"),
    ("alice:tok-a\nbob:tok-a\n", "line 2: token already belongs to 'alice'"),
])
def test_bad_files_are_refused_naming_file_and_line(tmp_path: Path, text: str,
                                                    error: str) -> None:
    f = tmp_path / "tokens"
    f.write_text(text)
    with pytest.raises(ValueError, match=error) as info:
        load_token_entries(f, None)
    assert str(f) in str(info.value)
    assert "secret" not in str(info.value)


def test_cli_refuses_unknown_roles_and_bad_limits(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("alice:tok-a roles=superuser\n")
    args = build_parser().parse_args(["server", "--tokens-file", str(f)])
    with pytest.raises(ValueError, match="principal 'alice': unknown role"):
        server_config(args)
    f.write_text("alice:tok-a roles=observer tenant=acme\n")
    args = build_parser().parse_args(["server", "--tokens-file", str(f), "--rate-limit", "x"])
    with pytest.raises(ValueError, match="--rate-limit"):
        server_config(args)
    roles = tmp_path / "roles.json"
    roles.write_text('{"auditor": ["task.get", "task.steal"]}')
    args = build_parser().parse_args(["server", "--roles-file", str(roles)])
    with pytest.raises(ValueError, match="role 'auditor': unknown permission"):
        server_config(args)
    roles.write_text('{"auditor": ["task.get", "task.list"]}')
    args = build_parser().parse_args(["server", "--tokens-file", str(f), "--roles-file",
                                      str(roles), "--rate-limit", "10/s,20",
                                      "--cors-origins", "https://app.test"])
    sec = server_config(args).security
    assert sec.token_entries["tok-a"] == TokenEntry("alice", ("observer",), "acme")
    assert sec.role_table().permissions(["auditor"]) == {"task.get", "task.list"}
    assert sec.rate_limit is not None and sec.rate_limit.burst == 20
    assert sec.cors is not None and sec.cors.origins == ("https://app.test",)


async def test_open_server_refuses_an_unknown_role() -> None:
    config = ServerConfig(port=0, store="memory", tokens={"t": "alice"},
                          security=SecurityConfig(default_roles=("nobody",)))
    with pytest.raises(ValueError, match="default roles: unknown role"):
        async with open_server(config):
            pass


async def test_token_roles_and_tenant_apply_on_the_server() -> None:
    entries = {"tok-ops": TokenEntry("alice", ("operator",), "acme"),
               "tok-view": TokenEntry("alice", ("observer",), "acme"),
               "tok-other": TokenEntry("alice", ("operator",), "globex")}
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in entries.items()},
                          security=SecurityConfig(token_entries=entries))
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        def h(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}

        def rpc(method: str, params: dict) -> dict:
            return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

        with trio.fail_after(10):
            r = await c.post("/", json=rpc("SendMessage", {"message": user_message("hi")}),
                             headers=h("tok-ops"))
            task_id = r.json()["result"]["task"]["id"]
            r = await c.post("/", json=rpc("GetTask", {"id": task_id}), headers=h("tok-view"))
            assert r.json()["result"]["id"] == task_id  # same principal and tenant: reads
            r = await c.post("/", json=rpc("CancelTask", {"id": task_id}),
                             headers=h("tok-view"))
            assert r.json()["error"]["code"] == -32040  # an observer does not cancel
            assert task_id not in r.text
            r = await c.post("/", json=rpc("GetTask", {"id": task_id}), headers=h("tok-other"))
            assert r.json()["error"]["code"] == -32001  # same name, other tenant: not found
