"""What A2A 1.0.1 (and 0.3's own text) say, where earlier readings differed.

Real server on loopback; each test names the section it checks.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
import trio

from protocol.sse import SSEEvent
from tests.conftest import Rpc, user_message, user_message_v03
from tests.http_face.test_rest import sse

TIMEOUT = 10
A2A_JSON = "application/a2a+json"


async def _read_sse(client: httpx.AsyncClient, method: str, path: str, *,
                    json_body: Any = None, headers: dict[str, str] | None = None,
                    started: trio.Event | None = None) -> list[SSEEvent]:
    """The whole stream (test_rest.sse), setting `started` at its first event."""

    async def on_event(_: SSEEvent) -> None:
        if started is not None:
            started.set()

    return await sse(client, method, path, json_body=json_body, headers=headers,
                     on_event=on_event)


def _state(result: dict[str, Any]) -> str:
    body = result.get("task") or result.get("statusUpdate") or {}
    return body["status"]["state"]


# --- §3.1.6: SubscribeToTask follows a paused task until it is terminal -------------


@pytest.mark.parametrize(("command", "paused"), [
    ("ask", "TASK_STATE_INPUT_REQUIRED"),
    ("auth", "TASK_STATE_AUTH_REQUIRED"),
])
@pytest.mark.parametrize("binding", ["jsonrpc", "rest"])
async def test_subscribe_to_a_paused_task_stays_open_until_it_ends(
    rpc: Rpc, command: str, paused: str, binding: str
) -> None:
    with trio.fail_after(TIMEOUT):
        task = (await rpc.call("SendMessage", {"message": user_message(command)}))["task"]
        assert task["status"]["state"] == paused
        started = trio.Event()
        got: list[SSEEvent] = []

        async def subscribe() -> None:
            if binding == "jsonrpc":
                body = {"jsonrpc": "2.0", "id": 7, "method": "SubscribeToTask",
                        "params": {"id": task["id"]}}
                got.extend(await _read_sse(rpc.client, "POST", "/", json_body=body,
                                           headers={"A2A-Version": "1.0"}, started=started))
            else:
                got.extend(await _read_sse(rpc.client, "POST", f"/tasks/{task['id']}:subscribe",
                                           headers={"A2A-Version": "1.0"}, started=started))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscribe)
            await started.wait()
            # the stream is still open after the snapshot of the paused task
            reply = user_message(f"{command} Ada", taskId=task["id"])
            done = await rpc.call("SendMessage", {"message": reply})
            assert done["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    results = [json.loads(e.data) for e in got]
    if binding == "jsonrpc":
        results = [r["result"] for r in results]
    assert _state(results[0]) == paused and "task" in results[0]
    states = [_state(r) for r in results if "task" in r or "statusUpdate" in r]
    assert "TASK_STATE_WORKING" in states
    assert states[-1] == "TASK_STATE_COMPLETED"
    assert [int(e.id or 0) for e in got] == sorted(int(e.id or 0) for e in got)


async def test_0_3_resubscribe_still_ends_at_a_pause(rpc: Rpc, rpc03: Rpc) -> None:
    """0.3 marks the pause `final`; its stream ends there as 0.3 clients expect."""
    with trio.fail_after(TIMEOUT):
        task = (await rpc.call("SendMessage", {"message": user_message("ask")}))["task"]
        events = await rpc03.stream("tasks/resubscribe", {"id": task["id"]})
    assert len(events) == 1
    assert json.loads(events[0].data)["result"]["status"]["state"] == "input-required"


# --- §3.1.10: deleting a push config is idempotent ----------------------------------


CFG = {"id": "c1", "url": "https://push.example/hook"}


async def test_delete_push_config_twice_succeeds_on_every_binding(
    client: httpx.AsyncClient, rpc: Rpc, rpc03: Rpc
) -> None:
    with trio.fail_after(TIMEOUT):
        task = (await rpc.call("SendMessage", {"message": user_message("ask")}))["task"]
        tid = task["id"]
        for _ in range(2):  # the second time the config is already gone
            await rpc.call("CreateTaskPushNotificationConfig", {**CFG, "taskId": tid})
            for _ in range(2):
                assert await rpc.call("DeleteTaskPushNotificationConfig",
                                      {"taskId": tid, "id": "c1"}) == {}
        await rpc.call("CreateTaskPushNotificationConfig", {**CFG, "taskId": tid})
        for _ in range(2):
            assert await rpc03.call("tasks/pushNotificationConfig/delete",
                                    {"id": tid, "pushNotificationConfigId": "c1"}) is None
        await rpc.call("CreateTaskPushNotificationConfig", {**CFG, "taskId": tid})
        for path, headers in ((f"/tasks/{tid}/pushNotificationConfigs/c1", {"A2A-Version": "1.0"}),
                              (f"/v1/tasks/{tid}/pushNotificationConfigs/c1", {})):
            for _ in range(2):
                r = await client.delete(path, headers=headers)
                assert r.status_code == 200, r.text
        # an unknown task is still an error: nothing to be idempotent about
        err = await rpc.error("DeleteTaskPushNotificationConfig", {"taskId": "nope", "id": "c1"})
        assert err["code"] == -32001
        r = await client.delete("/tasks/nope/pushNotificationConfigs/c1")
        assert r.status_code == 404


# --- §11.1: the JSON media type is answered in kind -----------------------------------


@pytest.mark.parametrize("media", ["application/json", A2A_JSON])
async def test_json_rpc_answers_in_the_media_type_of_the_request(
    client: httpx.AsyncClient, media: str
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message("echo hi")}}
    bad = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": "nope"}}
    with trio.fail_after(TIMEOUT):
        ok = await client.post("/", content=json.dumps(body),
                               headers={"Content-Type": media, "A2A-Version": "1.0"})
        err = await client.post("/", content=json.dumps(bad),
                                headers={"Content-Type": media, "A2A-Version": "1.0"})
    assert ok.headers["content-type"] == media
    assert ok.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert err.headers["content-type"] == media
    assert err.json()["error"]["code"] == -32001


@pytest.mark.parametrize("media", ["application/json", A2A_JSON])
async def test_rest_answers_in_the_media_type_of_the_request(
    client: httpx.AsyncClient, media: str
) -> None:
    body = json.dumps({"message": user_message("echo hi")})
    headers = {"Content-Type": media, "A2A-Version": "1.0"}
    with trio.fail_after(TIMEOUT):
        sent = await client.post("/message:send", content=body, headers=headers)
        missing = await client.post("/tasks/nope:cancel", content="{}", headers=headers)
        got = await client.get(f"/tasks/{sent.json()['task']['id']}",
                               headers={"Accept": media, "A2A-Version": "1.0"})
        anything = await client.get("/tasks", headers={"Accept": "*/*"})
    assert sent.status_code == 200 and sent.headers["content-type"] == media
    assert missing.status_code == 404 and missing.headers["content-type"] == media
    assert got.status_code == 200 and got.headers["content-type"] == media
    assert anything.headers["content-type"] == A2A_JSON  # the spec's SHOULD by default


# --- 0.3 §7.2, §7.9: a refused 0.3 stream is an SSE error event, not a 200 JSON body ---


async def test_0_3_resubscribe_to_unknown_or_ended_task_is_an_sse_error(rpc03: Rpc) -> None:
    with trio.fail_after(TIMEOUT):
        done = await rpc03.call("message/send", {"message": user_message_v03("echo x")})
        unknown = await rpc03.stream("tasks/resubscribe", {"id": "nope"})
        ended = await rpc03.stream("tasks/resubscribe", {"id": done["id"]})
        bad = await rpc03.stream("message/stream", {"message": {"parts": "no"}})
    for events, code in ((unknown, -32001), (ended, -32004), (bad, -32602)):
        assert len(events) == 1 and events[0].event in (None, "", "message")
        payload = json.loads(events[0].data)
        assert payload["jsonrpc"] == "2.0" and payload["error"]["code"] == code, payload
        assert "result" not in payload


# --- the agent card's validators ------------------------------------------------------


async def test_card_has_last_modified_and_honours_if_modified_since(
    client: httpx.AsyncClient
) -> None:
    with trio.fail_after(TIMEOUT):
        first = await client.get("/.well-known/agent-card.json")
        stamp = first.headers["last-modified"]
        again = await client.get("/.well-known/agent-card.json",
                                 headers={"If-Modified-Since": stamp})
        older = await client.get("/.well-known/agent-card.json",
                                 headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        tag_wins = await client.get("/.well-known/agent-card.json",
                                    headers={"If-None-Match": '"other"',
                                             "If-Modified-Since": stamp})
        garbage = await client.get("/.well-known/agent-card.json",
                                   headers={"If-Modified-Since": "yesterday"})
    assert first.status_code == 200 and first.headers["etag"]
    assert parsedate_to_datetime(stamp).tzinfo is not None
    assert again.status_code == 304 and again.headers["last-modified"] == stamp
    assert older.status_code == 200
    assert tag_wins.status_code == 200  # If-None-Match decides when both are sent
    assert garbage.status_code == 200


# --- bad input: a WebSocket to a path that serves none ---------------------------------


async def test_websocket_to_an_unknown_path_is_404_not_500(client: httpx.AsyncClient,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    from trio_websocket import ConnectionRejected, open_websocket_url

    url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/not/here"
    with trio.fail_after(TIMEOUT), pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url):
            pass
    assert rejected.value.status_code == 404
    assert b"no WebSocket endpoint at /not/here" in (rejected.value.body or b"")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
