"""The output buffers behind the caps: exact counts, whole characters, bounded memory."""

from __future__ import annotations

from runtime.tools import HeadBuffer, HeadTailBuffer, truncated_marker


def test_head_buffer() -> None:
    buf = HeadBuffer(10)
    buf.write("12345")
    buf.write(b"67890abc")
    buf.write("def")
    assert buf.full and buf.dropped == 6
    assert buf.text() == "1234567890\n[truncated 6 bytes]"
    small = HeadBuffer(10)
    small.write("short\n")
    assert not small.full and small.text() == "short\n"


def test_head_buffer_keeps_whole_characters() -> None:
    buf = HeadBuffer(5)
    buf.write("aé€x")  # 1 + 2 + 3 + 1 bytes: the euro sign does not fit whole
    assert buf.text() == "aé\n[truncated 4 bytes]"
    buf.write("é")  # nothing more goes in, not even a short character
    assert buf.dropped == 6


def test_head_tail_buffer() -> None:
    buf = HeadTailBuffer(10)
    for i in range(1000):
        buf.write(f"{i:04d}")
    assert len(buf._tail) <= 2 * 5 + 4096 + 4  # bounded memory, not 4000 bytes kept
    assert buf.dropped == 4000 - 10
    assert buf.text() == "00000\n" + truncated_marker(3990) + "\n80999"
    whole = HeadTailBuffer(10)
    whole.write("0123456789")
    assert whole.text() == "0123456789" and whole.dropped == 0


def test_head_tail_buffer_keeps_whole_characters() -> None:
    buf = HeadTailBuffer(6)
    buf.write("ab" + "x" * 20 + "€€")
    assert buf.text() == "abx\n[truncated 22 bytes]\n€"
