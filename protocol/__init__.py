"""Sans-IO A2A: wire models, translation, JSON-RPC, SSE, the task lifecycle.

Nothing here does I/O or imports trio, httpx, quart or hypercorn (a test
enforces it). The 0.3 shapes live in the `protocol.v03` and `protocol.v03_rest`
namespaces because their names (Task, Message, ...) mirror the 1.0 ones; the
0.1/0.2 ones (`tasks/send` with client ids) in `protocol.legacy`.
"""

from protocol import legacy, v03
from protocol.agent_state import *  # noqa: F403
from protocol.agent_state import __all__ as _agent_state
from protocol.errors import *  # noqa: F403
from protocol.errors import __all__ as _errors
from protocol.identity import *  # noqa: F403
from protocol.identity import __all__ as _identity
from protocol.ids import *  # noqa: F403
from protocol.ids import __all__ as _ids
from protocol.jcs import *  # noqa: F403
from protocol.jcs import __all__ as _jcs
from protocol.jsonrpc import *  # noqa: F403
from protocol.jsonrpc import __all__ as _jsonrpc
from protocol.limits import *  # noqa: F403
from protocol.limits import __all__ as _limits
from protocol.models import *  # noqa: F403
from protocol.models import __all__ as _models
from protocol.output_size import *  # noqa: F403
from protocol.output_size import __all__ as _output_size
from protocol.permissions import *  # noqa: F403
from protocol.permissions import __all__ as _permissions
from protocol.request_signing import *  # noqa: F403
from protocol.request_signing import __all__ as _request_signing
from protocol.security_errors import *  # noqa: F403
from protocol.security_errors import __all__ as _security_errors
from protocol.sse import *  # noqa: F403
from protocol.sse import __all__ as _sse
from protocol.states import *  # noqa: F403
from protocol.states import __all__ as _states

__all__ = ["legacy", "v03", *_agent_state, *_errors, *_identity, *_ids, *_jcs, *_jsonrpc, *_limits,
           *_models, *_output_size, *_permissions, *_request_signing, *_security_errors,
           *_sse, *_states]
