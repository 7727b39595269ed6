"""Worker LLM configuration: flags over the TOML file, precise errors, keys kept out of logs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import trio

from actors.approval import ApprovalPolicy
from runtime.agents.llm_config import ConfigError, load_toml, open_llm_agent, settings_from
from runtime.cli import build_parser
from tests.providers.fake_http import Reply, open_fake_server, replies


def worker_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["worker", *argv])


def test_no_provider_means_the_plain_agent() -> None:
    assert settings_from(worker_args()) is None


def test_flags_make_a_provider_of_a_kind(tmp_path: Path) -> None:
    s = settings_from(worker_args("--provider", "openai", "--model", "m", "--base-url",
                                  "http://127.0.0.1:1/v1", "--approve", "ask",
                                  "--workspace", str(tmp_path)))
    assert s is not None
    assert (s.provider, s.model, s.approval, s.workspace) == (
        "openai", "m", ApprovalPolicy.ASK, tmp_path)
    (p,) = s.providers
    assert (p.kind, p.base_url, p.api_key_secret) == ("openai", "http://127.0.0.1:1/v1",
                                                      "OPENAI_API_KEY")


def test_the_file_and_flags_over_it(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[agent]\nprovider = "local"\nmodel = "a"\napprove = "all"\n'
                    '[[providers]]\nname = "local"\nkind = "openai"\n'
                    'base_url = "http://127.0.0.1:2/v1"\n')
    s = settings_from(worker_args("--model", "b"), load_toml(path))
    assert s is not None and (s.provider, s.model, s.approval) == ("local", "b",
                                                                   ApprovalPolicy.ALL)


@pytest.mark.parametrize(("argv", "file", "message"), [
    (["--provider", "nope"], {}, "not a configured provider"),
    (["--provider", "openai"], {}, "--model is required"),
    (["--provider", "echo", "--approve", "sometimes"], {}, "unknown approval policy"),
    ([], {"agent": {"provider": "echo", "colour": "red"}}, "unknown key(s) colour"),
    ([], {"providers": [{"name": "x", "kind": "llama"}], "agent": {"provider": "x"}},
     "kind: must be one of"),
])
def test_mistakes_are_named(argv: list[str], file: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from(worker_args(*argv), file)
    assert message in str(err.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)


async def test_api_keys_are_scrubbed_from_the_worker_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LOCAL_KEY", "sk-very-secret-value")
    file = {"agent": {"provider": "local", "model": "m", "workspace": str(tmp_path)},
            "providers": [{"name": "local", "kind": "openai", "models": ["m"],
                           "base_url": "http://127.0.0.1:1/v1", "api_key_secret": "LOCAL_KEY"}]}
    s = settings_from(worker_args(), file)
    assert s is not None
    caplog.set_level(logging.INFO)
    with trio.fail_after(10):
        async with open_llm_agent(s) as (agent, list_models):
            assert agent.name == "llm" and agent.context_history
            assert await list_models() == {"local": ["m"]}  # resolves the key
            logging.getLogger("test").info("the key is sk-very-secret-value, oops")
    assert "the key is ***, oops" in caplog.text
    assert "sk-very-secret-value" not in caplog.text


async def test_a_local_openai_compatible_server_needs_no_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ollama and friends: --provider openai --base-url ... works without OPENAI_API_KEY;
    a key named with --api-key-secret is still required."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    async with open_fake_server(replies(Reply.json({"data": [{"id": "llama3.1:8b"}]}))) as srv:
        flags = ("--provider", "openai", "--model", "llama3.1:8b", "--base-url",
                 f"{srv.url}/v1", "--workspace", str(tmp_path))
        keyless = settings_from(worker_args(*flags))
        named = settings_from(worker_args(*flags, "--api-key-secret", "MY_KEY"))
        assert keyless is not None and named is not None
        with trio.fail_after(10):
            async with open_llm_agent(keyless) as (_, list_models):
                assert await list_models() == {"openai": ["llama3.1:8b"]}
            async with open_llm_agent(named) as (_, list_models):
                assert await list_models() == {}  # left out, with a warning naming MY_KEY
    assert [r.path for r in srv.requests] == ["/v1/models"]
    assert "authorization" not in srv.requests[0].headers
