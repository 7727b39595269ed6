"""The MCP tools: what each is called, what it takes, and its arguments checked.

Each tool is an edge onto one A2AService operation (or the dispatcher's list of
connected workers). The input schemas tell an MCP host what to send; the parsers
here are what counts, since a host (or the model behind it) may send anything:
each bad argument is refused with a message naming it, e.g.
``arguments.priority: must be an integer, not 'high'``, which an MCP host shows
the model so it can correct the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import mcp_types as types

from protocol.models import TaskState

__all__ = [
    "CancelArgs",
    "GetArgs",
    "ListArgs",
    "SendArgs",
    "TOOLS",
    "TOOL_NAMES",
    "ToolArgumentError",
    "parse_arguments",
]


class ToolArgumentError(ValueError):
    """A tool's arguments are wrong; the message names the argument."""


STATES = {s.value.removeprefix("TASK_STATE_").lower().replace("_", "-"): s
          for s in TaskState if s is not TaskState.UNSPECIFIED}
"""'completed', 'input-required', ... -> TaskState: the names tools speak."""


def state_name(state: TaskState) -> str:
    """The short name of a state ('input-required'), as tools report it."""
    return state.value.removeprefix("TASK_STATE_").lower().replace("_", "-")


@attrs.frozen
class SendArgs:
    text: str
    agent: str | None = None
    skill: str | None = None
    capabilities: tuple[str, ...] = ()
    worker: str | None = None
    priority: int | None = None
    task_id: str | None = None
    context_id: str | None = None
    wait: bool = True


@attrs.frozen
class GetArgs:
    task_id: str
    history_length: int | None = None


@attrs.frozen
class ListArgs:
    context_id: str | None = None
    state: TaskState | None = None
    page_size: int | None = None
    page_token: str | None = None


@attrs.frozen
class CancelArgs:
    task_id: str


ROUTING = ("agent", "skill", "capabilities", "worker", "priority")
"""The send_task arguments that route a new task."""

_TASK_ID = {"type": "string", "minLength": 1, "description": "The task's id."}

TOOLS: tuple[types.Tool, ...] = (
    types.Tool(
        name="send_task",
        description=(
            "Send a task to an agent and, by default, wait for its result: the text of its "
            "artifacts and its final state. Route it with `agent` (an agent name), `skill` "
            "(a skill id from list_agents), `capabilities` (every one required of the worker) "
            "or `worker`; `priority` orders the queue (higher first). A task that stops to ask "
            "for input ends the call in state input-required: answer with send_task again, "
            "giving its `task_id`. Long tasks report progress when the call asks for it."),
        input_schema={
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1,
                         "description": "What the agent is asked to do (or the answer to its "
                                        "question, with task_id)."},
                "agent": {"type": "string", "minLength": 1,
                          "description": "Run it on this agent (a name from list_agents)."},
                "skill": {"type": "string", "minLength": 1,
                          "description": "Run it on an agent with this skill (an id from "
                                         "list_agents)."},
                "capabilities": {"type": "array", "items": {"type": "string"},
                                 "description": "Capabilities the worker must all have."},
                "worker": {"type": "string", "minLength": 1,
                           "description": "Run it on this worker (an id or a name)."},
                "priority": {"type": "integer",
                             "description": "Queue priority: higher runs first (default 0)."},
                "task_id": {"type": "string", "minLength": 1,
                            "description": "Continue this task, which asked for input."},
                "context_id": {"type": "string", "minLength": 1,
                               "description": "Group the task with earlier ones of this "
                                              "context."},
                "wait": {"type": "boolean",
                         "description": "Wait for the result (default true); false returns "
                                        "the submitted task at once."},
            },
            "required": ["text"],
            "additionalProperties": False,
        },
        annotations=types.ToolAnnotations(title="Send a task to an agent", read_only_hint=False,
                                          destructive_hint=False, open_world_hint=True),
    ),
    types.Tool(
        name="get_task",
        description="A task's state and the text of its artifacts so far.",
        input_schema={
            "type": "object",
            "properties": {
                "task_id": _TASK_ID,
                "history_length": {"type": "integer", "minimum": 0,
                                   "description": "Messages of history in the structured "
                                                  "result (default: all)."},
            },
            "required": ["task_id"],
            "additionalProperties": False,
        },
        annotations=types.ToolAnnotations(title="Get a task", read_only_hint=True),
    ),
    types.Tool(
        name="list_tasks",
        description="Your tasks, newest status first, a page at a time.",
        input_schema={
            "type": "object",
            "properties": {
                "context_id": {"type": "string", "minLength": 1},
                "state": {"type": "string", "enum": sorted(STATES)},
                "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
                "page_token": {"type": "string",
                               "description": "nextPageToken of the previous page."},
            },
            "additionalProperties": False,
        },
        annotations=types.ToolAnnotations(title="List tasks", read_only_hint=True),
    ),
    types.Tool(
        name="cancel_task",
        description="Cancel a task: a running agent is stopped; returns the canceled task.",
        input_schema={"type": "object", "properties": {"task_id": _TASK_ID},
                      "required": ["task_id"], "additionalProperties": False},
        annotations=types.ToolAnnotations(title="Cancel a task", read_only_hint=False,
                                          destructive_hint=True, idempotent_hint=True),
    ),
    types.Tool(
        name="list_agents",
        description=("The agents of the workers connected now, with their skills and "
                     "the workers that run them."),
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        annotations=types.ToolAnnotations(title="List agents", read_only_hint=True),
    ),
    types.Tool(
        name="list_workers",
        description=("The workers connected now: id, name, agents, capabilities, "
                     "slots and the tasks they run."),
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        annotations=types.ToolAnnotations(title="List workers", read_only_hint=True),
    ),
)

_KNOWN = {t.name: set(t.input_schema.get("properties", {})) for t in TOOLS}
TOOL_NAMES = tuple(_KNOWN)


class _Reader:
    """Reads one tool's arguments, each error naming its argument."""

    def __init__(self, tool: str, arguments: Mapping[str, Any] | None) -> None:
        if arguments is not None and not isinstance(arguments, Mapping):
            raise ToolArgumentError("arguments: must be an object")
        self.args = dict(arguments or {})
        unknown = sorted(set(self.args) - _KNOWN[tool])
        if unknown:
            allowed = ", ".join(sorted(_KNOWN[tool])) or "none"
            raise ToolArgumentError(f"arguments.{unknown[0]}: {tool} takes no such argument "
                                    f"(it takes: {allowed})")

    def _bad(self, name: str, want: str) -> ToolArgumentError:
        return ToolArgumentError(f"arguments.{name}: must be {want}, not {self.args[name]!r}")

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.args.get(name)
        if value is None:
            if required:
                raise ToolArgumentError(f"arguments.{name}: required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self._bad(name, "a non-empty string")
        return value

    def integer(self, name: str, *, low: int | None = None, high: int | None = None
                ) -> int | None:
        value = self.args.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(name, "an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low}" + (f" to {high}" if high is not None else "")
            raise self._bad(name, f"an integer {span}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.args.get(name, default)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.args.get(name)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._bad(name, "a list of non-empty strings")
        return tuple(value)


def parse_arguments(tool: str, arguments: Mapping[str, Any] | None
                    ) -> SendArgs | GetArgs | ListArgs | CancelArgs | None:
    """The checked arguments of a call of `tool`, one of `TOOL_NAMES` (None for the
    tools that take none); ToolArgumentError for bad arguments."""
    r = _Reader(tool, arguments)
    if tool == "send_task":
        text = r.text("text", required=True)
        assert text is not None
        args = SendArgs(text=text, agent=r.text("agent"), skill=r.text("skill"),
                        capabilities=r.strings("capabilities"), worker=r.text("worker"),
                        priority=r.integer("priority"), task_id=r.text("task_id"),
                        context_id=r.text("context_id"), wait=r.boolean("wait", True))
        routed = [k for k in ROUTING if r.args.get(k) not in (None, [])]
        if args.task_id is not None and routed:
            raise ToolArgumentError(
                f"arguments.{routed[0]}: a continued task keeps the route it was sent with; "
                f"leave out {', '.join(ROUTING)} with task_id")
        return args
    if tool == "get_task":
        return GetArgs(task_id=r.text("task_id", required=True) or "",
                       history_length=r.integer("history_length", low=0))
    if tool == "list_tasks":
        state = r.text("state")
        if state is not None and state not in STATES:
            raise ToolArgumentError(f"arguments.state: must be one of {', '.join(sorted(STATES))}"
                                    f", not {state!r}")
        return ListArgs(context_id=r.text("context_id"),
                        state=STATES[state] if state is not None else None,
                        page_size=r.integer("page_size", low=1, high=100),
                        page_token=r.text("page_token"))
    if tool == "cancel_task":
        return CancelArgs(task_id=r.text("task_id", required=True) or "")
    return None
