"""I/O shells and wiring: the HTTP server, store backends, CLI.

Embed the server with `open_server(ServerConfig(...))`.
"""

from runtime.agents import echo_agent
from runtime.auth import TokenAuth, load_tokens, parse_token_lines
from runtime.card import CardDocument, build_card
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.store import MemoryBackend, SQLiteBackend, open_memory_backend, open_sqlite_backend

__all__ = [
    "CardDocument",
    "MemoryBackend",
    "RunningServer",
    "SQLiteBackend",
    "ServerConfig",
    "TokenAuth",
    "build_card",
    "echo_agent",
    "load_tokens",
    "open_memory_backend",
    "open_server",
    "open_sqlite_backend",
    "parse_token_lines",
]
