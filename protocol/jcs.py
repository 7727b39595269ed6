"""JSON canonicalisation (RFC 8785, JCS) for signatures over JSON, sans-IO.

An agent card's signature (A2A 1.0 `AgentCard.signatures`) is a JWS over the card's
canonical form without its `signatures` member, so signer and verifier must serialise
the same card to the same bytes: members sorted by their UTF-16 code units, no
whitespace, strings as JSON escapes only where JSON requires them, and numbers in
ECMAScript form (an integral value without fraction or exponent).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["canonical_json", "card_signing_payload"]


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("JCS has no form for NaN or infinity")
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:  # ECMAScript writes 1e+21, 1.5e-7
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if not isinstance(key, str):
                raise TypeError("JSON member names are strings")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif value is True or value is False or value is None or isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    else:
        raise TypeError(f"not JSON: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 serialisation of `value`, as UTF-8."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def card_signing_payload(card: dict[str, Any]) -> bytes:
    """What a card signature signs: the card without `signatures`, canonical."""
    return canonical_json({k: v for k, v in card.items() if k != "signatures"})
