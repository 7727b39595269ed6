"""The provider registry: built from config, models grouped by provider, failures left out."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from runtime.providers import (
    ChatMessage,
    EchoProvider,
    OpenAICompatProvider,
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    ProviderRegistry,
    TextDelta,
    open_provider_registry,
)
from runtime.secrets import SecretSourceUnavailable, SecretStore
from tests.providers.fake_http import Received, Reply, collect, open_fake_server, sse

SECRET = "sk-from-the-vault-42"


class FakeVault:
    """A secret source (the `runtime.secrets.SecretSource` port) that can go down."""

    label = "vault"
    description = "Vault at http://127.0.0.1:1"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.down = False
        self.lookups: list[str] = []

    async def lookup(self, name: str) -> str | None:
        self.lookups.append(name)
        if self.down:
            raise SecretSourceUnavailable("vault", self.description, "cannot connect")
        return self.values.get(name)


def models_server(*ids: str, status: int = 200, hang: bool = False):
    async def handler(req: Received) -> Reply:
        if hang:
            await trio.sleep_forever()
        if req.path.endswith("/models"):
            if status != 200:
                return Reply.json({"error": {"message": "bad key"}}, status)
            return Reply.json({"data": [{"id": i} for i in ids]})
        return Reply(chunks=[sse({"choices": [{"index": 0, "delta": {"content": "hi"},
                                               "finish_reason": "stop"}]}), sse("[DONE]")])
    return handler


async def test_models_grouped_and_failures_left_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vault = FakeVault({"OLLAMA_KEY": SECRET})

    with trio.fail_after(20):
        async with open_fake_server(models_server("llama3.2:1b", "qwen2.5")) as good, \
                open_fake_server(models_server(status=401)) as refused:
            configs: list[Any] = [
                {"name": "local", "kind": "openai", "base_url": good.url + "/v1",
                 "api_key_secret": "OLLAMA_KEY"},
                {"name": "bad-key", "kind": "openai", "base_url": refused.url,
                 "api_key": "sk-wrong"},
                {"name": "claude", "kind": "anthropic", "api_key_secret": "ANTHROPIC_KEY",
                 "models": ["claude-x"]},
                {"name": "fixed", "kind": "anthropic", "api_key": "k", "base_url": refused.url,
                 "models": ["claude-y"]},
                {"name": "echo", "kind": "echo"},
            ]
            async with open_provider_registry(configs, secrets=SecretStore([vault])) as registry:
                assert registry.names == ["local", "bad-key", "claude", "fixed", "echo"]
                assert await registry.list_models() == {
                    "local": ["llama3.2:1b", "qwen2.5"], "fixed": ["claude-y"],
                    "echo": ["echo"]}
                assert good.requests[0].headers["authorization"] == f"Bearer {SECRET}"
                assert refused.requests[0].path == "/models"  # static models: not asked
                warnings = {r.provider: r.getMessage() for r in caplog.records
                            if r.levelno == logging.WARNING and hasattr(r, "provider")}
                assert set(warnings) == {"bad-key", "claude"}
                assert "HTTP 401" in warnings["bad-key"]
                assert "'ANTHROPIC_KEY' not found" in warnings["claude"]

                # the key appears: the provider's models come back
                vault.values["ANTHROPIC_KEY"] = "sk-ant"
                listed = await registry.list_models()
                assert listed["claude"] == ["claude-x"]

                local = await registry.get("local")
                assert isinstance(local, OpenAICompatProvider)
                events = await collect(local.stream_chat(model="qwen2.5", messages=[
                    ChatMessage("user", "x")]))
                assert events[0] == TextDelta("hi")
    assert SECRET not in caplog.text and "sk-wrong" not in caplog.text


async def test_a_hanging_provider_costs_only_its_own_models(
        autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with open_fake_server(models_server(hang=True)) as slow:
            async with open_provider_registry(
                    [{"name": "slow", "kind": "openai", "base_url": slow.url}],
                    providers=[EchoProvider(name="builtin")], list_timeout=5.0) as registry:
                start = trio.current_time()
                assert await registry.list_models() == {"builtin": ["echo"]}
                assert trio.current_time() - start == 5.0


async def test_get_unknown_name() -> None:
    registry = ProviderRegistry([ProviderConfig("a", "echo")])
    with pytest.raises(ProviderError, match="no provider named 'b'; configured: a"):
        await registry.get("b")
    assert isinstance(await registry.get("a"), EchoProvider)
    await registry.aclose()


async def test_anthropic_needs_a_key() -> None:
    registry = ProviderRegistry([ProviderConfig("c", "anthropic")])
    with pytest.raises(ProviderError, match="anthropic needs api_key"):
        await registry.get("c")


@pytest.mark.parametrize("entry,needle", [
    ({"kind": "openai"}, "providers[?].name: required"),
    ({"name": "x", "kind": "gemini"}, "providers['x'].kind: must be one of openai, anthropic"),
    ({"name": "x", "kind": "openai", "apikey": "k"}, "providers['x']: unknown field(s) apikey"),
    ({"name": "x", "kind": "openai", "models": "gpt"}, "providers['x'].models: must be a list"),
    ({"name": "x", "kind": "openai", "read_timeout": 0}, "providers['x'].read_timeout"),
    ({"name": "x", "kind": "openai", "max_retries": -1}, "providers['x'].max_retries"),
    ({"name": "x", "kind": "openai", "base_url": 3}, "providers['x'].base_url: must be a str"),
    ({"name": "x", "kind": "openai", "api_key": "k", "api_key_secret": "K"}, "not both"),
    ({"name": "x", "kind": "openai", "api_key_secret": "a b"}, "providers['x'].api_key_secret"),
    ({"name": "x", "kind": "openai", "api_key_optional": "yes"},
     "providers['x'].api_key_optional: must be true or false"),
])
def test_config_errors_name_the_field(entry: dict[str, Any], needle: str) -> None:
    with pytest.raises(ProviderConfigError) as exc:
        ProviderConfig.from_dict(entry)
    assert needle in str(exc.value)


def test_config_parses_and_hides_the_key() -> None:
    config = ProviderConfig.from_dict({
        "name": "router", "kind": "openai", "base_url": "https://openrouter.ai/api/v1",
        "api_key": "sk-or-secret", "models": ["a/b"], "read_timeout": 300,
        "headers": {"X-Title": "trio-a2a"}, "max_tokens_field": "max_completion_tokens"})
    assert config.read_timeout == 300.0 and config.models == ("a/b",)
    assert "sk-or-secret" not in repr(config)


def test_config_file_can_make_the_key_optional() -> None:
    config = ProviderConfig.from_dict({"name": "local", "kind": "openai",
                                       "base_url": "http://127.0.0.1:11434/v1",
                                       "api_key_secret": "OLLAMA_KEY", "api_key_optional": True})
    assert config.api_key_optional is True


def test_duplicate_names_refused() -> None:
    with pytest.raises(ProviderConfigError, match="unique: echo"):
        ProviderRegistry([ProviderConfig("echo", "echo")], providers=[EchoProvider()])


async def test_vault_down_leaves_out_only_the_providers_that_need_it(
        caplog: pytest.LogCaptureFixture) -> None:
    vault = FakeVault({"K1": "one", "K2": "two"})
    vault.down = True
    configs = [ProviderConfig("a", "anthropic", api_key_secret="K1", models=("m1",)),
               ProviderConfig("b", "anthropic", api_key_secret="K2", models=("m2",)),
               ProviderConfig("e", "echo")]
    with trio.fail_after(10):
        async with open_provider_registry(configs, secrets=SecretStore([vault])) as registry:
            assert await registry.list_models() == {"e": ["echo"]}
            assert vault.lookups == ["K1"]  # the store asks a source that is down once
            with pytest.raises(ProviderError, match="Vault at http://127.0.0.1:1 is "
                               "unavailable") as exc:
                await registry.get("a")
            assert exc.value.retryable
            vault.down = False
            assert await registry.list_models() == {"a": ["m1"], "b": ["m2"], "e": ["echo"]}
    left_out = [r for r in caplog.records if getattr(r, "provider", None) in ("a", "b")]
    assert len(left_out) == 2 and all("Vault" in r.getMessage() for r in left_out)
