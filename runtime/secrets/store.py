"""The secret store: asks its sources in order and caches what it found.

A source that cannot answer (Vault down) does not stop the search: the next
source is asked, and a warning names the unavailable one. A name nobody holds
raises `SecretNotFound` listing every source asked; a name that only an
unavailable source might have held raises that source's
`SecretSourceUnavailable`, so the message says which service to fix.

`resolve_many` serves the provider registry: it never raises for one name,
asks an unavailable source only once per call, and logs one warning per
unavailable source, so a worker can register without the providers whose key
failed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import attrs
import httpx
import trio

from runtime.secrets.config import SecretsConfig
from runtime.secrets.sources import EnvSource, FileSource, SecretSource
from runtime.secrets.values import (
    Secret,
    SecretError,
    SecretNotFound,
    SecretSourceUnavailable,
    redact,
)
from runtime.secrets.vault import VaultSource

__all__ = ["Resolution", "SecretRef", "SecretStore", "SecretStoreStatistics", "build_sources"]

log = logging.getLogger("runtime.secrets")

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"secret name {name!r}: use letters, digits, '_', '.', '-'")
    return name


@attrs.frozen
class SecretRef:
    """A reference to a secret by name, as it appears in config (`api_key_secret = "..."`)."""

    name: str = attrs.field(converter=_check_name)

    async def resolve(self, store: SecretStore) -> Secret:
        return await store.get(self.name)


class Resolution(NamedTuple):
    """What `resolve_many` found, and why each other name failed."""

    found: dict[str, Secret]
    failed: dict[str, SecretError]


@attrs.frozen
class SecretStoreStatistics:
    cached: int
    hits: int
    lookups: int


def build_sources(config: SecretsConfig, *, environ: Mapping[str, str] | None = None,
                  vault_transport: httpx.AsyncBaseTransport | None = None
                  ) -> list[SecretSource]:
    """The configured sources in `config.order`; unconfigured ones are left out."""
    sources: list[SecretSource] = []
    for label in config.order:
        if label == "vault" and config.vault_addr:
            if config.vault_token is None:
                raise ValueError(f"secrets: Vault at {config.vault_addr} is configured but "
                                 "has no token; set VAULT_TOKEN or [secrets.vault] token_file")
            sources.append(VaultSource(
                config.vault_addr, config.vault_token, mount=config.vault_mount,
                path=config.vault_path, namespace=config.vault_namespace,
                timeout=config.vault_timeout, verify=config.vault_cacert or True,
                transport=vault_transport))
        elif label == "file" and config.file:
            sources.append(FileSource(config.file))
        elif label == "env":
            sources.append(EnvSource(environ, prefix=config.env_prefix))
    return sources


class SecretStore:
    """Resolves secret names through ordered sources, caching values per process."""

    def __init__(self, sources: Sequence[SecretSource], *, ttl: float | None = None) -> None:
        self.sources = tuple(sources)
        self.ttl = ttl  # None: keep for the process's life; 0: never cache
        self._cache: dict[str, tuple[Secret, float]] = {}
        self._hits = 0
        self._lookups = 0

    @classmethod
    def from_config(cls, config: SecretsConfig, *, environ: Mapping[str, str] | None = None,
                    vault_transport: httpx.AsyncBaseTransport | None = None) -> SecretStore:
        env = os.environ if environ is None else environ
        return cls(build_sources(config, environ=env, vault_transport=vault_transport),
                   ttl=config.ttl)

    @property
    def searched(self) -> tuple[str, ...]:
        """Every source, described, in the order asked."""
        return tuple(s.description for s in self.sources)

    async def get(self, name: str) -> Secret:
        """The secret called `name`; raises SecretNotFound or SecretSourceUnavailable."""
        down: dict[str, SecretSourceUnavailable] = {}
        try:
            secret = await self._get(name, down)
        except SecretSourceUnavailable:
            for error in down.values():
                _warn(error, [name])
            raise
        for error in down.values():
            _warn(error, [])
        return secret

    async def resolve(self, name: str) -> str:
        """The raw value of `name`, for the one place it is used."""
        return (await self.get(name)).reveal()

    async def resolve_many(self, names: Iterable[str]) -> Resolution:
        """Every name resolved or its failure; one warning per unavailable source."""
        found: dict[str, Secret] = {}
        failed: dict[str, SecretError] = {}
        down: dict[str, SecretSourceUnavailable] = {}  # by description
        needed: dict[str, list[str]] = {}  # source description -> names it left unresolved
        for name in dict.fromkeys(names):
            try:
                found[name] = await self._get(name, down)
            except SecretSourceUnavailable as exc:
                failed[name] = exc
                needed.setdefault(exc.description, []).append(name)
            except SecretNotFound as exc:
                failed[name] = exc
        for error in down.values():
            _warn(error, needed.get(error.description, []))
        for name, exc in failed.items():
            if isinstance(exc, SecretNotFound):
                log.warning("secret not found: %s", exc,
                            extra={"secret_name": name, "searched": list(exc.searched)})
        return Resolution(found, failed)

    def known_secrets(self) -> list[Secret]:
        """The values cached now, for a `SecretRedactionFilter`."""
        return [secret for secret, _ in self._cache.values()]

    def redact(self, text: str) -> str:
        """`text` with every cached secret value replaced by `***`."""
        return redact(text, self.known_secrets())

    def invalidate(self, name: str | None = None) -> None:
        """Forget one cached value (or all), so the next get asks the sources again."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    def statistics(self) -> SecretStoreStatistics:
        return SecretStoreStatistics(cached=len(self._cache), hits=self._hits,
                                     lookups=self._lookups)

    async def _get(self, name: str, down: dict[str, SecretSourceUnavailable]) -> Secret:
        _check_name(name)
        cached = self._cache.get(name)
        now = trio.current_time()
        if cached is not None and now < cached[1]:
            self._hits += 1
            return cached[0]
        self._lookups += 1
        searched: list[str] = []
        unavailable: list[SecretSourceUnavailable] = []
        for source in self.sources:
            if source.description in down:  # asked once per call, not once per name
                unavailable.append(down[source.description])
                continue
            try:
                value = await source.lookup(name)
            except SecretSourceUnavailable as exc:
                down[source.description] = exc
                unavailable.append(exc)
                continue
            searched.append(source.description)
            if value is not None:
                secret = Secret(value)
                self._store(name, secret, now)
                log.debug("secret resolved", extra={"secret_name": name,
                                                    "secret_source": source.label})
                return secret
        if unavailable:
            raise unavailable[0].for_secret(name, searched)
        raise SecretNotFound(name, searched)

    def _store(self, name: str, secret: Secret, now: float) -> None:
        if self.ttl == 0:
            return
        self._cache[name] = (secret, float("inf") if self.ttl is None else now + self.ttl)


def _warn(error: SecretSourceUnavailable, names: list[str]) -> None:
    if names:
        message = "%s is unavailable: %s; secrets not resolved: %s"
        args: tuple[str, ...] = (error.description, error.reason, ", ".join(names))
    else:
        message, args = "%s is unavailable: %s", (error.description, error.reason)
    log.warning(message, *args, extra={"secret_source": error.source,
                                       "secret_source_description": error.description,
                                       "secret_names": names})
