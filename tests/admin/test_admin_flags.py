"""--admin-token and --no-ui (and their environment variables) reach ServerConfig.admin."""

from __future__ import annotations

import pytest

from runtime.cli import server_config
from runtime.flags import build_parser
from runtime.server import ServerConfig


def _config(argv: list[str]) -> ServerConfig:
    return server_config(build_parser().parse_args(["server", *argv]))


def test_off_and_served_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_A2A_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TRIO_A2A_NO_UI", raising=False)
    admin = _config([]).admin
    assert (admin.token, admin.ui) == (None, True)


def test_from_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_A2A_ADMIN_TOKEN", raising=False)
    admin = _config(["--admin-token", "tok-1", "--no-ui"]).admin
    assert (admin.token, admin.ui) == ("tok-1", False)
    assert "tok-1" not in repr(_config(["--admin-token", "tok-1"]))  # never in a repr


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_A2A_ADMIN_TOKEN", "tok-env")
    monkeypatch.setenv("TRIO_A2A_NO_UI", "1")
    admin = _config([]).admin
    assert (admin.token, admin.ui) == ("tok-env", False)
    monkeypatch.setenv("TRIO_A2A_ADMIN_TOKEN", "")
    assert _config([]).admin.token is None  # empty: off
