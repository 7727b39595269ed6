"""read_file, write_file, edit_file: behaviour and the errors a model can act on."""

from __future__ import annotations

import os

import pytest

from runtime.tools import EditFile, ReadFile, ToolLimits, Workspace, WriteFile
from tests.tools.conftest import call

LINES = "".join(f"line {i}\n" for i in range(1, 11))


async def test_read_whole_file(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("héllo\nworld\n")
    result = await call(ReadFile(), {"path": "a.txt"}, ws)
    assert result.output == "héllo\nworld\n" and not result.is_error
    (ws.root / "empty").write_text("")
    assert (await call(ReadFile(), {"path": "empty"}, ws)).output == "(empty is empty)"


@pytest.mark.parametrize(("args", "expected"), [
    ({"offset": 3, "limit": 2}, "line 3\nline 4\n[lines 3-4 of f.txt; the file continues]"),
    ({"offset": 9}, "line 9\nline 10\n[lines 9-10 of f.txt; end of file]"),
    ({"limit": 1}, "line 1\n[lines 1-1 of f.txt; the file continues]"),
    ({"offset": 10, "limit": 5}, "line 10\n[lines 10-10 of f.txt; end of file]"),
])
async def test_read_line_range(ws: Workspace, args: dict[str, int], expected: str) -> None:
    (ws.root / "f.txt").write_text(LINES)
    assert (await call(ReadFile(), {"path": "f.txt", **args}, ws)).output == expected


async def test_read_is_capped_with_the_exact_count(ws: Workspace) -> None:
    (ws.root / "big.txt").write_text("x" * 1000)
    tool = ReadFile(ToolLimits(read_max_bytes=100))
    result = await call(tool, {"path": "big.txt"}, ws)
    assert result.output == ("x" * 100 + "\n[truncated 900 bytes]; use offset and limit to "
                             "read the rest")
    (ws.root / "lines.txt").write_text("abcdefghi\n" * 30)
    result = await call(tool, {"path": "lines.txt", "offset": 2, "limit": 20}, ws)
    assert result.output == ("abcdefghi\n" * 10 + "[truncated 100 bytes]; use offset and limit "
                             "to read the rest\n[lines 2-21 of lines.txt; the file continues]")


async def test_read_cap_does_not_split_a_character(ws: Workspace) -> None:
    (ws.root / "u.txt").write_text("é" * 10)  # 2 bytes each
    result = await call(ReadFile(ToolLimits(read_max_bytes=5)), {"path": "u.txt"}, ws)
    assert result.output.startswith("éé\n[truncated 16 bytes]")


@pytest.mark.parametrize(("setup", "path", "message"), [
    ("none", "missing.txt", "read_file: 'missing.txt' does not exist (list_dir or glob show "
                            "what is there)"),
    ("dir", "d", "read_file: 'd' is a directory (list_dir shows its entries)"),
    ("binary", "bin", "read_file: 'bin' looks like a binary file (5 bytes); read_file shows "
                      "text files only"),
    ("fifo", "pipe", "read_file: 'pipe' is not a regular file"),
    ("file-parent", "f.txt/x", "read_file: 'f.txt' is not a directory"),
    ("range", "f.txt", "read_file: offset 11 is past the end of 'f.txt' (10 lines)"),
])
async def test_read_errors(ws: Workspace, setup: str, path: str, message: str) -> None:
    (ws.root / "d").mkdir()
    (ws.root / "bin").write_bytes(b"ab\0cd")
    (ws.root / "f.txt").write_text(LINES)
    os.mkfifo(ws.root / "pipe")  # must not block the read
    args = {"path": path, "offset": 11} if setup == "range" else {"path": path}
    result = await call(ReadFile(), args, ws)
    assert result.is_error and result.output == message


async def test_write_creates_parents_and_overwrites(ws: Workspace) -> None:
    result = await call(WriteFile(), {"path": "a/b/c.txt", "content": "héllo"}, ws)
    assert result.output == "wrote 6 bytes to a/b/c.txt (new file)" and not result.is_error
    assert (ws.root / "a" / "b" / "c.txt").read_text() == "héllo"
    (ws.root / "a" / "b" / "c.txt").chmod(0o640)
    result = await call(WriteFile(), {"path": "a/b/c.txt", "content": "x"}, ws)
    assert result.output == "wrote 1 bytes to a/b/c.txt"
    assert (ws.root / "a" / "b" / "c.txt").read_text() == "x"
    assert (ws.root / "a" / "b" / "c.txt").stat().st_mode & 0o777 == 0o640
    result = await call(WriteFile(), {"path": str(ws.root / "abs.txt"), "content": ""}, ws)
    assert result.output == "wrote 0 bytes to abs.txt (new file)"


@pytest.mark.parametrize(("path", "message"), [
    (".", "write_file: '.' is a directory"),
    ("d", "write_file: 'd' is a directory (list_dir shows its entries)"),
    ("f.txt/x", "write_file: 'f.txt' is not a directory"),
])
async def test_write_errors(ws: Workspace, path: str, message: str) -> None:
    (ws.root / "d").mkdir()
    (ws.root / "f.txt").write_text("keep")
    result = await call(WriteFile(), {"path": path, "content": "x"}, ws)
    assert result.is_error and result.output == message
    assert (ws.root / "f.txt").read_text() == "keep"


async def test_edit_replaces_a_unique_passage(ws: Workspace) -> None:
    (ws.root / "f.py").write_text("def f():\n    return 1\n\ndef g():\n    return 1\n")
    args = {"path": "f.py", "old_string": "def g():\n    return 1", "new_string": "def g():\n"
            "    return 2"}
    result = await call(EditFile(), args, ws)
    assert result.output == "replaced 1 occurrence in f.py at line 4" and not result.is_error
    assert (ws.root / "f.py").read_text() == "def f():\n    return 1\n\ndef g():\n    return 2\n"


async def test_edit_replace_all_and_shrinking(ws: Workspace) -> None:
    (ws.root / "f.txt").write_text("aaa bbb aaa bbb aaa\n")
    args = {"path": "f.txt", "old_string": "aaa ", "new_string": "", "replace_all": True}
    result = await call(EditFile(), args, ws)
    assert result.output == "replaced 2 occurrences in f.txt"
    assert (ws.root / "f.txt").read_text() == "bbb bbb aaa\n"  # truncated, no stale tail


@pytest.mark.parametrize(("old", "new", "message"), [
    ("zzz", "y", "edit_file: old_string was not found in 'f.txt'; it must match the file "
                 "exactly, including whitespace and indentation (read_file shows the current "
                 "text)"),
    ("x = 1", "x = 2", "edit_file: old_string occurs 3 times in 'f.txt' (lines 1, 4, 5); "
                       "include more surrounding text to make it unique, or set replace_all "
                       "to true"),
    ("def  f():\n  pass", "y", "A passage that differs only in whitespace exists"),
    ("", "y", "edit_file: old_string is empty; to create or overwrite a file, use write_file"),
    ("same", "same", "edit_file: old_string and new_string are the same; there is nothing to "
                     "change"),
])
async def test_edit_errors_say_what_to_do(ws: Workspace, old: str, new: str,
                                          message: str) -> None:
    content = "x = 1\ndef f():\n    pass\nx = 1\nx = 1\n"
    (ws.root / "f.txt").write_text(content)
    result = await call(EditFile(), {"path": "f.txt", "old_string": old, "new_string": new}, ws)
    assert result.is_error and message in result.output
    assert (ws.root / "f.txt").read_text() == content


async def test_edit_crlf_hint_and_non_text(ws: Workspace) -> None:
    (ws.root / "w.txt").write_bytes(b"one\r\ntwo\r\n")
    args = {"path": "w.txt", "old_string": "one\ntwo", "new_string": "x"}
    result = await call(EditFile(), args, ws)
    assert result.is_error and "CRLF line endings" in result.output
    (ws.root / "bin").write_bytes(b"\xff\xfe\x00")
    result = await call(EditFile(), {"path": "bin", "old_string": "a", "new_string": "b"}, ws)
    assert result.output == "edit_file: 'bin' is not UTF-8 text; edit_file edits text files only"
    result = await call(EditFile(), {"path": "nope", "old_string": "a", "new_string": "b"}, ws)
    assert result.output.startswith("edit_file: 'nope' does not exist")
    (ws.root / "big").write_text("a" * 101)
    result = await call(EditFile(ToolLimits(edit_max_bytes=100)),
                        {"path": "big", "old_string": "a", "new_string": "b"}, ws)
    assert result.output == "edit_file: 'big' is 101 bytes; edit_file edits files up to 100 bytes"
