"""Reference A2A server built on the official Python SDK (a2a-sdk 1.3).

Used by ``python -m bench`` as the ``sdk-python`` baseline. The agent does the
same work as trio-a2a's echo agent (runtime/agents/echo.py): it creates a Task,
marks it WORKING, streams one text artifact echoing the user's text in
``--chunks`` pieces (default 3, append=True after the first), and completes.

With ``--database-url postgresql://...`` (the ``sdk-python-pg`` target) the task
store is the SDK's ``DatabaseTaskStore`` on PostgreSQL through SQLAlchemy async and
asyncpg (``pip install 'a2a-sdk[postgresql]'``) instead of ``InMemoryTaskStore``: the
URL's scheme becomes ``postgresql+asyncpg://``, the engine keeps SQLAlchemy's default
pool (5 connections + 10 overflow), and the store's ``initialize()`` (its
``create_all`` of the ``tasks`` table) runs at startup, before the port answers.

Run standalone::

    python bench/ref_sdk_server.py --port 8001
    python bench/ref_sdk_server.py --port 8001 --database-url postgresql://postgres@127.0.0.1/db

then::

    curl -s localhost:8001/ -H 'A2A-Version: 1.0' -H 'Content-Type: application/json' \\
      -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":
           {"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hello world"}]}}}'
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import uuid

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskStore, TaskUpdater
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


def asyncpg_url(url: str) -> str:
    """``postgresql://...`` (libpq style, as trio-a2a takes it) -> SQLAlchemy's
    ``postgresql+asyncpg://...``."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    if url.startswith("postgresql+asyncpg://"):
        return url
    raise SystemExit(f"--database-url wants a postgresql:// URL, got {url!r}")


def build_app(
    url: str,
    chunks: int = 3,
    database_url: str | None = None,
    pool: tuple[int, int] | None = None,
) -> Starlette:
    card = build_card(url)
    task_store: TaskStore
    lifespan = None
    if database_url is None:
        task_store = InMemoryTaskStore()
    else:
        from a2a.server.tasks.database_task_store import DatabaseTaskStore
        from sqlalchemy.ext.asyncio import create_async_engine

        pool_args = {} if pool is None else {"pool_size": pool[0], "max_overflow": pool[1]}
        engine = create_async_engine(asyncpg_url(database_url), **pool_args)
        db_store = DatabaseTaskStore(engine, create_table=True)
        task_store = db_store

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette):
            await db_store.initialize()  # CREATE TABLE tasks, before serving
            try:
                yield
            finally:
                await engine.dispose()

    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(chunks),
        task_store=task_store,
        agent_card=card,
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes, lifespan=lifespan)


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
    ap.add_argument(
        "--database-url",
        default=None,
        help="postgresql:// URL: DatabaseTaskStore (SQLAlchemy + asyncpg) on it instead "
        "of InMemoryTaskStore",
    )
    ap.add_argument("--pool-size", type=int, default=None,
                    help="SQLAlchemy pool_size (default: SQLAlchemy's, 5)")
    ap.add_argument("--max-overflow", type=int, default=None,
                    help="SQLAlchemy max_overflow (default: SQLAlchemy's, 10)")
    args = ap.parse_args()
    pool = None
    if args.pool_size is not None or args.max_overflow is not None:
        pool = (5 if args.pool_size is None else args.pool_size,
                10 if args.max_overflow is None else args.max_overflow)
    app = build_app(f"http://{args.host}:{args.port}/", args.chunks, args.database_url, pool)
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
