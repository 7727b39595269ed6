"""The layering rules and package conventions, checked."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_LIBS = {"trio", "httpx", "quart", "quart_trio", "hypercorn", "trio_websocket", "sqlite3",
           "h11", "anyio", "asyncio", "socket"}
FRAMEWORKS = {"quart", "quart_trio", "hypercorn", "httpx", "sqlite3", "h11", "werkzeug",
              "prometheus_client", "opentelemetry"}  # metrics and traces: runtime.observe


def imported_roots(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_protocol_is_sans_io() -> None:
    bad = {f: sorted(n & IO_LIBS) for f, n in imported_roots("protocol").items() if n & IO_LIBS}
    assert bad == {}, f"protocol/ must not import I/O libraries: {bad}"


def test_protocol_pulls_in_no_io_library_transitively() -> None:
    libs = sorted(IO_LIBS - {"socket"})  # pydantic itself imports socket (via email.utils)
    code = ("import sys, protocol, protocol.v03_rest; protocol.__all__; "  # every module
            f"print(sorted(m for m in {libs!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_actors_use_no_http_framework_or_storage_library() -> None:
    bad = {f: sorted(n & FRAMEWORKS) for f, n in imported_roots("actors").items()
           if n & FRAMEWORKS}
    assert bad == {}, f"actors/ reach I/O only through ports: {bad}"


@pytest.mark.parametrize("package", ["protocol", "actors"])
def test_package_reexports_every_public_name(package: str) -> None:
    pkg = importlib.import_module(package)
    missing = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            continue  # a subpackage (actors.worker) re-exports its own names
        module = importlib.import_module(f"{package}.{info.name}")
        if package == "protocol" and (info.name.startswith(("v03", "legacy"))
                                      or info.name == "worker_link"):
            continue  # namespaced on purpose: protocol.v03.Task mirrors the 1.0 Task, etc.
        names = set(getattr(module, "__all__", ()))
        lacking = sorted(n for n in names if n not in pkg.__all__ or not hasattr(pkg, n))
        if lacking:
            missing[info.name] = lacking
    assert missing == {}


def test_runtime_reexports_its_public_surface() -> None:
    import runtime

    for module_name in ("runtime.server", "runtime.http.auth", "runtime.http.card",
                        "runtime.store", "runtime.agents", "runtime.agents.loader",
                        "runtime.http.push_sender", "runtime.http.card_file"):
        module = importlib.import_module(module_name)
        lacking = [n for n in module.__all__ if n not in runtime.__all__]
        assert lacking == [], f"{module_name}: {lacking}"
    for name in runtime.__all__:
        assert hasattr(runtime, name)


def module_imports() -> dict[str, set[str]]:
    """Each module of the three packages -> the modules of the three it imports,
    anywhere in its body (functions and ``TYPE_CHECKING`` blocks included)."""
    paths: dict[str, Path] = {}
    for package in ("protocol", "actors", "runtime"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            paths[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                # `from pkg import sub` imports the module pkg.sub, not a name of pkg
                deps |= {f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module
                         for a in node.names}
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles_anywhere() -> None:
    assert import_cycles(module_imports()) == []


def test_import_cycle_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


# What each folder of runtime/ may import of the rest of runtime/ (docs/architecture.md,
# "Where things live"); the top-level modules (server, cli, flags) wire everything.
RUNTIME_IMPORTS = {
    "runtime.http": (),
    "runtime.admin": ("runtime.http.common", "runtime.http.sse", "runtime.http.identity",
                      "runtime.http.signing_settings"),
    "runtime.client": (),
    "runtime.store": (),
    "runtime.supervisor": (),
    "runtime.secrets": (),
    "runtime.link": ("runtime.http.common", "runtime.http.auth", "runtime.http.sse",
                     "runtime.http.signing_settings", "runtime.supervisor"),
    "runtime.observe": (),
    "runtime.worker": ("runtime.agents", "runtime.supervisor", "runtime.observe"),
    "runtime.mcp": ("runtime.http.common", "runtime.http.auth", "runtime.http.guard",
                    "runtime.http.gate", "runtime.http.signing_settings"),
    "runtime.providers": ("runtime.secrets", "runtime.observe"),
    "runtime.tools": ("runtime.secrets",),
    "runtime.agents": ("runtime.providers", "runtime.tools", "runtime.secrets",
                       "runtime.client", "runtime.observe"),
    "runtime.grpc": ("runtime.http.common", "runtime.http.auth", "runtime.http.rpc_methods",
                     "runtime.http.gate", "runtime.http.request_signing",
                     "runtime.supervisor"),
}


@pytest.mark.parametrize("folder", sorted(RUNTIME_IMPORTS))
def test_runtime_folders_import_only_what_they_may(folder: str) -> None:
    allowed = (folder, *RUNTIME_IMPORTS[folder])
    bad = {m: sorted(d for d in deps if d.startswith("runtime") and d != "runtime"
                     and not d.startswith(allowed))
           for m, deps in module_imports().items() if m == folder or m.startswith(folder + ".")}
    assert {m: d for m, d in bad.items() if d} == {}


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_clean() -> None:
    out = subprocess.run(["ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
