"""I/O shells and wiring, in folders by role (docs/architecture.md, "Where things live"):
http/ (the HTTP face), link/ (the server's end of the worker link), worker/, client/,
store/, agents/, providers/, tools/, secrets/; server.py wires them, cli.py runs them.

Embed the server with `open_server(ServerConfig(...))`.

The names below are imported on first use (PEP 562), not with the package: every
`python -m runtime ...` command imports this package, and `--help` or `send` has no
use for the server stack (quart, hypercorn, gRPC, MCP, OpenTelemetry) it would load.
`from runtime import open_server` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time, `__getattr__` below
    from runtime.agents import echo_agent
    from runtime.agents.echo import split_chunks
    from runtime.agents.loader import BUILTIN_AGENTS, AgentLoadError, load_agent
    from runtime.http.auth import (
        RepeatedAuthorization,
        TokenAuth,
        TokenEntry,
        load_token_entries,
        load_tokens,
        one_authorization,
        parse_token_entries,
        parse_token_lines,
    )
    from runtime.http.card import CardDocument, CardSettings, LiveCard, SkillsSource, build_card
    from runtime.http.card_file import CardFileError, load_card_settings
    from runtime.http.cors import CorsSettings
    from runtime.http.jwt_auth import JwtSettings
    from runtime.http.listener import AcceptStatistics
    from runtime.http.push_sender import (
        HttpxPushSender,
        Resolver,
        is_public_address,
        parse_retry_after,
    )
    from runtime.http.rate_limit import RateLimit
    from runtime.security import SecurityConfig
    from runtime.server import (
        RunningServer,
        ServerConfig,
        ServerStatistics,
        open_server,
        worker_link_refusal,
    )
    from runtime.store import (
        MemoryBackend,
        SQLiteBackend,
        StoreOpenError,
        open_memory_backend,
        open_sqlite_backend,
    )

_SOURCES = {
    "runtime.agents": ("echo_agent",),
    "runtime.agents.echo": ("split_chunks",),
    "runtime.agents.loader": ("BUILTIN_AGENTS", "AgentLoadError", "load_agent"),
    "runtime.http.auth": ("RepeatedAuthorization", "TokenAuth", "TokenEntry",
                          "load_token_entries", "load_tokens", "one_authorization",
                          "parse_token_entries", "parse_token_lines"),
    "runtime.http.card": ("CardDocument", "CardSettings", "LiveCard", "SkillsSource",
                          "build_card"),
    "runtime.http.card_file": ("CardFileError", "load_card_settings"),
    "runtime.http.cors": ("CorsSettings",),
    "runtime.http.jwt_auth": ("JwtSettings",),
    "runtime.http.listener": ("AcceptStatistics",),
    "runtime.http.push_sender": ("HttpxPushSender", "Resolver", "is_public_address",
                                 "parse_retry_after"),
    "runtime.http.rate_limit": ("RateLimit",),
    "runtime.security": ("SecurityConfig",),
    "runtime.server": ("RunningServer", "ServerConfig", "ServerStatistics", "open_server",
                       "worker_link_refusal"),
    "runtime.store": ("MemoryBackend", "SQLiteBackend", "StoreOpenError",
                      "open_memory_backend", "open_sqlite_backend"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "AcceptStatistics",
    "AgentLoadError",
    "BUILTIN_AGENTS",
    "CardDocument",
    "CardFileError",
    "CardSettings",
    "LiveCard",
    "SkillsSource",
    "HttpxPushSender",
    "MemoryBackend",
    "RunningServer",
    "SQLiteBackend",
    "ServerConfig",
    "ServerStatistics",
    "StoreOpenError",
    "TokenAuth",
    "build_card",
    "echo_agent",
    "load_tokens",
    "open_memory_backend",
    "open_server",
    "open_sqlite_backend",
    "is_public_address",
    "load_agent",
    "load_card_settings",
    "parse_retry_after",
    "parse_token_lines",
    "one_authorization",
    "RepeatedAuthorization",
    "Resolver",
    "split_chunks",
    "worker_link_refusal",
    # identities and limits (docs/security.md)
    "CorsSettings",
    "JwtSettings",
    "RateLimit",
    "SecurityConfig",
    "TokenEntry",
    "load_token_entries",
    "parse_token_entries",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept; or a submodule,
    which `import runtime` used to bind along the way (`runtime.worker`) (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        return _submodule(name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _submodule(name: str) -> Any:
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
