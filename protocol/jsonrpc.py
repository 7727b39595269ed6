"""JSON-RPC 2.0 envelopes: parse a request body, build responses, name bad fields.

Sans-IO on purpose: the HTTP shell hands over the raw body and gets back a
`ParsedPayload` whose items are either runnable `Request`s or ready error
responses, in the order they arrived. Executing the requests (concurrently, for
a batch) and putting the body back together with `ParsedPayload.response_body`
is the caller's job. This is the hot path of every call, so the body is decoded
once (by orjson, or a prebuilt `json.JSONDecoder` where orjson would read it differently)
and valid requests are checked with a few type tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import attrs
import orjson
import pydantic

from .errors import A2AError, InvalidParamsError, InvalidRequestError, ParseError

__all__ = [
    "JSONRPC_VERSION",
    "ParsedPayload",
    "Request",
    "RequestId",
    "assemble_batch",
    "error_response",
    "format_validation_error",
    "invalid_params",
    "parse_payload",
    "success_response",
]

JSONRPC_VERSION = "2.0"

RequestId = str | int | float | None

_MAX_REPORTED_ERRORS = 5


@attrs.frozen
class Request:
    """One valid call. `id` is None both for `"id": null` and for notifications;
    `is_notification` tells them apart (only notifications get no response)."""

    method: str
    params: dict[str, Any]
    id: RequestId
    is_notification: bool = False


@attrs.frozen
class ParsedPayload:
    """A parsed body: `items[i]` is a `Request` to run or an error response dict.

    Notifications whose envelope is valid but whose params are not are dropped
    (JSON-RPC never answers a notification), so `items` may be shorter than the
    batch; everything else keeps its position.
    """

    is_batch: bool
    items: tuple[Request | dict[str, Any], ...]

    def response_body(
        self, responses: Sequence[dict[str, Any] | None]
    ) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The body to send, given one response (None for notifications) per item.

        A single call answers with an object, a batch with an array in request
        order; None means "no body" (HTTP 204), as when every call was a
        notification.
        """
        if self.is_batch:
            return assemble_batch(responses)
        return responses[0] if responses else None


def success_response(id: RequestId, result: Any) -> dict[str, Any]:
    """The response object for a call that returned `result`."""
    return {"jsonrpc": JSONRPC_VERSION, "id": id, "result": result}


def error_response(id: RequestId, err: A2AError, *, version: str) -> dict[str, Any]:
    """The response object for a failed call; `version` ("1.0"/"0.3") shapes `data`."""
    return {"jsonrpc": JSONRPC_VERSION, "id": id, "error": err.to_jsonrpc(version=version)}


def assemble_batch(responses: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]] | None:
    """The batch response array: notifications (None) left out, None if nothing remains."""
    out = [r for r in responses if r is not None]
    return out or None


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON; the stdlib decoder would accept them otherwise.
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads(..., parse_constant=...) would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# orjson decodes a request body about three times faster than the stdlib decoder
# and gives the same values, except where these guards send the body to the stdlib
# decoder: integers of 19 digits or more (orjson reads those beyond 64 bits as
# floats), nesting past what the stdlib decoder's recursion allows (orjson reads
# deeper), and whatever orjson refuses (a BOM, NaN, lone surrogates, bad UTF-8,
# huge exponents), for which the stdlib decoder gives the result or error it
# always did.
_LONG_NUMBER = re.compile(rb"[0-9]{19}").search
_ORJSON_MAX_OPEN = 200  # "[" and "{" bytes: far below any recursion limit


def _decode(body: bytes | str) -> Any:
    if (isinstance(body, bytes) and _LONG_NUMBER(body) is None
            and body.count(b"[") + body.count(b"{") <= _ORJSON_MAX_OPEN):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the stdlib decoder answers, with its own message
    text = body if isinstance(body, str) else body.decode("utf-8")  # JSON is UTF-8
    if text[:1] == "\ufeff":  # RFC 8259 lets a parser ignore a leading BOM
        text = text[1:]
    return _DECODER.decode(text)


def parse_payload(body: bytes | str, *, version: str = "1.0") -> ParsedPayload:
    """Parse a JSON-RPC request body (single call or batch).

    Never raises for bad input: malformed JSON becomes a -32700 error response
    and malformed calls become -32600/-32602 error responses, rendered for the
    A2A `version` the request was made with.
    """
    try:
        obj = _decode(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        err = ParseError(f"Invalid JSON payload: {exc}")
        return ParsedPayload(False, (error_response(None, err, version=version),))
    if isinstance(obj, dict):
        item = _check(obj, version)
        return ParsedPayload(False, () if item is None else (item,))
    if isinstance(obj, list):
        if not obj:
            # JSON-RPC 2.0 section 6: an empty array gets a single response object
            err = InvalidRequestError("Invalid request: empty batch")
            return ParsedPayload(False, (error_response(None, err, version=version),))
        items = []
        for element in obj:
            item = _check(element, version)
            if item is not None:
                items.append(item)
        return ParsedPayload(True, tuple(items))
    err = InvalidRequestError("Invalid request: the body must be a JSON object or array")
    return ParsedPayload(False, (error_response(None, err, version=version),))


def _valid_id(value: Any) -> bool:
    t = type(value)
    return t is str or t is int or t is float or value is None


def _check(obj: Any, version: str) -> Request | dict[str, Any] | None:
    """Validate one call; a Request, an error response, or None (bad notification)."""
    if type(obj) is not dict:
        return _invalid(None, "a request must be a JSON object", version)
    has_id = "id" in obj
    id_ = obj.get("id")
    if has_id and not _valid_id(id_):
        return _invalid(None, "id must be a string, a number or null", version)
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        return _invalid(id_, 'jsonrpc must be exactly "2.0"', version)
    method = obj.get("method")
    if type(method) is not str or not method:
        return _invalid(id_, "method must be a non-empty string", version)
    params = obj.get("params")
    if type(params) is not dict:
        if params is None:  # absent, or null (tolerated as absent)
            params = {}
        elif type(params) is list:  # valid JSON-RPC, but A2A params are objects
            if not has_id:
                return None
            err = InvalidParamsError("params must be an object")
            return error_response(id_, err, version=version)
        else:
            return _invalid(id_, "params must be an object", version)
    return Request(method, params, id_, not has_id)


def _invalid(id_: RequestId, why: str, version: str) -> dict[str, Any]:
    return error_response(id_, InvalidRequestError(f"Invalid request: {why}"), version=version)


def _render_loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def _render_msg(msg: str) -> str:
    for noise in ("Value error, ", "Assertion failed, "):
        if msg.startswith(noise):
            msg = msg[len(noise):]
            break
    # "Field required" -> "field required", but leave acronyms ("URL ...") alone.
    if len(msg) > 1 and msg[0].isupper() and msg[1].islower():
        msg = msg[0].lower() + msg[1:]
    return msg


def format_validation_error(exc: pydantic.ValidationError, prefix: str = "params") -> str:
    """A message that names each bad field by its wire path.

    e.g. ``params.message.parts[0]: a part needs exactly one of text, raw, url
    or data``; several errors are joined with "; " and capped, so a client sees
    exactly which member to fix without a wall of text.
    """
    seen: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        line = f"{_render_loc(prefix, error['loc'])}: {_render_msg(error['msg'])}"
        if line not in seen:
            seen.append(line)
    shown = seen[:_MAX_REPORTED_ERRORS]
    if len(seen) > len(shown):
        shown.append(f"and {len(seen) - len(shown)} more")
    return "; ".join(shown)


def invalid_params(exc: pydantic.ValidationError, prefix: str = "params") -> InvalidParamsError:
    """The -32602 error for params that failed model validation."""
    return InvalidParamsError(format_validation_error(exc, prefix))
