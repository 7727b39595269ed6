"""The operations flags: --version everywhere, the server's --config file, access log,
metrics and tracing switches (docs/operations.md)."""

from __future__ import annotations

import argparse
from importlib import metadata
from typing import Any

from runtime.flags.env import _bool_env, _env, _port_type

__all__ = ["add_ops_arguments", "add_version_arguments", "command_parser", "tracer_provider",
           "version"]


def version() -> str:
    try:
        return metadata.version("trio-a2a")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def add_version_arguments(parser: argparse.ArgumentParser) -> None:
    """--version on the top level and on every subcommand, also those added later."""
    text = f"trio-a2a {version()}"
    for p in (parser, *_subparsers(parser).values()):
        if "--version" not in p._option_string_actions:
            p.add_argument("--version", action="version", version=text,
                           help="print the version and exit")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_parser(parser: argparse.ArgumentParser, command: str | None
                   ) -> argparse.ArgumentParser:
    """The subcommand's own parser (its usage on a usage error), else the top level."""
    return _subparsers(parser).get(command or "", parser)


def tracer_provider(parser: argparse.ArgumentParser, service: str, flag: bool) -> Any:
    """The tracer provider --otel or the OTEL_* variables ask for (None: no tracing);
    a usage error of `parser` if the SDK is missing."""
    from runtime.observe import configure_tracing

    try:
        return configure_tracing(service, flag=flag)
    except RuntimeError as exc:
        parser.error(str(exc))


def add_ops_arguments(p: argparse.ArgumentParser, *, server: bool) -> None:
    """--otel for both commands; the server's --config and --access-log; the worker's
    --metrics-port (the server serves /metrics on its own port)."""
    g = p.add_argument_group("operations (docs/operations.md)")
    if server:
        g.add_argument(
            "--config", default=_env("CONFIG"), metavar="FILE",
            help="a TOML file of server flags, each key a flag's name without '--' "
            "(lease-ttl = 30); flags and environment variables win over it "
            "[TRIO_A2A_CONFIG]")
        g.add_argument(
            "--access-log", action="store_true", default=_bool_env("ACCESS_LOG"),
            help="log one line per HTTP request (logger runtime.access, at INFO) "
            "[TRIO_A2A_ACCESS_LOG=1] (default: off)")
    else:
        g.add_argument(
            "--metrics-port", type=_port_type("METRICS_PORT"), default=_env("METRICS_PORT"),
            help="serve Prometheus metrics at http://METRICS_HOST:PORT/metrics (0 picks a "
            "free port) [TRIO_A2A_METRICS_PORT] (default: no metrics endpoint)")
        g.add_argument(
            "--metrics-host", default=_env("METRICS_HOST", "127.0.0.1"),
            help="address of the metrics endpoint [TRIO_A2A_METRICS_HOST] "
            "(default 127.0.0.1)")
    g.add_argument(
        "--otel", action="store_true", default=_bool_env("OTEL"),
        help="export OpenTelemetry traces over OTLP (the standard OTEL_EXPORTER_OTLP_* "
        "variables say where; OTEL_TRACES_EXPORTER=otlp|console also turns tracing on); "
        "needs the 'otel' extra [TRIO_A2A_OTEL=1] (default: off)")
