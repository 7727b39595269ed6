"""Output size and cutting (pure): the bound holds for any text, cut chunks rebuild the original."""

from __future__ import annotations

import base64

import pytest

from protocol.models import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.output_size import encoded_bound, output_bytes, split_event

KIB = 1024


def chunk(*parts: Part, **kw: object) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id="t", context_id="c", artifact=Artifact(artifact_id="a", name="out",
                                                       parts=list(parts)), **kw))


def wire_size(event: StreamResponse) -> int:
    return len(event.model_dump_json(by_alias=True, exclude_none=True).encode())


@pytest.mark.parametrize("text", [
    "a" * (300 * KIB),  # plain ASCII
    "\x01" * (100 * KIB),  # every character a 6-byte escape
    "é✓" * (80 * KIB),  # non-ASCII: 2 and 3 bytes of UTF-8
    '"\\\n' * (60 * KIB),  # 2-byte escapes
    "𝄞" * (40 * KIB),  # astral: 4 bytes of UTF-8
])
def test_cut_text_chunks_fit_and_join_back(text: str) -> None:
    event = chunk(Part(text=text, media_type="text/plain"), append=False, last_chunk=True,
                  metadata={"k": "v"})
    assert wire_size(event) <= encoded_bound(event)
    pieces = split_event(event, 64 * KIB)
    assert len(pieces) > 1
    for piece in pieces:
        assert wire_size(piece) <= encoded_bound(piece) <= 64 * KIB
    assert "".join(p.text or "" for ev in pieces for p in ev.artifact_update.artifact.parts
                   ) == text  # type: ignore[union-attr]
    ups = [ev.artifact_update for ev in pieces]
    assert [u.append for u in ups] == [False] + [True] * (len(ups) - 1)  # type: ignore[union-attr]
    assert [u.last_chunk for u in ups] == [None] * (len(ups) - 1) + [True]  # type: ignore[union-attr]
    assert [u.metadata for u in ups] == [{"k": "v"}] + [None] * (len(ups) - 1)  # type: ignore[union-attr]
    assert {u.artifact.artifact_id for u in ups} == {"a"}  # type: ignore[union-attr]
    assert output_bytes(pieces) == output_bytes([event]) == len(text.encode())


def test_a_file_is_cut_in_whole_base64_quanta() -> None:
    content = bytes(range(256)) * 1000 + b"tail"
    event = chunk(Part(raw=base64.b64encode(content).decode(), filename="f.bin",
                       media_type="application/octet-stream"))
    pieces = split_event(event, 50 * KIB)
    assert len(pieces) > 1
    parts = [p for ev in pieces for p in ev.artifact_update.artifact.parts]  # type: ignore[union-attr]
    assert all(wire_size(ev) <= encoded_bound(ev) <= 50 * KIB for ev in pieces)
    assert all(p.filename == "f.bin" for p in parts)
    assert b"".join(base64.b64decode(p.raw or "") for p in parts) == content
    assert output_bytes([event]) == len(content)


def test_what_fits_or_cannot_be_cut_comes_back_whole() -> None:
    small = chunk(Part(text="hello"))
    assert split_event(small, 64 * KIB) == [small]
    data = chunk(Part(data={"rows": ["x" * 100] * 1000}))
    assert split_event(data, 64 * KIB) == [data]  # a data part is not cut
    assert encoded_bound(data) > 64 * KIB  # the caller sees it does not fit
    status = StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=TaskStatus(
            state=TaskState.WORKING,
            message=Message(message_id="m", role=Role.AGENT, parts=[Part(text="y" * 99_999)]))))
    assert split_event(status, 64 * KIB) == [status]
    assert output_bytes([status]) == 99_999
    assert wire_size(status) <= encoded_bound(status)
