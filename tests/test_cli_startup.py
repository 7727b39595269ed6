"""`python -m runtime` imports what the command it runs needs, and no more.

Every command used to import the whole server (quart, hypercorn, gRPC, MCP,
OpenTelemetry, the actors and the models of three A2A generations) before it
parsed a flag: `--help` cost most of a second of CPU. These tests check the
structure that keeps start-up small, on real processes: which modules a command
has loaded when it is done. (How long it takes is measured by `python -m bench`,
never asserted here.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from runtime.server import RunningServer

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
import runtime.cli
try:
    code = runtime.cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

SERVER_STACK = ("quart", "quart_trio", "hypercorn", "grpc", "mcp", "prometheus_client",
                "psycopg", "opentelemetry.sdk", "actors", "runtime.server", "runtime.http.app",
                "runtime.http.common", "runtime.link", "runtime.worker", "runtime.store",
                "runtime.agents", "runtime.mcp", "runtime.grpc", "runtime.admin",
                "runtime.observe", "protocol.legacy", "protocol.worker_link")
"""Modules of the server and the worker: no client command needs any of them."""

PARSER_ONLY = (*SERVER_STACK, "trio", "httpx", "pydantic", "jwt", "cryptography",
               "opentelemetry", "protocol.models", "runtime.client.client")
"""What parsing the flags (and printing help) does without."""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRIO_A2A_", "OTEL_"))}


def _result(stdout: str) -> tuple[int, list[str]]:
    report = json.loads(stdout.strip().splitlines()[-1])
    return report["code"], report["modules"]


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def probe(*argv: str) -> tuple[int, list[str]]:
    """The exit code of `python -m runtime ARGV`, and the modules it had loaded at the end."""
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    return _result(out.stdout)


@pytest.mark.parametrize("argv", [["--help"], ["server", "--help"], ["worker", "--help"],
                                  ["send", "--help"], ["migrate", "--help"], ["--version"]])
def test_help_parses_without_the_server_or_the_client(argv: list[str]) -> None:
    code, modules = probe(*argv)
    assert code == 0
    assert _loaded(modules, PARSER_ONLY) == []


def test_a_usage_error_imports_nothing_of_the_command() -> None:
    code, modules = probe("send", "http://127.0.0.1:1")  # the text is missing
    assert code == 2
    assert _loaded(modules, PARSER_ONLY) == []


async def test_send_imports_the_client_and_not_the_server(server: RunningServer) -> None:
    with trio.fail_after(60):
        proc = await trio.run_process([sys.executable, "-c", PROBE, "send", server.url, "hello"],
                                      cwd=ROOT, env=_env(), capture_stdout=True,
                                      capture_stderr=True, check=False)
    assert "Traceback" not in proc.stderr.decode(), proc.stderr.decode()
    code, modules = _result(proc.stdout.decode())
    assert code == 0
    assert "hello" in proc.stdout.decode()
    assert "runtime.client.client" in modules  # it did send, through the client
    assert _loaded(modules, SERVER_STACK) == []


def test_importing_the_packages_loads_none_of_their_names() -> None:
    code = ("import json, sys, runtime, runtime.client, protocol, protocol.limits; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    assert _loaded(json.loads(out.stdout), PARSER_ONLY) == []


def test_the_packages_names_import_on_first_use() -> None:
    """`from runtime import *` (and protocol's, runtime.client's) binds every exported
    name, each the object of the module that defines it; a submodule is an attribute."""
    code = """
import json
import protocol, runtime, runtime.client
from runtime.server import open_server
from protocol.models import Task
from runtime.client.client import open_a2a_client
found = {}
for package in (runtime, runtime.client, protocol):
    namespace = {}
    exec(f"from {package.__name__} import *", namespace)
    found[package.__name__] = sorted(n for n in package.__all__ if n not in namespace)
assert runtime.open_server is open_server and protocol.Task is Task
assert runtime.client.open_a2a_client is open_a2a_client
# submodules, which importing the packages used to bind along the way, still resolve
assert runtime.worker.AGENTS and runtime.client.card_verify.CardKeys and protocol.v03_rest
print(json.dumps(found))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"runtime": [], "runtime.client": [], "protocol": []}


@pytest.mark.parametrize("package", ["runtime", "runtime.client", "protocol"])
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    module = __import__(package, fromlist=["_"])
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name
    with pytest.raises(ImportError):
        exec(f"from {package} import no_such_name", {})


def test_help_names_the_worker_s_built_in_agents() -> None:
    from runtime.flags.worker import BUILTIN_AGENT_NAMES
    from runtime.worker import AGENTS

    assert BUILTIN_AGENT_NAMES == tuple(sorted(AGENTS))
