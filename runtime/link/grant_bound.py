"""Keeping every claim grant well below the worker link's message limit.

A grant carries the task, the message its run answers, the history before
that and, for a worker that asks, the earlier tasks of its context. Carried
whole, that grew with everything the task and its context ever produced: after
a turn that streamed more than 16 MiB (output frames carry it in pieces), the
next grant of the task or of its context passed the WebSocket's 16 MiB message
limit, the link closed with 1009 and the claim looped. So a grant is bounded:

- its task snapshot leaves out the artifacts' content (their ids, names and
  metadata stay, `CONTENT_LEFT_OUT` in the metadata saying how many parts and
  bytes were left out) and the history (the grant's `message` and `history`
  carry what the run is on);
- each earlier task's answer in the context is cut to `CONTEXT_ANSWER_CHARS`,
  with a note saying how much more there was;
- the run's message and the request's metadata are carried whole (the client's
  request limit, `--max-body`, bounds them); the history, then the context, get
  what is left of `GRANT_BYTES`, newest messages first: those that do not fit
  are left out, and one note in front of what is kept says how many.

Messages are measured with `protocol.output_size.message_bound`, an upper bound
on their JSON, so a grant's real size stays below `GRANT_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocol.models import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
)
from protocol.output_size import message_bound, output_bytes

__all__ = [
    "CONTENT_LEFT_OUT",
    "CONTEXT_ANSWER_CHARS",
    "GRANT_BYTES",
    "answer_text",
    "fit_newest",
    "snapshot_bound",
    "task_snapshot",
]

GRANT_BYTES = 12 << 20
"""A grant's size on the wire, at most (by `message_bound`): 4 MiB below the
worker's 16 MiB WebSocket message limit. Only a request (the run's message and
its metadata) larger than this, possible only with `--max-body` raised past it,
makes a grant larger."""
CONTEXT_ANSWER_CHARS = 64 * 1024
"""Characters of an earlier task's answer a grant's context carries, at most:
the gist of a turn for an agent that continues the conversation, without the
bulk of a large output."""
CONTENT_LEFT_OUT = "trio-a2a/contentLeftOut"
"""Metadata key of an artifact in a grant's task snapshot: ``{"parts": n,
"bytes": b}``, the content left out of the grant (the task keeps it)."""
_NOTE_BYTES = 4096
"""Room kept for a note saying what was left out."""


def snapshot_bound(snapshot: Task) -> int:
    """An upper bound on the JSON of a grant with `snapshot` and no messages: the
    snapshot (small once emptied, so measured exactly) and the grant's other members."""
    return len(snapshot.model_dump_json()) + _NOTE_BYTES


def _emptied(artifact: Artifact, task: Task) -> Artifact:
    event = StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task.id, context_id=task.context_id, artifact=artifact))
    left_out = {"parts": len(artifact.parts), "bytes": output_bytes((event,))}
    return artifact.model_copy(update={
        "parts": [], "metadata": {**(artifact.metadata or {}), CONTENT_LEFT_OUT: left_out}})


def task_snapshot(task: Task) -> Task:
    """The task as a grant carries it: no history, and artifacts without content."""
    update: dict[str, object] = {"history": None}
    if task.artifacts:
        update["artifacts"] = [_emptied(a, task) for a in task.artifacts]
    return task.model_copy(update=update)


def answer_text(artifacts: Iterable[Artifact], limit: int = CONTEXT_ANSWER_CHARS) -> str:
    """The text of `artifacts` joined, cut to `limit` characters with a note saying
    how many more there were (counted without joining them)."""
    kept: list[str] = []
    size = rest = 0
    for artifact in artifacts:
        for part in artifact.parts:
            if part.text is None:
                continue
            room = limit - size
            if room > 0:
                kept.append(part.text[:room])
                size += len(kept[-1])
            rest += max(0, len(part.text) - max(room, 0))
    text = "".join(kept)
    if rest:
        text += f"\n[... {rest} more characters of this answer left out of the grant]"
    return text


def _note(text: str, like: Message) -> Message:
    return Message(message_id="trio-a2a:left-out", role=Role.AGENT, parts=[Part(text=text)],
                   task_id=like.task_id, context_id=like.context_id)


def fit_newest(messages: Sequence[Message], budget: int, *,
               what: str) -> tuple[list[Message], int]:
    """The newest of `messages` that fit in `budget` bytes, oldest first, and the
    bytes they take. Older ones that do not fit are left out (all of them once
    one does not, so that what is kept is the end of the conversation), with a
    note in front naming `what` they were."""
    kept: list[Message] = []
    used = 0
    room = budget - _NOTE_BYTES
    for message in reversed(messages):
        size = message_bound(message)
        if used + size > room:
            break
        kept.append(message)
        used += size
    kept.reverse()
    left_out = len(messages) - len(kept)
    if left_out:
        kept.insert(0, _note(f"[{left_out} earlier messages of {what} left out of the "
                             "grant: over its size limit]", messages[0]))
        used += _NOTE_BYTES
    return kept, used
