"""The command line's comforts: --version everywhere, the server's TOML config file
(flags and environment over it; precise errors), each subcommand's usage on a usage
error, and a real server process whose every stderr line is JSON."""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import runtime.cli as cli
from runtime.cli import build_parser, main
from runtime.flags import apply_config_file, command_parser, version
from runtime.server import ServerConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> list[ServerConfig]:
    """No TRIO_A2A_* from the caller; the server is not started, its config kept."""
    for name in list(os.environ):
        if name.startswith(cli.ENV_PREFIX) or name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    started: list[ServerConfig] = []

    async def keep(config: ServerConfig) -> None:
        started.append(config)

    monkeypatch.setattr(cli, "setup_logging", lambda level, fmt: None)
    monkeypatch.setattr(cli, "tune_gc", lambda: None)
    monkeypatch.setattr(cli, "run_server", keep)
    return started


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def _commands() -> list[list[str]]:
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return [[], *([name] for name in sub.choices)]  # commands added later too


@pytest.mark.parametrize("argv", _commands())
def test_version_on_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _exit([*argv, "--version"], capsys)
    assert (code, out.strip()) == (0, f"trio-a2a {version()}")


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return str(path)


def test_the_file_sets_flags_and_the_command_line_and_environment_win(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: list[ServerConfig]) -> None:
    path = _file(tmp_path, 'lease-ttl = 30\nreap_interval = 2\nstore = "memory"\n'
                 'access-log = true\nmax-attempts = 5\ncard-name = "from file"\n')
    monkeypatch.setenv("TRIO_A2A_MAX_ATTEMPTS", "7")
    assert main(["server", "--config", path, "--lease-ttl", "45"]) == 0
    (config,) = _isolated
    assert config.lease_ttl == 45  # the command line
    assert config.max_attempts == 7  # the environment
    assert (config.reap_interval, config.store, config.access_log) == (2, "memory", True)
    assert config.card.name == "from file"


def test_the_config_file_may_come_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: list[ServerConfig]) -> None:
    monkeypatch.setenv("TRIO_A2A_CONFIG", _file(tmp_path, 'port = 0\nstore = "memory"\n'))
    assert main(["server"]) == 0
    assert (_isolated[0].port, _isolated[0].store) == (0, "memory")


@pytest.mark.parametrize(("text", "needles"), [
    ('store = "memory"\n\nleese-ttl = 3\n', ["unknown key 'leese-ttl'", "line 3"]),
    ('port = "8080"\n', ["line 1", "port: must be an integer, not '8080'"]),
    ("lease-ttl = true\n", ["lease-ttl: must be a number"]),
    ('store = "mysql"\n', ["store: must be one of sqlite, memory, postgres"]),
    ('no-push = "yes"\n', ["no-push: must be true or false"]),
    ("port = 70000\n", ["port: must be a port number in 0-65535"]),
    ("lease-ttl = \n", ["not valid TOML"]),
])
def test_a_bad_file_is_a_usage_error_naming_file_key_and_line(
        tmp_path: Path, text: str, needles: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, text)
    code, _, err = _exit(["server", "--config", path], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("usage: python -m runtime server")
    assert last.startswith(f"python -m runtime server: error: config file {path}")
    assert all(n in last for n in needles), last


def test_flags_added_later_are_keys_of_the_file(tmp_path: Path) -> None:
    parser = build_parser()
    server = command_parser(parser, "server")
    server.add_argument("--some-future-flag", type=int, default=None)

    def build() -> Any:
        fresh = build_parser()
        command_parser(fresh, "server").add_argument("--some-future-flag", type=int, default=None)
        return fresh

    args = parser.parse_args(["server"])
    args = apply_config_file(args, server, [], _file(tmp_path, "some-future-flag = 50051\n"), build)
    assert args.some_future_flag == 50051


def test_usage_errors_show_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _exit(["server", "--lease-ttl", "0"], capsys)
    assert code == 2 and err.startswith("usage: python -m runtime server")
    code, _, err = _exit(["worker", "--concurrency", "0"], capsys)
    assert code == 2 and err.startswith("usage: python -m runtime worker")


async def test_a_server_process_writes_json_lines_only(tmp_path: Path) -> None:
    """The banner is JSON too; the config file turns on the access log."""
    config = _file(tmp_path, 'store = "memory"\naccess-log = true\nlocal-workers = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIO_A2A_", "OTEL_"))}
    cmd = [sys.executable, "-m", "runtime", "server", "--port", "0", "--config", config,
           "--log-format", "json"]
    lines: list[dict[str, Any]] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(functools.partial(
                trio.run_process, cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, check=False))
            buffer = b""

            async def next_line() -> dict[str, Any]:
                nonlocal buffer
                while b"\n" not in buffer:
                    chunk = await proc.stderr.receive_some()
                    assert chunk, buffer
                    buffer += chunk
                raw, buffer = buffer.split(b"\n", 1)
                lines.append(json.loads(raw))  # every line is JSON
                return lines[-1]

            while "url" not in (line := await next_line()) or line["logger"] != "runtime.banner":
                pass
            async with httpx.AsyncClient(base_url=line["url"]) as c:
                assert (await c.get("/readyz")).status_code == 200
                assert (await c.get("/metrics")).status_code == 200
            while (access := await next_line())["logger"] != "runtime.access":
                pass
            proc.terminate()
    banner = next(x for x in lines if x["logger"] == "runtime.banner")
    assert banner["msg"].startswith("trio-a2a server on http://127.0.0.1:")
    assert banner["store"] == "memory" and banner["level"] == "info"
    assert (access["msg"], access["status"], access["binding"]) == ("GET /readyz 200", 200,
                                                                    "probe")


async def test_a_failed_start_is_a_json_line_too() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIO_A2A_", "OTEL_"))}
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(30):
            proc = await trio.run_process(
                [sys.executable, "-m", "runtime", "server", "--port", str(port), "--store",
                 "memory", "--log-format", "json"], cwd=ROOT, env=env, check=False,
                capture_stdout=True, capture_stderr=True)
    lines = [json.loads(x) for x in proc.stderr.decode().splitlines()]
    assert proc.returncode == 1
    assert lines[-1]["level"] == "error" and f"cannot listen on 127.0.0.1:{port}" in (
        lines[-1]["error"])
