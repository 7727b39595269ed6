"""Tool definitions, argument checking, the registry."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from runtime.tools import (
    ToolArgumentError,
    ToolLimits,
    ToolRegistry,
    UnknownToolError,
    Workspace,
    check_args,
    default_tools,
    definition,
    tool_by_name,
)
from tests.tools.conftest import call

READ_ONLY = {"read_file", "list_dir", "glob", "grep"}
WRITING = {"write_file", "edit_file", "run_shell"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "The file"},
        "offset": {"type": "integer", "minimum": 1, "maximum": 10},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["a", "b"]},
    },
    "required": ["path"],
}


def test_every_tool_declares_a_usable_definition() -> None:
    tools = default_tools()
    assert [t.name for t in tools] == [
        "read_file", "list_dir", "glob", "grep", "write_file", "edit_file", "run_shell"]
    for tool in tools:
        d = definition(tool)
        assert json.loads(json.dumps(d)) == d
        assert d["description"] and d["parameters"]["type"] == "object"
        assert d["parameters"]["additionalProperties"] is False
        props = d["parameters"]["properties"]
        assert set(d["parameters"].get("required", [])) <= set(props)
        for spec in props.values():
            assert spec["type"] in ("string", "integer", "boolean") and spec["description"]
    assert {t.name for t in tools if t.read_only} == READ_ONLY
    assert {t.name for t in tools if not t.read_only} == WRITING


def test_run_shell_schema_follows_the_limits() -> None:
    tool = tool_by_name("run_shell", default_tools(ToolLimits(shell_max_timeout=30,
                                                              shell_timeout=5)))
    assert tool.parameters["properties"]["timeout"]["maximum"] == 30
    assert "default 5" in tool.parameters["properties"]["timeout"]["description"]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="kill_grace must be positive"):
        ToolLimits(kill_grace=0)


@pytest.mark.parametrize(("args", "message"), [
    ([], "arguments must be a JSON object, got array"),
    ("x", "arguments must be a JSON object, got string"),
    ({}, "missing required argument 'path' (string): The file"),
    ({"path": None}, "missing required argument 'path'"),
    ({"path": 3}, "argument 'path' must be a string, got number 3"),
    ({"path": "a", "offset": "5"}, "argument 'offset' must be an integer, got string '5'"),
    ({"path": "a", "offset": True}, "argument 'offset' must be an integer, got boolean True"),
    ({"path": "a", "offset": 1.5}, "argument 'offset' must be an integer, got number 1.5"),
    ({"path": "a", "offset": 0}, "argument 'offset' must be at least 1, got 0"),
    ({"path": "a", "offset": 11}, "argument 'offset' must be at most 10, got 11"),
    ({"path": "a", "flag": "yes"}, "argument 'flag' must be a boolean, got string 'yes'"),
    ({"path": "a", "mode": "c"}, "argument 'mode' must be one of ['a', 'b'], got 'c'"),
    ({"path": "a", "pth": "b"},
     "unknown argument 'pth'; this tool takes: path, offset, flag, mode"),
])
def test_bad_arguments_are_named(args: Any, message: str) -> None:
    with pytest.raises(ToolArgumentError) as exc:
        check_args(SCHEMA, args)
    assert str(exc.value).startswith(message)


def test_good_arguments_pass_and_nulls_count_as_absent() -> None:
    assert check_args(SCHEMA, {"path": "a", "offset": 2.0, "flag": None, "mode": "b"}) == {
        "path": "a", "offset": 2, "mode": "b"}


@pytest.mark.parametrize("tool", default_tools(), ids=lambda t: t.name)
async def test_bad_arguments_are_error_results_not_exceptions(tool: Any, ws: Workspace) -> None:
    required = tool.parameters.get("required", [])
    result = await call(tool, {}, ws)
    if required:
        assert result.is_error
        assert result.output.startswith(f"{tool.name}: missing required argument "
                                        f"{required[0]!r}")
    wrong = {k: 12 for k in tool.parameters["properties"]}
    result = await call(tool, wrong, ws)
    assert result.is_error and "must be a" in result.output
    result = await call(tool, ["not", "an", "object"], ws)
    assert result.is_error and "arguments must be a JSON object" in result.output


def test_tool_by_name() -> None:
    assert tool_by_name("grep").name == "grep"
    with pytest.raises(UnknownToolError) as exc:
        tool_by_name("delete_everything")
    assert str(exc.value) == ("unknown tool 'delete_everything'; available tools: read_file, "
                              "list_dir, glob, grep, write_file, edit_file, run_shell")


async def test_registry_runs_by_name(ws: Workspace) -> None:
    registry = ToolRegistry()
    assert registry.names == tuple(t.name for t in default_tools())
    assert len(registry.definitions()) == 7 and "grep" in registry
    result = await registry.run("list_dir", {}, ws)
    assert result.output == "(. is an empty directory)" and not result.is_error
    result = await registry.run("rm_rf", {}, ws)
    assert result.is_error and result.output.startswith("unknown tool 'rm_rf'; available tools:")
    small = registry.select(["read_file", "grep"])
    assert small.names == ("read_file", "grep")
    assert (await small.run("write_file", {"path": "a", "content": ""}, ws)).is_error
    assert not (ws.root / "a").exists()
    with pytest.raises(UnknownToolError):
        registry.select(["read_file", "nope"])
    with pytest.raises(ValueError, match="two tools are named 'grep'"):
        ToolRegistry([tool_by_name("grep"), tool_by_name("grep")])


@pytest.mark.parametrize(("name", "args"), [
    ("write_file", {"path": "a.txt", "content": "bad \ud800"}),
    ("write_file", {"path": "bad\ud800.txt", "content": "x"}),
    ("read_file", {"path": "bad\ud800.txt"}),
])
async def test_text_that_is_not_unicode_is_an_error_result(ws: Workspace, name: str,
                                                           args: dict[str, Any]) -> None:
    result = await call(tool_by_name(name), args, ws)
    assert result.is_error, result
    assert list(ws.root.iterdir()) == []


async def test_tool_calls_log_cleanly_at_debug(ws: Workspace,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registry = ToolRegistry()
    await registry.run("write_file", {"path": "a.txt", "content": "x"}, ws)
    await registry.run("read_file", {"path": "nope"}, ws)
    await registry.run("run_shell", {"command": "true"}, ws)
    finished = [r for r in caplog.records if r.getMessage() == "tool call finished"]
    assert [(r.tool, r.is_error) for r in finished] == [  # type: ignore[attr-defined]
        ("write_file", False), ("read_file", True), ("run_shell", False)]


def test_package_reexports_every_public_name() -> None:
    import importlib
    import pkgutil

    import runtime.tools

    for info in pkgutil.iter_modules(runtime.tools.__path__):
        module = importlib.import_module(f"runtime.tools.{info.name}")
        lacking = [n for n in module.__all__ if n not in runtime.tools.__all__]
        assert lacking == [], f"runtime.tools.{info.name}: {lacking}"
    for name in runtime.tools.__all__:
        assert hasattr(runtime.tools, name)
