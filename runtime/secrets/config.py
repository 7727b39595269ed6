"""Where secrets come from, as configuration: environment variables or a `[secrets]` table.

The order lists sources by label; a listed source that is not configured (no
Vault address, no file path) is skipped, so the default order works with
nothing but environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from runtime.secrets.sources import check_file_mode
from runtime.secrets.values import Secret, SecretSourceUnavailable

__all__ = ["DEFAULT_ORDER", "SOURCE_LABELS", "SecretsConfig"]

SOURCE_LABELS = ("vault", "file", "env")
DEFAULT_ORDER = ("vault", "file", "env")
ENV_PREFIX = "TRIO_A2A_"


def _order(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    order = tuple(str(i).strip().lower() for i in items if str(i).strip())
    if not order:
        raise ValueError("secrets order: name at least one source of "
                         f"{', '.join(SOURCE_LABELS)}")
    unknown = [i for i in order if i not in SOURCE_LABELS]
    if unknown:
        raise ValueError(f"secrets order: unknown source {unknown[0]!r}; "
                         f"expected some of {', '.join(SOURCE_LABELS)}")
    if len(set(order)) != len(order):
        raise ValueError("secrets order: a source is listed twice")
    return order


def _token(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value or None
    return Secret(value.strip()) if value.strip() else None


def _ttl(value: float | str | None) -> float | None:
    if value is None or value == "":
        return None
    ttl = float(value)
    if ttl < 0:
        raise ValueError("secrets ttl: must be >= 0 seconds (0 disables the cache)")
    return ttl


def _positive(_: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"secrets {attribute.name}: must be > 0")


@attrs.frozen(kw_only=True)
class SecretsConfig:
    """Sources, their order and the cache TTL (None: cache for the process's life)."""

    order: tuple[str, ...] = attrs.field(default=DEFAULT_ORDER, converter=_order)
    vault_addr: str | None = None
    vault_token: Secret | None = attrs.field(default=None, converter=_token)
    vault_namespace: str | None = None
    vault_mount: str = "secret"
    vault_path: str = "trio-a2a"
    vault_timeout: float = attrs.field(default=5.0, converter=float, validator=_positive)
    vault_cacert: str | None = None
    file: str | None = None
    env_prefix: str = ""
    ttl: float | None = attrs.field(default=None, converter=_ttl)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretsConfig:
        """Vault's own variables (VAULT_ADDR, VAULT_TOKEN, ...) plus TRIO_A2A_SECRETS_*."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}
        for var, key in [("VAULT_ADDR", "vault_addr"), ("VAULT_TOKEN", "vault_token"),
                         ("VAULT_NAMESPACE", "vault_namespace"),
                         ("VAULT_CACERT", "vault_cacert"),
                         (ENV_PREFIX + "VAULT_MOUNT", "vault_mount"),
                         (ENV_PREFIX + "VAULT_PATH", "vault_path"),
                         (ENV_PREFIX + "SECRETS_ORDER", "order"),
                         (ENV_PREFIX + "SECRETS_FILE", "file"),
                         (ENV_PREFIX + "SECRETS_TTL", "ttl")]:
            if env.get(var):
                kw[key] = env[var]
        return cls(**kw)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any],
                     environ: Mapping[str, str] | None = None) -> SecretsConfig:
        """A TOML `[secrets]` table over the environment's settings; unknown keys are errors.

        The Vault token is never read from this table (config files get shared):
        it comes from VAULT_TOKEN or `vault.token_file`.
        """
        base = cls.from_env(environ)
        table = dict(table)
        vault = dict(table.pop("vault", None) or {})
        top = {"order": "order", "file": "file", "env_prefix": "env_prefix", "ttl": "ttl"}
        nested = {"addr": "vault_addr", "namespace": "vault_namespace", "mount": "vault_mount",
                  "path": "vault_path", "timeout": "vault_timeout", "cacert": "vault_cacert"}
        changes: dict[str, Any] = {}
        for key, value in table.items():
            if key not in top:
                raise ValueError(f"[secrets]: unknown key {key!r}; expected one of "
                                 f"{', '.join([*top, 'vault'])}")
            changes[top[key]] = value
        token_file = vault.pop("token_file", None)
        if "token" in vault:
            raise ValueError("[secrets.vault]: 'token' is not read from config files; "
                             "set VAULT_TOKEN or [secrets.vault] token_file")
        for key, value in vault.items():
            if key not in nested:
                raise ValueError(f"[secrets.vault]: unknown key {key!r}; expected one of "
                                 f"{', '.join([*nested, 'token_file'])}")
            changes[nested[key]] = value
        if token_file:
            changes["vault_token"] = _read_token_file(Path(token_file).expanduser())
        return attrs.evolve(base, **changes)


def _read_token_file(path: Path) -> Secret:
    """The token from a file held to the same owner-only rule as the secrets file."""
    try:
        with path.open("rb") as f:
            check_file_mode(path, os.fstat(f.fileno()).st_mode)
            return Secret(f.read().decode("utf-8").strip())
    except OSError as exc:
        raise ValueError(f"[secrets.vault] token_file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"[secrets.vault] token_file {path}: not UTF-8 text") from None
    except SecretSourceUnavailable as exc:
        raise ValueError(f"[secrets.vault] token_file {path}: {exc.reason}") from None
