"""The dispatcher's parts, one idea each; `actors.dispatcher.Dispatcher` ties them.

Split along what a scale-out across processes needs to tell apart: what is
durable (each task's `DispatchState` in the store, written by `leases`) and
what each process keeps for itself and rebuilds at start (the queue index in
`routing`, the connected workers and their offers in `workers`, the lease index
in `leases`; `follow` keeps them in step with the other replicas on a shared
store). `reaper` ends the leases that ran out; `admin` holds what an operator may do
(re-queue, fail, drain a worker); `types` holds the values and errors they share.
"""

from actors.dispatch.admin import *  # noqa: F403
from actors.dispatch.admin import __all__ as _admin
from actors.dispatch.follow import *  # noqa: F403
from actors.dispatch.follow import __all__ as _follow
from actors.dispatch.leases import *  # noqa: F403
from actors.dispatch.leases import __all__ as _leases
from actors.dispatch.reaper import *  # noqa: F403
from actors.dispatch.reaper import __all__ as _reaper
from actors.dispatch.routing import *  # noqa: F403
from actors.dispatch.routing import __all__ as _routing
from actors.dispatch.types import *  # noqa: F403
from actors.dispatch.types import __all__ as _types
from actors.dispatch.workers import *  # noqa: F403
from actors.dispatch.workers import __all__ as _workers

__all__ = [*_admin, *_follow, *_leases, *_reaper, *_routing, *_types, *_workers]
