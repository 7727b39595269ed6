"""protocol.legacy: which shape a tasks/send is, its 1.0 form, and the way back."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import legacy, models
from protocol.errors import InvalidParamsError
from protocol.legacy import EXTENSION_FIELDS_KEY, FLAT, SCHEMA, WIRE_KEY

TEXT = {"type": "text", "text": "hi"}
WORKTREE = {"taskId": "t-1", "branch": "task/t-1", "baseRef": "main", "path": "/w/t-1"}


def old(*parts: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "t-1", "message": {"role": "user", "parts": list(parts)}, **top}


@pytest.mark.parametrize(("params", "shape"), [
    (old(TEXT), "a2a-0.1"),
    ({"sessionId": "s", "message": {"role": "user", "parts": [{"text": "x"}]}}, "a2a-0.1"),
    ({"message": {"role": "user", "parts": [TEXT]}}, "a2a-0.1"),
    ({"message": {"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "x"}]}},
     "0.3"),
    ({"message": {"messageId": "m", "role": "user", "parts": [{"text": "x"}]}}, "0.3"),
    (old(TEXT) | {"message": {"messageId": "m", "role": "user", "parts": [TEXT]}}, "a2a-0.1"),
    (None, "0.3"),
    ([1], "0.3"),
])
def test_send_shape(params: Any, shape: str) -> None:
    assert legacy.send_shape(params) == shape


@pytest.mark.parametrize("params", [
    old({"kind": "text", "text": "x"}),
    old(TEXT, configuration={}),
    {"sessionId": "s", "message": {"contextId": "c", "role": "user", "parts": [TEXT]}},
    {"message": {"taskId": "t", "role": "user", "parts": [TEXT]}},
    {"message": {"role": "user", "parts": [{"type": "text", "kind": "text", "text": "x"}]}},
])
def test_mixed_shapes_are_ambiguous(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParamsError, match="mix two A2A shapes") as info:
        legacy.send_shape(params)
    assert "Accepted: A2A 0.1/0.2" in str(info.value)
    assert info.value.metadata == {"reason": "ambiguous-shape"}


def test_send_params_become_a_request_with_the_clients_ids() -> None:
    params = old(TEXT, sessionId="s-1", metadata={"m": 1}, historyLength=2,
                 acceptedOutputModes=["text"], tier="meta",
                 pushNotification={"url": "https://h.example/x", "token": "t",
                                   "authentication": {"schemes": ["Bearer"],
                                                      "credentials": "c"}})
    send = legacy.send_params_from_legacy(params, message_id="m-1")
    assert (send.task_id, send.session_id, send.dialect) == ("t-1", "s-1", SCHEMA)
    assert models.dump(send.request) == {
        "message": {"messageId": "m-1", "contextId": "s-1", "role": "ROLE_USER",
                    "parts": [{"text": "hi"}], "metadata": {WIRE_KEY: SCHEMA}},
        "configuration": {
            "acceptedOutputModes": ["text"], "historyLength": 2,
            "taskPushNotificationConfig": {"url": "https://h.example/x", "token": "t",
                                           "authentication": {"scheme": "Bearer",
                                                              "credentials": "c"}}},
        "metadata": {"m": 1, EXTENSION_FIELDS_KEY: {"tier": "meta"}},
    }


@pytest.mark.parametrize(("part", "dialect"), [
    ({"type": "data", "mimeType": "application/json", "data": '{"a":1}'}, FLAT),
    ({"type": "data", "mimeType": "text/csv", "data": "a,b"}, FLAT),
    ({"type": "file", "mimeType": "image/png", "fileName": "x.png", "data": "aGk="}, FLAT),
    ({"type": "file", "fileName": "x.bin", "data": "aGk="}, FLAT),
    ({"type": "file", "file": {"bytes": "aGk=", "mimeType": "image/png", "name": "x"}},
     SCHEMA),
    ({"type": "file", "file": {"uri": "https://h.example/f"}}, SCHEMA),
    ({"type": "data", "data": {"a": [1, 2]}}, SCHEMA),
    ({"type": "text", "text": "x", "metadata": {"k": "v"}, "lang": "en"}, SCHEMA),
])
def test_parts_round_trip_in_their_dialect(part: dict[str, Any], dialect: str) -> None:
    send = legacy.send_params_from_legacy(old(part), message_id="m")
    assert send.dialect == dialect
    back = legacy.message_to_legacy(send.request.message, dialect)
    assert back == {"role": "user", "parts": [part], "messageId": "m"}


def test_missing_base64_padding_is_added() -> None:
    send = legacy.send_params_from_legacy(
        old({"type": "file", "fileName": "a", "data": "aGVsbG8"}), message_id="m")
    assert send.request.message.parts[0].raw == "aGVsbG8="


def test_worktree_artifact_round_trips_through_metadata() -> None:
    wire = {"name": "patch", "description": "d", "parts": [TEXT], "worktree": WORKTREE,
            "metadata": {"k": 1}, "index": 0}
    art = legacy.artifact_from_legacy(wire, artifact_id="a-1")
    assert art.metadata == {"k": 1, EXTENSION_FIELDS_KEY: {"worktree": WORKTREE}}
    assert legacy.artifact_to_legacy(art) == wire


def test_extension_fields_never_replace_standard_members() -> None:
    art = models.Artifact(artifact_id="a", name="n", parts=[models.Part(text="x")],
                          metadata={EXTENSION_FIELDS_KEY: {"name": "evil", "extra": 1}})
    out = legacy.artifact_to_legacy(art)
    assert out["name"] == "n" and out["extra"] == 1 and "metadata" not in out


def test_flat_dialect_writes_any_data_as_text_and_schema_wraps_non_objects() -> None:
    part = models.Part(data=[1, 2])
    assert legacy.part_to_legacy(part, FLAT) == {"type": "data", "mimeType": "application/json",
                                                 "data": "[1,2]"}
    assert legacy.part_to_legacy(part, SCHEMA) == {
        "type": "data", "data": {"value": [1, 2]}, "metadata": {"data_part_compat": True}}


def test_stream_renderer_numbers_artifacts_and_marks_final() -> None:
    r = legacy.LegacyStreamRenderer(SCHEMA)
    task = models.Task(id="t", context_id="c",
                       status=models.TaskStatus(state=models.TaskState.SUBMITTED))

    def art(aid: str, **kw: Any) -> models.StreamResponse:
        return models.StreamResponse(artifact_update=models.TaskArtifactUpdateEvent(
            task_id="t", context_id="c",
            artifact=models.Artifact(artifact_id=aid, parts=[models.Part(text=aid)]), **kw))

    done = models.StreamResponse(status_update=models.TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=models.TaskStatus(state="TASK_STATE_COMPLETED")))
    out = [r(models.StreamResponse(task=task)), r(art("a")), r(art("b")),
           r(art("a", append=True, last_chunk=True)), r(done)]
    assert out[0] == {"id": "t", "status": {"state": "submitted"}, "final": False}
    assert [o["artifact"]["index"] for o in out[1:4]] == [0, 1, 0]
    assert out[3]["artifact"]["append"] is True and out[3]["artifact"]["lastChunk"] is True
    assert out[4] == {"id": "t", "status": {"state": "completed"}, "final": True}


def test_dialect_of_reads_the_first_message() -> None:
    send = legacy.send_params_from_legacy(old(TEXT), message_id="m", flat=True)
    task = models.Task(id="t", context_id="c", history=[send.request.message],
                       status=models.TaskStatus(state=models.TaskState.SUBMITTED))
    assert legacy.dialect_of(task) == FLAT
    assert legacy.dialect_of(task.model_copy(update={"history": None})) is None
