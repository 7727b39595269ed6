"""Limits on what a client may send, checked on the decoded JSON before any model.

A request well inside the body limit can still cost far more than its size once
models are built from it: 600,000 one-letter parts in a 9 MB body became 600,000
part models (near 900 MB and a stall of seconds), and a `data` part nested a few
hundred levels deep passed validation only to fail where the task store
serialises it. So every request is checked here first, on the JSON the decoder
produced: a refused request costs its decoding and one walk over it, no more.

The walk is generic over JSON, not a list of fields: it covers everything
JSON-valued a client sends, in both A2A generations and both bindings (message
and part metadata, part data, request metadata, push configs, members a model
would ignore), and nothing has to be kept in step with the models. The one field
it knows by name is the message's part list (``message.parts``, or
``message.content`` in the 0.3 proto JSON of the HTTP+JSON binding).

The same walk refuses a string that is not Unicode text: JSON's ``\ud800`` escape
decodes to a lone surrogate, which no UTF-8 writer accepts, so such a string in
any field (a member name too) used to be stored in a task and fail only when the
task was serialised: -32603 or HTTP 500 instead of the client's error. An ASCII
string (nearly all of them) costs one `str.isascii()`; any other, one encode.

Every refusal is InvalidParams (-32602; HTTP 400), naming the field and the
limit (or, for a string that is not text, saying so). Sans-IO: pure functions
over decoded JSON.
"""

from __future__ import annotations

from typing import Any

import attrs

from protocol.errors import InvalidParamsError

__all__ = ["DEPTH_CEILING", "Limits"]

DEPTH_CEILING = 200
"""The deepest `max_depth` may be: the store serialises a task (the request's
message nested a few levels further down) with pydantic, which refuses anything
nested deeper than about 250 levels."""

_NOT_TEXT = "not-utf8"
"""`_Exceeded.limit` for a string that cannot be encoded as UTF-8 (not a limit)."""
_FREE_FORM_KEYS = frozenset({"data", "metadata"})
_MAX_PATH_PARTS = 12
_MAX_KEY_SHOWN = 40


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, not {value!r}")


def _depth(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    _positive(_, attribute, value)
    if value > DEPTH_CEILING:
        raise ValueError(f"{attribute.name} must be at most {DEPTH_CEILING} (deeper JSON "
                         f"cannot be stored), not {value}")


class _Exceeded(Exception):
    """Raised inside the walk; the path is collected while it unwinds."""

    def __init__(self, limit: str, what: str, *, depth: bool = False) -> None:
        self.limit = limit
        self.what = what
        self.depth = depth
        self.path: list[str | int] = []


@attrs.frozen
class Limits:
    """How much one request may hold; each is a flag of `python -m runtime server`."""

    max_parts: int = attrs.field(default=1000, validator=_positive)
    """Parts of the message of one request (a JSON-RPC batch: of all its calls)."""
    max_depth: int = attrs.field(default=64, validator=_depth)
    """Objects and arrays nested in one another, counted from the JSON-RPC `params`
    (or the HTTP+JSON body) as level 1. A message's own structure takes 4 levels
    (params, message, parts, the part), so a part's data object is level 5."""
    max_string: int = attrs.field(default=1 << 20, validator=_positive)
    """Characters in any one string: a text part, raw (base64) bytes, a URL, a key."""
    max_items: int = attrs.field(default=10_000, validator=_positive)
    """Members of one object or elements of one array (the parts of a message count
    against `max_parts` instead)."""

    def check(self, root: Any, *, where: str = "params", parts_left: int | None = None) -> int:
        """Refuse `root` (decoded JSON) if it breaks a limit; the number of message
        parts it holds otherwise.

        `where` names the root in errors ("params" for JSON-RPC, "" for an HTTP+JSON
        body). `parts_left` is what the parts budget still allows when earlier calls
        of the same request (a batch) spent some of it; default `max_parts`.

        Raises InvalidParamsError naming the field and the limit.
        """
        budget = self.max_parts if parts_left is None else parts_left
        parts_key, parts = _message_parts(root)
        count = 0
        if parts is not None:
            count = len(parts)
            if count > budget:
                field = _field(where, parts_key)
                if budget < self.max_parts:
                    what = (f"{count} parts, more than the {budget} left of the "
                            f"{self.max_parts} allowed per request by earlier calls in "
                            "its batch")
                else:
                    what = f"{count} parts, more than the {self.max_parts} allowed per message"
                raise _error(field, "max-parts", self.max_parts, what)
        try:
            _walk(root, 1, self, parts)
        except _Exceeded as exc:
            exc.path.reverse()
            field = _field(where, _shown(exc.path, exc.depth))
            if exc.depth:
                exc.what = (f"nested more than {self.max_depth} levels deep, counting "
                            f"{where or 'the body'} as level 1")
            if exc.limit == _NOT_TEXT:
                raise InvalidParamsError(f"{field}: {exc.what}", metadata={
                    "field": field, "reason": _NOT_TEXT}) from None
            value = getattr(self, exc.limit.replace("-", "_"))
            raise _error(field, exc.limit, value, exc.what) from None
        return count


def _message_parts(root: Any) -> tuple[tuple[str | int, ...], list[Any] | None]:
    """Where the request's message keeps its parts, and the list; (…, None) if none.

    A send's message is ``message`` in every shape; the 0.3 proto JSON may call it
    ``request`` and its parts ``content`` (`protocol.v03_rest` reads both the same way).
    """
    if type(root) is not dict:
        return (), None
    for key in ("message", "request"):
        message = root.get(key)
        if type(message) is dict:
            name = "parts" if "parts" in message else "content"
            parts = message.get(name)
            if type(parts) is list:
                return (key, name), parts
            return (), None
    return (), None


def _walk(value: Any, level: int, limits: Limits, exempt: list[Any] | None) -> None:
    """Check one JSON value at nesting `level` (containers only nest below 1).

    Recursive: the depth limit (at most DEPTH_CEILING) bounds the recursion."""
    kind = type(value)
    if kind is str:
        if len(value) > limits.max_string:
            raise _Exceeded("max-string", f"a string of {len(value)} characters, longer "
                            f"than the {limits.max_string} allowed")
        if not value.isascii() and not _is_text(value):
            raise _Exceeded(_NOT_TEXT, "a string " + _NOT_TEXT_WHAT)
        return
    if kind is not dict and kind is not list:
        return
    if level > limits.max_depth:
        raise _Exceeded("max-depth", "", depth=True)  # worded by `Limits.check`
    if len(value) > limits.max_items and value is not exempt:
        noun = "members" if kind is dict else "elements"
        raise _Exceeded("max-items", f"{len(value)} {noun}, more than the "
                        f"{limits.max_items} allowed in one object or array")
    if kind is dict:
        for key, item in value.items():
            if len(key) > limits.max_string:
                raise _Exceeded("max-string", f"a member name of {len(key)} characters, "
                                f"longer than the {limits.max_string} allowed")
            if not key.isascii() and not _is_text(key):
                exc = _Exceeded(_NOT_TEXT, "a member name " + _NOT_TEXT_WHAT)
                exc.path.append(_printable(key))
                raise exc
            try:
                _walk(item, level + 1, limits, exempt)
            except _Exceeded as exc:
                exc.path.append(key)
                raise
    else:
        for i, item in enumerate(value):
            try:
                _walk(item, level + 1, limits, exempt)
            except _Exceeded as exc:
                exc.path.append(i)
                raise


_NOT_TEXT_WHAT = ("that is not valid Unicode text (a lone surrogate, such as "
                  "the JSON escape \\ud800 unpaired, cannot be encoded as UTF-8)")


def _is_text(s: str) -> bool:
    """Whether `s` can be encoded as UTF-8 (holds no lone surrogate)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(key: str) -> str:
    """A member name that is not text, as an error message can show it."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(path: list[str | int], depth: bool) -> tuple[str | int, ...]:
    """The part of a path worth showing: a too-deep value is named by the field it
    hangs from (the first `data` or `metadata`), not by dozens of its own keys."""
    if depth:
        for i, part in enumerate(path):
            if part in _FREE_FORM_KEYS:
                return tuple(path[: i + 1])
    if len(path) > _MAX_PATH_PARTS:
        return (*path[:_MAX_PATH_PARTS], "…")
    return tuple(path)


def _field(where: str, path: tuple[str | int, ...]) -> str:
    """The wire path of a field, as validation errors write it: ``params.a[0].b``."""
    out = where
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "…":
            out += part
        else:
            name = part if len(part) <= _MAX_KEY_SHOWN else part[:_MAX_KEY_SHOWN] + "…"
            out = f"{out}.{name}" if out else name
    return out or "body"


def _error(field: str, limit: str, value: int, what: str) -> InvalidParamsError:
    return InvalidParamsError(
        f"{field}: {what} (limit {limit} = {value})",
        metadata={"field": field, "limit": limit, "max": str(value)},
    )
