"""The A2A client's errors: each names the URL and says what went wrong in words.

`A2ARpcError` is the agent's own "no" (a JSON-RPC error with code, message and
data); the others mean the conversation itself failed: the agent could not be
reached (`A2AConnectionError`), answered with a non-200 status (`A2AHTTPError`) or
with something that is not the protocol (`A2AResponseError`), or the agent's
protocol generation has no such operation (`A2AUnsupportedError`).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from typing import Any

import httpx

from protocol.errors import A2AError, error_for_code

__all__ = [
    "A2AClientError",
    "A2AConnectionError",
    "A2AHTTPError",
    "A2AResponseError",
    "A2ARpcError",
    "A2AUnsupportedError",
    "connection_error",
    "jsonrpc_error_member",
    "status_error",
]


class A2AClientError(Exception):
    """Base of the client's errors; `url` is the URL the failed request went to."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class A2AConnectionError(A2AClientError):
    """The agent could not be reached, did not answer in time, or the connection broke."""


class A2AHTTPError(A2AClientError):
    """A non-200 HTTP answer that is not a JSON-RPC error."""

    def __init__(self, message: str, *, url: str, status_code: int, body: str) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.body = body


class A2AResponseError(A2AClientError):
    """An answer that is not valid JSON, not JSON-RPC, or not the shape the protocol says."""


class A2AUnsupportedError(A2AClientError):
    """The operation does not exist in the protocol generation the agent speaks."""


class A2ARpcError(A2AClientError):
    """The agent answered with a JSON-RPC error.

    `error` is the matching `protocol.errors` exception (TaskNotFoundError for
    -32001, ...), so callers can test ``isinstance(exc.error, TaskNotFoundError)``;
    `reason` is the ErrorInfo reason of a 1.0 error, when it carries one.
    """

    def __init__(self, *, url: str, method: str, code: int, message: str, data: Any) -> None:
        super().__init__(f"{method} at {url} failed: {message} (JSON-RPC error {code})", url=url)
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        self.error: A2AError = error_for_code(code, message)
        self.error.data = data
        infos = data if isinstance(data, list) else [data]
        reasons = [i.get("reason") for i in infos if isinstance(i, dict)]
        self.reason: str | None = next((r for r in reasons if isinstance(r, str)), None)



def _why(exc: BaseException) -> str:
    """The first cause in the chain that says something (an httpx error under trio
    often has an empty message, its TLS or socket cause the real one)."""
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def connection_error(exc: httpx.HTTPError, url: str, timeout: float | None) -> A2AConnectionError:
    """The error for an httpx transport failure on a request to `url`."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        tls = _tls_cause(exc)
        if tls is not None and "WRONG_VERSION_NUMBER" in str(tls) and url.startswith("https:"):
            plain = "http:" + url[len("https:"):]
            return A2AConnectionError(
                f"cannot connect to {url}: the server does not speak TLS there "
                f"(is it plain HTTP? try {plain})", url=url)
        return A2AConnectionError(f"cannot connect to {url}: {_why(exc)}", url=url)
    if isinstance(exc, httpx.TimeoutException):
        within = f" within {timeout} s" if timeout else f" ({_why(exc)})"
        return A2AConnectionError(f"no answer from {url}{within}", url=url)
    return A2AConnectionError(f"connection to {url} failed: {_why(exc)}", url=url)


def status_error(response: httpx.Response, body: bytes) -> A2AHTTPError:
    """The error for a non-200 answer, quoting the server's own message when it has one."""
    url = str(response.request.url)
    text = body.decode("utf-8", "replace")
    detail = ""
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            detail = f": {err['message']}"
    if not detail and text.strip():
        detail = f": {text.strip()[:200]}"
    hint = ""
    if response.status_code in (401, 403) and "token" not in detail:
        hint = " (the agent wants a valid bearer token)"
    return A2AHTTPError(f"HTTP {response.status_code} from {url}{detail}{hint}", url=url,
                        status_code=response.status_code, body=text)


def jsonrpc_error_member(payload: bytes) -> Any:
    """The JSON-RPC error in a non-200 body, if it holds one (some servers answer 4xx/5xx)."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("jsonrpc") == "2.0" and isinstance(obj.get("error"),
                                                                           dict):
        return obj["error"]
    return None
