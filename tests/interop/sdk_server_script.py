"""An official a2a-sdk 1.3 server for the client tests, run as a subprocess (it is asyncio).

    python tests/interop/sdk_server_script.py PORT VERSIONS

VERSIONS is the comma-separated list of the JSON-RPC interfaces the card
declares, in order: "0.3" (a 0.3-only agent, served through the SDK's 0.3
compat layer), "1.0,0.3" or "1.0". The agent does what the text says: `wait`
works until the task is canceled; `usage` answers "counted" in an artifact whose
metadata reports tokens (under "trio-a2a/usage"); anything else is echoed back
in one artifact in two chunks.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
from google.protobuf.struct_pb2 import Struct
from starlette.applications import Starlette

USAGE = {"provider": "sdk", "model": "echo-1", "input": 7, "output": 3}


class Executor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = get_message_text(context.message) if context.message else ""
        if text == "wait":
            await asyncio.sleep(3600)  # canceled by CancelTask
            return
        artifact_id = str(uuid.uuid4())
        if text == "usage":
            meta = Struct()
            meta.update({"trio-a2a/usage": USAGE})
            await updater.add_artifact([Part(text="counted")], artifact_id=artifact_id,
                                       name="answer", metadata=meta, last_chunk=True)
        else:
            half = max(1, len(text) // 2)
            for i, piece in enumerate((text[:half], text[half:])):
                await updater.add_artifact([Part(text=piece)], artifact_id=artifact_id,
                                           name="echo", append=i > 0, last_chunk=i == 1)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def build_app(url: str, versions: list[str]) -> Starlette:
    card = AgentCard(
        name="sdk echo",
        description="a2a-sdk echo agent for the client tests",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", url=url, protocol_version=v)
            for v in versions
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
    )
    handler = DefaultRequestHandler(agent_executor=Executor(), task_store=InMemoryTaskStore(),
                                    agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(
        handler, rpc_url="/", enable_v0_3_compat="0.3" in versions)
    return Starlette(routes=routes)


def main() -> None:
    port, versions = int(sys.argv[1]), sys.argv[2].split(",")
    app = build_app(f"http://127.0.0.1:{port}/", versions)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
