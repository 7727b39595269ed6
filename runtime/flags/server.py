"""The flags of `python -m runtime server`, and the parser of every command."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.limits import DEPTH_CEILING
from runtime.client.cli_flags import add_client_parsers
from runtime.flags.env import (
    _bool_env,
    _env,
    _number_env,
    _number_type,
    _port_type,
    add_logging_arguments,
)
from runtime.flags.ops import add_ops_arguments, add_version_arguments
from runtime.flags.security import add_security_arguments
from runtime.flags.worker import add_database_arguments, add_worker_parser
from runtime.http.mount import normalize_base_path

__all__ = ["build_parser"]


def _base_path(value: str) -> str:
    try:
        return normalize_base_path(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="trio-a2a runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "server",
        help="run the A2A server",
        description="Run the A2A server (JSON-RPC and HTTP+JSON, A2A 1.0 and 0.3; gRPC with "
        "--grpc-port) with the "
        "built-in echo agent. Each flag can also be set by the environment "
        "variable shown in brackets.",
    )
    s.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="address to listen on [TRIO_A2A_HOST] (default 127.0.0.1)",
    )
    s.add_argument(
        "--port",
        type=_port_type("PORT"),
        default=_number_env("PORT", 8000),
        help="TCP port, 0-65535; 0 picks a free one [TRIO_A2A_PORT] (default 8000)",
    )
    s.add_argument(
        "--grpc-port",
        type=_port_type("GRPC_PORT"),
        default=_env("GRPC_PORT") or None,
        help="also serve the A2A 1.0 gRPC binding on this TCP port; 0 picks a free one "
        "(docs/grpc.md) [TRIO_A2A_GRPC_PORT] (default: off)",
    )
    s.add_argument(
        "--grpc-host",
        default=_env("GRPC_HOST"),
        help="address the gRPC binding listens on [TRIO_A2A_GRPC_HOST] (default: --host)",
    )
    s.add_argument(
        "--public-url",
        default=_env("PUBLIC_URL"),
        help="base URL to publish in the agent card when clients reach the server "
        "through a proxy [TRIO_A2A_PUBLIC_URL] (default http://HOST:PORT)",
    )
    s.add_argument(
        "--base-path",
        type=_base_path,
        default=_env("BASE_PATH", ""),
        help="serve A2A also under this path, e.g. /api/a2a/v1 (JSON-RPC at /api/a2a/v1/, "
        "HTTP+JSON and the card below it); the card's interface URLs name it "
        "[TRIO_A2A_BASE_PATH] (default: the root only)",
    )
    s.add_argument(
        "--codetether-paths",
        action="store_true",
        default=_bool_env("CODETETHER_PATHS"),
        help="serve also /a2a/jsonrpc (JSON-RPC) and /a2a/rest/... (HTTP+JSON), the paths "
        "of the CodeTether migration guide [TRIO_A2A_CODETETHER_PATHS=1] (default: off)",
    )
    s.add_argument(
        "--card-file",
        default=_env("CARD_FILE"),
        help="JSON or TOML file of what the agent card says: name, description, version, "
        "provider, documentationUrl, iconUrl, skills, extensions (docs/protocol.md) "
        "[TRIO_A2A_CARD_FILE]",
    )
    s.add_argument("--card-name", default=_env("CARD_NAME"),
                   help="the agent card's name, over the card file's [TRIO_A2A_CARD_NAME] "
                   "(default: the embedded agent's, or trio-a2a)")
    s.add_argument("--card-description", default=_env("CARD_DESCRIPTION"),
                   help="the agent card's description, over the card file's "
                   "[TRIO_A2A_CARD_DESCRIPTION]")
    s.add_argument(
        "--store",
        choices=("sqlite", "memory", "postgres"),
        default=_env("STORE", "sqlite"),
        help="task store: 'sqlite' keeps tasks in DATA_DIR/tasks.sqlite3 across "
        "restarts; 'postgres' in the database at --database-url; 'memory' forgets them "
        "on exit [TRIO_A2A_STORE] (default sqlite)",
    )
    add_database_arguments(s)
    s.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("DATA_DIR", "data") or "data"),
        help="directory of the SQLite store, created if missing; this user must be able to "
        "write it [TRIO_A2A_DATA_DIR] (default ./data)",
    )
    s.add_argument(
        "--sqlite-synchronous",
        choices=("normal", "full"),
        default=_env("SQLITE_SYNCHRONOUS", "normal"),
        help="'normal' survives a process crash, 'full' also a power loss, at some "
        "cost in throughput [TRIO_A2A_SQLITE_SYNCHRONOUS] (default normal)",
    )
    s.add_argument(
        "--tokens-file",
        default=_env("TOKENS_FILE"),
        help="turn on bearer-token auth with tokens from this file, one "
        "'principal:token' per line ('#' comments and blank lines are skipped; a file "
        "without tokens or a line without ':' is refused) [TRIO_A2A_TOKENS_FILE]",
    )
    s.add_argument(
        "--tokens-env",
        default="TRIO_A2A_TOKENS",
        metavar="VAR",
        help="environment variable holding 'principal:token' pairs separated by "
        "commas; if set and non-empty, auth is on (default TRIO_A2A_TOKENS)",
    )
    s.add_argument(
        "--worker-tokens-file",
        default=_env("WORKER_TOKENS_FILE"),
        help="tokens of the workers allowed on the worker link (/worker/ws and "
        "/worker/link), one "
        "'principal:token' per line, as in --tokens-file; also read from TRIO_A2A_WORKER_TOKENS "
        "('principal:token' pairs separated by commas). Never valid as client tokens. "
        "Without any, the link accepts every worker while client auth is off; with client "
        "auth on it takes no remote worker (and with --local-workers 0 the server refuses "
        "to start) unless --open-worker-link [TRIO_A2A_WORKER_TOKENS_FILE]",
    )
    s.add_argument(
        "--open-worker-link",
        action="store_true",
        default=_bool_env("OPEN_WORKER_LINK"),
        help="with client tokens but no worker tokens, let any remote worker on the worker "
        "link without a token, on purpose (a trusted network only: a worker sees every "
        "task's prompt and writes its result) [TRIO_A2A_OPEN_WORKER_LINK=1] (default: off)",
    )
    s.add_argument(
        "--admin-token",
        default=_env("ADMIN_TOKEN"),
        help="the token of the admin API and dashboard (Authorization: Bearer <token>); "
        "without it the admin API is off (prefer the environment variable: a flag shows "
        "in the process list) [TRIO_A2A_ADMIN_TOKEN] (default: off)",
    )
    s.add_argument(
        "--no-ui",
        action="store_true",
        default=_bool_env("NO_UI"),
        help="do not serve the dashboard page at /ui [TRIO_A2A_NO_UI=1] (default: served)",
    )
    s.add_argument(
        "--no-push",
        action="store_true",
        default=_bool_env("NO_PUSH"),
        help="turn off push notifications [TRIO_A2A_NO_PUSH=1]",
    )
    s.add_argument(
        "--mcp",
        action=argparse.BooleanOptionalAction,
        default=not _bool_env("NO_MCP"),
        help="serve the MCP tools at /mcp (Streamable HTTP; same tokens and tasks as A2A; "
        "docs/mcp.md); --no-mcp leaves the endpoint out [TRIO_A2A_NO_MCP=1] (default: on)",
    )
    s.add_argument(
        "--allow-private-push-urls",
        action="store_true",
        default=_bool_env("ALLOW_PRIVATE_PUSH_URLS"),
        help="allow push webhooks on loopback and private addresses "
        "[TRIO_A2A_ALLOW_PRIVATE_PUSH_URLS=1] (default: refused)",
    )
    s.add_argument(
        "--max-body",
        type=_number_type(int, "MAX_BODY"),
        default=_number_env("MAX_BODY", 10 << 20),
        help="largest request body in bytes; larger ones get 413 "
        "[TRIO_A2A_MAX_BODY] (default 10 MiB)",
    )
    s.add_argument(
        "--max-parts",
        type=_number_type(int, "MAX_PARTS"),
        default=_number_env("MAX_PARTS", 1000),
        help="most parts the message of one request may have (a JSON-RPC batch: all its "
        "calls together); more get -32602 [TRIO_A2A_MAX_PARTS] (default 1000)",
    )
    s.add_argument(
        "--max-depth",
        type=_number_type(int, "MAX_DEPTH"),
        default=_number_env("MAX_DEPTH", 64),
        help="deepest nesting of objects and arrays in a request, counting the JSON-RPC "
        "params or the HTTP+JSON body as level 1 (a part's data starts at level 5); at most "
        f"{DEPTH_CEILING}; deeper gets -32602 [TRIO_A2A_MAX_DEPTH] (default 64)",
    )
    s.add_argument(
        "--max-string",
        type=_number_type(int, "MAX_STRING"),
        default=_number_env("MAX_STRING", 1 << 20),
        help="most characters in any one string of a request (text, base64 file bytes, a "
        "URL, a key); longer gets -32602 [TRIO_A2A_MAX_STRING] (default 1048576)",
    )
    s.add_argument(
        "--max-items",
        type=_number_type(int, "MAX_ITEMS"),
        default=_number_env("MAX_ITEMS", 10_000),
        help="most members of one object or elements of one array in a request (parts "
        "count against --max-parts instead); more get -32602 [TRIO_A2A_MAX_ITEMS] "
        "(default 10000)",
    )
    s.add_argument(
        "--header-timeout",
        type=_number_type(float, "HEADER_TIMEOUT"),
        default=_number_env("HEADER_TIMEOUT", 20),
        help="seconds a request head may take from its first byte; then the connection "
        "is closed [TRIO_A2A_HEADER_TIMEOUT] (default 20)",
    )
    s.add_argument(
        "--shutdown-grace",
        type=_number_type(float, "SHUTDOWN_GRACE"),
        default=_number_env("SHUTDOWN_GRACE", 20),
        help="seconds a stopping server (SIGTERM) gives in-flight blocking sends and open "
        "streams to finish; then streams end with a final notice and blocking sends answer "
        "with the task as it stands [TRIO_A2A_SHUTDOWN_GRACE] (default 20)",
    )
    s.add_argument(
        "--keepalive",
        type=_number_type(float, "KEEPALIVE"),
        default=_number_env("KEEPALIVE", 15),
        help="seconds between SSE keep-alive comments on idle streams "
        "[TRIO_A2A_KEEPALIVE] (default 15)",
    )
    s.add_argument(
        "--max-concurrent-tasks",
        type=_number_type(int, "MAX_CONCURRENT_TASKS"),
        default=_number_env("MAX_CONCURRENT_TASKS", 256),
        help="agent runs in parallel per local worker; further tasks wait in the queue "
        "[TRIO_A2A_MAX_CONCURRENT_TASKS] (default 256)",
    )
    s.add_argument(
        "--local-workers",
        type=_number_type(int, "LOCAL_WORKERS"),
        default=_number_env("LOCAL_WORKERS", 1),
        help="workers inside the server running its agent; 0 leaves every task to remote "
        "workers [TRIO_A2A_LOCAL_WORKERS] (default 1)",
    )
    s.add_argument(
        "--agent",
        default=_env("SERVER_AGENT", "echo"),
        metavar="AGENT",
        help="the agent the local workers run: a built-in name or an import path "
        "'package.module:attribute' naming an AgentSpec, as for `worker --agent` "
        "[TRIO_A2A_SERVER_AGENT] (default echo)",
    )
    s.add_argument(
        "--lease-ttl",
        type=_number_type(float, "LEASE_TTL"),
        default=_number_env("LEASE_TTL", 90),
        help="seconds a claimed task stays with its worker without a heartbeat; then it is "
        "queued again. Workers heartbeat every third of it [TRIO_A2A_LEASE_TTL] (default 90)",
    )
    s.add_argument(
        "--reap-interval",
        type=_number_type(float, "REAP_INTERVAL"),
        default=_number_env("REAP_INTERVAL", 5),
        help="seconds between looks for expired leases; a task whose worker died is queued "
        "again within LEASE_TTL + REAP_INTERVAL [TRIO_A2A_REAP_INTERVAL] (default 5)",
    )
    s.add_argument(
        "--store-poll-interval",
        type=_number_type(float, "STORE_POLL_INTERVAL"),
        default=_number_env("STORE_POLL_INTERVAL", 5),
        help="with --store postgres: seconds between checks of the cached tasks against the "
        "database, the fallback should a change notification of another replica be lost "
        "[TRIO_A2A_STORE_POLL_INTERVAL] (default 5)",
    )
    s.add_argument(
        "--replica-id",
        default=_env("REPLICA_ID"),
        help="with --store postgres: this server among the replicas on the database, stable "
        "across its restarts and unique among them; a restarted replica queues its embedded "
        "workers' tasks again at once [TRIO_A2A_REPLICA_ID] (default HOSTNAME:PORT)",
    )
    s.add_argument(
        "--queue-rescan-interval",
        type=_number_type(float, "QUEUE_RESCAN_INTERVAL"),
        default=_number_env("QUEUE_RESCAN_INTERVAL", 10),
        help="with --store postgres: seconds between reconciliations of the dispatch queue "
        "with the database, the fallback should the notification of a task another replica "
        "queued be lost [TRIO_A2A_QUEUE_RESCAN_INTERVAL] (default 10)",
    )
    s.add_argument(
        "--push-lease-ttl",
        type=_number_type(float, "PUSH_LEASE_TTL"),
        default=_number_env("PUSH_LEASE_TTL", 30),
        help="seconds a replica's claim on delivering a push config lasts without renewal "
        "(renewed every third of it); with --store postgres, a config whose replica died is "
        "taken over by another within about 4/3 of it [TRIO_A2A_PUSH_LEASE_TTL] (default 30)",
    )
    s.add_argument(
        "--max-attempts",
        type=_number_type(int, "MAX_ATTEMPTS"),
        default=_number_env("MAX_ATTEMPTS", 3),
        help="claims each run of a task gets (the first, and each one a client's "
        "continuation starts): when the lease of the run's last one is lost, the task fails "
        "instead of being queued again [TRIO_A2A_MAX_ATTEMPTS] (default 3)",
    )
    s.add_argument(
        "--max-output-bytes",
        type=_number_type(int, "MAX_OUTPUT_BYTES"),
        default=_number_env("MAX_OUTPUT_BYTES", 64 << 20),
        help="output one attempt of a task may produce (text as UTF-8, file content); past "
        "it the task fails with the reason, once, and workers stop their agent there; 0 "
        "for no limit [TRIO_A2A_MAX_OUTPUT_BYTES] (default 67108864, 64 MiB)",
    )
    s.add_argument(
        "--cancel-timeout",
        type=_number_type(float, "CANCEL_TIMEOUT"),
        default=_number_env("CANCEL_TIMEOUT", 10),
        help="seconds CancelTask waits for the worker to end the task; then the task is "
        "marked canceled anyway [TRIO_A2A_CANCEL_TIMEOUT] (default 10)",
    )
    add_security_arguments(s)
    add_logging_arguments(s)
    add_ops_arguments(s, server=True)
    add_worker_parser(sub)
    add_client_parsers(sub)
    add_version_arguments(parser)  # last: every subcommand gets it
    return parser
