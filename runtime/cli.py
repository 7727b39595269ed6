"""Command line: `python -m runtime server ...`, `python -m runtime worker ...`.

This module turns parsed flags into configs (checking what argparse cannot) and
runs the commands. The parser itself is `runtime.flags`, the log set-up
`runtime.logs`; the A2A client commands (`send`, `get`, `list`, `cancel`, `card`)
live in `runtime.client.cli`. The names tests and scripts import from here
(`build_parser`, `JsonLogFormatter`, ...) are re-exported.

Every flag has an environment variable (shown in `--help`); a flag given on the
command line wins over the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from protocol.limits import DEPTH_CEILING
from runtime.admin import AdminSettings
from runtime.agents.a2a_relay import a2a_relay_agent
from runtime.agents.llm_config import (
    ConfigError,
    LlmSettings,
    format_models,
    load_toml,
    open_llm_agent,
    settings_from,
)
from runtime.agents.loader import AgentLoadError, load_agent
from runtime.client.cli import COMMANDS as CLIENT_COMMANDS
from runtime.client.cli import run_client_command
from runtime.client.signing import parse_hmac_key
from runtime.flags import (
    ENV_PREFIX,
    ConfigFileError,
    add_llm_arguments,
    add_worker_parser,
    apply_config_file,
    build_parser,
    command_parser,
)
from runtime.flags.ops import tracer_provider
from runtime.flags.security import security_config
from runtime.grpc.child import grpc_missing
from runtime.http.auth import load_tokens, parse_token_lines
from runtime.http.card import CardSettings
from runtime.http.card_file import CardFileError, load_card_settings
from runtime.logs import JsonLogFormatter, banner, log_fatal, setup_logging
from runtime.observe import Tracing
from runtime.observe.instruments import use_worker_metrics
from runtime.observe.worker_metrics import WorkerMetrics, open_metrics_endpoint
from runtime.server import ServerConfig, open_server, worker_link_refusal
from runtime.store import StoreOpenError
from runtime.supervisor import unwrap_single
from runtime.worker import AGENTS, WorkerConfig, WorkerRejected, link_url, open_worker

__all__ = [
    "ENV_PREFIX",
    "JsonLogFormatter",
    "add_llm_arguments",
    "add_worker_parser",
    "build_parser",
    "main",
    "server_config",
    "setup_logging",
    "worker_config",
]


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


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a server process.

    Each request allocates a few hundred short-lived objects (models, events,
    trio tasks); at CPython's default gen-0 threshold (700) a young-generation
    collection runs every couple of requests and walks them all, which costs
    about as much CPU as the task store itself. A larger threshold keeps that
    cost per request small. `gc.freeze()` moves everything alive after start-up
    (modules, classes, pydantic schemas) out of the collector's sight for good.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def run_server(config: ServerConfig) -> None:
    # unwrap_single: a failed start reaches `main` as itself, not in the nursery's group
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, unwrap_single():
        async with trio.open_nursery() as nursery:
            async with open_server(config) as server:
                grpc = {"grpc_url": server.grpc.url} if server.grpc else {}
                banner(f"trio-a2a server on {server.url} (store: {config.store}, agent: "
                       f"{config.agent.name}, auth: {'on' if config.tokens else 'off'})"
                       + (f"; gRPC on {server.grpc.url}" if server.grpc else ""),
                       url=server.url, store=config.store, agent=config.agent.name,
                       auth=bool(config.tokens), tracing=config.tracer_provider is not None,
                       **grpc)
                async for _ in signals:
                    break
                # leaving the block is the graceful stop; a second signal cuts its grace short
                nursery.start_soon(server.hurry_on, signals)
            nursery.cancel_scope.cancel()


async def run_worker(args: argparse.Namespace, config: WorkerConfig) -> None:
    settings: LlmSettings | None = getattr(args, "llm", None)
    async with contextlib.AsyncExitStack() as stack:
        agent: Any = getattr(args, "agent_spec", None) or args.agent
        list_models = None
        label = args.agent
        if settings is not None:
            agent, list_models = await stack.enter_async_context(open_llm_agent(settings))
            label = (f"llm: {settings.provider}/{settings.model}, approve "
                     f"{settings.approval.value}, workspace {settings.workspace}")
        signals = stack.enter_context(trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        metrics = WorkerMetrics() if args.metrics_port is not None else None
        stack.enter_context(use_worker_metrics(metrics))  # the sessions record into it
        worker = await stack.enter_async_context(open_worker(
            args.server, token=args.token, agent=agent, concurrency=args.concurrency,
            name=args.name, capabilities=[c.strip() for c in args.capability],
            list_models=list_models, config=config, transport=args.transport))
        fields: dict[str, Any] = {}
        if metrics is not None:  # served until the worker has stopped
            fields["metrics_url"] = await stack.enter_async_context(open_metrics_endpoint(
                metrics, worker.statistics, args.metrics_host, args.metrics_port))
        banner(f"trio-a2a worker {worker.worker_id} ({worker.name}) for "
               f"{', '.join(args.server)} (agent: {label}, concurrency: {args.concurrency}, "
               f"transport: {args.transport})", worker_id=worker.worker_id,
               server=list(args.server), **fields)
        async for _ in signals:
            break
        # The graceful stop: running tasks get the grace to finish, then go back to the
        # server; a second signal gives them back at once.
        async with trio.open_nursery() as nursery:
            async def hurry() -> None:
                async for _ in signals:
                    worker.hurry()
            nursery.start_soon(hurry)
            await worker.shutdown()
            nursery.cancel_scope.cancel()


async def run_models(settings: LlmSettings) -> None:
    async with open_llm_agent(settings) as (_, list_models):
        models = await list_models()
    print(format_models(models, [c.name for c in settings.providers]))


def run_migrate(url: str) -> int:
    """`python -m runtime migrate`: the schema brought up to date, or one line why not."""
    from runtime.store.postgres import migrate  # psycopg only for the commands that use it
    from runtime.store.postgres_driver import display_url

    try:
        before, after = trio.run(migrate, url)
    except StoreOpenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = display_url(url)
    print(f"{where}: schema v{before} -> v{after}" if after != before
          else f"{where}: schema v{after}, up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    top = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = top.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client_command(args)
    parser = command_parser(top, args.command)  # a usage error shows this command's usage
    if args.command == "server" and args.config:
        try:  # flags and environment win over the file
            args = apply_config_file(args, parser, argv[argv.index("server") + 1:],
                                     args.config, build_parser)
        except ConfigFileError as exc:
            parser.error(str(exc))
    setup_logging(getattr(args, "log_level", "warning"), getattr(args, "log_format", "text"))
    if args.command == "server":
        try:
            config = server_config(args)
        except ValueError as exc:
            parser.error(str(exc))
        provider = tracer_provider(parser, "trio-a2a-server", args.otel)
        config = attrs.evolve(config, tracer_provider=provider)
        if args.log_level != "debug":
            # The embedded workers' per-task lines (session started, task released)
            # repeat the server's own "task released over the link"; keep their warnings.
            logging.getLogger("actors.worker").setLevel(logging.WARNING)
        tune_gc()
        try:
            trio.run(run_server, config)
        except (OSError, StoreOpenError) as exc:  # the port is taken, the store unusable
            log_fatal(args.log_format, exc)
            return 1
        finally:
            if provider is not None:
                provider.shutdown()  # exports the spans still batched
        return 0
    if args.command == "worker":
        try:
            config = worker_config(args)
        except ValueError as exc:
            parser.error(str(exc))
        provider = tracer_provider(parser, "trio-a2a-worker", args.otel)
        if provider is not None:
            config = attrs.evolve(config,
                                  sessions=Tracing(provider).session_config(config.sessions))
        # As with `python -m`, an --agent import path is found from the current
        # directory even when started through the `trio-a2a` console script.
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:  # before anything starts: a bad --agent or config is a usage error
            if args.provider == "a2a":  # a remote A2A agent does the work: relay to it
                if not args.base_url:
                    parser.error("--provider a2a needs --base-url: the remote agent's URL")
                args.llm = None
                args.agent_spec = a2a_relay_agent(args.base_url)
                args.agent = f"a2a relay to {args.base_url}"
            else:
                args.llm = llm_settings(args)
                if args.llm is None:
                    args.agent_spec = load_agent(args.agent, AGENTS)
        except AgentLoadError as exc:
            parser.error(f"--agent: {exc}")
        except ConfigError as exc:
            parser.error(str(exc))
        try:
            trio.run(run_worker, args, config)
        except (WorkerRejected, ValueError) as exc:
            # The flags were checked above: what fails once the worker runs (the server
            # refusing it, a provider's settings) is an error, not a usage problem.
            log_fatal(args.log_format, exc)
            return 1
        finally:
            if provider is not None:
                provider.shutdown()
        return 0
    if args.command == "migrate":
        if not args.database_url:
            parser.error("--database-url (or TRIO_A2A_DATABASE_URL) is required")
        return run_migrate(args.database_url)
    if args.command == "models":
        try:
            settings = llm_settings(args)
        except ConfigError as exc:
            parser.error(str(exc))
        if settings is None:
            parser.error("no provider configured: give --provider (and --model), or --config "
                         "with [[providers]]")
        trio.run(run_models, settings)
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2
