"""--mcp / --no-mcp and TRIO_A2A_NO_MCP reach ServerConfig.mcp; the default is on."""

from __future__ import annotations

import pytest

from runtime.cli import build_parser, server_config


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], None, True),
    (["--no-mcp"], None, False),
    ([], "1", False),
    (["--mcp"], "1", True),  # the flag wins over the environment
])
def test_the_flag_and_its_environment_variable(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                               env: str | None, expected: bool) -> None:
    if env is None:
        monkeypatch.delenv("TRIO_A2A_NO_MCP", raising=False)
    else:
        monkeypatch.setenv("TRIO_A2A_NO_MCP", env)
    args = build_parser().parse_args(["server", "--store", "memory", *argv])
    assert server_config(args).mcp is expected


def test_the_help_names_the_flag_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--mcp, --no-mcp serve the MCP tools at /mcp" in out
    assert "[TRIO_A2A_NO_MCP=1] (default: on)" in out
