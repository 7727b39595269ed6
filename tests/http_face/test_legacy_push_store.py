"""A2A 0.1 push-config methods, and 0.1/0.2 tasks kept across a restart (SQLite)."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.http_face.legacy_client import LegacyClient, task_send, text

HOOK = {"url": "http://127.0.0.1:9/hook", "token": "tok-1",
        "authentication": {"schemes": ["Bearer"], "credentials": "c-1"}}


async def test_push_notification_set_and_get(client: httpx.AsyncClient) -> None:
    old = LegacyClient(client)
    with trio.fail_after(10):
        await old.call("tasks/send", task_send("ps-1", text("ask")))
        set_ = await old.call("tasks/pushNotification/set",
                              {"id": "ps-1", "pushNotificationConfig": HOOK})
        got = await old.call("tasks/pushNotification/get", {"id": "ps-1"})
        bad = await old.error("tasks/pushNotification/set",
                              {"id": "ps-1", "pushNotificationConfig": {"token": "t"}})
        unknown = await old.error("tasks/pushNotification/set",
                                  {"id": "nope", "pushNotificationConfig": HOOK})
        none = await old.error("tasks/pushNotification/get", {"id": "nope"})
    assert set_ == got == {"id": "ps-1", "pushNotificationConfig": HOOK}
    assert bad["code"] == -32602 and "params.pushNotificationConfig.url" in bad["message"]
    assert unknown["code"] == none["code"] == -32001


async def test_push_methods_with_push_off() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), push_notifications=False)
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        old = LegacyClient(c)
        with trio.fail_after(10):
            on_send = await old.error("tasks/send", task_send("po-1", text("ask"),
                                                              pushNotification=HOOK))
            await old.call("tasks/send", task_send("po-1", text("ask")))
            on_set = await old.error("tasks/pushNotification/set",
                                     {"id": "po-1", "pushNotificationConfig": HOOK})
    assert on_send["code"] == on_set["code"] == -32003


async def test_push_methods_never_reach_another_principals_task() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          allow_private_push_urls=True, tokens={"tok-a": "alice", "tok-b": "bob"})
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        alice = LegacyClient(c, {"Authorization": "Bearer tok-a"})
        bob = LegacyClient(c, {"Authorization": "Bearer tok-b"})
        with trio.fail_after(10):
            await alice.call("tasks/send", task_send("pa-1", text("ask"), pushNotification=HOOK))
            get = await bob.error("tasks/pushNotification/get", {"id": "pa-1"})
            set_ = await bob.error("tasks/pushNotification/set",
                                   {"id": "pa-1", "pushNotificationConfig": {"url": "http://x/"}})
            mine = await alice.call("tasks/pushNotification/get", {"id": "pa-1"})
    assert get["code"] == set_["code"] == -32001
    assert mine["pushNotificationConfig"] == HOOK


async def test_old_shape_tasks_survive_a_restart(tmp_path: Path) -> None:
    config = ServerConfig(port=0, store="sqlite", data_dir=tmp_path, agent=scripted_agent())
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            await LegacyClient(c).call("tasks/send", task_send(
                "keep-1", {"type": "file", "fileName": "a.bin", "data": "aGk="}, text("ask"),
                session_id="s-keep"))
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            old = LegacyClient(c)
            got = await old.call("tasks/get", {"id": "keep-1"})
            done = await old.call("tasks/send", task_send("keep-1", text("ask Ada"),
                                                          session_id="s-keep"))
            again = await old.error("tasks/send", task_send("keep-1", text("ask")))
    assert got["sessionId"] == "s-keep" and got["status"]["state"] == "input-required"
    assert got["history"][0]["parts"][0] == {"type": "file", "fileName": "a.bin", "data": "aGk="}
    assert done["status"]["state"] == "completed"
    assert done["artifacts"][0]["parts"] == [text("answer: ask Ada")]
    assert again["code"] == -32004
