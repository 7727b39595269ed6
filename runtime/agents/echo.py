"""The built-in `echo` agent: not an LLM.

It streams the user's text back as one text artifact in a few chunks, then
completes. It exists so that a fresh `python -m runtime server` answers out of
the box, and as the trivial agent the benchmark measures the server with.
"""

from __future__ import annotations

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.models import AgentSkill

__all__ = ["echo_agent", "split_chunks"]

CHUNKS = 3


def split_chunks(text: str, n: int = CHUNKS) -> list[str]:
    """Split text into at most n non-empty pieces that join back to it."""
    if not text:
        return [""]
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


async def run_echo(ctx: TaskContext, emit: Emitter) -> None:
    text = ctx.text
    if not text:
        kinds = sorted({p.kind for p in ctx.message.parts})
        text = f"(no text parts; received {', '.join(kinds)})"
    pieces = split_chunks(text)
    artifact_id = None
    for i, piece in enumerate(pieces):
        artifact_id = await emit.artifact_text(
            piece, artifact_id=artifact_id, name="echo", append=i > 0,
            last_chunk=i == len(pieces) - 1,
        )
    await emit.complete()


echo_agent = AgentSpec(
    name="echo",
    run=run_echo,
    description="Echoes the text it receives back as an artifact, in a few chunks. Not an LLM.",
    skills=(AgentSkill(id="echo", name="Echo", description="Returns the user's text unchanged.",
                       tags=["echo", "test"], examples=["hello"]),),
)
