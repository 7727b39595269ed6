"""A workspace in tmp_path, and a directory beside it that no tool may reach."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime.tools import Tool, ToolResult, Workspace

SECRET = "TOP SECRET"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """tmp_path/outside, a sibling of the workspace: secret.txt and sub/deep.txt."""
    d = (tmp_path / "outside").resolve()
    (d / "sub").mkdir(parents=True)
    (d / "secret.txt").write_text(f"{SECRET}\n")
    (d / "sub" / "deep.txt").write_text(f"{SECRET} deep\n")
    return d


async def call(tool: Tool, args: Mapping[str, Any], ws: Workspace,
               seconds: float = 10) -> ToolResult:
    with trio.fail_after(seconds):
        return await tool.run(args, ws)
