"""No path-taking tool reaches outside its workspace: not through '..', an absolute path,
a symbolic link inside the workspace that points out, or a linked parent directory; and
walks (glob, grep) do not follow links out either."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.tools import Workspace, tool_by_name
from tests.tools.conftest import SECRET, call

FILE_ESCAPES = {
    "dotdot": "../outside/secret.txt",
    "dotdot-inside-first": "sub/../../outside/secret.txt",
    "absolute": "{outside}/secret.txt",
    "link-to-file": "link_file",
    "linked-parent": "link_dir/secret.txt",
    "linked-parent-deeper": "link_dir/sub/deep.txt",
}
DIR_ESCAPES = {
    "dotdot": "..",
    "absolute": "{outside}",
    "link-to-dir": "link_dir",
    "linked-parent": "link_dir/sub",
}
ARGS = {
    "read_file": {},
    "write_file": {"content": "overwritten"},
    "edit_file": {"old_string": SECRET, "new_string": "edited"},
    "grep": {"pattern": "SECRET"},
    "list_dir": {},
    "glob": {"pattern": "**/*"},
}
FILE_TOOLS = ["read_file", "write_file", "edit_file", "grep"]
DIR_TOOLS = ["list_dir", "glob", "grep", "write_file"]  # write_file: nothing lands out there


@pytest.fixture
def links(ws: Workspace, outside: Path) -> Workspace:
    (ws.root / "sub").mkdir()
    (ws.root / "link_file").symlink_to(outside / "secret.txt")
    (ws.root / "link_dir").symlink_to(outside)
    return ws


def snapshot(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): p.read_text() if p.is_file() else "/"
            for p in sorted(d.rglob("*"))}


def _cases(tools: list[str], escapes: dict[str, str]) -> list[tuple[str, str, str]]:
    return [(t, kind, path) for t in tools for kind, path in escapes.items()]


@pytest.mark.parametrize(("tool_name", "kind", "path"),
                         _cases(FILE_TOOLS, FILE_ESCAPES) + _cases(DIR_TOOLS, DIR_ESCAPES))
async def test_escape_is_refused(links: Workspace, outside: Path, tool_name: str, kind: str,
                                 path: str) -> None:
    ws = links
    before = snapshot(outside)
    args = {"path": path.format(outside=outside), **ARGS[tool_name]}
    result = await call(tool_by_name(tool_name), args, ws)
    assert result.is_error, result
    assert "outside the workspace" in result.output
    assert SECRET not in result.output
    expected = {"dotdot": "through '..'", "absolute": "use a path relative to the workspace root"}
    assert expected.get(kind.split("-")[0], "through a symbolic link") in result.output
    assert snapshot(outside) == before


@pytest.mark.parametrize("path", ["dangling", "link_dir/new.txt", "link_dir/newdir/new.txt"])
async def test_write_through_a_link_creates_nothing_outside(links: Workspace, outside: Path,
                                                            path: str) -> None:
    (links.root / "dangling").symlink_to(outside / "created.txt")
    before = snapshot(outside)
    result = await call(tool_by_name("write_file"), {"path": path, "content": "x"}, links)
    assert result.is_error and "through a symbolic link" in result.output
    assert snapshot(outside) == before


async def test_walks_do_not_follow_links_out(links: Workspace) -> None:
    (links.root / "sub" / "mine.txt").write_text("mine\n")
    result = await call(tool_by_name("glob"), {"pattern": "**/*"}, links)
    assert result.output.splitlines() == ["link_dir/", "link_file", "sub/", "sub/mine.txt"]
    result = await call(tool_by_name("grep"), {"pattern": "SECRET|mine"}, links)
    assert result.output == "sub/mine.txt:1:mine"
    listing = await call(tool_by_name("list_dir"), {}, links)
    assert SECRET not in listing.output


async def test_links_that_stay_inside_work(ws: Workspace) -> None:
    (ws.root / "real").mkdir()
    (ws.root / "real" / "f.txt").write_text("hello\n")
    (ws.root / "alias").symlink_to("real")
    (ws.root / "f_alias").symlink_to("real/f.txt")
    assert (await call(tool_by_name("read_file"), {"path": "alias/f.txt"}, ws)).output == "hello\n"
    assert (await call(tool_by_name("read_file"), {"path": "f_alias"}, ws)).output == "hello\n"
    result = await call(tool_by_name("edit_file"),
                        {"path": "f_alias", "old_string": "hello", "new_string": "bye"}, ws)
    assert not result.is_error
    assert (ws.root / "real" / "f.txt").read_text() == "bye\n"
    assert (ws.root / "f_alias").is_symlink()


async def test_run_shell_runs_in_the_workspace(ws: Workspace) -> None:
    result = await call(tool_by_name("run_shell"), {"command": "pwd; touch made-here"}, ws)
    assert result.output == f"{ws.root}\n[exit code 0]"
    assert (ws.root / "made-here").exists()
