"""What a client makes of the events it saw, for the end-to-end checks."""

from __future__ import annotations

from typing import Any


def parts_text(parts: Any) -> str:
    """The text of a stored message's or artifact's parts, joined."""
    return "".join(p.text or "" for p in parts)


def fold(events: list[dict[str, Any]]) -> list[str]:
    """The artifacts' texts as a client folds a stream (the scripts' event summaries):
    a task event is a snapshot, an artifact update replaces its artifact or, with
    `append`, extends it."""
    texts: dict[str, str] = {}
    for e in events:
        if e["kind"] == "task":
            texts = {a["artifact_id"]: a["text"] for a in e["artifacts"]}
        elif e["kind"] == "artifact_update":
            aid = e["artifact_id"]
            texts[aid] = (texts.get(aid, "") if e["append"] else "") + e["text"]
    return list(texts.values())
