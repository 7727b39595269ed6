"""The discovery paths of A2A 0.1/0.2 gateways: ``GET /agent/card`` and ``GET /agent/skills``.

Gateways written against the first A2A drafts (Abathur's, for one) look for the
card at ``/agent/card`` and for the bare list of skills at ``/agent/skills``.
The card is the one served at ``/.well-known/agent-card.json`` (registered by
`runtime.http.app` on the same view, with its ETag); the skills are that card's
``skills``, live (a worker that connects adds its agents' skills).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response

from runtime.http.common import AppState, json_response

if TYPE_CHECKING:
    from quart_trio import QuartTrio

__all__ = ["register_gateway_routes"]


def register_gateway_routes(app: QuartTrio, state: AppState) -> None:
    """Add ``GET /agent/skills`` (``/agent/card`` is added beside the card's route)."""

    async def skills() -> Response:
        card = state.card.document
        return json_response(card.data.get("skills", []),
                             headers={"ETag": card.etag, "Cache-Control": state.card_cache_control})

    app.add_url_rule("/agent/skills", "agent_skills", skills, methods=["GET"])
