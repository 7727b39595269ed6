"""The worker's fleet flags: several --server URLs (repeated, comma-separated, or
TRIO_A2A_SERVER) and --shutdown-grace; bad values are usage errors naming the flag
and the bad entry, never a traceback."""

from __future__ import annotations

import pytest
import trio

from runtime.worker import open_worker
from tests.test_cli_checks import _isolated, _parse, _usage_error  # noqa: F401 (fixture)


def servers(argv: list[str]) -> list[str]:
    args = _parse(["worker", *argv])
    from runtime.cli import worker_config

    worker_config(args)
    return list(args.server)


def test_server_urls_repeat_and_split_at_commas() -> None:
    assert servers(["--server", "http://a:1", "--server", " http://b:2 , ws://c:3"]) == [
        "http://a:1", "http://b:2", "ws://c:3"]


def test_server_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_A2A_SERVER", "http://a:1,http://b:2")
    assert servers([]) == ["http://a:1", "http://b:2"]
    assert servers(["--server", "http://c:3"]) == ["http://c:3"]  # the flag wins


def test_server_url_default() -> None:
    assert servers([]) == ["http://127.0.0.1:8000"]


@pytest.mark.parametrize(("argv", "needles"), [
    (["--server", "http://a:1,ftp://b"], ["--server must be an http://", "'ftp://b'",
                                          "(entry 2 of 2)"]),
    (["--server", "http://a:1", "--server", "b:8000"], ["--server must be", "'b:8000'",
                                                        "(entry 2 of 2)"]),
    (["--server", "http://a:1,,http://b:2"], ["--server has an empty entry (entry 2 of 3)"]),
    (["--server", "ws://a:1,http://b:2", "--transport", "http"],
     ["--server must be an http:// or https:// URL", "'ws://a:1'", "(entry 1 of 2)"]),
])
def test_a_bad_server_url_in_a_list_is_named(
        argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["worker", *argv], capsys)
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err


def test_a_bad_server_url_in_the_environment_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIO_A2A_SERVER", "http://a:1,http://b:notaport")
    err = _usage_error(["worker"], capsys)
    assert "TRIO_A2A_SERVER must be" in err and "'http://b:notaport'" in err
    assert "(entry 2 of 2)" in err


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_shutdown_grace_must_be_zero_or_more_seconds(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["worker", "--shutdown-grace", value], capsys)
    assert f"--shutdown-grace must be 0 or more seconds, not {float(value)}" in err


def test_shutdown_grace_is_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["worker", "--shutdown-grace", "soon"], capsys)
    assert "--shutdown-grace" in err and "TRIO_A2A_SHUTDOWN_GRACE" in err


def test_shutdown_grace_default_and_zero() -> None:
    from runtime.cli import worker_config

    assert worker_config(_parse(["worker"])).shutdown_grace == 20.0
    assert worker_config(_parse(["worker", "--shutdown-grace", "0"])).shutdown_grace == 0.0


def test_worker_help_documents_the_fleet_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["worker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "TRIO_A2A_SERVER, comma-separated" in text
    assert "[TRIO_A2A_SHUTDOWN_GRACE] (default 20)" in text


async def test_open_worker_names_a_bad_url_among_several() -> None:
    with pytest.raises(ValueError, match=r"'ftp://b'.*\(entry 2 of 2\)"):
        async with open_worker(["http://a:1", "ftp://b"], token=None):
            await trio.lowlevel.checkpoint()  # pragma: no cover
