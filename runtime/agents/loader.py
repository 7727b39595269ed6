"""Find the agent a worker runs: a built-in name, or an import path to your own.

`--agent echo` names a built-in agent; `--agent mypkg.agents:spec` imports
`mypkg.agents` and takes its attribute `spec` (dotted attributes are followed:
`mypkg.agents:registry.coder`), which must be an `AgentSpec`. Each way this can
go wrong raises `AgentLoadError` with a message that says what to change, since
the person reading it is usually at a command line, not in a debugger.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping

from actors.agent import AgentSpec
from runtime.agents import echo_agent

__all__ = ["BUILTIN_AGENTS", "AgentLoadError", "load_agent"]

log = logging.getLogger(__name__)

BUILTIN_AGENTS: Mapping[str, AgentSpec] = {echo_agent.name: echo_agent}
"""Agents known by name, without an import path."""

_FORM = "'package.module:attribute'"


class AgentLoadError(ValueError):
    """The agent named on the command line (or in config) cannot be loaded.

    A ValueError, so callers that report bad arguments (the CLI) catch it as one.
    """


def load_agent(spec: str, builtins: Mapping[str, AgentSpec] = BUILTIN_AGENTS) -> AgentSpec:
    """The agent named by `spec`: a key of `builtins`, or 'module:attribute'.

    Raises `AgentLoadError` naming what is wrong: an empty or malformed spec,
    an unknown built-in name, a module that is not found (or fails while it is
    imported: the original error is chained), a missing attribute, or an
    attribute that is not an `AgentSpec`.
    """
    spec = spec.strip()
    if not spec:
        raise AgentLoadError(f"no agent given: use a built-in name ({_known(builtins)}) "
                             f"or an import path {_FORM}")
    if ":" not in spec:
        if spec in builtins:
            return builtins[spec]
        hint = (f"; for an import path write {spec.rpartition('.')[0]}:"
                f"{spec.rpartition('.')[2]}" if "." in spec else "")
        raise AgentLoadError(f"unknown agent {spec!r}: not a built-in agent "
                             f"({_known(builtins)}) and not an import path {_FORM}{hint}")
    module_name, _, attr_path = spec.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not module_name or not attr_path or ":" in attr_path:
        raise AgentLoadError(f"agent {spec!r} is not of the form {_FORM}")
    module = _import(module_name, spec)
    value: object = module
    walked = module_name
    for name in attr_path.split("."):
        if not name.isidentifier():
            raise AgentLoadError(f"agent {spec!r}: {name!r} is not an attribute name "
                                 f"(the part after ':' is attribute.names)")
        try:
            value = getattr(value, name)
        except AttributeError:
            raise AgentLoadError(
                f"agent {spec!r}: {walked} has no attribute {name!r}"
                f"{_public_specs(module, walked == module_name)}") from None
        walked = f"{walked}:{name}" if walked == module_name else f"{walked}.{name}"
    if not isinstance(value, AgentSpec):
        raise AgentLoadError(f"agent {spec!r} is {_describe(value)}, not an AgentSpec"
                             f"{_wrap_hint(value)}")
    log.info("agent loaded", extra={"agent_spec": spec, "agent": value.name})
    return value


def _import(module_name: str, spec: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise AgentLoadError(
                f"agent {spec!r}: no module named {missing!r} (is the directory holding it "
                f"on PYTHONPATH, or its package installed?)") from None
        # The module exists but something it imports does not: that is its own bug.
        raise AgentLoadError(f"agent {spec!r}: importing {module_name!r} failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    except ImportError as exc:
        raise AgentLoadError(f"agent {spec!r}: importing {module_name!r} failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    except SyntaxError as exc:
        raise AgentLoadError(f"agent {spec!r}: {module_name!r} has a syntax error at "
                             f"{exc.filename}:{exc.lineno}: {exc.msg}") from exc
    except Exception as exc:
        raise AgentLoadError(f"agent {spec!r}: importing {module_name!r} raised "
                             f"{type(exc).__name__}: {exc}") from exc


def _known(builtins: Mapping[str, AgentSpec]) -> str:
    return "built-in: " + (", ".join(sorted(builtins)) or "none")


def _public_specs(module: object, top_level: bool) -> str:
    if not top_level:
        return ""
    found = sorted(k for k, v in vars(module).items()
                   if isinstance(v, AgentSpec) and not k.startswith("_"))
    return f" (AgentSpecs it has: {', '.join(found)})" if found else " (it has no AgentSpec)"


def _describe(value: object) -> str:
    if callable(value) and hasattr(value, "__name__"):
        return f"the {type(value).__name__} {value.__name__!r}"
    return f"a {type(value).__name__}"


def _wrap_hint(value: object) -> str:
    if inspect.isfunction(value):
        return ("; wrap the agent function in one: "
                "AgentSpec(name='my-agent', run=my_agent)")
    return ""
