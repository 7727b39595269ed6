"""SSE framing: encoder output, and the incremental decoder under every split."""

from __future__ import annotations

import pytest

from protocol.sse import SSEDecoder, SSEEvent, encode_comment, encode_event


def decode_all(*chunks: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    dec.close()
    return out


# --- encoder ---------------------------------------------------------------


def test_encode_simple() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'


def test_encode_all_fields() -> None:
    frame = encode_event("x", event="update", id="42", retry=1500)
    assert frame == b"event: update\nid: 42\nretry: 1500\ndata: x\n\n"


def test_encode_multiline_data() -> None:
    assert encode_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("a\n") == b"data: a\ndata: \n\n"
    assert encode_event("") == b"data: \n\n"


def test_encode_utf8() -> None:
    assert encode_event("héllo ✓") == "data: héllo ✓\n\n".encode()


@pytest.mark.parametrize(
    "kwargs", [{"event": "a\nb"}, {"id": "1\r"}, {"id": "a\0b"}, {"retry": -1}]
)
def test_encode_rejects_bad_fields(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        encode_event("x", **kwargs)


def test_encode_comment() -> None:
    assert encode_comment() == b":\n\n"
    assert encode_comment("keep-alive") == b": keep-alive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"


# --- decoder: round trip under every split ---------------------------------

EVENTS = [
    SSEEvent('{"result":{"task":{"id":"t1"}}}', "message", "1", None),
    SSEEvent("line one\nline two\n\nafter blank", "update", "2", None),
    SSEEvent("ünïcödé ✓ 𝄞 日本", "message", "3", 3000),
    SSEEvent("", "message", "3", 3000),
    SSEEvent(" leading space", "done", "4", 3000),
]


def stream_bytes() -> bytes:
    return (
        encode_event(EVENTS[0].data, id="1")
        + encode_comment("keep-alive")
        + encode_event(EVENTS[1].data, event="update", id="2")
        + encode_event(EVENTS[2].data, id="3", retry=3000)
        + encode_event("")
        + encode_comment()
        + encode_event(EVENTS[4].data, event="done", id="4")
    )


def test_round_trip_whole() -> None:
    dec = SSEDecoder()
    assert dec.feed(stream_bytes()) == EVENTS
    assert dec.comments == 2
    assert dec.last_event_id == "4"
    assert dec.retry == 3000
    assert dec.close() is False


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_round_trip_every_split(newline: bytes) -> None:
    raw = stream_bytes().replace(b"\n", newline)
    for i in range(len(raw) + 1):
        assert decode_all(raw[:i], raw[i:]) == EVENTS, (newline, i)


def test_round_trip_every_two_splits_crlf() -> None:
    raw = stream_bytes().replace(b"\n", b"\r\n")[:120]  # keep it quadratic but quick
    expected = decode_all(raw)
    for i in range(len(raw) + 1):
        for j in range(i, len(raw) + 1):
            assert decode_all(raw[:i], raw[i:j], raw[j:]) == expected, (i, j)


def test_byte_at_a_time() -> None:
    raw = b"\xef\xbb\xbf" + stream_bytes().replace(b"\n", b"\r\n")
    assert decode_all(*(raw[i : i + 1] for i in range(len(raw)))) == EVENTS


def test_utf8_split_mid_character() -> None:
    raw = "data: 𝄞é\n\n".encode()
    for i in range(len(raw) + 1):
        assert decode_all(raw[:i], raw[i:]) == [SSEEvent("𝄞é")]


def test_invalid_utf8_is_replaced() -> None:
    assert decode_all(b"data: a\xffb\n\n") == [SSEEvent("a\ufffdb")]


# --- decoder: line endings and BOM ------------------------------------------


def test_mixed_line_endings() -> None:
    raw = b"data: a\rdata: b\r\ndata: c\n\r\n" + b"data: d\r\r"
    assert decode_all(raw) == [SSEEvent("a\nb\nc"), SSEEvent("d")]


def test_cr_then_lf_in_next_chunk_is_one_line_ending() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []  # the LF completes the CRLF, it is not a blank line
    assert dec.feed(b"\r") == [SSEEvent("a")]
    assert dec.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("b")]


def test_cr_cr_is_a_blank_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\r") == [SSEEvent("a")]


def test_bom_is_stripped_once() -> None:
    bom = b"\xef\xbb\xbf"
    assert decode_all(bom + b"data: x\n\n") == [SSEEvent("x")]
    for i in range(4):  # BOM split across chunks
        assert decode_all((bom + b"data: x\n\n")[:i], (bom + b"data: x\n\n")[i:]) == [
            SSEEvent("x")
        ]
    # a second BOM is part of the field name, which is then unknown
    assert decode_all(bom + bom + b"data: x\n\n") == []
    # a BOM later in the stream is just data
    assert decode_all(b"data: \xef\xbb\xbfx\n\n") == [SSEEvent("\ufeffx")]


def test_short_stream_that_is_not_a_bom() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"\xef") == []
    assert dec.feed(b"x") == []
    assert dec.feed(b"\n") == []
    assert dec.feed(b"data:1\n\n") == [SSEEvent("1")]


# --- decoder: fields ---------------------------------------------------------


def test_comments_are_ignored_and_counted() -> None:
    dec = SSEDecoder()
    assert dec.feed(b": hello\n:\ndata: x\n: inside\n\n") == [SSEEvent("x")]
    assert dec.comments == 3


def test_space_after_colon() -> None:
    raw = b"data:a\n\ndata: b\n\ndata:  c\n\ndata\n\ndata:\n\n"
    assert [e.data for e in decode_all(raw)] == ["a", "b", " c", "", ""]


def test_field_without_colon_and_unknown_fields() -> None:
    raw = b"foo: bar\nevent\ndata: x\nDATA: y\nbogus\n\n"
    assert decode_all(raw) == [SSEEvent("x", "message")]


def test_event_type_resets_between_events() -> None:
    raw = b"event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n"
    assert [(e.event, e.data) for e in decode_all(raw)] == [
        ("a", "1"), ("message", "2"), ("message", "3"),
    ]


def test_id_persists_and_can_be_reset() -> None:
    dec = SSEDecoder()
    raw = (
        b"data: a\n\n"
        b"id: 7\ndata: b\n\n"
        b"data: c\n\n"
        b"id: bad\0id\ndata: d\n\n"
        b"id: 8\n\n"  # no data: not dispatched, but the id takes effect
        b"data: e\n\n"
        b"id\ndata: f\n\n"
    )
    assert [(e.data, e.id) for e in dec.feed(raw)] == [
        ("a", None), ("b", "7"), ("c", "7"), ("d", "7"), ("e", "8"), ("f", ""),
    ]
    assert dec.last_event_id == ""


def test_last_event_id_only_moves_on_dispatch() -> None:
    dec = SSEDecoder()
    dec.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert dec.last_event_id == "1"
    assert dec.close() is True  # cut mid-event: event 2 is dropped


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"retry: 1000", 1000), (b"retry:0", 0), (b"retry: 10x", None), (b"retry: -5", None),
     (b"retry: 1.5", None), (b"retry:", None), (b"retry: \xd9\xa3", None),
     (b"retry:  100", None)],
)
def test_retry(line: bytes, expected: int | None) -> None:
    dec = SSEDecoder()
    [event] = dec.feed(line + b"\ndata: x\n\n")
    assert event.retry == expected
    assert dec.retry == expected


def test_retry_persists() -> None:
    events = decode_all(b"retry: 5\n\ndata: a\n\nretry: x\ndata: b\n\n")
    assert [e.retry for e in events] == [5, 5]


def test_no_data_no_dispatch() -> None:
    assert decode_all(b"event: x\nid: 1\n\n\n\n: c\n\n") == []


# --- decoder: end of stream ------------------------------------------------


@pytest.mark.parametrize("tail", [b"data: x", b"data: x\n", b"event: e\n", b"dat"])
def test_incomplete_final_event_is_discarded(tail: bytes) -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: done\n\n" + tail) == [SSEEvent("done")]
    assert dec.close() is True


def test_clean_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r\n\r\n") == [SSEEvent("x")]
    assert dec.close() is False
    assert SSEDecoder().close() is False


def test_empty_chunks_are_harmless() -> None:
    assert decode_all(b"", b"data: x\r", b"", b"\n", b"", b"\r\n", b"") == [SSEEvent("x")]
