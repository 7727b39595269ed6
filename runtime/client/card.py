"""The A2A client's first step: read the agent card and choose how to talk to the agent.

The card says which interfaces the agent serves; a client of both generations
takes a 1.0 JSON-RPC interface if there is one, else 0.3, as the official SDK
does. Cards of 0.3 agents (top-level `url`, `preferredTransport`, ...) are read
through `protocol.v03.card_from_v03`, so the choice always works on the 1.0 card.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pydantic
import trio

from protocol import v03
from protocol.jsonrpc import format_validation_error
from protocol.models import AgentCard
from runtime.client.errors import (
    A2AClientError,
    A2AResponseError,
    connection_error,
    status_error,
)
from runtime.client.metrics import RequestMetrics

__all__ = ["CARD_PATHS", "Protocol", "card_urls", "fetch_card", "select_interface"]

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
"""Where the card is looked for under the base URL; the second is the pre-0.3 name."""
Protocol = Literal["auto", "1.0", "0.3"]


def _major_minor(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.strip().split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def select_interface(card: AgentCard, protocol: Protocol = "auto") -> tuple[str, str]:
    """``(generation, url)`` of the JSON-RPC interface to use, generation "1.0" or "0.3".

    "auto" takes a 1.x interface if there is one, else 0.3, else one without a
    version (read as 1.0, as the official SDK does). ValueError says what the
    card offers when nothing fits.
    """
    by_gen: dict[str, str] = {}
    for iface in card.supported_interfaces:
        if iface.protocol_binding.upper() != "JSONRPC":
            continue
        if not iface.protocol_version:
            by_gen.setdefault("", iface.url)
        elif (mm := _major_minor(iface.protocol_version)) is not None:
            if mm[0] >= 1:
                by_gen.setdefault("1.0", iface.url)
            elif mm >= (0, 3):
                by_gen.setdefault("0.3", iface.url)
    wanted = ("1.0", "0.3", "") if protocol == "auto" else (protocol,)
    for gen in wanted:
        if gen in by_gen:
            return gen or "1.0", by_gen[gen]
    offered = ", ".join(
        f"{i.protocol_binding} {i.protocol_version or '(no version)'}"
        for i in card.supported_interfaces
    ) or "nothing"
    what = "a JSON-RPC interface" if protocol == "auto" else f"a JSON-RPC {protocol} interface"
    raise ValueError(f"the agent card declares no {what} (it declares: {offered})")


def card_urls(url: str) -> tuple[str, ...]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise A2AClientError(f"not an http(s) URL: {url!r}", url=url)
    if parts.path.endswith(".json"):  # the card's own URL
        return (url,)
    base = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return tuple(base + path for path in CARD_PATHS)


async def fetch_card(http: httpx.AsyncClient, urls: tuple[str, ...],
                      headers: Mapping[str, str],
                      metrics: list[RequestMetrics],
                      verify: Callable[[dict[str, Any], str], None] | None = None,
                      ) -> tuple[AgentCard, str]:
    """The card at the first of `urls` that is not 404, in 1.0 form, and its URL;
    `verify` sees the card's JSON as served first (its signature check)."""
    for i, url in enumerate(urls):
        start = trio.current_time()
        try:
            response = await http.get(url, follow_redirects=True,
                                      headers={**headers, "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise connection_error(exc, url, http.timeout.read) from None
        elapsed = trio.current_time() - start
        ok = response.status_code == 200
        metrics.append(RequestMetrics(method="GetAgentCard", protocol="", url=url,
                                      first_s=elapsed, total_s=elapsed, events=int(ok),
                                      error=None if ok else f"HTTP {response.status_code}"))
        if response.status_code == 404 and i + 1 < len(urls):
            continue
        if not ok:
            raise status_error(response, response.content)
        try:
            data = response.json()
        except ValueError as exc:
            raise A2AResponseError(f"the agent card at {url} is not JSON: {exc}",
                                   url=url) from None
        if not isinstance(data, dict):
            raise A2AResponseError(f"the agent card at {url} is not a JSON object", url=url)
        if verify is not None:
            verify(data, url)
        try:
            return v03.card_from_v03(data), url
        except pydantic.ValidationError as exc:
            raise A2AResponseError(f"the agent card at {url} is not a valid A2A card: "
                                   f"{format_validation_error(exc, 'card')}", url=url) from None
    raise AssertionError("no card URL")
