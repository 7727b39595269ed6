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
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runtime.client.cli_flags import COMMANDS as CLIENT_COMMANDS
from runtime.flags import (
    ENV_PREFIX,
    ConfigFileError,
    add_llm_arguments,
    add_worker_parser,
    apply_config_file,
    build_parser,
    command_parser,
)
from runtime.logs import JsonLogFormatter, banner, log_fatal, setup_logging

if TYPE_CHECKING:
    from runtime.agents.llm_config import LlmSettings
    from runtime.cli_configs import server_config, worker_config
    from runtime.server import ServerConfig
    from runtime.worker import WorkerConfig

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


def __getattr__(name: str) -> Any:
    """`server_config` and `worker_config`, imported on first use (PEP 562): they
    import the server and the worker, which `--help` and `send` do without."""
    if name in ("server_config", "worker_config"):
        from runtime import cli_configs

        return getattr(cli_configs, name)
    raise AttributeError(f"module 'runtime.cli' has no attribute {name!r}")


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
    import trio

    from runtime.server import open_server
    from runtime.supervisor import unwrap_single

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
    import trio

    from runtime.agents.llm_config import open_llm_agent
    from runtime.observe.instruments import use_worker_metrics
    from runtime.observe.worker_metrics import WorkerMetrics, open_metrics_endpoint
    from runtime.worker import open_worker

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
    from runtime.agents.llm_config import format_models, open_llm_agent

    async with open_llm_agent(settings) as (_, list_models):
        models = await list_models()
    print(format_models(models, [c.name for c in settings.providers]))


def run_migrate(url: str) -> int:
    """`python -m runtime migrate`: the schema brought up to date, or one line why not."""
    import trio

    from runtime.store import StoreOpenError
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
    """Parse, then import what the command runs (and only that): `--help` and the client
    commands start without the server stack."""
    top = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = top.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        from runtime.client.cli import run_client_command

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
        return _server(args, parser)
    if args.command == "worker":
        return _worker(args, parser)
    if args.command == "migrate":
        if not args.database_url:
            parser.error("--database-url (or TRIO_A2A_DATABASE_URL) is required")
        return run_migrate(args.database_url)
    if args.command == "models":
        return _models(args, parser)
    parser.error(f"unknown command {args.command!r}")
    return 2


def _server(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import attrs
    import trio

    from runtime.cli_configs import server_config
    from runtime.flags.ops import tracer_provider
    from runtime.store import StoreOpenError

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


def _worker(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import attrs
    import trio

    from runtime.agents.a2a_relay import a2a_relay_agent
    from runtime.agents.llm_config import ConfigError
    from runtime.agents.loader import AgentLoadError, load_agent
    from runtime.cli_configs import llm_settings, worker_config
    from runtime.flags.ops import tracer_provider
    from runtime.observe import Tracing
    from runtime.worker import AGENTS, WorkerRejected

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


def _models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import trio

    from runtime.agents.llm_config import ConfigError
    from runtime.cli_configs import llm_settings

    try:
        settings = llm_settings(args)
    except ConfigError as exc:
        parser.error(str(exc))
    if settings is None:
        parser.error("no provider configured: give --provider (and --model), or --config "
                     "with [[providers]]")
    trio.run(run_models, settings)
    return 0
