"""Sans-IO A2A: wire models, translation, JSON-RPC, SSE, the task lifecycle.

Nothing here does I/O or imports trio, httpx, quart or hypercorn (a test
enforces it). The 0.3 shapes live in the `protocol.v03` and `protocol.v03_rest`
namespaces because their names (Task, Message, ...) mirror the 1.0 ones; the
0.1/0.2 ones (`tasks/send` with client ids) in `protocol.legacy`.

The package imports its modules on first use (PEP 562): `import protocol.limits`
costs that module alone, not the model classes of three A2A generations, which
`python -m runtime --help` has no use for. `from protocol import Task` and
`protocol.__all__` import them all, as before.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time, `__getattr__` below
    from protocol import legacy as legacy
    from protocol import v03 as v03
    from protocol.agent_state import *  # noqa: F403
    from protocol.errors import *  # noqa: F403
    from protocol.identity import *  # noqa: F403
    from protocol.ids import *  # noqa: F403
    from protocol.jcs import *  # noqa: F403
    from protocol.jsonrpc import *  # noqa: F403
    from protocol.limits import *  # noqa: F403
    from protocol.models import *  # noqa: F403
    from protocol.output_size import *  # noqa: F403
    from protocol.permissions import *  # noqa: F403
    from protocol.request_signing import *  # noqa: F403
    from protocol.security_errors import *  # noqa: F403
    from protocol.sse import *  # noqa: F403
    from protocol.states import *  # noqa: F403

_REEXPORTED = ("agent_state", "errors", "identity", "ids", "jcs", "jsonrpc", "limits", "models",
               "output_size", "permissions", "request_signing", "security_errors", "sse",
               "states")
"""The modules whose `__all__` the package re-exports, in the order of `__all__`."""

_MODULES = frozenset(info.name for info in pkgutil.iter_modules(__path__))  # noqa: F405


def _load() -> list[str]:
    """Every re-exported name bound in the package; the package's `__all__`."""
    names = ["legacy", "v03"]
    for module_name in ("legacy", "v03"):
        globals()[module_name] = importlib.import_module(f"protocol.{module_name}")
    for module_name in _REEXPORTED:
        module = importlib.import_module(f"protocol.{module_name}")
        names += module.__all__
        globals().update({name: getattr(module, name) for name in module.__all__})
    globals()["__all__"] = names
    return names


def __getattr__(name: str) -> Any:
    """A submodule, or a re-exported name (all of them are bound at once) (PEP 562)."""
    if name in _MODULES:
        return importlib.import_module(f"protocol.{name}")
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'protocol' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_load()})
