"""API keys from Vault (KV v2), a secrets file or the environment, in a configured order.

Values travel as `Secret` (redacted in every rendering) and errors name
sources and secret names, never values or the Vault token. See docs/secrets.md.
May import nothing else of runtime/.
"""

from runtime.secrets.config import DEFAULT_ORDER, SOURCE_LABELS, SecretsConfig
from runtime.secrets.sources import (
    EnvSource,
    FileSource,
    SecretSource,
    check_file_mode,
    parse_secrets_file,
)
from runtime.secrets.store import (
    Resolution,
    SecretRef,
    SecretStore,
    SecretStoreStatistics,
    build_sources,
)
from runtime.secrets.values import (
    REDACTED,
    Secret,
    SecretError,
    SecretNotFound,
    SecretRedactionFilter,
    SecretSourceUnavailable,
    redact,
)
from runtime.secrets.vault import VaultSource

__all__ = [
    "DEFAULT_ORDER",
    "EnvSource",
    "FileSource",
    "REDACTED",
    "Resolution",
    "SOURCE_LABELS",
    "Secret",
    "SecretError",
    "SecretNotFound",
    "SecretRedactionFilter",
    "SecretRef",
    "SecretSource",
    "SecretSourceUnavailable",
    "SecretStore",
    "SecretStoreStatistics",
    "SecretsConfig",
    "VaultSource",
    "build_sources",
    "check_file_mode",
    "parse_secrets_file",
    "redact",
]
