"""The built-in tools by name, and a registry the agent loop runs calls through."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from runtime.tools.base import Tool, ToolLimits, ToolResult, definition
from runtime.tools.files import EditFile, ReadFile, WriteFile
from runtime.tools.search import Glob, Grep, ListDir
from runtime.tools.shell import RunShell
from runtime.tools.workspace import Workspace

__all__ = ["ToolRegistry", "UnknownToolError", "default_tools", "tool_by_name"]


class UnknownToolError(LookupError):
    """A tool name (in config, or from a model) that no registered tool has."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.tool_name = name
        self.known = tuple(known)
        super().__init__(f"unknown tool {name!r}; available tools: {', '.join(self.known)}")

    def __str__(self) -> str:
        return str(self.args[0])


def default_tools(limits: ToolLimits | None = None) -> tuple[Tool, ...]:
    """One of each built-in tool, sharing `limits`: read-only ones first."""
    return (ReadFile(limits), ListDir(limits), Glob(limits), Grep(limits),
            WriteFile(limits), EditFile(limits), RunShell(limits))


def tool_by_name(name: str, tools: Iterable[Tool] | None = None) -> Tool:
    """The tool called `name` among `tools` (default: the built-ins), or UnknownToolError."""
    pool = tuple(default_tools() if tools is None else tools)
    for tool in pool:
        if tool.name == name:
            return tool
    raise UnknownToolError(name, (t.name for t in pool))


class ToolRegistry:
    """The tools one agent may use, by name, in a fixed order."""

    def __init__(self, tools: Iterable[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in default_tools() if tools is None else tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def select(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with only `names` (e.g. an agent configured with fewer tools)."""
        picked = []
        for name in names:
            if name not in self._tools:
                raise UnknownToolError(name, self._tools)
            picked.append(self._tools[name])
        return ToolRegistry(picked)

    def definitions(self) -> list[dict[str, Any]]:
        """Name, description and JSON-schema parameters of each tool, for the model."""
        return [definition(t) for t in self._tools.values()]

    async def run(self, name: str, args: Mapping[str, Any], ws: Workspace) -> ToolResult:
        """Run a call the model made; a name it made up is an error result, not an exception."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(str(UnknownToolError(name, self._tools)), is_error=True)
        return await tool.run(args, ws)
