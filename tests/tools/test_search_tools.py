"""list_dir, glob, grep."""

from __future__ import annotations

import pytest

from runtime.tools import Glob, Grep, ListDir, ToolLimits, Workspace, match_path
from tests.tools.conftest import call


@pytest.fixture
def tree(ws: Workspace) -> Workspace:
    r = ws.root
    for d in ("src/pkg", "docs", ".git/objects", "empty"):
        (r / d).mkdir(parents=True)
    (r / "README.md").write_text("# Project\nDRAFT: write more\n")
    (r / "src" / "main.py").write_text("import pkg\n\ndef main():\n    pass  # draft\n")
    (r / "src" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (r / "src" / "pkg" / "data.bin").write_bytes(b"DRAFT\0\1\2")
    (r / "docs" / "guide.md").write_text("Nothing to do here.\n")
    (r / ".git" / "objects" / "x").write_text("DRAFT in git\n")
    (r / "link.md").symlink_to("README.md")
    return ws


async def test_list_dir(tree: Workspace) -> None:
    result = await call(ListDir(), {}, tree)
    assert result.output.splitlines() == [
        ".git/", "README.md (28 bytes)", "docs/", "empty/", "link.md -> README.md", "src/"]
    assert (await call(ListDir(), {"path": "empty"}, tree)).output == (
        "(empty is an empty directory)")
    assert (await call(ListDir(), {"path": "src/pkg/"}, tree)).output == (
        "__init__.py (10 bytes)\ndata.bin (8 bytes)")


async def test_list_dir_errors_and_cap(tree: Workspace) -> None:
    result = await call(ListDir(), {"path": "README.md"}, tree)
    assert result.is_error and result.output == (
        "list_dir: 'README.md' is a file, not a directory (read_file reads it)")
    result = await call(ListDir(), {"path": "nope"}, tree)
    assert result.is_error and "'nope' does not exist" in result.output
    result = await call(ListDir(ToolLimits(max_entries=2)), {}, tree)
    assert result.output == ".git/\nREADME.md (28 bytes)\n[truncated 4 entries]"


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("*.md", ".", ["README.md", "link.md"]),
    ("**/*.md", ".", ["README.md", "docs/guide.md", "link.md"]),
    ("**/*.py", ".", ["src/main.py", "src/pkg/__init__.py"]),
    ("*", "src", ["src/main.py", "src/pkg/"]),
    ("pkg/*", "src", ["src/pkg/__init__.py", "src/pkg/data.bin"]),
    ("src/**", ".", ["src/", "src/main.py", "src/pkg/", "src/pkg/__init__.py", "src/pkg/data.bin"]),
    ("**/x", ".", []),  # .git is skipped
    ("*.rs", ".", []),
])
async def test_glob(tree: Workspace, pattern: str, path: str, expected: list[str]) -> None:
    result = await call(Glob(), {"pattern": pattern, "path": path}, tree)
    assert not result.is_error
    if expected:
        assert result.output.splitlines() == expected
    else:
        assert result.output == f"no paths match {pattern!r} under {path}"


async def test_glob_errors_and_limits(tree: Workspace) -> None:
    for pattern in ("../*", "/etc/*", "a/../../b"):
        result = await call(Glob(), {"pattern": pattern}, tree)
        assert result.is_error and "cannot contain '..'" in result.output
    assert (await call(Glob(), {"pattern": "/"}, tree)).output == (
        "glob: pattern is empty; '**/*' matches everything")
    result = await call(Glob(ToolLimits(max_entries=2)), {"pattern": "**/*.py"}, tree)
    assert result.output == "src/main.py\nsrc/pkg/__init__.py"
    result = await call(Glob(ToolLimits(max_entries=1)), {"pattern": "**/*"}, tree)
    assert result.output.splitlines()[1] == "[truncated 9 entries]"
    result = await call(Glob(ToolLimits(max_files_scanned=3)), {"pattern": "**/*"}, tree)
    assert result.output.endswith("[stopped after visiting 5 entries; start from a deeper "
                                  "path or use a narrower pattern]")


def test_match_path() -> None:
    assert match_path("**", "a/b/c") and match_path("**", "")
    assert match_path("a/**/c", "a/c") and match_path("a/**/c", "a/x/y/c")
    assert not match_path("a/*/c", "a/x/y/c")
    assert match_path("*.py", ".hidden.py") and not match_path("*.py", "d/x.py")
    assert match_path("[ab]?.txt", "b1.txt") and not match_path("**/*.py", "x.pyc")


async def test_grep(tree: Workspace) -> None:
    result = await call(Grep(), {"pattern": "draft", "ignore_case": True}, tree)
    assert result.output == "README.md:2:DRAFT: write more\nsrc/main.py:4:    pass  # draft"
    result = await call(Grep(), {"pattern": r"^def \w+", "path": "src"}, tree)
    assert result.output == "src/main.py:3:def main():"
    result = await call(Grep(), {"pattern": "=", "path": "src/pkg/__init__.py"}, tree)
    assert result.output == "src/pkg/__init__.py:1:VALUE = 1"
    result = await call(Grep(), {"pattern": "o", "glob": "*.md"}, tree)
    assert [line.split(":")[0] for line in result.output.splitlines()] == [
        "README.md", "README.md", "docs/guide.md"]  # link.md is a link: skipped
    result = await call(Grep(), {"pattern": "import", "glob": "src/*.py"}, tree)
    assert result.output.splitlines() == ["src/main.py:1:import pkg"]
    result = await call(Grep(), {"pattern": "zzz", "glob": "*.md"}, tree)
    assert result.output == "no matches for 'zzz' under . in files matching '*.md'"
    assert not result.is_error


async def test_grep_errors_and_cap(tree: Workspace) -> None:
    result = await call(Grep(), {"pattern": "(unclosed"}, tree)
    assert result.is_error and result.output.startswith(
        "grep: pattern is not a valid regular expression: missing ), unterminated subpattern")
    result = await call(Grep(), {"pattern": "x", "path": "../"}, tree)
    assert result.is_error and "outside the workspace" in result.output
    (tree.root / "many.txt").write_text("match\n" * 100)
    result = await call(Grep(ToolLimits(grep_max_bytes=50)), {"pattern": "match",
                                                              "path": "many.txt"}, tree)
    # lines 1-9 are 17 bytes, 10-99 18, 100 19: 1792 in all, 50 kept
    assert result.output == ("many.txt:1:match\nmany.txt:2:match\nmany.txt:3:match\n"
                             "[truncated 1742 bytes]")
    (tree.root / "long.txt").write_text("y" * 1000 + "\n")
    result = await call(Grep(), {"pattern": "y", "path": "long.txt"}, tree)
    assert result.output == "long.txt:1:" + "y" * 300 + "..."
