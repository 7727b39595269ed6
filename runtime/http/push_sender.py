"""HttpxPushSender: the network side of push delivery (`actors.push_delivery.PushSender`).

One shared `httpx.AsyncClient` (connection pooling across configs; httpx runs on
trio through anyio). Redirects are never followed and proxies from the
environment are ignored: either could send the POST somewhere that was not checked.

SSRF: unless `allow_private`, the URL's host is resolved here and the POST is
refused if ANY address is not global (loopback, private, link-local, shared,
multicast, unspecified...; an IPv6 address that carries an IPv4 address, such as
NAT64 `64:ff9b::7f00:1` or 6to4 `2002:7f00:1::`, is judged by that address too:
`actors.push_configs.is_public_address`, the check config creation uses). The
request then goes to the checked address itself (Host header and TLS server name
keep the original name), so a DNS answer that changes between the check and the
connect (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import httpx
import trio

from actors.push_configs import is_public_address
from actors.push_delivery import PushReply, PushSendError

__all__ = ["HttpxPushSender", "Resolver", "is_public_address", "parse_retry_after"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> IP addresses as strings."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; the HTTP-date form is ignored (None)."""
    if value is None:
        return None
    value = value.strip()
    return float(value) if value.isdigit() else None


class HttpxPushSender:
    """POSTs push notifications; `aclose()` closes the client if this sender created it.

    `timeout` applies to each phase of a request (connect, write, read).
    Pass `client` to share one (its owner closes it) and `resolver` to replace DNS
    in tests.
    """

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        allow_private: bool = False,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._owns_client = client is None
        self._client = client if client is not None else self._new_client()
        self._resolve = resolver if resolver is not None else _getaddrinfo

    async def __aenter__(self) -> HttpxPushSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        """Close the client (if it is ours); a later `post` opens a new one, so the
        delivery actor can be restarted by its supervisor with the same sender."""
        if self._owns_client:
            await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PushReply:
        if self._owns_client and self._client.is_closed:
            self._client = self._new_client()
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PushSendError(f"invalid push url {url!r}: {exc}", permanent=True) from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise PushSendError(f"push url must be an absolute http(s) URL: {url!r}",
                                permanent=True)
        headers = dict(headers)
        extensions: dict[str, object] = {}
        if not self.allow_private:
            name = target.raw_host.decode("ascii")
            netloc = target.netloc.decode("ascii")
            target, pinned = await self._pin(target)
            if pinned:
                headers["Host"] = netloc
                if target.scheme == "https":
                    extensions["sni_hostname"] = name
        try:
            request = self._client.build_request(
                "POST", target, content=body, headers=headers, extensions=extensions,
                timeout=self.timeout,
            )
            response = await self._client.send(request, stream=True, follow_redirects=False)
            await response.aclose()  # the status is the answer; never read a body
        except httpx.HTTPError as exc:
            raise PushSendError(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
        return PushReply(status=response.status_code,
                         retry_after=parse_retry_after(response.headers.get("Retry-After")))

    async def _pin(self, target: httpx.URL) -> tuple[httpx.URL, bool]:
        """Check the destination; return the URL to connect to and whether it was rewritten."""
        host = target.raw_host.decode("ascii")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not is_public_address(literal):
                raise PushSendError(
                    f"push url host {host} is not a public address; refused (server option "
                    "--allow-private-push-urls allows it)", permanent=True)
            return target, False
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            found = await self._resolve(host, port)
        except OSError as exc:
            raise PushSendError(f"cannot resolve push url host {host!r}: {exc}") from exc
        addrs = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addrs:
            raise PushSendError(f"push url host {host!r} has no addresses")
        for addr in addrs:
            if not is_public_address(addr):
                raise PushSendError(
                    f"push url host {host!r} resolves to non-public address {addr}; refused "
                    "(server option --allow-private-push-urls allows it)", permanent=True)
        return target.copy_with(host=str(addrs[0])), True

