"""The A2A agent card across 0.3 and 1.0: the 0.3 card model and its translation.

A server publishes one card for both generations: the 1.0 ProtoJSON card plus the
0.3-only top-level fields (`card_to_v03_fields`, merged by `dual_version_card`).
A client reads a card published by a 0.3 agent with `card_from_v03`. The card is
its own module because it shares nothing with the task and message translation
but the 0.3 base model; `protocol.v03` re-exports its public names.

Security schemes differ in shape: 0.3 tags a scheme with ``type`` (``apiKey`` puts
its location in ``in``), 1.0 wraps it in a oneof member (``apiKeySecurityScheme``
with ``location``); requirements are ``{name: [scopes]}`` in 0.3 and
``{"schemes": {name: {"list": [scopes]}}}`` in 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import field_validator

from protocol import models
from protocol.v03_models import _V03, _put

__all__ = [
    "PROTOCOL_VERSION",
    "AgentCard",
    "AgentInterface",
    "card_from_v03",
    "card_to_v03_fields",
    "dual_version_card",
]

PROTOCOL_VERSION = "0.3.0"

# 0.3 security scheme `type` <-> 1.0 SecurityScheme oneof member.
_SCHEME_FROM_V03 = {
    "apiKey": "apiKeySecurityScheme",
    "http": "httpAuthSecurityScheme",
    "oauth2": "oauth2SecurityScheme",
    "openIdConnect": "openIdConnectSecurityScheme",
    "mutualTLS": "mtlsSecurityScheme",
}
_SCHEME_TO_V03 = {v: k for k, v in _SCHEME_FROM_V03.items()}


def _is_v03(version: str) -> bool:
    return version == "0.3" or version.startswith("0.3.")


def _requirements_to_v03(reqs: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    return [
        {name: list((sl or {}).get("list") or []) for name, sl in r.get("schemes", {}).items()}
        for r in reqs
    ]


def _requirements_from_v03(reqs: list[dict[str, list[str]]]) -> list[dict[str, Any]]:
    return [{"schemes": {name: {"list": scopes} for name, scopes in r.items()}} for r in reqs]


def _scheme_to_v03(scheme: Mapping[str, Any]) -> dict[str, Any]:
    for member, body in scheme.items():
        kind = _SCHEME_TO_V03.get(member)
        if kind is not None and isinstance(body, dict):
            out = {"type": kind, **body}
            if kind == "apiKey" and "location" in out:
                out["in"] = out.pop("location")
            return out
    return {}


def _scheme_from_v03(scheme: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in scheme.items() if k != "type"}
    if scheme["type"] == "apiKey" and "in" in body:
        body["location"] = body.pop("in")
    return {_SCHEME_FROM_V03[scheme["type"]]: body}


# --- 1.0 -> 0.3 (server side) -------------------------------------------------------


def card_to_v03_fields(card: models.AgentCard) -> dict[str, Any]:
    """The 0.3-only top-level card fields, built from the card's 0.3 interfaces.

    They share no name with a 1.0 field, so the server can merge them into the 1.0
    card JSON and serve one card to both generations. Empty when the card declares
    no 0.3 interface. The first 0.3 interface is the preferred one; all of them are
    listed in ``additionalInterfaces`` as the 0.3 spec recommends.
    """
    ifaces = [i for i in card.supported_interfaces if _is_v03(i.protocol_version)]
    if not ifaces:
        return {}
    out: dict[str, Any] = {
        "url": ifaces[0].url,
        "preferredTransport": ifaces[0].protocol_binding,
        "protocolVersion": PROTOCOL_VERSION,
        "additionalInterfaces": [{"url": i.url, "transport": i.protocol_binding} for i in ifaces],
    }
    if card.capabilities.extended_agent_card is not None:
        out["supportsAuthenticatedExtendedCard"] = card.capabilities.extended_agent_card
    if card.security_requirements is not None:
        out["security"] = _requirements_to_v03(card.security_requirements)
    return out


def dual_version_card(card: models.AgentCard) -> dict[str, Any]:
    """The card JSON that 0.3 and 1.0 clients can both read.

    1.0 ProtoJSON plus `card_to_v03_fields`, each security scheme carrying both
    its 1.0 form and its 0.3 form (``type`` etc.), and skills their 0.3 ``security``.
    Without a 0.3 interface this is just the 1.0 JSON.
    """
    out = models.dump(card)
    fields = card_to_v03_fields(card)
    if not fields:
        return out
    out.update(fields)
    schemes = out.get("securitySchemes")
    if schemes:
        out["securitySchemes"] = {n: {**s, **_scheme_to_v03(s)} for n, s in schemes.items()}
    for skill in out["skills"]:
        if skill.get("securityRequirements") is not None:
            skill["security"] = _requirements_to_v03(skill["securityRequirements"])
    return out


# --- 0.3 -> 1.0 (client side) -------------------------------------------------------


class AgentInterface(_V03):
    url: str
    transport: str


class _AgentCapabilities(_V03):
    streaming: bool | None = None
    push_notifications: bool | None = None
    state_transition_history: bool | None = None
    extensions: list[dict[str, Any]] | None = None


class _AgentSkill(_V03):
    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security: list[dict[str, list[str]]] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this skill."""
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "description": self.description, "tags": self.tags
        }
        _put(out, "examples", self.examples)
        _put(out, "inputModes", self.input_modes)
        _put(out, "outputModes", self.output_modes)
        if self.security is not None:
            out["securityRequirements"] = _requirements_from_v03(self.security)
        return out


class AgentCard(_V03):
    """A 0.3 agent card (the parts a client needs; unknown fields ignored)."""

    name: str
    description: str
    url: str
    version: str
    capabilities: _AgentCapabilities
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[_AgentSkill]
    preferred_transport: str | None = None
    additional_interfaces: list[AgentInterface] | None = None
    protocol_version: str | None = None
    provider: dict[str, Any] | None = None
    documentation_url: str | None = None
    icon_url: str | None = None
    security_schemes: dict[str, dict[str, Any]] | None = None
    security: list[dict[str, list[str]]] | None = None
    supports_authenticated_extended_card: bool | None = None
    signatures: list[dict[str, Any]] | None = None

    @field_validator("security_schemes")
    @classmethod
    def _known_schemes(cls, v: dict[str, dict[str, Any]] | None) -> Any:
        for name, scheme in (v or {}).items():
            if scheme.get("type") not in _SCHEME_FROM_V03:
                raise ValueError(
                    f"{name}: type must be one of {', '.join(map(repr, _SCHEME_FROM_V03))}"
                )
        return v

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON card; every interface gets protocolVersion "0.3"."""
        version = ".".join((self.protocol_version or "0.3").split(".")[:2])
        ifaces = [(self.url, self.preferred_transport or "JSONRPC")]
        ifaces += [(i.url, i.transport) for i in self.additional_interfaces or ()]
        unique = list(dict.fromkeys(ifaces))
        caps: dict[str, Any] = {}
        _put(caps, "streaming", self.capabilities.streaming)
        _put(caps, "pushNotifications", self.capabilities.push_notifications)
        _put(caps, "extensions", self.capabilities.extensions)
        _put(caps, "extendedAgentCard", self.supports_authenticated_extended_card)
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "supportedInterfaces": [
                {"url": u, "protocolBinding": b, "protocolVersion": version} for u, b in unique
            ],
            "capabilities": caps,
            "defaultInputModes": self.default_input_modes,
            "defaultOutputModes": self.default_output_modes,
            "skills": [s.to_v10() for s in self.skills],
        }
        _put(out, "provider", self.provider)
        _put(out, "documentationUrl", self.documentation_url)
        _put(out, "iconUrl", self.icon_url)
        if self.security_schemes is not None:
            out["securitySchemes"] = {
                n: _scheme_from_v03(s) for n, s in self.security_schemes.items()
            }
        if self.security is not None:
            out["securityRequirements"] = _requirements_from_v03(self.security)
        _put(out, "signatures", self.signatures)
        return out


def card_from_v03(card: Mapping[str, Any]) -> models.AgentCard:
    """Read an agent card published by a 0.3 agent (client side).

    A dual card (one that also has ``supportedInterfaces``) is read as 1.0, with
    the 0.3 halves of its security schemes dropped.
    """
    if "supportedInterfaces" in card:
        parsed = models.AgentCard.model_validate(card)
        if parsed.security_schemes:
            parsed.security_schemes = {
                n: {k: v for k, v in s.items() if k in _SCHEME_TO_V03}
                for n, s in parsed.security_schemes.items()
            }
        return parsed
    return models.AgentCard.model_validate(AgentCard.model_validate(card).to_v10())
