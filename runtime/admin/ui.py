"""The dashboard page (``/ui``): static files shipped in the package, no build step.

The page is plain HTML, CSS and an ES module, with uPlot (MIT, vendored minified
with its license under ``static/vendor``) for the chart. It talks only to the admin
API with the token the person enters (kept in sessionStorage), so the page itself
needs no auth and holds no secret. A strict Content-Security-Policy allows
nothing but this origin's files.
"""

from __future__ import annotations

from importlib import resources

from quart import Response, request
from quart_trio import QuartTrio

__all__ = ["register_ui_routes"]

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _files() -> dict[str, bytes]:
    """The page's files by path under /ui/ (read once: they ship with the package)."""
    root = resources.files("runtime.admin") / "static"
    found: dict[str, bytes] = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                stack.append((entry, f"{prefix}{entry.name}/"))
            elif any(entry.name.endswith(ext) for ext in _TYPES):
                found[prefix + entry.name] = entry.read_bytes()
    return found


def register_ui_routes(app: QuartTrio) -> None:
    files = _files()

    def serve(name: str) -> Response:
        data = files.get(name)
        if data is None:
            return Response(b"not found", status=404, content_type="text/plain")
        kind = _TYPES["." + name.rsplit(".", 1)[-1]]
        return Response(data, status=200, content_type=kind, headers=_HEADERS)

    async def index() -> Response:
        return serve("index.html")

    async def to_index() -> Response:
        # relative, so it works under a --base-path too; the fragment (#token=) stays
        query = request.query_string.decode("latin-1")
        return Response(b"", status=308,
                        headers={"Location": "ui/" + (f"?{query}" if query else "")})

    async def asset(name: str) -> Response:
        return serve(name)

    app.add_url_rule("/ui", "ui", to_index, methods=["GET"])
    app.add_url_rule("/ui/", "ui_slash", index, methods=["GET"])
    app.add_url_rule("/ui/<path:name>", "ui_asset", asset, methods=["GET"])
