"""Request limits against a real server: parts, nesting depth, string length, members.

Each is refused with InvalidParams (-32602; HTTP 400 on HTTP+JSON) naming the field
and the limit, in both generations and both bindings, and before any model is built
from the request (a 600,000-part message used to become 600,000 part models).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from protocol import v03
from protocol.limits import DEPTH_CEILING
from protocol.models import SendMessageRequest
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import Rpc, user_message, user_message_v03

TIMEOUT = 30
V10 = {"A2A-Version": "1.0"}


def deep(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": ... {"leaf": true}}}."""
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def data_message(data: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"data": data}]}


def data_message_v03(data: Any) -> dict[str, Any]:
    return {"kind": "message", "messageId": str(uuid.uuid4()), "role": "user",
            "parts": [{"kind": "data", "data": data}]}


def parts_message(n: int) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "x"}] * n}


def refused(err: dict[str, Any], field: str, limit: str) -> None:
    """A -32602 that names `field` and `limit`."""
    assert err["code"] == -32602, err
    assert err["message"].startswith(f"{field}: "), err["message"]
    assert f"limit {limit} = " in err["message"], err["message"]


def refused_http(r: httpx.Response, field: str, limit: str) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT", err
    assert err["message"].startswith(f"{field}: "), err["message"]
    assert f"limit {limit} = " in err["message"], err["message"]
    [info] = err["details"]
    assert info["reason"] == "INVALID_PARAMS"
    assert info["metadata"]["limit"] == limit and info["metadata"]["field"] == field


@pytest.fixture
async def small() -> AsyncIterator[RunningServer]:
    """A server with small limits, to test each one at its edge."""
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), max_parts=3,
                          max_depth=8, max_string=100, max_items=5)
    async with open_server(config) as srv:
        yield srv


# --- nesting depth -------------------------------------------------------------------


async def test_deep_data_is_refused_in_both_generations(rpc: Rpc, rpc03: Rpc) -> None:
    """Data nested 300 deep passed validation and then failed where it is serialised;
    now it is refused up front, naming the field and the limit."""
    with trio.fail_after(TIMEOUT):
        err = await rpc.error("SendMessage", {"message": data_message(deep(300))})
        refused(err, "params.message.parts[0].data", "max-depth")
        [info] = err["data"]
        assert info["metadata"] == {"field": "params.message.parts[0].data",
                                    "limit": "max-depth", "max": "64"}
        err = await rpc03.error("message/send", {"message": data_message_v03(deep(300))})
        refused(err, "params.message.parts[0].data", "max-depth")
        err = await rpc.stream_error("SendStreamingMessage",
                                     {"message": data_message(deep(300))})
        refused(err, "params.message.parts[0].data", "max-depth")


@pytest.mark.parametrize(("method", "params", "field"), [
    ("SendMessage", {"message": user_message("hi", metadata=deep(100))},
     "params.message.metadata"),
    ("SendMessage", {"message": user_message("hi"), "metadata": deep(100)}, "params.metadata"),
    ("SendMessage", {"message": {**user_message("hi"), "parts": [
        {"text": "hi", "metadata": deep(100)}]}}, "params.message.parts[0].metadata"),
    ("SendMessage", {"message": user_message("hi"), "configuration": {
        "taskPushNotificationConfig": {"url": "http://127.0.0.1:9/x", "authentication": {
            "scheme": "Bearer", "extra": deep(100)}}}},
     "params.configuration.taskPushNotificationConfig.authentication.extra"
     ".a.a.a.a.a.a.a.a…"),
    ("CancelTask", {"id": "t", "metadata": deep(100)}, "params.metadata"),
    ("CreateTaskPushNotificationConfig", {"taskId": "t", "url": "http://127.0.0.1:9/x",
                                          "authentication": {"scheme": "Bearer",
                                                             "x": deep(100)}},
     "params.authentication.x.a.a.a.a.a.a.a.a.a.a…"),
])
async def test_deep_json_anywhere_in_a_request_is_refused(
    rpc: Rpc, method: str, params: dict[str, Any], field: str,
) -> None:
    with trio.fail_after(TIMEOUT):
        refused(await rpc.error(method, params), field, "max-depth")


async def test_deep_json_is_refused_on_http_json(client: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        r = await client.post("/message:send", json={"message": data_message(deep(300))},
                              headers=V10)
        refused_http(r, "message.parts[0].data", "max-depth")
        proto = {"request": {"messageId": "m", "role": "ROLE_USER",
                             "content": [{"data": {"data": deep(300)}}]}}
        r = await client.post("/v1/message:send", json=proto)
        refused_http(r, "request.content[0].data", "max-depth")
        r = await client.post("/tasks/t:cancel", json={"metadata": deep(100)}, headers=V10)
        refused_http(r, "metadata", "max-depth")
        r = await client.post("/tasks/t/pushNotificationConfigs", headers=V10,
                              json={"url": "http://127.0.0.1:9/x", "x": deep(100)})
        refused_http(r, "x.a.a.a.a.a.a.a.a.a.a.a…", "max-depth")


async def test_depth_at_the_limit_is_accepted(small: RunningServer) -> None:
    """max_depth=8 counts params as level 1: a part's data object is level 5."""
    async with httpx.AsyncClient(base_url=small.url, timeout=TIMEOUT) as c:
        rpc = Rpc(c, "1.0")
        with trio.fail_after(TIMEOUT):
            ok = await rpc.call("SendMessage", {"message": data_message(deep(4))})
            assert ok["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            err = await rpc.error("SendMessage", {"message": data_message(deep(5))})
            refused(err, "params.message.parts[0].data", "max-depth")
            assert "more than 8 levels deep, counting params as level 1" in err["message"]


# --- parts ---------------------------------------------------------------------------


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every send request model built (1.0 validation, 0.3 translation)."""
    built: list[str] = []
    validate = SendMessageRequest.model_validate
    from_v03 = v03.send_params_from_v03

    def validate_spy(obj: Any, *args: Any, **kwargs: Any) -> SendMessageRequest:
        built.append("1.0")
        return validate(obj, *args, **kwargs)

    def from_v03_spy(params: Any) -> SendMessageRequest:
        built.append("0.3")
        return from_v03(params)

    monkeypatch.setattr(SendMessageRequest, "model_validate", validate_spy)
    monkeypatch.setattr(v03, "send_params_from_v03", from_v03_spy)
    return built


async def test_600000_parts_are_refused_before_any_model_is_built(
    client: httpx.AsyncClient, no_models: list[str],
) -> None:
    """The issue's request: 600,000 parts in a 9 MB body. Refused from the decoded
    JSON, without building a request model (let alone 600,000 part models)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                       "params": {"message": parts_message(600_000)}})
    assert len(body) < 10 << 20  # inside the body limit
    with trio.fail_after(TIMEOUT):
        r = await client.post("/", content=body,
                              headers={**V10, "Content-Type": "application/json"})
    err = r.json()["error"]
    refused(err, "params.message.parts", "max-parts")
    assert "600000 parts, more than the 1000 allowed per message" in err["message"]
    assert no_models == []


async def test_too_many_parts_are_refused_in_every_shape(
    client: httpx.AsyncClient, rpc03: Rpc, no_models: list[str],
) -> None:
    msg03 = {**user_message_v03("x"), "parts": [{"kind": "text", "text": "x"}] * 1001}
    with trio.fail_after(TIMEOUT):
        refused(await rpc03.error("message/send", {"message": msg03}),
                "params.message.parts", "max-parts")
        r = await client.post("/message:send", json={"message": parts_message(1001)},
                              headers=V10)
        refused_http(r, "message.parts", "max-parts")
        proto = {"request": {"messageId": "m", "role": "ROLE_USER",
                             "content": [{"text": "x"}] * 1001}}
        refused_http(await client.post("/v1/message:send", json=proto),
                     "request.content", "max-parts")
        proto = {"message": {"messageId": "m", "role": "ROLE_USER",
                             "content": [{"text": "x"}] * 1001}}
        refused_http(await client.post("/v1/message:send", json=proto),
                     "message.content", "max-parts")
    assert no_models == []


async def test_parts_at_the_limit_are_accepted(small: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=small.url, timeout=TIMEOUT) as c:
        rpc, rpc03 = Rpc(c, "1.0"), Rpc(c, None)
        with trio.fail_after(TIMEOUT):
            ok = await rpc.call("SendMessage", {"message": parts_message(3)})
            assert ok["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            refused(await rpc.error("SendMessage", {"message": parts_message(4)}),
                    "params.message.parts", "max-parts")
            msg03 = {**user_message_v03("x"), "parts": [{"kind": "text", "text": "x"}] * 4}
            refused(await rpc03.error("message/send", {"message": msg03}),
                    "params.message.parts", "max-parts")


async def test_a_batch_shares_one_parts_budget(small: RunningServer) -> None:
    """A batch is one request: the parts of all its calls count against max-parts, or
    many calls each under the limit would build as many models as one call over it."""
    batch = [{"jsonrpc": "2.0", "id": i, "method": "SendMessage",
              "params": {"message": parts_message(2)}} for i in range(3)]
    async with httpx.AsyncClient(base_url=small.url, timeout=TIMEOUT) as c:
        with trio.fail_after(TIMEOUT):
            r = await c.post("/", json=batch, headers=V10)
    out = {item["id"]: item for item in r.json()}
    assert "result" in out[0], out[0]
    for i in (1, 2):
        err = out[i]["error"]
        refused(err, "params.message.parts", "max-parts")
        assert "more than the 1 left of the 3 allowed per request" in err["message"]


# --- strings and members ---------------------------------------------------------------


async def test_long_strings_are_refused(rpc: Rpc, client: httpx.AsyncClient) -> None:
    text = "x" * ((1 << 20) + 1)
    with trio.fail_after(TIMEOUT):
        err = await rpc.error("SendMessage", {"message": user_message(text)})
        refused(err, "params.message.parts[0].text", "max-string")
        assert f"a string of {len(text)} characters" in err["message"]
        r = await client.post("/message:send", json={"message": user_message(text)},
                              headers=V10)
        refused_http(r, "message.parts[0].text", "max-string")


async def test_strings_and_members_at_their_limits(small: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=small.url, timeout=TIMEOUT) as c:
        rpc, rpc03 = Rpc(c, "1.0"), Rpc(c, None)
        with trio.fail_after(TIMEOUT):
            ok = await rpc.call("SendMessage", {"message": user_message("x" * 100)})
            assert ok["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            refused(await rpc.error("SendMessage", {"message": user_message("x" * 101)}),
                    "params.message.parts[0].text", "max-string")
            refused(await rpc03.error("message/send", {"message": user_message_v03("x" * 101)}),
                    "params.message.parts[0].text", "max-string")
            long_key = {"k" * 101: 1}
            refused(await rpc.error("SendMessage", {"message": user_message("hi"),
                                                    "metadata": long_key}),
                    "params.metadata", "max-string")
            five = {str(i): i for i in range(5)}
            ok = await rpc.call("SendMessage", {"message": user_message("hi", metadata=five)})
            assert ok["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            six = {str(i): i for i in range(6)}
            err = await rpc.error("SendMessage", {"message": user_message("hi", metadata=six)})
            refused(err, "params.message.metadata", "max-items")
            assert "6 members, more than the 5 allowed" in err["message"]
            err = await rpc03.error("message/send", {"message": data_message_v03(
                {"rows": list(range(6))})})
            refused(err, "params.message.parts[0].data.rows", "max-items")


async def test_the_deepest_data_the_ceiling_allows_is_stored_and_served(
    tmp_path: Path,
) -> None:
    """DEPTH_CEILING is what the store can take: data as deep as max_depth=200 allows
    is stored in SQLite (which serialises it), read back and rendered in both
    generations; one level deeper is refused before it gets there."""
    config = ServerConfig(port=0, store="sqlite", data_dir=tmp_path, agent=scripted_agent(),
                          max_depth=DEPTH_CEILING)
    deepest = deep(DEPTH_CEILING - 4)  # params, message, parts, the part: 4 levels
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url,
                                                             timeout=TIMEOUT) as c:
        rpc, rpc03 = Rpc(c, "1.0"), Rpc(c, None)
        with trio.fail_after(TIMEOUT):
            task = (await rpc.call("SendMessage", {"message": data_message(deepest)}))["task"]
            got = await rpc.call("GetTask", {"id": task["id"]})
            assert got["history"][0]["parts"][0]["data"] == deepest
            got03 = await rpc03.call("tasks/get", {"id": task["id"]})
            assert got03["history"][0]["parts"][0]["data"] == deepest
            task03 = await rpc03.call("message/send", {"message": data_message_v03(deepest)})
            assert task03["history"][0]["parts"][0]["data"] == deepest
            err = await rpc.error("SendMessage", {"message": data_message(
                deep(DEPTH_CEILING - 3))})
            refused(err, "params.message.parts[0].data", "max-depth")


# --- strings that are not text ---------------------------------------------------------

LONE = "a\ud800b"  # json.dumps writes it as the escape "a\\ud800b", which json.loads takes


def not_text(err: dict[str, Any], field: str) -> None:
    """A -32602 that names `field` and says its string is not text."""
    assert err["code"] == -32602, err
    assert err["message"].startswith(f"{field}: "), err["message"]
    assert "not valid Unicode text" in err["message"], err["message"]


def not_text_http(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT", err
    assert err["message"].startswith(f"{field}: "), err["message"]
    [info] = err["details"]
    assert info["metadata"] == {"field": field, "reason": "not-utf8"}


async def test_a_lone_surrogate_is_refused_in_both_generations_and_bindings(
    client: httpx.AsyncClient, rpc: Rpc, rpc03: Rpc,
) -> None:
    """It used to be taken, stored, and fail when the task was serialised (-32603 or
    HTTP 500); now it is the client's error, naming the field."""
    def post(path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return client.post(path, content=json.dumps(body),
                           headers={"Content-Type": "application/json", **(headers or {})})

    with trio.fail_after(TIMEOUT):
        not_text(await rpc.error("SendMessage", {"message": user_message(LONE)}),
                 "params.message.parts[0].text")
        not_text(await rpc.error("SendMessage", {"message": user_message("hi"),
                                                 "metadata": {"k": [LONE]}}),
                 "params.metadata.k[0]")
        not_text(await rpc.error("SendMessage", {"message": {**user_message("hi"),
                                                             "messageId": LONE}}),
                 "params.message.messageId")
        msg03 = {**user_message_v03("hi"), "parts": [{"kind": "text", "text": LONE}]}
        not_text(await rpc03.error("message/send", {"message": msg03}),
                 "params.message.parts[0].text")
        not_text(await rpc03.error("tasks/get", {"id": LONE}), "params.id")
        # a member name: shown escaped, as the error itself must be UTF-8
        not_text(await rpc.error("SendMessage", {"message": user_message("hi"),
                                                 "metadata": {"k\udc00": 1}}),
                 "params.metadata.k\\udc00")
        not_text_http(await post("/message:send", {"message": user_message(LONE)}, V10),
                      "message.parts[0].text")
        not_text_http(await post("/tasks/t:cancel", {"metadata": {"why": LONE}}, V10),
                      "metadata.why")
        proto = {"request": {"messageId": "m", "role": "ROLE_USER",
                             "content": [{"text": LONE}]}}
        not_text_http(await post("/v1/message:send", proto), "request.content[0].text")
        # a surrogate pair is one character, and fine
        ok = await rpc.call("SendMessage", {"message": user_message("\ud83d\ude00")})
        assert ok
