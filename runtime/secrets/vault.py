"""HashiCorp Vault KV version 2 as a secret source, with token auth.

One secret path holds the keys: `GET {addr}/v1/{mount}/data/{path}` with the
token in `X-Vault-Token` (and `X-Vault-Namespace` when set); the value of a
name is `data.data[name]`. A missing path (404) or key means "not here", so
the next source is asked; anything that stops Vault from answering (refused
connection, timeout, 403, 5xx, a sealed Vault) is `SecretSourceUnavailable`
naming Vault and its address. The token never appears in a message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from runtime.secrets.values import Secret, SecretSourceUnavailable, redact

__all__ = ["VaultSource"]


class VaultSource:
    """Reads one KV v2 secret path from Vault per lookup."""

    label = "vault"

    def __init__(self, addr: str, token: Secret, *, mount: str = "secret",
                 path: str = "trio-a2a", namespace: str | None = None,
                 timeout: float = 5.0, verify: bool | str = True,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.addr = addr.rstrip("/")
        self._token = token
        self.mount = mount.strip("/")
        self.path = path.strip("/")
        self.namespace = namespace
        self._timeout = timeout
        self._verify = verify
        self._transport = transport  # tests inject faults here

    @property
    def description(self) -> str:
        return f"Vault at {self.addr}"

    @property
    def url(self) -> str:
        return f"{self.addr}/v1/{quote(self.mount)}/data/{quote(self.path)}"

    def _unavailable(self, reason: str) -> SecretSourceUnavailable:
        return SecretSourceUnavailable(self.label, self.description,
                                       redact(reason, [self._token]))

    async def read(self) -> dict[str, Any] | None:
        """The secret's key/value data, or None when the path does not exist."""
        headers = {"X-Vault-Token": self._token.reveal()}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        where = f"{self.mount}/{self.path}"
        try:
            # proxy variables are ignored: Vault is an internal service and the
            # token must not travel through a proxy nobody chose for it
            async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify,
                                         transport=self._transport, trust_env=False) as http:
                response = await http.get(self.url, headers=headers)
        except httpx.TimeoutException:
            raise self._unavailable(f"no answer within {self._timeout:g} s") from None
        except httpx.TransportError as exc:
            # the message of a transport error names the OS error, not the request
            raise self._unavailable(f"cannot connect ({type(exc).__name__}: {exc})") from None
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise self._unavailable(f"permission denied reading {where} (HTTP 403): "
                                    "the token is invalid, expired or lacks a policy for it")
        if response.status_code != 200:
            raise self._unavailable(f"HTTP {response.status_code} reading {where}"
                                    f"{_vault_errors(response)}")
        try:
            data = response.json()["data"]["data"]
        except (ValueError, KeyError, TypeError):
            raise self._unavailable(f"answer for {where} is not a KV v2 read "
                                    "(is the mount a KV version 2 engine?)") from None
        if data is None:  # a deleted or destroyed latest version
            return None
        if not isinstance(data, dict):
            raise self._unavailable(f"data of {where} is not an object")
        return data

    async def lookup(self, name: str) -> str | None:
        data = await self.read()
        if data is None:
            return None
        value = data.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._unavailable(f"key {name!r} of {self.mount}/{self.path} is not a string")
        return value


def _vault_errors(response: httpx.Response) -> str:
    """Vault's own error strings (they describe the failure, not the request)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list) or not errors:
        return ""
    text = "; ".join(str(e) for e in errors)[:200]
    return f": {json.dumps(text)}"
