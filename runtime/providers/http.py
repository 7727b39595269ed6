"""HTTP plumbing shared by the providers that speak JSON over HTTP with SSE streams.

One place turns statuses, error bodies and transport failures into the
`ProviderError` family, so every provider fails the same way: 401/403 is an auth
error, 404 or a model-not-found code an unknown model, 408/429/5xx and network
trouble retryable, anything else a plain error carrying the server's message.
Secrets given to a provider are scrubbed from every message it raises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from protocol.sse import SSEDecoder, SSEEvent
from runtime.observe.instruments import ProviderCall
from runtime.providers.base import ProviderAuthError, ProviderError, UnknownModelError
from runtime.providers.retry import RetryPolicy, parse_retry_after

__all__ = ["HttpProvider", "Timeouts"]

log = logging.getLogger(__name__)

_MODEL_NOT_FOUND_CODES = frozenset({"model_not_found", "not_found_error"})
_NO_RETRY_CODES = frozenset({"insufficient_quota", "billing_error"})  # waiting will not help
_RETRY_STATUSES = frozenset({408, 409, 425, 429})


@attrs.frozen
class Timeouts:
    """Network timeouts in seconds.

    `read` is the longest silence tolerated between two pieces of a response, so
    it bounds the wait for the first token too: raise it for local models that
    take long over a large prompt.
    """

    connect: float = 10.0
    read: float = 120.0
    write: float = 30.0
    pool: float = 10.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write,
                             pool=self.pool)


def _server_message(body: bytes) -> tuple[str, str | None]:
    """The error text and code from an error body in any of the common shapes."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)", None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return err, None
        if isinstance(err, dict):
            message = err.get("message") or data.get("message") or text[:500]
            code = err.get("code") or err.get("type")
            return str(message), str(code) if code is not None else None
    return text[:500], None


class HttpProvider:
    """Base of the HTTP providers: a client, the retry policy and error mapping.

    Pass `client` to share one (its owner closes it); otherwise this provider owns
    one built from `timeouts`. `scrub` lists values (API keys) replaced by `***` in
    every message this provider raises. `rng` seeds backoff jitter; `wall_clock` is
    only used to read a `Retry-After` HTTP date when the response had no `Date` header.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        scrub: tuple[str, ...] = (),
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
        client: httpx.AsyncClient | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry
        self._rng = rng if rng is not None else random.Random()
        self._scrub_values = sorted((s for s in scrub if s), key=len, reverse=True)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(
            timeout=timeouts.to_httpx())
        self._wall_clock = wall_clock

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _scrub(self, text: str) -> str:
        for secret in self._scrub_values:
            text = text.replace(secret, "***")
        return text

    def _error(self, cls: type[ProviderError], message: str, **kw: Any) -> ProviderError:
        return cls(self._scrub(f"provider {self.name!r}: {message}"), **kw)

    def error_from_response(self, response: httpx.Response, body: bytes,
                            model: str | None = None) -> ProviderError:
        """The error for a failed response (`body` already read)."""
        status = response.status_code
        message, code = _server_message(body)
        where = f"HTTP {status} from {response.request.method} {response.request.url}"
        if status in (401, 403):
            return self._error(ProviderAuthError, f"credentials refused ({where}): {message}",
                               status=status)
        lowered = message.lower()
        if status == 404 or code in _MODEL_NOT_FOUND_CODES or (
                status == 400 and "model" in lowered
                and ("not found" in lowered or "does not exist" in lowered)):
            what = f"model {model!r} is not served" if model else "not found"
            return self._error(UnknownModelError, f"{what} ({where}): {message}; check the "
                               "model id and the base_url", status=status)
        retryable = (status in _RETRY_STATUSES or status >= 500) and code not in _NO_RETRY_CODES
        headers = response.headers
        retry_after = None
        if retryable:
            ms = headers.get("retry-after-ms")
            try:
                retry_after = float(ms) / 1000 if ms is not None else None
            except ValueError:
                retry_after = None
            if retry_after is None:
                retry_after = parse_retry_after(headers.get("retry-after"),
                                                date=headers.get("date"), now=self._wall_clock)
        return self._error(ProviderError, f"{where}: {message}", status=status,
                           retryable=retryable, retry_after=retry_after)

    def _transport_error(self, exc: httpx.HTTPError, url: str) -> ProviderError:
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            return self._error(ProviderError, f"cannot connect to {url}: {exc!r}",
                               retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            return self._error(ProviderError, f"no data from {url} for {self.timeouts.read} s "
                               "(read timeout)", retryable=True)
        if isinstance(exc, httpx.TransportError):
            return self._error(ProviderError, f"connection to {url} failed: {exc!r}",
                               retryable=True)
        return self._error(ProviderError, f"request to {url} failed: {exc!r}")

    async def open_sse(self, url: str, *, body: Mapping[str, Any], headers: Mapping[str, str],
                       model: str) -> AsyncIterator[SSEEvent]:
        """POST `body` and yield the response's SSE events; errors become ProviderError.

        A stream that ends mid-event raises a retryable error; whether it may be
        retried is the caller's call (see `retrying`). Each call is timed and traced
        (`runtime.observe.instruments.ProviderCall`).
        """
        call = ProviderCall(self.name, model, url)
        try:
            async with contextlib.aclosing(
                    self._open_sse(url, body, call.headers(dict(headers)), model)) as events:
                async for event in events:
                    yield event
        except ProviderError as exc:
            call.error = type(exc).__name__
            raise
        finally:
            call.end()

    async def _open_sse(self, url: str, body: Mapping[str, Any], headers: dict[str, str],
                        model: str) -> AsyncIterator[SSEEvent]:
        try:
            async with self._client.stream("POST", url, json=dict(body),
                                           headers=headers) as response:
                if response.status_code >= 400:
                    raise self.error_from_response(response, await response.aread(), model)
                ctype = response.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    payload = await response.aread()
                    message, _ = _server_message(payload)
                    raise self._error(ProviderError, f"{url} answered with JSON instead of an "
                                      f"event stream: {message}")
                decoder = SSEDecoder()
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        yield event
                if decoder.close():
                    raise self._error(ProviderError, f"the stream from {url} ended mid-event",
                                      retryable=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, url) from exc

    async def get_json(self, url: str, *, headers: Mapping[str, str],
                       params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document, retrying per the policy."""
        failures = 0
        while True:
            try:
                try:
                    response = await self._client.get(url, headers=dict(headers),
                                                       params=dict(params or {}))
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, url) from exc
                if response.status_code >= 400:
                    raise self.error_from_response(response, response.content)
                try:
                    return response.json()
                except ValueError as exc:
                    raise self._error(ProviderError, f"{url} answered with invalid JSON") from exc
            except ProviderError as exc:
                failures += 1
                wait = self.retry.wait_for(exc, failures, self._rng)
                if wait is None:
                    raise
                log.warning("provider request failed, retrying in %.3f s: %s", wait,
                            exc.message, extra={"provider": self.name, "status": exc.status,
                                                "attempt": failures, "delay_s": wait})
            await trio.sleep(wait)

    def parse_data(self, event: SSEEvent) -> Any:
        """The JSON payload of an SSE event; a protocol error if it is not JSON."""
        try:
            return json.loads(event.data)
        except ValueError as exc:
            raise self._error(ProviderError, "the stream carried invalid JSON: "
                              f"{event.data[:200]!r}") from exc
