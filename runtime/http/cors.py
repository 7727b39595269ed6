"""CORS, off by default: which browser origins may call the server, answered in front
of every path (JSON-RPC, HTTP+JSON, the card).

A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
answered here with 204 and the allowed methods and headers; from any other origin with
204 and no CORS headers, which the browser reads as a refusal. Other requests pass on,
and an allowed origin's responses get `Access-Control-Allow-Origin` (and `Vary: Origin`).
Credentials are never allowed for the wildcard origin.
"""

from __future__ import annotations

import attrs

from runtime.http.common import ASGIApp, Receive, Scope, Send

__all__ = ["Cors", "CorsSettings"]


@attrs.frozen
class CorsSettings:
    origins: tuple[str, ...]
    """Exact origins (``https://app.example``), or ``*`` for any."""
    methods: tuple[str, ...] = ("GET", "POST", "DELETE", "OPTIONS")
    headers: tuple[str, ...] = ("Authorization", "Content-Type", "A2A-Version",
                                "Last-Event-ID", "A2A-Extensions")
    max_age: int = 600
    """Seconds a browser may cache a preflight's answer."""
    allow_credentials: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.origins:
            raise ValueError("CORS needs at least one allowed origin (or '*')")
        if self.allow_credentials and "*" in self.origins:
            raise ValueError("CORS credentials cannot be allowed for the origin '*'")

    def allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin in self.origins


class Cors:
    """ASGI middleware applying `CorsSettings` in front of `app`."""

    def __init__(self, settings: CorsSettings, app: ASGIApp) -> None:
        self.settings = settings
        self.app = app

    def _origin_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        s = self.settings
        out = [(b"access-control-allow-origin", b"*" if "*" in s.origins and not
                s.allow_credentials else origin.encode("latin-1")), (b"vary", b"Origin")]
        if s.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_origin = headers.get(b"origin")
        origin = raw_origin.decode("latin-1") if raw_origin is not None else None
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            out: list[tuple[bytes, bytes]] = [(b"content-length", b"0")]
            if origin is not None and self.settings.allowed(origin):
                s = self.settings
                out += [*self._origin_headers(origin),
                        (b"access-control-allow-methods", ", ".join(s.methods).encode()),
                        (b"access-control-allow-headers", ", ".join(s.headers).encode()),
                        (b"access-control-max-age", str(s.max_age).encode())]
            await send({"type": "http.response.start", "status": 204, "headers": out})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if origin is None or not self.settings.allowed(origin):
            await self.app(scope, receive, send)
            return
        extra = self._origin_headers(origin)

        async def send_with_cors(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
