"""The 0.3 HTTP+JSON wire shape (a2a_v0_3.proto JSON) and the REST query parsing.

Our output is checked against the official 0.3 proto (a2a-sdk's compat copy) with
`google.protobuf.json_format`, which rejects unknown fields and bad enum names.
"""

from __future__ import annotations

import ast
import base64
from pathlib import Path
from typing import Any

import pydantic
import pytest

from protocol import models, v03_rest
from protocol.errors import InvalidParamsError
from protocol.v03_rest import (
    check_task_id,
    list_tasks_from_query,
    list_tasks_to_proto03,
    message_to_proto03,
    model_from_query,
    push_config_from_proto03,
    push_config_to_proto03,
    push_configs_to_proto03,
    send_params_from_proto03,
    send_response_to_proto03,
    status_param,
    stream_response_to_proto03,
    task_query_from_proto03,
    task_to_proto03,
)

RAW = base64.b64encode(b"hello world").decode()


@pytest.fixture(scope="module")
def pb() -> Any:
    return pytest.importorskip("a2a.compat.v0_3.a2a_v0_3_pb2")


@pytest.fixture(scope="module")
def json_format() -> Any:
    return pytest.importorskip("google.protobuf.json_format")


def parses(json_format: Any, message_type: Any, value: dict[str, Any]) -> Any:
    """`value` is valid JSON for `message_type` (no unknown fields, known enums)."""
    return json_format.ParseDict(value, message_type(), ignore_unknown_fields=False)


# --- builders ------------------------------------------------------------------------


def message(role: str = "ROLE_USER", **extra: Any) -> models.Message:
    return models.Message.model_validate({
        "messageId": "m1", "contextId": "c1", "taskId": "t1", "role": role,
        "parts": [
            {"text": "hi", "metadata": {"k": "v"}},
            {"url": "https://example.com/f.pdf", "mediaType": "application/pdf",
             "filename": "f.pdf"},
            {"raw": RAW, "mediaType": "text/plain"},
            {"data": {"a": 1, "b": [1, 2]}},
        ],
        **extra,
    })


def task(state: models.TaskState = models.TaskState.WORKING) -> models.Task:
    return models.Task.model_validate({
        "id": "t1", "contextId": "c1",
        "status": {"state": state.value, "message": message("ROLE_AGENT").model_dump(
            by_alias=True, exclude_none=True), "timestamp": "2025-01-01T00:00:00Z"},
        "artifacts": [{"artifactId": "a1", "name": "out", "parts": [{"text": "done"}],
                       "metadata": {"m": 1}}],
        "history": [message().model_dump(by_alias=True, exclude_none=True)],
        "metadata": {"x": "y"},
    })


def push(**extra: Any) -> models.TaskPushNotificationConfig:
    return models.TaskPushNotificationConfig.model_validate({
        "id": "cfg1", "taskId": "t1", "url": "https://hooks.example.com/a2a",
        "token": "tok", "authentication": {"scheme": "Bearer", "credentials": "secret"},
        **extra,
    })


PROTO_MESSAGE = {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": "hi"}]}


# --- send: proto JSON in -------------------------------------------------------------


def test_send_camel_case_proto_json() -> None:
    req = send_params_from_proto03({
        "message": {
            "messageId": "m1", "contextId": "c1", "role": "ROLE_USER",
            "content": [
                {"text": "hi"},
                {"file": {"fileWithUri": "https://example.com/f", "mimeType": "a/b",
                          "name": "f"}},
                {"file": {"fileWithBytes": RAW}},
                {"data": {"data": {"k": [1]}}},
            ],
            "metadata": {"snake_key": 1},
        },
        "configuration": {"blocking": True, "historyLength": 3,
                          "acceptedOutputModes": ["text/plain"]},
    })
    m = req.message
    assert (m.message_id, m.context_id, m.role) == ("m1", "c1", models.Role.USER)
    assert m.metadata == {"snake_key": 1}  # Struct keys are data: not re-cased
    text, url, raw, data = m.parts
    assert text.text == "hi"
    assert (url.url, url.media_type, url.filename) == ("https://example.com/f", "a/b", "f")
    assert raw.raw == RAW
    assert data.data == {"k": [1]}
    cfg = req.configuration
    assert cfg is not None
    assert (cfg.return_immediately, cfg.history_length) == (False, 3)
    assert cfg.accepted_output_modes == ["text/plain"]


def test_send_snake_case_proto_json() -> None:
    """Proto field names, as ProtoJSON parsers accept them (`request` is `message`)."""
    req = send_params_from_proto03({
        "request": {"message_id": "m1", "context_id": "c1", "task_id": "t1",
                    "role": "ROLE_AGENT",
                    "content": [{"file": {"file_with_uri": "https://e.com/x",
                                          "mime_type": "image/png"}}]},
        "configuration": {
            "accepted_output_modes": ["text/plain"], "history_length": 2, "blocking": True,
            "push_notification": {"url": "https://hooks.example.com", "token": "t",
                                  "authentication": {"schemes": ["Bearer"],
                                                     "credentials": "c"}},
        },
    })
    m = req.message
    assert (m.message_id, m.context_id, m.task_id, m.role) == ("m1", "c1", "t1",
                                                                models.Role.AGENT)
    assert (m.parts[0].url, m.parts[0].media_type) == ("https://e.com/x", "image/png")
    cfg = req.configuration
    assert cfg is not None and cfg.task_push_notification_config is not None
    assert (cfg.history_length, cfg.accepted_output_modes) == (2, ["text/plain"])
    assert cfg.task_push_notification_config.url == "https://hooks.example.com"
    assert cfg.task_push_notification_config.authentication == models.AuthenticationInfo(
        scheme="Bearer", credentials="c")


@pytest.mark.parametrize(("role", "expected"), [
    ("ROLE_USER", models.Role.USER), ("ROLE_AGENT", models.Role.AGENT),
    (1, models.Role.USER), (2, models.Role.AGENT), ("user", models.Role.USER),
])
def test_send_role_names_and_numbers(role: Any, expected: models.Role) -> None:
    req = send_params_from_proto03({"message": {**PROTO_MESSAGE, "role": role}})
    assert req.message.role is expected


@pytest.mark.parametrize(("body", "return_immediately"), [
    # proto JSON: `blocking` is a proto3 bool, absent is false
    ({"message": PROTO_MESSAGE, "configuration": {}}, True),
    ({"message": PROTO_MESSAGE, "configuration": {"historyLength": 1}}, True),
    ({"message": PROTO_MESSAGE, "configuration": {"blocking": False}}, True),
    ({"message": PROTO_MESSAGE, "configuration": {"blocking": True}}, False),
    ({"message": {**PROTO_MESSAGE, "role": "user"}, "configuration": {}}, True),  # `content`
    # no configuration at all: the send blocks (the server default)
    ({"message": PROTO_MESSAGE}, None),
    # the JSON-RPC shape: its default is to block
    ({"message": {"kind": "message", "messageId": "m", "role": "user",
                  "parts": [{"kind": "text", "text": "hi"}]}, "configuration": {}}, None),
    ({"message": {"kind": "message", "messageId": "m", "role": "user",
                  "parts": [{"kind": "text", "text": "hi"}]},
      "configuration": {"blocking": False}}, True),
])
def test_send_missing_blocking(body: dict[str, Any], return_immediately: bool | None) -> None:
    req = send_params_from_proto03(body)
    got = None if req.configuration is None else req.configuration.return_immediately
    assert got is return_immediately


def test_send_json_rpc_shape() -> None:
    req = send_params_from_proto03({
        "message": {"kind": "message", "messageId": "m", "role": "agent", "parts": [
            {"kind": "text", "text": "a"},
            {"kind": "file", "file": {"uri": "https://e.com/f", "mimeType": "a/b"}},
            {"kind": "data", "data": {"data": 1}},  # a JSON-RPC DataPart is not unwrapped
        ]},
        "configuration": {"pushNotificationConfig": {"url": "https://hooks.example.com"}},
    })
    text, file, data = req.message.parts
    assert req.message.role is models.Role.AGENT
    assert (text.text, file.url, data.data) == ("a", "https://e.com/f", {"data": 1})
    cfg = req.configuration
    assert cfg is not None and cfg.task_push_notification_config is not None
    assert cfg.task_push_notification_config.url == "https://hooks.example.com"


def test_send_does_not_mutate_input() -> None:
    body = {"request": {"message_id": "m", "role": "ROLE_USER", "content": [{"text": "x"}]},
            "configuration": {"push_notification": {"url": "https://h.example.com"}}}
    before = repr(body)
    send_params_from_proto03(body)
    assert repr(body) == before


@pytest.mark.parametrize("body", [
    {"message": {"role": "ROLE_USER"}},  # no messageId, no content
    {"message": {**PROTO_MESSAGE, "role": "ROLE_UNSPECIFIED"}},
    {"configuration": {}},  # no message
    {"message": {**PROTO_MESSAGE, "content": [{"file": {"fileWithBytes": "not base64!"}}]}},
])
def test_send_invalid(body: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        send_params_from_proto03(body)


def test_send_from_sdk_proto(pb: Any, json_format: Any) -> None:
    """What the official 0.3 proto serializes, in both spellings, is read the same."""
    sent = pb.SendMessageRequest(
        request=pb.Message(
            message_id="m1", context_id="c1", role=pb.ROLE_USER,
            content=[pb.Part(text="hi"),
                     pb.Part(file=pb.FilePart(file_with_uri="https://e.com/f",
                                              mime_type="a/b")),
                     pb.Part(data=pb.DataPart(data={"k": "v"}))],
        ),
        configuration=pb.SendMessageConfiguration(accepted_output_modes=["text/plain"],
                                                  history_length=4),
    )
    camel = send_params_from_proto03(json_format.MessageToDict(sent))
    snake = send_params_from_proto03(
        json_format.MessageToDict(sent, preserving_proto_field_name=True))
    assert camel == snake
    assert camel.message.role is models.Role.USER
    assert [p.text or p.url or p.data for p in camel.message.parts] == [
        "hi", "https://e.com/f", {"k": "v"}]
    assert camel.configuration is not None
    assert camel.configuration.return_immediately is True  # blocking unset: proto3 false
    assert camel.configuration.history_length == 4


# --- proto JSON out ------------------------------------------------------------------


_STATE_NAMES = {
    models.TaskState.SUBMITTED: "TASK_STATE_SUBMITTED",
    models.TaskState.WORKING: "TASK_STATE_WORKING",
    models.TaskState.COMPLETED: "TASK_STATE_COMPLETED",
    models.TaskState.FAILED: "TASK_STATE_FAILED",
    models.TaskState.CANCELED: "TASK_STATE_CANCELLED",  # two Ls in the 0.3 proto
    models.TaskState.INPUT_REQUIRED: "TASK_STATE_INPUT_REQUIRED",
    models.TaskState.REJECTED: "TASK_STATE_REJECTED",
    models.TaskState.AUTH_REQUIRED: "TASK_STATE_AUTH_REQUIRED",
}


@pytest.mark.parametrize("state", list(_STATE_NAMES))
def test_task_state_enum(state: models.TaskState, pb: Any, json_format: Any) -> None:
    out = task_to_proto03(task(state))
    assert out["status"]["state"] == _STATE_NAMES[state]
    parsed = parses(json_format, pb.Task, out)
    assert pb.TaskState.Name(parsed.status.state) == _STATE_NAMES[state]


def test_task_shape(pb: Any, json_format: Any) -> None:
    out = task_to_proto03(task())
    assert "kind" not in out
    assert out["status"]["message"]["role"] == "ROLE_AGENT"
    [hist] = out["history"]
    assert hist["role"] == "ROLE_USER" and "parts" not in hist
    text, url, raw, data = hist["content"]
    assert text == {"text": "hi", "metadata": {"k": "v"}}
    assert url["file"] == {"fileWithUri": "https://example.com/f.pdf",
                           "mimeType": "application/pdf", "name": "f.pdf"}
    assert raw["file"]["fileWithBytes"] == RAW
    assert data["data"] == {"data": {"a": 1, "b": [1, 2]}}
    assert out["artifacts"][0]["parts"] == [{"text": "done"}]
    parsed = parses(json_format, pb.Task, out)
    assert parsed.history[0].content[2].file.file_with_bytes == b"hello world"
    assert json_format.MessageToDict(parsed) == out  # nothing extra, nothing lost


def test_task_without_optional_members(pb: Any, json_format: Any) -> None:
    t = models.Task.model_validate({"id": "t", "contextId": "c",
                                    "status": {"state": "TASK_STATE_SUBMITTED"}})
    out = task_to_proto03(t)
    assert out == {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}
    parses(json_format, pb.Task, out)


def test_message_round_trip(pb: Any, json_format: Any) -> None:
    """Out as proto JSON, back in through the send body: the same 1.0 message."""
    for role in ("ROLE_USER", "ROLE_AGENT"):
        m = message(role, metadata={"snake_case": {"x": 1}}, extensions=["urn:e"])
        out = message_to_proto03(m)
        parses(json_format, pb.Message, out)
        assert send_params_from_proto03({"message": out}).message == m


def test_send_response(pb: Any, json_format: Any) -> None:
    as_task = send_response_to_proto03(task())
    as_message = send_response_to_proto03(message())
    assert set(as_task) == {"task"} and set(as_message) == {"message"}
    assert parses(json_format, pb.SendMessageResponse, as_task).HasField("task")
    assert parses(json_format, pb.SendMessageResponse, as_message).HasField("msg")


def _event(**member: Any) -> models.StreamResponse:
    return models.StreamResponse.model_validate(member)


@pytest.mark.parametrize(("state", "final"), [
    (models.TaskState.WORKING, False), (models.TaskState.COMPLETED, True),
    (models.TaskState.CANCELED, True), (models.TaskState.INPUT_REQUIRED, True),
])
def test_stream_status_update(state: models.TaskState, final: bool, pb: Any,
                              json_format: Any) -> None:
    ev = _event(statusUpdate={"taskId": "t1", "contextId": "c1",
                              "status": {"state": state.value}, "metadata": {"m": 1}})
    out = stream_response_to_proto03(ev)
    assert out == {"statusUpdate": {"taskId": "t1", "contextId": "c1",
                                    "status": {"state": _STATE_NAMES[state]},
                                    "final": final, "metadata": {"m": 1}}}
    assert parses(json_format, pb.StreamResponse, out).status_update.final is final


def test_stream_other_members(pb: Any, json_format: Any) -> None:
    dumped_task = task().model_dump(by_alias=True, exclude_none=True)
    artifact = {"taskId": "t1", "contextId": "c1", "append": True, "lastChunk": False,
                "artifact": {"artifactId": "a", "parts": [{"data": [1, 2]}]}}
    cases = {
        "task": _event(task=dumped_task),
        "message": _event(message=message().model_dump(by_alias=True, exclude_none=True)),
        "artifactUpdate": _event(artifactUpdate=artifact),
    }
    for key, ev in cases.items():
        out = stream_response_to_proto03(ev)
        assert set(out) == {key}
        parses(json_format, pb.StreamResponse, out)
    art = stream_response_to_proto03(cases["artifactUpdate"])["artifactUpdate"]
    assert (art["append"], art["lastChunk"]) == (True, False)
    # a non-object 1.0 data value is wrapped (protocol.v03's data_part_compat rule)
    [part] = art["artifact"]["parts"]
    assert part["data"] == {"data": {"value": [1, 2]}}
    assert part["metadata"] == {"data_part_compat": True}


def test_list_tasks_out(pb: Any, json_format: Any) -> None:
    resp = models.ListTasksResponse(tasks=[task()], next_page_token="n", page_size=1,
                                    total_size=5)
    out = list_tasks_to_proto03(resp)
    assert (out["nextPageToken"], out["pageSize"], out["totalSize"]) == ("n", 1, 5)
    [t] = out["tasks"]
    assert t == task_to_proto03(task())
    parses(json_format, pb.Task, t)


# --- push configs --------------------------------------------------------------------


def test_push_config_out(pb: Any, json_format: Any) -> None:
    out = push_config_to_proto03(push())
    assert out == {
        "name": "tasks/t1/pushNotificationConfigs/cfg1",
        "pushNotificationConfig": {
            "id": "cfg1", "url": "https://hooks.example.com/a2a", "token": "tok",
            "authentication": {"schemes": ["Bearer"], "credentials": "secret"},
        },
    }
    parses(json_format, pb.TaskPushNotificationConfig, out)


def test_push_configs_out(pb: Any, json_format: Any) -> None:
    page = models.ListTaskPushNotificationConfigsResponse(configs=[push()],
                                                          next_page_token="p2")
    out = push_configs_to_proto03(page)
    assert out["nextPageToken"] == "p2"
    parses(json_format, pb.ListTaskPushNotificationConfigResponse, out)
    last = push_configs_to_proto03(models.ListTaskPushNotificationConfigsResponse(configs=[]))
    assert last == {"configs": []}


def test_push_config_round_trip() -> None:
    cfg = push()
    assert push_config_from_proto03(push_config_to_proto03(cfg), "t1") == cfg


@pytest.mark.parametrize("body", [
    # the SDK's CreateTaskPushNotificationConfigRequest: the id comes from configId
    {"parent": "tasks/t1", "configId": "cfg1",
     "config": {"name": "tasks/t1/pushNotificationConfigs/cfg1",
                "pushNotificationConfig": {"url": "https://h.example.com", "token": "tok"}}},
    {"parent": "tasks/t1", "config_id": "cfg1",
     "config": {"push_notification_config": {"url": "https://h.example.com",
                                             "token": "tok"}}},
    # the JSON-RPC TaskPushNotificationConfig and a bare PushNotificationConfig
    {"taskId": "t1", "pushNotificationConfig": {"id": "cfg1", "url": "https://h.example.com",
                                                "token": "tok"}},
    {"id": "cfg1", "url": "https://h.example.com", "token": "tok"},
])
def test_push_config_in_shapes(body: dict[str, Any]) -> None:
    got = push_config_from_proto03(body, "t1")
    assert (got.task_id, got.id, got.url, got.token) == ("t1", "cfg1", "https://h.example.com",
                                                         "tok")


def test_push_config_in_snake_authentication() -> None:
    got = push_config_from_proto03(
        {"push_notification_config": {"url": "https://h.example.com",
                                       "authentication": {"schemes": ["Basic", "Bearer"],
                                                          "credentials": "c"}}}, "t1")
    assert got.authentication == models.AuthenticationInfo(scheme="Basic", credentials="c")


def test_push_config_in_task_mismatch() -> None:
    with pytest.raises(InvalidParamsError) as info:
        push_config_from_proto03({"taskId": "other", "url": "https://h.example.com"}, "t1")
    assert info.value.metadata == {"taskId": "t1"}
    with pytest.raises(pydantic.ValidationError):
        push_config_from_proto03({"config": {"pushNotificationConfig": {}}}, "t1")


# --- query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("working", "TASK_STATE_WORKING"), (" Input-Required ", "TASK_STATE_INPUT_REQUIRED"),
    ("input_required", "TASK_STATE_INPUT_REQUIRED"),
    ("TASK_STATE_COMPLETED", "TASK_STATE_COMPLETED"),
    ("TASK_STATE_CANCELLED", "TASK_STATE_CANCELED"), ("cancelled", "TASK_STATE_CANCELED"),
    ("canceled", "TASK_STATE_CANCELED"), ("3", "3"),
])
def test_status_param(raw: str, expected: str) -> None:
    assert status_param(raw) == expected


def test_list_tasks_from_query() -> None:
    req = list_tasks_from_query({"contextId": "c", "status": "TASK_STATE_CANCELLED",
                                 "pageSize": "10", "includeArtifacts": "true",
                                 "historyLength": "0"})
    assert (req.context_id, req.status, req.page_size) == ("c", models.TaskState.CANCELED, 10)
    assert (req.include_artifacts, req.history_length) == (True, 0)
    assert list_tasks_from_query({}) == models.ListTasksRequest()


@pytest.mark.parametrize(("query", "parameter"), [
    ({"pageSize": "many"}, "pageSize"), ({"pageSize": "0"}, "pageSize"),
    ({"status": "sleeping"}, "status"), ({"statusTimestampAfter": "yesterday"},
                                         "statusTimestampAfter"),
])
def test_list_tasks_bad_query(query: dict[str, str], parameter: str) -> None:
    with pytest.raises(InvalidParamsError) as info:
        list_tasks_from_query(query)
    assert info.value.message.startswith("query parameter ")
    assert info.value.metadata == {"parameter": parameter}


def test_model_from_query_path_wins() -> None:
    req = model_from_query(models.ListTaskPushNotificationConfigsRequest,
                           {"taskId": "other", "pageSize": "5"}, {"taskId": "t1"})
    assert (req.task_id, req.page_size) == ("t1", 5)
    with pytest.raises(InvalidParamsError) as info:
        model_from_query(models.GetTaskRequest, {"historyLength": "-1"}, {"id": "t1"})
    assert info.value.metadata == {"parameter": "historyLength"}


def test_task_query_from_proto03() -> None:
    assert task_query_from_proto03({}, "t1") == models.GetTaskRequest(id="t1")
    # 0 meant "no limit" in 0.3
    assert task_query_from_proto03({"historyLength": "0"}, "t1").history_length is None
    assert task_query_from_proto03({"historyLength": "2"}, "t1").history_length == 2
    with pytest.raises(InvalidParamsError) as info:
        task_query_from_proto03({"historyLength": "x"}, "t1")
    assert info.value.metadata == {"parameter": "historyLength"}


@pytest.mark.parametrize("body", [{}, {"taskId": "t1"}, {"task_id": "t1"}, {"taskId": ""}])
def test_check_task_id_ok(body: dict[str, Any]) -> None:
    check_task_id(body, "t1")


@pytest.mark.parametrize("body", [{"taskId": "t2"}, {"task_id": "t2"}])
def test_check_task_id_mismatch(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidParamsError, match="does not match"):
        check_task_id(body, "t1")


# --- the module ----------------------------------------------------------------------


def test_all_is_complete() -> None:
    public = {n for n, v in vars(v03_rest).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == v03_rest.__name__}
    assert set(v03_rest.__all__) == public | {"LIST_TASKS_PARAMS"}
    assert len(set(v03_rest.__all__)) == len(v03_rest.__all__)


def test_sans_io_imports() -> None:
    tree = ast.parse(Path(v03_rest.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "collections", "typing", "pydantic", "attrs", "protocol"}
