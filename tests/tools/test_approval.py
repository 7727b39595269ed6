"""Approval policies (actors/approval.py): decisions for every policy, and reply parsing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from actors.approval import (
    PENDING_TOOL_CALL_KEY,
    ApprovalPolicy,
    ApprovalPolicyError,
    Approved,
    AskUser,
    NotUnderstood,
    Refused,
    ToolCallRequest,
    UserApproved,
    UserDenied,
    denial_message,
    find_pending_call,
    parse_approval_reply,
)
from protocol.models import Message, Part, Role
from runtime.tools import default_tools

READ = ToolCallRequest("c1", "read_file", {"path": "a.txt"}, read_only=True)
WRITE = ToolCallRequest("c2", "write_file", {"path": "a.txt", "content": "x"}, read_only=False)
INTERNAL = ToolCallRequest("c3", "ask_user", {}, read_only=False, needs_approval=False)


@pytest.mark.parametrize(("policy", "call", "expected"), [
    ("all", READ, Approved),
    ("all", WRITE, Approved),
    ("safe", READ, Approved),
    ("safe", WRITE, Refused),
    ("none", READ, Refused),
    ("none", WRITE, Refused),
    ("ask", READ, Approved),
    ("ask", WRITE, AskUser),
    *((p, INTERNAL, Approved) for p in ("all", "safe", "none", "ask")),
])
def test_decisions(policy: str, call: ToolCallRequest, expected: type) -> None:
    decision = ApprovalPolicy.parse(policy).decide(call)
    assert type(decision) is expected and decision.call == call


def test_every_built_in_tool_under_every_policy() -> None:
    for tool in default_tools():
        call = ToolCallRequest("id", tool.name, {}, read_only=tool.read_only)
        assert isinstance(ApprovalPolicy.ALL.decide(call), Approved)
        assert isinstance(ApprovalPolicy.NONE.decide(call), Refused)
        safe = ApprovalPolicy.SAFE.decide(call)
        ask = ApprovalPolicy.ASK.decide(call)
        if tool.read_only:
            assert isinstance(safe, Approved) and isinstance(ask, Approved)
        else:
            assert isinstance(safe, Refused) and isinstance(ask, AskUser)


def test_refusal_messages_are_for_the_model() -> None:
    assert ApprovalPolicy.SAFE.decide(WRITE) == Refused(
        WRITE, "write_file was refused: the approval policy 'safe' allows read-only tools only")
    assert ApprovalPolicy.NONE.decide(READ) == Refused(
        READ, "read_file was refused: the approval policy 'none' approves no tool calls; "
              "answer without using tools")


def test_ask_carries_the_pending_call() -> None:
    decision = ApprovalPolicy.ASK.decide(WRITE)
    assert isinstance(decision, AskUser)
    assert decision.prompt.startswith(
        'Approve this tool call? write_file({"path": "a.txt", "content": "x"})\n'
        "Reply 'approve' or 'deny'")
    assert decision.data == {PENDING_TOOL_CALL_KEY: {
        "toolCallId": "c2", "name": "write_file",
        "arguments": {"path": "a.txt", "content": "x"}, "readOnly": False}}
    # it survives the trip through a stored status message
    message = Message(message_id="m", role=Role.AGENT, parts=[
        Part(text=decision.prompt), Part(data=decision.data)])
    again = Message.model_validate_json(message.model_dump_json(by_alias=True))
    assert find_pending_call(again) == WRITE
    assert find_pending_call(Message(message_id="m", role=Role.AGENT,
                                     parts=[Part(text="hi")])) is None
    assert find_pending_call(None) is None


def test_long_arguments_are_shortened_in_the_prompt() -> None:
    call = ToolCallRequest("c", "write_file", {"content": "x" * 2000})
    prompt = ApprovalPolicy.ASK.decide(call).prompt  # type: ignore[union-attr]
    assert "... (1515 more characters))" in prompt and len(prompt) < 800


@pytest.mark.parametrize("data", [
    None, [], {"name": "x"}, {"toolCallId": 1, "name": "x", "arguments": {}, "readOnly": True},
    {"toolCallId": "1", "name": "x", "arguments": [], "readOnly": True},
])
def test_pending_call_data_is_checked(data: Any) -> None:
    with pytest.raises(ValueError, match=PENDING_TOOL_CALL_KEY):
        ToolCallRequest.from_data(data)


@pytest.mark.parametrize(("name", "policy"), [
    ("all", ApprovalPolicy.ALL), ("safe", ApprovalPolicy.SAFE), ("none", ApprovalPolicy.NONE),
    ("ask", ApprovalPolicy.ASK), (" Safe ", ApprovalPolicy.SAFE), ("ASK", ApprovalPolicy.ASK),
    (ApprovalPolicy.NONE, ApprovalPolicy.NONE),
])
def test_parse_policy(name: Any, policy: ApprovalPolicy) -> None:
    assert ApprovalPolicy.parse(name) is policy


@pytest.mark.parametrize("name", ["sfe", "", "always", None, 1])
def test_parse_unknown_policy(name: Any) -> None:
    with pytest.raises(ApprovalPolicyError) as exc:
        ApprovalPolicy.parse(name)
    assert str(exc.value) == (f"unknown approval policy {name!r}; expected one of: "
                              "all, safe, none, ask")
    assert isinstance(exc.value, ValueError)


def msg(*parts: Part) -> Message:
    return Message(message_id=str(uuid.uuid4()), role=Role.USER, parts=list(parts))


@pytest.mark.parametrize(("text", "expected"), [
    ("approve", UserApproved()), ("Approve", UserApproved()), ("APPROVED.", UserApproved()),
    ("yes", UserApproved()), ("  Yes! ", UserApproved()), ("y", UserApproved()),
    ("allow", UserApproved()),
    ("deny", UserDenied()), ("No", UserDenied()), ("n", UserDenied()), ("denied.", UserDenied()),
    ("reject", UserDenied()),
    ("deny: write to b.txt instead", UserDenied("write to b.txt instead")),
    ("No, use b.txt", UserDenied("use b.txt")),
    ("no\nnot that file", UserDenied("not that file")),
])
def test_reply_text(text: str, expected: object) -> None:
    assert parse_approval_reply(text) == expected
    assert parse_approval_reply(msg(Part(text=text))) == expected


@pytest.mark.parametrize("text", [
    "yes, but use b.txt",  # a conditional yes must not run the call
    "yes please do it", "nope", "not now", "maybe", "ok", "write it to b.txt", "approve deny",
])
def test_reply_text_not_understood(text: str) -> None:
    reply = parse_approval_reply(text)
    assert isinstance(reply, NotUnderstood)
    assert reply.message == (
        f"the reply {text!r} was not understood; answer 'approve' or 'deny' (optionally "
        "'deny: reason'), or send a data part {\"approve\": true} or {\"approve\": false}")


def test_reply_empty() -> None:
    for reply in ("", "   ", msg(Part(url="https://example.com/x"))):
        result = parse_approval_reply(reply)
        assert isinstance(result, NotUnderstood)
        assert result.message.startswith("the reply has no answer; answer 'approve' or 'deny'")


@pytest.mark.parametrize(("data", "expected"), [
    ({"approve": True}, UserApproved()),
    ({"approve": False}, UserDenied()),
    ({"approve": False, "reason": " too risky "}, UserDenied("too risky")),
    ({"approve": True, "toolCallId": "c2"}, UserApproved()),
    ({"approve": "yes"}, NotUnderstood("'approve' must be true or false, got 'yes'")),
    ({"approve": True, "toolCallId": "other"},
     NotUnderstood("the reply is about tool call 'other', but the pending call is 'c2'")),
])
def test_reply_data(data: dict[str, Any], expected: object) -> None:
    assert parse_approval_reply(msg(Part(data=data)), WRITE) == expected


def test_data_decides_over_text() -> None:
    reply = msg(Part(text="yes"), Part(data={"approve": False, "reason": "changed my mind"}))
    assert parse_approval_reply(reply) == UserDenied("changed my mind")
    other_data = msg(Part(data={"unrelated": 1}), Part(text="approve"))
    assert parse_approval_reply(other_data) == UserApproved()


def test_denial_message() -> None:
    assert denial_message(WRITE) == "write_file was denied by the user; do not retry it unchanged"
    assert denial_message(WRITE, "use b.txt") == "write_file was denied by the user: use b.txt"
