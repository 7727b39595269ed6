"""The HTTP+JSON binding (1.0 paths and the 0.3 paths under /v1) against a real server.

Every route in both generations, SSE streams with resume, and the error shapes:
google.rpc.Status bodies with an ErrorInfo, the HTTP status of each error, the
query parameter or field a 400 is about.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio

from protocol.sse import SSEDecoder, SSEEvent
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import user_message, user_message_v03

V10 = {"A2A-Version": "1.0"}
A2A_JSON = "application/a2a+json"
TIMEOUT = 10


def send_body(text: str, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message": user_message(text)}
    if config:
        body["configuration"] = config
    return body


def proto03_message(text: str, **extra: Any) -> dict[str, Any]:
    """A 0.3 message as the 0.3 proto's JSON (what a2a-sdk's 0.3 REST client sends)."""
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "content": [{"text": text}],
            **extra}


def error_of(r: httpx.Response, status: int, grpc: str, reason: str | None) -> dict[str, Any]:
    """Check a google.rpc.Status error response; its `error` member."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["status"]) == (status, grpc), err
    assert err["message"]
    if reason is not None:
        [info] = err["details"]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert (info["reason"], info["domain"]) == (reason, "a2a-protocol.org")
    return err


OnEvent = Callable[[SSEEvent], Awaitable[None]]


async def sse(client: httpx.AsyncClient, method: str, path: str, *,
              json_body: Any = None, headers: dict[str, str] | None = None,
              on_event: OnEvent | None = None) -> list[SSEEvent]:
    """Read an SSE response to its end."""
    events: list[SSEEvent] = []
    kw: dict[str, Any] = {"headers": headers or {}}
    if json_body is not None:
        kw["json"] = json_body
    async with client.stream(method, path, **kw) as r:
        assert r.status_code == 200, (await r.aread()).decode()
        assert r.headers["content-type"].startswith("text/event-stream")
        dec = SSEDecoder()
        async for chunk in r.aiter_bytes():
            for ev in dec.feed(chunk):
                events.append(ev)
                if on_event is not None:
                    await on_event(ev)
    return events


def data(events: list[SSEEvent]) -> list[dict[str, Any]]:
    assert all(ev.event == "message" for ev in events), events
    return [json.loads(ev.data) for ev in events]


def ids(events: list[SSEEvent]) -> list[int]:
    return [int(ev.id or "") for ev in events]


def artifact_text(task: dict[str, Any], key: str = "parts") -> str:
    return "".join(p["text"] for a in task.get("artifacts", ()) for p in a[key])


async def start_waiting(client: httpx.AsyncClient) -> str:
    """A task whose agent waits for the test's gate; its id."""
    r = await client.post("/message:send", json=send_body("wait", returnImmediately=True),
                          headers=V10)
    assert r.status_code == 200, r.text
    return r.json()["task"]["id"]


async def completed_task(client: httpx.AsyncClient, text: str = "echo hi",
                         **message: Any) -> dict[str, Any]:
    r = await client.post("/message:send", json={"message": user_message(text, **message)},
                          headers=V10)
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    return task


# --- 1.0: send and stream ----------------------------------------------------------------


async def test_send_message(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", json=send_body("echo hello world"), headers=V10)
    assert r.status_code == 200
    # sent as application/json (httpx's json=), answered in kind (A2A 1.0.1 §11.1)
    assert r.headers["content-type"].startswith("application/json")
    task = r.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert artifact_text(task) == "echo hello world"
    assert task["history"][0]["role"] == "ROLE_USER"
    assert "kind" not in task


async def test_direct_reply_is_a_message(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", json=send_body("reply hi"), headers=V10)
    assert r.status_code == 200
    assert r.json()["message"]["parts"] == [{"text": "direct: hi"}]


@pytest.mark.parametrize("content_type", [None, "application/json", A2A_JSON,
                                          "application/json; charset=utf-8"])
async def test_missing_version_header_is_1_0_and_json_types_accepted(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", content=json.dumps(send_body("echo x")),
                              headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("version", ["0.3", "2.0", "banana"])
async def test_unsupported_version_on_1_0_path(client: httpx.AsyncClient, version: str) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", json=send_body("echo x"),
                              headers={"A2A-Version": version})
        q = await client.get(f"/tasks?A2A-Version={version}")
    err = error_of(r, 400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")
    assert version in err["message"]
    error_of(q, 400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")
    if version == "0.3":
        assert "/v1" in err["message"]


async def test_stream_message(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        events = await sse(client, "POST", "/message:stream",
                           json_body=send_body("echo streamed text"), headers=V10)
    seq = ids(events)
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    body = data(events)
    assert list(body[0]) == ["task"]
    task_id = body[0]["task"]["id"]
    kinds = [next(iter(b)) for b in body]
    assert set(kinds[1:]) == {"statusUpdate", "artifactUpdate"}
    assert body[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert all((b.get("statusUpdate") or b.get("artifactUpdate") or {"taskId": task_id})
               ["taskId"] == task_id for b in body[1:])
    text = "".join(p["text"] for b in body if "artifactUpdate" in b
                   for p in b["artifactUpdate"]["artifact"]["parts"])
    assert text == "echo streamed text"


async def test_stream_error_before_start_is_json(client: httpx.AsyncClient) -> None:
    body = {"message": user_message("echo x", taskId="no-such-task")}
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:stream", json=body, headers=V10)
    error_of(r, 404, "NOT_FOUND", "TASK_NOT_FOUND")


# --- 1.0: tasks ---------------------------------------------------------------------------


async def test_get_task_and_history_length(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        task = await completed_task(client)
        full = await client.get(f"/tasks/{task['id']}", headers=V10)
        none = await client.get(f"/tasks/{task['id']}?historyLength=0", headers=V10)
        one = await client.get(f"/tasks/{task['id']}", params={"historyLength": "1"})
        bad = await client.get(f"/tasks/{task['id']}?historyLength=-2")
    assert full.status_code == 200 and full.headers["content-type"].startswith(A2A_JSON)
    assert full.json()["id"] == task["id"] and len(full.json()["history"]) == 1
    assert "history" not in none.json()
    assert len(one.json()["history"]) == 1
    err = error_of(bad, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "historyLength" in err["message"]


async def test_get_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.get("/tasks/no-such-task", headers=V10)
    err = error_of(r, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    assert err["details"][0]["metadata"] == {"taskId": "no-such-task"}
    assert r.headers["content-type"].startswith(A2A_JSON)


async def test_list_tasks_filters_and_pages(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        made = [await completed_task(client, contextId="ctx-a") for _ in range(3)]
        await completed_task(client, contextId="ctx-b")
        first = (await client.get("/tasks", params={"contextId": "ctx-a", "pageSize": "2"},
                                  headers=V10)).json()
        second = (await client.get("/tasks", params={
            "contextId": "ctx-a", "pageSize": "2", "pageToken": first["nextPageToken"]})).json()
        with_artifacts = (await client.get(
            "/tasks?contextId=ctx-b&includeArtifacts=true&historyLength=0")).json()
        done = (await client.get("/tasks?status=TASK_STATE_COMPLETED")).json()
        working = (await client.get("/tasks?status=working")).json()
        later = (await client.get("/tasks?statusTimestampAfter=2999-01-01T00:00:00Z")).json()
        cancelled = (await client.get("/v1/tasks?status=TASK_STATE_CANCELLED")).json()
    assert (first["pageSize"], first["totalSize"], len(first["tasks"])) == (2, 3, 2)
    assert first["nextPageToken"]
    assert second["nextPageToken"] == "" and len(second["tasks"]) == 1
    assert {t["id"] for t in first["tasks"] + second["tasks"]} == {t["id"] for t in made}
    assert all("artifacts" not in t for t in first["tasks"])
    [b] = with_artifacts["tasks"]
    assert artifact_text(b) == "echo hi" and "history" not in b
    assert done["totalSize"] == 4 and working["totalSize"] == 0 == cancelled["totalSize"]
    assert later == {"tasks": [], "nextPageToken": "", "pageSize": 50, "totalSize": 0}


@pytest.mark.parametrize(("query", "param"), [
    ("pageSize=abc", "pageSize"), ("pageSize=0", "pageSize"), ("pageSize=101", "pageSize"),
    ("historyLength=-1", "historyLength"), ("status=sleeping", "status"),
    ("statusTimestampAfter=yesterday", "statusTimestampAfter"),
    ("includeArtifacts=maybe", "includeArtifacts"), ("pageToken=%25%25", "pageToken"),
])
async def test_list_tasks_bad_query_names_the_parameter(
    client: httpx.AsyncClient, query: str, param: str
) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.get(f"/tasks?{query}", headers=V10)
    err = error_of(r, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert param in err["message"]


async def test_cancel_running_task(client: httpx.AsyncClient, controls: Controls) -> None:
    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        r = await client.post(f"/tasks/{task_id}:cancel", headers=V10)
        again = await client.post(f"/tasks/{task_id}:cancel", json={"metadata": {"why": "x"}})
    assert r.status_code == 200 and r.headers["content-type"].startswith(A2A_JSON)
    assert r.json()["id"] == task_id
    assert r.json()["status"]["state"] == "TASK_STATE_CANCELED"
    assert controls.cancelled == [task_id]
    error_of(again, 400, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE")


async def test_cancel_completed_task_is_not_cancelable(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        task = await completed_task(client)
        r = await client.post(f"/tasks/{task['id']}:cancel", headers=V10)
        missing = await client.post("/tasks/nope:cancel", headers=V10)
    err = error_of(r, 400, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE")
    assert err["details"][0]["metadata"] == {"taskId": task["id"]}
    error_of(missing, 404, "NOT_FOUND", "TASK_NOT_FOUND")


async def test_subscribe_then_resume_with_last_event_id(
    client: httpx.AsyncClient, controls: Controls
) -> None:
    async def open_gate(ev: SSEEvent) -> None:
        controls.gate.set()  # the subscription has its snapshot: let the task finish

    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        live = await sse(client, "GET", f"/tasks/{task_id}:subscribe", headers=V10,
                         on_event=open_gate)
        resumed = await sse(client, "POST", f"/tasks/{task_id}:subscribe",
                            headers={**V10, "Last-Event-ID": live[0].id or ""})
        tail = await sse(client, "POST", f"/tasks/{task_id}:subscribe",
                         headers={"Last-Event-ID": live[-1].id or ""})
        ended = await client.get(f"/tasks/{task_id}:subscribe", headers=V10)
    body = data(live)
    assert body[0]["task"]["id"] == task_id
    assert body[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert body[-1]["statusUpdate"]["status"]["message"]["parts"] == [{"text": "gate opened"}]
    # Resuming replays exactly what came after the given id, from the task's log.
    assert [(e.id, e.data) for e in resumed] == [(e.id, e.data) for e in live[1:]]
    assert tail == []
    error_of(ended, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION")


async def test_subscribe_errors(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        bad = await client.get(f"/tasks/{task_id}:subscribe",
                               headers={**V10, "Last-Event-ID": "abc"})
        beyond = await client.post(f"/tasks/{task_id}:subscribe",
                                   headers={**V10, "Last-Event-ID": "999"})
        missing = await client.post("/tasks/nope:subscribe", headers=V10)
    err = error_of(bad, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "Last-Event-ID" in err["message"]
    error_of(beyond, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    error_of(missing, 404, "NOT_FOUND", "TASK_NOT_FOUND")


# --- 1.0: push configs and the extended card ---------------------------------------------


async def test_push_config_crud(client: httpx.AsyncClient) -> None:
    cfg = {"id": "c1", "url": "http://127.0.0.1:9/hook", "token": "tok",
           "authentication": {"scheme": "Bearer", "credentials": "s3cret"}}
    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        base = f"/tasks/{task_id}/pushNotificationConfigs"
        created = await client.post(base, json=cfg, headers=V10)
        same_id = await client.post(base, json={**cfg, "id": "c2", "taskId": task_id})
        mismatch = await client.post(base, json={**cfg, "taskId": "other"})
        no_url = await client.post(base, json={"id": "c3"})
        page1 = await client.get(base, params={"pageSize": "1"}, headers=V10)
        page2 = await client.get(base, params={"pageSize": "1",
                                               "pageToken": page1.json()["nextPageToken"]})
        got = await client.get(f"{base}/c1", headers=V10)
        deleted = await client.delete(f"{base}/c1", headers=V10)
        gone = await client.get(f"{base}/c1")
        delete_again = await client.delete(f"{base}/c1")
        unknown_task = await client.post("/tasks/nope/pushNotificationConfigs", json=cfg)
    assert created.status_code == 200
    assert created.headers["content-type"].startswith("application/json")
    assert created.json() == {**cfg, "taskId": task_id}
    assert same_id.status_code == 200
    err = error_of(mismatch, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "taskId" in err["message"]
    err = error_of(no_url, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "url" in err["message"]
    assert [c["id"] for c in page1.json()["configs"]] == ["c1"]
    assert [c["id"] for c in page2.json()["configs"]] == ["c2"]
    assert got.json() == created.json()
    assert deleted.status_code == 200 and deleted.json() == {}
    error_of(gone, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    assert delete_again.status_code == 200 and delete_again.json() == {}  # idempotent
    error_of(unknown_task, 404, "NOT_FOUND", "TASK_NOT_FOUND")


async def test_push_not_supported(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          push_notifications=False)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            task = await completed_task(c)
            r = await c.get(f"/tasks/{task['id']}/pushNotificationConfigs", headers=V10)
            r03 = await c.get(f"/v1/tasks/{task['id']}/pushNotificationConfigs")
    error_of(r, 400, "FAILED_PRECONDITION", "PUSH_NOTIFICATION_NOT_SUPPORTED")
    error_of(r03, 400, "FAILED_PRECONDITION", "PUSH_NOTIFICATION_NOT_SUPPORTED")


async def test_extended_card_not_configured_without_auth(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.get("/extendedAgentCard", headers=V10)
        r03 = await client.get("/v1/card")
    error_of(r, 400, "FAILED_PRECONDITION", "EXTENDED_AGENT_CARD_NOT_CONFIGURED")
    error_of(r03, 400, "FAILED_PRECONDITION", "EXTENDED_AGENT_CARD_NOT_CONFIGURED")


# --- 1.0: malformed requests, tenants, unknown paths, internal errors -----------------------


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", content=b'{"message": ', headers=V10)
        nan = await client.post("/message:send", content=b'{"message": NaN}', headers=V10)
        array = await client.post("/message:send", content=b"[1, 2]", headers=V10)
        empty = await client.post("/message:send", content=b"", headers=V10)
    error_of(r, 400, "INVALID_ARGUMENT", "PARSE_ERROR")
    error_of(nan, 400, "INVALID_ARGUMENT", "PARSE_ERROR")
    error_of(array, 400, "INVALID_ARGUMENT", "INVALID_REQUEST")
    error_of(empty, 400, "INVALID_ARGUMENT", "INVALID_REQUEST")


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", content=json.dumps(send_body("echo x")),
                              headers={**V10, "Content-Type": "text/plain"})
        r03 = await client.post("/v1/message:send", content=b"message=hi",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    err = error_of(r, 400, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED")
    assert "text/plain" in err["message"]
    error_of(r03, 400, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED")


async def test_invalid_body_names_the_field(client: httpx.AsyncClient) -> None:
    bad_part = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{}]}}
    with trio.fail_after(TIMEOUT):
        no_parts = await client.post("/message:send", json={"message": {"role": "ROLE_USER"}},
                                     headers=V10)
        part = await client.post("/message:send", json=bad_part, headers=V10)
    err = error_of(no_parts, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "message.messageId" in err["message"] and "message.parts" in err["message"]
    err = error_of(part, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "message.parts[0]" in err["message"]


async def test_tenant_prefix(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/acme/message:send", json=send_body("echo t"), headers=V10)
        task_id = r.json()["task"]["id"]
        got = await client.get(f"/acme/tasks/{task_id}", headers=V10)
        listed = await client.get("/acme/tasks", headers=V10)
    assert r.status_code == 200 and got.status_code == 200
    assert got.json()["id"] == task_id
    assert [t["id"] for t in listed.json()["tasks"]] == [task_id]


async def test_unknown_path_and_wrong_method(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        wrong_method = await client.get("/message:send", headers=V10)
        unknown = await client.get("/no/such/endpoint/here")
        cancel_by_get = await client.get("/tasks/some-id:cancel", headers=V10)
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]
    assert wrong_method.json()["error"]["code"] == 405
    assert "POST" in wrong_method.json()["error"]["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    assert cancel_by_get.status_code == 405 and cancel_by_get.headers["allow"] == "POST"


async def test_body_too_large_is_413(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls), max_body=2000)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            r = await c.post("/message:send", json=send_body("echo " + "x" * 5000), headers=V10)
            r03 = await c.post("/v1/message:send", json={"message": proto03_message("x" * 5000)})
    for resp in (r, r03):
        assert resp.status_code == 413
        assert "2000" in resp.json()["error"]["message"]


async def test_unexpected_exception_is_500_and_server_survives(
    server: RunningServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in the service")

    with trio.fail_after(TIMEOUT):
        task = await completed_task(client)
        monkeypatch.setattr(server.service, "get_task", boom)
        r = await client.get(f"/tasks/{task['id']}", headers=V10)
        r03 = await client.get(f"/v1/tasks/{task['id']}")
        monkeypatch.undo()
        ok = await client.get(f"/tasks/{task['id']}", headers=V10)
    err = error_of(r, 500, "INTERNAL", "INTERNAL")
    assert "bug" not in err["message"]  # internals stay in the log
    error_of(r03, 500, "INTERNAL", "INTERNAL")
    assert ok.status_code == 200


# --- auth --------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/message:send"), ("POST", "/message:stream"), ("GET", "/tasks"),
    ("GET", "/tasks/t1"), ("POST", "/tasks/t1:cancel"), ("GET", "/tasks/t1:subscribe"),
    ("POST", "/tasks/t1:subscribe"), ("POST", "/tasks/t1/pushNotificationConfigs"),
    ("GET", "/tasks/t1/pushNotificationConfigs"), ("GET", "/tasks/t1/pushNotificationConfigs/c"),
    ("DELETE", "/tasks/t1/pushNotificationConfigs/c"), ("GET", "/extendedAgentCard"),
    ("GET", "/acme/tasks"),
    ("POST", "/v1/message:send"), ("POST", "/v1/message:stream"), ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/t1"), ("POST", "/v1/tasks/t1:cancel"), ("GET", "/v1/tasks/t1:subscribe"),
    ("POST", "/v1/tasks/t1:subscribe"), ("POST", "/v1/tasks/t1/pushNotificationConfigs"),
    ("GET", "/v1/tasks/t1/pushNotificationConfigs"),
    ("GET", "/v1/tasks/t1/pushNotificationConfigs/c"),
    ("DELETE", "/v1/tasks/t1/pushNotificationConfigs/c"), ("GET", "/v1/card"),
]


async def test_auth_on_every_route(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          tokens={"tok-a": "alice", "tok-b": "bob"})
    alice = {"Authorization": "Bearer tok-a"}
    bob = {"Authorization": "Bearer tok-b"}
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            for method, path in ROUTES:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-a"}):
                    r = await c.request(method, path, json=send_body("echo x"), headers=headers)
                    assert r.status_code == 401, (method, path, headers, r.text)
                    assert r.json()["error"]["status"] == "UNAUTHENTICATED"
                    assert r.headers["www-authenticate"].startswith("Bearer")
            r = await c.post("/message:send", json=send_body("echo mine"), headers=alice)
            task_id = r.json()["task"]["id"]
            mine = await c.get(f"/tasks/{task_id}", headers=alice)
            theirs = await c.get(f"/tasks/{task_id}", headers=bob)
            theirs03 = await c.get(f"/v1/tasks/{task_id}", headers=bob)
            listed = await c.get("/tasks", headers=bob)
            card = await c.get("/extendedAgentCard", headers=alice)
            card03 = await c.get("/v1/card", headers=alice)
    assert mine.status_code == 200
    error_of(theirs, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    error_of(theirs03, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    assert listed.json()["tasks"] == []
    assert card.status_code == 200 and card.headers["content-type"].startswith(A2A_JSON)
    assert card.json()["capabilities"]["extendedAgentCard"] is True
    assert card.json()["supportedInterfaces"]
    assert card03.status_code == 200 and card03.json()["name"] == card.json()["name"]
    assert card03.headers["content-type"].startswith("application/json")


# --- 0.3 under /v1 -----------------------------------------------------------------------


async def test_v03_send_proto_json(client: httpx.AsyncClient) -> None:
    file_part = {"file": {"fileWithUri": "https://example.com/a.png", "mimeType": "image/png"}}
    msg = proto03_message("echo hello", metadata={"k": "v"})
    msg["content"] += [{"data": {"data": {"n": 1}}}, file_part]
    with trio.fail_after(TIMEOUT):
        r = await client.post("/v1/message:send",
                              json={"message": msg, "configuration": {"blocking": True}})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    task = r.json()["task"]
    assert "kind" not in task
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert artifact_text(task) == "echo hello"
    [sent] = task["history"]
    assert sent["role"] == "ROLE_USER" and sent["metadata"] == {"k": "v"}
    assert sent["content"] == [{"text": "echo hello"}, {"data": {"data": {"n": 1}}}, file_part]


async def test_v03_send_sdk_snake_case_and_jsonrpc_shapes(client: httpx.AsyncClient) -> None:
    sdk = {"request": {"message_id": "m1", "role": "ROLE_USER", "content": [{"text": "echo a"}]},
           "configuration": {"blocking": True, "accepted_output_modes": ["text/plain"]}}
    jsonrpc_shape = {"message": user_message_v03("echo b")}
    with trio.fail_after(TIMEOUT):
        a = await client.post("/v1/message:send", json=sdk, headers={"A2A-Version": "0.3"})
        b = await client.post("/v1/message:send", json=jsonrpc_shape)
    assert artifact_text(a.json()["task"]) == "echo a"
    assert artifact_text(b.json()["task"]) == "echo b"
    assert b.json()["task"]["history"][0]["content"] == [{"text": "echo b"}]


async def test_v03_proto_configuration_without_blocking_does_not_block(
    client: httpx.AsyncClient, controls: Controls
) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/v1/message:send",
                              json={"message": proto03_message("wait"), "configuration": {}})
        controls.gate.set()
    task = r.json()["task"]
    assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")


async def test_v03_direct_reply(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/v1/message:send", json={"message": proto03_message("reply yo")})
    reply = r.json()["message"]
    assert reply["role"] == "ROLE_AGENT" and reply["content"] == [{"text": "direct: yo"}]


async def test_v03_invalid_body_names_the_field(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/v1/message:send", json={"message": {"role": "ROLE_USER"}})
        bad_json = await client.post("/v1/message:send", content=b"{nope")
    err = error_of(r, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    assert "message.messageId" in err["message"]
    error_of(bad_json, 400, "INVALID_ARGUMENT", "PARSE_ERROR")
    assert bad_json.json()["type"] == "JSONParseError"


async def test_v03_stream(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        events = await sse(client, "POST", "/v1/message:stream",
                           json_body={"message": proto03_message("echo abc")})
    body = data(events)
    assert list(body[0]) == ["task"] and "kind" not in body[0]["task"]
    updates = [b["statusUpdate"] for b in body if "statusUpdate" in b]
    assert [u["final"] for u in updates] == [False] * (len(updates) - 1) + [True]
    assert updates[-1]["status"]["state"] == "TASK_STATE_COMPLETED"
    text = "".join(p["text"] for b in body if "artifactUpdate" in b
                   for p in b["artifactUpdate"]["artifact"]["parts"])
    assert text == "echo abc"


async def test_v03_tasks(client: httpx.AsyncClient, controls: Controls) -> None:
    with trio.fail_after(TIMEOUT):
        task = await completed_task(client)
        got = await client.get(f"/v1/tasks/{task['id']}?historyLength=0")
        listed = await client.get("/v1/tasks", params={"includeArtifacts": "true"})
        not_cancelable = await client.post(f"/v1/tasks/{task['id']}:cancel")
        missing = await client.get("/v1/tasks/nope")
        waiting = await start_waiting(client)
        canceled = await client.post(f"/v1/tasks/{waiting}:cancel", json={"name": waiting})
    assert got.status_code == 200 and got.json()["id"] == task["id"]
    assert len(got.json()["history"]) == 1  # historyLength 0 meant "no limit" in 0.3
    assert got.json()["history"][0]["role"] == "ROLE_USER"
    [t] = [t for t in listed.json()["tasks"] if t["id"] == task["id"]]
    assert t["status"]["state"] == "TASK_STATE_COMPLETED" and artifact_text(t) == "echo hi"
    error_of(not_cancelable, 400, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE")
    assert not_cancelable.json()["type"] == "TaskNotCancelableError"
    error_of(missing, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    assert missing.json()["type"] == "TaskNotFoundError"
    assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELLED"
    assert controls.cancelled == [waiting]


async def test_v03_subscribe_and_resume(client: httpx.AsyncClient, controls: Controls) -> None:
    async def open_gate(ev: SSEEvent) -> None:
        controls.gate.set()

    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        live = await sse(client, "POST", f"/v1/tasks/{task_id}:subscribe", on_event=open_gate)
        resumed = await sse(client, "GET", f"/v1/tasks/{task_id}:subscribe",
                            headers={"Last-Event-ID": live[0].id or ""})
    body = data(live)
    assert body[0]["task"]["id"] == task_id
    assert body[-1]["statusUpdate"]["final"] is True
    assert body[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [(e.id, e.data) for e in resumed] == [(e.id, e.data) for e in live[1:]]


async def test_v03_push_config_crud(client: httpx.AsyncClient) -> None:
    inner = {"id": "c1", "url": "http://127.0.0.1:9/hook", "token": "tok",
             "authentication": {"schemes": ["Bearer"], "credentials": "s3cret"}}
    with trio.fail_after(TIMEOUT):
        task_id = await start_waiting(client)
        base = f"/v1/tasks/{task_id}/pushNotificationConfigs"
        created = await client.post(base, json={"pushNotificationConfig": inner})
        sdk_style = await client.post(base, json={
            "parent": f"tasks/{task_id}", "config_id": "c2",
            "config": {"push_notification_config": {"url": "http://127.0.0.1:9/two"}}})
        listed = await client.get(base)
        got = await client.get(f"{base}/c2")
        deleted = await client.delete(f"{base}/c1")
        gone = await client.get(f"{base}/c1")
        mismatch = await client.post(base, json={"taskId": "other",
                                                 "pushNotificationConfig": inner})
    assert created.status_code == 200, created.text
    assert created.json() == {"name": f"tasks/{task_id}/pushNotificationConfigs/c1",
                              "pushNotificationConfig": inner}
    assert sdk_style.json()["pushNotificationConfig"] == {"id": "c2",
                                                          "url": "http://127.0.0.1:9/two"}
    assert [c["pushNotificationConfig"]["id"] for c in listed.json()["configs"]] == ["c1", "c2"]
    assert got.json() == sdk_style.json()
    assert deleted.status_code == 200 and deleted.json() == {}
    error_of(gone, 404, "NOT_FOUND", "TASK_NOT_FOUND")
    error_of(mismatch, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")


async def test_v03_version_rules(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        # On a /v1 path, A2A-Version 1.0 is the 1.0 binding under tenant "v1".
        as_10 = await client.post("/v1/message:send", json=send_body("echo t"), headers=V10)
        unsupported = await client.post("/v1/message:send", json={"message": proto03_message(
            "echo x")}, headers={"A2A-Version": "7.0"})
        card_10 = await client.get("/v1/card", headers=V10)
    assert as_10.status_code == 200
    assert as_10.headers["content-type"].startswith("application/json")  # in kind
    assert as_10.json()["task"]["history"][0]["parts"] == [{"text": "echo t"}]
    error_of(unsupported, 400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")
    assert unsupported.json()["type"] == "VersionNotSupportedError"
    err = error_of(card_10, 400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")
    assert "/extendedAgentCard" in err["message"]
