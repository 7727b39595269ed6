"""The argparse parser of `python -m runtime`: every flag, its default and its
environment variable.

Only the flag definitions live here; checking values that need more than a type
(ranges, URLs) and running the commands is `runtime.cli`'s job. Every flag has an
environment variable (shown in `--help`); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from protocol.limits import DEPTH_CEILING
from runtime.client.cli import add_client_parsers
from runtime.worker import AGENTS

__all__ = ["ENV_PREFIX", "add_llm_arguments", "add_worker_parser", "build_parser"]

ENV_PREFIX = "TRIO_A2A_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _number_type(kind: type[int] | type[float], name: str) -> Callable[[str], float]:
    """An argparse `type` for a number flag whose default may come from the
    environment variable `name`: a bad value, on the command line or in the
    variable, is a usage error that names both."""

    def parse(value: str) -> float:
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"must be {what}, not {value!r} (from the flag or {ENV_PREFIX}{name})"
            ) from None

    parse.__name__ = kind.__name__
    return parse


def _port_type(name: str) -> Callable[[str], int]:
    """An argparse `type` for a TCP port flag (default from the variable `name`): a
    value outside 0-65535 is a usage error naming the range, not an OverflowError
    from `bind()` once the server starts."""
    as_int = _number_type(int, name)

    def parse(value: str) -> int:
        port = int(as_int(value))
        if not 0 <= port <= 65535:
            raise argparse.ArgumentTypeError(
                f"must be a port number in 0-65535, not {port} (from the flag or "
                f"{ENV_PREFIX}{name})"
            )
        return port

    parse.__name__ = "port"
    return parse


def _number_env(name: str, default: float) -> str:
    """The default of a number flag as text: the variable's value if set and not
    empty, else `default`; argparse parses it with the flag's `_number_type`."""
    value = _env(name)
    return value if value and value.strip() else str(default)


def _heartbeat_env() -> str | None:
    """TRIO_A2A_HEARTBEAT_INTERVAL: unset, empty or 0 means the server's value (None);
    anything else is parsed, and checked, like the flag (argparse parses a text
    default with the flag's type, so a bad value is a usage error)."""
    value = _env("HEARTBEAT_INTERVAL")
    if not value or not value.strip():
        return None
    try:
        return None if float(value) == 0 else value
    except ValueError:
        return value


def _bool_env(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="trio-a2a runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "server",
        help="run the A2A server",
        description="Run the A2A server (JSON-RPC and HTTP+JSON, A2A 1.0 and 0.3) with the "
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
        "--public-url",
        default=_env("PUBLIC_URL"),
        help="base URL to publish in the agent card when clients reach the server "
        "through a proxy [TRIO_A2A_PUBLIC_URL] (default http://HOST:PORT)",
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
        "--no-push",
        action="store_true",
        default=_bool_env("NO_PUSH"),
        help="turn off push notifications [TRIO_A2A_NO_PUSH=1]",
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
    s.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="log level [TRIO_A2A_LOG_LEVEL] (default info)",
    )
    s.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=("text", "json"),
        help="'json' writes one JSON object per line [TRIO_A2A_LOG_FORMAT]",
    )
    add_worker_parser(sub)
    add_client_parsers(sub)
    return parser


def add_worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser(
        "worker",
        help="run a worker for a server",
        description="Run a worker: it connects to a server's worker link (/worker/ws, or "
        "/worker/link with --transport http), "
        "claims tasks offered to it and runs them with its agent; it reconnects whenever "
        "the connection is lost. Each flag can also be set by the environment variable "
        "shown in brackets.",
    )
    w.add_argument(
        "--server",
        default=_env("SERVER", "http://127.0.0.1:8000"),
        help="the server's base URL [TRIO_A2A_SERVER] (default http://127.0.0.1:8000)",
    )
    w.add_argument(
        "--token",
        default=_env("WORKER_TOKEN"),
        help="the worker token, sent as a bearer token [TRIO_A2A_WORKER_TOKEN]",
    )
    w.add_argument(
        "--agent",
        default=_env("AGENT", "echo"),
        metavar="AGENT",
        help=f"the agent this worker runs: a built-in name ({', '.join(sorted(AGENTS))}) or "
        "an import path 'package.module:attribute' naming an AgentSpec, looked up from the "
        "current directory and PYTHONPATH [TRIO_A2A_AGENT] (default echo)",
    )
    w.add_argument(
        "--concurrency",
        type=_number_type(int, "CONCURRENCY"),
        default=_number_env("CONCURRENCY", 1),
        help="tasks run at once [TRIO_A2A_CONCURRENCY] (default 1)",
    )
    w.add_argument(
        "--name",
        default=_env("WORKER_NAME"),
        help="the worker's name, for routing and logs [TRIO_A2A_WORKER_NAME] "
        "(default the host name)",
    )
    w.add_argument(
        "--capability",
        action="append",
        default=[c for c in (_env("CAPABILITIES") or "").split(",") if c.strip()],
        help="a capability tasks may require; repeat for several "
        "[TRIO_A2A_CAPABILITIES, comma-separated]",
    )
    w.add_argument(
        "--heartbeat-interval",
        type=_number_type(float, "HEARTBEAT_INTERVAL"),
        default=_heartbeat_env(),
        help="seconds between heartbeats; keep it well below the server's lease TTL "
        "(--lease-ttl, 90 s by default), or a slow heartbeat loses this worker its tasks "
        "[TRIO_A2A_HEARTBEAT_INTERVAL] (default: what the server says, a third of its "
        "lease TTL: 30 s by default)",
    )
    w.add_argument(
        "--transport",
        default=_env("TRANSPORT", "websocket"),
        choices=("websocket", "http"),
        help="how the worker link travels: 'websocket' (/worker/ws) or 'http' (POST requests "
        "plus a Server-Sent Events stream on /worker/link, for networks that block "
        "WebSockets) [TRIO_A2A_TRANSPORT] (default websocket)",
    )
    add_llm_arguments(w)
    w.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="log level [TRIO_A2A_LOG_LEVEL] (default info)",
    )
    w.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=("text", "json"),
        help="'json' writes one JSON object per line [TRIO_A2A_LOG_FORMAT]",
    )
    g = sub.add_parser(
        "migrate", help="bring a PostgreSQL task store's schema up to date",
        description="Apply the schema migrations a PostgreSQL task store needs (a server "
        "does this at start too; safe while other servers start or run).")
    add_database_arguments(g, required=True)
    m = sub.add_parser(
        "models", help="list the models of the configured providers",
        description="List what each configured provider offers, as a worker would "
        "register it (a provider that cannot be reached is named in a warning).")
    add_llm_arguments(m)


def add_database_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """--database-url; its value may hold a password, so help never shows it."""
    p.add_argument("--database-url", default=_env("DATABASE_URL"),
                   help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE for --store postgres "
                   "[TRIO_A2A_DATABASE_URL]" + (" (required)" if required else ""))
    p.add_argument("--database-pool-size", type=_number_type(int, "DATABASE_POOL_SIZE"),
                   default=_number_env("DATABASE_POOL_SIZE", 10),
                   help="connections to PostgreSQL kept at most [TRIO_A2A_DATABASE_POOL_SIZE] "
                   "(default 10)")


def add_llm_arguments(p: argparse.ArgumentParser) -> None:
    """The LLM-session flags a worker (and `models`) takes; see runtime/agents/llm_config.py."""
    g = p.add_argument_group("LLM sessions (a worker with a provider runs the LLM agent)")
    g.add_argument("--config", default=_env("CONFIG"),
                   help="a TOML file with [agent], [[providers]] and [secrets] "
                   "[TRIO_A2A_CONFIG]")
    g.add_argument("--provider", default=_env("PROVIDER"),
                   help="a provider name from the config file, or a kind: openai, anthropic, "
                   "echo; or a2a to relay every task to the A2A agent at --base-url "
                   "[TRIO_A2A_PROVIDER]")
    g.add_argument("--model", default=_env("MODEL"), help="the model id [TRIO_A2A_MODEL]")
    g.add_argument("--base-url", default=_env("BASE_URL"),
                   help="the provider's API base URL, e.g. http://127.0.0.1:11434/v1 for "
                   "Ollama [TRIO_A2A_BASE_URL]")
    g.add_argument("--api-key-secret", default=_env("API_KEY_SECRET"),
                   help="the name of the secret holding the API key (default OPENAI_API_KEY "
                   "or ANTHROPIC_API_KEY), looked up in Vault, the secrets file or the "
                   "environment [TRIO_A2A_API_KEY_SECRET]")
    g.add_argument("--approve", default=_env("APPROVE"),
                   help="tool approval policy: all, safe (read-only tools only), none, ask "
                   "(the task asks the client) [TRIO_A2A_APPROVE] (default safe)")
    g.add_argument("--workspace", default=_env("WORKSPACE"),
                   help="directory holding one workspace per task [TRIO_A2A_WORKSPACE] "
                   "(default ./workspaces)")
    g.add_argument("--system-prompt", default=_env("SYSTEM_PROMPT"),
                   help="the system prompt [TRIO_A2A_SYSTEM_PROMPT]")
    g.add_argument("--max-steps", type=_number_type(int, "MAX_STEPS"),
                   default=_env("MAX_STEPS") if (_env("MAX_STEPS") or "0").strip() not in
                   ("", "0") else None,
                   help="model turns per run before the task fails [TRIO_A2A_MAX_STEPS] "
                   "(default 20)")
