"""Workspace: path resolution, the race-free open, per-task directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.tools import Workspace, WorkspaceError, task_dir_name


def test_root_is_resolved_and_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert Workspace(tmp_path / "alias").root == (tmp_path / "real").resolve()
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="is not a directory"):
        Workspace(tmp_path / "file")
    with pytest.raises(WorkspaceError, match="is not a directory"):
        Workspace(tmp_path / "missing")


def test_resolve_inside(ws: Workspace) -> None:
    (ws.root / "d").mkdir()
    (ws.root / "d" / "f.txt").write_text("x")
    (ws.root / "alias").symlink_to("d")
    assert ws.resolve(".") == ws.root
    assert ws.resolve("d/../d/f.txt") == ws.root / "d" / "f.txt"
    assert ws.resolve(str(ws.root / "d" / "f.txt")) == ws.root / "d" / "f.txt"
    assert ws.resolve("alias/f.txt") == ws.root / "d" / "f.txt"  # a link that stays inside
    assert ws.resolve("not/yet/there.txt") == ws.root / "not" / "yet" / "there.txt"
    assert ws.display(ws.root) == "." and ws.display(ws.root / "d" / "f.txt") == "d/f.txt"


@pytest.mark.parametrize(("path", "message"), [
    ("", "the path is empty; use '.' for the workspace root"),
    ("a\x00b", "the path contains a NUL character"),
    ("..", "'..' leads outside the workspace through '..'"),
    ("d/../../x", "'d/../../x' leads outside the workspace through '..'"),
    ("/etc/passwd", "'/etc/passwd' is outside the workspace; use a path relative to the "
                    "workspace root"),
    ("out", "'out' leads outside the workspace through a symbolic link"),
    ("out/secret.txt", "'out/secret.txt' leads outside the workspace through a symbolic link"),
    ("loop", "cannot resolve 'loop'"),
])
def test_resolve_refuses(ws: Workspace, outside: Path, path: str, message: str) -> None:
    (ws.root / "out").symlink_to(outside)
    (ws.root / "loop").symlink_to("loop")
    with pytest.raises(WorkspaceError) as exc:
        ws.resolve(path)
    assert str(exc.value).startswith(message)


def test_absolute_path_through_root_and_back_out(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="is outside the workspace"):
        ws.resolve(str(ws.root / ".." / "x"))


def test_open_refuses_a_parent_swapped_for_a_link_after_resolve(ws: Workspace,
                                                                 outside: Path) -> None:
    (ws.root / "d").mkdir()
    (ws.root / "d" / "secret.txt").write_text("inside")
    target = ws.resolve("d/secret.txt")
    (ws.root / "d").rename(ws.root / "d_old")
    (ws.root / "d").symlink_to(outside)  # what a background process could do meanwhile
    with pytest.raises(WorkspaceError, match="became a symbolic link"):
        ws.open_fd(target, os.O_RDONLY)


def test_open_refuses_a_file_swapped_for_a_link_after_resolve(ws: Workspace,
                                                               outside: Path) -> None:
    (ws.root / "f.txt").write_text("inside")
    target = ws.resolve("f.txt")
    (ws.root / "f.txt").unlink()
    (ws.root / "f.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(WorkspaceError, match="became a symbolic link"):
        ws.open_fd(target, os.O_WRONLY | os.O_TRUNC)
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"


def test_make_parents_creates_inside_only(ws: Workspace, outside: Path) -> None:
    target = ws.resolve("new/deeper/f.txt")
    (ws.root / "new").symlink_to(outside)  # appeared after resolve
    with pytest.raises(WorkspaceError, match="became a symbolic link"):
        ws.open_fd(target, os.O_WRONLY | os.O_CREAT, make_parents=True)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub"]
    (ws.root / "new").unlink()
    os.close(ws.open_fd(target, os.O_WRONLY | os.O_CREAT, make_parents=True))
    assert (ws.root / "new" / "deeper" / "f.txt").is_file()


def test_task_dir_names() -> None:
    assert task_dir_name("3f2a-b9c.1_x") == "3f2a-b9c.1_x"
    names = {task_dir_name(t) for t in ("a/b", "a_b", "../../etc", "..", ".", "", "x" * 100)}
    assert len(names) == 7
    for name in names:
        assert "/" not in name and name not in (".", "..", "") and len(name) <= 64
        assert not name.startswith(".")
    assert task_dir_name("../../etc").startswith("etc-")
    assert task_dir_name("").startswith("task-")


def test_for_task(tmp_path: Path) -> None:
    base = tmp_path / "workspaces"
    one = Workspace.for_task(base, "task-1")
    assert one.root == (base / "task-1").resolve() and one.root.is_dir()
    (one.root / "kept.txt").write_text("x")
    assert Workspace.for_task(base, "task-1").root == one.root  # continued task: same files
    assert (one.root / "kept.txt").exists()
    evil = Workspace.for_task(base, "../../escape")
    assert evil.root.parent == base.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workspaces"]
    (base / "linked").symlink_to(tmp_path)
    with pytest.raises(WorkspaceError, match="is not a plain directory"):
        Workspace.for_task(base, "linked")
