"""A scripted OpenAI-compatible model for the observability tests: list_dir, then
an answer, with known token counts (7 in, 2 out per turn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actors.agent import AgentSpec
from actors.approval import ApprovalPolicy
from runtime.agents.llm import LlmAgentConfig, llm_agent
from runtime.providers.openai_compat import OpenAICompatProvider
from tests.providers.fake_http import Received, Reply, sse


def _turn(delta: dict[str, Any], finish: str) -> Reply:
    def chunk(body: dict[str, Any]) -> bytes:
        return sse({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    **body})
    return Reply(chunks=[chunk({"choices": [{"index": 0, "delta": delta,
                                             "finish_reason": None}]}),
                         chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                                "usage": {"prompt_tokens": 7, "completion_tokens": 2,
                                          "total_tokens": 9}}),
                         sse("[DONE]")])


class Model:
    """list_dir first, then the answer."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def __call__(self, req: Received) -> Reply:
        if req.path.endswith("/models"):  # a worker lists them when it registers
            return Reply.json({"data": [{"id": "m"}]})
        self.headers.append(req.headers)
        if not any(m["role"] == "tool" for m in req.json()["messages"]):
            return _turn({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {
                "name": "list_dir", "arguments": json.dumps({"path": "."})}}]}, "tool_calls")
        return _turn({"content": "done"}, "stop")


def llm_agent_for(url: str, workspace: Path) -> AgentSpec:
    return llm_agent(LlmAgentConfig(provider=OpenAICompatProvider(base_url=f"{url}/v1",
                                                                  api_key="sk-test"),
                                    model="m", workspace_dir=workspace,
                                    approval=ApprovalPolicy.ALL))


