"""A2A 0.1/0.2 `tasks/send` with client-chosen ids, as gateways send it, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.http_face.legacy_client import LegacyClient, task_send, text

FLAT_PARTS = [
    text("echo flat parts"),
    {"type": "data", "mimeType": "application/json", "data": '{"branch":"main"}'},
    {"type": "file", "mimeType": "text/plain", "fileName": "notes.txt", "data": "aGVsbG8="},
]
SCHEMA_PARTS = [
    text("echo schema parts"),
    {"type": "data", "data": {"branch": "main"}},
    {"type": "file", "file": {"name": "notes.txt", "mimeType": "text/plain", "bytes": "aGVsbG8="}},
]


@pytest.fixture
def old(client: httpx.AsyncClient) -> LegacyClient:
    return LegacyClient(client)


async def test_gateway_send_keeps_id_and_session_and_answers_in_flat_shape(
        old: LegacyClient) -> None:
    with trio.fail_after(10):
        task = await old.call("tasks/send", task_send("gw-1", *FLAT_PARTS, session_id="sess-1"),
                              path="/tasks/send")
    assert task["id"] == "gw-1"
    assert task["sessionId"] == "sess-1"
    assert task["status"]["state"] == "completed"
    assert "kind" not in task and "contextId" not in task
    assert task["history"][0]["role"] == "user"
    assert task["history"][0]["parts"] == FLAT_PARTS  # as sent, marker stripped
    assert "metadata" not in task["history"][0]
    art = task["artifacts"][0]
    assert art["index"] == 0 and art["name"] == "echo"
    assert "".join(p["text"] for p in art["parts"]) == "echo flat parts"
    assert all(p["type"] == "text" for p in art["parts"])


async def test_schema_shape_on_root_round_trips_and_get_answers_in_it(old: LegacyClient) -> None:
    with trio.fail_after(10):
        task = await old.call("tasks/send", task_send("s-1", *SCHEMA_PARTS,
                                                      acceptedOutputModes=["text"]))
        got = await old.call("tasks/get", {"id": "s-1"})
        got_short = await old.call("tasks/get", {"id": "s-1", "historyLength": 1})
    assert task["history"][0]["parts"] == SCHEMA_PARTS
    assert task["sessionId"]  # generated when the client sends none
    assert got["id"] == "s-1" and got["sessionId"] == task["sessionId"]
    assert got["history"][0]["parts"] == SCHEMA_PARTS
    assert len(got_short["history"]) == 1


async def test_a_03_task_keeps_the_03_shape_on_root(old: LegacyClient) -> None:
    params = {"message": {"kind": "message", "messageId": "m-1", "role": "user",
                          "parts": [{"kind": "text", "text": "echo new"}]}}
    with trio.fail_after(10):
        task = await old.call("tasks/send", params)  # the 0.2 alias of message/send
        got = await old.call("tasks/get", {"id": task["id"]})
        on_gateway = await old.call("tasks/get", {"id": task["id"]}, path="/tasks/get")
    assert task["kind"] == "task" and got["kind"] == "task" and "sessionId" not in got
    assert on_gateway["sessionId"] == task["contextId"] and "kind" not in on_gateway


async def test_message_id_added_keeps_the_clients_ids(old: LegacyClient) -> None:
    params = task_send("m-2", text("echo hi"), session_id="sess-m")
    params["message"]["messageId"] = "msg-7"
    with trio.fail_after(10):
        task = await old.call("tasks/send", params)
    assert (task["id"], task["sessionId"]) == ("m-2", "sess-m")
    assert task["history"][0]["messageId"] == "msg-7"


async def test_follow_up_continues_an_input_required_task(old: LegacyClient) -> None:
    with trio.fail_after(10):
        first = await old.call("tasks/send", task_send("ask-1", text("ask"), session_id="s"))
        assert first["status"]["state"] == "input-required"
        assert first["status"]["message"]["parts"] == [text("what is your name?")]
        done = await old.call("tasks/send", task_send("ask-1", text("ask Ada"), session_id="s"))
        again = await old.error("tasks/send", task_send("ask-1", text("ask again")))
    assert done["id"] == "ask-1" and done["status"]["state"] == "completed"
    assert done["artifacts"][0]["parts"] == [text("answer: ask Ada")]
    assert [m["role"] for m in done["history"]] == ["user", "agent", "user"]
    assert again["code"] == -32004  # completed now: a new id starts a new task


async def test_terminal_task_refuses_a_resend(old: LegacyClient) -> None:
    with trio.fail_after(10):
        await old.call("tasks/send", task_send("done-1", text("echo once")))
        err = await old.error("tasks/send", task_send("done-1", text("echo twice")))
    assert err["code"] == -32004
    assert "completed" in err["message"] and "new id" in err["message"]


async def test_session_id_conflicting_with_the_task_is_refused(old: LegacyClient) -> None:
    with trio.fail_after(10):
        await old.call("tasks/send", task_send("ctx-1", text("ask"), session_id="a"))
        err = await old.error("tasks/send", task_send("ctx-1", text("ask X"), session_id="b"))
        still = await old.call("tasks/get", {"id": "ctx-1"})
    assert err["code"] == -32602
    assert "params.sessionId 'b'" in err["message"] and "'a'" in err["message"]
    assert still["status"]["state"] == "input-required" and len(still["history"]) == 1


async def test_resend_to_a_working_task_is_refused(old: LegacyClient, controls: Controls
                                                   ) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def first() -> None:
                results.append(await old.call("tasks/send", task_send("w-1", text("wait"))))

            nursery.start_soon(first)
            await controls.wait_started("w-1")
            err = await old.error("tasks/send", task_send("w-1", text("echo more")))
            controls.gate.set()
    assert err["code"] == -32004 and "still" in err["message"]
    assert results[0]["status"]["state"] == "completed"


async def test_two_creates_of_one_id_make_one_task(old: LegacyClient, controls: Controls
                                                   ) -> None:
    outcomes: list[dict[str, Any]] = []
    one_answered = trio.Event()

    async def send() -> None:
        outcomes.append(await old.raw("tasks/send", task_send("race-1", text("wait"))))
        one_answered.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(send)
            await controls.wait_started("race-1")
            await one_answered.wait()  # the refused one: the other waits for the gate
            controls.gate.set()
    assert sorted("error" in o for o in outcomes) == [False, True]
    assert [o["error"]["code"] for o in outcomes if "error" in o] == [-32004]
    assert controls.started == ["race-1"]


async def test_direct_reply_is_the_status_message(old: LegacyClient) -> None:
    with trio.fail_after(10):
        task = await old.call("tasks/send", task_send("r-1", text("reply hello")))
    assert task["status"]["state"] == "completed"
    assert task["status"]["message"] == {"role": "agent", "parts": [text("direct: hello")],
                                         "messageId": task["history"][-1]["messageId"]}


async def test_push_notification_becomes_the_tasks_config(old: LegacyClient) -> None:
    push = {"url": "http://127.0.0.1:9/hook", "token": "tok-1"}
    with trio.fail_after(10):
        await old.call("tasks/send", task_send("p-1", text("echo push"), pushNotification=push))
        cfg = await old.call("tasks/pushNotificationConfig/get", {"id": "p-1"})
    assert cfg["taskId"] == "p-1"
    assert cfg["pushNotificationConfig"]["url"] == push["url"]
    assert cfg["pushNotificationConfig"]["token"] == "tok-1"


@pytest.mark.parametrize(("params", "field", "words"), [
    (task_send("b-1", {"type": "image", "url": "x"}), "params.message.parts[0].type",
     "'text', 'file' or 'data'"),
    (task_send("b-2", {"type": "file", "fileName": "a", "data": "not base64!"}),
     "params.message.parts[0]", "base64"),
    (task_send("b-3", {"type": "file", "file": {"bytes": "%%%"}}),
     "params.message.parts[0].file.bytes", "base64"),
    (task_send("b-4", {"type": "text"}), "params.message.parts[0]", "text part needs"),
    (task_send("b-5", {"type": "data"}), "params.message.parts[0]", "data part needs"),
    (task_send("b-6"), "params.message.parts", "at least 1"),
    (task_send("bad/id", text("x")), "params.id", "letters, digits"),
    (task_send("", text("x")), "params.id", "letters, digits"),
    (task_send("b-7", text("x"), session_id=""), "params.sessionId", "at least 1"),
    ({"id": "b-8", "message": {"role": "robot", "parts": [text("x")]}},
     "params.message.role", "'user' or 'agent'"),
    (task_send("b-9", text("x"), pushNotification={"token": "t"}),
     "params.pushNotification.url", "required"),
])
async def test_bad_params_name_the_field(old: LegacyClient, params: dict[str, Any], field: str,
                                         words: str) -> None:
    with trio.fail_after(10):
        err = await old.error("tasks/send", params)
        gateway = await old.error("tasks/send", params, path="/tasks/send")
    assert err["code"] == gateway["code"] == -32602
    assert field in err["message"] and words in err["message"], err["message"]


async def test_private_push_url_is_refused() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent())
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        old = LegacyClient(c)
        with trio.fail_after(10):
            err = await old.error("tasks/send", task_send(
                "pp-1", text("echo"), pushNotification={"url": "http://127.0.0.1:1/x"}))
            missing = await old.error("tasks/get", {"id": "pp-1"})
    assert err["code"] == -32602 and "127.0.0.1" in err["message"], err
    assert missing["code"] == -32001  # nothing was stored


async def test_ambiguous_shape_names_both_and_what_is_accepted(old: LegacyClient) -> None:
    params = task_send("amb-1", {"kind": "text", "text": "hi"}, session_id="s")
    with trio.fail_after(10):
        err = await old.error("tasks/send", params)
        streamed = await old.stream("tasks/sendSubscribe", params)
    assert err["code"] == -32602
    for words in ("params.id", "params.sessionId", "params.message.parts[0].kind",
                  "A2A 0.1/0.2", "A2A 0.3", "Accepted:"):
        assert words in err["message"]
    assert streamed[0]["error"]["code"] == -32602  # 0.3 streams answer errors in the stream


TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", tokens=TOKENS, agent=scripted_agent())
    async with open_server(config) as srv:
        yield srv


async def test_a_client_id_never_reaches_another_principals_task(secured: RunningServer
                                                                 ) -> None:
    async with httpx.AsyncClient(base_url=secured.url, timeout=10) as c:
        alice = LegacyClient(c, {"Authorization": "Bearer tok-alice"})
        bob = LegacyClient(c, {"Authorization": "Bearer tok-bob"})
        with trio.fail_after(10):
            await alice.call("tasks/send", task_send("shared-1", text("ask"), session_id="s"))
            taken = await bob.error("tasks/send", task_send("shared-1", text("ask Mallory"),
                                                            session_id="s"))
            on_path = await bob.error("tasks/send", task_send("shared-1", text("ask M")),
                                      path="/tasks/send")
            hidden = await bob.error("tasks/get", {"id": "shared-1"}, path="/tasks/get")
            cancel = await bob.error("tasks/cancel", {"id": "shared-1"}, path="/tasks/cancel")
            mine = await alice.call("tasks/get", {"id": "shared-1"})
    assert taken["code"] == on_path["code"] == -32602
    assert "already taken" in taken["message"] and "Mallory" not in str(taken)
    assert hidden["code"] == cancel["code"] == -32001
    assert mine["status"]["state"] == "input-required" and len(mine["history"]) == 1
