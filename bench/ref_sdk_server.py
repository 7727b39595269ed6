"""Reference A2A server built on the official Python SDK (a2a-sdk 1.3).

Used by ``python -m bench`` as the ``sdk-python`` baseline. The agent does the
same work as trio-a2a's echo agent (runtime/agents/echo.py): it creates a Task,
marks it WORKING, streams one text artifact echoing the user's text in
``--chunks`` pieces (default 3, append=True after the first), and completes.

Run standalone::

    python bench/ref_sdk_server.py --port 8001

then::

    curl -s localhost:8001/ -H 'A2A-Version: 1.0' -H 'Content-Type: application/json' \\
      -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":
           {"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hello world"}]}}}'
"""

from __future__ import annotations

import argparse
import logging
import uuid

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
)
from starlette.applications import Starlette


def split_chunks(text: str, n: int) -> list[str]:
    """Same split as trio-a2a's runtime/agents/echo.py: <= n non-empty pieces."""
    if not text:
        return [""]
    size = -(-len(text) // max(1, n))
    return [text[i : i + size] for i in range(0, len(text), size)]


class EchoExecutor(AgentExecutor):
    """Echo the user's text back as one text artifact (sent in ``chunks`` parts), then complete."""

    def __init__(self, chunks: int = 3) -> None:
        self.chunks = chunks

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = get_message_text(context.message) if context.message else ""
        pieces = split_chunks(text, self.chunks)
        artifact_id = str(uuid.uuid4())
        for i, piece in enumerate(pieces):
            await updater.add_artifact(
                [Part(text=piece)],
                artifact_id=artifact_id,
                name="echo",
                append=i > 0,
                last_chunk=i == len(pieces) - 1,
            )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            return
        await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def build_card(url: str) -> AgentCard:
    return AgentCard(
        name="sdk-python echo",
        description="a2a-sdk reference echo agent (benchmark baseline)",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", url=url, protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="echo",
                name="echo",
                description="Echoes the input text",
                tags=["echo"],
            )
        ],
    )


def build_app(url: str, chunks: int = 3) -> Starlette:
    card = build_card(url)
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(chunks),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--loop", default="auto", help="uvicorn --loop (auto|asyncio|uvloop)")
    ap.add_argument("--http", default="auto", help="uvicorn --http (auto|h11|httptools)")
    ap.add_argument(
        "--chunks",
        type=int,
        default=3,
        help="artifact chunks per reply (3 = what trio-a2a's echo agent sends)",
    )
    args = ap.parse_args()
    app = build_app(f"http://{args.host}:{args.port}/", args.chunks)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop=args.loop,
        http=args.http,
        workers=1,
        access_log=False,
        log_level="warning",
    )
    logging.shutdown()


if __name__ == "__main__":
    main()
