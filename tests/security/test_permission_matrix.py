"""Every role x every operation x every binding (JSON-RPC 1.0 and 0.3, HTTP+JSON): the
operation succeeds when the role's permissions allow it, and is refused with -32040
(HTTP 403 PERMISSION_DENIED) when they do not, saying nothing about the task."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from protocol.permissions import OPERATIONS as RPC_OPERATIONS
from protocol.permissions import PERMISSIONS, REST_OPERATIONS, ROLES, RoleTable
from runtime.http.auth import TokenEntry
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message
from tests.security.matrix import (
    BINDINGS,
    OPERATIONS,
    PERMISSION_OF,
    Ids,
    is_permission_refusal,
    perform,
)

ENTRIES = {f"tok-{role}": TokenEntry("pat", (role,)) for role in ROLES}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), keepalive=60,
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          security=SecurityConfig(token_entries=ENTRIES))
    async with open_server(config) as srv:
        yield srv


async def _new_task(c: httpx.AsyncClient) -> str:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message("ask")}}
    r = await c.post("/", json=body, headers={"Authorization": "Bearer tok-admin",
                                              "A2A-Version": "1.0"})
    return r.json()["result"]["task"]["id"]


async def _new_config(c: httpx.AsyncClient, task_id: str, config_id: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "CreateTaskPushNotificationConfig",
            "params": {"taskId": task_id, "id": config_id, "url": "https://example.com/h"}}
    r = await c.post("/", json=body, headers={"Authorization": "Bearer tok-admin",
                                              "A2A-Version": "1.0"})
    assert "result" in r.json(), r.text


async def test_every_role_every_operation_every_binding(server: RunningServer) -> None:
    table = RoleTable()
    seen: set[tuple[str, str, str]] = set()
    async with httpx.AsyncClient(base_url=server.url) as c:
        with trio.fail_after(120):
            shared = await _new_task(c)
            for n, (op, role, binding) in enumerate(
                    itertools.product(OPERATIONS, ROLES, BINDINGS)):
                permission = PERMISSION_OF.get(op, op)
                allowed = table.allows([role], permission)
                task = shared
                config = f"cfg-{n}"
                if allowed and op == "task.cancel":
                    task = await _new_task(c)  # a cancel ends its task
                if op in ("push.get", "push.delete"):
                    await _new_config(c, task, config)
                call = OPERATIONS[op][binding](Ids(task, config))
                out = await perform(c, call, f"tok-{role}")
                where = f"{role} {op} on {binding}: {out.status} {out.text[:300]}"
                if allowed:
                    assert out.code is None and out.status == 200, where
                else:
                    assert is_permission_refusal(out, call.rpc), where
                    assert task not in out.text and config not in out.text, where
                    assert permission in out.text, where
                seen.add((op, role, binding))
    assert len(seen) == len(OPERATIONS) * len(ROLES) * len(BINDINGS)


def test_the_table_covers_every_operation_of_every_binding() -> None:
    from runtime.http.rest import ROUTES
    from runtime.http.rpc_legacy import METHODS

    assert set(RPC_OPERATIONS) == set(METHODS["1.0"]) | set(METHODS["0.3"])
    assert set(REST_OPERATIONS) == {name for name, *_ in ROUTES}
    assert set(RPC_OPERATIONS.values()) | set(REST_OPERATIONS.values()) <= set(PERMISSIONS)
    # the permissions no A2A binding carries are granted as documented
    assert {r for r in ROLES if "worker.link" in ROLES[r]} == {"admin", "agent"}
    assert {r for r in ROLES if "admin" in ROLES[r]} == {"admin", "operator"}
    assert ROLES["guest"] == {"card.public"}
    assert all("card.public" in perms for perms in ROLES.values())


def test_configured_roles_extend_and_override() -> None:
    table = RoleTable({"auditor": ["task.get", "task.list"], "guest": []})
    assert table.allows(["auditor"], "task.list")
    assert not table.allows(["auditor"], "task.cancel")
    assert not table.allows(["guest"], "card.public")
    assert table.permissions(["auditor", "observer"]) >= {"task.subscribe", "task.get"}
    assert table.permissions(["no-such-role"]) == frozenset()
    with pytest.raises(ValueError, match="unknown permission"):
        RoleTable({"x": ["task.steal"]})
