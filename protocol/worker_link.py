"""The worker link: the versioned frames between a server and its workers, sans-IO.

Every frame is ``{"v": 1, "op": ..., "id": ..., "body": {...}}`` and every frame
is answered by an ``ack`` frame carrying the same id, ``ok`` and either the
reply ``body`` or an ``error`` ``{code, message}``. One WebSocket carries all of
them; the HTTP binding carries the same frames as POST bodies plus an SSE stream
of server pushes. docs/worker-link.md is the contract; this module is its code.

`encode_frame` / `ack` / `error_ack` build wire text; `decode_frame` parses it
into a typed `Frame` or raises `LinkProtocolError` naming the bad field, ready
to be answered with `LinkProtocolError.to_ack()`. `parse_reply` turns an ack
into the reply model of the op it answers (or raises `LinkRefusedError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import attrs
import pydantic
from pydantic import Field, StringConstraints, model_validator

from .jsonrpc import format_validation_error
from .models import A2AModel, AgentSkill, Artifact, Message, StreamResponse, Task

__all__ = [
    "ACK", "ClaimBody", "ClaimReply", "DrainBody", "EmptyReply", "Frame", "GoAwayBody",
    "HeartbeatBody", "HeartbeatReply", "INTERNAL", "INVALID_FRAME", "LINK_ERROR_CODES",
    "LINK_HTTP_STATUS", "LINK_VERSION", "LeaseRef", "LinkError", "LinkModel", "LinkProtocolError",
    "LinkRefusedError", "LostLease", "NOT_CLAIMABLE", "NOTHING_QUEUED", "OP_BODIES", "OP_REPLIES",
    "OfferBody", "OutputBody", "OutputReply", "RegisterBody", "RegisterReply", "ReleaseBody",
    "ReleaseReply", "RenewedLease", "SERVER_OPS", "STALE_ATTEMPT", "SUPPORTED_LINK_VERSIONS",
    "StatusBody", "CancelBody", "TokenUsage", "UNAUTHORIZED", "UNKNOWN_OP", "UNKNOWN_TASK",
    "UNKNOWN_LINK", "UNKNOWN_WORKER", "UNSUPPORTED_VERSION", "WORKER_OPS", "ack", "decode_frame",
    "encode_frame", "error_ack", "parse_reply",
]

LINK_VERSION = 1
SUPPORTED_LINK_VERSIONS = (1,)
ACK = "ack"

# Error codes (the `error.code` of an error ack).
INVALID_FRAME = "INVALID_FRAME"  # not JSON, not an object, or a field is missing or malformed
UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"  # `v` is not one this side speaks
UNKNOWN_OP = "UNKNOWN_OP"  # `op` is not one this side knows (or not one it accepts)
UNAUTHORIZED = "UNAUTHORIZED"  # missing/bad bearer token, or a client token on the link
UNKNOWN_WORKER = "UNKNOWN_WORKER"  # no registration for this workerId (re-register)
UNKNOWN_TASK = "UNKNOWN_TASK"  # no task with this taskId
NOT_CLAIMABLE = "NOT_CLAIMABLE"  # the task is claimed, finished, canceled or not routable here
NOTHING_QUEUED = "NOTHING_QUEUED"  # a claim without taskId: no task waits for this worker
STALE_ATTEMPT = "STALE_ATTEMPT"  # fencing: attemptId is no longer the task's current attempt
INTERNAL = "INTERNAL"  # the receiver failed; the frame may be resent
UNKNOWN_LINK = "UNKNOWN_LINK"  # HTTP binding: no open link with that id (open the stream again)
LINK_ERROR_CODES = frozenset({INVALID_FRAME, UNSUPPORTED_VERSION, UNKNOWN_OP, UNAUTHORIZED,
                              UNKNOWN_WORKER, UNKNOWN_TASK, NOT_CLAIMABLE, STALE_ATTEMPT,
                              INTERNAL, UNKNOWN_LINK})
# HTTP binding: the status of a POST /worker/link/{op} response whose body is an error ack.
LINK_HTTP_STATUS = {INVALID_FRAME: 400, UNSUPPORTED_VERSION: 400, UNKNOWN_OP: 404,
                    UNAUTHORIZED: 401, UNKNOWN_WORKER: 404, UNKNOWN_TASK: 404,
                    NOT_CLAIMABLE: 409, STALE_ATTEMPT: 409, INTERNAL: 500, UNKNOWN_LINK: 404}


class LinkModel(A2AModel):
    """Base of every link body: camelCase on the wire, unknown fields ignored."""


_NonEmpty = Annotated[str, StringConstraints(min_length=1)]
_M = TypeVar("_M", bound="LinkModel")


# --- worker -> server ------------------------------------------------------


class RegisterBody(LinkModel):
    worker_id: _NonEmpty
    name: str
    hostname: str
    capabilities: list[str] = []
    max_concurrent_tasks: int = Field(ge=1)
    agents: list[str] = Field(min_length=1)
    models: dict[str, list[str]] = {}  # provider -> model ids; {} if listing failed
    context_history: bool | None = None  # true: grants carry the earlier tasks of the context
    # the agents' skills, listed in the server's card while the worker is connected
    skills: list[AgentSkill] | None = None


class RegisterReply(LinkModel):
    worker_id: _NonEmpty
    heartbeat_interval: float = Field(gt=0)  # seconds
    lease_ttl: float = Field(gt=0)  # seconds
    server_version: str
    max_output_bytes: int | None = Field(default=None, gt=0)
    """The server's cap on one attempt's output (`protocol.output_size.output_bytes`):
    past it the server fails the task, so a worker stops its agent there. None: no cap."""


class LeaseRef(LinkModel):
    task_id: _NonEmpty
    attempt_id: _NonEmpty


class RenewedLease(LeaseRef):
    lease_expires_at: float  # epoch seconds, server clock


class LostLease(LeaseRef):
    reason: str


class HeartbeatBody(LinkModel):
    worker_id: _NonEmpty
    agent: str
    status: Literal["idle", "processing"]
    active_tasks: int = Field(ge=0)
    leases: list[LeaseRef] = []


class HeartbeatReply(LinkModel):
    renewed: list[RenewedLease] = []
    lost: list[LostLease] = []  # stop these sessions: the lease moved on
    cancel: list[LeaseRef] = []  # cancel these sessions, then release them as canceled
    drain: bool = False  # finish what runs, claim nothing new
    unknown_worker: bool = False  # register again, then heartbeat
    queued: int = Field(default=0, ge=0)  # tasks waiting that this worker may run


class ClaimBody(LinkModel):
    worker_id: _NonEmpty
    task_id: _NonEmpty | None = None  # None: the next task waiting for this worker (a poll)


class _Traced(LinkModel):
    # W3C trace context (optional): a grant's is its request's, a frame's its session's
    traceparent: str | None = None


class ClaimReply(_Traced):
    granted: bool
    reason: str | None = None  # why not granted, e.g. NOT_CLAIMABLE
    attempt_id: str | None = None
    lease_expires_at: float | None = None
    task: Task | None = None
    message: Message | None = None  # the message that started (or resumed) the task
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None
    context: list[Message] | None = None  # earlier tasks of the context (if registered for)
    # Who sent the task (its owner; absent with auth off) and the output modes the
    # client accepts (its SendMessage configuration; absent: any). Optional, so an
    # older worker ignores them and an older server's grant means "" and ().
    principal: str | None = None
    accepted_output_modes: list[str] | None = None

    @model_validator(mode="after")
    def _granted_has_lease(self) -> ClaimReply:
        if self.granted:
            missing = [name for name, value in (("attemptId", self.attempt_id),
                                                ("leaseExpiresAt", self.lease_expires_at),
                                                ("task", self.task)) if value is None]
            if missing:
                raise ValueError(f"a granted claim needs {', '.join(missing)}")
        return self


class TokenUsage(LinkModel):
    input: int = Field(ge=0)
    output: int = Field(ge=0)


class StatusBody(_Traced):
    task_id: _NonEmpty
    attempt_id: _NonEmpty
    state: Literal["claimed", "working", "completed", "failed", "canceled", "input-required",
                   "auth-required"]
    provider: str | None = None
    model: str | None = None
    tool_calls_count: int | None = Field(default=None, ge=0)
    tokens_used: TokenUsage | None = None
    error: str | None = None
    partial_output: str | None = None


class OutputBody(_Traced):
    task_id: _NonEmpty
    attempt_id: _NonEmpty
    seq: int = Field(ge=1)  # per attempt, 1, 2, 3...: the server drops seq <= ackedThrough
    events: list[StreamResponse] = Field(min_length=1)
    status: StatusBody | None = None  # the attempt's latest status report, carried along


class OutputReply(LinkModel):
    acked_through: int = Field(ge=0)  # highest seq held with no gap before it


class ReleaseBody(_Traced):
    task_id: _NonEmpty
    attempt_id: _NonEmpty
    # requeue: the worker gives the task back unfinished (it is stopping): queued again now
    outcome: Literal["completed", "failed", "canceled", "input-required", "auth-required",
                     "requeue"]
    artifacts: list[Artifact] | None = None
    message: Message | None = None
    error: str | None = None
    status: StatusBody | None = None  # the final status report (provider, model, tokens...)
    output: OutputBody | None = None  # the attempt's last output frame, applied first

    @model_validator(mode="after")
    def _failure_has_error(self) -> ReleaseBody:
        if self.outcome == "failed" and not self.error:
            raise ValueError("a failed release needs error")
        return self


class ReleaseReply(LinkModel):
    already_released: bool = False


# --- server -> worker (pushes) ---------------------------------------------


class OfferBody(LinkModel):
    task_id: _NonEmpty
    priority: int = 0
    agent: str | None = None
    required_capabilities: list[str] = []


class CancelBody(LinkModel):
    task_id: _NonEmpty
    attempt_id: _NonEmpty
    reason: str


class DrainBody(LinkModel):
    reason: str


class GoAwayBody(LinkModel):
    reason: str  # this server is stopping: reconnect to another one now, sessions and all


class EmptyReply(LinkModel):
    """The body of an ack that carries nothing: ``{}``."""


class LinkError(LinkModel):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    message: str
    supported_versions: list[int] | None = None  # set on UNSUPPORTED_VERSION


OP_BODIES: dict[str, type[LinkModel]] = {
    "register": RegisterBody, "heartbeat": HeartbeatBody, "claim": ClaimBody,
    "output": OutputBody, "status": StatusBody, "release": ReleaseBody,
    "offer": OfferBody, "cancel": CancelBody, "drain": DrainBody, "goaway": GoAwayBody,
}
OP_REPLIES: dict[str, type[LinkModel]] = {
    "register": RegisterReply, "heartbeat": HeartbeatReply, "claim": ClaimReply,
    "output": OutputReply, "status": EmptyReply, "release": ReleaseReply,
    "offer": EmptyReply, "cancel": EmptyReply, "drain": EmptyReply, "goaway": EmptyReply,
}
WORKER_OPS = frozenset({"register", "heartbeat", "claim", "output", "status", "release"})
SERVER_OPS = frozenset({"offer", "cancel", "drain", "goaway"})


@attrs.frozen
class Frame:
    """A decoded frame. For ``op == "ack"``: `ok` is set, and either `body` (the reply
    model when the answered op was known to `decode_frame`, else the raw dict) or
    `error`. For every other op, `body` is that op's model and `ok`/`error` are None."""

    op: str
    id: str | None
    body: LinkModel | dict[str, Any] | None = None
    ok: bool | None = None
    error: LinkError | None = None
    v: int = LINK_VERSION

    @property
    def is_ack(self) -> bool:
        return self.op == ACK


class LinkProtocolError(Exception):
    """A frame that cannot be understood; answer it with `to_ack()` and carry on."""

    def __init__(self, message: str, *, code: str = INVALID_FRAME,
                 frame_id: str | None = None, op: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.frame_id = frame_id  # None when the frame had no readable id
        self.op = op

    def to_ack(self) -> str:
        """The error ack that answers the bad frame (never sent for a bad ack)."""
        versions = list(SUPPORTED_LINK_VERSIONS) if self.code == UNSUPPORTED_VERSION else None
        return error_ack(self.frame_id, self.code, self.message, supported_versions=versions)


class LinkRefusedError(Exception):
    """The peer answered with an error ack."""

    def __init__(self, error: LinkError, *, frame_id: str | None = None) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.error = error
        self.frame_id = frame_id


def _envelope(op: str, id: str | None, rest: str) -> str:
    return f'{{"v":{LINK_VERSION},"op":{json.dumps(op)},"id":{json.dumps(id)},{rest}}}'


def _body_json(body: pydantic.BaseModel) -> str:
    return body.model_dump_json(by_alias=True, exclude_none=True)


def encode_frame(op: str, body: LinkModel, id: str) -> str:
    """The wire text of one request or push frame; `body` must be `op`'s model."""
    model = OP_BODIES.get(op)
    if model is None:
        raise ValueError(f"unknown worker-link op {op!r}")
    if not isinstance(body, model):
        raise TypeError(f"the body of {op!r} is a {model.__name__}, not a {type(body).__name__}")
    if not isinstance(id, str) or not id:
        raise ValueError("a frame id must be a non-empty string")
    return _envelope(op, id, f'"body":{_body_json(body)}')


def ack(id: str | None, body: LinkModel | None = None) -> str:
    """The ok ack answering frame `id`; `body` is the reply model (None: ``{}``)."""
    return _envelope(ACK, id, f'"ok":true,"body":{"{}" if body is None else _body_json(body)}')


def error_ack(id: str | None, code: str, message: str, *,
              supported_versions: list[int] | None = None) -> str:
    """The error ack answering frame `id` (None if the frame had no readable id)."""
    err = LinkError(code=code, message=message, supported_versions=supported_versions)
    return _envelope(ACK, id, f'"ok":false,"error":{_body_json(err)}')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_KNOWN_OPS = ", ".join(sorted([*OP_BODIES, ACK]))


def _validate(model: type[_M], data: Any, where: str, frame_id: str | None, op: str) -> _M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise LinkProtocolError(format_validation_error(exc, where),
                                frame_id=frame_id, op=op) from None


def decode_frame(data: str | bytes, *, pending: Mapping[str, str] | None = None) -> Frame:
    """Parse one frame; raise `LinkProtocolError` naming the bad field.

    `pending` maps the ids of frames this side sent and awaits acks for to their
    ops: an ack found there gets its body parsed into that op's reply model
    (otherwise the body stays a dict; see `parse_reply`). Unknown fields are
    ignored, so a peer may add optional fields without a new `v`.
    """
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
        if text[:1] == "\ufeff":
            text = text[1:]
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise LinkProtocolError(f"frame is not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise LinkProtocolError("a frame must be a JSON object")
    raw_id = obj.get("id")
    frame_id = raw_id if type(raw_id) is str and raw_id else None
    raw_op = obj.get("op")
    op = raw_op if type(raw_op) is str else None
    if "v" not in obj:
        raise LinkProtocolError("v: field required", frame_id=frame_id, op=op)
    v = obj["v"]
    if type(v) is not int:
        raise LinkProtocolError("v: must be an integer", frame_id=frame_id, op=op)
    if v not in SUPPORTED_LINK_VERSIONS:
        supported = ", ".join(str(x) for x in SUPPORTED_LINK_VERSIONS)
        raise LinkProtocolError(f"v: unsupported worker-link version {v} (supported: {supported})",
                                code=UNSUPPORTED_VERSION, frame_id=frame_id, op=op)
    if "id" not in obj:
        raise LinkProtocolError("id: field required", op=op)
    if frame_id is None and not (op == ACK and raw_id is None):
        raise LinkProtocolError("id: must be a non-empty string", op=op)
    if op is None:
        why = "field required" if "op" not in obj else "must be a string"
        raise LinkProtocolError(f"op: {why}", frame_id=frame_id)
    if op == ACK:
        return _decode_ack(obj, frame_id, pending)
    model = OP_BODIES.get(op)
    if model is None:
        raise LinkProtocolError(f"op: unknown op {op!r} (known: {_KNOWN_OPS})",
                                code=UNKNOWN_OP, frame_id=frame_id, op=op)
    if "body" not in obj:
        raise LinkProtocolError("body: field required", frame_id=frame_id, op=op)
    if type(obj["body"]) is not dict:
        raise LinkProtocolError("body: must be an object", frame_id=frame_id, op=op)
    return Frame(op, frame_id, _validate(model, obj["body"], "body", frame_id, op), v=v)


def _decode_ack(obj: dict[str, Any], frame_id: str | None,
                pending: Mapping[str, str] | None) -> Frame:
    ok = obj.get("ok")
    if type(ok) is not bool:
        why = "field required" if "ok" not in obj else "must be true or false"
        raise LinkProtocolError(f"ok: {why}", frame_id=frame_id, op=ACK)
    if not ok:
        if "error" not in obj:
            raise LinkProtocolError("error: field required", frame_id=frame_id, op=ACK)
        error = _validate(LinkError, obj["error"], "error", frame_id, ACK)
        return Frame(ACK, frame_id, ok=False, error=error)
    body = obj.get("body", {})
    if type(body) is not dict:
        raise LinkProtocolError("body: must be an object", frame_id=frame_id, op=ACK)
    answered = pending.get(frame_id) if pending is not None and frame_id is not None else None
    if answered is not None and answered in OP_REPLIES:
        return Frame(ACK, frame_id, _validate(OP_REPLIES[answered], body, "body", frame_id, ACK),
                     ok=True)
    return Frame(ACK, frame_id, body, ok=True)


def parse_reply(op: str, frame: Frame) -> LinkModel:
    """The reply model of an ack answering an `op` frame.

    Raises `LinkRefusedError` for an error ack and `LinkProtocolError` if the
    body does not fit `op`'s reply model.
    """
    if not frame.is_ack:
        raise LinkProtocolError(f"op: expected an ack, got {frame.op!r}",
                                frame_id=frame.id, op=frame.op)
    if not frame.ok:
        assert frame.error is not None
        raise LinkRefusedError(frame.error, frame_id=frame.id)
    model = OP_REPLIES[op]
    if isinstance(frame.body, model):
        return frame.body
    if isinstance(frame.body, LinkModel):
        raise LinkProtocolError(f"body: a {type(frame.body).__name__}, not a {model.__name__}",
                                frame_id=frame.id, op=ACK)
    return _validate(model, frame.body or {}, "body", frame.id, ACK)
