"""Worker-link frames: round trips, the documented examples, malformed input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from protocol.models import StreamResponse, dump
from protocol.worker_link import (
    ACK,
    INVALID_FRAME,
    LINK_ERROR_CODES,
    LINK_HTTP_STATUS,
    LINK_VERSION,
    OP_BODIES,
    OP_REPLIES,
    SERVER_OPS,
    STALE_ATTEMPT,
    UNKNOWN_OP,
    UNSUPPORTED_VERSION,
    WORKER_OPS,
    CancelBody,
    ClaimBody,
    ClaimReply,
    DrainBody,
    EmptyReply,
    Frame,
    GoAwayBody,
    HeartbeatBody,
    HeartbeatReply,
    LeaseRef,
    LinkModel,
    LinkProtocolError,
    LinkRefusedError,
    LostLease,
    OfferBody,
    OutputBody,
    OutputReply,
    RegisterBody,
    RegisterReply,
    ReleaseBody,
    ReleaseReply,
    RenewedLease,
    StatusBody,
    TokenUsage,
    ack,
    decode_frame,
    encode_frame,
    error_ack,
    parse_reply,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "worker-link.md"

TASK = {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_SUBMITTED"}}
MESSAGE = {"messageId": "m1", "contextId": "c1", "taskId": "t1", "role": "ROLE_USER",
           "parts": [{"text": "hi"}]}
ARTIFACT = {"artifactId": "a1", "name": "out", "parts": [{"text": "done"}]}

# Every kind of StreamResponse, with the awkward bits: nulls inside metadata and data
# parts, raw bytes, files by URL, non-ASCII text, explicit false flags.
EVENTS: list[dict[str, Any]] = [
    {"task": {**TASK, "metadata": {"k": None, "nested": {"x": [1, None, "ü"]}}}},
    {"message": {"messageId": "m2", "role": "ROLE_AGENT", "parts": [
        {"text": "héllo ✓ 𝄞"}, {"data": {"a": None, "b": [True, 1.5]}},
        {"raw": "aGVsbG8=", "mediaType": "application/octet-stream", "filename": "h.bin"},
        {"url": "https://example.com/f.png", "mediaType": "image/png"}]}},
    {"statusUpdate": {"taskId": "t1", "contextId": "c1", "status": {
        "state": "TASK_STATE_WORKING", "timestamp": "2026-01-01T00:00:00.123Z",
        "message": {"messageId": "m3", "role": "ROLE_AGENT", "parts": [{"text": "thinking"}]}},
        "metadata": {"seq": 3}}},
    {"artifactUpdate": {"taskId": "t1", "contextId": "c1", "artifact": ARTIFACT,
                        "append": False, "lastChunk": True}},
]

BODIES: dict[str, LinkModel] = {
    "register": RegisterBody(worker_id="w1", name="box", hostname="box.lan",
                             capabilities=["gpu"], max_concurrent_tasks=2, agents=["echo"],
                             models={"openai": ["gpt-4o"], "ollama": []}),
    "heartbeat": HeartbeatBody(worker_id="w1", agent="echo", status="processing",
                               active_tasks=1, leases=[LeaseRef(task_id="t1", attempt_id="a1")]),
    "claim": ClaimBody(worker_id="w1", task_id="t1"),
    "output": OutputBody(task_id="t1", attempt_id="a1", seq=1,
                         events=[StreamResponse.model_validate(e) for e in EVENTS]),
    "status": StatusBody(task_id="t1", attempt_id="a1", state="failed", provider="openai",
                         model="gpt-4o", tool_calls_count=2,
                         tokens_used=TokenUsage(input=10, output=5), error="boom",
                         partial_output="half"),
    "release": ReleaseBody.model_validate({"taskId": "t1", "attemptId": "a1",
                                           "outcome": "completed", "artifacts": [ARTIFACT],
                                           "message": MESSAGE}),
    "offer": OfferBody(task_id="t1", priority=5, agent="echo", required_capabilities=["gpu"]),
    "cancel": CancelBody(task_id="t1", attempt_id="a1", reason="client canceled"),
    "drain": DrainBody(reason="shutdown"),
    "goaway": GoAwayBody(reason="the server is shutting down"),
}

REPLIES: dict[str, LinkModel] = {
    "register": RegisterReply(worker_id="w1", heartbeat_interval=30.0, lease_ttl=90.0,
                              server_version="0.1.0"),
    "heartbeat": HeartbeatReply(
        renewed=[RenewedLease(task_id="t1", attempt_id="a1", lease_expires_at=1767225600.25)],
        lost=[LostLease(task_id="t2", attempt_id="a7", reason="lease expired")],
        cancel=[LeaseRef(task_id="t3", attempt_id="a3")], drain=True, unknown_worker=False),
    "claim": ClaimReply.model_validate({"granted": True, "attemptId": "a1",
                                        "leaseExpiresAt": 1767225600.5, "task": TASK,
                                        "message": MESSAGE, "history": [MESSAGE],
                                        "metadata": {"priority": 5}}),
    "output": OutputReply(acked_through=1),
    "status": EmptyReply(),
    "release": ReleaseReply(already_released=True),
    "offer": EmptyReply(),
    "cancel": EmptyReply(),
    "drain": EmptyReply(),
    "goaway": EmptyReply(),
}


def test_catalogue_is_complete() -> None:
    assert set(OP_BODIES) == set(OP_REPLIES) == set(BODIES) == set(REPLIES)
    assert WORKER_OPS | SERVER_OPS == set(OP_BODIES) and not WORKER_OPS & SERVER_OPS
    assert set(LINK_HTTP_STATUS) == LINK_ERROR_CODES
    assert LINK_VERSION == 1


@pytest.mark.parametrize("op", sorted(BODIES))
def test_frame_round_trip(op: str) -> None:
    text = encode_frame(op, BODIES[op], f"id-{op}")
    assert json.loads(text) == {"v": 1, "op": op, "id": f"id-{op}", "body": dump(BODIES[op])}
    frame = decode_frame(text)
    assert frame == Frame(op, f"id-{op}", BODIES[op])
    assert type(frame.body) is OP_BODIES[op]
    assert not frame.is_ack
    assert encode_frame(frame.op, frame.body, frame.id) == text  # type: ignore[arg-type]
    assert decode_frame(text.encode()) == frame


@pytest.mark.parametrize("op", sorted(REPLIES))
def test_ack_round_trip(op: str) -> None:
    text = ack("x-1", REPLIES[op])
    assert json.loads(text) == {"v": 1, "op": "ack", "id": "x-1", "ok": True,
                                "body": dump(REPLIES[op])}
    typed = decode_frame(text, pending={"x-1": op})
    assert typed == Frame(ACK, "x-1", REPLIES[op], ok=True)
    assert typed.is_ack
    assert parse_reply(op, typed) == REPLIES[op]
    untyped = decode_frame(text)  # the answered op unknown: the body stays a dict
    assert untyped.body == dump(REPLIES[op])
    assert parse_reply(op, untyped) == REPLIES[op]


def test_empty_ack() -> None:
    assert json.loads(ack("s-1")) == {"v": 1, "op": "ack", "id": "s-1", "ok": True, "body": {}}
    assert parse_reply("offer", decode_frame(ack("s-1"))) == EmptyReply()
    # a body-less ok ack is read as {}
    assert parse_reply("status", decode_frame('{"v":1,"op":"ack","id":"a","ok":true}')) == (
        EmptyReply())


def test_error_ack_round_trip() -> None:
    text = error_ack("w-9", STALE_ATTEMPT, "attempt a1 is not current")
    assert json.loads(text) == {"v": 1, "op": "ack", "id": "w-9", "ok": False,
                                "error": {"code": "STALE_ATTEMPT",
                                          "message": "attempt a1 is not current"}}
    frame = decode_frame(text, pending={"w-9": "output"})
    assert frame.ok is False and frame.body is None
    assert frame.error is not None and frame.error.code == STALE_ATTEMPT
    with pytest.raises(LinkRefusedError) as info:
        parse_reply("output", frame)
    assert info.value.code == STALE_ATTEMPT
    assert info.value.message == "attempt a1 is not current"
    assert info.value.frame_id == "w-9"


def test_output_events_survive_unchanged() -> None:
    text = json.dumps({"v": 1, "op": "output", "id": "o-1",
                       "body": {"taskId": "t1", "attemptId": "a1", "seq": 7, "events": EVENTS}})
    frame = decode_frame(text)
    assert isinstance(frame.body, OutputBody)
    assert [dump(e) for e in frame.body.events] == EVENTS
    again = json.loads(encode_frame("output", frame.body, "o-2"))
    assert again["body"]["events"] == EVENTS


def test_unknown_members_are_ignored() -> None:
    """Forward compatibility: a v1 peer may add optional members anywhere."""
    frame = decode_frame(json.dumps({
        "v": 1, "op": "drain", "id": "s-1", "trace": "abc",
        "body": {"reason": "bye", "deadline": 12.5}}))
    assert frame == Frame("drain", "s-1", DrainBody(reason="bye"))


# --- the documented examples ------------------------------------------------


def doc_examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_doc_examples_decode_and_are_canonical() -> None:
    examples = doc_examples()
    assert len(examples) >= 2 * len(OP_BODIES)
    # a frame of another version must be refused, and the next example is its answer
    foreign = [i for i, text in enumerate(examples) if json.loads(text)["v"] != LINK_VERSION]
    assert foreign, "the doc shows how an unsupported version is answered"
    for i in foreign:
        err = bad(examples[i])
        assert err.code == UNSUPPORTED_VERSION
        assert json.loads(err.to_ack()) == json.loads(examples[i + 1])
    examples = [text for i, text in enumerate(examples)
                if i not in foreign and i - 1 not in foreign]
    frames = [decode_frame(text) for text in examples]
    pending = {f.id: f.op for f in frames if not f.is_ack}
    assert len(pending) == sum(not f.is_ack for f in frames), "example ids must be unique"
    assert set(pending.values()) == set(OP_BODIES), "every op needs an example"
    answered = set()
    for text, frame in zip(examples, frames, strict=True):
        if frame.is_ack:
            assert frame.id in pending, f"ack {frame.id} answers no example"
            typed = decode_frame(text, pending=pending)
            if typed.ok:
                assert isinstance(typed.body, OP_REPLIES[pending[frame.id]])
                reencoded = ack(typed.id, typed.body)  # type: ignore[arg-type]
            else:
                assert typed.error is not None and typed.error.code in LINK_ERROR_CODES
                reencoded = error_ack(typed.id, typed.error.code, typed.error.message,
                                      supported_versions=typed.error.supported_versions)
            answered.add(pending[frame.id])
        else:
            reencoded = encode_frame(frame.op, frame.body, frame.id)  # type: ignore[arg-type]
        # the example shows exactly what the encoder writes (no missing defaults)
        assert json.loads(reencoded) == json.loads(text)
    # pushes (offer, cancel, drain) are not acked; every op a worker sends is
    assert answered == set(WORKER_OPS), "every worker op needs an example ack"


def test_doc_names_every_error_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert [c for c in sorted(LINK_ERROR_CODES) if f"`{c}`" not in text] == []


# --- malformed frames -------------------------------------------------------


def bad(data: str | bytes, **kwargs: Any) -> LinkProtocolError:
    with pytest.raises(LinkProtocolError) as info:
        decode_frame(data, **kwargs)
    return info.value


REGISTER_OK = {"workerId": "w1", "name": "n", "hostname": "h", "maxConcurrentTasks": 1,
               "agents": ["echo"]}


@pytest.mark.parametrize(("data", "expected"), [
    ("{not json", "frame is not valid JSON"),
    (b"\xff\xfe", "frame is not valid JSON"),
    ('{"v": 1, "op": "drain", "id": "x", "body": {"reason": NaN}}', "frame is not valid JSON"),
    ("[1, 2]", "a frame must be a JSON object"),
    ('{"op": "drain", "id": "x", "body": {"reason": "r"}}', "v: field required"),
    ('{"v": "1", "op": "drain", "id": "x", "body": {"reason": "r"}}', "v: must be an integer"),
    ('{"v": true, "op": "drain", "id": "x", "body": {"reason": "r"}}', "v: must be an integer"),
    ('{"v": 1, "id": "x", "body": {}}', "op: field required"),
    ('{"v": 1, "op": 3, "id": "x", "body": {}}', "op: must be a string"),
    ('{"v": 1, "op": "drain", "body": {"reason": "r"}}', "id: field required"),
    ('{"v": 1, "op": "drain", "id": "", "body": {"reason": "r"}}', "id: must be a non-empty"),
    ('{"v": 1, "op": "drain", "id": null, "body": {"reason": "r"}}', "id: must be a non-empty"),
    ('{"v": 1, "op": "drain", "id": "x"}', "body: field required"),
    ('{"v": 1, "op": "drain", "id": "x", "body": []}', "body: must be an object"),
    ('{"v": 1, "op": "ack", "id": "x", "body": {}}', "ok: field required"),
    ('{"v": 1, "op": "ack", "id": "x", "ok": "yes"}', "ok: must be true or false"),
    ('{"v": 1, "op": "ack", "id": "x", "ok": false}', "error: field required"),
    ('{"v": 1, "op": "ack", "id": "x", "ok": false, "error": {"code": "bad code", '
     '"message": "m"}}', "error.code: string should match pattern"),
])
def test_malformed_envelope(data: str | bytes, expected: str) -> None:
    err = bad(data)
    assert err.code == INVALID_FRAME
    assert err.message.startswith(expected), err.message


def test_unknown_op() -> None:
    err = bad('{"v": 1, "op": "explode", "id": "x-4", "body": {}}')
    assert err.code == UNKNOWN_OP and err.frame_id == "x-4" and err.op == "explode"
    assert "'explode'" in err.message and "register" in err.message


def test_wrong_version_is_answered_naming_the_supported_one() -> None:
    err = bad('{"v": 2, "op": "hello", "id": "w-10", "body": {"future": true}}')
    assert err.code == UNSUPPORTED_VERSION and err.frame_id == "w-10"
    assert err.message == "v: unsupported worker-link version 2 (supported: 1)"
    reply = decode_frame(err.to_ack())
    assert reply.id == "w-10" and reply.ok is False and reply.error is not None
    assert reply.error.code == UNSUPPORTED_VERSION
    assert reply.error.supported_versions == [1]


def test_unreadable_frame_is_answered_with_null_id() -> None:
    err = bad("{oops")
    assert err.frame_id is None
    reply = decode_frame(err.to_ack())
    assert reply.id is None and reply.error is not None and reply.error.code == INVALID_FRAME
    assert json.loads(err.to_ack())["id"] is None


@pytest.mark.parametrize(("op", "body", "expected"), [
    ("register", {k: v for k, v in REGISTER_OK.items() if k != "maxConcurrentTasks"},
     "body.maxConcurrentTasks: field required"),
    ("register", {**REGISTER_OK, "maxConcurrentTasks": 0},
     "body.maxConcurrentTasks: input should be greater than or equal to 1"),
    ("register", {**REGISTER_OK, "agents": []}, "body.agents: list should have at least 1"),
    ("register", {**REGISTER_OK, "workerId": ""}, "body.workerId: string should have at least"),
    ("heartbeat", {"workerId": "w1", "agent": "echo", "status": "busy", "activeTasks": 0},
     "body.status: input should be 'idle' or 'processing'"),
    ("heartbeat", {"workerId": "w1", "agent": "echo", "status": "idle", "activeTasks": 0,
                   "leases": [{"taskId": "t1"}]}, "body.leases[0].attemptId: field required"),
    ("claim", {"taskId": "t1"}, "body.workerId: field required"),
    ("claim", {"workerId": "w1", "taskId": ""},
     "body.taskId: string should have at least 1 character"),
    ("output", {"taskId": "t1", "attemptId": "a1", "seq": 0, "events": EVENTS},
     "body.seq: input should be greater than or equal to 1"),
    ("output", {"taskId": "t1", "attemptId": "a1", "seq": 1, "events": []},
     "body.events: list should have at least 1"),
    ("output", {"taskId": "t1", "attemptId": "a1", "seq": 1,
                "events": [{"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{}]}}]},
     "body.events[0].message.parts[0]: a part needs exactly one of"),
    ("status", {"taskId": "t1", "attemptId": "a1", "state": "done"}, "body.state: input should"),
    ("status", {"taskId": "t1", "attemptId": "a1", "state": "completed",
                "tokensUsed": {"input": 1}}, "body.tokensUsed.output: field required"),
    ("release", {"taskId": "t1", "attemptId": "a1", "outcome": "failed"},
     "body: a failed release needs error"),
    ("release", {"taskId": "t1", "outcome": "completed"}, "body.attemptId: field required"),
    ("offer", {"priority": 1}, "body.taskId: field required"),
    ("cancel", {"taskId": "t1", "attemptId": "a1"}, "body.reason: field required"),
])
def test_missing_or_bad_field_is_named(op: str, body: dict[str, Any], expected: str) -> None:
    err = bad(json.dumps({"v": 1, "op": op, "id": "f-1", "body": body}))
    assert err.code == INVALID_FRAME and err.frame_id == "f-1" and err.op == op
    assert err.message.startswith(expected), err.message
    answer = json.loads(err.to_ack())
    assert answer == {"v": 1, "op": "ack", "id": "f-1", "ok": False,
                      "error": {"code": INVALID_FRAME, "message": err.message}}


def test_bad_reply_body_is_named() -> None:
    granted_without_lease = ack("w-3", None).replace('"body":{}', '"body":{"granted":true}')
    err = bad(granted_without_lease, pending={"w-3": "claim"})
    assert err.message == "body: a granted claim needs attemptId, leaseExpiresAt, task"
    with pytest.raises(LinkProtocolError, match=r"body.ackedThrough: field required"):
        parse_reply("output", decode_frame(ack("w-5")))
    with pytest.raises(LinkProtocolError, match="expected an ack"):
        parse_reply("drain", decode_frame(encode_frame("drain", DrainBody(reason="r"), "s")))


def test_encode_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="unknown worker-link op 'ack'"):
        encode_frame("ack", EmptyReply(), "x")
    with pytest.raises(TypeError, match="the body of 'claim' is a ClaimBody, not a DrainBody"):
        encode_frame("claim", DrainBody(reason="r"), "x")
    with pytest.raises(ValueError, match="non-empty string"):
        encode_frame("drain", DrainBody(reason="r"), "")


def test_bom_and_bytes_accepted() -> None:
    text = encode_frame("drain", DrainBody(reason="r"), "s-3")
    assert decode_frame(("\ufeff" + text).encode()) == decode_frame(text)
