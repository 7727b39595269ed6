"""How big a task's output is, and how to cut it so that every link frame stays small.

Two measures, pure functions, used by both ends of the worker link:

- `output_bytes`: the content a task's events add (text as UTF-8, file bytes,
  URLs, data as JSON). The per-task output cap (`--max-output-bytes`) counts it,
  the worker to stop its agent early and the server to enforce the cap, so both
  must count alike.
- `encoded_bound`: an upper bound on an event's JSON size on the wire, cheap to
  compute (no serialisation of small events). Frames are packed by it, so a frame
  never reaches the link's message limit, whatever the text holds (escapes,
  non-ASCII).

`split_event` cuts an artifact chunk whose text or file content is too large
for one frame into several chunks of the same artifact, appended in order: the
text joined, or the file's bytes concatenated, give back what the agent emitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .models import Message, Part, StreamResponse

__all__ = ["encoded_bound", "message_bound", "output_bytes", "split_event"]

_SMALL = 4096
"""Strings up to this long are bounded at 6 bytes a character (the longest JSON
escape) instead of being measured."""
_OVERHEAD = 2048
"""Member names, ids, states and timestamps of one event, generously."""
_PART_OVERHEAD = 96


def _parts(event: StreamResponse) -> Sequence[Part]:
    if event.artifact_update is not None:
        return event.artifact_update.artifact.parts
    if event.status_update is not None and event.status_update.status.message is not None:
        return event.status_update.status.message.parts
    if event.message is not None:
        return event.message.parts
    return ()


def _content_bytes(part: Part) -> int:
    if part.text is not None:
        text = part.text
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if part.raw is not None:
        return len(part.raw) * 3 // 4 - part.raw[-2:].count("=")
    if part.url is not None:
        return len(part.url)
    if part.data is not None:
        return len(json.dumps(part.data, default=str))
    return 0


def output_bytes(events: Iterable[StreamResponse]) -> int:
    """The content the events add to a task: artifact chunks, messages, status messages."""
    return sum(_content_bytes(p) for ev in events for p in _parts(ev))


def _json_bound(value: Any) -> int:
    """At least the length of `value` as JSON (pydantic writes UTF-8, json.dumps
    with ``ensure_ascii`` escapes: never shorter)."""
    if value is None:
        return 4
    if isinstance(value, str) and len(value) <= _SMALL:
        return 6 * len(value) + 2
    return len(json.dumps(value, default=str))


def _part_bound(part: Part) -> int:
    n = _PART_OVERHEAD
    for value in (part.text, part.raw, part.url, part.filename, part.media_type):
        if value is not None:
            n += _json_bound(value)
    if part.data is not None:
        n += _json_bound(part.data)
    if part.metadata:
        n += _json_bound(part.metadata)
    return n


def message_bound(message: Message) -> int:
    """An upper bound on the size of `message` as JSON, in bytes (as a `message`
    event: what a claim grant's messages are measured by)."""
    n = _OVERHEAD + sum(_part_bound(p) for p in message.parts)
    return n + sum(_json_bound(x) for x in (message.metadata, message.reference_task_ids) if x)


def encoded_bound(event: StreamResponse) -> int:
    """An upper bound on the size of `event` as JSON, in bytes."""
    if event.message is not None:
        return message_bound(event.message)
    n = _OVERHEAD + sum(_part_bound(p) for p in _parts(event))
    extras: list[Any] = []
    if (up := event.artifact_update) is not None:
        art = up.artifact
        extras += [up.metadata, art.metadata, art.name, art.description, art.extensions]
    elif (su := event.status_update) is not None:
        msg = su.status.message
        extras += [su.metadata, msg.metadata if msg else None,
                   msg.reference_task_ids if msg else None]
    elif event.task is not None:  # not output a worker sends; measured in full
        return n + len(event.task.model_dump_json())
    return n + sum(_json_bound(x) for x in extras if x)


def _content(part: Part) -> str | None:
    return part.text if part.text is not None else part.raw


def _cut(part: Part, room: int) -> list[Part]:
    """`part` as consecutive parts whose `_part_bound` is each within `room` (if its
    text or file content can be cut so); [part] if it fits, or cannot be cut."""
    bound = _part_bound(part)
    content = _content(part)
    if bound <= room or content is None:
        return [part]
    size = _json_bound(content)
    budget = room - (bound - size)  # what the content of each piece may take
    if part.text is not None:
        # As many characters as fit at this text's own JSON cost per character;
        # a slice that still does not fit is cut at 6 bytes a character (the most).
        step = min(len(content), len(content) * (budget - 2) // size)
        slices = [content[i:i + step] for i in range(0, len(content), step)] if step else []
        if not slices or any(_json_bound(s) > budget for s in slices):
            step = budget // 6
            slices = [content[i:i + step] for i in range(0, len(content), step)] if step else []
        key = "text"
    else:
        step = (budget - 2) // 4 * 4  # whole base64 quanta: each slice decodes alone
        slices = [content[i:i + step] for i in range(0, len(content), step)] if step > 0 else []
        key = "raw"
    if not slices:
        return [part]
    return [part.model_copy(update={key: piece}) for piece in slices]


def split_event(event: StreamResponse, max_bytes: int) -> list[StreamResponse]:
    """`event` as chunks whose `encoded_bound` stays within `max_bytes` where that
    can be done by cutting text and file content: an artifact chunk becomes several
    chunks of the same artifact (the first with the event's `append` and metadata,
    the rest appending, the last with its `lastChunk`). Any other event, or one
    small enough, comes back whole; so does one that cannot be cut small enough
    (the caller checks `encoded_bound` of what it gets)."""
    up = event.artifact_update
    total = encoded_bound(event)
    if up is None or total <= max_bytes:
        return [event]
    bounds = [_part_bound(p) for p in up.artifact.parts]
    room = max_bytes - (total - sum(bounds))  # for the parts of each chunk
    groups: list[list[Part]] = []
    size = 0
    for part in up.artifact.parts:
        for piece in _cut(part, room):
            weight = _part_bound(piece)
            if groups and size + weight <= room:
                groups[-1].append(piece)
                size += weight
            else:
                groups.append([piece])
                size = weight
    if len(groups) <= 1:
        return [event]
    out = []
    for i, group in enumerate(groups):
        first, last = i == 0, i == len(groups) - 1
        update = up.model_copy(update={
            "artifact": up.artifact.model_copy(update={"parts": group}),
            "append": up.append if first else True,
            "last_chunk": up.last_chunk if last else None,
            "metadata": up.metadata if first else None})
        out.append(StreamResponse(artifact_update=update))
    return out
