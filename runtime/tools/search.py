"""list_dir, glob, grep: finding things in the workspace without changing it.

Walks (`runtime.tools.scan.Walk`) start from a directory opened through the
workspace and go down without recursion, never following a symbolic link into a
directory, so a link pointing outside cannot lead a walk out. `.git` directories
are skipped, no directory at depth `MAX_PATH_DEPTH` is entered, and a walk stops
after `ToolLimits.max_files_scanned` entries.

grep matches in a child process (see `runtime.tools.scan`) that is killed at
`ToolLimits.grep_timeout` or when the call is cancelled: a pattern that backtracks
for ever costs the worker one process for a bounded time, not its event loop.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from functools import partial
from pathlib import PurePosixPath
from typing import Any

import trio

from runtime.tools import scan
from runtime.tools.base import BaseTool, ToolError, ToolResult
from runtime.tools.output import HeadBuffer
from runtime.tools.scan import Walk, WalkLimit, match_path
from runtime.tools.workspace import MAX_PATH_DEPTH, Workspace

__all__ = ["Glob", "Grep", "ListDir", "match_path"]

_PATH_PARAM = {
    "type": "string",
    "description": "Directory to start from, relative to the workspace root (default '.')",
}


def _entries_marker(dropped: int) -> str:
    return f"[truncated {dropped} entries]"


def _limit_note(seen: int) -> str:
    return (f"[stopped after visiting {seen} entries; start from a deeper path or use a "
            "narrower pattern]")


def _notes(too_deep: int, stopped_after: int | None) -> str:
    note = ""
    if too_deep:
        note += (f"\n[directories deeper than {MAX_PATH_DEPTH} levels were not entered "
                 "(MAX_PATH_DEPTH)]")
    if stopped_after is not None:
        note += "\n" + _limit_note(stopped_after)
    return note


class ListDir(BaseTool):
    name = "list_dir"
    description = (
        "List a workspace directory: subdirectories end with '/', files show their size, "
        "symbolic links show their target.")
    parameters = {
        "type": "object",
        "properties": {"path": {
            "type": "string",
            "description": "The directory, relative to the workspace root (default '.')"}},
        "additionalProperties": False,
    }
    read_only = True

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        return await self.in_thread(partial(self._list, ws, args.get("path", ".")))

    def _list(self, ws: Workspace, path: str) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        fd = ws.open_fd(target, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise ToolError(f"{shown!r} is a file, not a directory (read_file reads it)")
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            lines = []
            for entry in entries[:self.limits.max_entries]:
                if entry.is_symlink():
                    lines.append(f"{entry.name} -> {os.readlink(entry.name, dir_fd=fd)}")
                elif entry.is_dir(follow_symlinks=False):
                    lines.append(f"{entry.name}/")
                else:
                    lines.append(f"{entry.name} ({entry.stat(follow_symlinks=False).st_size} "
                                 "bytes)")
        finally:
            os.close(fd)
        if not entries:
            return ToolResult(f"({shown} is an empty directory)")
        if len(entries) > len(lines):
            lines.append(_entries_marker(len(entries) - len(lines)))
        return ToolResult("\n".join(lines))


class Glob(BaseTool):
    name = "glob"
    description = (
        "Find files and directories by name pattern. '*' and '?' match within one path segment, "
        "'**' matches any number of directories: '*.py' looks in 'path' only, '**/*.py' at any "
        "depth. Results are paths relative to the workspace root, directories ending with '/'.")
    parameters = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Glob pattern, e.g. '**/*.py'"},
            "path": _PATH_PARAM,
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }
    read_only = True

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        pattern = args["pattern"]
        segments = [s for s in pattern.split("/") if s]
        if not segments:
            raise ToolError("pattern is empty; '**/*' matches everything")
        if pattern.startswith("/") or ".." in segments:
            raise ToolError(f"pattern {pattern!r} must be relative to 'path' and cannot "
                            "contain '..'; set 'path' to search elsewhere in the workspace")
        return await self.in_thread(partial(self._glob, ws, pattern, args.get("path", ".")))

    def _glob(self, ws: Workspace, pattern: str, path: str) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        base = PurePosixPath(shown)
        segments = [s for s in pattern.split("/") if s]
        depth = None if "**" in segments else len(segments) - 1
        found: list[str] = []
        stopped = None
        fd = ws.open_fd(target, os.O_RDONLY | os.O_DIRECTORY)
        walk = Walk(fd, self.limits.max_files_scanned,
                    levels=MAX_PATH_DEPTH - ws.depth(target), max_depth=depth)
        try:
            for rel, dirs, files, _ in walk:
                for name, suffix in [*((d, "/") for d in dirs), *((f, "") for f in files)]:
                    if match_path(pattern, (rel / name).as_posix()):
                        found.append((base / rel / name).as_posix() + suffix)
        except WalkLimit as stop:
            stopped = stop.seen
        finally:
            os.close(fd)
        note = _notes(walk.too_deep, stopped)
        if not found:
            return ToolResult(f"no paths match {pattern!r} under {shown}{note}")
        found.sort()
        cap = self.limits.max_entries
        extra = f"\n{_entries_marker(len(found) - cap)}" if len(found) > cap else ""
        return ToolResult("\n".join(found[:cap]) + extra + note)


class Grep(BaseTool):
    name = "grep"
    description = (
        "Search file contents with a regular expression (Python syntax), line by line. Prints "
        "'path:line:text' for each matching line. Binary files and symbolic links are skipped.")
    parameters = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Regular expression to search for"},
            "path": {"type": "string", "description":
                     "File or directory to search, relative to the workspace root (default '.')"},
            "glob": {"type": "string", "description":
                     "Only files matching this pattern: '*.py' matches file names at any depth; "
                     "a pattern with '/' matches the path below 'path'"},
            "ignore_case": {"type": "boolean", "description": "Case-insensitive (default false)"},
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }
    read_only = True

    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        pattern: str = args["pattern"]
        glob: str | None = args.get("glob")
        if not sys.executable:
            raise ToolError("grep needs a Python interpreter to search in, and this process "
                            "has none (sys.executable is empty)")
        fd, is_dir, shown, levels = await trio.to_thread.run_sync(
            self._open, ws, args.get("path", "."))
        request = {
            "fd": fd, "is_dir": is_dir, "base": shown, "levels": levels,
            "pattern": pattern, "ignore_case": bool(args.get("ignore_case")), "glob": glob,
            "max_files": self.limits.max_files_scanned, "max_bytes": self.limits.grep_max_bytes,
        }
        try:
            with trio.move_on_after(self.limits.grep_timeout) as timer:
                done = await trio.run_process(
                    [sys.executable, "-I", "-S", scan.__file__],
                    stdin=json.dumps(request).encode(), capture_stdout=True,
                    capture_stderr=True, check=False, pass_fds=(fd,), deliver_cancel=_kill)
        finally:
            os.close(fd)
        if timer.cancelled_caught:
            raise ToolError(
                f"the search for {pattern!r} was stopped at its time limit of "
                f"{self.limits.grep_timeout:g} s (ToolLimits.grep_timeout); simplify the "
                "pattern (nested repetition such as '(a+)+' can take exponential time) or "
                "narrow 'path' or 'glob'")
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise ToolError(f"the search failed (exit status {done.returncode}): "
                            f"{why[-1] if why else 'no message'}")
        answer = json.loads(done.stdout)
        if "error" in answer:
            raise ToolError(answer["error"])
        out = HeadBuffer(self.limits.grep_max_bytes)
        out.write(answer["text"].encode(errors="surrogateescape"))
        out.dropped += answer["dropped"]
        note = _notes(answer["too_deep"], answer["stopped_after"])
        text = out.text() if out.dropped else out.text().rstrip("\n")
        if text:
            return ToolResult(text + note)
        where = f" in files matching {glob!r}" if glob else ""
        return ToolResult(f"no matches for {pattern!r} under {shown}{where}{note}")

    @staticmethod
    def _open(ws: Workspace, path: str) -> tuple[int, bool, str, int]:
        """The file or directory to search, opened: (fd, is a directory, shown, levels the
        walk may go down)."""
        target = ws.resolve(path)
        fd = ws.open_fd(target, os.O_RDONLY | os.O_NONBLOCK)
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        except BaseException:
            os.close(fd)
            raise
        return fd, is_dir, ws.display(target), MAX_PATH_DEPTH - ws.depth(target)


async def _kill(process: trio.Process) -> None:
    """Cancelled or out of time: the child holds nothing worth a graceful stop."""
    process.kill()
