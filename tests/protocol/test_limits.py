"""protocol.limits: what one request may hold, checked on decoded JSON (sans-IO)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.errors import InvalidParamsError
from protocol.limits import DEPTH_CEILING, Limits


def nested(levels: int) -> Any:
    """A value holding `levels` containers, one inside the other."""
    value: Any = 0
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


def refusal(limits: Limits, root: Any, **kw: Any) -> InvalidParamsError:
    with pytest.raises(InvalidParamsError) as exc:
        limits.check(root, **kw)
    assert exc.value.code == -32602
    return exc.value


def test_depth_counts_the_root_as_level_one() -> None:
    limits = Limits(max_depth=5)
    assert limits.check({"x": nested(4)}) == 0  # root + 4 = 5 levels
    err = refusal(limits, {"x": nested(5)})
    assert err.message == ("params.x[0].a[0].a: nested more than 5 levels deep, counting "
                           "params as level 1 (limit max-depth = 5)")
    assert err.metadata == {"field": "params.x[0].a[0].a", "limit": "max-depth", "max": "5"}


def test_a_deep_value_is_named_by_the_field_it_hangs_from() -> None:
    limits = Limits(max_depth=10)
    for root, field in [
        ({"message": {"parts": [{"data": nested(50)}]}}, "params.message.parts[0].data"),
        ({"message": {"metadata": nested(50)}}, "params.message.metadata"),
        ({"metadata": nested(50)}, "params.metadata"),
        ({"request": {"content": [{"data": {"data": nested(50)}}]}},
         "params.request.content[0].data"),
    ]:
        err = refusal(limits, root)
        assert err.message.startswith(f"{field}: nested more than 10 levels deep"), err.message
        assert err.metadata["field"] == field


def test_a_deep_value_elsewhere_is_named_by_its_first_members() -> None:
    err = refusal(Limits(max_depth=20), {"x": {"a": nested(40)}}, where="")
    assert err.metadata["field"] == "x.a.a[0].a[0].a[0].a[0].a[0]…"
    assert "counting the body as level 1" in err.message


def test_parts_are_counted_per_message_and_exempt_from_max_items() -> None:
    limits = Limits(max_parts=4, max_items=2)
    parts = [{"text": "x"}] * 4
    assert limits.check({"message": {"parts": parts}}) == 4
    assert limits.check({"request": {"content": parts}}, where="") == 4
    err = refusal(limits, {"message": {"parts": [*parts, {"text": "y"}]}})
    assert err.message == ("params.message.parts: 5 parts, more than the 4 allowed per "
                           "message (limit max-parts = 4)")
    err = refusal(limits, {"message": {"content": [{"text": "x"}] * 5}}, where="")
    assert err.metadata["field"] == "message.content"
    # Any other array is held to max_items, a list named "parts" inside data too.
    err = refusal(limits, {"message": {"parts": [{"data": {"parts": [1, 2, 3]}}]}})
    assert err.metadata == {"field": "params.message.parts[0].data.parts",
                            "limit": "max-items", "max": "2"}


def test_the_parts_budget_left_by_earlier_calls() -> None:
    limits = Limits(max_parts=4)
    root = {"message": {"parts": [{"text": "x"}] * 3}}
    assert limits.check(root, parts_left=3) == 3
    err = refusal(limits, root, parts_left=2)
    assert "3 parts, more than the 2 left of the 4 allowed per request" in err.message


def test_strings_and_member_names() -> None:
    limits = Limits(max_string=8)
    assert limits.check({"message": {"parts": [{"text": "x" * 8}]}}) == 1
    err = refusal(limits, {"message": {"parts": [{"text": "x" * 9}]}})
    assert err.message == ("params.message.parts[0].text: a string of 9 characters, longer "
                           "than the 8 allowed (limit max-string = 8)")
    err = refusal(limits, {"metadata": {"k" * 9: 1}})
    assert err.metadata["field"] == "params.metadata"
    assert "a member name of 9 characters" in err.message
    err = refusal(limits, {"metadata": {"list": ["ok", "x" * 9]}})
    assert err.metadata["field"] == "params.metadata.list[1]"


def test_members_and_elements() -> None:
    limits = Limits(max_items=3)
    assert limits.check({"a": 1, "b": [1, 2, 3], "c": {"x": 1}}) == 0
    err = refusal(limits, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert err.message.startswith("params: 4 members, more than the 3 allowed")
    err = refusal(limits, {"b": [1, 2, 3, 4]}, where="")
    assert err.message.startswith("b: 4 elements")


def test_other_json_passes_untouched() -> None:
    limits = Limits()
    for root in [{}, [], "text", 1, None, {"message": "not an object"},
                 {"message": {"parts": "not a list"}}]:
        assert limits.check(root) == 0


@pytest.mark.parametrize(("kw", "why"), [
    ({"max_parts": 0}, "max_parts must be a positive integer"),
    ({"max_string": -1}, "max_string must be a positive integer"),
    ({"max_items": 1.5}, "max_items must be a positive integer"),
    ({"max_depth": DEPTH_CEILING + 1}, f"max_depth must be at most {DEPTH_CEILING}"),
])
def test_limits_are_checked_when_made(kw: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Limits(**kw)


def test_a_string_that_is_not_text_is_refused_naming_its_field() -> None:
    """A lone surrogate (JSON's unpaired ``\\ud800``) cannot be encoded as UTF-8, so a
    task holding one could not be stored: it is the client's error, found here."""
    limits = Limits()
    err = refusal(limits, {"message": {"parts": [{"text": "ok é", "metadata": {"k": "\ud800"}}]}})
    assert err.message.startswith("params.message.parts[0].metadata.k: a string that is not "
                                  "valid Unicode text")
    assert err.metadata == {"field": "params.message.parts[0].metadata.k", "reason": "not-utf8"}
    err = refusal(limits, {"x\udfff": 1}, where="")
    assert err.metadata["field"] == "x\\udfff"  # shown escaped: the error is UTF-8 itself
    err.message.encode("utf-8")
    # text outside ASCII passes, a pair of JSON surrogate escapes too (the decoder
    # joins them into one character; two lone ones in a Python str are not text)
    assert limits.check({"a": ["é", json.loads('"\\ud83d\\ude00"')]}) == 0
    refusal(limits, {"a": "\ud83d\ude00"})
