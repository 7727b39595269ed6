"""list_dir, glob, grep: finding things in the workspace without changing it.

Walks start from a directory opened through the workspace and go down with
`os.fwalk`, which never follows a symbolic link into a directory, so a link
pointing outside cannot lead a walk out. `.git` directories are skipped, and a
walk stops after `ToolLimits.max_files_scanned` entries.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from runtime.tools.base import BaseTool, ToolError, ToolResult
from runtime.tools.output import HeadBuffer
from runtime.tools.workspace import Workspace

__all__ = ["Glob", "Grep", "ListDir", "match_path"]

SKIP_DIRS = frozenset({".git"})
MAX_LINE_CHARS = 300
_SNIFF = 8192

_PATH_PARAM = {
    "type": "string",
    "description": "Directory to start from, relative to the workspace root (default '.')",
}


def _entries_marker(dropped: int) -> str:
    return f"[truncated {dropped} entries]"


def match_path(pattern: str, path: str) -> bool:
    """Glob match of a relative path, segment by segment: `*`, `?`, `[...]` stay inside one
    segment; a `**` segment matches any number of segments, none included."""
    pat = tuple(p for p in pattern.split("/") if p)
    parts = tuple(p for p in path.split("/") if p)
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(pat):
                memo[i, j] = j == len(parts)
            elif pat[i] == "**":
                memo[i, j] = go(i + 1, j) or (j < len(parts) and go(i, j + 1))
            else:
                memo[i, j] = (j < len(parts) and fnmatchcase(parts[j], pat[i])
                              and go(i + 1, j + 1))
        return memo[i, j]

    return go(0, 0)


def _walk(dir_fd: int, limit: int, max_depth: int | None = None
          ) -> Iterator[tuple[PurePosixPath, list[str], list[str], int]]:
    """(relative dir, sorted subdirs, sorted files, dir fd) under `dir_fd`; stops after `limit`
    entries by raising _WalkLimit."""
    seen = 0
    for top, dirs, files, fd in os.fwalk(".", dir_fd=dir_fd):
        rel = PurePosixPath(top)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        names = list(dirs)
        if max_depth is not None and len(rel.parts) >= max_depth:
            dirs[:] = []  # listed, not entered
        seen += len(names) + len(files)
        yield rel, names, sorted(files), fd
        if seen >= limit:
            raise _WalkLimit(seen)


class _WalkLimit(Exception):
    def __init__(self, seen: int) -> None:
        self.seen = seen


def _limit_note(seen: int) -> str:
    return (f"[stopped after visiting {seen} entries; start from a deeper path or use a "
            "narrower pattern]")


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
        note = ""
        fd = ws.open_fd(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for rel, dirs, files, _ in _walk(fd, self.limits.max_files_scanned, depth):
                for name, suffix in [*((d, "/") for d in dirs), *((f, "") for f in files)]:
                    if match_path(pattern, (rel / name).as_posix()):
                        found.append((base / rel / name).as_posix() + suffix)
        except _WalkLimit as stop:
            note = "\n" + _limit_note(stop.seen)
        finally:
            os.close(fd)
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
        try:
            regex = re.compile(args["pattern"], re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"pattern is not a valid regular expression: {exc}") from None
        return await self.in_thread(
            partial(self._grep, ws, regex, args.get("path", "."), args.get("glob")))

    def _grep(self, ws: Workspace, regex: re.Pattern[str], path: str, glob: str | None
              ) -> ToolResult:
        target = ws.resolve(path)
        shown = ws.display(target)
        out = HeadBuffer(self.limits.grep_max_bytes)
        note = ""
        fd = ws.open_fd(target, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                self._grep_fd(os.dup(fd), shown, regex, out)
            else:
                base = PurePosixPath(shown)
                try:
                    for rel, _, files, dfd in _walk(fd, self.limits.max_files_scanned):
                        for name in files:
                            if glob and not _glob_ok(glob, rel / name):
                                continue
                            try:
                                ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                              | os.O_CLOEXEC, dir_fd=dfd)
                            except OSError:
                                continue  # a symlink (ELOOP), unreadable, or gone meanwhile
                            self._grep_fd(ffd, (base / rel / name).as_posix(), regex, out)
                except _WalkLimit as stop:
                    note = "\n" + _limit_note(stop.seen)
        finally:
            os.close(fd)
        text = out.text() if out.dropped else out.text().rstrip("\n")
        if text:
            return ToolResult(text + note)
        where = f" in files matching {glob!r}" if glob else ""
        return ToolResult(f"no matches for {regex.pattern!r} under {shown}{where}{note}")

    @staticmethod
    def _grep_fd(fd: int, shown: str, regex: re.Pattern[str], out: HeadBuffer) -> None:
        """Matching lines of one open file into `out` (takes ownership of `fd`)."""
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or b"\0" in f.read(_SNIFF):
                return
            f.seek(0)
            for lineno, raw in enumerate(f, 1):
                line = raw.decode(errors="replace").rstrip("\r\n")
                if regex.search(line):
                    if len(line) > MAX_LINE_CHARS:
                        line = line[:MAX_LINE_CHARS] + "..."
                    entry = f"{shown}:{lineno}:{line}\n"
                    if out.full:
                        out.dropped += len(entry.encode())
                    else:
                        out.write(entry)


def _glob_ok(glob: str, rel: PurePosixPath) -> bool:
    if "/" in glob:
        return match_path(glob, rel.as_posix())
    return fnmatchcase(rel.name, glob)
