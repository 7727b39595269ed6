"""`load_agent`: built-in names, import paths, and an error a person can act on for each mistake."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.agent import AgentSpec, Emitter, TaskContext
from runtime.agents import echo_agent
from runtime.agents.loader import BUILTIN_AGENTS, AgentLoadError, load_agent
from runtime.cli import main
from runtime.worker.process import _agents
from tests.e2e.agents import slow_echo

_names = itertools.count()


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Write a module on a fresh sys.path entry; its (unique) name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str) -> str:
        name = f"loader_case_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    return make


SPEC_MODULE = """
    from actors.agent import AgentSpec

    async def run(ctx, emit):
        await emit.complete()

    spec = AgentSpec(name="mine", run=run)

    class Holder:
        inner = spec

    not_a_spec = "spec"
"""


async def _noop(ctx: TaskContext, emit: Emitter) -> None:
    await emit.complete()


def _error(spec: str) -> AgentLoadError:
    with pytest.raises(AgentLoadError) as info:
        load_agent(spec)
    return info.value


def test_builtin_names() -> None:
    assert load_agent("echo") is echo_agent
    assert load_agent(" echo ") is echo_agent
    assert BUILTIN_AGENTS == {"echo": echo_agent}
    other = AgentSpec(name="other", run=_noop)
    assert load_agent("other", {"other": other}) is other


def test_import_path(make_module: Callable[[str], str]) -> None:
    name = make_module(SPEC_MODULE)
    spec = load_agent(f"{name}:spec")
    assert isinstance(spec, AgentSpec) and spec.name == "mine"
    assert load_agent(f"{name}:Holder.inner") is spec
    assert load_agent(f" {name} : spec ") is spec
    assert load_agent("tests.e2e.agents:slow_echo") is slow_echo


def test_an_error_is_a_value_error() -> None:
    assert issubclass(AgentLoadError, ValueError)  # the CLI reports it as bad input


def test_empty() -> None:
    assert str(_error("  ")) == ("no agent given: use a built-in name (built-in: echo) or an "
                                 "import path 'package.module:attribute'")


def test_unknown_builtin_name() -> None:
    assert str(_error("ecko")) == ("unknown agent 'ecko': not a built-in agent (built-in: echo) "
                                   "and not an import path 'package.module:attribute'")
    # a dotted name was probably meant as an import path: say how to write it
    assert str(_error("mypkg.agents.coder")).endswith(
        "for an import path write mypkg.agents:coder")


@pytest.mark.parametrize("spec", ["mod:", ":spec", "a:b:c"])
def test_malformed(spec: str) -> None:
    assert str(_error(spec)) == f"agent {spec!r} is not of the form 'package.module:attribute'"


def test_attribute_not_a_name(make_module: Callable[[str], str]) -> None:
    name = make_module(SPEC_MODULE)
    assert str(_error(f"{name}:spec-2")) == (
        f"agent '{name}:spec-2': 'spec-2' is not an attribute name "
        "(the part after ':' is attribute.names)")


def test_module_not_found() -> None:
    err = _error("no_such_pkg_xyz.agents:spec")
    assert str(err) == ("agent 'no_such_pkg_xyz.agents:spec': no module named 'no_such_pkg_xyz' "
                        "(is the directory holding it on PYTHONPATH, or its package installed?)")
    # the package exists, the module in it does not: name the module
    assert "no module named 'tests.no_such_module'" in str(_error("tests.no_such_module:x"))


def test_module_fails_to_import(make_module: Callable[[str], str]) -> None:
    # the module is there but imports something missing: its own error, chained
    broken = make_module("import no_such_dependency_xyz\n")
    err = _error(f"{broken}:spec")
    assert str(err) == (f"agent '{broken}:spec': importing '{broken}' failed: "
                        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'")
    assert isinstance(err.__cause__, ModuleNotFoundError)

    raising = make_module("raise RuntimeError('no API key')\n")
    err = _error(f"{raising}:spec")
    assert str(err) == (f"agent '{raising}:spec': importing '{raising}' raised "
                        "RuntimeError: no API key")
    assert isinstance(err.__cause__, RuntimeError)

    bad = make_module("def oops(:\n")
    msg = str(_error(f"{bad}:spec"))
    assert msg.startswith(f"agent '{bad}:spec': '{bad}' has a syntax error at ")
    assert f"{bad}.py:1: " in msg


def test_attribute_missing(make_module: Callable[[str], str]) -> None:
    name = make_module(SPEC_MODULE)
    assert str(_error(f"{name}:spce")) == (
        f"agent '{name}:spce': {name} has no attribute 'spce' (AgentSpecs it has: spec)")
    assert str(_error(f"{name}:Holder.nope")) == (
        f"agent '{name}:Holder.nope': {name}:Holder has no attribute 'nope'")
    empty = make_module("x = 1\n")
    assert str(_error(f"{empty}:spec")) == (
        f"agent '{empty}:spec': {empty} has no attribute 'spec' (it has no AgentSpec)")


def test_attribute_not_an_agent_spec(make_module: Callable[[str], str]) -> None:
    name = make_module(SPEC_MODULE)
    assert str(_error(f"{name}:run")) == (
        f"agent '{name}:run' is the function 'run', not an AgentSpec; wrap the agent "
        "function in one: AgentSpec(name='my-agent', run=my_agent)")
    assert str(_error(f"{name}:not_a_spec")) == (
        f"agent '{name}:not_a_spec' is a str, not an AgentSpec")
    assert str(_error(f"{name}:Holder")) == (
        f"agent '{name}:Holder' is the type 'Holder', not an AgentSpec")


def test_worker_resolves_names_and_paths() -> None:
    assert _agents("echo") == [echo_agent]
    assert _agents(["echo", "tests.e2e.agents:slow_echo", slow_echo]) == [
        echo_agent, slow_echo, slow_echo]
    with pytest.raises(AgentLoadError, match="no module named 'nope_xyz'"):
        _agents("nope_xyz:spec")


def test_cli_reports_a_bad_agent_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["worker", "--server", "http://127.0.0.1:9", "--agent", "nope_xyz:spec"])
    assert info.value.code == 2
    assert ("error: --agent: agent 'nope_xyz:spec': no module named 'nope_xyz'"
            in capsys.readouterr().err)
