"""The flags of `python -m runtime worker`, `migrate` and `models`."""

from __future__ import annotations

import argparse

from runtime.flags.env import (
    _env,
    _heartbeat_env,
    _number_env,
    _number_type,
    add_logging_arguments,
)
from runtime.flags.ops import add_ops_arguments

__all__ = ["BUILTIN_AGENT_NAMES", "add_database_arguments", "add_llm_arguments",
           "add_worker_parser"]

BUILTIN_AGENT_NAMES = ("echo",)  # sorted
"""The names of `runtime.worker.AGENTS`, for `--help`: importing the agents would load
the worker stack into every command (tests/test_cli_startup.py keeps the two equal)."""


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
        action="append",
        default=None,
        metavar="URL",
        help="the server's base URL; for several replicas of one server, repeat the flag or "
        "separate URLs with commas: each connection goes to the next, and a replica that "
        "stops hands the worker to the next one at once [TRIO_A2A_SERVER, comma-separated] "
        "(default http://127.0.0.1:8000)",
    )
    w.add_argument(
        "--token",
        default=_env("WORKER_TOKEN"),
        help="the worker token, sent as a bearer token [TRIO_A2A_WORKER_TOKEN]",
    )
    w.add_argument(
        "--signing-key",
        default=_env("WORKER_SIGNING_KEY"),
        help="HMAC-sign the worker link's requests with KEY_ID:SECRET (a key of the "
        "server's --signing-keys-file) [TRIO_A2A_WORKER_SIGNING_KEY]",
    )
    w.add_argument(
        "--agent",
        default=_env("AGENT", "echo"),
        metavar="AGENT",
        help=f"the agent this worker runs: a built-in name ({', '.join(BUILTIN_AGENT_NAMES)}) or "
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
    w.add_argument(
        "--shutdown-grace",
        type=_number_type(float, "SHUTDOWN_GRACE"),
        default=_number_env("SHUTDOWN_GRACE", 20.0),
        metavar="SECONDS",
        help="on SIGTERM or SIGINT, seconds the running tasks get to finish before the worker "
        "gives them back to the server, which queues them again at once (a second signal "
        "gives them back now); keep it below the time your process manager waits before it "
        "kills (Kubernetes: terminationGracePeriodSeconds, 30 s; docker stop: 10 s) "
        "[TRIO_A2A_SHUTDOWN_GRACE] (default 20)",
    )
    add_llm_arguments(w)
    add_logging_arguments(w)
    add_ops_arguments(w, server=False)
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
    g.add_argument("--workspace-cleanup", default=_env("WORKSPACE_CLEANUP"),
                   help="what becomes of a task's workspace when the task ends: always "
                   "(removed), keep-failed (kept when it failed or was canceled), never "
                   "[TRIO_A2A_WORKSPACE_CLEANUP] (default always)")
    g.add_argument("--system-prompt", default=_env("SYSTEM_PROMPT"),
                   help="the system prompt [TRIO_A2A_SYSTEM_PROMPT]")
    g.add_argument("--max-steps", type=_number_type(int, "MAX_STEPS"),
                   default=_env("MAX_STEPS") if (_env("MAX_STEPS") or "0").strip() not in
                   ("", "0") else None,
                   help="model turns per run before the task fails [TRIO_A2A_MAX_STEPS] "
                   "(default 20)")
