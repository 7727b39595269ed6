"""Secrets: Vault KV v2 against a fake Vault on loopback, the file and env sources,
source order and fallback, the cache on virtual time, and redaction everywhere.

The fake Vault is a small ASGI app served by hypercorn on 127.0.0.1, port 0;
"Vault down" is a bound socket that never listens (connection refused, no race).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

import runtime.secrets as secrets_pkg
from runtime.cli import JsonLogFormatter
from runtime.secrets import (
    EnvSource,
    FileSource,
    Secret,
    SecretNotFound,
    SecretRedactionFilter,
    SecretRef,
    SecretsConfig,
    SecretSourceUnavailable,
    SecretStore,
    VaultSource,
    redact,
)

TIMEOUT = 15
TOKEN = "hvs.TEST-TOKEN-d41d8cd98f00"
OPENAI = "sk-openai-0123456789abcdef"
ANTHROPIC = "sk-ant-fedcba9876543210"


# --- a fake Vault ---------------------------------------------------------------------------


@attrs.define
class FakeVault:
    """KV v2 reads with token auth; `secrets` maps "mount/path" to its key/value data."""

    secrets: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    token: str = TOKEN
    namespace: str | None = None
    sealed: bool = False
    requests: list[tuple[str, dict[str, str]]] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], headers))
        status, body = self.answer(scope["method"], scope["path"], headers)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        if self.sealed:
            return 503, {"errors": ["Vault is sealed"]}
        if headers.get("x-vault-token") != self.token:
            return 403, {"errors": ["permission denied"]}
        if self.namespace is not None and headers.get("x-vault-namespace") != self.namespace:
            return 403, {"errors": ["permission denied"]}
        mount, sep, rest = path.removeprefix("/v1/").partition("/data/")
        if method != "GET" or not sep:
            return 404, {"errors": []}
        data = self.secrets.get(f"{mount}/{rest}")
        if data is None:
            return 404, {"errors": []}
        return 200, {"request_id": "r1", "lease_id": "", "renewable": False,
                     "data": {"data": data, "metadata": {"version": 3}}}


@asynccontextmanager
async def open_fake_vault(vault: FakeVault) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    config = HyperConfig()
    config.accesslog = None
    config.graceful_timeout = 0
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker_serve(
                wrap_app(vault, config.wsgi_max_body_size, None), config, sockets=sockets,
                task_status=task_status))
            yield f"http://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


@contextmanager
def closed_port() -> Iterator[str]:
    """An address that refuses connections: bound, never listening, so nobody else takes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def silent_port() -> Iterator[str]:
    """An address that accepts connections (backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def vault_store(addr: str, env: dict[str, str] | None = None, *,
                order: tuple[str, ...] = ("vault", "env"), **kw: Any) -> SecretStore:
    config = SecretsConfig(order=order, vault_addr=addr, vault_token=kw.pop("token", TOKEN),
                           **kw)
    return SecretStore.from_config(config, environ=env or {})


def assert_no_leak(text: str) -> None:
    for value in (TOKEN, OPENAI, ANTHROPIC):
        assert value not in text


def rendered(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# --- Vault ----------------------------------------------------------------------------------


async def test_vault_kv2_read_sends_token_and_namespace() -> None:
    vault = FakeVault({"kv/teams/a2a": {"OPENAI_API_KEY": OPENAI}}, namespace="eng")
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            store = vault_store(addr, vault_mount="kv", vault_path="teams/a2a",
                                vault_namespace="eng")
            secret = await store.get("OPENAI_API_KEY")
    assert secret.reveal() == OPENAI
    path, headers = vault.requests[0]
    assert path == "/v1/kv/data/teams/a2a"
    assert headers["x-vault-token"] == TOKEN
    assert headers["x-vault-namespace"] == "eng"


async def test_vault_missing_key_and_missing_path_are_not_found() -> None:
    vault = FakeVault({"secret/trio-a2a": {"OTHER": "x"}})
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            with pytest.raises(SecretNotFound) as missing_key:
                await vault_store(addr).get("OPENAI_API_KEY")
            with pytest.raises(SecretNotFound) as missing_path:
                await vault_store(addr, vault_path="nowhere").get("OPENAI_API_KEY")
    for exc in (missing_key.value, missing_path.value):
        assert exc.searched == (f"Vault at {addr}", "environment")
        assert str(exc) == ("secret 'OPENAI_API_KEY' not found; looked in: "
                            f"Vault at {addr}, environment")


async def test_vault_missing_key_falls_through_to_the_environment() -> None:
    vault = FakeVault({"secret/trio-a2a": {"OTHER": "x"}})
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            store = vault_store(addr, {"OPENAI_API_KEY": OPENAI})
            assert await store.resolve("OPENAI_API_KEY") == OPENAI


async def test_vault_bad_token_is_unavailable_and_never_shows_the_token(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vault = FakeVault({"secret/trio-a2a": {"OPENAI_API_KEY": OPENAI}}, token="the-right-one")
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            with pytest.raises(SecretSourceUnavailable) as info:
                await vault_store(addr).get("OPENAI_API_KEY")
    exc = info.value
    assert exc.source == "vault"
    assert f"Vault at {addr}" in str(exc)
    assert "403" in str(exc) and "permission denied" in str(exc)
    assert "OPENAI_API_KEY" in str(exc)
    assert_no_leak(rendered(exc) + caplog.text)


async def test_vault_down_names_vault_and_its_address(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(TIMEOUT), closed_port() as addr:
        with pytest.raises(SecretSourceUnavailable) as info:
            await vault_store(addr).get("OPENAI_API_KEY")
    exc = info.value
    assert str(exc).startswith(f"secret 'OPENAI_API_KEY' could not be resolved: "
                               f"Vault at {addr} is unavailable: cannot connect (ConnectError")
    assert str(exc).endswith("also looked in: environment")
    assert exc.__cause__ is None and exc.__context__ is None  # no httpx request inside
    assert_no_leak(rendered(exc) + caplog.text)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(f"Vault at {addr} is unavailable")
    assert warning.secret_source == "vault"  # type: ignore[attr-defined]
    assert warning.secret_names == ["OPENAI_API_KEY"]  # type: ignore[attr-defined]


async def test_vault_sealed_and_vault_silent() -> None:
    vault = FakeVault(sealed=True)
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            with pytest.raises(SecretSourceUnavailable, match='HTTP 503 .*"Vault is sealed"'):
                await vault_store(addr).get("OPENAI_API_KEY")
        with silent_port() as addr:
            with pytest.raises(SecretSourceUnavailable, match=r"no answer within 0\.2 s"):
                await vault_store(addr, vault_timeout=0.2).get("OPENAI_API_KEY")


async def test_vault_answers_that_are_not_kv2_reads() -> None:
    def kv1(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-vault-token"] == TOKEN
        if request.url.path.endswith("/v1"):
            return httpx.Response(200, json={"data": {"OPENAI_API_KEY": OPENAI}})
        return httpx.Response(200, json={"data": {"data": {"OPENAI_API_KEY": 42}}})

    def source(path: str) -> VaultSource:
        return VaultSource("http://vault.test", Secret(TOKEN), path=path,
                           transport=httpx.MockTransport(kv1))

    with pytest.raises(SecretSourceUnavailable, match="is the mount a KV version 2 engine"):
        await source("v1").lookup("OPENAI_API_KEY")
    with pytest.raises(SecretSourceUnavailable, match="'OPENAI_API_KEY' of secret/v2 is not"):
        await source("v2").lookup("OPENAI_API_KEY")


async def test_vault_source_needs_a_token() -> None:
    with pytest.raises(ValueError, match="has no token; set VAULT_TOKEN"):
        SecretStore.from_config(SecretsConfig(vault_addr="http://127.0.0.1:1"), environ={})


# --- order, fallback, resolve_many ----------------------------------------------------------


async def test_order_of_sources_is_respected(tmp_path: Path) -> None:
    file = tmp_path / "secrets.toml"
    file.write_text(f'OPENAI_API_KEY = "from-file"\nONLY_FILE = "{ANTHROPIC}"\n')
    file.chmod(0o600)
    env = {"OPENAI_API_KEY": "from-env"}
    vault = FakeVault({"secret/trio-a2a": {"OPENAI_API_KEY": "from-vault"}})
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            for order, expected in [(("vault", "file", "env"), "from-vault"),
                                    (("file", "vault", "env"), "from-file"),
                                    (("env", "file", "vault"), "from-env"),
                                    (("env",), "from-env")]:
                store = vault_store(addr, env, order=order, file=str(file))
                assert await store.resolve("OPENAI_API_KEY") == expected, order
            store = vault_store(addr, env, order=("vault", "env", "file"), file=str(file))
            assert await store.resolve("ONLY_FILE") == ANTHROPIC


async def test_vault_down_falls_back_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with trio.fail_after(TIMEOUT), closed_port() as addr:
        store = vault_store(addr, {"OPENAI_API_KEY": OPENAI})
        assert await store.resolve("OPENAI_API_KEY") == OPENAI
    [warning] = caplog.records
    assert warning.getMessage().startswith(f"Vault at {addr} is unavailable: cannot connect")
    assert warning.secret_names == []  # type: ignore[attr-defined]


async def test_resolve_many_drops_what_vault_held_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    vault = FakeVault(sealed=True)
    env = {"OPENAI_API_KEY": OPENAI}
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            store = vault_store(addr, env)
            found, failed = await store.resolve_many(
                ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY",
                 "OPENAI_API_KEY"])
    assert len(vault.requests) == 1  # an unavailable source is asked once per call
    assert found == {"OPENAI_API_KEY": Secret(OPENAI)}
    assert set(failed) == {"ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"}
    for name, exc in failed.items():
        assert isinstance(exc, SecretSourceUnavailable)
        assert f"Vault at {addr}" in str(exc) and name in str(exc)
    [warning] = caplog.records
    assert warning.getMessage() == (
        f'Vault at {addr} is unavailable: HTTP 503 reading secret/trio-a2a: '
        '"Vault is sealed"; secrets not resolved: ANTHROPIC_API_KEY, OPENROUTER_API_KEY')
    assert_no_leak(caplog.text)


async def test_resolve_many_reports_not_found_per_name(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    store = SecretStore([EnvSource({"A": "1"})])
    found, failed = await store.resolve_many(["A", "B"])
    assert list(found) == ["A"]
    assert isinstance(failed["B"], SecretNotFound)
    assert failed["B"].searched == ("environment",)
    assert [r.getMessage() for r in caplog.records] == [
        "secret not found: secret 'B' not found; looked in: environment"]


async def test_not_found_names_every_source(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text("")
    file.chmod(0o600)
    vault = FakeVault()
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            store = vault_store(addr, order=("vault", "file", "env"), file=str(file),
                                env_prefix="A2A_")
            with pytest.raises(SecretNotFound) as info:
                await SecretRef("X").resolve(store)
    assert str(info.value) == (f"secret 'X' not found; looked in: Vault at {addr}, "
                               f"secrets file {file}, environment (A2A_*)")


async def test_no_sources_configured() -> None:
    store = SecretStore.from_config(SecretsConfig(order=("vault", "file")), environ={})
    assert store.sources == ()
    with pytest.raises(SecretNotFound, match=r"looked in: no sources \(none configured\)"):
        await store.get("X")


# --- env and file ---------------------------------------------------------------------------


async def test_env_source_with_prefix_and_empty_values() -> None:
    env = {"A2A_KEY": "v", "KEY": "unprefixed", "A2A_EMPTY": ""}
    store = SecretStore([EnvSource(env, prefix="A2A_")])
    assert await store.resolve("KEY") == "v"
    with pytest.raises(SecretNotFound):
        await store.get("EMPTY")


async def test_file_source_reads_toml(tmp_path: Path) -> None:
    file = tmp_path / "secrets.toml"
    file.write_text(f'# keys\nOPENAI_API_KEY = "{OPENAI}"\n"anthropic.key" = "{ANTHROPIC}"\n')
    file.chmod(0o600)
    store = SecretStore([FileSource(file)])
    assert await store.resolve("OPENAI_API_KEY") == OPENAI
    assert await store.resolve("anthropic.key") == ANTHROPIC


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
async def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    file = tmp_path / "secrets.toml"
    file.write_text(f'OPENAI_API_KEY = "{OPENAI}"\n')
    file.chmod(mode)
    with pytest.raises(SecretSourceUnavailable) as info:
        await SecretStore([FileSource(file)]).get("OPENAI_API_KEY")
    assert str(info.value).endswith(
        f"secrets file {file} is unavailable: its mode is {mode:04o}, so group/others can "
        f"access it; run `chmod 600 {file}`; also looked in: no other source")
    assert_no_leak(rendered(info.value))


async def test_bad_files_are_explained_without_their_content(tmp_path: Path) -> None:
    file = tmp_path / "secrets.toml"
    source = FileSource(file)
    with pytest.raises(SecretSourceUnavailable, match="No such file or directory"):
        await source.lookup("X")
    for text, needle in [(f'OPENAI_API_KEY = {OPENAI}\n', "not valid TOML"),
                         (f'OPENAI_API_KEY = "{OPENAI}"\nN = 3\n[t]\na = "{ANTHROPIC}"\n',
                          "not a string: N, t"),
                         (f'OPENAI_API_KEY = "{OPENAI}\n', "not valid TOML")]:
        file.write_text(text)
        file.chmod(0o600)
        with pytest.raises(SecretSourceUnavailable, match=needle) as info:
            await source.lookup("OPENAI_API_KEY")
        assert_no_leak(rendered(info.value))


# --- cache ----------------------------------------------------------------------------------


async def test_cache_with_ttl_on_virtual_time(autojump_clock: trio.abc.Clock) -> None:
    env = {"K": "one"}
    store = SecretStore([EnvSource(env)], ttl=60)
    assert await store.resolve("K") == "one"
    env["K"] = "two"
    await trio.sleep(59.5)
    assert await store.resolve("K") == "one"
    await trio.sleep(0.5)
    assert await store.resolve("K") == "two"
    assert store.statistics() == secrets_pkg.SecretStoreStatistics(cached=1, hits=1, lookups=2)
    env["K"] = "three"
    store.invalidate("K")
    assert await store.resolve("K") == "three"


async def test_cache_forever_and_never(autojump_clock: trio.abc.Clock) -> None:
    env = {"K": "one"}
    forever, never = SecretStore([EnvSource(env)]), SecretStore([EnvSource(env)], ttl=0)
    assert await forever.resolve("K") == await never.resolve("K") == "one"
    env["K"] = "two"
    await trio.sleep(10**6)
    assert await forever.resolve("K") == "one"
    assert await never.resolve("K") == "two"
    assert never.statistics().cached == 0


# --- redaction ------------------------------------------------------------------------------


def test_secret_renders_redacted_everywhere() -> None:
    s = Secret(OPENAI)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", "%s" % s,  # noqa: UP031
                 "{}".format(s),  # noqa: UP032
                 repr([s]), repr({"key": s}),
                 repr(SecretsConfig(vault_addr="http://v", vault_token=TOKEN))):
        assert_no_leak(text)
        assert "Secret('***')" in text
    with pytest.raises(TypeError):
        json.dumps({"key": s})
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        hash(s)
    assert s == Secret(OPENAI) and s != Secret(ANTHROPIC) and s.reveal() == OPENAI
    assert bool(s) and not Secret("")


def test_redact_replaces_every_value_longest_first() -> None:
    text = f"key={OPENAI} other={ANTHROPIC} prefix={OPENAI[:10]}"
    assert redact(text, [Secret(OPENAI[:10]), Secret(OPENAI), ANTHROPIC, ""]) == (
        "key=*** other=*** prefix=***")


async def test_store_redacts_what_it_resolved() -> None:
    store = SecretStore([EnvSource({"A": OPENAI})])
    await store.get("A")
    assert store.redact(f"401 for key {OPENAI}") == "401 for key ***"
    assert store.known_secrets() == [Secret(OPENAI)]


async def test_redaction_filter_scrubs_messages_args_extras_and_tracebacks(
        caplog: pytest.LogCaptureFixture) -> None:
    store = SecretStore([EnvSource({"A": OPENAI})])
    await store.get("A")
    caplog.handler.addFilter(SecretRedactionFilter(store.known_secrets))
    logger = logging.getLogger("tests.careless")
    with caplog.at_level(logging.INFO, logger="tests.careless"):
        logger.info("sending key %s", OPENAI, extra={"auth_header": f"Bearer {OPENAI}",
                                                     "req": {"headers": [OPENAI]}})
        try:
            raise RuntimeError(f"upstream echoed {OPENAI}")
        except RuntimeError:
            logger.exception("call failed")
    formatter = JsonLogFormatter()
    out = caplog.text + "".join(formatter.format(r) for r in caplog.records)
    assert_no_leak(out)
    assert "sending key ***" in caplog.text and "upstream echoed ***" in caplog.text
    assert caplog.records[0].auth_header == "Bearer ***"  # type: ignore[attr-defined]


async def test_our_log_lines_never_carry_values(caplog: pytest.LogCaptureFixture,
                                                tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    file = tmp_path / "s.toml"
    file.write_text(f'ANTHROPIC_API_KEY = "{ANTHROPIC}"\n')
    file.chmod(0o600)
    vault = FakeVault({"secret/trio-a2a": {"OPENAI_API_KEY": OPENAI}})
    with trio.fail_after(TIMEOUT):
        async with open_fake_vault(vault) as addr:
            store = vault_store(addr, order=("vault", "file", "env"), file=str(file))
            found, failed = await store.resolve_many(
                ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISSING"])
        with closed_port() as down:
            await vault_store(down).resolve_many(["OPENAI_API_KEY"])
    assert set(found) == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} and set(failed) == {"MISSING"}
    formatter = JsonLogFormatter()
    lines = [formatter.format(r) for r in caplog.records]  # no reserved extra keys either
    assert any('"secret_source": "file"' in line for line in lines)
    assert_no_leak("\n".join(lines) + caplog.text)


# --- config ---------------------------------------------------------------------------------


def test_config_from_env() -> None:
    config = SecretsConfig.from_env({
        "VAULT_ADDR": "https://vault.internal:8200", "VAULT_TOKEN": TOKEN,
        "VAULT_NAMESPACE": "eng", "TRIO_A2A_SECRETS_ORDER": "env, vault",
        "TRIO_A2A_SECRETS_FILE": "/etc/a2a.toml", "TRIO_A2A_SECRETS_TTL": "300",
        "TRIO_A2A_VAULT_MOUNT": "kv", "TRIO_A2A_VAULT_PATH": "apps/a2a"})
    assert config.order == ("env", "vault")
    assert config.vault_token == Secret(TOKEN)
    assert (config.vault_addr, config.vault_namespace, config.vault_mount, config.vault_path,
            config.file, config.ttl) == ("https://vault.internal:8200", "eng", "kv",
                                         "apps/a2a", "/etc/a2a.toml", 300.0)
    assert SecretsConfig.from_env({}) == SecretsConfig()


def test_config_from_toml_table(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = SecretsConfig.from_mapping(
        {"order": ["file", "env"], "ttl": 0, "file": "s.toml",
         "vault": {"addr": "http://127.0.0.1:8200", "token_file": str(token_file),
                   "timeout": 2}},
        environ={"VAULT_ADDR": "http://elsewhere"})
    assert config.order == ("file", "env") and config.ttl == 0
    assert config.vault_addr == "http://127.0.0.1:8200" and config.vault_timeout == 2.0
    assert config.vault_token == Secret(TOKEN)
    token_file.chmod(0o644)
    with pytest.raises(ValueError, match="group/others can access it"):
        SecretsConfig.from_mapping({"vault": {"token_file": str(token_file)}}, environ={})


@pytest.mark.parametrize("table,needle", [
    ({"orders": ["env"]}, "unknown key 'orders'"),
    ({"vault": {"token": TOKEN}}, "'token' is not read from config files"),
    ({"vault": {"adress": "x"}}, r"\[secrets.vault\]: unknown key 'adress'"),
    ({"order": ["env", "ssm"]}, "unknown source 'ssm'"),
    ({"order": ["env", "env"]}, "listed twice"),
    ({"order": []}, "at least one source"),
    ({"ttl": -1}, "ttl: must be >= 0"),
    ({"vault": {"timeout": 0}}, "vault_timeout: must be > 0"),
])
def test_config_mistakes(table: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as info:
        SecretsConfig.from_mapping(table, environ={})
    assert TOKEN not in str(info.value)


def test_secret_names_are_checked() -> None:
    with pytest.raises(ValueError, match="secret name 'a b'"):
        SecretRef("a b")


def test_package_reexports_its_public_names() -> None:
    from runtime.secrets import config, sources, store, values, vault

    for module in (config, sources, store, values, vault):
        lacking = [n for n in module.__all__ if n not in secrets_pkg.__all__]
        assert lacking == [], module.__name__
    assert all(hasattr(secrets_pkg, n) for n in secrets_pkg.__all__)
