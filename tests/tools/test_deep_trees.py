"""Deep directory trees: write_file refuses paths deeper than MAX_PATH_DEPTH, and a deeper tree
made some other way (run_shell, say) neither breaks the walks of glob and grep (no recursion,
no descriptor per level past the limit) nor the removal of the workspace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.tools import MAX_PATH_DEPTH, Workspace, tool_by_name
from tests.tools.conftest import call

DEEP = 2000  # deeper than Python's recursion limit


@pytest.fixture
def deep_ws(ws: Workspace) -> Iterator[Workspace]:
    """The workspace, removed afterwards: pytest's own clean-up (shutil.rmtree) recurses,
    and a tree 2000 levels deep would make it fail."""
    yield ws
    ws.remove()


def make_deep(root: Path, depth: int, name: str = "d") -> None:
    """root/d/d/.../d (depth levels) with deep.txt at the bottom, made with one descriptor at a
    time: the absolute path is longer than PATH_MAX."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"needle at the bottom\n")
        os.close(out)
    finally:
        os.close(fd)


def depth_path(levels: int) -> str:
    """A file path `levels` components deep: d/d/.../f.txt."""
    return "d/" * (levels - 1) + "f.txt"


def test_limit_is_a_sensible_number() -> None:
    assert 32 <= MAX_PATH_DEPTH < 1000


async def test_write_file_refuses_paths_deeper_than_the_limit(ws: Workspace) -> None:
    ok = await call(tool_by_name("write_file"),
                    {"path": depth_path(MAX_PATH_DEPTH), "content": "x"}, ws)
    assert not ok.is_error, ok
    for levels in (MAX_PATH_DEPTH + 1, DEEP):
        path = depth_path(levels)
        result = await call(tool_by_name("write_file"), {"path": path, "content": "x"}, ws)
        assert result.is_error
        assert result.output == (
            f"write_file: {path!r} is {levels} levels deep; workspace paths may be at most "
            f"{MAX_PATH_DEPTH} levels deep (MAX_PATH_DEPTH)")
    # nothing was created below the limit
    assert not (ws.root / Path(*["d"] * MAX_PATH_DEPTH)).exists()


async def test_read_and_edit_refuse_too_deep_paths(ws: Workspace) -> None:
    make_deep(ws.root, MAX_PATH_DEPTH + 1)
    path = "d/" * (MAX_PATH_DEPTH + 1) + "deep.txt"
    for tool, args in (("read_file", {}),
                       ("edit_file", {"old_string": "needle", "new_string": "pin"})):
        result = await call(tool_by_name(tool), {"path": path, **args}, ws)
        assert result.is_error and "(MAX_PATH_DEPTH)" in result.output


async def test_walks_of_a_tree_deeper_than_the_limit(deep_ws: Workspace) -> None:
    ws = deep_ws
    make_deep(ws.root, DEEP)
    (ws.root / "top.txt").write_text("needle at the top\n")
    note = (f"[directories deeper than {MAX_PATH_DEPTH} levels were not entered "
            "(MAX_PATH_DEPTH)]")
    result = await call(tool_by_name("grep"), {"pattern": "needle"}, ws, seconds=30)
    assert not result.is_error, result.output
    assert result.output == f"top.txt:1:needle at the top\n{note}"
    result = await call(tool_by_name("glob"), {"pattern": "**/*.txt"}, ws, seconds=30)
    assert not result.is_error, result.output
    assert result.output == f"top.txt\n{note}"
    result = await call(tool_by_name("glob"), {"pattern": "**"}, ws, seconds=30)
    lines = result.output.splitlines()
    assert lines[-3:] == ["d/" * MAX_PATH_DEPTH, "top.txt", note]
    assert len(lines) == MAX_PATH_DEPTH + 2
    # from a deeper start the limit still counts from the workspace root
    result = await call(tool_by_name("grep"),
                        {"pattern": "needle", "path": "d/" * (MAX_PATH_DEPTH - 1)}, ws)
    assert result.output == f"no matches for 'needle' under {'d/' * (MAX_PATH_DEPTH - 2)}d\n{note}"


async def test_a_tree_within_the_limit_is_walked_to_the_bottom(ws: Workspace) -> None:
    make_deep(ws.root, MAX_PATH_DEPTH - 1)
    result = await call(tool_by_name("grep"), {"pattern": "needle"}, ws)
    assert result.output == "d/" * (MAX_PATH_DEPTH - 1) + "deep.txt:1:needle at the bottom"


@pytest.mark.parametrize("depth", [3, DEEP, 3 * DEEP])
def test_remove_deletes_a_deep_tree(tmp_path: Path, depth: int) -> None:
    ws = Workspace.for_task(tmp_path / "base", "task-1")
    make_deep(ws.root, depth)
    make_deep(ws.root, 5, name="e")
    (ws.root / "d" / "d" / "link").symlink_to(tmp_path)  # a link is removed, not followed
    (ws.root / "top.txt").write_text("x")
    ws.remove()
    assert not ws.root.exists()
    assert (tmp_path / "base").is_dir()  # the base directory and its siblings stay
    ws.remove()  # already gone: nothing to do


def test_remove_refuses_a_root_that_became_a_link(tmp_path: Path) -> None:
    ws = Workspace.for_task(tmp_path / "base", "task-1")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    ws.root.rmdir()
    ws.root.symlink_to(victim)
    with pytest.raises(OSError):
        ws.remove()
    assert (victim / "keep.txt").read_text() == "keep"
