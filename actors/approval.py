"""Approval policies: which tool calls an agent session may run without asking.

Pure decisions, no I/O: the agent loop asks `policy.decide(call)` before each
tool call and acts on the answer.

- `all`: every call is approved.
- `safe`: read-only tools are approved; any other call is refused, and the
  refusal is what the model sees as the call's result.
- `none`: every call that needs approval is refused. Every workspace tool
  needs approval, read-only ones included, so under `none` the model runs no
  tools at all (it answers from the conversation alone). What `none` adds over
  `safe` is exactly that: reads are refused too. Only a call the loop marks
  `needs_approval=False` (its own pseudo-tools that touch nothing, such as
  asking the user a question) passes under every policy.
- `ask`: read-only tools are approved as under `safe`; any other call pauses
  the task: it goes to input-required carrying the pending call, and the user's
  next message approves or denies it (`parse_approval_reply`). Reads are not
  asked about, so a session that reads, then writes, asks once.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from protocol.models import Message

__all__ = [
    "PENDING_TOOL_CALL_KEY",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalPolicyError",
    "ApprovalReply",
    "Approved",
    "AskUser",
    "NotUnderstood",
    "Refused",
    "ToolCallRequest",
    "UserApproved",
    "UserDenied",
    "denial_message",
    "find_pending_call",
    "parse_approval_reply",
]

PENDING_TOOL_CALL_KEY = "pendingToolCall"
"""Key of the data part that carries the pending call while the task is input-required."""

_ARGS_SHOWN = 500


class ApprovalPolicyError(ValueError):
    """An approval policy name that is not one of all, safe, none, ask."""


@attrs.frozen
class ToolCallRequest:
    """A tool call the model asked for, with what the policy needs to know about the tool."""

    call_id: str
    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    read_only: bool = False
    needs_approval: bool = True

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form, for the data part of an input-required status message."""
        return {"toolCallId": self.call_id, "name": self.name, "arguments": dict(self.arguments),
                "readOnly": self.read_only}

    @classmethod
    def from_data(cls, data: Any) -> ToolCallRequest:
        """The inverse of `to_data`; ValueError naming the first bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{PENDING_TOOL_CALL_KEY} must be an object")
        for key, kind in (("toolCallId", str), ("name", str), ("arguments", Mapping),
                          ("readOnly", bool)):
            if not isinstance(data.get(key), kind):
                raise ValueError(f"{PENDING_TOOL_CALL_KEY}.{key} is missing or has the wrong type")
        return cls(data["toolCallId"], data["name"], data["arguments"], data["readOnly"])

    def summary(self) -> str:
        """`name({"arg": ...})`, arguments cut to a readable length."""
        args = json.dumps(dict(self.arguments), ensure_ascii=False, default=str)
        if len(args) > _ARGS_SHOWN:
            args = args[:_ARGS_SHOWN] + f"... ({len(args) - _ARGS_SHOWN} more characters)"
        return f"{self.name}({args})"


@attrs.frozen
class Approved:
    """Run the call."""

    call: ToolCallRequest


@attrs.frozen
class Refused:
    """Do not run the call; give the model `message` as the call's (error) result."""

    call: ToolCallRequest
    message: str


@attrs.frozen
class AskUser:
    """Pause: end the turn as input-required with `prompt` (text) and `data` (a data part)."""

    call: ToolCallRequest
    prompt: str

    @property
    def data(self) -> dict[str, Any]:
        return {PENDING_TOOL_CALL_KEY: self.call.to_data()}


ApprovalDecision = Approved | Refused | AskUser


class ApprovalPolicy(enum.Enum):
    """How tool calls are approved, per worker or per agent."""

    ALL = "all"
    SAFE = "safe"
    NONE = "none"
    ASK = "ask"

    @classmethod
    def parse(cls, value: str | ApprovalPolicy) -> ApprovalPolicy:
        """A policy from its name (case and surrounding spaces ignored)."""
        if isinstance(value, ApprovalPolicy):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        names = ", ".join(p.value for p in cls)
        raise ApprovalPolicyError(f"unknown approval policy {value!r}; expected one of: {names}")

    def decide(self, call: ToolCallRequest) -> ApprovalDecision:
        if not call.needs_approval or self is ApprovalPolicy.ALL:
            return Approved(call)
        if self is ApprovalPolicy.NONE:
            return Refused(call, f"{call.name} was refused: the approval policy 'none' approves "
                                 "no tool calls; answer without using tools")
        if call.read_only:
            return Approved(call)
        if self is ApprovalPolicy.SAFE:
            return Refused(call, f"{call.name} was refused: the approval policy 'safe' allows "
                                 "read-only tools only")
        return AskUser(call, (
            f"Approve this tool call? {call.summary()}\n"
            "Reply 'approve' or 'deny' (a reason may follow: 'deny: use another file'), "
            'or send a data part {"approve": true} or {"approve": false, "reason": "..."}.'))


@attrs.frozen
class UserApproved:
    """The user approved the pending call."""


@attrs.frozen
class UserDenied:
    """The user denied it; `reason` (may be empty) goes to the model with the refusal."""

    reason: str = ""


@attrs.frozen
class NotUnderstood:
    """Neither approval nor denial; `message` says how to answer (the task stays paused)."""

    message: str


ApprovalReply = UserApproved | UserDenied | NotUnderstood

_APPROVE_WORDS = frozenset({"approve", "approved", "yes", "y", "allow"})
_DENY = re.compile(r"(deny|denied|no|n|reject)\b[\s.!,:;-]*(.*)", re.IGNORECASE | re.DOTALL)
_HOW = ("answer 'approve' or 'deny' (optionally 'deny: reason'), or send a data part "
        '{"approve": true} or {"approve": false}')


def parse_approval_reply(reply: Message | str,
                         pending: ToolCallRequest | None = None) -> ApprovalReply:
    """What the user's message says about the pending call.

    A data part with an "approve" key decides (and then the text is not read);
    otherwise the text: one approve word alone ("approve", "approved", "yes",
    "y", "allow"; case, spaces and a final "." or "!" ignored) approves, and a
    deny word ("deny", "denied", "no", "n", "reject") denies, with anything
    after it as the reason. An approval with more words ("yes, but...") is not
    understood: a conditional yes must not run the call.
    """
    texts: list[str] = []
    if isinstance(reply, str):
        texts.append(reply)
    else:
        for part in reply.parts:
            if isinstance(part.data, Mapping) and "approve" in part.data:
                return _from_data(part.data, pending)
            if part.text is not None:
                texts.append(part.text)
    text = " ".join(texts).strip()
    if not text:
        return NotUnderstood(f"the reply has no answer; {_HOW}")
    if text.rstrip(".! ").lower() in _APPROVE_WORDS:
        return UserApproved()
    if m := _DENY.fullmatch(text):
        return UserDenied(m.group(2).strip())
    return NotUnderstood(f"the reply {text[:80]!r} was not understood; {_HOW}")


def _from_data(data: Mapping[str, Any], pending: ToolCallRequest | None) -> ApprovalReply:
    approve = data["approve"]
    if not isinstance(approve, bool):
        return NotUnderstood(f"'approve' must be true or false, got {approve!r}")
    call_id = data.get("toolCallId")
    if pending is not None and call_id is not None and call_id != pending.call_id:
        return NotUnderstood(f"the reply is about tool call {call_id!r}, but the pending call is "
                             f"{pending.call_id!r}")
    if approve:
        return UserApproved()
    reason = data.get("reason", "")
    return UserDenied(reason.strip() if isinstance(reason, str) else "")


def denial_message(call: ToolCallRequest, reason: str = "") -> str:
    """What the model sees as the result of a call the user denied."""
    msg = f"{call.name} was denied by the user"
    return f"{msg}: {reason}" if reason else f"{msg}; do not retry it unchanged"


def find_pending_call(message: Message | None) -> ToolCallRequest | None:
    """The pending call carried by an input-required status message (from `AskUser.data`), so
    a session resumed elsewhere (another worker, a retry) knows what it was asked about."""
    if message is None:
        return None
    for part in message.parts:
        if isinstance(part.data, Mapping) and PENDING_TOOL_CALL_KEY in part.data:
            return ToolCallRequest.from_data(part.data[PENDING_TOOL_CALL_KEY])
    return None
