"""Tools an agent session's model can call, confined to a per-task workspace.

`default_tools()` gives one of each; `ToolRegistry` runs calls by name. Every
tool has `name`, `description`, `parameters` (JSON schema), `read_only` and
`async run(args, ws) -> ToolResult`. See docs/tools.md. May import runtime.secrets only.
"""

from runtime.tools.base import (
    BaseTool,
    Tool,
    ToolArgumentError,
    ToolError,
    ToolLimits,
    ToolResult,
    check_args,
    definition,
)
from runtime.tools.files import EditFile, ReadFile, WriteFile
from runtime.tools.output import HeadBuffer, HeadTailBuffer, truncated_marker
from runtime.tools.registry import ToolRegistry, UnknownToolError, default_tools, tool_by_name
from runtime.tools.search import Glob, Grep, ListDir, match_path
from runtime.tools.shell import RunShell, live_group_members, stop_process_group
from runtime.tools.workspace import (
    MAX_PATH_DEPTH,
    Workspace,
    WorkspaceCleanup,
    WorkspaceError,
    task_dir_name,
)

__all__ = [
    "MAX_PATH_DEPTH",
    "BaseTool",
    "EditFile",
    "Glob",
    "Grep",
    "HeadBuffer",
    "HeadTailBuffer",
    "ListDir",
    "ReadFile",
    "RunShell",
    "Tool",
    "ToolArgumentError",
    "ToolError",
    "ToolLimits",
    "ToolRegistry",
    "ToolResult",
    "UnknownToolError",
    "Workspace",
    "WorkspaceCleanup",
    "WorkspaceError",
    "WriteFile",
    "check_args",
    "default_tools",
    "definition",
    "live_group_members",
    "match_path",
    "stop_process_group",
    "task_dir_name",
    "tool_by_name",
    "truncated_marker",
]
