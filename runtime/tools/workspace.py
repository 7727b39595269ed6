"""Workspace: the one directory a task's file tools may touch.

Every path a model gives is resolved against the workspace root and refused
unless it ends up inside it: `..`, absolute paths elsewhere, and symbolic links
(a link inside the workspace that points out, or a linked parent directory) all
count as escapes. The check is made twice: first on the fully resolved path,
for a message that says what went wrong, then again when the file is opened,
by walking from the root one component at a time with `O_NOFOLLOW` relative to
the parent's file descriptor. A link swapped in between the two (say by a
background process) makes the open fail instead of leading outside.

A regular file with more than one hard link is refused as well: another of its
names may be outside the workspace (`ln /etc/passwd x` needs no symbolic link),
and reading or writing it would reach that file.

Paths are at most `MAX_PATH_DEPTH` levels deep: a deeper path is refused, so no
tool builds a tree that walks or removal would have to recurse into. A deeper tree
made otherwise (run_shell) is not entered by walks, and `Workspace.remove` deletes
it without recursion.

Symbolic links that stay inside the workspace work; the walk follows their
resolved target. Parent directories a write needs are created the same way,
one `mkdir` relative to the parent's descriptor at a time, so they can only
ever be created inside the root.

run_shell is not confined by any of this: it runs with the workspace as its
working directory, and that is all (see docs/tools.md).
"""

from __future__ import annotations

import enum
import errno
import hashlib
import logging
import os
import re
import stat
import threading
import uuid
from pathlib import Path, PurePosixPath

from runtime.tools.errors import ToolError

__all__ = ["MAX_PATH_DEPTH", "Workspace", "WorkspaceCleanup", "WorkspaceError",
           "task_dir_name"]

log = logging.getLogger(__name__)

MAX_PATH_DEPTH = 64
"""The most path components below the workspace root a file tool accepts (`a/b/c.txt` is 3).
Deep enough for any real project (node_modules and Java packages stay far below it); walks
(glob, grep) enter no directory at this depth, so they hold at most this many open
directories."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REMOVE_OPEN_DIRS = 32  # directories open at once while removing; deeper ones are moved up


class WorkspaceError(ToolError):
    """A path that leads outside the workspace, or cannot be opened safely."""


def task_dir_name(task_id: str) -> str:
    """A directory name for a task id: the id itself when it is a plain name, else a slug + hash.

    The hash keeps two ids that slug alike ("a/b", "a_b") in different directories.
    """
    if _SAFE_NAME.fullmatch(task_id):
        return task_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", task_id).strip("._-")[:40]
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:16]
    return f"{slug}-{digest}" if slug else f"task-{digest}"


class WorkspaceCleanup(enum.Enum):
    """What happens to a task's workspace when the task ends."""

    ALWAYS = "always"
    """Removed, however the task ended."""
    KEEP_FAILED = "keep-failed"
    """Removed when the task completed; kept when it failed or was canceled."""
    NEVER = "never"
    """Kept (the operator cleans up)."""

    @classmethod
    def parse(cls, value: str) -> WorkspaceCleanup:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(f"{value!r} is not one of "
                             f"{', '.join(c.value for c in cls)}") from None

    def removes(self, outcome: str) -> bool:
        """Whether a workspace whose task ended `outcome` ("completed", "failed",
        "canceled") goes."""
        return self is WorkspaceCleanup.ALWAYS or (
            self is WorkspaceCleanup.KEEP_FAILED and outcome == "completed")


class Workspace:
    """A task's directory; file tools resolve and open every path through it."""

    def __init__(self, root: Path | str) -> None:
        resolved = Path(root).resolve()
        if not resolved.is_dir():
            raise WorkspaceError(f"workspace root {str(root)!r} is not a directory")
        self.root = resolved

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @classmethod
    def for_task(cls, base_dir: Path | str, task_id: str) -> Workspace:
        """The workspace of one task under `base_dir`, created if needed.

        The same task id always gets the same directory, so a task that continues
        after input-required finds its files again.
        """
        base = Path(base_dir)
        base.mkdir(parents=True, exist_ok=True)
        path = base.resolve() / task_dir_name(task_id)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        if path.is_symlink() or not path.is_dir():
            raise WorkspaceError(f"{str(path)!r} exists and is not a plain directory")
        return cls(path)

    def display(self, path: Path) -> str:
        """A resolved path as the model should see it: relative to the root, "." for the root."""
        rel = path.relative_to(self.root)
        return rel.as_posix() if rel.parts else "."

    def depth(self, path: Path) -> int:
        """How many levels below the root a resolved path lies (0 for the root)."""
        return len(path.relative_to(self.root).parts)

    def resolve(self, path: str) -> Path:
        """The absolute, symlink-free path `path` names inside the workspace, or WorkspaceError.

        Relative paths are taken from the root; an absolute path is accepted only
        if it lies inside the root.
        """
        if not path:
            raise WorkspaceError("the path is empty; use '.' for the workspace root")
        if "\x00" in path:
            raise WorkspaceError("the path contains a NUL character")
        given = Path(path)
        candidate = given if given.is_absolute() else self.root / given
        try:
            real = candidate.resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before 3.13)
            raise WorkspaceError(f"cannot resolve {path!r}: {exc}") from None
        if real == self.root or real.is_relative_to(self.root):
            depth = self.depth(real)
            if depth > MAX_PATH_DEPTH:
                raise WorkspaceError(
                    f"{path!r} is {depth} levels deep; workspace paths may be at most "
                    f"{MAX_PATH_DEPTH} levels deep (MAX_PATH_DEPTH)")
            return real
        if given.is_absolute() and not Path(os.path.normpath(given)).is_relative_to(self.root):
            raise WorkspaceError(
                f"{path!r} is outside the workspace; use a path relative to the workspace root")
        if os.path.normpath(path).split(os.sep)[0] == os.pardir:
            raise WorkspaceError(f"{path!r} leads outside the workspace through '..'")
        raise WorkspaceError(f"{path!r} leads outside the workspace through a symbolic link")

    def open_fd(self, target: Path, flags: int, mode: int = 0o666, *,
                make_parents: bool = False) -> int:
        """Open a path from `resolve` without following any link; the caller closes the fd.

        `make_parents` creates missing directories on the way (for writes).
        """
        if not target.is_relative_to(self.root):
            raise WorkspaceError(f"{str(target)!r} is outside the workspace")
        parts = target.relative_to(self.root).parts
        shown = self.display(target)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, name in enumerate(parts[:-1]):
                parent = fd
                fd = _open_dir(parent, name, make_parents, PurePosixPath(*parts[:i + 1]))
                os.close(parent)
            if not parts:
                if flags & (os.O_WRONLY | os.O_RDWR):
                    raise WorkspaceError("'.' is a directory")
                return os.dup(fd)
            try:
                opened = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                                 dir_fd=fd)
            except OSError as exc:
                raise _explain(exc, shown, directory=bool(flags & os.O_DIRECTORY),
                               at=(fd, parts[-1])) from None
        finally:
            os.close(fd)
        try:
            _refuse_hard_links(opened, shown)
        except BaseException:
            os.close(opened)
            raise
        return opened

    def remove(self) -> None:
        """Delete the workspace directory and everything in it; nothing if it is gone.

        Links are removed, never followed; no recursion and at most a few dozen open
        directories however deep the tree (run_shell can make one deeper than any path
        limit): a directory deeper than that is first moved up into the root. A root
        that is no longer a directory (a link put in its place) raises OSError.
        """
        try:
            parent = os.open(self.root.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            try:
                top = os.open(self.root.name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                return
            try:
                _empty_dir(top)
            finally:
                os.close(top)
            os.rmdir(self.root.name, dir_fd=parent)
        finally:
            os.close(parent)

    def discard(self) -> None:
        """Remove the workspace without waiting for it (an ended task's).

        One rename moves it aside at once (`.removed-<name>-<random>`: the task id's
        next workspace starts afresh), and a thread of its own deletes the tree with
        `remove`: a big one takes a while, and nothing should wait on it (an event
        loop, a task's end, a test's virtual clock). A failure is logged, never
        raised; a process stopped meanwhile leaves the renamed directory."""
        trash = self.root.with_name(f".removed-{self.root.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.root, trash)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("could not remove a workspace: %s", exc,
                        extra={"workspace": str(self.root)})
            return
        threading.Thread(target=_delete_aside, args=(trash,), daemon=True,
                         name="remove-workspace").start()


def _delete_aside(trash: Path) -> None:
    try:
        if stat.S_ISLNK(os.lstat(trash).st_mode):  # a link put in its place: not followed
            os.unlink(trash)
        else:
            Workspace(trash).remove()
    except (OSError, WorkspaceError) as exc:
        log.warning("could not remove a workspace: %s", exc, extra={"workspace": str(trash)})


def _refuse_hard_links(fd: int, shown: str) -> None:
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise WorkspaceError(
            f"{shown!r} has {st.st_nlink} hard links, so it may also be a file outside the "
            "workspace; file tools neither read nor write it")


def _scan_for_removal(fd: int) -> list[str]:
    """Unlink everything in directory `fd` but its subdirectories; their names."""
    dirs = []
    with os.scandir(fd) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            dirs.append(entry.name)
            continue
        try:
            os.unlink(entry.name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # replaced by a directory meanwhile
            dirs.append(entry.name)
    return dirs


def _empty_dir(top: int) -> None:
    """Delete everything inside the open directory `top`, iteratively (see Workspace.remove)."""
    moved = 0
    frames: list[tuple[int, str, list[str]]] = [(os.dup(top), "", _scan_for_removal(top))]
    try:
        while frames:
            fd, name, pending = frames[-1]
            if not pending:
                pending.extend(_scan_for_removal(fd))  # what appeared (or moved up) meanwhile
            if not pending:
                frames.pop()
                os.close(fd)
                if frames:
                    os.rmdir(name, dir_fd=frames[-1][0])
                continue
            sub = pending.pop()
            if len(frames) >= _REMOVE_OPEN_DIRS:
                moved = _move_up(fd, sub, frames[0][0], moved)
                continue
            try:
                child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                os.unlink(sub, dir_fd=fd)  # a link or file swapped in: removed, not followed
                continue
            frames.append((child, sub, _scan_for_removal(child)))
    finally:
        for fd, _, _ in frames:
            os.close(fd)


def _move_up(fd: int, name: str, top: int, counter: int) -> int:
    """Rename directory `name` in `fd` to a fresh name in `top`; the counter used."""
    while True:
        counter += 1
        try:
            os.rename(name, f".removing-{counter}", src_dir_fd=fd, dst_dir_fd=top)
            return counter
        except OSError as exc:  # the name is taken by a file or a non-empty directory
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise


def _open_dir(fd: int, name: str, create: bool, shown: PurePosixPath) -> int:
    """Open directory `name` under `fd` without following a link, creating it if asked."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        try:
            os.mkdir(name, 0o777, dir_fd=fd)
        except FileExistsError:
            pass  # created meanwhile; open it (or fail on a link) below
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _explain(exc, shown.as_posix(), directory=True, at=(fd, name)) from None


def _is_link(at: tuple[int, str]) -> bool:
    try:
        return stat.S_ISLNK(os.stat(at[1], dir_fd=at[0], follow_symlinks=False).st_mode)
    except OSError:
        return False


def _explain(exc: OSError, shown: str, *, directory: bool, at: tuple[int, str]) -> ToolError:
    """An OSError from opening `shown` (name `at[1]` in directory fd `at[0]`), said so the
    model knows what to do next."""
    code = exc.errno
    if code in (errno.ELOOP, errno.ENOTDIR) and _is_link(at):
        return WorkspaceError(
            f"{shown!r} became a symbolic link while being opened; it was not followed")
    if code == errno.ENOENT:
        return ToolError(f"{shown!r} does not exist (list_dir or glob show what is there)")
    if code == errno.ENOTDIR:
        return ToolError(f"{shown!r} is not a directory" if directory
                         else f"a parent of {shown!r} is not a directory")
    if code == errno.EISDIR:
        return ToolError(f"{shown!r} is a directory (list_dir shows its entries)")
    if code in (errno.EACCES, errno.EPERM):
        return ToolError(f"permission denied: {shown!r}")
    return ToolError(f"cannot open {shown!r}: {exc.strerror or exc}")
