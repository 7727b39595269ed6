"""The CLI refuses bad flag values as usage errors before anything starts.

Each bad value used to be accepted and then fail inside a supervised actor that
kept restarting (a traceback loop that never ends). The in-process tests replace
`run_worker`/`run_server` with stubs that fail at once, so a regression fails the
test instead of starting a worker or server; the subprocess test is bounded by a
timeout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import runtime.cli as cli
from runtime.cli import build_parser, main, server_config, worker_config
from runtime.worker import WorkerConfig, WorkerRejected

ROOT = Path(__file__).resolve().parents[1]


async def _must_not_start(*_: Any) -> None:
    raise AssertionError("started despite a bad flag value")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TRIO_A2A_* from the caller's environment, no logging or GC changes, and
    nothing actually started."""
    for name in list(os.environ):
        if name.startswith(cli.ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setattr(cli, "setup_logging", lambda level, fmt: None)
    monkeypatch.setattr(cli, "tune_gc", lambda: None)
    monkeypatch.setattr(cli, "run_worker", _must_not_start)
    monkeypatch.setattr(cli, "run_server", _must_not_start)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("value", ["-1", "0", "0.0", "nan", "inf"])
def test_worker_refuses_non_positive_heartbeat_interval(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["worker", "--heartbeat-interval", value], capsys)
    assert "--heartbeat-interval must be a positive number of seconds" in err


def test_worker_refuses_negative_heartbeat_interval_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIO_A2A_HEARTBEAT_INTERVAL", "-3")
    assert "--heartbeat-interval" in _usage_error(["worker"], capsys)


@pytest.mark.parametrize(("env", "expected"), [(None, None), ("", None), ("0", None),
                                               ("12", 12.0)])
def test_heartbeat_interval_env_empty_or_zero_means_the_servers_value(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: float | None
) -> None:
    if env is not None:
        monkeypatch.setenv("TRIO_A2A_HEARTBEAT_INTERVAL", env)
    assert worker_config(_parse(["worker"])) == WorkerConfig(heartbeat_interval=expected)


def test_worker_accepts_a_positive_heartbeat_interval() -> None:
    config = worker_config(_parse(["worker", "--heartbeat-interval", "2.5"]))
    assert config.heartbeat_interval == 2.5


@pytest.mark.parametrize("argv", [
    ["--server", "ftp://host"],
    ["--server", "host:8000"],
    ["--server", "http://"],
    ["--server", "ws:///worker/ws"],
    ["--server", "http://host:notaport"],
    ["--server", "http://host:99999"],
    ["--server", "http://[::1"],
    ["--server", "ws://host", "--transport", "http"],
    ["--server", "wss://host", "--transport", "http"],
])
def test_worker_refuses_a_server_url_it_cannot_use(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["worker", *argv], capsys)
    assert "--server must be an http://" in err
    assert repr(argv[1]) in err
    if "http" in argv:
        assert "--transport http" in err


@pytest.mark.parametrize(("server", "transport"), [
    ("http://127.0.0.1:8000", "websocket"),
    ("https://a2a.example.com/base/", "websocket"),
    ("ws://[::1]:9000", "websocket"),
    ("wss://a2a.example.com/worker/ws", "websocket"),
    ("http://127.0.0.1:8000", "http"),
    ("https://a2a.example.com/base", "http"),
])
def test_worker_accepts_server_urls(server: str, transport: str) -> None:
    worker_config(_parse(["worker", "--server", server, "--transport", transport]))


def test_worker_refuses_zero_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--concurrency must be at least 1" in _usage_error(
        ["worker", "--concurrency", "0"], capsys)


@pytest.mark.parametrize("raised", [ValueError("a value went wrong deep inside"),
                                    WorkerRejected("the server refused the worker token")])
def test_worker_error_after_start_is_not_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: Exception
) -> None:
    async def fail(*_: Any) -> None:
        raise raised

    monkeypatch.setattr(cli, "run_worker", fail)
    assert main(["worker"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {raised}\n"


@pytest.mark.parametrize(("argv", "flag"), [
    (["--max-attempts", "0"], "--max-attempts must be at least 1"),
    (["--max-attempts", "-2"], "--max-attempts must be at least 1"),
    (["--cancel-timeout", "0"], "--cancel-timeout must be a positive number of seconds"),
    (["--cancel-timeout", "-1"], "--cancel-timeout must be a positive number of seconds"),
    (["--cancel-timeout", "nan"], "--cancel-timeout must be a positive number of seconds"),
    (["--lease-ttl", "inf"], "--lease-ttl must be a positive number of seconds"),
    (["--reap-interval", "0"], "--reap-interval must be a positive number of seconds"),
    (["--header-timeout", "0"], "--header-timeout must be a positive number of seconds"),
    (["--header-timeout", "inf"], "--header-timeout must be a positive number of seconds"),
    (["--store-poll-interval", "-1"],
     "--store-poll-interval must be a positive number of seconds"),
    (["--queue-rescan-interval", "0"],
     "--queue-rescan-interval must be a positive number of seconds"),
    (["--push-lease-ttl", "0"], "--push-lease-ttl must be a positive number of seconds"),
    (["--shutdown-grace", "-1"], "--shutdown-grace must be 0 or more seconds"),
    (["--shutdown-grace", "inf"], "--shutdown-grace must be 0 or more seconds"),
])
def test_server_refuses_bad_numbers(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert flag in _usage_error(["server", "--store", "memory", *argv], capsys)


@pytest.mark.parametrize(("name", "value", "flag"), [
    ("TRIO_A2A_MAX_ATTEMPTS", "0", "--max-attempts"),
    ("TRIO_A2A_CANCEL_TIMEOUT", "0", "--cancel-timeout"),
    ("TRIO_A2A_HEADER_TIMEOUT", "-1", "--header-timeout"),
])
def test_server_refuses_bad_numbers_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    name: str, value: str, flag: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert flag in _usage_error(["server", "--store", "memory"], capsys)


def test_server_max_attempts_and_cancel_timeout_reach_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = server_config(_parse(["server", "--store", "memory"]))
    assert (default.max_attempts, default.cancel_timeout) == (3, 10.0)
    given = server_config(_parse(["server", "--store", "memory", "--max-attempts", "1",
                                  "--cancel-timeout", "2.5"]))
    assert (given.max_attempts, given.cancel_timeout) == (1, 2.5)
    monkeypatch.setenv("TRIO_A2A_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("TRIO_A2A_CANCEL_TIMEOUT", "4")
    from_env = server_config(_parse(["server", "--store", "memory"]))
    assert (from_env.max_attempts, from_env.cancel_timeout) == (7, 4.0)
    flag_wins = server_config(_parse(["server", "--store", "memory", "--max-attempts", "2"]))
    assert flag_wins.max_attempts == 2


def test_server_header_timeout_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_config(_parse(["server", "--store", "memory"])).header_timeout == 20.0
    given = server_config(_parse(["server", "--store", "memory", "--header-timeout", "5"]))
    assert given.header_timeout == 5.0
    monkeypatch.setenv("TRIO_A2A_HEADER_TIMEOUT", "7.5")
    assert server_config(_parse(["server", "--store", "memory"])).header_timeout == 7.5


def test_server_shutdown_grace_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_config(_parse(["server", "--store", "memory"])).shutdown_grace == 20.0
    given = server_config(_parse(["server", "--store", "memory", "--shutdown-grace", "0"]))
    assert given.shutdown_grace == 0.0  # let go of the calls at once
    monkeypatch.setenv("TRIO_A2A_SHUTDOWN_GRACE", "12.5")
    assert server_config(_parse(["server", "--store", "memory"])).shutdown_grace == 12.5


def test_server_push_lease_ttl_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_config(_parse(["server", "--store", "memory"])).push_lease_ttl == 30.0
    given = server_config(_parse(["server", "--store", "memory", "--push-lease-ttl", "12"]))
    assert given.push_lease_ttl == 12.0
    monkeypatch.setenv("TRIO_A2A_PUSH_LEASE_TTL", "9")
    assert server_config(_parse(["server", "--store", "memory"])).push_lease_ttl == 9.0


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_names_both_worker_link_paths_and_the_lease_ttl_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server_help = _help("server", capsys)
    assert "worker link (/worker/ws and /worker/link)" in server_help
    assert "[TRIO_A2A_MAX_ATTEMPTS]" in server_help
    assert "[TRIO_A2A_CANCEL_TIMEOUT]" in server_help
    assert "[TRIO_A2A_HEADER_TIMEOUT]" in server_help
    assert "well below the server's lease TTL" in _help("worker", capsys)


@pytest.mark.parametrize(("argv", "needle"), [
    (["--heartbeat-interval", "-1"], "--heartbeat-interval"),
    (["--server", "ftp://host"], "--server"),
])
def test_python_m_runtime_worker_exits_on_bad_flags(argv: list[str], needle: str) -> None:
    """The audit's commands, as a process: they used to loop forever."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(cli.ENV_PREFIX)}
    done = subprocess.run([sys.executable, "-m", "runtime", "worker", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("command", "var", "value", "flag"), [
    ("server", "LEASE_TTL", "abc", "--lease-ttl"),
    ("server", "PORT", "80.5", "--port"),
    ("server", "MAX_BODY", "1k", "--max-body"),
    ("worker", "CONCURRENCY", "two", "--concurrency"),
    ("worker", "HEARTBEAT_INTERVAL", "soon", "--heartbeat-interval"),
])
def test_a_bad_number_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str,
    var: str, value: str, flag: str,
) -> None:
    monkeypatch.setenv(f"TRIO_A2A_{var}", value)
    with pytest.raises(SystemExit) as info:
        main([command])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and repr(value) in err
    assert f"TRIO_A2A_{var}" in err


def test_request_limits_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-parts, --max-depth, --max-string, --max-items and their variables."""
    default = server_config(_parse(["server", "--store", "memory"]))
    assert (default.max_parts, default.max_depth, default.max_string,
            default.max_items) == (1000, 64, 1 << 20, 10_000)
    given = server_config(_parse(["server", "--store", "memory", "--max-parts", "5",
                                  "--max-depth", "12", "--max-string", "300",
                                  "--max-items", "40"]))
    assert (given.limits.max_parts, given.limits.max_depth, given.limits.max_string,
            given.limits.max_items) == (5, 12, 300, 40)
    for name, value in [("MAX_PARTS", "6"), ("MAX_DEPTH", "13"), ("MAX_STRING", "301"),
                        ("MAX_ITEMS", "41")]:
        monkeypatch.setenv(f"TRIO_A2A_{name}", value)
    from_env = server_config(_parse(["server", "--store", "memory"]))
    assert (from_env.max_parts, from_env.max_depth, from_env.max_string,
            from_env.max_items) == (6, 13, 301, 41)


@pytest.mark.parametrize(("argv", "why"), [
    (["--max-parts", "0"], "--max-parts must be at least 1"),
    (["--max-depth", "0"], "--max-depth must be at least 1"),
    (["--max-depth", "201"], "--max-depth must be at most 200"),
    (["--max-string", "-5"], "--max-string must be at least 1"),
    (["--max-items", "0"], "--max-items must be at least 1"),
    (["--max-items", "many"], "must be an integer"),
])
def test_server_refuses_bad_request_limits(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert why in _usage_error(["server", "--store", "memory", *argv], capsys)


def test_server_agent_is_loaded_by_name_or_import_path() -> None:
    assert server_config(_parse(["server", "--store", "memory"])).agent.name == "echo"
    given = server_config(_parse(["server", "--store", "memory",
                                  "--agent", "bench.stream_agent:gated"]))
    assert given.agent.name == "gated-stream"
    with pytest.raises(ValueError, match="--agent: agent 'nope:x': no module named 'nope'"):
        server_config(_parse(["server", "--store", "memory", "--agent", "nope:x"]))
