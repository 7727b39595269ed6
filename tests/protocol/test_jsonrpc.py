"""JSON-RPC 2.0 envelope parsing, response assembly and validation messages."""

from __future__ import annotations

import json

import pydantic
import pytest

from protocol.errors import MethodNotFoundError, TaskNotFoundError
from protocol.jsonrpc import (
    ParsedPayload,
    Request,
    assemble_batch,
    error_response,
    format_validation_error,
    invalid_params,
    parse_payload,
    success_response,
)
from protocol.models import SendMessageRequest


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def call(method: str = "GetTask", id: object = 1, **extra: object) -> dict:
    return {"jsonrpc": "2.0", "method": method, "id": id, "params": {"id": "t"}, **extra}


def code_of(item: object) -> int:
    assert isinstance(item, dict), item
    return item["error"]["code"]


# --- single requests -------------------------------------------------------


def test_single_request() -> None:
    parsed = parse_payload(body(call()))
    assert parsed == ParsedPayload(False, (Request("GetTask", {"id": "t"}, 1, False),))


@pytest.mark.parametrize("id_", ["abc", "", 0, 7, -3, 1.5, None])
def test_valid_id_types(id_: object) -> None:
    [req] = parse_payload(body(call(id=id_))).items
    assert isinstance(req, Request)
    assert req.id == id_ and type(req.id) is type(id_)
    assert req.is_notification is False


def test_id_null_is_not_a_notification() -> None:
    [req] = parse_payload(b'{"jsonrpc":"2.0","method":"m","id":null}').items
    assert req == Request("m", {}, None, False)


def test_notification() -> None:
    parsed = parse_payload(b'{"jsonrpc":"2.0","method":"m","params":{"a":1}}')
    [req] = parsed.items
    assert req == Request("m", {"a": 1}, None, True)
    assert parsed.response_body([None]) is None


@pytest.mark.parametrize("params", [None, "absent"])
def test_missing_or_null_params_are_empty(params: object) -> None:
    obj = {"jsonrpc": "2.0", "method": "m", "id": 1}
    if params != "absent":
        obj["params"] = params
    [req] = parse_payload(body(obj)).items
    assert req.params == {}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"jsonrpc": "2.0",}', b"\xff\xfe\x00garbage", b"[NaN]",
     b'{"id": Infinity}', b"[" * 100_000],
)
def test_parse_error(raw: bytes) -> None:
    parsed = parse_payload(raw)
    assert parsed.is_batch is False
    [err] = parsed.items
    assert err["jsonrpc"] == "2.0" and err["id"] is None
    assert err["error"]["code"] == -32700
    assert parsed.response_body([err]) is err


def test_invalid_utf8_is_parse_error() -> None:
    [err] = parse_payload(b'{"jsonrpc":"2.0","method":"\xc3("}').items
    assert code_of(err) == -32700


def test_accepts_str_and_bom() -> None:
    assert parse_payload(json.dumps(call())).items[0] == Request("GetTask", {"id": "t"}, 1)
    raw = b"\xef\xbb\xbf" + body(call())
    assert isinstance(parse_payload(raw).items[0], Request)


@pytest.mark.parametrize("raw", [b"1", b'"x"', b"null", b"true"])
def test_top_level_scalar_is_invalid_request(raw: bytes) -> None:
    parsed = parse_payload(raw)
    assert parsed.is_batch is False
    [err] = parsed.items
    assert code_of(err) == -32600 and err["id"] is None


@pytest.mark.parametrize(
    ("obj", "expected_id", "needle"),
    [
        ({"method": "m", "id": 4}, 4, "jsonrpc"),
        ({"jsonrpc": "1.0", "method": "m", "id": 4}, 4, "jsonrpc"),
        ({"jsonrpc": 2.0, "method": "m", "id": "x"}, "x", "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 4}, 4, "method"),
        ({"jsonrpc": "2.0", "method": "", "id": 4}, 4, "method"),
        ({"jsonrpc": "2.0", "method": 5, "id": 4}, 4, "method"),
        ({"jsonrpc": "2.0", "method": "m", "params": "bar", "id": 4}, 4, "params"),
        ({"jsonrpc": "2.0", "method": "m", "params": 3}, None, "params"),
        # invalid ids are never echoed back
        ({"jsonrpc": "2.0", "method": "m", "id": {"a": 1}}, None, "id"),
        ({"jsonrpc": "2.0", "method": "m", "id": [1]}, None, "id"),
        ({"jsonrpc": "2.0", "method": "m", "id": True}, None, "id"),
        # an invalid call is answered even without an id
        ({"jsonrpc": "2.0", "method": 1}, None, "method"),
    ],
)
def test_invalid_request(obj: dict, expected_id: object, needle: str) -> None:
    [err] = parse_payload(body(obj)).items
    assert code_of(err) == -32600
    assert err["id"] == expected_id
    assert needle in err["error"]["message"]


def test_array_params_is_invalid_params() -> None:
    [err] = parse_payload(b'{"jsonrpc":"2.0","method":"m","params":[1,2],"id":9}').items
    assert code_of(err) == -32602 and err["id"] == 9
    assert "params" in err["error"]["message"]


def test_array_params_on_notification_gets_no_response() -> None:
    parsed = parse_payload(b'{"jsonrpc":"2.0","method":"m","params":[1]}')
    assert parsed.items == ()
    assert parsed.response_body([]) is None


def test_error_data_follows_version() -> None:
    [err10] = parse_payload(b"{", version="1.0").items
    assert err10["error"]["data"][0]["reason"] == "PARSE_ERROR"
    [err03] = parse_payload(b"{", version="0.3").items
    assert "data" not in err03["error"]


# --- batches ---------------------------------------------------------------


def test_empty_batch() -> None:
    parsed = parse_payload(b"[]")
    [err] = parsed.items
    assert code_of(err) == -32600 and err["id"] is None
    assert "empty" in err["error"]["message"]
    assert parsed.response_body(list(parsed.items)) == err  # a single object (section 6)


def test_batch_mixed_keeps_order() -> None:
    raw = body(
        [
            call(id=1),
            {"jsonrpc": "2.0", "method": "notify"},
            1,
            {"jsonrpc": "2.0", "method": 1, "id": "bad"},
            call(id="two"),
            {"jsonrpc": "2.0", "method": "m", "params": [1], "id": 3},
            {"jsonrpc": "2.0", "method": "m", "params": [1]},
        ]
    )
    parsed = parse_payload(raw)
    assert parsed.is_batch is True
    kinds = [
        (it.method, it.id, it.is_notification) if isinstance(it, Request)
        else (it["error"]["code"], it["id"])
        for it in parsed.items
    ]
    assert kinds == [
        ("GetTask", 1, False),
        ("notify", None, True),
        (-32600, None),
        (-32600, "bad"),
        ("GetTask", "two", False),
        (-32602, 3),
    ]

    # the server runs the requests and hands back one response per item
    def run(item: Request | dict) -> dict | None:
        if isinstance(item, dict):
            return item
        if item.is_notification:
            return None
        if item.id == 1:
            return success_response(item.id, {"ok": True})
        return error_response(item.id, TaskNotFoundError(), version="1.0")

    out = parsed.response_body([run(it) for it in parsed.items])
    assert isinstance(out, list)
    assert [r["id"] for r in out] == [1, None, "bad", "two", 3]
    assert out[0]["result"] == {"ok": True}
    assert out[3]["error"]["code"] == -32001


def test_batch_of_one_is_still_a_batch() -> None:
    parsed = parse_payload(body([call()]))
    assert parsed.is_batch
    out = parsed.response_body([success_response(1, {})])
    assert out == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


def test_all_notifications_batch_has_no_body() -> None:
    parsed = parse_payload(body([{"jsonrpc": "2.0", "method": "a"}] * 3))
    assert all(isinstance(it, Request) and it.is_notification for it in parsed.items)
    assert parsed.response_body([None, None, None]) is None


def test_batch_of_invalid_scalars() -> None:
    # the spec's own example: [1,2,3] -> three invalid-request errors
    parsed = parse_payload(b"[1,2,3]")
    assert [code_of(it) for it in parsed.items] == [-32600] * 3
    assert [it["id"] for it in parsed.items] == [None] * 3


# --- responses -------------------------------------------------------------


def test_success_response() -> None:
    assert success_response("a", {"x": 1}) == {"jsonrpc": "2.0", "id": "a", "result": {"x": 1}}
    assert success_response(None, None) == {"jsonrpc": "2.0", "id": None, "result": None}


def test_error_response_versions() -> None:
    err = MethodNotFoundError("Method not found: Foo")
    r10 = error_response(7, err, version="1.0")
    assert r10["jsonrpc"] == "2.0" and r10["id"] == 7
    assert r10["error"]["code"] == -32601
    assert r10["error"]["message"] == "Method not found: Foo"
    assert r10["error"]["data"] == [err.error_info()]
    r03 = error_response(7, err, version="0.3")
    assert r03["error"] == {"code": -32601, "message": "Method not found: Foo"}


def test_assemble_batch() -> None:
    a, b = success_response(1, 1), success_response(2, 2)
    assert assemble_batch([a, None, b]) == [a, b]
    assert assemble_batch([None, None]) is None
    assert assemble_batch([]) is None


# --- validation messages ---------------------------------------------------


def validation_error(params: object) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as info:
        SendMessageRequest.model_validate(params)
    return info.value


def good_message(**over: object) -> dict:
    return {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}], **over}


def test_message_names_part_index() -> None:
    exc = validation_error({"message": good_message(parts=[{"text": "a"}, {}])})
    assert format_validation_error(exc) == (
        "params.message.parts[1]: a part needs exactly one of text, raw, url or data"
    )


def test_message_missing_field_uses_alias() -> None:
    msg = good_message()
    del msg["messageId"]
    exc = validation_error({"message": msg})
    assert format_validation_error(exc) == "params.message.messageId: field required"


def test_message_joins_several_errors() -> None:
    exc = validation_error(
        {
            "message": {"messageId": "", "role": "nope", "parts": [{"text": 1}]},
            "configuration": {"historyLength": -1},
        }
    )
    parts = format_validation_error(exc).split("; ")
    assert parts[0].startswith("params.message.messageId: string should have at least 1")
    assert parts[1].startswith("params.message.role: input should be")
    assert parts[2] == "params.message.parts[0].text: input should be a valid string"
    assert parts[3].startswith("params.configuration.historyLength: input should be greater")
    assert len(parts) == 4


def test_message_caps_error_count() -> None:
    exc = validation_error({"message": good_message(parts=[{}] * 8)})
    parts = format_validation_error(exc).split("; ")
    assert len(parts) == 6
    assert parts[4].startswith("params.message.parts[4]: ")
    assert parts[5] == "and 3 more"


def test_message_root_and_prefix() -> None:
    exc = validation_error([])
    assert format_validation_error(exc).startswith("params: input should be a valid dictionary")
    assert format_validation_error(exc, prefix="").startswith("body: input should be")
    exc = validation_error({})
    assert format_validation_error(exc, prefix="") == "message: field required"


def test_invalid_params_error() -> None:
    exc = validation_error({})
    err = invalid_params(exc)
    assert err.code == -32602
    assert err.message == "params.message: field required"
    r = error_response(3, err, version="1.0")
    assert r["error"]["message"] == "params.message: field required"


# --- the fast decoder reads every body as the stdlib decoder does -------------------


@pytest.mark.parametrize("raw", [
    b'{"jsonrpc":"2.0","id":12345678901234567890123,"method":"GetTask","params":{"id":"t"}}',
    b'{"jsonrpc":"2.0","id":-9999999999999999999,"method":"GetTask","params":{"id":"t"}}',
    b'{"jsonrpc":"2.0","id":18446744073709551615,"method":"GetTask","params":{"id":"t"}}',
    b'{"jsonrpc":"2.0","id":1.5e-7,"method":"GetTask","params":{"id":"t","n":-0.0}}',
    b'{"jsonrpc":"2.0","id":"\\u00e9\\ud83d\\ude00","method":"GetTask","params":{"id":"\\ud800"}}',
    b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t"}}',
    b'{"jsonrpc":"2.0","id":1,"id":2,"method":"GetTask","params":{"id":"t","x":1e400}}',
])
def test_values_as_the_stdlib_decoder_reads_them(raw: bytes) -> None:
    """Integers beyond 64 bits stay exact integers (orjson would make them floats),
    lone surrogates, a BOM and huge exponents decode as they always did."""
    expected = json.loads(raw.decode("utf-8-sig"))
    item = parse_payload(raw).items[0]
    assert isinstance(item, Request)
    assert item.id == expected["id"] and type(item.id) is type(expected["id"])
    assert json.dumps(item.params) == json.dumps(expected["params"])


@pytest.mark.parametrize("raw", [b"[" * 5000 + b"]" * 5000, b'{"a":NaN}', b"\xff{}", b"{"])
def test_what_the_stdlib_decoder_refuses_is_a_parse_error(raw: bytes) -> None:
    (err,) = parse_payload(raw).items
    assert isinstance(err, dict) and err["error"]["code"] == -32700
