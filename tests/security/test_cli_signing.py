"""Our CLI signs when given a key: the client commands (`--signing-key`,
`A2A_SIGNING_KEY`) against a server that requires signed requests, and the worker
command's `--signing-key` reaching the worker's configuration; a malformed key is a
usage error naming the flag, never a traceback."""

from __future__ import annotations

import pytest
import trio

from runtime.cli import build_parser
from runtime.cli_configs import worker_config
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.client.test_cli import run

SECRET = "k" * 40


async def test_the_client_cli_signs_when_given_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    signing = SigningSettings(keys={"cli-key": SECRET.encode()}, required=True)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          security=SecurityConfig(request_signing=signing))
    async with open_server(config) as srv:
        with trio.fail_after(30):
            code, out, err = await run("send", srv.url, "echo signed", "--signing-key",
                                       f"cli-key:{SECRET}")
            assert code == 0, err
            assert "echo signed" in out
            code, out, err = await run("list", srv.url, "--signing-key", f"cli-key:{SECRET}")
            assert code == 0, err
            # unsigned: refused by the server (401 naming the missing headers)
            code, out, err = await run("list", srv.url)
            assert code != 0 and "missing header" in err, (code, out, err)
            # a key the server does not know
            code, out, err = await run("list", srv.url, "--signing-key", f"other:{SECRET}")
            assert code != 0 and "unknown key id" in err, (code, out, err)
            # from the environment (read when the parser is built)
            monkeypatch.setenv("A2A_SIGNING_KEY", f"cli-key:{SECRET}")
            code, out, err = await run("list", srv.url)
            assert code == 0, err


async def test_a_malformed_client_key_is_a_usage_error() -> None:
    code, out, err = await run("list", "http://127.0.0.1:9", "--signing-key", "short:abc")
    assert code == 2 and "KEY_ID:SECRET" in err, (code, out, err)


def test_the_worker_cli_passes_its_key_on() -> None:
    args = build_parser().parse_args(["worker", "--server", "http://127.0.0.1:9",
                                      "--signing-key", f"worker-1:{SECRET}"])
    assert worker_config(args).signing_key == ("worker-1", SECRET.encode())
    bad = build_parser().parse_args(["worker", "--server", "http://127.0.0.1:9",
                                     "--signing-key", "worker-1"])
    with pytest.raises(ValueError, match="KEY_ID:SECRET"):
        worker_config(bad)
