"""Render the 1.0 models in the A2A 0.1/0.2 shapes (the answers to `tasks/send`).

A task is ``{id, sessionId, status: {state, message, timestamp}, artifacts,
history, metadata}``; parts are tagged with ``type``; a stream carries
``{id, status, final}`` status updates and ``{id, artifact}`` artifact updates,
artifacts numbered by ``index``. Parts are written in the dialect the task was
created in (see `protocol.legacy_models`):

* `SCHEMA` (``"a2a-0.1"``): ``{"type": "file", "file": {"bytes", "mimeType",
  "name"}}``; data that is not an object is wrapped as ``{"value": v}`` with
  ``data_part_compat`` in the part's metadata, as `protocol.v03` does.
* `FLAT` (``"a2a-0.1-flat"``): ``{"type": "file", "mimeType", "fileName",
  "data": <base64>}``; data is a string with its ``mimeType``: a string stays as
  it is, any other value is written as JSON text (``application/json``).

Members kept under `EXTENSION_FIELDS_KEY` in metadata come back as members of the
object they came on (an artifact's ``worktree``), never over a standard member.
0.1 has no artifact ids, so ``name`` falls back to the artifact id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from protocol import models
from protocol.legacy_models import EXTENSION_FIELDS_KEY, WIRE_KEY, put
from protocol.states import INTERRUPTED_STATES, TERMINAL_STATES
from protocol.v03_models import _STATE_TO_V03, DATA_WRAPPED_KEY

__all__ = [
    "FLAT",
    "SCHEMA",
    "LegacyStreamRenderer",
    "artifact_to_legacy",
    "dialect_of",
    "message_to_legacy",
    "part_to_legacy",
    "push_config_to_legacy",
    "task_to_legacy",
]

SCHEMA = "a2a-0.1"
FLAT = "a2a-0.1-flat"
_ENDS_STREAM = frozenset(s.value for s in TERMINAL_STATES | INTERRUPTED_STATES)


def _as_dict(obj: BaseModel | Mapping[str, Any]) -> Mapping[str, Any]:
    return models.dump(obj) if isinstance(obj, BaseModel) else obj


def _finish(out: dict[str, Any], meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """Put `meta` on `out`, lifting the extension fields back to members."""
    if meta and (EXTENSION_FIELDS_KEY in meta or WIRE_KEY in meta):
        fields = meta.get(EXTENSION_FIELDS_KEY)
        meta = {k: v for k, v in meta.items() if k not in (EXTENSION_FIELDS_KEY, WIRE_KEY)}
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                out.setdefault(key, value)
    if meta:
        out["metadata"] = meta
    return out


def part_to_legacy(part: BaseModel | Mapping[str, Any], dialect: str = SCHEMA
                   ) -> dict[str, Any]:
    """One 1.0 part as a ``type``-tagged 0.1/0.2 part in `dialect`."""
    p = _as_dict(part)
    meta = p.get("metadata")
    media, name = p.get("mediaType"), p.get("filename")
    if p.get("text") is not None:
        return _finish({"type": "text", "text": p["text"]}, meta)
    if p.get("raw") is not None and dialect == FLAT:
        out: dict[str, Any] = {"type": "file"}
        put(out, "mimeType", media)
        put(out, "fileName", name)
        out["data"] = p["raw"]
        return _finish(out, meta)
    if p.get("raw") is not None or p.get("url") is not None:
        file: dict[str, Any] = {"bytes": p["raw"]} if p.get("raw") is not None else {
            "uri": p["url"]}
        put(file, "mimeType", media)
        put(file, "name", name)
        return _finish({"type": "file", "file": file}, meta)
    data = p.get("data")
    if data is None:
        raise ValueError("a part needs exactly one of text, raw, url or data")
    if dialect == FLAT:
        if isinstance(data, str):
            out = {"type": "data", "mimeType": media or "text/plain", "data": data}
        else:
            out = {"type": "data", "mimeType": media or "application/json",
                   "data": json.dumps(data, separators=(",", ":"))}
        return _finish(out, meta)
    out = {"type": "data"}
    put(out, "mimeType", media)
    if isinstance(data, dict):
        out["data"] = data
    else:
        out["data"] = {"value": data}
        meta = {**(meta or {}), DATA_WRAPPED_KEY: True}
    return _finish(out, meta)


def message_to_legacy(message: BaseModel | Mapping[str, Any], dialect: str = SCHEMA
                      ) -> dict[str, Any]:
    m = _as_dict(message)
    role = m["role"]
    out: dict[str, Any] = {
        "role": "agent" if role in ("ROLE_AGENT", models.Role.AGENT) else "user",
        "parts": [part_to_legacy(p, dialect) for p in m["parts"]],
    }
    put(out, "messageId", m.get("messageId"))
    return _finish(out, m.get("metadata"))


def _state(value: Any) -> str:
    return _STATE_TO_V03.get(value) or _STATE_TO_V03[models.TaskState(value).value]


def _status(s: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    out: dict[str, Any] = {"state": _state(s["state"])}
    if s.get("message") is not None:
        out["message"] = message_to_legacy(s["message"], dialect)
    put(out, "timestamp", s.get("timestamp"))
    return out


def artifact_to_legacy(artifact: BaseModel | Mapping[str, Any], dialect: str = SCHEMA, *,
                       index: int = 0, append: bool | None = None,
                       last_chunk: bool | None = None) -> dict[str, Any]:
    a = _as_dict(artifact)
    out: dict[str, Any] = {"name": a.get("name") or a["artifactId"]}
    put(out, "description", a.get("description"))
    out["parts"] = [part_to_legacy(p, dialect) for p in a["parts"]]
    out["index"] = index
    put(out, "append", append)
    put(out, "lastChunk", last_chunk)
    return _finish(out, a.get("metadata"))


def dialect_of(task: BaseModel | Mapping[str, Any]) -> str | None:
    """The 0.1/0.2 dialect a task was created in, None for a task of 0.3 or 1.0."""
    t = _as_dict(task)
    history = t.get("history") or ()
    meta = history[0].get("metadata") if history else None
    value = meta.get(WIRE_KEY) if isinstance(meta, Mapping) else None
    return value if value in (SCHEMA, FLAT) else None


def task_to_legacy(task: BaseModel | Mapping[str, Any], dialect: str = SCHEMA, *,
                   reply: BaseModel | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A task in the 0.1/0.2 shape; `reply` (an agent's direct answer) is shown as
    the status message, where 0.1 clients read the agent's answer."""
    t = _as_dict(task)
    status = dict(t["status"])
    if reply is not None and status.get("message") is None:
        status["message"] = _as_dict(reply)
    out: dict[str, Any] = {"id": t["id"], "sessionId": t["contextId"],
                           "status": _status(status, dialect)}
    if t.get("artifacts") is not None:
        out["artifacts"] = [artifact_to_legacy(a, dialect, index=i)
                            for i, a in enumerate(t["artifacts"])]
    if t.get("history") is not None:
        out["history"] = [message_to_legacy(m, dialect) for m in t["history"]]
    return _finish(out, t.get("metadata"))


def push_config_to_legacy(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A push config as 0.1's TaskPushNotificationConfig ``{id, pushNotificationConfig}``
    (``id`` is the task's; 0.1 configs have none of their own)."""
    c = _as_dict(config)
    inner: dict[str, Any] = {"url": c["url"]}
    put(inner, "token", c.get("token"))
    auth = c.get("authentication")
    if auth is not None:
        inner["authentication"] = {"schemes": [auth["scheme"]] if auth.get("scheme") else []}
        put(inner["authentication"], "credentials", auth.get("credentials"))
    return {"id": c.get("taskId") or "", "pushNotificationConfig": inner}


class LegacyStreamRenderer:
    """Renders one stream's events as 0.1/0.2 results, numbering artifacts by index.

    The task (a stream's first event) becomes a status update of its status; a
    direct message from the agent, a ``working`` status update carrying it.
    """

    def __init__(self, dialect: str = SCHEMA) -> None:
        self.dialect = dialect
        self._index: dict[str, int] = {}

    def _index_of(self, artifact_id: str) -> int:
        return self._index.setdefault(artifact_id, len(self._index))

    def __call__(self, event: models.StreamResponse) -> dict[str, Any]:
        if event.task is not None:
            for a in event.task.artifacts or ():
                self._index_of(a.artifact_id)
            return self._status(event.task.id, models.dump(event.task.status))
        if event.status_update is not None:
            u = event.status_update
            out = self._status(u.task_id, models.dump(u.status))
            return _finish(out, u.metadata)
        if event.artifact_update is not None:
            u2 = event.artifact_update
            art = artifact_to_legacy(u2.artifact, self.dialect,
                                     index=self._index_of(u2.artifact.artifact_id),
                                     append=u2.append, last_chunk=u2.last_chunk)
            return _finish({"id": u2.task_id, "artifact": art}, u2.metadata)
        msg = event.message
        assert msg is not None
        status = {"state": "TASK_STATE_WORKING", "message": models.dump(msg)}
        return self._status(msg.task_id or "", status)

    def _status(self, task_id: str, status: Mapping[str, Any]) -> dict[str, Any]:
        s = _status(status, self.dialect)
        return {"id": task_id, "status": s, "final": status["state"] in _ENDS_STREAM}
