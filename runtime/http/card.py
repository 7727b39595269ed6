"""The agent card this server publishes, readable by clients of both generations.

The 1.0 card lists every interface in `supportedInterfaces` (JSON-RPC and
HTTP+JSON, each at 1.0 and at 0.3); `protocol.v03.dual_version_card` merges in
the 0.3 top-level fields (`url`, `preferredTransport`, `protocolVersion`,
`additionalInterfaces`, ...) so a 0.3 client finds what it looks for, and gives
each security scheme both shapes for the same reason.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Any

import attrs

from actors.agent import AgentSpec
from protocol.models import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentProvider,
    AgentSkill,
)
from protocol.v03 import dual_version_card

__all__ = ["CardDocument", "CardSettings", "LiveCard", "SkillsSource", "build_card"]

JSONRPC_PATH = "/"
try:
    SERVER_VERSION = importlib.metadata.version("trio-a2a")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    SERVER_VERSION = "0.1.0"


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


DEFAULT_DESCRIPTION = ("An A2A server: tasks are queued durably and run by the agents of its "
                       "workers.")


@attrs.frozen
class CardSettings:
    """What the card says about this server, from a card file and flags (flags win).

    Unset fields fall back to the embedded agent's own (name, description, version)
    when the server runs one, else to neutral defaults. `skills` are listed always,
    before the skills of the agents whose workers are connected.
    """

    name: str | None = None
    description: str | None = None
    version: str | None = None
    provider: AgentProvider | None = None
    documentation_url: str | None = None
    icon_url: str | None = None
    skills: tuple[AgentSkill, ...] = ()
    extensions: tuple[AgentExtension, ...] = ()

    def merged(self, **flags: str | None) -> CardSettings:
        """These settings with the flags that were given (not None) over them."""
        given = {k: v for k, v in flags.items() if v is not None}
        return attrs.evolve(self, **given) if given else self


def build_card(
    base_url: str,
    *,
    settings: CardSettings = CardSettings(),
    agent: AgentSpec | None = None,
    skills: Sequence[AgentSkill] = (),
    streaming: bool = True,
    push_notifications: bool = True,
    auth_schemes: Sequence[str] = (),
    extended_card: bool = False,
    modified: float | None = None,
    grpc_url: str | None = None,
) -> CardDocument:
    """Render the public card served at `base_url` (no trailing slash): `settings`,
    then `agent` (the embedded one, if any) for what they leave unset, listing the
    configured skills and then `skills` (the connected workers'), each id once.
    `grpc_url` (`host:port`) adds the 1.0 `GRPC` interface, when it is served."""
    base = base_url.rstrip("/")
    interfaces = [
        AgentInterface(url=base + JSONRPC_PATH, protocol_binding="JSONRPC", protocol_version="1.0"),
        AgentInterface(url=base, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        *([AgentInterface(url=grpc_url, protocol_binding="GRPC", protocol_version="1.0")]
          if grpc_url else []),
        AgentInterface(url=base + JSONRPC_PATH, protocol_binding="JSONRPC", protocol_version="0.3"),
        AgentInterface(url=base, protocol_binding="HTTP+JSON", protocol_version="0.3"),
    ]
    listed: dict[str, AgentSkill] = {}
    for skill in (*settings.skills, *skills):
        listed.setdefault(skill.id, skill)
    card = AgentCard(
        name=settings.name or (agent.name if agent else "trio-a2a"),
        description=settings.description or (agent.description if agent else "")
        or DEFAULT_DESCRIPTION,
        supported_interfaces=interfaces,
        provider=settings.provider,
        version=settings.version or (agent.version if agent else SERVER_VERSION),
        documentation_url=settings.documentation_url,
        icon_url=settings.icon_url,
        capabilities=AgentCapabilities(streaming=streaming, push_notifications=push_notifications,
                                       extensions=list(settings.extensions) or None,
                                       extended_agent_card=extended_card),
        default_input_modes=list(agent.input_modes) if agent else ["text/plain"],
        default_output_modes=list(agent.output_modes) if agent else ["text/plain"],
        skills=list(listed.values()),
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
    return CardDocument(body=body, etag=etag, data=data,
                        modified=time.time() if modified is None else modified)


SkillsSource = Callable[[], tuple[int, Sequence[AgentSkill]]]
"""(a version that moves when they change, the skills): the connected workers'."""


class LiveCard:
    """The card as it is now: rebuilt when the connected workers' skills change.

    Reading `document` costs one call of `skills` and a comparison while nothing
    changed; `Last-Modified` is the time of the last change that altered the card.
    """

    def __init__(self, render: Callable[[Sequence[AgentSkill]], CardDocument],
                 skills: SkillsSource | None = None) -> None:
        self._render = render
        self._skills = skills
        self._version: int | None = None
        self._document = render(())

    @property
    def document(self) -> CardDocument:
        if self._skills is not None:
            version, skills = self._skills()
            if version != self._version:
                self._version = version
                fresh = self._render(skills)
                if fresh.etag != self._document.etag:
                    self._document = fresh
        return self._document
