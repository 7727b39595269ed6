"""The actors: business logic behind small ports, talking over bounded trio channels.

No HTTP framework here; network and storage are reached only through the ports
in `actors.store_port` (TaskBackend) and `actors.push_delivery` (PushSender).
"""

from actors.a2a_service import *  # noqa: F403
from actors.a2a_service import __all__ as _service
from actors.admin import *  # noqa: F403
from actors.admin import __all__ as _admin
from actors.agent import *  # noqa: F403
from actors.agent import __all__ as _agent
from actors.approval import *  # noqa: F403
from actors.approval import __all__ as _approval
from actors.client_ids import *  # noqa: F403
from actors.client_ids import __all__ as _client_ids
from actors.dispatcher import *  # noqa: F403
from actors.dispatcher import __all__ as _dispatcher
from actors.event_feed import *  # noqa: F403
from actors.event_feed import __all__ as _event_feed
from actors.push_claims import *  # noqa: F403
from actors.push_claims import __all__ as _push_claims
from actors.push_configs import *  # noqa: F403
from actors.push_configs import __all__ as _push_configs
from actors.push_delivery import *  # noqa: F403
from actors.push_delivery import __all__ as _push
from actors.release import *  # noqa: F403
from actors.release import __all__ as _release
from actors.store_port import *  # noqa: F403
from actors.store_port import __all__ as _port
from actors.task_commit import *  # noqa: F403
from actors.task_commit import __all__ as _commit
from actors.task_store import *  # noqa: F403
from actors.task_store import __all__ as _store
from actors.task_sync import *  # noqa: F403
from actors.task_sync import __all__ as _sync
from actors.trace_port import *  # noqa: F403
from actors.trace_port import __all__ as _trace

__all__ = [
    *_service, *_admin, *_agent, *_approval, *_client_ids, *_dispatcher, *_event_feed,
    *_push_claims,
    *_push_configs, *_push, *_release,
    *_port, *_commit, *_store, *_sync, *_trace,
]
