"""What the MCP tools answer: tasks and workers as tool results.

A tool result has text for the model (`content`) and JSON for programs
(`structuredContent`). A task's text is its state line, then what the agent
produced: the text of its artifacts (data parts as JSON, files named), or its
last message when it made no artifacts. Its structured content carries the
short state name and the whole task in the A2A 1.0 JSON shape, so a host
that knows A2A loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import mcp_types as types

from actors.dispatcher import WorkerInfo
from protocol.models import ListTasksResponse, Message, Part, Role, Task, TaskState, dump
from protocol.states import is_interrupted
from runtime.mcp.tools import state_name

__all__ = ["agents_result", "error_result", "task_result", "tasks_result", "workers_result"]


def part_text(part: Part) -> str:
    """A part as text: its text, data as JSON, a file by name (its bytes are not text)."""
    if part.text is not None:
        return part.text
    if part.data is not None:
        return json.dumps(part.data, ensure_ascii=False)
    label = part.filename or part.url or "file"
    return f"[{label}{f' ({part.media_type})' if part.media_type else ''}]"


def message_text(message: Message | None) -> str:
    return "".join(part_text(p) for p in message.parts) if message is not None else ""


def task_text(task: Task) -> str:
    """What the agent produced: artifacts' text, else its last message to the user."""
    if task.artifacts:
        return "\n\n".join("".join(part_text(p) for p in a.parts) for a in task.artifacts)
    said = message_text(task.status.message)
    if said:
        return said
    if task.history and task.history[-1].role is Role.AGENT:
        return message_text(task.history[-1])  # a direct reply (Emitter.reply)
    return ""


def _headline(task: Task) -> str:
    state = task.status.state
    line = f"Task {task.id} is {state_name(state)}."
    if is_interrupted(state):
        asked = message_text(task.status.message)
        what = "input" if state is TaskState.INPUT_REQUIRED else "authentication"
        line += f" The agent needs {what}" + (f": {asked.strip()}" if asked.strip() else "")
        if not line.endswith((".", "?", "!")):
            line += "."
        line += f" Answer with send_task, task_id={task.id!r}."
    return line


def task_result(task: Task) -> types.CallToolResult:
    """A task as a tool result: failed, rejected and canceled tasks are not errors of
    the call (the call did what was asked); `state` says how the task ended."""
    body = task_text(task)
    headline = _headline(task)
    text = headline if not body or is_interrupted(task.status.state) else f"{headline}\n\n{body}"
    structured = {"taskId": task.id, "contextId": task.context_id,
                  "state": state_name(task.status.state), "text": body, "task": dump(task)}
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content=structured)


def tasks_result(page: ListTasksResponse) -> types.CallToolResult:
    lines = [f"{t.id}  {state_name(t.status.state)}  context {t.context_id}" for t in page.tasks]
    summary = f"{len(page.tasks)} of {page.total_size} task(s)"
    if page.next_page_token:
        summary += f"; next page: page_token={page.next_page_token!r}"
    tasks = [{"taskId": t.id, "contextId": t.context_id, "state": state_name(t.status.state),
              "updated": t.status.timestamp} for t in page.tasks]
    structured = {"tasks": tasks, "totalSize": page.total_size,
                  "nextPageToken": page.next_page_token}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text="\n".join([summary, *lines]))],
        structured_content=structured)


def _worker_json(info: WorkerInfo, running: int) -> dict[str, Any]:
    return {"workerId": info.worker_id, "name": info.name, "agents": sorted(info.agents),
            "capabilities": sorted(info.capabilities), "maxConcurrent": info.max_concurrent,
            "running": running, "embedded": info.in_process,
            "skills": [s.id for s in info.skills]}


def workers_result(workers: Sequence[tuple[WorkerInfo, int]]) -> types.CallToolResult:
    rows = [_worker_json(info, running) for info, running in workers]
    lines = [f"{w['workerId']} ({w['name']}): agents {', '.join(w['agents']) or '-'}; "
             f"capabilities {', '.join(w['capabilities']) or '-'}; "
             f"running {w['running']} of {w['maxConcurrent']}" for w in rows]
    text = "\n".join([f"{len(rows)} worker(s) connected", *lines])
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content={"workers": rows})


def agents_result(workers: Sequence[tuple[WorkerInfo, int]]) -> types.CallToolResult:
    """The agents of the connected workers, each once, with the skills its workers
    list and the workers that run it."""
    agents: dict[str, dict[str, Any]] = {}
    for info, _ in workers:
        for name in sorted(info.agents):
            entry = agents.setdefault(name, {"name": name, "skills": {}, "workers": [],
                                             "capabilities": set()})
            entry["workers"].append(info.worker_id)
            entry["capabilities"].update(info.capabilities)
            if len(info.agents) == 1:  # a worker's skills are its agents' together
                for s in info.skills:
                    entry["skills"].setdefault(s.id, {"id": s.id, "name": s.name,
                                                      "description": s.description})
    rows = [{**a, "skills": list(a["skills"].values()),
             "capabilities": sorted(a["capabilities"])} for a in agents.values()]
    lines = [f"{a['name']}: skills {', '.join(s['id'] for s in a['skills']) or '-'}; "
             f"on {len(a['workers'])} worker(s)" for a in rows]
    text = "\n".join([f"{len(rows)} agent(s) available", *lines])
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content={"agents": rows})


def error_result(message: str, *, code: str, data: dict[str, Any] | None = None
                 ) -> types.CallToolResult:
    """A call that failed as a tool error (`isError`), which the host shows the model;
    `code` is the A2A error's name (`TaskNotFoundError`) or `InvalidArguments`."""
    structured = {"error": {"code": code, "message": message, **(data or {})}}
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)],
                                structured_content=structured, is_error=True)
