"""A2A served also under a base path, and at the paths of the CodeTether migration guide.

Deployments behind a gateway publish A2A under a prefix (``/api/a2a/v1``), and
clients migrated by the CodeTether guide call ``/a2a/jsonrpc`` (JSON-RPC) and
``/a2a/rest/...`` (HTTP+JSON). Rather than register every route twice, this ASGI
layer in front of the app rewrites such a path to the one the app serves:

* with a base path B: ``B`` and ``B/`` become ``/`` (JSON-RPC), ``B/rest`` becomes
  ``/rest`` (``B/message:send``, ``B/v1/tasks/{id}``, ``B/tasks/send``,
  ``B/.well-known/agent-card.json`` ...);
* with the aliases on (after the base path is taken off, so they also work under
  it): ``/a2a/jsonrpc`` becomes ``/``, ``/a2a/rest/rest`` becomes ``/rest``.

The root paths keep working. Nothing else changes: headers, query, auth and
limits are the app's, so a path answers exactly as its root twin does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `normalize_base_path` checks a flag: no server stack for that
    from runtime.http.common import ASGIApp, Receive, Scope, Send

__all__ = ["PathMount", "normalize_base_path"]

JSONRPC_ALIAS = "/a2a/jsonrpc"
REST_ALIAS = "/a2a/rest"
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")


def normalize_base_path(value: str | None) -> str:
    """``/api/a2a/v1`` for ``api/a2a/v1/`` and the like, ``""`` for none or ``/``;
    ValueError for a path with empty, dot, or unsafe segments (``?``, ``#``, ``%``...)."""
    text = (value or "").strip().strip("/")
    if not text:
        return ""
    segments = text.split("/")
    for seg in segments:
        if not seg or seg in (".", "..") or not _SEGMENT.match(seg):
            raise ValueError(
                f"base path {value!r}: each segment must be letters, digits or "
                f"-._~!$&'()*+,;=:@, not empty, '.' or '..' (e.g. /api/a2a/v1); {seg!r} is not"
            )
    return "/" + "/".join(segments)


def _strip(path: str, prefix: str) -> str | None:
    """`path` without `prefix` (``/`` for the prefix itself), None if it is not under it."""
    if path == prefix or path == prefix + "/":
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix):]
    return None


class PathMount:
    """ASGI: serve `app` also under `base_path` and, with `aliases`, the CodeTether paths."""

    def __init__(self, app: ASGIApp, *, base_path: str = "", aliases: bool = False) -> None:
        self._app = app
        self.base_path = normalize_base_path(base_path)
        self.aliases = aliases

    def rewrite(self, path: str) -> str:
        """The path the app serves for `path` (`path` itself when nothing applies)."""
        if self.base_path:
            path = _strip(path, self.base_path) or path
        if self.aliases:
            if path in (JSONRPC_ALIAS, JSONRPC_ALIAS + "/"):
                return "/"
            rest = _strip(path, REST_ALIAS)
            if rest is not None:
                return rest
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = self.rewrite(scope["path"])
            if path != scope["path"]:
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self._app(scope, receive, send)
