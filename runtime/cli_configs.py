"""Configs from parsed flags: what `python -m runtime server` and `worker` run with.

`server_config` and `worker_config` turn the argparse namespace into a
`ServerConfig` / `WorkerConfig`, reading the files the flags name and checking
what the parser alone cannot (a ValueError names the flag or file); the
commands themselves are in `runtime.cli`.
"""

from __future__ import annotations

import argparse
import math
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

from protocol.limits import DEPTH_CEILING
from runtime.admin import AdminSettings
from runtime.agents.llm_config import (
    LlmSettings,
    load_toml,
    settings_from,
)
from runtime.agents.loader import AgentLoadError, load_agent
from runtime.client.signing import parse_hmac_key
from runtime.flags import (
    ENV_PREFIX,
)
from runtime.flags.security import security_config
from runtime.grpc.child import grpc_missing
from runtime.http.auth import load_tokens, parse_token_lines
from runtime.http.card import CardSettings
from runtime.http.card_file import CardFileError, load_card_settings
from runtime.server import ServerConfig, worker_link_refusal
from runtime.worker import AGENTS, WorkerConfig, link_url

__all__ = ["check_server_url", "llm_settings", "server_config", "server_urls", "worker_config"]

def llm_settings(args: argparse.Namespace) -> LlmSettings | None:
    """The LLM settings of the flags and --config; None: no provider, run --agent."""
    file = load_toml(args.config) if args.config else {}
    return settings_from(args, file, where=args.config or "flags")


def _check_seconds(flag: str, value: float) -> None:
    """Refuse a duration that is not a positive finite number: trio would reject it
    (or sleep forever) only later, inside a supervised actor that keeps restarting."""
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{flag} must be a positive number of seconds, not {value}")


def _token_file(flag: str, file: str | None) -> dict[str, str]:
    """The tokens of a token-file flag (none if not given); ValueError naming the flag,
    the file and the line. A file given but holding no tokens is refused: it would
    turn auth off while the flag says it turns it on."""
    try:
        return load_tokens(file, None)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _server_agent(spec: str) -> Any:
    try:
        return load_agent(spec, AGENTS)
    except AgentLoadError as exc:
        raise ValueError(f"--agent: {exc}") from None


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig of the server flags; ValueError naming the flag if one is bad."""
    if args.local_workers < 0:
        raise ValueError(f"--local-workers must be 0 or more, not {args.local_workers}")
    _check_seconds("--lease-ttl", args.lease_ttl)
    _check_seconds("--reap-interval", args.reap_interval)
    _check_seconds("--store-poll-interval", args.store_poll_interval)
    _check_seconds("--queue-rescan-interval", args.queue_rescan_interval)
    _check_seconds("--push-lease-ttl", args.push_lease_ttl)
    _check_seconds("--cancel-timeout", args.cancel_timeout)
    _check_seconds("--header-timeout", args.header_timeout)
    if not (args.shutdown_grace >= 0 and math.isfinite(args.shutdown_grace)):
        raise ValueError(f"--shutdown-grace must be 0 or more seconds, not {args.shutdown_grace}")
    if args.max_attempts < 1:
        raise ValueError(f"--max-attempts must be at least 1, not {args.max_attempts}")
    if args.max_concurrent_tasks < 1:
        raise ValueError("--max-concurrent-tasks must be at least 1")
    for flag in ("--max-parts", "--max-depth", "--max-string", "--max-items"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, not {value}")
    if args.max_depth > DEPTH_CEILING:
        raise ValueError(f"--max-depth must be at most {DEPTH_CEILING} (the store cannot "
                         f"serialise deeper JSON), not {args.max_depth}")
    if args.max_output_bytes < 0:
        raise ValueError(f"--max-output-bytes must be 0 (no limit) or more, not "
                         f"{args.max_output_bytes}")
    tokens = _token_file("--tokens-file", args.tokens_file)
    tokens_env = os.environ.get(args.tokens_env)
    if tokens_env:
        tokens.update(parse_token_lines(tokens_env.split(","), source=args.tokens_env))
    worker_tokens = _token_file("--worker-tokens-file", args.worker_tokens_file)
    worker_env = os.environ.get(ENV_PREFIX + "WORKER_TOKENS")
    if worker_env:
        worker_tokens.update(parse_token_lines(worker_env.split(","),
                                               source=ENV_PREFIX + "WORKER_TOKENS"))
    card = CardSettings()
    if args.card_file:
        try:
            card = load_card_settings(args.card_file)
        except CardFileError as exc:
            raise ValueError(f"--card-file: {exc}") from None
    card = card.merged(name=args.card_name or None, description=args.card_description or None)
    if args.store == "postgres" and not args.database_url:
        raise ValueError("--store postgres needs --database-url (or TRIO_A2A_DATABASE_URL)")
    if args.database_pool_size < 1:
        raise ValueError(f"--database-pool-size must be at least 1, not "
                         f"{args.database_pool_size}")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        base_path=args.base_path,
        codetether_paths=args.codetether_paths,
        grpc_port=args.grpc_port,
        grpc_host=args.grpc_host or None,
        card=card,
        database_url=args.database_url,
        database_pool_size=args.database_pool_size,
        store=args.store,
        data_dir=args.data_dir,
        sqlite_synchronous=args.sqlite_synchronous,
        tokens=tokens,
        worker_tokens=worker_tokens,
        open_worker_link=args.open_worker_link,
        admin=AdminSettings(token=args.admin_token or None, ui=not args.no_ui),
        push_notifications=not args.no_push,
        mcp=args.mcp,
        allow_private_push_urls=args.allow_private_push_urls,
        max_body=args.max_body,
        max_parts=args.max_parts,
        max_depth=args.max_depth,
        max_string=args.max_string,
        max_items=args.max_items,
        header_timeout=args.header_timeout,
        shutdown_grace=args.shutdown_grace,
        keepalive=args.keepalive,
        max_concurrent_tasks=args.max_concurrent_tasks,
        local_workers=args.local_workers,
        agent=_server_agent(args.agent),
        lease_ttl=args.lease_ttl,
        reap_interval=args.reap_interval,
        store_poll_interval=args.store_poll_interval,
        queue_rescan_interval=args.queue_rescan_interval,
        push_lease_ttl=args.push_lease_ttl,
        replica_id=args.replica_id or None,
        max_attempts=args.max_attempts,
        max_output_bytes=args.max_output_bytes or None,
        cancel_timeout=args.cancel_timeout,
        access_log=args.access_log,
        security=security_config(args),
    )
    refusal = worker_link_refusal(config)
    if refusal is not None:
        raise ValueError(refusal)
    if config.grpc_port is not None and (missing := grpc_missing()):
        raise ValueError(f"--grpc-port: {missing}")
    return config


def check_server_url(url: str, transport: str) -> None:
    """Refuse a --server URL the worker link cannot use, before the worker starts:
    afterwards it would only fail inside the connection subtree, again and again."""
    if transport == "http":
        accepted = "an http:// or https:// URL with a host (--transport http)"
    else:
        accepted = "an http://, https://, ws:// or wss:// URL with a host"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # a port that is not a number or out of range raises here
        if transport != "http":
            link_url(url)  # the scheme check the worker makes when it connects
        ok = bool(parts.hostname) and (transport != "http" or parts.scheme in ("http", "https"))
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"--server must be {accepted}, not {url!r}")


def server_urls(values: Sequence[str] | None, transport: str) -> list[str]:
    """The worker's server URLs: each --server given (or TRIO_A2A_SERVER), split at
    commas; ValueError naming the flag and the bad entry."""
    source = "--server"
    if not values:
        env = os.environ.get(ENV_PREFIX + "SERVER", "")
        values = [env] if env.strip() else ["http://127.0.0.1:8000"]
        source = f"{ENV_PREFIX}SERVER" if env.strip() else source
    entries = [entry.strip() for value in values for entry in value.split(",")]
    for i, url in enumerate(entries, 1):
        where = f" (entry {i} of {len(entries)})" if len(entries) > 1 else ""
        if not url:
            raise ValueError(f"{source} has an empty entry{where}: "
                             f"{', '.join(repr(v) for v in values)}")
        try:
            check_server_url(url, transport)
        except ValueError as exc:
            raise ValueError(f"{str(exc).replace('--server', source, 1)}{where}") from None
    return entries


def worker_config(args: argparse.Namespace) -> WorkerConfig:
    """The WorkerConfig of the worker flags, after checking them (ValueError naming the
    flag); `args.server` becomes the list of server URLs."""
    if args.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, not {args.concurrency}")
    args.server = server_urls(args.server, args.transport)
    # None (unset, or TRIO_A2A_HEARTBEAT_INTERVAL empty or 0): the server's value.
    if args.heartbeat_interval is not None:
        _check_seconds("--heartbeat-interval", args.heartbeat_interval)
    grace = args.shutdown_grace
    if not (grace >= 0 and math.isfinite(grace)):
        raise ValueError(f"--shutdown-grace must be 0 or more seconds, not {grace}")
    signing = None
    if args.signing_key:
        key = parse_hmac_key(args.signing_key)
        signing = (key.key_id, key.secret)
    return WorkerConfig(heartbeat_interval=args.heartbeat_interval, shutdown_grace=grace,
                        signing_key=signing)
