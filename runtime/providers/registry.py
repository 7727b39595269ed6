"""The configured providers, by name, built on first use.

API keys named by `api_key_secret` come from a `runtime.secrets.SecretStore`
(Vault, a secrets file, the environment). A provider whose key cannot be had
does not stop the worker: it is left out of `list_models()` with a warning, so
the worker registers without its models, and it is tried again on the next
call (a Vault that comes back brings its models back). `list_models()` resolves
all missing keys in one `resolve_many` (one warning per unavailable source) and
bounds each provider separately, so one slow server costs only its own models.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.base import Provider, ProviderError
from runtime.providers.echo import EchoProvider
from runtime.providers.http import Timeouts
from runtime.providers.openai_compat import OpenAICompatProvider
from runtime.providers.retry import RetryPolicy
from runtime.secrets import EnvSource, SecretError, SecretNotFound, SecretRef, SecretStore

__all__ = [
    "PROVIDER_KINDS",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderKind",
    "ProviderRegistry",
    "build_provider",
    "open_provider_registry",
]

log = logging.getLogger(__name__)

ProviderKind = Literal["openai", "anthropic", "echo"]
PROVIDER_KINDS: tuple[str, ...] = ("openai", "anthropic", "echo")


class ProviderConfigError(ValueError):
    """A provider entry in the configuration is wrong; the message names the field."""


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError("must be a list of strings")
    return tuple(str(v) for v in value)


@attrs.frozen
class ProviderConfig:
    """One configured provider. `name` is what workers report models under.

    `api_key` is the key itself, `api_key_secret` the name to resolve it by (prefer
    it: config files get shared). A non-empty `models` is advertised as is, without
    asking the server. Keys and headers are kept out of `repr`.
    """

    name: str
    kind: ProviderKind = attrs.field(validator=attrs.validators.in_(PROVIDER_KINDS))
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    api_key_secret: str | None = attrs.field(default=None, validator=attrs.validators.optional(
        lambda _, __, value: SecretRef(value)))
    api_key_optional: bool = False
    """A key that is not found means none (a local OpenAI-compatible server: Ollama,
    vLLM, llama.cpp); set when the key's name is only the default one."""
    models: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 3
    anthropic_version: str | None = None
    max_tokens_field: str | None = None
    default_max_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderConfig:
        """From a config-file table; errors name the provider and the field."""
        name = data.get("name")
        where = f"providers[{name!r}]" if isinstance(name, str) else "providers[?]"
        if not isinstance(name, str) or not name:
            raise ProviderConfigError(f"{where}.name: required, a non-empty string")
        fields = {f.name: f for f in attrs.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ProviderConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                                      f"{', '.join(fields)}")
        if data.get("kind") not in PROVIDER_KINDS:
            raise ProviderConfigError(f"{where}.kind: must be one of {', '.join(PROVIDER_KINDS)}"
                                      f", got {data.get('kind')!r}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            try:
                if key == "models":
                    value = _str_tuple(value)
                elif key == "headers":
                    if not isinstance(value, Mapping):
                        raise TypeError("must be a table of strings")
                    value = {str(k): str(v) for k, v in value.items()}
                elif key in ("connect_timeout", "read_timeout"):
                    if isinstance(value, bool) or not isinstance(value, int | float) \
                            or value <= 0:
                        raise TypeError("must be a positive number of seconds")
                    value = float(value)
                elif key == "api_key_optional":
                    if not isinstance(value, bool):
                        raise TypeError("must be true or false")
                elif key in ("max_retries", "default_max_tokens"):
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise TypeError("must be a non-negative integer")
                elif value is not None and not isinstance(value, str):
                    raise TypeError("must be a string")
            except TypeError as exc:
                raise ProviderConfigError(f"{where}.{key}: {exc}") from None
            values[key] = value
        if values.get("api_key") and values.get("api_key_secret"):
            raise ProviderConfigError(f"{where}: give api_key or api_key_secret, not both")
        try:
            return cls(**values)
        except ValueError as exc:
            raise ProviderConfigError(f"{where}.api_key_secret: {exc}") from None


def build_provider(config: ProviderConfig, api_key: str | None,
                   rng: random.Random | None = None) -> Provider:
    """The provider a config entry describes, with its key already resolved."""
    if config.kind == "echo":
        return EchoProvider(name=config.name, models=config.models or ("echo",))
    http: dict[str, Any] = {
        "name": config.name,
        "timeouts": Timeouts(connect=config.connect_timeout, read=config.read_timeout),
        "retry": RetryPolicy(max_retries=config.max_retries),
        "rng": rng,
    }
    if config.base_url:
        http["base_url"] = config.base_url
    if config.kind == "openai":
        return OpenAICompatProvider(api_key=api_key, extra_headers=config.headers,
                                    max_tokens_field=config.max_tokens_field or "max_tokens",
                                    **http)
    if not api_key:
        raise ProviderError(f"provider {config.name!r}: anthropic needs api_key or "
                            "api_key_secret")
    extra: dict[str, Any] = {}
    if config.anthropic_version:
        extra["anthropic_version"] = config.anthropic_version
    if config.default_max_tokens:
        extra["default_max_tokens"] = config.default_max_tokens
    return AnthropicProvider(api_key=api_key, extra_headers=config.headers, **extra, **http)


class ProviderRegistry:
    """Providers by name: configured ones (built lazily) plus any passed in built.

    `secrets` resolves `api_key_secret` names (default: the environment only).
    `list_timeout` bounds each provider's model listing, and the key lookup that
    precedes them. Close with `aclose()` or use `open_provider_registry`.
    """

    def __init__(self, configs: Sequence[ProviderConfig] = (), *,
                 providers: Sequence[Provider] = (), secrets: SecretStore | None = None,
                 rng: random.Random | None = None, list_timeout: float = 8.0) -> None:
        names = [c.name for c in configs] + [p.name for p in providers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ProviderConfigError(f"provider names must be unique: {', '.join(duplicates)}")
        self._configs = {c.name: c for c in configs}
        self._built: dict[str, Provider] = {p.name: p for p in providers}
        self._secrets = secrets if secrets is not None else SecretStore([EnvSource()])
        self._rng = rng if rng is not None else random.Random()
        self._locks = {name: trio.Lock() for name in self._configs}  # one build at a time
        self.list_timeout = list_timeout

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys([*self._configs, *self._built]))

    def _build(self, config: ProviderConfig, api_key: str | None) -> Provider:
        if config.name not in self._built:
            rng = random.Random(self._rng.getrandbits(64))
            self._built[config.name] = build_provider(config, api_key, rng)
        return self._built[config.name]

    async def get(self, name: str) -> Provider:
        """The provider called `name`; ProviderError if unknown or it cannot be built."""
        if name in self._built:
            return self._built[name]
        config = self._configs.get(name)
        if config is None:
            raise ProviderError(f"no provider named {name!r}; configured: "
                                f"{', '.join(self.names) or '(none)'}")
        async with self._locks[name]:
            if name in self._built:
                return self._built[name]
            api_key = config.api_key
            if config.api_key_secret:
                try:
                    api_key = (await self._secrets.get(config.api_key_secret)).reveal()
                except SecretNotFound:
                    if not config.api_key_optional:
                        raise ProviderError(f"provider {name!r}: cannot get its API key: "
                                            f"{config.api_key_secret} not found",
                                            retryable=True) from None
                    api_key = None
                except SecretError as exc:
                    raise ProviderError(f"provider {name!r}: cannot get its API key: {exc}",
                                        retryable=True) from exc
            return self._build(config, api_key)

    async def _resolve_pending_keys(self) -> dict[str, str]:
        """Build every provider whose key is missing, in one lookup; failures by name."""
        pending = [c for c in self._configs.values()
                   if c.name not in self._built and c.api_key_secret]
        if not pending:
            return {}
        failed = {c.name: f"no answer from the secret store within {self.list_timeout} s"
                  for c in pending}
        with trio.move_on_after(self.list_timeout):
            found, errors = await self._secrets.resolve_many(c.api_key_secret or ""
                                                             for c in pending)
            failed = {}
            for config in pending:
                secret = found.get(config.api_key_secret or "")
                error = errors.get(config.api_key_secret or "")
                if secret is not None or (config.api_key_optional
                                          and isinstance(error, SecretNotFound)):
                    try:
                        self._build(config, secret.reveal() if secret is not None else None)
                    except ProviderError as exc:
                        failed[config.name] = exc.message
                else:
                    failed[config.name] = f"cannot get its API key: " \
                        f"{errors.get(config.api_key_secret or '')}"
        return failed

    async def _models_of(self, name: str, out: dict[str, list[str]]) -> None:
        try:
            with trio.fail_after(self.list_timeout):
                provider = await self.get(name)
                config = self._configs.get(name)
                models = list(config.models) if config and config.models else \
                    await provider.list_models()
        except trio.TooSlowError:
            log.warning("provider left out of the model list: no answer within %s s",
                        self.list_timeout, extra={"provider": name})
        except ProviderError as exc:
            log.warning("provider left out of the model list: %s", exc.message,
                        extra={"provider": name})
        except Exception:
            log.warning("provider left out of the model list: unexpected error",
                        exc_info=True, extra={"provider": name})
        else:
            out[name] = models

    async def list_models(self) -> dict[str, list[str]]:
        """{provider name: [model ids]}, without the providers that failed."""
        failed = await self._resolve_pending_keys()
        for name, reason in failed.items():
            log.warning("provider left out of the model list: %s", reason,
                        extra={"provider": name})
        found: dict[str, list[str]] = {}
        async with trio.open_nursery() as nursery:
            for name in self.names:
                if name not in failed:
                    nursery.start_soon(self._models_of, name, found)
        return {name: found[name] for name in self.names if name in found}

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()


@asynccontextmanager
async def open_provider_registry(configs: Sequence[ProviderConfig | Mapping[str, Any]] = (),
                                 **kwargs: Any) -> AsyncIterator[ProviderRegistry]:
    """A registry from config entries (dicts are parsed); its providers closed at exit."""
    parsed = [c if isinstance(c, ProviderConfig) else ProviderConfig.from_dict(c)
              for c in configs]
    registry = ProviderRegistry(parsed, **kwargs)
    try:
        yield registry
    finally:
        with trio.CancelScope(shield=True):
            await registry.aclose()
