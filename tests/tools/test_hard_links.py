"""A hard link inside the workspace to a file outside it is the same file: file tools refuse a
regular file with more than one link, as they refuse symbolic links that lead out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.tools import Workspace, tool_by_name
from tests.tools.conftest import SECRET, call


@pytest.fixture
def linked(ws: Workspace, outside: Path) -> Workspace:
    os.link(outside / "secret.txt", ws.root / "hard.txt")
    (ws.root / "mine.txt").write_text("mine\n")
    return ws


@pytest.mark.parametrize(("tool", "args"), [
    ("read_file", {}),
    ("read_file", {"offset": 1, "limit": 1}),
    ("write_file", {"content": "overwritten\n"}),
    ("edit_file", {"old_string": SECRET, "new_string": "edited"}),
    ("grep", {"pattern": "SECRET"}),
])
async def test_hard_linked_file_is_refused(linked: Workspace, outside: Path, tool: str,
                                           args: dict[str, object]) -> None:
    result = await call(tool_by_name(tool), {"path": "hard.txt", **args}, linked)
    assert result.is_error, result
    assert result.output == (
        f"{tool}: 'hard.txt' has 2 hard links, so it may also be a file outside the "
        "workspace; file tools neither read nor write it")
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"


async def test_grep_and_glob_over_a_directory_skip_hard_links(linked: Workspace) -> None:
    result = await call(tool_by_name("grep"), {"pattern": "SECRET|mine"}, linked)
    assert result.output == "mine.txt:1:mine"
    result = await call(tool_by_name("glob"), {"pattern": "*.txt"}, linked)
    assert result.output.splitlines() == ["hard.txt", "mine.txt"]  # names only: nothing read


async def test_a_file_that_lost_its_second_link_is_usable_again(linked: Workspace,
                                                                outside: Path) -> None:
    (outside / "secret.txt").unlink()
    result = await call(tool_by_name("read_file"), {"path": "hard.txt"}, linked)
    assert not result.is_error and result.output == f"{SECRET}\n"
