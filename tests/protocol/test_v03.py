"""A2A 0.3 <-> 1.0 translation: round trips, validation, and interop with a2a-sdk's 0.3 types."""

from __future__ import annotations

import itertools
from typing import Any

import pydantic
import pytest

from protocol import models, v03
from protocol.errors import MethodNotFoundError
from protocol.jsonrpc import format_validation_error
from protocol.states import INTERRUPTED_STATES, TERMINAL_STATES

RAW = "aGVsbG8gd29ybGQ="  # b"hello world"

# --- builders ------------------------------------------------------------------------

CONTENTS: list[dict[str, Any]] = [
    {"text": "hello"},
    {"text": ""},
    {"raw": RAW},
    {"url": "https://example.com/f.pdf"},
    {"data": {"a": 1, "b": [1, 2], "c": {"d": None}}},
    {"data": {}},
    {"data": {"value": 3}},  # an object that merely looks wrapped
    {"data": [1, "two", {"three": 3}]},
    {"data": "a string"},
    {"data": 42},
    {"data": 1.5},
    {"data": True},
    {"data": False},
    {"data": 0},
    {"data": []},
]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"metadata": {"k": "v", "n": {"x": [1]}}},
    {"metadata": {}},
    {"filename": "a.txt"},
    {"mediaType": "text/plain"},
    {"filename": "", "mediaType": ""},
    {"filename": "a.json", "mediaType": "application/json", "metadata": {"k": 1}},
]


def all_parts() -> list[models.Part]:
    return [models.Part.model_validate({**c, **e}) for c, e in itertools.product(CONTENTS, EXTRAS)]


def parts() -> list[models.Part]:
    """Every part that round-trips exactly (empty metadata can come back unset)."""
    return [p for p in all_parts() if p.metadata != {}]


def msg(role: models.Role = models.Role.USER, **over: Any) -> models.Message:
    fields: dict[str, Any] = {"message_id": "m-1", "role": role, "parts": [models.Part(text="hi")]}
    return models.Message(**{**fields, **over})


def full_message(role: models.Role = models.Role.AGENT) -> models.Message:
    return msg(
        role,
        message_id="m-2",
        context_id="ctx",
        task_id="t-1",
        reference_task_ids=["t-0"],
        extensions=["https://ext.example/x"],
        metadata={"trace": "abc"},
        parts=parts(),
    )


def artifact(**over: Any) -> models.Artifact:
    fields: dict[str, Any] = {
        "artifact_id": "a-1",
        "name": "result",
        "description": "the result",
        "parts": parts()[:9],
        "metadata": {"m": 1},
        "extensions": ["urn:x"],
    }
    return models.Artifact(**{**fields, **over})


def task(state: models.TaskState = models.TaskState.WORKING, **over: Any) -> models.Task:
    fields: dict[str, Any] = {
        "id": "t-1",
        "context_id": "ctx",
        "status": models.TaskStatus(
            state=state, message=full_message(), timestamp="2026-01-02T03:04:05.678Z"
        ),
        "artifacts": [artifact(), artifact(artifact_id="a-2", name=None, description=None)],
        "history": [msg(), full_message()],
        "metadata": {"tm": [1, 2]},
    }
    return models.Task(**{**fields, **over})


def push_configs() -> list[models.TaskPushNotificationConfig]:
    auths: list[models.AuthenticationInfo | None] = [
        None,
        models.AuthenticationInfo(scheme="Bearer"),
        models.AuthenticationInfo(scheme="Basic", credentials="dXNlcjpwdw=="),
        models.AuthenticationInfo(scheme=""),
    ]
    out = []
    for auth, cfg_id, token in itertools.product(auths, [None, "cfg-1"], [None, "tok"]):
        out.append(
            models.TaskPushNotificationConfig(
                task_id="t-1", id=cfg_id, url="https://hook.example/x", token=token,
                authentication=auth,
            )
        )
    return out


# --- parts, messages, tasks ------------------------------------------------------------


@pytest.mark.parametrize("part", all_parts(), ids=lambda p: repr(models.dump(p))[:60])
def test_part_round_trip(part: models.Part) -> None:
    out = v03.part_to_v03(part)
    assert out["kind"] in ("text", "file", "data")
    if out["kind"] == "data":
        assert isinstance(out["data"], dict)
    back = v03.part_from_v03(out)
    reserved = {v03.DATA_WRAPPED_KEY, v03.MEDIA_TYPE_KEY, v03.FILENAME_KEY}
    if part.metadata == {} and reserved & set(out.get("metadata", {})):
        # documented: empty metadata next to reserved keys comes back as no metadata
        assert back == part.model_copy(update={"metadata": None})
    else:
        assert back == part
    # the dict form of the 1.0 part translates the same way
    assert v03.part_to_v03(models.dump(part)) == out


def test_part_shapes() -> None:
    assert v03.part_to_v03(models.Part(text="x")) == {"kind": "text", "text": "x"}
    assert v03.part_to_v03(
        models.Part(raw=RAW, media_type="text/plain", filename="h.txt", metadata={"a": 1})
    ) == {
        "kind": "file",
        "file": {"bytes": RAW, "mimeType": "text/plain", "name": "h.txt"},
        "metadata": {"a": 1},
    }
    assert v03.part_to_v03(models.Part(url="https://x/y")) == {
        "kind": "file", "file": {"uri": "https://x/y"}
    }
    assert v03.part_to_v03(models.Part(data={"a": 1})) == {"kind": "data", "data": {"a": 1}}
    assert v03.part_to_v03(models.Part(data=[1, 2], metadata={"a": 1})) == {
        "kind": "data",
        "data": {"value": [1, 2]},
        "metadata": {"a": 1, v03.DATA_WRAPPED_KEY: True},
    }
    assert v03.part_to_v03(models.Part(text="x", media_type="text/markdown", filename="r.md")) == {
        "kind": "text",
        "text": "x",
        "metadata": {v03.MEDIA_TYPE_KEY: "text/markdown", v03.FILENAME_KEY: "r.md"},
    }


def test_part_translation_does_not_mutate_input() -> None:
    part = models.Part(data=5, metadata={"a": 1}, media_type="x/y")
    v03.part_to_v03(part)
    assert part.metadata == {"a": 1}
    wire = {"kind": "data", "data": {"value": 5}, "metadata": {v03.DATA_WRAPPED_KEY: True, "a": 1}}
    v03.part_from_v03(wire)
    assert wire["metadata"] == {v03.DATA_WRAPPED_KEY: True, "a": 1}


def test_part_kind_inferred_and_other_content_ignored() -> None:
    assert v03.part_from_v03({"text": "x"}) == models.Part(text="x")
    assert v03.part_from_v03({"file": {"uri": "u"}}) == models.Part(url="u")
    assert v03.part_from_v03({"data": {"a": 1}}) == models.Part(data={"a": 1})
    # members that do not belong to the declared kind are unknown fields
    assert v03.part_from_v03({"kind": "text", "text": "x", "data": 5}) == models.Part(text="x")


def test_wrapped_data_marker_only_unwraps_a_wrapper() -> None:
    # marker set but the object is not {"value": ...}: left as it is
    wire = {"kind": "data", "data": {"a": 1}, "metadata": {v03.DATA_WRAPPED_KEY: True}}
    assert v03.part_from_v03(wire) == models.Part(data={"a": 1}, metadata=wire["metadata"])
    # a null value cannot be a 1.0 part: keep the wrapper
    wire = {"kind": "data", "data": {"value": None}, "metadata": {v03.DATA_WRAPPED_KEY: True}}
    assert v03.part_from_v03(wire).data == {"value": None}
    # a non-string reserved media type stays in metadata
    wire = {"kind": "text", "text": "x", "metadata": {v03.MEDIA_TYPE_KEY: 5}}
    assert v03.part_from_v03(wire) == models.Part(text="x", metadata={v03.MEDIA_TYPE_KEY: 5})


@pytest.mark.parametrize("role", [models.Role.USER, models.Role.AGENT])
def test_message_round_trip(role: models.Role) -> None:
    for m in (msg(role), full_message(role)):
        out = v03.message_to_v03(m)
        assert out["kind"] == "message"
        assert out["role"] == {models.Role.USER: "user", models.Role.AGENT: "agent"}[role]
        assert v03.message_from_v03(out) == m
        assert v03.message_to_v03(models.dump(m)) == out


def test_message_without_kind_is_accepted() -> None:
    wire = {"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "x"}]}
    assert v03.message_from_v03(wire) == msg(message_id="m", parts=[models.Part(text="x")])


def test_unknown_fields_are_ignored() -> None:
    wire = {
        "kind": "message", "messageId": "m", "role": "agent", "future": {"x": 1},
        "parts": [{"kind": "text", "text": "x", "other": 1}],
    }
    assert v03.message_from_v03(wire) == msg(
        models.Role.AGENT, message_id="m", parts=[models.Part(text="x")]
    )


STATES_03 = {
    models.TaskState.UNSPECIFIED: "unknown",
    models.TaskState.SUBMITTED: "submitted",
    models.TaskState.WORKING: "working",
    models.TaskState.COMPLETED: "completed",
    models.TaskState.FAILED: "failed",
    models.TaskState.CANCELED: "canceled",
    models.TaskState.INPUT_REQUIRED: "input-required",
    models.TaskState.REJECTED: "rejected",
    models.TaskState.AUTH_REQUIRED: "auth-required",
}


@pytest.mark.parametrize("state", list(models.TaskState))
def test_task_round_trip_every_state(state: models.TaskState) -> None:
    t = task(state)
    out = v03.task_to_v03(t)
    assert out["kind"] == "task"
    assert out["status"]["state"] == STATES_03[state]
    assert out["status"]["message"]["kind"] == "message"
    assert v03.task_from_v03(out) == t
    assert v03.task_to_v03(models.dump(t)) == out


def test_minimal_task_round_trip() -> None:
    t = models.Task(id="t", context_id="c", status=models.TaskStatus(state="TASK_STATE_SUBMITTED"))
    out = v03.task_to_v03(t)
    assert out == {"kind": "task", "id": "t", "contextId": "c", "status": {"state": "submitted"}}
    assert v03.task_from_v03(out) == t
    empty = t.model_copy(update={"artifacts": [], "history": [], "metadata": {}})
    assert v03.task_from_v03(v03.task_to_v03(empty)) == empty


def test_numeric_enums_in_dict_input() -> None:
    d = models.dump(task(models.TaskState.COMPLETED))
    d["status"]["state"] = 3
    d["history"][0]["role"] = 1
    out = v03.task_to_v03(d)
    assert out["status"]["state"] == "completed"
    assert out["history"][0]["role"] == "user"


def test_artifact_round_trip() -> None:
    for a in (artifact(), models.Artifact(artifact_id="x", parts=[models.Part(text="t")])):
        out = v03.artifact_to_v03(a)
        wire = {"id": "t", "contextId": "c", "status": {"state": "working"}, "artifacts": [out]}
        assert v03.task_from_v03(wire).artifacts == [a]


# --- events -------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(models.TaskState))
def test_status_update_round_trip_and_final(state: models.TaskState) -> None:
    ev = models.TaskStatusUpdateEvent(
        task_id="t", context_id="c", metadata={"e": 1},
        status=models.TaskStatus(state=state, message=msg(models.Role.AGENT)),
    )
    out = v03.status_update_to_v03(ev)
    assert out["kind"] == "status-update"
    assert out["status"]["state"] == STATES_03[state]
    assert out["final"] is (state in TERMINAL_STATES | INTERRUPTED_STATES)
    assert v03.status_update_to_v03(ev, final=True)["final"] is True
    assert v03.status_update_to_v03(ev, final=False)["final"] is False
    back = v03.stream_response_from_v03(out)
    assert back == models.StreamResponse(status_update=ev)
    assert "final" not in models.dump(back)["statusUpdate"]


@pytest.mark.parametrize(
    ("append", "last_chunk"), list(itertools.product([None, True, False], repeat=2))
)
def test_artifact_update_round_trip(append: bool | None, last_chunk: bool | None) -> None:
    ev = models.TaskArtifactUpdateEvent(
        task_id="t", context_id="c", artifact=artifact(), append=append, last_chunk=last_chunk,
        metadata={"e": 2} if append else None,
    )
    out = v03.artifact_update_to_v03(ev)
    assert out["kind"] == "artifact-update"
    assert ("append" in out) is (append is not None)
    assert ("lastChunk" in out) is (last_chunk is not None)
    assert v03.stream_response_from_v03(out) == models.StreamResponse(artifact_update=ev)


def stream_responses() -> list[models.StreamResponse]:
    return [
        models.StreamResponse(task=task()),
        models.StreamResponse(message=full_message()),
        models.StreamResponse(
            status_update=models.TaskStatusUpdateEvent(
                task_id="t", context_id="c",
                status=models.TaskStatus(state=models.TaskState.COMPLETED),
            )
        ),
        models.StreamResponse(
            artifact_update=models.TaskArtifactUpdateEvent(
                task_id="t", context_id="c", artifact=artifact(), append=True, last_chunk=False
            )
        ),
    ]


@pytest.mark.parametrize("sr", stream_responses(), ids=["task", "message", "status", "artifact"])
def test_stream_response_round_trip(sr: models.StreamResponse) -> None:
    out = v03.stream_response_to_v03(sr)
    assert out["kind"] in ("task", "message", "status-update", "artifact-update")
    assert v03.stream_response_from_v03(out) == sr
    assert v03.stream_response_to_v03(models.dump(sr)) == out
    assert v03.result_to_v03(sr) == out
    # a result without kind is still recognised
    no_kind = {k: v for k, v in out.items() if k != "kind"}
    assert v03.stream_response_from_v03(no_kind) == sr


def test_stream_final_override_only_touches_status_updates() -> None:
    status, art = stream_responses()[2:]
    assert v03.stream_response_to_v03(status)["final"] is True
    assert v03.stream_response_to_v03(status, final=False)["final"] is False
    assert "final" not in v03.stream_response_to_v03(art, final=True)


@pytest.mark.parametrize("resp", [
    models.SendMessageResponse(task=task(models.TaskState.COMPLETED)),
    models.SendMessageResponse(message=full_message()),
], ids=["task", "message"])
def test_send_response_round_trip(resp: models.SendMessageResponse) -> None:
    out = v03.send_response_to_v03(resp)
    assert out["kind"] in ("task", "message")
    assert "task" not in out or out["kind"] == "task"  # bare object, not a wrapper
    assert v03.send_response_from_v03(out) == resp
    assert v03.result_to_v03(resp) == out


def test_send_response_rejects_events() -> None:
    ev = v03.stream_response_to_v03(stream_responses()[2])
    with pytest.raises(ValueError, match="task or a message"):
        v03.send_response_from_v03(ev)


# --- push notification configs ------------------------------------------------------


@pytest.mark.parametrize("cfg", push_configs(), ids=lambda c: repr(models.dump(c))[:70])
def test_push_config_round_trip(cfg: models.TaskPushNotificationConfig) -> None:
    out = v03.push_config_to_v03(cfg)
    assert out["taskId"] == "t-1"
    inner = out["pushNotificationConfig"]
    assert inner["url"] == cfg.url
    if cfg.authentication is not None:
        scheme = cfg.authentication.scheme
        assert inner["authentication"]["schemes"] == ([scheme] if scheme else [])
    assert v03.push_config_from_v03(out) == cfg
    assert v03.result_to_v03(cfg) == out


def test_push_config_shape_and_multiple_schemes() -> None:
    wire = {
        "taskId": "t",
        "pushNotificationConfig": {
            "id": "c", "url": "https://h", "token": "tok",
            "authentication": {"schemes": ["Bearer", "Basic"], "credentials": "x"},
        },
    }
    cfg = v03.push_config_from_v03(wire)
    assert models.dump(cfg) == {
        "taskId": "t", "id": "c", "url": "https://h", "token": "tok",
        "authentication": {"scheme": "Bearer", "credentials": "x"},
    }


def test_push_list_round_trip() -> None:
    resp = models.ListTaskPushNotificationConfigsResponse(configs=push_configs())
    out = v03.push_configs_to_v03(resp)
    assert isinstance(out, list) and len(out) == len(push_configs())
    assert v03.push_configs_from_v03(out) == resp
    assert v03.result_to_v03(resp) == out
    assert v03.push_configs_to_v03(models.ListTaskPushNotificationConfigsResponse(configs=[])) == []


def test_push_request_params_round_trip() -> None:
    get = models.GetTaskPushNotificationConfigRequest(task_id="t", id="c")
    assert v03.push_config_get_to_v03(get) == {"id": "t", "pushNotificationConfigId": "c"}
    assert v03.push_config_get_from_v03(v03.push_config_get_to_v03(get)) == get
    lst = models.ListTaskPushNotificationConfigsRequest(task_id="t")
    assert v03.push_config_list_to_v03(lst) == {"id": "t"}
    assert v03.push_config_list_from_v03({"id": "t", "metadata": {"x": 1}}) == lst
    delete = models.DeleteTaskPushNotificationConfigRequest(task_id="t", id="c")
    assert v03.push_config_delete_to_v03(delete) == {"id": "t", "pushNotificationConfigId": "c"}
    assert v03.push_config_delete_from_v03(v03.push_config_delete_to_v03(delete)) == delete


def test_push_get_with_bare_task_id_params() -> None:
    req = v03.push_config_get_from_v03({"id": "t"})
    assert req == models.GetTaskPushNotificationConfigRequest(task_id="t", id="t")


# --- request params -------------------------------------------------------------------


def send_requests() -> list[models.SendMessageRequest]:
    out = [models.SendMessageRequest(message=msg())]
    for ret in (None, True, False):
        out.append(
            models.SendMessageRequest(
                message=full_message(models.Role.USER),
                configuration=models.SendMessageConfiguration(return_immediately=ret),
            )
        )
    out.append(
        models.SendMessageRequest(
            message=msg(context_id="ctx", task_id="t"),
            metadata={"req": True},
            configuration=models.SendMessageConfiguration(
                accepted_output_modes=["text/plain", "application/json"],
                history_length=5,
                return_immediately=False,
                task_push_notification_config=models.TaskPushNotificationConfig(
                    id="c", url="https://h", token="tok",
                    authentication=models.AuthenticationInfo(scheme="Bearer", credentials="x"),
                ),
            ),
        )
    )
    out.append(
        models.SendMessageRequest(
            message=msg(),
            configuration=models.SendMessageConfiguration(
                task_push_notification_config=models.TaskPushNotificationConfig(url="https://h")
            ),
        )
    )
    return out


@pytest.mark.parametrize("req", send_requests())
def test_send_params_round_trip(req: models.SendMessageRequest) -> None:
    out = v03.send_params_to_v03(req)
    ret = req.configuration.return_immediately if req.configuration else None
    cfg = out.get("configuration", {})
    assert cfg.get("blocking") == (None if ret is None else not ret)
    assert ("blocking" in cfg) is (ret is not None)
    assert v03.send_params_from_v03(out) == req
    assert v03.request_from_v03("message/send", out) == req
    assert v03.request_from_v03("message/stream", out) == req


@pytest.mark.parametrize(("blocking", "expected"), [(True, False), (False, True), (None, None)])
def test_blocking_to_return_immediately(blocking: bool | None, expected: bool | None) -> None:
    config: dict[str, Any] = {} if blocking is None else {"blocking": blocking}
    wire = {"message": v03.message_to_v03(msg()), "configuration": config}
    req = v03.send_params_from_v03(wire)
    assert req.configuration is not None
    assert req.configuration.return_immediately is expected


def test_send_params_push_config_becomes_task_push_config() -> None:
    wire = {
        "message": {"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "x"}]},
        "configuration": {
            "pushNotificationConfig": {
                "url": "https://h", "authentication": {"schemes": ["Bearer"]},
            },
        },
    }
    cfg = v03.send_params_from_v03(wire).configuration
    assert cfg is not None
    assert models.dump(cfg) == {
        "taskPushNotificationConfig": {"url": "https://h", "authentication": {"scheme": "Bearer"}}
    }


def test_history_length_zero_means_no_limit() -> None:
    wire = {"message": v03.message_to_v03(msg()), "configuration": {"historyLength": 0}}
    cfg = v03.send_params_from_v03(wire).configuration
    assert cfg is not None and cfg.history_length is None
    assert v03.task_query_from_v03({"id": "t", "historyLength": 0}).history_length is None


@pytest.mark.parametrize("req", [
    models.GetTaskRequest(id="t"), models.GetTaskRequest(id="t", history_length=3),
])
def test_task_query_round_trip(req: models.GetTaskRequest) -> None:
    out = v03.task_query_to_v03(req)
    assert v03.task_query_from_v03(out) == req
    assert v03.request_from_v03("tasks/get", {**out, "metadata": {"x": 1}}) == req


def test_task_id_params() -> None:
    cancel = models.CancelTaskRequest(id="t", metadata={"why": "user"})
    assert v03.task_id_to_v03(cancel) == {"id": "t", "metadata": {"why": "user"}}
    assert v03.task_id_from_v03(v03.task_id_to_v03(cancel)) == cancel
    assert v03.request_from_v03("tasks/cancel", {"id": "t", "metadata": {"why": "user"}}) == cancel
    sub = models.SubscribeToTaskRequest(id="t")
    assert v03.task_id_from_v03(v03.task_id_to_v03(sub), models.SubscribeToTaskRequest) == sub
    assert v03.request_from_v03("tasks/resubscribe", {"id": "t", "metadata": {"a": 1}}) == sub


def test_request_dispatch() -> None:
    assert set(v03.V03_METHODS) == {
        "message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe",
        "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete",
        "agent/getAuthenticatedExtendedCard",
    }
    cfg = push_configs()[-1]
    assert v03.request_from_v03(
        "tasks/pushNotificationConfig/set", v03.push_config_to_v03(cfg)
    ) == cfg
    assert isinstance(
        v03.request_from_v03("agent/getAuthenticatedExtendedCard", None),
        models.GetExtendedAgentCardRequest,
    )
    with pytest.raises(MethodNotFoundError):
        v03.request_from_v03("tasks/list", {})
    with pytest.raises(pydantic.ValidationError):
        v03.request_from_v03("tasks/get", None)


def test_result_dispatch() -> None:
    t = task()
    assert v03.result_to_v03(t) == v03.task_to_v03(t)
    assert v03.result_to_v03(full_message()) == v03.message_to_v03(full_message())
    assert v03.result_to_v03(None) is None
    with pytest.raises(TypeError):
        v03.result_to_v03(models.GetTaskRequest(id="t"))


# --- validation errors name the 0.3 field -------------------------------------------------


def errors_of(fn: Any, payload: Any) -> dict[tuple[Any, ...], str]:
    with pytest.raises(pydantic.ValidationError) as info:
        fn(payload)
    return {e["loc"]: e["msg"] for e in info.value.errors()}


def test_send_params_errors_name_03_fields() -> None:
    errs = errors_of(v03.send_params_from_v03, {
        "message": {
            "kind": "task", "messageId": "", "role": "ROLE_USER",
            "parts": [
                {"kind": "text"},
                {"kind": "file", "file": {}},
                {"kind": "file", "file": {"bytes": RAW, "uri": "u"}},
                {"kind": "image", "text": "x"},
                {},
                {"kind": "data", "data": [1]},
                {"kind": "text", "text": 5},
                {"kind": "file", "file": {"bytes": "é"}},
            ],
        },
        "configuration": {"historyLength": -1, "blocking": "maybe",
                          "pushNotificationConfig": {"url": ""}},
        "metadata": [],
    })
    assert set(errs) == {
        ("message", "kind"),
        ("message", "messageId"),
        ("message", "role"),
        ("message", "parts", 0),
        ("message", "parts", 1, "file"),
        ("message", "parts", 2, "file"),
        ("message", "parts", 3, "kind"),
        ("message", "parts", 4),
        ("message", "parts", 5, "data"),
        ("message", "parts", 6, "text"),
        ("message", "parts", 7, "file", "bytes"),
        ("configuration", "historyLength"),
        ("configuration", "blocking"),
        ("configuration", "pushNotificationConfig", "url"),
        ("metadata",),
    }
    assert "text" in errs[("message", "parts", 0)]
    assert "bytes or uri" in errs[("message", "parts", 1, "file")]
    assert "base64" in errs[("message", "parts", 7, "file", "bytes")]


def test_missing_fields_are_named() -> None:
    assert set(errors_of(v03.send_params_from_v03, {})) == {("message",)}
    assert set(errors_of(v03.send_params_from_v03, {"message": {"parts": []}})) == {
        ("message", "messageId"), ("message", "role"),
    }
    assert set(errors_of(v03.task_query_from_v03, {"historyLength": 2})) == {("id",)}
    assert set(errors_of(v03.task_id_from_v03, {"id": ""})) == {("id",)}
    assert set(errors_of(v03.push_config_from_v03, {"pushNotificationConfig": {}})) == {
        ("taskId",), ("pushNotificationConfig", "url"),
    }
    assert set(errors_of(v03.push_config_delete_from_v03, {"id": "t"})) == {
        ("pushNotificationConfigId",),
    }
    assert set(errors_of(v03.push_config_from_v03, {
        "taskId": "t", "pushNotificationConfig": {"url": "u", "authentication": {}},
    })) == {("pushNotificationConfig", "authentication", "schemes")}


def test_task_and_event_errors_name_03_fields() -> None:
    errs = errors_of(v03.task_from_v03, {
        "kind": "task", "id": "t", "contextId": "c",
        "status": {"state": "TASK_STATE_WORKING"},
        "artifacts": [{"artifactId": "", "parts": []}],
    })
    assert set(errs) == {("status", "state"), ("artifacts", 0, "artifactId")}
    errs = errors_of(v03.stream_response_from_v03, {"kind": "nope"})
    assert list(errs) == [()]


def test_rendered_error_message() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        v03.send_params_from_v03({"message": {
            "messageId": "m", "role": "user", "parts": [{"kind": "file", "file": {"name": "x"}}],
        }})
    assert format_validation_error(info.value) == (
        "params.message.parts[0].file: a file needs exactly one of bytes or uri"
    )


# --- agent card ---------------------------------------------------------------------------


SCHEMES_10: dict[str, dict[str, Any]] = {
    "key": {"apiKeySecurityScheme": {"location": "header", "name": "X-Key", "description": "k"}},
    "bearer": {"httpAuthSecurityScheme": {"scheme": "bearer", "bearerFormat": "JWT"}},
    "oauth": {"oauth2SecurityScheme": {"flows": {"clientCredentials": {
        "tokenUrl": "https://auth/token", "scopes": {"read": "Read"},
    }}, "oauth2MetadataUrl": "https://auth/.well-known"}},
    "oidc": {"openIdConnectSecurityScheme": {"openIdConnectUrl": "https://auth/oidc"}},
    "mtls": {"mtlsSecurityScheme": {"description": "client certs"}},
}


def card(**over: Any) -> models.AgentCard:
    fields: dict[str, Any] = {
        "name": "Agent",
        "description": "does things",
        "version": "1.2.3",
        "supported_interfaces": [
            models.AgentInterface(url="https://a/rpc", protocol_binding="JSONRPC",
                                  protocol_version="1.0"),
            models.AgentInterface(url="https://a/v03", protocol_binding="JSONRPC",
                                  protocol_version="0.3"),
            models.AgentInterface(url="https://a/v03/rest", protocol_binding="HTTP+JSON",
                                  protocol_version="0.3"),
        ],
        "provider": models.AgentProvider(url="https://org", organization="Org"),
        "documentation_url": "https://docs",
        "icon_url": "https://icon",
        "capabilities": models.AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=True,
            extensions=[models.AgentExtension(uri="urn:e", required=False, params={"p": 1})],
        ),
        "security_schemes": SCHEMES_10,
        "security_requirements": [
            {"schemes": {"oauth": {"list": ["read"]}}},
            {"schemes": {"key": {"list": []}, "mtls": {"list": []}}},
        ],
        "default_input_modes": ["text/plain"],
        "default_output_modes": ["text/plain", "application/json"],
        "skills": [
            models.AgentSkill(id="s", name="S", description="skill", tags=["t"],
                              examples=["do it"], input_modes=["text/plain"],
                              security_requirements=[{"schemes": {"bearer": {"list": []}}}]),
            models.AgentSkill(id="s2", name="S2", description="plain", tags=[]),
        ],
        "signatures": [models.AgentCardSignature(protected="p", signature="s", header={"k": 1})],
    }
    return models.AgentCard(**{**fields, **over})


def test_card_to_v03_fields() -> None:
    fields = v03.card_to_v03_fields(card())
    assert fields == {
        "url": "https://a/v03",
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "additionalInterfaces": [
            {"url": "https://a/v03", "transport": "JSONRPC"},
            {"url": "https://a/v03/rest", "transport": "HTTP+JSON"},
        ],
        "supportsAuthenticatedExtendedCard": True,
        "security": [{"oauth": ["read"]}, {"key": [], "mtls": []}],
    }
    assert not set(fields) & set(models.dump(card()))  # nothing clashes with a 1.0 field


def test_card_without_v03_interface() -> None:
    c = card(supported_interfaces=[card().supported_interfaces[0]])
    assert v03.card_to_v03_fields(c) == {}
    assert v03.dual_version_card(c) == models.dump(c)


def test_dual_card_round_trip() -> None:
    c = card()
    dual = v03.dual_version_card(c)
    assert dual["securitySchemes"]["key"]["type"] == "apiKey"
    assert dual["securitySchemes"]["key"]["in"] == "header"
    assert dual["securitySchemes"]["key"]["apiKeySecurityScheme"]["location"] == "header"
    assert dual["skills"][0]["security"] == [{"bearer": []}]
    assert v03.card_from_v03(dual) == c
    assert v03.result_to_v03(c) == dual


def test_pure_v03_card() -> None:
    dual = v03.dual_version_card(card())
    legacy = {k: v for k, v in dual.items() if k not in ("supportedInterfaces",
                                                          "securityRequirements")}
    legacy["securitySchemes"] = {
        n: {k: v for k, v in s.items() if not k.endswith("SecurityScheme")}
        for n, s in dual["securitySchemes"].items()
    }
    legacy["skills"] = [
        {k: v for k, v in s.items() if k != "securityRequirements"} for s in dual["skills"]
    ]
    parsed = v03.card_from_v03(legacy)
    expected = card(supported_interfaces=card().supported_interfaces[1:])
    assert parsed == expected


def test_v03_card_interfaces_dedupe_and_defaults() -> None:
    parsed = v03.card_from_v03({
        "name": "n", "description": "d", "url": "https://a", "version": "1",
        "capabilities": {"stateTransitionHistory": True},
        "defaultInputModes": [], "defaultOutputModes": [], "skills": [],
        "additionalInterfaces": [{"url": "https://a", "transport": "JSONRPC"},
                                 {"url": "https://a/g", "transport": "GRPC"}],
    })
    assert [(i.url, i.protocol_binding, i.protocol_version)
            for i in parsed.supported_interfaces] == [
        ("https://a", "JSONRPC", "0.3"), ("https://a/g", "GRPC", "0.3"),
    ]
    assert parsed.capabilities == models.AgentCapabilities()


def test_v03_card_errors() -> None:
    errs = errors_of(v03.card_from_v03, {
        "name": "n", "description": "d", "version": "1", "capabilities": {},
        "defaultInputModes": [], "defaultOutputModes": [], "skills": [{"id": "s"}],
        "securitySchemes": {"x": {"type": "magic"}},
    })
    assert set(errs) == {
        ("url",), ("skills", 0, "name"), ("skills", 0, "description"), ("skills", 0, "tags"),
        ("securitySchemes",),
    }


# --- interop with the official SDK's 0.3 types -------------------------------------------


@pytest.fixture
def t03() -> Any:
    pytest.importorskip("a2a")
    from a2a.compat.v0_3 import types

    return types


def sdk_json(obj: Any) -> Any:
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)


def sdk_objects(t: Any) -> dict[str, Any]:
    parts = [
        t.Part(root=t.TextPart(text="hi", metadata={"m": 1})),
        t.Part(root=t.FilePart(file=t.FileWithBytes(bytes=RAW, mime_type="text/plain",
                                                    name="h.txt"))),
        t.Part(root=t.FilePart(file=t.FileWithUri(uri="https://f", mime_type="image/png"))),
        t.Part(root=t.DataPart(data={"a": [1, 2]})),
        t.Part(root=t.DataPart(data={"value": [1]}, metadata={"data_part_compat": True})),
    ]
    message = t.Message(message_id="m", role=t.Role.user, parts=parts, context_id="c",
                        task_id="t", reference_task_ids=["t0"], extensions=["urn:x"],
                        metadata={"k": "v"})
    art = t.Artifact(artifact_id="a", name="n", description="d", parts=parts, metadata={"a": 1},
                     extensions=["urn:y"])
    status = t.TaskStatus(state=t.TaskState.input_required,
                          message=message.model_copy(update={"role": t.Role.agent}),
                          timestamp="2026-01-02T03:04:05.678Z")
    task_ = t.Task(id="t", context_id="c", status=status, artifacts=[art], history=[message],
                   metadata={"x": 1})
    return {
        "message": message,
        "task": task_,
        "status": t.TaskStatusUpdateEvent(task_id="t", context_id="c", status=status, final=True,
                                          metadata={"e": 1}),
        "artifact": t.TaskArtifactUpdateEvent(task_id="t", context_id="c", artifact=art,
                                              append=True, last_chunk=False),
    }


def test_sdk_v03_results_round_trip(t03: Any) -> None:
    for name, obj in sdk_objects(t03).items():
        wire = sdk_json(obj)
        ours = v03.stream_response_from_v03(wire)
        back = v03.stream_response_to_v03(ours)
        assert back == wire, name
        # and our output is valid to the SDK's own model
        assert sdk_json(type(obj).model_validate(back)) == wire


def test_sdk_v03_params_parse(t03: Any) -> None:
    objs = sdk_objects(t03)
    params = t03.MessageSendParams(
        message=objs["message"],
        configuration=t03.MessageSendConfiguration(
            accepted_output_modes=["text/plain"], history_length=2, blocking=False,
            push_notification_config=t03.PushNotificationConfig(
                url="https://h", id="c", token="tok",
                authentication=t03.PushNotificationAuthenticationInfo(schemes=["Bearer"],
                                                                       credentials="x"),
            ),
        ),
        metadata={"r": 1},
    )
    wire = sdk_json(params)
    req = v03.send_params_from_v03(wire)
    assert req.configuration is not None and req.configuration.return_immediately is True
    assert v03.send_params_to_v03(req) == wire
    assert sdk_json(t03.MessageSendParams.model_validate(v03.send_params_to_v03(req))) == wire

    push = t03.TaskPushNotificationConfig(
        task_id="t", push_notification_config=params.configuration.push_notification_config
    )
    assert v03.push_config_to_v03(v03.push_config_from_v03(sdk_json(push))) == sdk_json(push)
    for model, fn, back in [
        (t03.TaskQueryParams(id="t", history_length=3), v03.task_query_from_v03,
         v03.task_query_to_v03),
        (t03.TaskIdParams(id="t", metadata={"a": 1}), v03.task_id_from_v03, v03.task_id_to_v03),
        (t03.GetTaskPushNotificationConfigParams(id="t", push_notification_config_id="c"),
         v03.push_config_get_from_v03, v03.push_config_get_to_v03),
        (t03.DeleteTaskPushNotificationConfigParams(id="t", push_notification_config_id="c"),
         v03.push_config_delete_from_v03, v03.push_config_delete_to_v03),
        (t03.ListTaskPushNotificationConfigParams(id="t"), v03.push_config_list_from_v03,
         v03.push_config_list_to_v03),
    ]:
        assert back(fn(sdk_json(model))) == sdk_json(model)


def test_our_v03_output_validates_with_sdk(t03: Any) -> None:
    for sr in stream_responses():
        out = v03.stream_response_to_v03(sr)
        t03.SendStreamingMessageSuccessResponse(id=1, result=out)
    for state in models.TaskState:
        t03.Task.model_validate(v03.task_to_v03(task(state)))
    for cfg in push_configs():
        t03.TaskPushNotificationConfig.model_validate(v03.push_config_to_v03(cfg))
    for req in send_requests():
        t03.MessageSendParams.model_validate(v03.send_params_to_v03(req))
    for p in all_parts():
        t03.Part.model_validate(v03.part_to_v03(p))


def test_dual_card_validates_with_sdk(t03: Any) -> None:
    dual = v03.dual_version_card(card())
    sdk_card = t03.AgentCard.model_validate(dual)
    assert sdk_card.url == "https://a/v03"
    assert sdk_card.preferred_transport == "JSONRPC"
    assert sdk_card.security == [{"oauth": ["read"]}, {"key": [], "mtls": []}]
    assert sdk_card.skills[0].security == [{"bearer": []}]
    assert sdk_card.security_schemes["key"].root.in_.value == "header"
    assert {n: s.root.type for n, s in sdk_card.security_schemes.items()} == {
        "key": "apiKey", "bearer": "http", "oauth": "oauth2", "oidc": "openIdConnect",
        "mtls": "mutualTLS",
    }
    # and a card the SDK writes in 0.3 form reads back to the same 1.0 card
    pure = sdk_json(sdk_card)
    pure.pop("supportedInterfaces", None)
    expected = card(supported_interfaces=card().supported_interfaces[1:])
    assert v03.card_from_v03(pure) == expected


def test_sdk_core_conversion_agrees(t03: Any) -> None:
    """The SDK's own 0.3 -> 1.0 conversion reads our output as we meant it."""
    from a2a.compat.v0_3 import conversions
    from a2a.types import a2a_pb2
    from google.protobuf.json_format import MessageToDict, ParseDict

    t = task(models.TaskState.COMPLETED, status=models.TaskStatus(
        state=models.TaskState.COMPLETED, message=msg(models.Role.AGENT, parts=[
            models.Part(data=[1, "x"]), models.Part(data="s"), models.Part(data={"a": 1}),
            models.Part(raw=RAW, filename="f", media_type="x/y"), models.Part(url="u"),
            models.Part(text="t", metadata={"k": 1}),
        ]),
    ), artifacts=None, history=None)
    core = conversions.to_core_task(t03.Task.model_validate(v03.task_to_v03(t)))
    assert MessageToDict(core) == models.dump(t)
    # and the SDK's 1.0 -> 0.3 conversion matches ours where both are lossless
    sdk_out = conversions.to_compat_task(ParseDict(models.dump(t), a2a_pb2.Task()))
    assert sdk_json(sdk_out) == v03.task_to_v03(t)


def test_tables_cover_every_enum_member_and_exports_exist() -> None:
    assert set(STATES_03) == set(models.TaskState)
    assert len(set(STATES_03.values())) == len(STATES_03)
    assert all(hasattr(v03, name) for name in v03.__all__)
    assert len(set(v03.__all__)) == len(v03.__all__)
