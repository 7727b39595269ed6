"""I/O shells and wiring, in folders by role (docs/architecture.md, "Where things live"):
http/ (the HTTP face), link/ (the server's end of the worker link), worker/, client/,
store/, agents/, providers/, tools/, secrets/; server.py wires them, cli.py runs them.

Embed the server with `open_server(ServerConfig(...))`.
"""

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
from runtime.http.push_sender import HttpxPushSender, Resolver, is_public_address, parse_retry_after
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
