"""read_file, write_file, edit_file: one file at a time, inside the workspace."""

from __future__ import annotations

import os
import stat
from functools import partial
from pathlib import Path
from typing import IO, Any

from runtime.tools.base import BaseTool, ToolError, ToolResult
from runtime.tools.output import HeadBuffer
from runtime.tools.workspace import Workspace

__all__ = ["EditFile", "ReadFile", "WriteFile"]

_SNIFF = 8192


def _path_param(what: str) -> dict[str, str]:
    return {"type": "string", "description": f"{what}, relative to the workspace root"}


def _open_regular(ws: Workspace, target: Path, flags: int, mode: str, *,
                  make_parents: bool = False) -> tuple[IO[bytes], os.stat_result]:
    """Open a workspace file (O_NONBLOCK: a FIFO must not block) and check it is a regular
    file before anything is read or written."""
    shown = ws.display(target)
    fd = ws.open_fd(target, flags | os.O_NONBLOCK, make_parents=make_parents)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown!r} is a directory (list_dir shows its entries)")
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"{shown!r} is not a regular file")
        os.set_blocking(fd, True)
        return open(fd, mode), st  # the caller closes it
    except BaseException:
        os.close(fd)
        raise


class ReadFile(BaseTool):
    name = "read_file"
    description = (
        "Read a UTF-8 text file from the workspace. Long files are cut at a size limit with a "
        "'[truncated N bytes]' marker; use offset and limit to read a range of lines.")
    parameters = {
        "type": "object",
        "properties": {
            "path": _path_param("The file to read"),
            "offset": {"type": "integer", "minimum": 1,
                       "description": "First line to read, counting from 1 (default 1)"},
            "limit": {"type": "integer", "minimum": 1,
                      "description": "How many lines to read (default: to the end)"},
        },
        "required": ["path"],
        "additionalProperties": False,
    }
    read_only = True

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        return await self.in_thread(
            partial(self._read, ws, args["path"], args.get("offset"), args.get("limit")))

    def _read(self, ws: Workspace, path: str, offset: int | None, limit: int | None
              ) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        f, st = _open_regular(ws, target, os.O_RDONLY, "rb")
        with f:
            if b"\0" in f.read(_SNIFF):
                raise ToolError(f"{shown!r} looks like a binary file ({st.st_size} bytes); "
                                "read_file shows text files only")
            f.seek(0)
            out = HeadBuffer(self.limits.read_max_bytes)
            if offset is None and limit is None:
                data = f.read(self.limits.read_max_bytes + 4)
                out.write(data)
                out.dropped += max(0, st.st_size - len(data))
                if st.st_size == 0:
                    return ToolResult(f"({shown} is empty)")
                return ToolResult(self._finish(out))
            return ToolResult(self._read_lines(f, out, shown, offset or 1, limit))

    def _read_lines(self, f: IO[bytes], out: HeadBuffer, shown: str, first: int,
                    limit: int | None) -> str:
        last = None if limit is None else first + limit - 1
        lineno = 0
        more = False
        for lineno, line in enumerate(f, 1):
            if lineno < first:
                continue
            if last is not None and lineno > last:
                more = True
                break
            if out.full:
                out.dropped += len(line)
            else:
                out.write(line)
        if lineno < first:
            raise ToolError(f"offset {first} is past the end of {shown!r} ({lineno} lines)")
        end = lineno - 1 if more else lineno
        tail = "the file continues" if more else "end of file"
        text = self._finish(out)
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}[lines {first}-{end} of {shown}; {tail}]"

    @staticmethod
    def _finish(out: HeadBuffer) -> str:
        text = out.text()
        if out.dropped:
            text += "; use offset and limit to read the rest"
        return text


class WriteFile(BaseTool):
    name = "write_file"
    description = (
        "Create or overwrite a file in the workspace with the given content; missing parent "
        "directories are created. To change part of a file, use edit_file.")
    parameters = {
        "type": "object",
        "properties": {
            "path": _path_param("The file to write"),
            "content": {"type": "string", "description": "The complete new content (UTF-8)"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }
    read_only = False

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        return await self.in_thread(partial(self._write, ws, args["path"], args["content"]))

    def _write(self, ws: Workspace, path: str, content: str) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        data = content.encode()
        existed = os.path.lexists(target)  # for the message only
        f, _ = _open_regular(ws, target, os.O_RDWR | os.O_CREAT, "r+b", make_parents=True)
        with f:
            f.truncate(0)
            f.write(data)
        new = "" if existed else " (new file)"
        return ToolResult(f"wrote {len(data)} bytes to {shown}{new}")


class EditFile(BaseTool):
    name = "edit_file"
    description = (
        "Replace an exact passage of a text file with new text. old_string must occur exactly "
        "once (copy it from read_file, with its whitespace and indentation), or set replace_all "
        "to replace every occurrence.")
    parameters = {
        "type": "object",
        "properties": {
            "path": _path_param("The file to edit"),
            "old_string": {"type": "string", "description": "The exact text to replace"},
            "new_string": {"type": "string", "description": "The text to put in its place"},
            "replace_all": {"type": "boolean",
                            "description": "Replace every occurrence (default false)"},
        },
        "required": ["path", "old_string", "new_string"],
        "additionalProperties": False,
    }
    read_only = False

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        old, new = args["old_string"], args["new_string"]
        if not old:
            raise ToolError("old_string is empty; to create or overwrite a file, use write_file")
        if old == new:
            raise ToolError("old_string and new_string are the same; there is nothing to change")
        return await self.in_thread(partial(
            self._edit, ws, args["path"], old, new, args.get("replace_all", False)))

    def _edit(self, ws: Workspace, path: str, old: str, new: str, replace_all: bool
              ) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        f, st = _open_regular(ws, target, os.O_RDWR, "r+b")
        with f:
            if st.st_size > self.limits.edit_max_bytes:
                raise ToolError(f"{shown!r} is {st.st_size} bytes; edit_file edits files up to "
                                f"{self.limits.edit_max_bytes} bytes")
            try:
                text = f.read().decode()
            except UnicodeDecodeError:
                raise ToolError(f"{shown!r} is not UTF-8 text; edit_file edits text files only"
                                ) from None
            count = text.count(old)
            if count == 0:
                raise ToolError(_not_found(text, old, shown))
            first_line = text.count("\n", 0, text.index(old)) + 1
            if count > 1 and not replace_all:
                lines = _lines_of(text, old)
                shown_lines = ", ".join(map(str, lines[:10])) + (", ..." if count > 10 else "")
                raise ToolError(
                    f"old_string occurs {count} times in {shown!r} (lines {shown_lines}); "
                    "include more surrounding text to make it unique, or set replace_all to true")
            f.seek(0)
            f.write(text.replace(old, new).encode() if replace_all
                    else text.replace(old, new, 1).encode())
            f.truncate()
        if count == 1:
            return ToolResult(f"replaced 1 occurrence in {shown} at line {first_line}")
        return ToolResult(f"replaced {count} occurrences in {shown}")


def _lines_of(text: str, needle: str) -> list[int]:
    lines, start = [], 0
    while (i := text.find(needle, start)) != -1:
        lines.append(text.count("\n", 0, i) + 1)
        start = i + len(needle)
    return lines


def _not_found(text: str, old: str, shown: str) -> str:
    msg = (f"old_string was not found in {shown!r}; it must match the file exactly, including "
           "whitespace and indentation (read_file shows the current text)")
    if "\r\n" in text and "\n" in old and old.replace("\n", "\r\n") in text:
        return msg + ". The file has CRLF line endings: write them as \\r\\n in old_string"
    if " ".join(old.split()) and " ".join(old.split()) in " ".join(text.split()):
        return msg + ". A passage that differs only in whitespace exists"
    return msg
