"""The agent card this server publishes, readable by clients of both generations.

The 1.0 card lists every interface in `supportedInterfaces` (JSON-RPC and
HTTP+JSON, each at 1.0 and at 0.3); the 0.3 top-level fields (`url`,
`preferredTransport`, `protocolVersion`, `additionalInterfaces`, ...) are merged
in so a 0.3 client finds what it looks for. Security schemes carry both shapes
in one object for the same reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import attrs

from actors.agent import AgentSpec
from protocol.models import AgentSkill, dump

__all__ = ["CardDocument", "build_card"]

JSONRPC_PATH = "/"


@attrs.frozen
class CardDocument:
    """A rendered card and its strong ETag."""

    body: bytes
    etag: str
    data: dict[str, Any]


def _default_skills(agent: AgentSpec) -> list[dict[str, Any]]:
    if agent.skills:
        return [dump(s) for s in agent.skills]
    skill = AgentSkill(id=agent.name, name=agent.name, description=agent.description or agent.name,
                       tags=[agent.name])
    return [dump(skill)]


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
    extra_skills: Sequence[dict[str, Any]] = (),
) -> CardDocument:
    """Render the public card for `agent` served at `base_url` (no trailing slash)."""
    base = base_url.rstrip("/")
    interfaces = [
        {"url": base + JSONRPC_PATH, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {"url": base, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        {"url": base + JSONRPC_PATH, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        {"url": base, "protocolBinding": "HTTP+JSON", "protocolVersion": "0.3"},
    ]
    skills = [*_default_skills(agent), *extra_skills]
    card: dict[str, Any] = {
        "name": name or agent.name,
        "description": description or agent.description or agent.name,
        "supportedInterfaces": interfaces,
        "version": agent.version,
        "capabilities": {
            "streaming": streaming,
            "pushNotifications": push_notifications,
            "extendedAgentCard": extended_card,
            # 0.3 readers look for this one; 1.0 readers ignore it.
            "stateTransitionHistory": False,
        },
        "defaultInputModes": list(agent.input_modes),
        "defaultOutputModes": list(agent.output_modes),
        "skills": skills,
        # --- 0.3 top-level fields -------------------------------------------------
        "url": interfaces[2]["url"],
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "additionalInterfaces": [
            {"url": interfaces[2]["url"], "transport": "JSONRPC"},
            {"url": interfaces[3]["url"], "transport": "HTTP+JSON"},
        ],
        "supportsAuthenticatedExtendedCard": extended_card,
    }
    if auth_schemes:
        schemes: dict[str, Any] = {}
        for scheme in auth_schemes:
            schemes[scheme] = {
                "httpAuthSecurityScheme": {"scheme": "Bearer",
                                           "description": "Bearer token in the Authorization header"},
                # 0.3 shape of the same scheme
                "type": "http",
                "scheme": "bearer",
            }
        card["securitySchemes"] = schemes
        card["securityRequirements"] = [{"schemes": {s: {"list": []}} for s in auth_schemes}]
        card["security"] = [{s: []} for s in auth_schemes]
    body = json.dumps(card, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return CardDocument(body=body, etag=etag, data=card)
