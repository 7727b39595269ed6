"""What a tool is: a name, a description, a JSON schema, read-only or not, and `run`.

The agent loop hands the model `definition(tool)` for every tool and calls
`tool.run(args, ws)` with the arguments the model sent. `run` never raises for
anything the model got wrong (bad arguments, a missing file, a path outside the
workspace): it returns a `ToolResult` with `is_error=True` and a message the
model can act on, because the model, not the operator, has to fix it.
Cancellation (`trio.Cancelled`) and programming errors still propagate.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs
import trio

from runtime.tools.errors import ToolArgumentError, ToolError

if TYPE_CHECKING:
    from runtime.tools.workspace import Workspace

__all__ = [
    "BaseTool",
    "Tool",
    "ToolArgumentError",
    "ToolError",
    "ToolLimits",
    "ToolResult",
    "check_args",
    "definition",
]

log = logging.getLogger(__name__)


@attrs.frozen
class ToolResult:
    """What the model sees after a tool call."""

    output: str
    is_error: bool = False


class Tool(Protocol):
    """The interface the agent loop relies on."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema (type "object") of the arguments, as LLM tool definitions carry it."""
    read_only: bool
    """True if the tool never changes the workspace nor runs anything (approval policies use it)."""

    async def run(self, args: Mapping[str, Any], ws: Workspace) -> ToolResult: ...


def definition(tool: Tool) -> dict[str, Any]:
    """The provider-neutral tool definition: name, description, parameters (a JSON schema)."""
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


DEFAULT_SHELL_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE",
                     "TZ", "TERM", "TMPDIR")


@attrs.frozen
class ToolLimits:
    """The caps and timeouts of the built-in tools; each bounds what one call can cost."""

    read_max_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    """read_file output: about 16k tokens, a large source file; use offset/limit for more."""
    grep_max_bytes: int = attrs.field(default=32 * 1024, validator=_positive)
    shell_max_bytes: int = attrs.field(default=32 * 1024, validator=_positive)
    """run_shell output, split between its head and its tail (errors tend to come last)."""
    max_entries: int = attrs.field(default=1000, validator=_positive)
    """list_dir and glob entries."""
    max_files_scanned: int = attrs.field(default=20_000, validator=_positive)
    """Files glob and grep visit before they stop: bounds a walk of a huge tree."""
    grep_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Seconds one grep call may search; its child process is killed then (a pattern such
    as '(a+)+$' can backtrack for longer than any task would wait)."""
    edit_max_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=_positive)
    """Largest file edit_file loads into memory."""
    shell_timeout: float = attrs.field(default=120.0, validator=_positive)
    """run_shell's timeout when the model does not give one."""
    shell_max_timeout: float = attrs.field(default=600.0, validator=_positive)
    """The largest timeout the model may ask for."""
    kill_grace: float = attrs.field(default=2.0, validator=_positive)
    """Seconds between SIGTERM and SIGKILL to a run_shell process group."""
    shell_env: tuple[str, ...] = DEFAULT_SHELL_ENV
    """Environment variables run_shell passes on; everything else (API keys) stays out."""


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,),
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    for name, types in (("string", (str,)), ("array", (list, tuple)), ("object", (Mapping,))):
        if isinstance(value, types):
            return name
    return type(value).__name__


def _check_one(key: str, spec: Mapping[str, Any], value: Any) -> Any:
    kind = spec.get("type", "string")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0 from a model that writes every number as a float
    ok = isinstance(value, _JSON_TYPES[kind]) and not (
        isinstance(value, bool) and kind in ("integer", "number"))
    if not ok:
        raise ToolArgumentError(
            f"argument {key!r} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, "
            f"got {_json_type(value)} {value!r:.60}")
    if "enum" in spec and value not in spec["enum"]:
        raise ToolArgumentError(f"argument {key!r} must be one of {spec['enum']}, got {value!r}")
    if "minimum" in spec and value < spec["minimum"]:
        raise ToolArgumentError(f"argument {key!r} must be at least {spec['minimum']}, got {value}")
    if "maximum" in spec and value > spec["maximum"]:
        raise ToolArgumentError(f"argument {key!r} must be at most {spec['maximum']}, got {value}")
    return value


def check_args(parameters: Mapping[str, Any], args: Any) -> dict[str, Any]:
    """Arguments checked against a tool's schema (the subset the tools use), or ToolArgumentError.

    A null optional argument counts as absent: models often send every key.
    """
    if not isinstance(args, Mapping):
        raise ToolArgumentError(f"arguments must be a JSON object, got {_json_type(args)}")
    props: Mapping[str, Any] = parameters.get("properties", {})
    required: list[str] = parameters.get("required", [])
    unknown = sorted(k for k in args if k not in props)
    if unknown:
        raise ToolArgumentError(
            f"unknown argument {unknown[0]!r}; this tool takes: {', '.join(props)}")
    for key in required:
        if args.get(key) is None:
            spec = props[key]
            hint = f": {spec['description']}" if spec.get("description") else ""
            raise ToolArgumentError(
                f"missing required argument {key!r} ({spec.get('type', 'string')}){hint}")
    return {k: _check_one(k, props[k], v) for k, v in args.items() if v is not None}


class BaseTool(ABC):
    """Argument checking, error conversion and logging around a tool's `execute`."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: dict[str, Any]
    read_only: ClassVar[bool]

    def __init__(self, limits: ToolLimits | None = None) -> None:
        self.limits = limits or ToolLimits()

    def __repr__(self) -> str:
        return f"<tool {self.name}>"

    @abstractmethod
    async def execute(self, args: dict[str, Any], ws: Workspace) -> ToolResult:
        """Do the work with checked arguments; raise ToolError for the model's mistakes."""

    async def in_thread(self, fn: Callable[..., ToolResult], *args: Any) -> ToolResult:
        """Blocking file work off the event loop. A read-only tool's thread is abandoned on
        cancel (it only reads); a writing one is waited for so a write is never half-reported."""
        return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=self.read_only)

    async def run(self, args: Mapping[str, Any], ws: Workspace) -> ToolResult:
        started = trio.current_time()
        try:
            result = await self.execute(check_args(self.parameters, args), ws)
        except ToolError as exc:
            result = ToolResult(f"{self.name}: {exc}", is_error=True)
        except OSError as exc:  # what the workspace layer did not already explain
            result = ToolResult(f"{self.name}: {exc.strerror or exc}", is_error=True)
        except UnicodeError as exc:  # a lone surrogate from JSON cannot be encoded
            result = ToolResult(f"{self.name}: an argument is not valid Unicode text ({exc})",
                                is_error=True)
        log.debug("tool call finished", extra={
            "tool": self.name, "is_error": result.is_error, "output_chars": len(result.output),
            "seconds": round(trio.current_time() - started, 3)})
        return result
