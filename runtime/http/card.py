"""The agent card this server publishes, readable by clients of both generations.

The 1.0 card lists every interface in `supportedInterfaces` (JSON-RPC and
HTTP+JSON, each at 1.0 and at 0.3); `protocol.v03.dual_version_card` merges in
the 0.3 top-level fields (`url`, `preferredTransport`, `protocolVersion`,
`additionalInterfaces`, ...) so a 0.3 client finds what it looks for, and gives
each security scheme both shapes for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

import attrs

from actors.agent import AgentSpec
from protocol.models import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from protocol.v03 import dual_version_card

__all__ = ["CardDocument", "build_card"]

JSONRPC_PATH = "/"


@attrs.frozen
class CardDocument:
    """A rendered card, its strong ETag and when its content last changed."""

    body: bytes
    etag: str
    data: dict[str, Any]
    modified: float = attrs.field(factory=time.time)
    """Seconds since the epoch; served as ``Last-Modified`` (whole seconds)."""

    @property
    def last_modified(self) -> str:
        return formatdate(int(self.modified), usegmt=True)


def _skills(agent: AgentSpec) -> list[AgentSkill]:
    if agent.skills:
        return list(agent.skills)
    return [AgentSkill(id=agent.name, name=agent.name,
                       description=agent.description or agent.name, tags=[agent.name])]


def build_card(
    agent: AgentSpec,
    base_url: str,
    *,
    streaming: bool = True,
    push_notifications: bool = True,
    auth_schemes: Sequence[str] = (),
    extended_card: bool = False,
    name: str | None = None,
    description: str | None = None,
) -> CardDocument:
    """Render the public card for `agent` served at `base_url` (no trailing slash)."""
    base = base_url.rstrip("/")
    interfaces = [
        AgentInterface(url=base + JSONRPC_PATH, protocol_binding="JSONRPC", protocol_version="1.0"),
        AgentInterface(url=base, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        AgentInterface(url=base + JSONRPC_PATH, protocol_binding="JSONRPC", protocol_version="0.3"),
        AgentInterface(url=base, protocol_binding="HTTP+JSON", protocol_version="0.3"),
    ]
    card = AgentCard(
        name=name or agent.name,
        description=description or agent.description or agent.name,
        supported_interfaces=interfaces,
        version=agent.version,
        capabilities=AgentCapabilities(streaming=streaming, push_notifications=push_notifications,
                                       extended_agent_card=extended_card),
        default_input_modes=list(agent.input_modes),
        default_output_modes=list(agent.output_modes),
        skills=_skills(agent),
        security_schemes={
            s: {"httpAuthSecurityScheme": {
                "scheme": "Bearer", "description": "Bearer token in the Authorization header"}}
            for s in auth_schemes
        } or None,
        security_requirements=[{"schemes": {s: {"list": []} for s in auth_schemes}}]
        if auth_schemes else None,
    )
    data = dual_version_card(card)
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return CardDocument(body=body, etag=etag, data=data)
