"""Walking a workspace directory, and grep's search: standard library only.

`Walk` goes down from an open directory without recursion and without following a
symbolic link into a directory: each directory is opened relative to its parent's
descriptor with `O_NOFOLLOW`, one descriptor per level is open at a time, and no
directory deeper than the level limit it is given is entered, however the tree was
made. `.git` directories are skipped.

grep's regular expression runs in a child process (`python -I -S scan.py`, this file),
never in the worker: Python's `re` backtracks, a pattern such as `(a+)+$` can take
exponential time, and a match holds the GIL until it returns, which would stall the
worker's event loop. The worker sends one JSON request on stdin with the descriptor of
the file or directory to search (passed with `pass_fds`), and reads one JSON answer
from stdout; it kills the child at the time limit or when the call is cancelled. So this
module must not import anything outside the standard library.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Any

__all__: list[str] = []  # internal to runtime.tools.search (and its child process)

SKIP_DIRS = frozenset({".git"})
MAX_LINE_CHARS = 300
SNIFF = 8192
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def match_path(pattern: str, path: str) -> bool:
    """Glob match of a relative path, segment by segment: `*`, `?`, `[...]` stay inside one
    segment; a `**` segment matches any number of segments, none included."""
    pat = tuple(p for p in pattern.split("/") if p)
    parts = tuple(p for p in path.split("/") if p)
    # reachable[j]: pattern segments matched so far can end just before parts[j]
    reachable = [True] + [False] * len(parts)
    for seg in pat:
        if seg == "**":
            for j in range(1, len(parts) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j] and fnmatchcase(parts[j], seg)
                                   for j in range(len(parts))]
    return reachable[len(parts)]


def glob_ok(glob: str, rel: PurePosixPath) -> bool:
    """grep's file filter: without '/', the file name at any depth; with '/', the path."""
    if "/" in glob:
        return match_path(glob, rel.as_posix())
    return fnmatchcase(rel.name, glob)


class WalkLimit(Exception):
    """The walk visited its limit of entries."""

    def __init__(self, seen: int) -> None:
        self.seen = seen


class Walk:
    """Top-down walk under an open directory, without recursion.

    Iterating yields `(relative dir, sorted subdirectory names, sorted other names, dir fd)`
    like `os.fwalk` (a link to a directory is listed among the subdirectories, and never
    entered); the caller may prune the subdirectory list in place. A directory `levels`
    below the start or deeper is not entered (`too_deep` counts those that were not);
    `max_depth` prunes silently (glob's pattern depth). After `limit` entries the walk
    raises `WalkLimit`. The caller keeps `dir_fd`; the fds it yields close as the walk moves on.
    """

    def __init__(self, dir_fd: int, limit: int, *, levels: int,
                 max_depth: int | None = None) -> None:
        self.dir_fd = dir_fd
        self.limit = limit
        self.levels = levels
        self.max_depth = max_depth
        self.too_deep = 0

    def _enter(self, depth: int) -> bool:
        """Whether a directory `depth` levels below the start is listed."""
        if self.max_depth is not None and depth > self.max_depth:
            return False
        if depth >= self.levels:
            self.too_deep += 1
            return False
        return True

    def _entered(self, dirs: list[str], depth: int) -> Iterator[str]:
        return (d for d in dirs if self._enter(depth))

    def __iter__(self) -> Iterator[tuple[PurePosixPath, list[str], list[str], int]]:
        seen = 0
        if not self._enter(0):
            return
        frames: list[tuple[PurePosixPath, int, Iterator[str]]] = []
        fd = os.dup(self.dir_fd)
        rel = PurePosixPath(".")
        try:
            while True:
                if fd >= 0:
                    dirs, files = _list(fd)
                    seen += len(dirs) + len(files)
                    yield rel, dirs, files, fd
                    if seen >= self.limit:
                        raise WalkLimit(seen)
                    frames.append((rel, fd, self._entered(dirs, len(rel.parts) + 1)))
                    fd = -1
                if not frames:
                    return
                parent, parent_fd, pending = frames[-1]
                name = next(pending, None)
                if name is None:
                    frames.pop()
                    os.close(parent_fd)
                    continue
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
                except OSError:
                    continue  # a link to a directory (ELOOP/ENOTDIR), or gone meanwhile
                rel = parent / name
        finally:
            if fd >= 0:
                os.close(fd)
            for _, frame_fd, _ in frames:
                os.close(frame_fd)


def _list(fd: int) -> tuple[list[str], list[str]]:
    dirs, files = [], []
    with os.scandir(fd) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                files.append(entry.name)
            elif entry.name not in SKIP_DIRS:
                dirs.append(entry.name)
    return sorted(dirs), sorted(files)


class _Lines:
    """Matching lines, kept up to `max_bytes` (the entry that crosses it whole: the worker's
    buffer cuts it), the size of the rest counted."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, entry: str) -> None:
        n = len(entry.encode(errors="surrogateescape"))
        if self.size >= self.max_bytes:
            self.dropped += n
        else:
            self.parts.append(entry)
            self.size += n


def _grep_fd(fd: int, shown: str, regex: re.Pattern[str], out: _Lines) -> None:
    """Matching lines of one open file into `out` (takes ownership of `fd`). Not a regular
    file, a file with more than one hard link, or a binary file: skipped."""
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or b"\0" in f.read(SNIFF):
            return
        f.seek(0)
        for lineno, raw in enumerate(f, 1):
            line = raw.decode(errors="replace").rstrip("\r\n")
            if regex.search(line):
                if len(line) > MAX_LINE_CHARS:
                    line = line[:MAX_LINE_CHARS] + "..."
                out.add(f"{shown}:{lineno}:{line}\n")


def grep(request: dict[str, Any]) -> dict[str, Any]:
    """Run one search request (see `runtime.tools.search.Grep`); the answer as a dict."""
    try:
        regex = re.compile(request["pattern"], re.IGNORECASE if request["ignore_case"] else 0)
    except re.error as exc:
        return {"error": f"pattern is not a valid regular expression: {exc}"}
    except (RecursionError, OverflowError, MemoryError, ValueError) as exc:
        return {"error": f"pattern is too complex to compile ({type(exc).__name__})"}
    fd: int = request["fd"]
    glob: str | None = request["glob"]
    out = _Lines(request["max_bytes"])
    answer: dict[str, Any] = {"stopped_after": None, "too_deep": 0}
    if not request["is_dir"]:
        _grep_fd(os.dup(fd), request["base"], regex, out)
    else:
        base = PurePosixPath(request["base"])
        walk = Walk(fd, request["max_files"], levels=request["levels"])
        try:
            for rel, _, files, dfd in walk:
                for name in files:
                    if glob and not glob_ok(glob, rel / name):
                        continue
                    try:
                        ffd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
                    except OSError:
                        continue  # a symlink (ELOOP), unreadable, or gone meanwhile
                    _grep_fd(ffd, (base / rel / name).as_posix(), regex, out)
        except WalkLimit as stop:
            answer["stopped_after"] = stop.seen
        answer["too_deep"] = walk.too_deep
    answer.update(text="".join(out.parts), dropped=out.dropped)
    return answer


def _main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(grep(request)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
